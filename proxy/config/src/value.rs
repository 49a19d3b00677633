//! Value conversions with oslo.config's rules: Python `int()`, booleans,
//! choices, and `$name` / `${group.name}` interpolation.

/// Why a text is not an integer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum IntError {
    /// Empty after trimming (oslo.config would give `None`).
    Empty,
    /// Not a Python integer literal (this includes unit suffixes like `10G`).
    Invalid,
    /// Well-formed, but outside `i128` (so outside every range we accept).
    TooLarge,
}

/// Python's whitespace (`str.strip()` with no argument).
fn is_py_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// Parses like Python's `int(text)` in base 10, ASCII digits only: optional
/// surrounding whitespace, an optional sign, digits with single `_` between
/// digits (`10_737_418_240`), leading zeros allowed.
pub(crate) fn parse_python_int(text: &str) -> Result<i128, IntError> {
    let s = text.trim_matches(is_py_space);
    if s.is_empty() {
        return Err(IntError::Empty);
    }
    let (negative, digits) = match s.as_bytes()[0] {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let bytes = digits.as_bytes();
    if bytes.is_empty() || !bytes[0].is_ascii_digit() || !bytes[bytes.len() - 1].is_ascii_digit() {
        return Err(IntError::Invalid);
    }
    let mut n: i128 = 0;
    let mut previous_underscore = false;
    let mut too_large = false;
    for &b in bytes {
        match b {
            b'_' if !previous_underscore => previous_underscore = true,
            b'0'..=b'9' => {
                previous_underscore = false;
                let d = i128::from(b - b'0');
                match n.checked_mul(10).and_then(|n| n.checked_add(d)) {
                    Some(next) => n = next,
                    None => too_large = true,
                }
            }
            _ => return Err(IntError::Invalid),
        }
    }
    if too_large {
        return Err(IntError::TooLarge);
    }
    Ok(if negative { -n } else { n })
}

/// oslo.config's `Boolean` type: case-insensitive `true`/`1`/`on`/`yes` and
/// `false`/`0`/`off`/`no`; anything else (including surrounding spaces kept
/// by quotes) is `None`.
pub(crate) fn parse_bool(text: &str) -> Option<bool> {
    let lower = text.to_lowercase();
    match lower.as_str() {
        "true" | "1" | "on" | "yes" => Some(true),
        "false" | "0" | "off" | "no" => Some(false),
        _ => None,
    }
}

/// Python's `str(bool)`, for interpolating a boolean option.
pub(crate) fn render_bool(b: bool) -> &'static str {
    if b {
        "True"
    } else {
        "False"
    }
}

/// Finds `text` among `choices` (exactly, or ignoring ASCII case) and
/// returns the canonical spelling.
pub(crate) fn match_choice(
    text: &str,
    choices: &'static [&'static str],
    ignore_case: bool,
) -> Option<&'static str> {
    choices.iter().copied().find(|c| {
        if ignore_case {
            c.eq_ignore_ascii_case(text)
        } else {
            *c == text
        }
    })
}

/// Substitutes `$name` and `${name}` references like oslo.config: first
/// every `\$` becomes `$$`, then Python's `string.Template` rules apply with
/// the identifier pattern `[_a-z][._a-z0-9]*` (case-insensitive, so a name
/// may contain dots: `$group.name` and `${group.name}` both work). `$$`
/// gives a literal `$`. A `$` that starts no valid reference (`$1`, `$ `,
/// `${x`) is kept literally, as `safe_substitute` does.
///
/// `lookup` receives the name as written and returns its value; its error
/// stops the substitution.
pub(crate) fn interpolate<E>(
    value: &str,
    mut lookup: impl FnMut(&str) -> Result<String, E>,
) -> Result<String, E> {
    if !value.contains('$') {
        return Ok(value.to_owned());
    }
    let value = value.replace("\\$", "$$");
    let mut out = String::with_capacity(value.len());
    let mut rest = value.as_str();
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(len) = identifier_len(after) {
            out.push_str(&lookup(&after[..len])?);
            rest = &after[len..];
        } else if let Some(len) = after.strip_prefix('{').and_then(identifier_len) {
            let name = &after[1..1 + len];
            match after[1 + len..].strip_prefix('}') {
                Some(tail) => {
                    out.push_str(&lookup(name)?);
                    rest = tail;
                }
                None => {
                    out.push('$');
                    rest = after;
                }
            }
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// The length of the identifier `[_a-zA-Z][._a-zA-Z0-9]*` at the start of `s`.
fn identifier_len(s: &str) -> Option<usize> {
    let bytes = s.as_bytes();
    match bytes.first() {
        Some(b) if b.is_ascii_alphabetic() || *b == b'_' => {}
        _ => return None,
    }
    Some(
        bytes
            .iter()
            .take_while(|b| b.is_ascii_alphanumeric() || **b == b'_' || **b == b'.')
            .count(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_int_plain_signs_and_spaces() {
        assert_eq!(parse_python_int("0"), Ok(0));
        assert_eq!(parse_python_int("10737418240"), Ok(10_737_418_240));
        assert_eq!(parse_python_int("+5"), Ok(5));
        assert_eq!(parse_python_int("-5"), Ok(-5));
        assert_eq!(parse_python_int(" \t42 "), Ok(42));
        assert_eq!(parse_python_int("007"), Ok(7));
        assert_eq!(parse_python_int("-0"), Ok(0));
    }

    #[test]
    fn python_int_underscores() {
        assert_eq!(parse_python_int("10_737_418_240"), Ok(10_737_418_240));
        assert_eq!(parse_python_int("1_0"), Ok(10));
        assert_eq!(parse_python_int("-1_000"), Ok(-1000));
        for bad in ["_1", "1_", "1__0", "+_1", "_", "1_ 0"] {
            assert_eq!(parse_python_int(bad), Err(IntError::Invalid), "{bad}");
        }
    }

    #[test]
    fn python_int_rejects_suffixes_and_other_forms() {
        for bad in [
            "10G", "10 G", "1k", "1e3", "1.0", "0x10", "0b1", "+", "-", "+-1", "- 1", "1 2", "ten",
            "١",
        ] {
            assert_eq!(parse_python_int(bad), Err(IntError::Invalid), "{bad}");
        }
    }

    #[test]
    fn python_int_empty_and_huge() {
        assert_eq!(parse_python_int(""), Err(IntError::Empty));
        assert_eq!(parse_python_int("   "), Err(IntError::Empty));
        let huge = "9".repeat(50);
        assert_eq!(parse_python_int(&huge), Err(IntError::TooLarge));
        assert_eq!(
            parse_python_int(&format!("-{huge}")),
            Err(IntError::TooLarge)
        );
        assert_eq!(
            parse_python_int("18446744073709551615"),
            Ok(i128::from(u64::MAX))
        );
    }

    #[test]
    fn bools() {
        for t in ["true", "TRUE", "True", "1", "on", "On", "yes", "YES"] {
            assert_eq!(parse_bool(t), Some(true), "{t}");
        }
        for f in ["false", "False", "0", "off", "OFF", "no", "No"] {
            assert_eq!(parse_bool(f), Some(false), "{f}");
        }
        for bad in ["", "y", "n", "2", "enabled", " true", "t"] {
            assert_eq!(parse_bool(bad), None, "{bad:?}");
        }
        assert_eq!(render_bool(true), "True");
        assert_eq!(render_bool(false), "False");
    }

    #[test]
    fn choices() {
        const C: &[&str] = &["centralized_db", "sqlite", "xattr"];
        assert_eq!(match_choice("sqlite", C, false), Some("sqlite"));
        assert_eq!(match_choice("SQLite", C, false), None);
        assert_eq!(match_choice("SQLite", C, true), Some("sqlite"));
        assert_eq!(match_choice("sqlite ", C, true), None);
        assert_eq!(match_choice("", C, true), None);
    }

    fn subst(value: &str) -> Result<String, String> {
        interpolate(value, |name| match name {
            "a" => Ok("A".to_owned()),
            "dir" => Ok("/var/lib/glance".to_owned()),
            "proxy.x" => Ok("X".to_owned()),
            "Mixed_Case9" => Ok("M".to_owned()),
            other => Err(other.to_owned()),
        })
    }

    #[test]
    fn interpolation_forms() {
        assert_eq!(subst("plain"), Ok("plain".into()));
        assert_eq!(subst("$a"), Ok("A".into()));
        assert_eq!(subst("${a}"), Ok("A".into()));
        assert_eq!(
            subst("$dir/image-cache"),
            Ok("/var/lib/glance/image-cache".into())
        );
        assert_eq!(subst("${a}b"), Ok("Ab".into()));
        assert_eq!(subst("x$a-y"), Ok("xA-y".into()));
        assert_eq!(subst("${proxy.x}"), Ok("X".into()));
        assert_eq!(subst("$proxy.x"), Ok("X".into()));
        assert_eq!(subst("$Mixed_Case9"), Ok("M".into()));
        assert_eq!(subst("$a$a"), Ok("AA".into()));
    }

    #[test]
    fn interpolation_escapes() {
        assert_eq!(subst("$$"), Ok("$".into()));
        assert_eq!(subst("$$a"), Ok("$a".into()));
        assert_eq!(subst("\\$a"), Ok("$a".into()));
        assert_eq!(subst("pa$$word"), Ok("pa$word".into()));
        assert_eq!(subst("\\\\$a"), Ok("\\$a".into()));
        assert_eq!(subst("$$$a"), Ok("$A".into()));
    }

    #[test]
    fn interpolation_invalid_placeholders_stay_literal() {
        assert_eq!(subst("$"), Ok("$".into()));
        assert_eq!(subst("cost $5"), Ok("cost $5".into()));
        assert_eq!(subst("$ a"), Ok("$ a".into()));
        assert_eq!(subst("${a"), Ok("${a".into()));
        assert_eq!(subst("${}"), Ok("${}".into()));
        assert_eq!(subst("${1}"), Ok("${1}".into()));
    }

    #[test]
    fn interpolation_unknown_names_reported() {
        assert_eq!(subst("$nope"), Err("nope".into()));
        assert_eq!(subst("${nope}/x"), Err("nope".into()));
        // The identifier pattern includes dots, so a trailing dot is part of the name.
        assert_eq!(subst("$a."), Err("a.".into()));
        assert_eq!(subst("${group.name}"), Err("group.name".into()));
    }
}
