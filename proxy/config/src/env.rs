//! Environment overrides: `GLANCE_CACHE__<SECTION>__<OPTION>=value`.
//!
//! Applied after every file, so they win over all of them. Values go
//! through the same interpolation and validation as file values; errors
//! name the variable. A variable with the prefix that names no option is an
//! error (nothing else reads these names, so it is a typo).

use super::error::{ConfigError, EnvironmentError};
use super::load::suggest;
use super::options::{self, OptionDef, DEFAULT_SECTION};

/// The prefix of configuration variables:
/// `GLANCE_CACHE__<SECTION>__<OPTION>`, e.g.
/// `GLANCE_CACHE__DEFAULT__IMAGE_CACHE_DIR` or
/// `GLANCE_CACHE__PROXY__UPSTREAM_URL`.
pub const ENV_PREFIX: &str = "GLANCE_CACHE__";

/// The environment variable that sets `[section] option`.
///
/// ```
/// use glance_cache_config::env_var_name;
///
/// assert_eq!(env_var_name("proxy", "upstream_url"), "GLANCE_CACHE__PROXY__UPSTREAM_URL");
/// assert_eq!(
///     env_var_name("DEFAULT", "image_cache_dir"),
///     "GLANCE_CACHE__DEFAULT__IMAGE_CACHE_DIR"
/// );
/// ```
pub fn env_var_name(section: &str, option: &str) -> String {
    format!(
        "{ENV_PREFIX}{}__{}",
        section.to_uppercase(),
        option.to_uppercase()
    )
}

/// One option set by a variable.
#[derive(Debug)]
pub(crate) struct EnvSetting {
    pub(crate) option: &'static OptionDef,
    pub(crate) variable: String,
    pub(crate) value: String,
}

impl EnvSetting {
    /// The value as assignments: a multi-valued option takes a
    /// comma-separated list (one item per assignment), anything else the
    /// value as it is.
    pub(crate) fn assignments(&self) -> Vec<String> {
        if !self.option.kind.multi_valued() {
            return vec![self.value.clone()];
        }
        let items: Vec<String> = self
            .value
            .split(',')
            .filter(|i| !i.trim().is_empty())
            .map(str::to_owned)
            .collect();
        if items.is_empty() {
            // Still an assignment: the environment says "none".
            vec![String::new()]
        } else {
            items
        }
    }
}

/// The configuration variables among `env` (others are ignored), sorted by
/// name.
pub(crate) fn settings(
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Vec<EnvSetting>, ConfigError> {
    let mut vars: Vec<(String, String)> = env
        .into_iter()
        .filter(|(k, _)| k.starts_with(ENV_PREFIX))
        .collect();
    vars.sort();
    let mut out: Vec<EnvSetting> = Vec::with_capacity(vars.len());
    for (variable, value) in vars {
        let option = option_of(&variable)?;
        if let Some(earlier) = out.iter().find(|s| std::ptr::eq(s.option, option)) {
            return Err(error(
                &variable,
                format!(
                    "[{}] {} is already set by {}",
                    option.section, option.name, earlier.variable
                ),
            ));
        }
        out.push(EnvSetting {
            option,
            variable,
            value,
        });
    }
    Ok(out)
}

/// The option `variable` names.
fn option_of(variable: &str) -> Result<&'static OptionDef, ConfigError> {
    let rest = &variable[ENV_PREFIX.len()..];
    let Some((section, option)) = rest
        .split_once("__")
        .filter(|(s, o)| !s.is_empty() && !o.is_empty())
    else {
        return Err(error(
            variable,
            format!(
                "expected {ENV_PREFIX}<SECTION>__<OPTION>, e.g. {ENV_PREFIX}PROXY__UPSTREAM_URL"
            ),
        ));
    };
    let section = if section.eq_ignore_ascii_case(DEFAULT_SECTION) {
        DEFAULT_SECTION.to_owned()
    } else {
        section.to_lowercase()
    };
    let option = option.to_lowercase();
    if let Some(def) = options::find(&section, &option) {
        return Ok(def);
    }
    let mut problem = format!("unknown option [{section}] {option}");
    if let Some(s) = suggest(&section, &option) {
        problem.push_str(&format!("; did you mean {}?", env_var_name(&section, s)));
    } else {
        problem.push_str(
            " (only the options listed by `glance-cache-proxy sample-config` can be set from \
             the environment)",
        );
    }
    Err(error(variable, problem))
}

fn error(variable: &str, problem: String) -> ConfigError {
    ConfigError::Environment(Box::new(EnvironmentError {
        variable: variable.to_owned(),
        problem,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &[(&str, &str)]) -> Vec<(String, String)> {
        vars.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn err(vars: &[(&str, &str)]) -> String {
        settings(env(vars)).expect_err("fails").to_string()
    }

    #[test]
    fn names_map_to_options() {
        let s = settings(env(&[
            ("PATH", "/bin"),
            ("GLANCE_CACHE_VENV", "/x"),
            ("GLANCE_CACHE__PROXY__UPSTREAM_URL", "http://a"),
            ("GLANCE_CACHE__default__image_cache_dir", "/c"),
            ("GLANCE_CACHE__KEYSTONE_AUTHTOKEN__PASSWORD", "pw"),
        ]))
        .expect("valid");
        let names: Vec<_> = s
            .iter()
            .map(|s| (s.option.section, s.option.name, s.value.as_str()))
            .collect();
        assert_eq!(
            names,
            vec![
                ("keystone_authtoken", "password", "pw"),
                ("proxy", "upstream_url", "http://a"),
                ("DEFAULT", "image_cache_dir", "/c"),
            ]
        );
    }

    #[test]
    fn bad_names_are_errors_naming_the_variable() {
        assert_eq!(
            err(&[("GLANCE_CACHE__PROXY__UPSTREM_URL", "x")]),
            "environment GLANCE_CACHE__PROXY__UPSTREM_URL: unknown option [proxy] upstrem_url; \
             did you mean GLANCE_CACHE__PROXY__UPSTREAM_URL?"
        );
        let e = err(&[("GLANCE_CACHE__PROXY", "x")]);
        assert!(
            e.starts_with("environment GLANCE_CACHE__PROXY: expected GLANCE_CACHE__<SECTION>__"),
            "{e}"
        );
        let e = err(&[("GLANCE_CACHE____BIND_PORT", "1")]);
        assert!(
            e.contains("expected GLANCE_CACHE__<SECTION>__<OPTION>"),
            "{e}"
        );
        let e = err(&[("GLANCE_CACHE__DATABASE__CONNECTION", "x")]);
        assert!(e.contains("unknown option [database] connection"), "{e}");
        assert!(e.contains("sample-config"), "{e}");
        let e = err(&[
            ("GLANCE_CACHE__PROXY__UPSTREAM_URL", "http://a"),
            ("GLANCE_CACHE__proxy__upstream_url", "http://b"),
        ]);
        assert_eq!(
            e,
            "environment GLANCE_CACHE__proxy__upstream_url: [proxy] upstream_url is already set \
             by GLANCE_CACHE__PROXY__UPSTREAM_URL"
        );
    }

    #[test]
    fn multi_valued_options_split_at_commas() {
        let s = settings(env(&[
            (
                "GLANCE_CACHE__GLANCE_STORE__FILESYSTEM_STORE_DATADIRS",
                "/a:1, /b:2,",
            ),
            ("GLANCE_CACHE__PROXY__ADMIN_TOKENS", ""),
            ("GLANCE_CACHE__PROXY__UPSTREAM_URL", "http://a,b"),
        ]))
        .expect("valid");
        assert_eq!(s[0].assignments(), vec!["/a:1", " /b:2"]);
        assert_eq!(s[1].assignments(), vec![""]);
        assert_eq!(s[2].assignments(), vec!["http://a,b"]);
    }
}
