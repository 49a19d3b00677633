//! Glance's error bodies: webob's HTML template, byte for byte.

use bytes::Bytes;
use http::StatusCode;

/// The reason phrase webob uses (it differs from hyper's for a few codes).
pub(crate) fn reason(status: StatusCode) -> &'static str {
    match status.as_u16() {
        413 => "Request Entity Too Large",
        414 => "Request-URI Too Long",
        416 => "Request Range Not Satisfiable",
        _ => status.canonical_reason().unwrap_or("Unknown"),
    }
}

/// webob's default explanation for `status` (used for forced statuses).
pub(crate) fn default_explanation(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "The server could not comply with the request since it is either malformed or otherwise incorrect.",
        401 => "This server could not verify that you are authorized to access the document you requested. Either you supplied the wrong credentials (e.g., bad password), or your browser does not understand how to supply the credentials required.",
        403 => "Access was denied to this resource.",
        404 => "The resource could not be found.",
        409 => "There was a conflict when trying to complete your request.",
        410 => "This resource is no longer available.  No forwarding address is given.",
        500 => "The server has either erred or is incapable of performing the requested operation.",
        502 => "Bad gateway.",
        503 => "The server is currently unavailable. Please try again at a later time.",
        504 => "The gateway has timed out.",
        _ => "The fake Glance was told to answer with this status.",
    }
}

/// webob's page for `status` with an explanation and an optional detail
/// line (`HTTPException(detail, explanation=...)`).
pub(crate) fn error_page(status: StatusCode, explanation: &str, detail: Option<&str>) -> Bytes {
    let body = format!(
        "{}<br /><br />\n{}\n\n",
        escape(explanation),
        detail.map(escape).unwrap_or_default()
    );
    page(status, &body)
}

/// webob's 405 page (its own body template).
pub(crate) fn method_not_allowed_page(method: &str) -> Bytes {
    let body = format!(
        "The method {} is not allowed for this resource. <br /><br />\n",
        escape(method)
    );
    page(StatusCode::METHOD_NOT_ALLOWED, &body)
}

fn page(status: StatusCode, body: &str) -> Bytes {
    let title = format!("{} {}", status.as_u16(), reason(status));
    Bytes::from(format!(
        "<html>\n <head>\n  <title>{title}</title>\n </head>\n <body>\n  <h1>{title}</h1>\n  {body}\n </body>\n</html>"
    ))
}

/// Python's `html.escape(s, quote=True)`.
pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_found_matches_the_transcript() {
        let b = error_page(
            StatusCode::NOT_FOUND,
            "No image found with ID ab658d60-58fa-4ca4-b7b8-c20c5c26aac9",
            None,
        );
        assert_eq!(b.len(), 181);
        assert_eq!(
            &b[..],
            b"<html>\n <head>\n  <title>404 Not Found</title>\n </head>\n <body>\n  <h1>404 Not Found</h1>\n  No image found with ID ab658d60-58fa-4ca4-b7b8-c20c5c26aac9<br /><br />\n\n\n\n </body>\n</html>"
        );
    }

    #[test]
    fn sizes_match_the_transcripts() {
        let multi = "Requests with multiple ranges are not supported in Glance. You may make multiple single-range requests instead.";
        assert_eq!(error_page(StatusCode::BAD_REQUEST, multi, None).len(), 237);
        let range = error_page(
            StatusCode::RANGE_NOT_SATISFIABLE,
            "The Range requested is not available.",
            Some("Invalid start position in Range header. Start position MUST be in the inclusive range [0, 1048575]."),
        );
        assert_eq!(range.len(), 298);
        assert_eq!(method_not_allowed_page("GET").len(), 187);
        assert_eq!(
            error_page(
                StatusCode::NOT_FOUND,
                "The resource could not be found.",
                None
            )
            .len(),
            154
        );
        let unauthorized = default_explanation(StatusCode::UNAUTHORIZED);
        assert_eq!(
            error_page(StatusCode::UNAUTHORIZED, unauthorized, None).len(),
            358
        );
    }

    #[test]
    fn escapes_like_python() {
        assert_eq!(
            escape(r#"'a' & "b" <c>"#),
            "&#x27;a&#x27; &amp; &quot;b&quot; &lt;c&gt;"
        );
    }
}
