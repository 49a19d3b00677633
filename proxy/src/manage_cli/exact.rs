//! The numbers of a JSON document exactly as written.
//!
//! `serde_json` without its `float_roundtrip` feature may read a float one
//! unit in the last place off (`1795508789.9710975` has 17 significant
//! digits, more than an `f64` holds exactly, and is scaled in two
//! roundings). For a timestamp that moves the rounded microsecond Glance
//! prints. This scanner keeps each scalar's text, so that the number can be
//! read with `str::parse::<f64>`, which rounds correctly, like Python's
//! `json` module does.

/// Deepest nesting accepted.
const MAX_DEPTH: usize = 32;

/// A JSON value with its scalars as written.
#[derive(Debug, PartialEq)]
pub(crate) enum Node<'a> {
    /// A number, string (with its quotes), `true`, `false` or `null`.
    Scalar(&'a str),
    /// An array.
    Array(Vec<Node<'a>>),
    /// An object: keys as written between the quotes (escapes not decoded).
    Object(Vec<(&'a str, Node<'a>)>),
}

impl<'a> Node<'a> {
    /// The value of `key` in an object.
    pub(crate) fn get(&self, key: &str) -> Option<&Node<'a>> {
        match self {
            Node::Object(members) => members.iter().find(|(k, _)| *k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The elements of an array (none for anything else).
    pub(crate) fn items(&self) -> &[Node<'a>] {
        match self {
            Node::Array(items) => items,
            _ => &[],
        }
    }

    /// A number, correctly rounded to the nearest `f64`.
    pub(crate) fn number(&self) -> Option<f64> {
        match self {
            Node::Scalar(text) if text.starts_with(|c: char| c == '-' || c.is_ascii_digit()) => {
                text.parse().ok()
            }
            _ => None,
        }
    }
}

/// Scans `text` (one JSON document). `None` when it is not well-formed
/// enough to scan, or nested deeper than 32 levels.
pub(crate) fn parse(text: &str) -> Option<Node<'_>> {
    let mut s = Scanner { text, pos: 0 };
    let node = s.value(0)?;
    s.skip_ws();
    (s.pos == text.len()).then_some(node)
}

struct Scanner<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Scanner<'a> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    fn eat(&mut self, byte: u8) -> bool {
        self.skip_ws();
        if self.peek() == Some(byte) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn value(&mut self, depth: usize) -> Option<Node<'a>> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.skip_ws();
        match self.peek()? {
            b'[' => {
                self.pos += 1;
                let mut items = Vec::new();
                if self.eat(b']') {
                    return Some(Node::Array(items));
                }
                loop {
                    items.push(self.value(depth + 1)?);
                    if self.eat(b']') {
                        return Some(Node::Array(items));
                    }
                    if !self.eat(b',') {
                        return None;
                    }
                }
            }
            b'{' => {
                self.pos += 1;
                let mut members = Vec::new();
                if self.eat(b'}') {
                    return Some(Node::Object(members));
                }
                loop {
                    self.skip_ws();
                    let key = self.string()?;
                    let key = &key[1..key.len() - 1];
                    if !self.eat(b':') {
                        return None;
                    }
                    members.push((key, self.value(depth + 1)?));
                    if self.eat(b'}') {
                        return Some(Node::Object(members));
                    }
                    if !self.eat(b',') {
                        return None;
                    }
                }
            }
            b'"' => self.string().map(Node::Scalar),
            _ => {
                let start = self.pos;
                while matches!(
                    self.peek(),
                    Some(b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E' | b'a'..=b'z')
                ) {
                    self.pos += 1;
                }
                (self.pos > start).then(|| Node::Scalar(&self.text[start..self.pos]))
            }
        }
    }

    /// A string token at the current position, quotes included.
    fn string(&mut self) -> Option<&'a str> {
        let start = self.pos;
        if self.peek() != Some(b'"') {
            return None;
        }
        self.pos += 1;
        loop {
            match self.peek()? {
                b'"' => {
                    self.pos += 1;
                    return Some(&self.text[start..self.pos]);
                }
                b'\\' => self.pos += 2,
                _ => self.pos += 1,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_read_exactly() {
        let doc = r#"{"cached_images": [{"image_id": "a\"b", "last_accessed": 1795508789.9710975,
            "size": 9, "x": [true, null, {}], "last_modified": -1.5e3}], "q": []}"#;
        let node = parse(doc).expect("scans");
        let rows = node.get("cached_images").expect("rows").items();
        assert_eq!(rows.len(), 1);
        let exact: f64 = "1795508789.9710975".parse().expect("f64");
        assert_eq!(
            rows[0].get("last_accessed").and_then(Node::number),
            Some(exact)
        );
        assert_eq!(
            rows[0].get("last_modified").and_then(Node::number),
            Some(-1500.0)
        );
        assert_eq!(rows[0].get("image_id"), Some(&Node::Scalar(r#""a\"b""#)));
        assert_eq!(rows[0].get("image_id").and_then(Node::number), None);
        assert_eq!(rows[0].get("x").map(|x| x.items().len()), Some(3));
        assert!(node.get("q").expect("q").items().is_empty());
        assert!(node.get("missing").is_none());
    }

    #[test]
    fn malformed_or_too_deep_documents_are_none() {
        for bad in [
            "",
            "{",
            "[1,",
            "[1 2]",
            r#"{"a" 1}"#,
            r#"{"a": "unterminated}"#,
            "[] []",
            &"[".repeat(40),
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
        assert!(parse(&format!("{}{}", "[".repeat(10), "]".repeat(10))).is_some());
    }
}
