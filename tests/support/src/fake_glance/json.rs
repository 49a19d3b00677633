//! JSON the way Glance writes it: Python's `json.dumps` spacing
//! (`", "` between items, `": "` after keys).

use std::io;

use serde::Serialize;

/// Serialises `value` with Python's default separators.
///
/// Serialising the fake's own documents into a `Vec` cannot fail; should it
/// ever, the result is `null` rather than a panic.
pub(crate) fn to_vec<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    let mut ser = serde_json::Serializer::with_formatter(&mut out, PythonFormatter);
    match value.serialize(&mut ser) {
        Ok(()) => out,
        Err(e) => {
            tracing::error!(error = %e, "fake glance: JSON serialisation failed");
            b"null".to_vec()
        }
    }
}

struct PythonFormatter;

impl serde_json::ser::Formatter for PythonFormatter {
    fn begin_array_value<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        if first {
            Ok(())
        } else {
            w.write_all(b", ")
        }
    }

    fn begin_object_key<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        if first {
            Ok(())
        } else {
            w.write_all(b", ")
        }
    }

    fn begin_object_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        w.write_all(b": ")
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn python_spacing() {
        let v = serde_json::json!({"a": [1, 2], "b": {"c": null}, "d": []});
        assert_eq!(
            String::from_utf8(super::to_vec(&v)).unwrap(),
            r#"{"a": [1, 2], "b": {"c": null}, "d": []}"#
        );
    }
}
