//! Errors and warnings produced while loading configuration files.

use std::fmt;
use std::path::PathBuf;

use super::raw::Source;

/// Why a configuration could not be loaded.
///
/// Every variant names where the problem is (file and line when there is
/// one), so the message can be shown to an operator as it is.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A configuration file could not be read.
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A `--config-dir` directory could not be listed.
    #[error("cannot read config directory {}: {source}", path.display())]
    ReadDir {
        /// The directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A `GLANCE_CACHE__...` environment variable that names no option (its
    /// *value* errors are [`ConfigError::Value`]s located at the variable).
    #[error(transparent)]
    Environment(Box<EnvironmentError>),
    /// A line breaks the INI syntax rules (see [`SyntaxErrorKind`]).
    #[error(transparent)]
    Syntax(Box<SyntaxError>),
    /// A known option has a value that is not valid for it.
    #[error(transparent)]
    Value(Box<ValueError>),
    /// A `$name` / `${group.name}` reference in a value could not be resolved.
    #[error(transparent)]
    Interpolation(Box<InterpolationError>),
    /// Options that are valid one by one do not fit together (for example
    /// `management_auth = static` without `admin_tokens`).
    #[error(transparent)]
    Conflict(Box<ConflictError>),
    /// More than one of the above: every syntax error and every invalid
    /// value is reported at once, one per line, in file order.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Several(Box<Vec<ConfigError>>),
}

impl ConfigError {
    /// The errors this one stands for: itself, or each of [`ConfigError::Several`].
    ///
    /// ```
    /// use glance_cache_config::Config;
    /// let text = "[DEFAULT]\nbind_port = x\nimage_cache_max_size = 10G\n";
    /// let e = Config::from_sources(&[("glance-api.conf", text)]).unwrap_err();
    /// assert_eq!(e.errors().count(), 2);
    /// ```
    pub fn errors(&self) -> impl Iterator<Item = &ConfigError> {
        match self {
            ConfigError::Several(all) => all.iter().collect::<Vec<_>>().into_iter(),
            one => vec![one].into_iter(),
        }
    }

    /// One error, or [`ConfigError::Several`]; `None` for none.
    pub(crate) fn gather(mut errors: Vec<ConfigError>) -> Option<ConfigError> {
        match errors.len() {
            0 => None,
            1 => errors.pop(),
            _ => Some(ConfigError::Several(Box::new(errors))),
        }
    }
}

/// A line that breaks the INI syntax rules.
#[derive(Debug, thiserror::Error)]
#[error("{}:{line}: {kind}: {text:?}", path.display())]
pub struct SyntaxError {
    /// The file.
    pub path: PathBuf,
    /// The 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub kind: SyntaxErrorKind,
    /// The offending line, right-trimmed.
    pub text: String,
}

/// An environment variable with the configuration prefix that does not
/// name an option, e.g. `GLANCE_CACHE__PROXY__UPSTREM_URL`.
#[derive(Debug, thiserror::Error)]
#[error("environment {variable}: {problem}")]
pub struct EnvironmentError {
    /// The variable's name.
    pub variable: String,
    /// What is wrong with it.
    pub problem: String,
}

/// A value that is not valid for its option.
#[derive(Debug, thiserror::Error)]
#[error("{location}: [{section}] {option} = {value:?}: expected {expected}")]
pub struct ValueError {
    /// Where the value was written.
    pub location: Source,
    /// The section, as normalised (`DEFAULT` or lower case).
    pub section: String,
    /// The option name.
    pub option: String,
    /// The value after interpolation.
    pub value: String,
    /// What the option accepts.
    pub expected: String,
}

/// Options that are valid one by one but do not fit together, reported
/// against the option that asks for the others.
#[derive(Debug, thiserror::Error)]
#[error("{location}: [{section}] {option} = {value:?}: {problem}")]
pub struct ConflictError {
    /// Where the option was written ([`Source::Default`] when it was not).
    pub location: Source,
    /// The section, normalised.
    pub section: String,
    /// The option name.
    pub option: String,
    /// Its value after interpolation (never a secret).
    pub value: String,
    /// What is missing or contradicts it.
    pub problem: String,
}

/// A `$name` / `${group.name}` reference that could not be resolved.
#[derive(Debug, thiserror::Error)]
#[error(
    "{location}: [{section}] {option} = {value:?}: {problem} \"${reference}\" in interpolation \
     (write $$ or \\$ for a literal $)"
)]
pub struct InterpolationError {
    /// Where the value was written.
    pub location: Source,
    /// The section of the option whose value holds the reference.
    pub section: String,
    /// The option whose value holds the reference.
    pub option: String,
    /// The value as written.
    pub value: String,
    /// The referenced name, as written (`name` or `group.name`).
    pub reference: String,
    /// Why it could not be resolved.
    pub problem: InterpolationProblem,
}

/// The syntax rules of oslo.config's INI reader that a line can break.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SyntaxErrorKind {
    /// An indented line that does not follow an option line.
    ContinuationWithoutOption,
    /// `key = value` before any `[section]` line.
    AssignmentBeforeSection,
    /// A line starting with `[` that does not end with `]`.
    UnclosedSection,
    /// `[]`.
    EmptySectionName,
    /// A line that is not a comment, a section or an assignment.
    MissingSeparator,
    /// `= value` with nothing before the separator.
    EmptyKey,
}

impl fmt::Display for SyntaxErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::ContinuationWithoutOption => {
                "continuation line with no preceding option (indented lines continue the value \
                 of the option above them; a blank or comment line ends that value)"
            }
            Self::AssignmentBeforeSection => {
                "assignment before the first section (add a [DEFAULT] line above it)"
            }
            Self::UnclosedSection => "section header without closing ]",
            Self::EmptySectionName => "empty section name",
            Self::MissingSeparator => "expected `option = value`, `[section]` or a comment",
            Self::EmptyKey => "empty option name before '=' or ':'",
        })
    }
}

/// Why an interpolation reference could not be resolved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum InterpolationProblem {
    /// Neither a known option nor a value set in any loaded file.
    Unknown,
    /// The reference leads back to the option being resolved.
    Cycle,
}

impl fmt::Display for InterpolationProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Unknown => "unknown option",
            Self::Cycle => "circular reference",
        })
    }
}

/// Something in a configuration file that is probably a mistake but does
/// not stop the load.
///
/// Displays as `file:line: message`, e.g.
/// `glance-api.conf:12: unknown option [proxy] upstrem_url (ignored)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigWarning {
    /// The file.
    pub path: PathBuf,
    /// The 1-based line number.
    pub line: usize,
    /// What looks wrong.
    pub kind: WarningKind,
}

impl fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.path.display(), self.line, self.kind)
    }
}

/// The kinds of [`ConfigWarning`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum WarningKind {
    /// An option nobody reads, in a section where that looks like a typo.
    UnknownOption {
        /// The section, normalised.
        section: String,
        /// The option name as written.
        option: String,
        /// A known option the name probably means.
        suggestion: Option<&'static str>,
    },
    /// A section that neither this program nor Glance reads.
    UnknownSection {
        /// The section name, normalised.
        section: String,
    },
    /// `[default]` (or another spelling) instead of `[DEFAULT]`.
    NotDefaultSection {
        /// The section name as written.
        written: String,
    },
    /// An option that is set but not used, and why.
    IgnoredOption {
        /// The section, normalised.
        section: String,
        /// The option name.
        option: String,
        /// Why it is not used, and what would use it.
        reason: String,
    },
    /// A choice value accepted case-insensitively that Glance itself would
    /// misread (a mixed-case `image_cache_driver` makes Glance
    /// fall back to the sqlite driver).
    ChoiceCase {
        /// The section, normalised.
        section: String,
        /// The option name.
        option: String,
        /// The value as written.
        value: String,
    },
}

impl fmt::Display for WarningKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownOption {
                section,
                option,
                suggestion,
            } => {
                write!(f, "unknown option [{section}] {option} (ignored)")?;
                if let Some(s) = suggestion {
                    write!(
                        f,
                        "; did you mean {s}? (option names are case-sensitive and use underscores)"
                    )?;
                }
                Ok(())
            }
            Self::UnknownSection { section } => write!(f, "unknown section [{section}] (ignored)"),
            Self::IgnoredOption {
                section,
                option,
                reason,
            } => write!(f, "[{section}] {option} is ignored: {reason}"),
            Self::NotDefaultSection { written } => write!(
                f,
                "section [{written}] is not [DEFAULT] (only the upper-case spelling is the \
                 default section); its values are ignored"
            ),
            Self::ChoiceCase {
                section,
                option,
                value,
            } => write!(
                f,
                "[{section}] {option} = {value:?} is accepted case-insensitively, but Glance \
                 compares the lower-case names and would not recognise it; write it in lower case"
            ),
        }
    }
}
