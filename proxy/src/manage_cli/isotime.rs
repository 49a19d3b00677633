//! Epoch seconds as ISO-8601 UTC text without a zone, exactly as Python's
//! `datetime.utcfromtimestamp(t).isoformat()` (what `glance-cache-manage`
//! prints): `2022-05-02T15:20:44.086052`, or `2022-05-02T15:20:44` when the
//! microseconds round to zero.

/// Seconds from 0001-01-01T00:00:00 to the epoch (negated).
const MIN_SECONDS: i64 = -62_135_596_800;
/// 9999-12-31T23:59:59, the last second Python can show.
const MAX_SECONDS: i64 = 253_402_300_799;

/// `timestamp` (seconds since 1970-01-01T00:00:00 UTC, with a fraction)
/// as Python shows it: microseconds rounded half to even, like CPython's
/// `utcfromtimestamp`. `None` when it is not finite or outside the years
/// 1 to 9999.
pub(crate) fn iso8601_utc(timestamp: f64) -> Option<String> {
    if !timestamp.is_finite() {
        return None;
    }
    let mut whole = timestamp.trunc();
    let mut micros = (timestamp.fract() * 1e6).round_ties_even();
    if micros >= 1e6 {
        micros -= 1e6;
        whole += 1.0;
    } else if micros < 0.0 {
        micros += 1e6;
        whole -= 1.0;
    }
    if !(MIN_SECONDS as f64..=MAX_SECONDS as f64).contains(&whole) {
        return None;
    }
    // In range, so both conversions are exact.
    let time = chrono::DateTime::from_timestamp(whole as i64, micros as u32 * 1000)?;
    let format = if micros == 0.0 {
        "%Y-%m-%dT%H:%M:%S"
    } else {
        "%Y-%m-%dT%H:%M:%S%.6f"
    };
    Some(time.format(format).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Printed by CPython 3.11: `datetime.utcfromtimestamp(t).isoformat()`.
    const PYTHON: &[(f64, &str)] = &[
        (0.0, "1970-01-01T00:00:00"),
        (1.0, "1970-01-01T00:00:01"),
        (0.5, "1970-01-01T00:00:00.500000"),
        (1_795_508_394.538_781, "2026-11-24T08:19:54.538781"),
        (1_795_508_394.538_803, "2026-11-24T08:19:54.538803"),
        (1_651_504_844.086_052_4, "2022-05-02T15:20:44.086052"),
        (951_782_400.0, "2000-02-29T00:00:00"),
        (951_868_799.999_999_6, "2000-03-01T00:00:00"),
        (951_868_799.999_999_4, "2000-02-29T23:59:59.999999"),
        (4_102_444_800.0, "2100-01-01T00:00:00"),
        (253_402_300_799.0, "9999-12-31T23:59:59"),
        (-1.0, "1969-12-31T23:59:59"),
        (-0.5, "1969-12-31T23:59:59.500000"),
        (1.000_000_5, "1970-01-01T00:00:01.000001"),
        (1.000_001_5, "1970-01-01T00:00:01.000001"),
        (1_700_000_000.123_456_7, "2023-11-14T22:13:20.123457"),
        (68_169_600.0, "1972-02-29T00:00:00"),
        (1_582_934_400.25, "2020-02-29T00:00:00.250000"),
        (978_307_200.000_001, "2001-01-01T00:00:00.000001"),
        (-62_135_596_800.0, "0001-01-01T00:00:00"),
    ];

    #[test]
    fn matches_python_utcfromtimestamp_isoformat() {
        for (t, expected) in PYTHON {
            assert_eq!(iso8601_utc(*t).as_deref(), Some(*expected), "{t}");
        }
    }

    #[test]
    fn out_of_range_and_not_finite_are_none() {
        for t in [
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            253_402_300_800.0,
            -62_135_596_801.0,
            1e300,
        ] {
            assert_eq!(iso8601_utc(t), None, "{t}");
        }
    }
}
