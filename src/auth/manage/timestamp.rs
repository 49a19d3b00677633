//! Keystone's timestamps (`2026-11-24T09:39:09.000000Z`) as `SystemTime`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, NaiveDateTime};

/// Parses an RFC 3339 date-time as Keystone writes it:
/// `YYYY-MM-DDTHH:MM:SS`, optional fraction, then `Z`, `+HH:MM`, `-HH:MM`
/// or nothing (UTC). `None` for anything else or a time before 1970.
pub(crate) fn parse(text: &str) -> Option<SystemTime> {
    let text = text.trim();
    let utc = match DateTime::parse_from_rfc3339(text) {
        Ok(t) => t.to_utc(),
        Err(_) => NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
            .ok()?
            .and_utc(),
    };
    let secs = u64::try_from(utc.timestamp()).ok()?;
    UNIX_EPOCH.checked_add(Duration::new(secs, utc.timestamp_subsec_nanos()))
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
        assert_eq!(parse("1970-01-01T00:00:00Z"), Some(UNIX_EPOCH));
        assert_eq!(
            parse("2000-02-29T23:59:59.123456Z"),
            Some(at(951_868_799, 123_456))
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
}
