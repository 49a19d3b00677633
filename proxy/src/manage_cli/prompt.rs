//! The `[y/N]` confirmation of the mutating commands.
//!
//! The question goes to stderr (stdout stays for results, e.g. `--format
//! json`); the answer is one line of stdin. Only `y` or `yes`, in any case,
//! proceeds; anything else, an empty line, end of input or an unreadable
//! stdin is "no".

use std::io::{BufRead, Write};

/// Asks `question [y/N] ` on stderr and reads the answer from stdin (on a
/// blocking thread). `true` only for `y`/`yes`.
pub(crate) async fn confirm(question: String) -> bool {
    tokio::task::spawn_blocking(move || {
        let stdin = std::io::stdin();
        let stderr = std::io::stderr();
        ask(&question, &mut stdin.lock(), &mut stderr.lock())
    })
    .await
    .unwrap_or(false)
}

/// Writes the prompt to `output` and reads one answer from `input`. At end
/// of input, ends the prompt's line so the terminal is left tidy.
fn ask(question: &str, input: &mut impl BufRead, output: &mut impl Write) -> bool {
    let _ = write!(output, "{question} [y/N] ");
    let _ = output.flush();
    let mut line = String::new();
    match input.read_line(&mut line) {
        Ok(0) | Err(_) => {
            let _ = writeln!(output);
            false
        }
        Ok(_) => is_yes(&line),
    }
}

/// Whether an answer means yes: `y` or `yes`, any case, surrounding
/// whitespace ignored.
fn is_yes(answer: &str) -> bool {
    let answer = answer.trim();
    answer.eq_ignore_ascii_case("y") || answer.eq_ignore_ascii_case("yes")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(input: &str) -> (bool, String) {
        let mut out = Vec::new();
        let yes = ask("Delete all cached images?", &mut input.as_bytes(), &mut out);
        (yes, String::from_utf8(out).expect("utf-8"))
    }

    #[test]
    fn only_y_or_yes_in_any_case_proceed() {
        for answer in ["y\n", "Y\n", "yes\n", "YES\n", "Yes", " y \n"] {
            assert!(run(answer).0, "{answer:?}");
        }
        for answer in ["n\n", "no\n", "\n", "yess\n", "ye\n", "sure\n", "y y\n"] {
            assert!(!run(answer).0, "{answer:?}");
        }
    }

    #[test]
    fn prompt_text_and_end_of_input() {
        let (yes, out) = run("n\n");
        assert!(!yes);
        assert_eq!(out, "Delete all cached images? [y/N] ");
        let (yes, out) = run("");
        assert!(!yes, "end of input is no");
        assert_eq!(out, "Delete all cached images? [y/N] \n");
        // Only the first line counts.
        assert!(!run("n\ny\n").0);
    }
}
