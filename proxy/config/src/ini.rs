//! A line-for-line port of oslo.config's INI reader (`oslo_config/iniparser.py`
//! plus the `ConfigParser` subclass in `cfg.py`).
//!
//! The rules:
//!
//! - Lines are right-trimmed. A blank line ends a multi-line value.
//! - A line starting with `#` or `;` is a comment; there are no inline comments.
//! - A line starting with a space or tab continues the previous value; the
//!   pieces (left-trimmed) are joined with `\n`. With no preceding option it
//!   is an error.
//! - `[name]` starts a section; it must end with `]` and the name must not be
//!   empty. The name is kept as written (no trimming).
//! - Otherwise the line is `key = value` or `key: value`, split at whichever
//!   of `=` and `:` comes first. Key and value are trimmed, and one pair of
//!   matching quotes around the value is removed.
//! - An assignment before the first section is an error.
//!
//! Deliberate difference: a UTF-8 byte order mark at the start of the text is
//! skipped (oslo.config would report the first line as a syntax error).

use std::path::Path;

use super::error::{ConfigError, SyntaxError, SyntaxErrorKind};

/// One `key = value` assignment, with its continuation lines joined.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Entry {
    /// The section name as written between the brackets.
    pub(crate) section: String,
    /// The key, trimmed, case kept.
    pub(crate) key: String,
    /// The value: first piece trimmed and unquoted, continuation pieces
    /// left-trimmed, joined with `\n`.
    pub(crate) value: String,
    /// The 1-based line of the key.
    pub(crate) line: usize,
}

/// A `[section]` line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Header {
    /// The name as written between the brackets.
    pub(crate) name: String,
    /// The 1-based line number.
    pub(crate) line: usize,
}

/// Everything found in one file, in file order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Parsed {
    pub(crate) headers: Vec<Header>,
    pub(crate) entries: Vec<Entry>,
}

/// Python's `str.isspace()` for one character (it also counts the
/// information separators U+001C..U+001F, which Rust does not).
fn is_py_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// The assignment being collected: key, line, value pieces.
struct Pending {
    key: String,
    line: usize,
    pieces: Vec<String>,
}

/// Parses `text` (the contents of `path`, which is used only in errors).
pub(crate) fn parse(path: &Path, text: &str) -> Result<Parsed, ConfigError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut out = Parsed::default();
    let mut section: Option<String> = None;
    let mut pending: Option<Pending> = None;

    let error = |line: usize, kind: SyntaxErrorKind, text: &str| {
        ConfigError::Syntax(Box::new(SyntaxError {
            path: path.to_path_buf(),
            line,
            kind,
            text: text.to_owned(),
        }))
    };
    // Emits the pending assignment, like iniparser's `_assignment`.
    let flush = |pending: &mut Option<Pending>,
                 section: &Option<String>,
                 out: &mut Parsed|
     -> Result<(), ConfigError> {
        let Some(p) = pending.take() else {
            return Ok(());
        };
        let Some(section) = section else {
            return Err(ConfigError::Syntax(Box::new(SyntaxError {
                path: path.to_path_buf(),
                line: p.line,
                kind: SyntaxErrorKind::AssignmentBeforeSection,
                text: p.key,
            })));
        };
        out.entries.push(Entry {
            section: section.clone(),
            key: p.key,
            value: p.pieces.join("\n"),
            line: p.line,
        });
        Ok(())
    };

    for (index, raw) in text.split('\n').enumerate() {
        let lineno = index + 1;
        let line = raw.trim_end_matches(is_py_space);
        if line.is_empty() {
            flush(&mut pending, &section, &mut out)?;
            continue;
        }
        if line.starts_with([' ', '\t']) {
            match pending.as_mut() {
                Some(p) => p
                    .pieces
                    .push(line.trim_start_matches(is_py_space).to_owned()),
                None => {
                    return Err(error(
                        lineno,
                        SyntaxErrorKind::ContinuationWithoutOption,
                        line,
                    ))
                }
            }
            continue;
        }
        flush(&mut pending, &section, &mut out)?;

        if line.starts_with('[') {
            let Some(inner) = line.strip_suffix(']') else {
                return Err(error(lineno, SyntaxErrorKind::UnclosedSection, line));
            };
            // "[]" and "[" + "]" of length <= 2: no name.
            let name = inner.strip_prefix('[').unwrap_or(inner);
            if name.is_empty() {
                return Err(error(lineno, SyntaxErrorKind::EmptySectionName, line));
            }
            out.headers.push(Header {
                name: name.to_owned(),
                line: lineno,
            });
            section = Some(name.to_owned());
        } else if line.starts_with(['#', ';']) {
            // Comment.
        } else {
            let (key, value) = split_key_value(line)
                .ok_or_else(|| error(lineno, SyntaxErrorKind::MissingSeparator, line))?;
            if key.is_empty() {
                return Err(error(lineno, SyntaxErrorKind::EmptyKey, line));
            }
            pending = Some(Pending {
                key: key.to_owned(),
                line: lineno,
                pieces: vec![value.to_owned()],
            });
        }
    }
    flush(&mut pending, &section, &mut out)?;
    Ok(out)
}

/// Splits at the first `=` or `:`, trims both sides and removes one pair of
/// matching surrounding quotes from the value.
fn split_key_value(line: &str) -> Option<(&str, &str)> {
    let at = line.find(['=', ':'])?;
    let key = line[..at].trim_matches(is_py_space);
    let value = line[at + 1..].trim_matches(is_py_space);
    Some((key, strip_quotes(value)))
}

/// iniparser: `if value and value[0] == value[-1] and value.startswith(("\"", "'"))`.
/// A lone quote character therefore becomes the empty string.
fn strip_quotes(value: &str) -> &str {
    for q in ['"', '\''] {
        if value.starts_with(q) && value.ends_with(q) {
            return value.get(1..value.len() - 1).unwrap_or("");
        }
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_ok(text: &str) -> Parsed {
        parse(Path::new("t.conf"), text).expect("parses")
    }

    fn entries(text: &str) -> Vec<(String, String, String, usize)> {
        parse_ok(text)
            .entries
            .into_iter()
            .map(|e| (e.section, e.key, e.value, e.line))
            .collect()
    }

    fn kind_of(text: &str) -> (SyntaxErrorKind, usize) {
        match parse(Path::new("t.conf"), text) {
            Err(ConfigError::Syntax(e)) => (e.kind, e.line),
            other => panic!("expected a syntax error, got {other:?}"),
        }
    }

    fn e(s: &str, k: &str, v: &str, l: usize) -> (String, String, String, usize) {
        (s.into(), k.into(), v.into(), l)
    }

    #[test]
    fn comments_hash_and_semicolon() {
        let got = entries("# c\n[DEFAULT]\n; other\na = 1\n#b = 2\n;c = 3\n");
        assert_eq!(got, vec![e("DEFAULT", "a", "1", 4)]);
    }

    #[test]
    fn no_inline_comments() {
        assert_eq!(
            entries("[s]\nk = v # note\nj = w ; x\n"),
            vec![e("s", "k", "v # note", 2), e("s", "j", "w ; x", 3)]
        );
    }

    #[test]
    fn equals_or_colon_whichever_first() {
        assert_eq!(
            entries("[s]\na = b:c\nd: e=f\nurl = http://h:1/\ng:h\n"),
            vec![
                e("s", "a", "b:c", 2),
                e("s", "d", "e=f", 3),
                e("s", "url", "http://h:1/", 4),
                e("s", "g", "h", 5),
            ]
        );
    }

    #[test]
    fn key_and_value_trimmed() {
        assert_eq!(entries("[s]\n  \nk\t=\t v \t\n"), vec![e("s", "k", "v", 3)]);
    }

    #[test]
    fn one_pair_of_matching_quotes_removed() {
        assert_eq!(
            entries("[s]\na = \"x y\"\nb = 'x'\nc = \"'x'\"\nd = \"x'\ne = 'single' trailing\nf = \"\nh = \"\"\"\"\n"),
            vec![
                e("s", "a", "x y", 2),
                e("s", "b", "x", 3),
                e("s", "c", "'x'", 4),
                e("s", "d", "\"x'", 5),
                e("s", "e", "'single' trailing", 6),
                e("s", "f", "", 7),
                e("s", "h", "\"\"", 8),
            ]
        );
    }

    #[test]
    fn continuation_lines_joined_with_newline() {
        assert_eq!(
            entries("[s]\nk = one\n  two\n\tthree  \nj = x\n"),
            vec![e("s", "k", "one\ntwo\nthree", 2), e("s", "j", "x", 5)]
        );
    }

    #[test]
    fn continuation_after_empty_first_piece() {
        assert_eq!(
            entries("[s]\nk =\n  a\n  b\n"),
            vec![e("s", "k", "\na\nb", 2)]
        );
    }

    #[test]
    fn continuation_pieces_keep_quotes() {
        assert_eq!(
            entries("[s]\nk = \"a\"\n  \"b\"\n"),
            vec![e("s", "k", "a\n\"b\"", 2)]
        );
    }

    #[test]
    fn blank_line_ends_a_value() {
        assert_eq!(
            kind_of("[s]\nk = a\n\n  b\n"),
            (SyntaxErrorKind::ContinuationWithoutOption, 4)
        );
        // A whitespace-only line is blank too.
        assert_eq!(
            kind_of("[s]\nk = a\n   \n  b\n"),
            (SyntaxErrorKind::ContinuationWithoutOption, 4)
        );
    }

    #[test]
    fn comment_line_ends_a_value() {
        assert_eq!(
            kind_of("[s]\nk = a\n# c\n  b\n"),
            (SyntaxErrorKind::ContinuationWithoutOption, 4)
        );
    }

    #[test]
    fn indented_comment_is_a_continuation() {
        assert_eq!(
            entries("[s]\nk = a\n  # c\n"),
            vec![e("s", "k", "a\n# c", 2)]
        );
        assert_eq!(
            kind_of("[s]\n  # c\nk = a\n"),
            (SyntaxErrorKind::ContinuationWithoutOption, 2)
        );
    }

    #[test]
    fn continuation_without_option() {
        assert_eq!(
            kind_of("[s]\n  stray\n"),
            (SyntaxErrorKind::ContinuationWithoutOption, 2)
        );
        assert_eq!(
            kind_of("  stray\n"),
            (SyntaxErrorKind::ContinuationWithoutOption, 1)
        );
    }

    #[test]
    fn assignment_before_section() {
        assert_eq!(
            kind_of("# header\nk = v\n[DEFAULT]\n"),
            (SyntaxErrorKind::AssignmentBeforeSection, 2)
        );
    }

    #[test]
    fn section_without_closing_bracket() {
        assert_eq!(kind_of("[DEFAULT\n"), (SyntaxErrorKind::UnclosedSection, 1));
        assert_eq!(kind_of("[s] # c\n"), (SyntaxErrorKind::UnclosedSection, 1));
        assert_eq!(kind_of("[\n"), (SyntaxErrorKind::UnclosedSection, 1));
    }

    #[test]
    fn empty_section_name() {
        assert_eq!(kind_of("[]\n"), (SyntaxErrorKind::EmptySectionName, 1));
    }

    #[test]
    fn section_names_kept_as_written() {
        let p = parse_ok("[ Proxy ]\na=1\n[]]\nb=2\n");
        let names: Vec<_> = p.headers.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(names, vec![" Proxy ", "]"]);
        assert_eq!(p.entries[1].section, "]");
    }

    #[test]
    fn missing_separator_and_empty_key() {
        assert_eq!(
            kind_of("[s]\njust words\n"),
            (SyntaxErrorKind::MissingSeparator, 2)
        );
        assert_eq!(kind_of("[s]\n= v\n"), (SyntaxErrorKind::EmptyKey, 2));
        // An indented line is a continuation, never an assignment.
        assert_eq!(
            kind_of("[s]\n = v\n"),
            (SyntaxErrorKind::ContinuationWithoutOption, 2)
        );
        assert_eq!(kind_of("[s]\n: v\n"), (SyntaxErrorKind::EmptyKey, 2));
    }

    #[test]
    fn crlf_and_bom_and_no_trailing_newline() {
        assert_eq!(
            entries("\u{feff}[s]\r\nk = v\r\n  w\r\nj = x"),
            vec![e("s", "k", "v\nw", 2), e("s", "j", "x", 4)]
        );
    }

    #[test]
    fn repeated_keys_and_sections_all_kept_in_order() {
        assert_eq!(
            entries("[s]\nk = 1\n[t]\nk = 2\n[s]\nk = 3\n"),
            vec![
                e("s", "k", "1", 2),
                e("t", "k", "2", 4),
                e("s", "k", "3", 6)
            ]
        );
    }

    #[test]
    fn keys_case_kept() {
        assert_eq!(
            entries("[s]\nImage_Cache_Dir = x\n"),
            vec![e("s", "Image_Cache_Dir", "x", 2)]
        );
    }

    #[test]
    fn error_message_names_file_and_line() {
        let err = parse(
            Path::new("/etc/glance/glance-api.conf"),
            "[DEFAULT]\na = 1\n\n  b\n",
        )
        .expect_err("fails");
        let msg = err.to_string();
        assert!(
            msg.starts_with(
                "/etc/glance/glance-api.conf:4: continuation line with no preceding option"
            ),
            "{msg}"
        );
        assert!(msg.ends_with("\"  b\""), "{msg}");
    }
}
