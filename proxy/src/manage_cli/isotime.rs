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
    let seconds = whole as i64;
    let micros = micros as u32;
    let (year, month, day) = civil_from_days(seconds.div_euclid(86_400));
    let of_day = seconds.rem_euclid(86_400);
    let mut text = format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        of_day / 3600,
        of_day / 60 % 60,
        of_day % 60
    );
    if micros != 0 {
        text.push_str(&format!(".{micros:06}"));
    }
    Some(text)
}

/// The proleptic Gregorian date of day `days` after 1970-01-01 (negative:
/// before it), by Howard Hinnant's `civil_from_days`.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11], March first
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
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
    fn every_day_of_four_centuries_round_trips() {
        // Days counted forward from 1600-03-01 must step through the
        // calendar one day at a time, leap rules included.
        let mut previous = civil_from_days(-135_080); // 1600-03-01
        assert_eq!(previous, (1600, 3, 1));
        for days in -135_079..=10_957 + 146_097 {
            let (y, m, d) = civil_from_days(days);
            let (py, pm, pd) = previous;
            let leap = (py % 4 == 0 && py % 100 != 0) || py % 400 == 0;
            let month_len = match pm {
                2 if leap => 29,
                2 => 28,
                4 | 6 | 9 | 11 => 30,
                _ => 31,
            };
            let expected = if pd < month_len {
                (py, pm, pd + 1)
            } else if pm < 12 {
                (py, pm + 1, 1)
            } else {
                (py + 1, 1, 1)
            };
            assert_eq!((y, m, d), expected, "day {days}");
            previous = (y, m, d);
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
