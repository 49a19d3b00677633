//! The Prometheus text exposition format (version 0.0.4), written by hand.

use std::fmt::{self, Write};

/// The `Content-Type` of the text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A metric family's `# TYPE`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// Writes metric families: `# HELP`, `# TYPE`, then samples.
pub(crate) struct Exposition<'a, W> {
    out: &'a mut W,
}

impl<'a, W: Write> Exposition<'a, W> {
    pub(crate) fn new(out: &'a mut W) -> Self {
        Exposition { out }
    }

    /// Starts a family. `name` must be a valid metric name (a constant).
    pub(crate) fn family(&mut self, name: &str, kind: Kind, help: &str) -> fmt::Result {
        debug_assert!(valid_name(name), "{name}");
        self.out.write_str("# HELP ")?;
        self.out.write_str(name)?;
        self.out.write_char(' ')?;
        escape(self.out, help, false)?;
        writeln!(self.out, "\n# TYPE {name} {}", kind.as_str())
    }

    /// One sample line; label names must be valid (constants), label values
    /// are escaped.
    pub(crate) fn sample(
        &mut self,
        name: &str,
        labels: &[(&str, &str)],
        value: u64,
    ) -> fmt::Result {
        self.out.write_str(name)?;
        if !labels.is_empty() {
            self.out.write_char('{')?;
            for (i, (label, value)) in labels.iter().enumerate() {
                debug_assert!(valid_name(label) && !label.contains(':'), "{label}");
                if i > 0 {
                    self.out.write_char(',')?;
                }
                self.out.write_str(label)?;
                self.out.write_str("=\"")?;
                escape(self.out, value, true)?;
                self.out.write_char('"')?;
            }
            self.out.write_char('}')?;
        }
        writeln!(self.out, " {value}")
    }

    /// A sample with a value that is not an integer (a histogram's `_sum`,
    /// a bucket's `le`).
    pub(crate) fn sample_f64(
        &mut self,
        name: &str,
        labels: &[(&str, &str)],
        value: f64,
    ) -> fmt::Result {
        self.out.write_str(name)?;
        for (i, (label, v)) in labels.iter().enumerate() {
            self.out.write_char(if i == 0 { '{' } else { ',' })?;
            self.out.write_str(label)?;
            self.out.write_str("=\"")?;
            escape(self.out, v, true)?;
            self.out.write_char('"')?;
        }
        if !labels.is_empty() {
            self.out.write_char('}')?;
        }
        writeln!(self.out, " {value}")
    }

    /// A family with a single unlabelled sample.
    pub(crate) fn single(&mut self, name: &str, kind: Kind, help: &str, value: u64) -> fmt::Result {
        self.family(name, kind, help)?;
        self.sample(name, &[], value)
    }
}

/// `\` → `\\`, newline → `\n`, and in label values also `"` → `\"`.
fn escape<W: Write>(out: &mut W, text: &str, label_value: bool) -> fmt::Result {
    for c in text.chars() {
        match c {
            '\\' => out.write_str("\\\\")?,
            '\n' => out.write_str("\\n")?,
            '"' if label_value => out.write_str("\\\"")?,
            c => out.write_char(c)?,
        }
    }
    Ok(())
}

/// `[a-zA-Z_:][a-zA-Z0-9_:]*`
pub(crate) fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_and_samples() {
        let mut s = String::new();
        let mut e = Exposition::new(&mut s);
        e.family("x_total", Kind::Counter, "A \\ help\ntext with \"quotes\".")
            .unwrap();
        e.sample("x_total", &[("a", "b\"c\\d\ne"), ("f", "")], 3)
            .unwrap();
        e.single("y", Kind::Gauge, "Y.", 0).unwrap();
        assert_eq!(
            s,
            "# HELP x_total A \\\\ help\\ntext with \"quotes\".\n\
             # TYPE x_total counter\n\
             x_total{a=\"b\\\"c\\\\d\\ne\",f=\"\"} 3\n\
             # HELP y Y.\n\
             # TYPE y gauge\n\
             y 0\n"
        );
    }

    #[test]
    fn names() {
        assert!(valid_name("glance_cache_hits_total"));
        assert!(valid_name("a:b_c1"));
        assert!(!valid_name("1abc"));
        assert!(!valid_name("a-b"));
        assert!(!valid_name(""));
    }
}
