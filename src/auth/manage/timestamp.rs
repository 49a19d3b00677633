//! Keystone's timestamps (`2026-11-24T09:39:09.000000Z`) to and from
//! `SystemTime`, without a date library.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Parses an ISO 8601 / RFC 3339 date-time as Keystone writes it:
/// `YYYY-MM-DDTHH:MM:SS`, optional fraction, then `Z`, `+HH:MM`, `-HH:MM`
/// or nothing (UTC). `None` for anything else or a time before 1970.
pub(crate) fn parse(text: &str) -> Option<SystemTime> {
    let b = text.trim().as_bytes();
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let year = digits(&b[0..4])?;
    let month = digits(&b[5..7])?;
    let day = digits(&b[8..10])?;
    let hour = digits(&b[11..13])?;
    let minute = digits(&b[14..16])?;
    let second = digits(&b[17..19])?;
    if !(1..=12).contains(&month)
        || day == 0
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut rest = &b[19..];
    let mut nanos: u64 = 0;
    if let Some((b'.', frac)) = rest.split_first() {
        let n = frac.iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 {
            return None;
        }
        for (i, c) in frac[..n].iter().enumerate().take(9) {
            nanos += u64::from(c - b'0') * 10u64.pow(8 - i as u32);
        }
        rest = &frac[n..];
    }
    let offset_secs: i64 = match rest {
        [] | [b'Z'] | [b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let h = digits(&[*h1, *h2])?;
            let m = digits(&[*m1, *m2])?;
            if h > 23 || m > 59 {
                return None;
            }
            let off = i64::from(h * 3600 + m * 60);
            if *sign == b'+' {
                off
            } else {
                -off
            }
        }
        _ => return None,
    };
    let days = days_from_civil(i64::from(year), month, day);
    let secs = days * 86_400 + i64::from(hour * 3600 + minute * 60 + second) - offset_secs;
    let secs = u64::try_from(secs).ok()?;
    UNIX_EPOCH.checked_add(Duration::new(secs, u32::try_from(nanos).ok()?))
}

/// Formats like Keystone: `YYYY-MM-DDTHH:MM:SS.ffffffZ` (UTC).
#[cfg_attr(not(feature = "fake-glance"), allow(dead_code))]
pub(crate) fn format(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let days = i64::try_from(secs / 86_400).unwrap_or(i64::MAX / 2);
    let rem = secs % 86_400;
    let (y, m, day) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}.{:06}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_micros()
    )
}

fn digits(b: &[u8]) -> Option<u32> {
    b.iter().try_fold(0u32, |n, c| {
        c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0'))
    })
}

fn is_leap(y: u32) -> bool {
    (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400)
}

fn days_in_month(y: u32, m: u32) -> u32 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The inverse of [`days_from_civil`].
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64, micros: u32) -> SystemTime {
        UNIX_EPOCH + Duration::new(secs, micros * 1000)
    }

    #[test]
    fn keystone_format() {
        // date -u -d 2026-11-24T09:39:09Z +%s
        let t = parse("2026-11-24T09:39:09.000000Z").expect("parses");
        assert_eq!(t, at(1_795_513_149, 0));
        assert_eq!(format(t), "2026-11-24T09:39:09.000000Z");
        assert_eq!(parse("1970-01-01T00:00:00Z"), Some(UNIX_EPOCH));
        assert_eq!(
            parse("2000-02-29T23:59:59.123456Z"),
            Some(at(951_868_799, 123_456))
        );
        assert_eq!(
            format(at(951_868_799, 123_456)),
            "2000-02-29T23:59:59.123456Z"
        );
    }

    #[test]
    fn offsets_and_fractions() {
        let utc = parse("2026-11-24T09:39:09Z").expect("parses");
        assert_eq!(parse("2026-11-24T10:39:09+01:00"), Some(utc));
        assert_eq!(parse("2026-11-24T08:09:09-01:30"), Some(utc));
        assert_eq!(parse("2026-11-24T09:39:09"), Some(utc));
        assert_eq!(
            parse("2026-11-24T09:39:09.5Z"),
            Some(utc + Duration::from_millis(500))
        );
        assert_eq!(
            parse("2026-11-24T09:39:09.1234567891Z"),
            Some(utc + Duration::from_nanos(123_456_789))
        );
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            "",
            "2026-11-24",
            "2026-13-01T00:00:00Z",
            "2026-02-29T00:00:00Z",
            "2026-11-24T24:00:00Z",
            "2026-11-24T09:39:09.Z",
            "2026-11-24T09:39:09+0100",
            "2026-11-24T09:39:09ZZ",
            "1969-12-31T23:59:59Z",
            "2026-1a-24T09:39:09Z",
            "2026-11-24X09:39:09Z",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn round_trips_many_days() {
        let mut t = at(0, 0);
        for _ in 0..2000 {
            assert_eq!(parse(&format(t)), Some(t));
            t += Duration::from_secs(86_400 * 17 + 3_671);
        }
    }
}
