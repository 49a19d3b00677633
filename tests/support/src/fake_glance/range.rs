//! Glance's handling of `Range` and of the non-standard `Content-Range`
//! *request* header on downloads (`Request.get_range_from_request` plus the
//! download serializer), including its quirks:
//!
//! - one range only (`,` anywhere → 400);
//! - `bytes=a-b` with `b` past the end is clamped; a suffix `bytes=-n` with
//!   `n` ≥ size means the whole image (still 206);
//! - a start at or past the end → 416 with Glance's detail text;
//! - `Range` wins over `Content-Range`; `Content-Range: bytes a-b/*` must end
//!   inside the image, while `bytes a-b/N` is taken as given (and may
//!   promise more bytes than exist);
//! - on an image without data, Glance crashes and sends no response.

use http::{header, HeaderMap};

/// What the download should do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum RangeOutcome {
    /// No range requested: 200 with the whole image.
    Full,
    /// 206: `len` bytes from `offset`; `Content-Range: bytes offset-last/size`.
    Partial { offset: u64, len: u64, last: i128 },
    /// 400: more than one range.
    MultipleRanges,
    /// 416 with this detail line.
    NotSatisfiable(String),
    /// Glance raises an unexpected error: no response at all.
    Crash,
}

pub(crate) const MULTIPLE_RANGES: &str = "Requests with multiple ranges are not supported in Glance. You may make multiple single-range requests instead.";
pub(crate) const NOT_AVAILABLE: &str = "The Range requested is not available.";

/// Decides the range for an image of `size` bytes (`None`: no data).
pub(crate) fn from_headers(headers: &HeaderMap, size: Option<u64>) -> RangeOutcome {
    if let Some(value) = headers.get(header::RANGE) {
        let value = String::from_utf8_lossy(value.as_bytes());
        if value.contains(',') {
            return RangeOutcome::MultipleRanges;
        }
        let (start, end) = match parse_range(&value) {
            Parsed::Ok(r) => r,
            Parsed::Invalid => return not_satisfiable("Invalid Range header."),
            Parsed::Crash => return RangeOutcome::Crash,
        };
        let Some(size) = size.map(i128::from) else {
            return RangeOutcome::Crash;
        };
        if start >= size {
            return not_satisfiable(&format!(
                "Invalid start position in Range header. Start position MUST be in the inclusive range [0, {}].",
                size - 1
            ));
        }
        let offset = if start >= 0 {
            start
        } else if -start < size {
            size + start
        } else {
            0
        };
        return match end {
            Some(end) if end < size => partial(offset, end - offset, end - 1),
            _ => partial(offset, size - offset, size - 1),
        };
    }
    if let Some(value) = headers.get(header::CONTENT_RANGE) {
        let value = String::from_utf8_lossy(value.as_bytes());
        let Some((start, stop, length)) = parse_content_range(&value) else {
            return not_satisfiable("Invalid Content-Range header.");
        };
        let (Some(size), Some((start, stop))) = (size.map(i128::from), start.zip(stop)) else {
            // Comparing with None raises TypeError in Glance.
            return RangeOutcome::Crash;
        };
        if length.is_none() && stop > size {
            return not_satisfiable(&format!(
                "Invalid stop position in Content-Range header. The stop position MUST be in the inclusive range [0, {}].",
                size - 1
            ));
        }
        if start >= size {
            return not_satisfiable(&format!(
                "Invalid start position in Content-Range header. Start position MUST be in the inclusive range [0, {}].",
                size - 1
            ));
        }
        return partial(start, stop - start, stop - 1);
    }
    RangeOutcome::Full
}

fn partial(offset: i128, len: i128, last: i128) -> RangeOutcome {
    RangeOutcome::Partial {
        offset: u64::try_from(offset).unwrap_or(0),
        len: u64::try_from(len).unwrap_or(0),
        last,
    }
}

fn not_satisfiable(detail: &str) -> RangeOutcome {
    RangeOutcome::NotSatisfiable(detail.to_owned())
}

enum Parsed {
    /// `(start, end)`: webob's `Range`, `end` exclusive; a suffix range has a
    /// negative start and no end.
    Ok((i128, Option<i128>)),
    Invalid,
    Crash,
}

/// webob `Range.parse`: `bytes *= *(\d*) *- *(\d*)` matched at the start
/// (case-insensitive; trailing text ignored).
fn parse_range(s: &str) -> Parsed {
    let mut p = Cursor(s.as_bytes());
    if !p.eat_ci(b"bytes") {
        return Parsed::Invalid;
    }
    p.spaces();
    if !p.eat(b'=') {
        return Parsed::Invalid;
    }
    p.spaces();
    let start = p.digits();
    p.spaces();
    if !p.eat(b'-') {
        return Parsed::Invalid;
    }
    p.spaces();
    let end = p.digits();
    match (start, end) {
        // int('') raises ValueError.
        (None, None) => Parsed::Crash,
        (None, Some(n)) => Parsed::Ok((-n, None)),
        (Some(a), None) => Parsed::Ok((a, None)),
        (Some(a), Some(b)) if a < b + 1 => Parsed::Ok((a, Some(b + 1))),
        (Some(_), Some(_)) => Parsed::Invalid,
    }
}

/// webob `ContentRange.parse`: `bytes (?:(\d+)-(\d+)|[*])/(?:(\d+)|[*])`
/// matched at the start, then validated as a response header would be.
/// Returns `(start, stop (exclusive), length)`.
#[allow(clippy::type_complexity)]
fn parse_content_range(s: &str) -> Option<(Option<i128>, Option<i128>, Option<i128>)> {
    let mut p = Cursor(s.as_bytes());
    if !p.eat_exact(b"bytes ") {
        return None;
    }
    let (start, stop) = if p.eat(b'*') {
        (None, None)
    } else {
        let a = p.digits()?;
        if !p.eat(b'-') {
            return None;
        }
        let b = p.digits()?;
        (Some(a), Some(b + 1))
    };
    if !p.eat(b'/') {
        return None;
    }
    let length = if p.eat(b'*') { None } else { Some(p.digits()?) };
    let valid = match (start, stop, length) {
        (None, _, l) => l.is_none_or(|l| l >= 0),
        (Some(a), Some(b), None) => 0 <= a && a < b,
        (Some(a), Some(b), Some(_)) if a >= b => false,
        (Some(_), Some(b), Some(l)) if b > l => false,
        (Some(a), _, Some(l)) => 0 <= a && a < l,
        (Some(_), None, None) => false,
    };
    valid.then_some((start, stop, length))
}

struct Cursor<'a>(&'a [u8]);

impl Cursor<'_> {
    fn eat(&mut self, b: u8) -> bool {
        match self.0.split_first() {
            Some((first, rest)) if *first == b => {
                self.0 = rest;
                true
            }
            _ => false,
        }
    }

    fn eat_exact(&mut self, s: &[u8]) -> bool {
        match self.0.strip_prefix(s) {
            Some(rest) => {
                self.0 = rest;
                true
            }
            None => false,
        }
    }

    fn eat_ci(&mut self, s: &[u8]) -> bool {
        if self.0.len() >= s.len() && self.0[..s.len()].eq_ignore_ascii_case(s) {
            self.0 = &self.0[s.len()..];
            true
        } else {
            false
        }
    }

    fn spaces(&mut self) {
        while self.eat(b' ') {}
    }

    /// A run of ASCII digits as a number (saturating: absurd values still
    /// compare as "too large").
    fn digits(&mut self) -> Option<i128> {
        let n = self.0.iter().take_while(|b| b.is_ascii_digit()).count();
        if n == 0 {
            return None;
        }
        let v = self.0[..n].iter().fold(0i128, |acc, d| {
            acc.saturating_mul(10).saturating_add(i128::from(d - b'0'))
        });
        self.0 = &self.0[n..];
        Some(v.min(i128::from(u64::MAX)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn range(v: &str, size: Option<u64>) -> RangeOutcome {
        let mut h = HeaderMap::new();
        h.insert(header::RANGE, HeaderValue::from_str(v).unwrap());
        from_headers(&h, size)
    }

    fn content_range(v: &str, size: Option<u64>) -> RangeOutcome {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_RANGE, HeaderValue::from_str(v).unwrap());
        from_headers(&h, size)
    }

    fn part(offset: u64, len: u64, last: i128) -> RangeOutcome {
        RangeOutcome::Partial { offset, len, last }
    }

    #[test]
    fn byte_ranges() {
        assert_eq!(range("bytes=3-5", Some(26)), part(3, 3, 5));
        assert_eq!(range("bytes=0-99", Some(1048576)), part(0, 100, 99));
        assert_eq!(range("bytes=20-", Some(26)), part(20, 6, 25));
        assert_eq!(range("bytes=0-999", Some(26)), part(0, 26, 25));
        assert_eq!(range("bytes=25-25", Some(26)), part(25, 1, 25));
        assert_eq!(range("BYTES = 3 - 5", Some(26)), part(3, 3, 5));
        assert_eq!(range("bytes=3-5junk", Some(26)), part(3, 3, 5));
    }

    #[test]
    fn suffix_ranges() {
        assert_eq!(
            range("bytes=-10", Some(1048576)),
            part(1048566, 10, 1048575)
        );
        assert_eq!(range("bytes=-26", Some(26)), part(0, 26, 25));
        assert_eq!(range("bytes=-100", Some(26)), part(0, 26, 25));
        assert_eq!(range("bytes=-0", Some(26)), part(0, 26, 25));
    }

    #[test]
    fn range_errors() {
        assert_eq!(
            range("bytes=0-1,5-6", Some(26)),
            RangeOutcome::MultipleRanges
        );
        assert_eq!(range("bytes=0-1,5-6", None), RangeOutcome::MultipleRanges);
        assert_eq!(
            range("bytes=2000000-", Some(1048576)),
            RangeOutcome::NotSatisfiable(
                "Invalid start position in Range header. Start position MUST be in the inclusive range [0, 1048575].".into()
            )
        );
        assert_eq!(range("bytes=26-30", Some(26)), range("bytes=26-", Some(26)));
        assert_eq!(
            range("bytes=5-3", Some(26)),
            not_satisfiable("Invalid Range header.")
        );
        assert_eq!(
            range("items=0-1", Some(26)),
            not_satisfiable("Invalid Range header.")
        );
        assert_eq!(
            range("", Some(26)),
            not_satisfiable("Invalid Range header.")
        );
        assert_eq!(range("bytes=-", Some(26)), RangeOutcome::Crash);
        assert_eq!(range("bytes=0-99", None), RangeOutcome::Crash);
    }

    #[test]
    fn content_range_request_header() {
        assert_eq!(content_range("bytes 3-5/*", Some(26)), part(3, 3, 5));
        assert_eq!(content_range("bytes 3-5/26", Some(26)), part(3, 3, 5));
        // A stated length is not checked against the image: Glance promises
        // 100 bytes of a 26-byte image.
        assert_eq!(content_range("bytes 0-99/100", Some(26)), part(0, 100, 99));
        assert_eq!(
            content_range("bytes 3-30/*", Some(26)),
            not_satisfiable("Invalid stop position in Content-Range header. The stop position MUST be in the inclusive range [0, 25].")
        );
        assert_eq!(
            content_range("bytes 30-40/50", Some(26)),
            not_satisfiable("Invalid start position in Content-Range header. Start position MUST be in the inclusive range [0, 25].")
        );
        assert_eq!(
            content_range("bytes 5-3/*", Some(26)),
            not_satisfiable("Invalid Content-Range header.")
        );
        assert_eq!(
            content_range("bytes=3-5", Some(26)),
            not_satisfiable("Invalid Content-Range header.")
        );
        assert_eq!(
            content_range("bytes 0-9/5", Some(26)),
            not_satisfiable("Invalid Content-Range header.")
        );
        assert_eq!(content_range("bytes */26", Some(26)), RangeOutcome::Crash);
        assert_eq!(content_range("bytes 3-5/*", None), RangeOutcome::Crash);
    }

    #[test]
    fn range_wins_and_none_is_full() {
        let mut h = HeaderMap::new();
        assert_eq!(from_headers(&h, Some(26)), RangeOutcome::Full);
        assert_eq!(from_headers(&h, None), RangeOutcome::Full);
        h.insert(header::RANGE, HeaderValue::from_static("bytes=0-0"));
        h.insert(
            header::CONTENT_RANGE,
            HeaderValue::from_static("bytes 3-5/*"),
        );
        assert_eq!(from_headers(&h, Some(26)), part(0, 1, 0));
    }
}
