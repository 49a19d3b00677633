//! Single byte ranges answered from the cache, with Glance's answers.
//!
//! Glance serves `Range: bytes=a-b`, `bytes=a-` and `bytes=-n` with a `206`
//! whose `Content-Range` gives the part and the whole size and whose
//! `Content-MD5` is the whole image's. The cache answers exactly those
//! forms itself, parsed strictly. Everything else goes to the upstream,
//! whose answer is relayed: several ranges, other units, reversed or
//! malformed ranges, `Content-Range` in a request, a range of an empty
//! image, and a start at or past the end (Glance's `416` explains it in
//! HTML, plain text or JSON as the request's `Accept` asks; the cache adds
//! the `Content-Range: bytes */size` HTTP asks of a `416` when it knows
//! the size).

use http::header::{self, HeaderMap, HeaderValue, CONTENT_RANGE, IF_RANGE, RANGE};

use crate::headers::REQUEST_ID;

/// One range a request asks for, in a form the cache answers itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ByteRange {
    /// `bytes=a-b` (a ≤ b): bytes a to b, inclusive.
    FromTo(u64, u64),
    /// `bytes=a-`: from byte a to the end.
    From(u64),
    /// `bytes=-n` (n ≥ 1): the last n bytes.
    Suffix(u64),
}

/// What a download request's range headers ask of the cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ranged {
    /// No range: the whole image.
    Whole,
    /// A range with `If-Range`: the cache has no validator that could
    /// match (Glance sends neither `ETag` nor `Last-Modified`), so, as HTTP
    /// requires, the range is ignored and the whole image sent.
    IgnoredRange,
    /// One range the cache answers.
    Single(ByteRange),
    /// Anything else: the upstream answers.
    Upstream,
}

/// A range resolved against the image size: bytes `start..=last`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Span {
    pub(crate) start: u64,
    pub(crate) last: u64,
}

impl Span {
    /// Bytes in the part.
    pub(crate) fn len(&self) -> u64 {
        self.last - self.start + 1
    }

    /// The exclusive end.
    pub(crate) fn end(&self) -> u64 {
        self.last + 1
    }
}

fn present(headers: &HeaderMap, name: header::HeaderName) -> bool {
    headers
        .get_all(name)
        .iter()
        .any(|v| !v.as_bytes().iter().all(u8::is_ascii_whitespace))
}

/// Classifies the range headers of a download.
pub(crate) fn classify(headers: &HeaderMap) -> Ranged {
    if present(headers, CONTENT_RANGE) {
        return Ranged::Upstream;
    }
    // Any Range header, even an empty one, is Glance's to judge unless it
    // is one the cache answers (Glance refuses an empty one with a 416).
    let mut values = headers.get_all(RANGE).iter();
    let range = match (values.next(), values.next()) {
        (None, _) => return Ranged::Whole,
        (Some(value), None) => value.to_str().ok().and_then(parse),
        _ => None,
    };
    match range {
        None => Ranged::Upstream,
        Some(_) if present(headers, IF_RANGE) => Ranged::IgnoredRange,
        Some(range) => Ranged::Single(range),
    }
}

/// Parses `bytes=a-b`, `bytes=a-` or `bytes=-n` (spaces, and only spaces,
/// around `=` and `-`, the unit in any case, as Glance's parser does);
/// `None` for anything else.
fn parse(value: &str) -> Option<ByteRange> {
    let (unit, spec) = value.trim().split_once('=')?;
    if !unit.trim_end_matches(' ').eq_ignore_ascii_case("bytes") {
        return None;
    }
    let (first, last) = spec.split_once('-')?;
    let number = |s: &str| -> Option<Option<u64>> {
        let s = s.trim_matches(' ');
        if s.is_empty() {
            return Some(None);
        }
        if !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse().ok().map(Some)
    };
    match (number(first)?, number(last)?) {
        (Some(a), Some(b)) if a <= b => Some(ByteRange::FromTo(a, b)),
        (Some(a), None) => Some(ByteRange::From(a)),
        (None, Some(n)) if n > 0 => Some(ByteRange::Suffix(n)),
        _ => None,
    }
}

impl ByteRange {
    /// The bytes this range means for an image of `size` (> 0) bytes, as
    /// Glance computes them; `None` when the start is at or past the end
    /// (Glance answers `416`). A suffix longer than the image is the whole
    /// image.
    pub(crate) fn resolve(self, size: u64) -> Option<Span> {
        let last_byte = size.checked_sub(1)?;
        match self {
            ByteRange::FromTo(a, b) if a < size => Some(Span {
                start: a,
                last: b.min(last_byte),
            }),
            ByteRange::From(a) if a < size => Some(Span {
                start: a,
                last: last_byte,
            }),
            ByteRange::Suffix(n) => Some(Span {
                start: size.saturating_sub(n).min(last_byte),
                last: last_byte,
            }),
            _ => None,
        }
    }
}

/// The head of a `206` for `span` of an image of `size` bytes, in Glance's
/// order: `Content-Type`, `Content-Range`, `Content-MD5` (of the whole
/// image, when known), `Content-Length` (of the part), the request id.
pub(crate) fn partial_headers(
    span: Span,
    size: u64,
    content_type: Option<&HeaderValue>,
    md5: Option<&str>,
    request_id: HeaderValue,
) -> HeaderMap {
    let mut h = HeaderMap::with_capacity(5);
    h.insert(
        header::CONTENT_TYPE,
        content_type
            .cloned()
            .unwrap_or_else(|| HeaderValue::from_static("application/octet-stream")),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("bytes {}-{}/{size}", span.start, span.last)) {
        h.insert(CONTENT_RANGE, v);
    }
    if let Some(md5) = md5.filter(|m| !m.is_empty()) {
        if let Ok(v) = HeaderValue::from_str(md5) {
            h.insert(header::HeaderName::from_static("content-md5"), v);
        }
    }
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(span.len()));
    h.insert(REQUEST_ID, request_id);
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ranged(pairs: &[(&'static str, &str)]) -> Ranged {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        classify(&h)
    }

    #[test]
    fn the_forms_glance_serves_are_answered_from_the_cache() {
        use ByteRange::*;
        for (value, want) in [
            ("bytes=0-99", FromTo(0, 99)),
            ("bytes=0-0", FromTo(0, 0)),
            ("bytes=5-", From(5)),
            ("bytes=-10", Suffix(10)),
            ("Bytes = 3 - 4", FromTo(3, 4)),
            (" bytes=7-7 ", FromTo(7, 7)),
        ] {
            assert_eq!(ranged(&[("range", value)]), Ranged::Single(want), "{value}");
        }
    }

    #[test]
    fn everything_else_goes_upstream() {
        for value in [
            "bytes=0-1,5-6",
            "bytes=5-2",
            "bytes=-0",
            "bytes=-",
            "bytes=",
            "bytes=a-b",
            "bytes=0-99garbage",
            "bytes=+1-2",
            "items=0-1",
            "0-1",
            "bytes=99999999999999999999999-",
            "garbage",
        ] {
            assert_eq!(ranged(&[("range", value)]), Ranged::Upstream, "{value}");
        }
        assert_eq!(
            ranged(&[("range", "bytes=0-1"), ("range", "bytes=2-3")]),
            Ranged::Upstream,
            "two Range headers"
        );
        assert_eq!(
            ranged(&[("content-range", "bytes 0-1/*")]),
            Ranged::Upstream,
            "Glance reads Content-Range in requests"
        );
        assert_eq!(ranged(&[]), Ranged::Whole);
        assert_eq!(
            ranged(&[("range", " ")]),
            Ranged::Upstream,
            "an empty Range is Glance's 416"
        );
        assert_eq!(
            ranged(&[("range", "bytes=\t0-9")]),
            Ranged::Upstream,
            "Glance's parser takes spaces only"
        );
        assert_eq!(
            ranged(&[("range", "bytes = 0 - 9")]),
            Ranged::Single(ByteRange::FromTo(0, 9))
        );
        assert_eq!(
            ranged(&[("range", "bytes=0-1"), ("if-range", "\"x\"")]),
            Ranged::IgnoredRange
        );
        for value in ["bytes=0-1,5-6", "items=0-1", ""] {
            assert_eq!(
                ranged(&[("range", value), ("if-range", "\"x\"")]),
                Ranged::Upstream,
                "{value:?}: a range the cache would not answer keeps Glance's answer"
            );
        }
    }

    #[test]
    fn ranges_resolve_as_glance_resolves_them() {
        use ByteRange::*;
        let span = |start, last| Some(Span { start, last });
        assert_eq!(FromTo(0, 99).resolve(1000), span(0, 99));
        assert_eq!(FromTo(0, 0).resolve(1000), span(0, 0));
        assert_eq!(FromTo(990, 5000).resolve(1000), span(990, 999));
        assert_eq!(FromTo(1000, 1000).resolve(1000), None);
        assert_eq!(From(999).resolve(1000), span(999, 999));
        assert_eq!(From(1000).resolve(1000), None);
        assert_eq!(Suffix(10).resolve(1000), span(990, 999));
        assert_eq!(Suffix(1000).resolve(1000), span(0, 999));
        assert_eq!(Suffix(5000).resolve(1000), span(0, 999));
        assert_eq!(FromTo(0, 0).resolve(0), None);
        assert_eq!(Span { start: 3, last: 5 }.len(), 3);
    }

    #[test]
    fn partial_headers_in_glance_s_order() {
        let h = partial_headers(
            Span { start: 0, last: 99 },
            1_048_576,
            None,
            Some("7bcc1cf6064c8daf12448ecb8cdc0933"),
            HeaderValue::from_static("req-1"),
        );
        let names: Vec<_> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(
            names,
            [
                "content-type",
                "content-range",
                "content-md5",
                "content-length",
                "x-openstack-request-id"
            ]
        );
        assert_eq!(h["content-range"], "bytes 0-99/1048576");
        assert_eq!(h["content-length"], "100");
    }
}
