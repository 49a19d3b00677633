//! Every parsed assignment of every loaded file, with where it came from.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use super::ini::{Header, Parsed};

/// Where an effective value came from.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Source {
    /// Not set in any loaded file: the built-in default.
    Default,
    /// Set in a file.
    File {
        /// The file, as it was given to the loader.
        path: PathBuf,
        /// The 1-based line of the option name.
        line: usize,
    },
    /// Set by an environment variable `GLANCE_CACHE__<SECTION>__<OPTION>`
    /// (see [`Config::load_with_env`](super::Config::load_with_env)).
    Environment {
        /// The variable's name, as it was found.
        variable: String,
    },
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Default => f.write_str("default"),
            Source::File { path, line } => write!(f, "{}:{line}", path.display()),
            Source::Environment { variable } => write!(f, "environment {variable}"),
        }
    }
}

/// One assignment as written, after the INI rules (continuations joined,
/// quotes stripped) but before interpolation and type conversion.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawValue {
    /// The value.
    pub value: String,
    /// The file and line it was written on, or the environment variable
    /// that set it (never [`Source::Default`]).
    pub source: Source,
}

/// A `[section]` line as written, for diagnostics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SectionLine {
    pub(crate) written: String,
    pub(crate) normalized: String,
    pub(crate) path: PathBuf,
    pub(crate) line: usize,
}

/// One assignment with its location, in load order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RawEntry {
    pub(crate) section: String,
    pub(crate) key: String,
    pub(crate) value: RawValue,
}

/// Every `(section, key)` of every loaded file, with all its values in load
/// order (earlier files first, then file order) and their provenance.
///
/// Section names are normalised like oslo.config does: `DEFAULT` stays as is,
/// every other name is lower-cased (so `[default]` is a section of its own).
/// Keys are case-sensitive. Lookups normalise the section argument the same
/// way.
///
/// `Debug` shows every assignment with its source, but not the values of
/// credentials (secret options, and keys named like `password`,
/// `*_secret*`, `*_token`, `*_key`, `connection` or `transport_url`).
#[derive(Clone, Default)]
pub struct RawConfig {
    pub(crate) entries: Vec<RawEntry>,
    pub(crate) sections: Vec<SectionLine>,
    index: BTreeMap<(String, String), Vec<usize>>,
}

impl fmt::Debug for RawConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct Entry<'a>(&'a RawEntry);
        impl fmt::Debug for Entry<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let e = self.0;
                write!(
                    f,
                    "[{}] {} = {:?} ({})",
                    e.section,
                    e.key,
                    super::load::shown(&e.section, &e.key, &e.value.value),
                    e.value.source
                )
            }
        }
        f.debug_struct("RawConfig")
            .field(
                "entries",
                &self.entries.iter().map(Entry).collect::<Vec<_>>(),
            )
            .field("sections", &self.sections())
            .finish()
    }
}

/// oslo.config's `_normalize_group_name`.
pub(crate) fn normalize_section(name: &str) -> String {
    if name == "DEFAULT" {
        name.to_owned()
    } else {
        name.to_lowercase()
    }
}

impl RawConfig {
    /// Adds one parsed file. Later files override earlier ones.
    pub(crate) fn push_file(&mut self, path: PathBuf, parsed: Parsed) {
        for Header { name, line } in parsed.headers {
            self.sections.push(SectionLine {
                normalized: normalize_section(&name),
                written: name,
                path: path.clone(),
                line,
            });
        }
        for e in parsed.entries {
            let section = normalize_section(&e.section);
            let at = self.entries.len();
            self.index
                .entry((section.clone(), e.key.clone()))
                .or_default()
                .push(at);
            self.entries.push(RawEntry {
                section,
                key: e.key,
                value: RawValue {
                    value: e.value,
                    source: Source::File {
                        path: path.clone(),
                        line: e.line,
                    },
                },
            });
        }
    }

    /// Sets `[section] key` from the environment variable `variable`: its
    /// `values` (several for a multi-valued option) replace every value the
    /// files gave it.
    pub(crate) fn push_env(
        &mut self,
        section: &str,
        key: &str,
        values: Vec<String>,
        variable: &str,
    ) {
        let section = normalize_section(section);
        let mut indices = Vec::with_capacity(values.len());
        for value in values {
            indices.push(self.entries.len());
            self.entries.push(RawEntry {
                section: section.clone(),
                key: key.to_owned(),
                value: RawValue {
                    value,
                    source: Source::Environment {
                        variable: variable.to_owned(),
                    },
                },
            });
        }
        self.index.insert((section, key.to_owned()), indices);
    }

    /// The effective value of a single-valued option: the last one written.
    pub fn get(&self, section: &str, key: &str) -> Option<&RawValue> {
        self.get_all(section, key).last()
    }

    /// All values of a (multi-valued) option, in load order.
    pub fn get_all(&self, section: &str, key: &str) -> impl Iterator<Item = &RawValue> + '_ {
        self.index
            .get(&(normalize_section(section), key.to_owned()))
            .into_iter()
            .flatten()
            .map(|&i| &self.entries[i].value)
    }

    /// Whether `[section]` appears in any loaded file (normalised name).
    pub fn has_section(&self, section: &str) -> bool {
        let section = normalize_section(section);
        self.sections.iter().any(|s| s.normalized == section)
    }

    /// The keys set in `section`, each once, sorted.
    pub fn keys<'a>(&'a self, section: &str) -> impl Iterator<Item = &'a str> + 'a {
        let section = normalize_section(section);
        self.index
            .keys()
            .filter(move |(s, _)| *s == section)
            .map(|(_, k)| k.as_str())
    }

    /// The normalised names of all sections, each once, in first-seen order.
    pub fn sections(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for s in &self.sections {
            if !out.contains(&s.normalized.as_str()) {
                out.push(&s.normalized);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::ini;

    fn raw(files: &[(&str, &str)]) -> RawConfig {
        let mut raw = RawConfig::default();
        for (name, text) in files {
            raw.push_file(
                PathBuf::from(name),
                ini::parse(Path::new(name), text).expect("parses"),
            );
        }
        raw
    }

    #[test]
    fn default_section_is_case_sensitive_others_not() {
        let r = raw(&[(
            "a",
            "[DEFAULT]\nk = 1\n[default]\nk = 2\n[Proxy]\nk = 3\n[PROXY]\nj = 4\n",
        )]);
        assert_eq!(r.get("DEFAULT", "k").map(|v| v.value.as_str()), Some("1"));
        assert_eq!(r.get("default", "k").map(|v| v.value.as_str()), Some("2"));
        assert_eq!(r.get("Default", "k").map(|v| v.value.as_str()), Some("2"));
        assert_eq!(r.get("proxy", "k").map(|v| v.value.as_str()), Some("3"));
        assert_eq!(r.get("proxy", "j").map(|v| v.value.as_str()), Some("4"));
        assert_eq!(r.sections(), vec!["DEFAULT", "default", "proxy"]);
    }

    #[test]
    fn keys_are_case_sensitive() {
        let r = raw(&[("a", "[DEFAULT]\nImage_Cache_Dir = x\n")]);
        assert!(r.get("DEFAULT", "image_cache_dir").is_none());
        assert!(r.get("DEFAULT", "Image_Cache_Dir").is_some());
    }

    #[test]
    fn last_wins_and_get_all_keeps_order_across_files() {
        let r = raw(&[
            ("a", "[DEFAULT]\nk = 1\nk = 2\n"),
            ("b", "[DEFAULT]\nk = 3\n"),
        ]);
        let v = r.get("DEFAULT", "k").expect("set");
        assert_eq!(v.value, "3");
        assert_eq!(
            v.source,
            Source::File {
                path: "b".into(),
                line: 2
            }
        );
        let all: Vec<_> = r
            .get_all("DEFAULT", "k")
            .map(|v| v.value.as_str())
            .collect();
        assert_eq!(all, vec!["1", "2", "3"]);
        assert_eq!(r.get_all("DEFAULT", "nope").count(), 0);
    }

    #[test]
    fn keys_and_has_section() {
        let r = raw(&[("a", "[s]\nb = 1\na = 2\nb = 3\n[empty]\n")]);
        assert_eq!(r.keys("S").collect::<Vec<_>>(), vec!["a", "b"]);
        assert!(r.has_section("empty"));
        assert!(!r.has_section("other"));
    }

    #[test]
    fn debug_hides_credentials() {
        let r = raw(&[(
            "a",
            "[keystone_authtoken]\npassword = hunter2\nusername = glance\n\
             [database]\nconnection = mysql://g:dbpw@db/glance\n\
             [proxy]\nadmin_tokens = tok1\n[DEFAULT]\ntransport_url = rabbit://u:rpw@mq\n",
        )]);
        let d = format!("{r:?}");
        for secret in ["hunter2", "dbpw", "tok1", "rpw"] {
            assert!(!d.contains(secret), "{d}");
        }
        assert!(
            d.contains("[keystone_authtoken] username = \"glance\" (a:3)"),
            "{d}"
        );
    }

    #[test]
    fn source_display() {
        assert_eq!(Source::Default.to_string(), "default");
        let s = Source::File {
            path: "/etc/glance/glance-api.conf".into(),
            line: 7,
        };
        assert_eq!(s.to_string(), "/etc/glance/glance-api.conf:7");
        let e = Source::Environment {
            variable: "GLANCE_CACHE__PROXY__UPSTREAM_URL".into(),
        };
        assert_eq!(
            e.to_string(),
            "environment GLANCE_CACHE__PROXY__UPSTREAM_URL"
        );
    }

    #[test]
    fn environment_values_replace_file_values() {
        let mut r = raw(&[(
            "a",
            "[proxy]\nadmin_tokens = t1\nadmin_tokens = t2\nx = 1\n",
        )]);
        r.push_env("PROXY", "admin_tokens", vec!["e1".into(), "e2".into()], "V");
        let all: Vec<_> = r
            .get_all("proxy", "admin_tokens")
            .map(|v| v.value.as_str())
            .collect();
        assert_eq!(all, vec!["e1", "e2"]);
        assert_eq!(
            r.get("proxy", "admin_tokens").map(|v| v.source.clone()),
            Some(Source::Environment {
                variable: "V".into()
            })
        );
        assert_eq!(r.get("proxy", "x").map(|v| v.value.as_str()), Some("1"));
    }
}
