//! Turning parsed files into a typed [`Config`], with warnings and provenance.

use std::path::{Path, PathBuf};

use super::env;
use super::error::{
    ConfigError, ConfigWarning, ConflictError, InterpolationError, InterpolationProblem,
    ValueError, WarningKind,
};
use super::ini;
use super::management;
use super::options::{
    self, enabled_backend_names, is_glance_section, OptionDef, OptionKind, Value,
    CACHE_POLICY_SECTION, DEFAULT_SECTION, GLANCE_STORE_SECTION, KEYSTONE_SECTION, OPTIONS,
    PROXY_SECTION, REDACTED,
};
use super::raw::{normalize_section, RawConfig, RawValue, Source};
use super::value::interpolate;
use super::Config;

/// The result of loading configuration files: the typed configuration, the
/// warnings to show the operator, and everything that was parsed.
#[derive(Clone, Debug)]
pub struct Loaded {
    /// The typed options.
    pub config: Config,
    /// Probable mistakes (typos, unknown sections), in file order.
    pub warnings: Vec<ConfigWarning>,
    /// Every parsed assignment, for sections this module does not type
    /// (`[keystone_authtoken]`, ...).
    pub raw: RawConfig,
    effective: Vec<Effective>,
}

/// The effective value of one option of [`OPTIONS`] and where it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Effective {
    /// The option.
    pub option: &'static OptionDef,
    /// The value after interpolation, as written (`None`: unset, no default).
    /// For [secret](OptionDef::secret) options that are set, a placeholder
    /// (`<redacted>`) instead of the value. The directories of
    /// `filesystem_store_datadirs` are joined with `, `.
    pub value: Option<String>,
    /// Where it came from.
    pub source: Source,
}

impl Loaded {
    /// Where the effective value of `[section] option` came from: the file
    /// and line of its last assignment, the environment variable that set
    /// it, or [`Source::Default`].
    pub fn source_of(&self, section: &str, option: &str) -> Source {
        self.raw
            .get(section, option)
            .map_or(Source::Default, |v| v.source.clone())
    }

    /// Every option of [`OPTIONS`], in table order, with its effective value.
    pub fn effective(&self) -> &[Effective] {
        &self.effective
    }

    /// The value of any `[section] key` (typed or not) after `$name`
    /// interpolation, or `None` when no file sets it and it is not one of
    /// [`OPTIONS`] (for those, the rendered default is returned).
    pub fn interpolated(&self, section: &str, key: &str) -> Result<Option<String>, ConfigError> {
        let section = normalize_section(section);
        let mut r = Resolver::new(&self.raw);
        r.lookup_exact(&section, key).map_err(|e| match e {
            Lookup::Failed(e) => e,
            // Only reachable for a key that references itself.
            Lookup::Unresolved(problem) => {
                let (value, source) = self
                    .raw
                    .get(&section, key)
                    .map(|v| (shown(&section, key, &v.value), v.source.clone()))
                    .unwrap_or((String::new(), Source::Default));
                ConfigError::Interpolation(Box::new(InterpolationError {
                    location: source,
                    section: section.clone(),
                    option: key.to_owned(),
                    value,
                    reference: key.to_owned(),
                    problem,
                }))
            }
        })
    }
}

/// Reads and loads `files` in order, then applies the configuration
/// variables among `env` (see [`Config::load_with_env`]).
pub(crate) fn load_files<P: AsRef<Path>>(
    files: &[P],
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Loaded, ConfigError> {
    let mut sources = Vec::with_capacity(files.len());
    for path in files {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        tracing::debug!(path = %path.display(), "read configuration file");
        sources.push((path.to_path_buf(), text));
    }
    load_texts(sources.iter().map(|(p, t)| (p.clone(), t.as_str())), env)
}

/// The `*.conf` files of `dir` (see [`Config::config_dir_files`]).
pub(crate) fn config_dir_files(dir: &Path) -> Result<Vec<PathBuf>, ConfigError> {
    let read_dir = |source| ConfigError::ReadDir {
        path: dir.to_path_buf(),
        source,
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(read_dir)? {
        let entry = entry.map_err(read_dir)?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        // Python's glob("*.conf"): no hidden files.
        if name.starts_with('.') || !name.ends_with(".conf") {
            continue;
        }
        let path = entry.path();
        if path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// Parses `(path, text)` pairs in order, applies the configuration
/// variables among `env`, and builds the typed configuration.
pub(crate) fn load_texts<'t>(
    sources: impl IntoIterator<Item = (PathBuf, &'t str)>,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Loaded, ConfigError> {
    let mut raw = RawConfig::default();
    let mut files = Vec::new();
    // Every file's syntax and every option's value are checked before
    // anything is reported, so one run shows every problem.
    let mut errors = Vec::new();
    for (path, text) in sources {
        match ini::parse(&path, text) {
            Ok(parsed) => {
                files.push(path.clone());
                raw.push_file(path, parsed);
            }
            Err(e) => errors.push(e),
        }
    }
    let settings = match env::settings(env) {
        Ok(settings) => settings,
        Err(e) => {
            errors.push(e);
            Vec::new()
        }
    };
    for setting in settings {
        tracing::debug!(variable = %setting.variable, "configuration from the environment");
        raw.push_env(
            setting.option.section,
            setting.option.name,
            setting.assignments(),
            &setting.variable,
        );
    }

    let mut config = Config::default();
    let mut effective = Vec::with_capacity(OPTIONS.len());
    let mut values = Vec::with_capacity(OPTIONS.len());
    let mut deferred = Vec::new();
    let mut warnings = Vec::new();
    for def in OPTIONS {
        let mut r = Resolver::new(&raw);
        let (value, text, source) = match r.typed(def) {
            Ok(typed) => typed,
            // keystonemiddleware's options only matter when management
            // calls are validated with Keystone; Glance reports its own
            // problems with them.
            Err(e) if def.section == KEYSTONE_SECTION => {
                let source = raw
                    .get(def.section, def.name)
                    .map_or(Source::Default, |v| v.source.clone());
                effective.push(Effective {
                    option: def,
                    value: raw.get(def.section, def.name).map(|v| def.shown(&v.value)),
                    source,
                });
                deferred.push((def.name, e));
                continue;
            }
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        if let (OptionKind::Choice { .. }, Value::Choice(canonical), Source::File { path, line }) =
            (def.kind, &value, &source)
        {
            if def.glance && text != *canonical {
                warnings.push(ConfigWarning {
                    path: path.clone(),
                    line: *line,
                    kind: WarningKind::ChoiceCase {
                        section: def.section.to_owned(),
                        option: def.name.to_owned(),
                        value: text.clone(),
                    },
                });
            }
        }
        def.apply(&mut config, value);
        effective.push(Effective {
            option: def,
            value: (source != Source::Default || def.default.is_some()).then(|| {
                let shown = def.shown(&text);
                match def.kind {
                    OptionKind::DirList => shown.replace('\n', ", "),
                    _ => shown,
                }
            }),
            source: source.clone(),
        });
        values.push((def, text, source));
    }
    if let Some(e) = ConfigError::gather(errors) {
        return Err(e);
    }
    warnings.extend(management::resolve(
        &mut config,
        management::Values::new(&values, deferred),
    )?);

    if let Some(problem) = forwards_to_itself(&config) {
        let value = raw.get(PROXY_SECTION, "upstream_url");
        return Err(ConfigError::Conflict(Box::new(ConflictError {
            location: value.map_or(Source::Default, |v| v.source.clone()),
            section: PROXY_SECTION.to_owned(),
            option: "upstream_url".to_owned(),
            value: config.proxy.upstream_url.to_string(),
            problem,
        })));
    }
    warnings.extend(structure_warnings(&raw));
    warnings.extend(store_warnings(&config, &raw));
    let file_index = |p: &Path| files.iter().position(|f| f == p).unwrap_or(usize::MAX);
    warnings.sort_by_key(|w| (file_index(&w.path), w.line));

    Ok(Loaded {
        config,
        warnings,
        raw,
        effective,
    })
}

/// Whether `upstream_url` is the proxy's own listener (`bind_host`:`bind_port`):
/// every forwarded request would come back to the proxy, each one opening
/// another connection, until it runs out of file descriptors. Same port and
/// a host that is the bind address, or a loopback address or `localhost`
/// when listening on loopback or on all addresses. (A name of this machine
/// other than `localhost` is not resolved here; the `Via` check catches
/// such a loop at run time.)
fn forwards_to_itself(config: &Config) -> Option<String> {
    let upstream = &config.proxy.upstream_url;
    let port = upstream.port_u16().unwrap_or(match upstream.scheme_str() {
        Some("https") => 443,
        _ => 80,
    });
    if port != config.bind_port {
        return None;
    }
    let host = upstream
        .host()?
        .trim_start_matches('[')
        .trim_end_matches(']');
    let bind = config
        .bind_host
        .trim_start_matches('[')
        .trim_end_matches(']');
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    let wildcard = bind
        .parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_unspecified());
    let same_host = host.eq_ignore_ascii_case(bind)
        || (loopback
            && (wildcard
                || bind
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())))
        || (wildcard
            && host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_unspecified()));
    same_host.then(|| {
        format!(
            "it is the proxy's own listener ([DEFAULT] bind_host = {}, bind_port = {}): every \
             request would be forwarded back to the proxy. Set upstream_url to where glance-api \
             listens (for example http://127.0.0.1:9191 after moving glance-api there), or the \
             proxy's bind_port to another port",
            config.bind_host, config.bind_port
        )
    })
}

/// glance_store refuses `filesystem_store_datadir` together with
/// `filesystem_store_datadirs`; the former has a default, so setting only
/// the latter is the usual mistake.
fn store_warnings(config: &Config, raw: &RawConfig) -> Vec<ConfigWarning> {
    let store = &config.glance_store;
    if store.filesystem_store_datadir.is_none() || store.filesystem_store_datadirs.is_empty() {
        return Vec::new();
    }
    let Some(Source::File { path, line }) = raw
        .get(GLANCE_STORE_SECTION, "filesystem_store_datadirs")
        .map(|v| &v.source)
    else {
        return Vec::new();
    };
    vec![ConfigWarning {
        path: path.clone(),
        line: *line,
        kind: WarningKind::IgnoredOption {
            section: GLANCE_STORE_SECTION.to_owned(),
            option: "filesystem_store_datadirs".to_owned(),
            reason: "filesystem_store_datadir is set too (it defaults to /var/lib/glance/images), \
                     and Glance's filesystem store refuses both; set filesystem_store_datadir to \
                     the empty value"
                .to_owned(),
        },
    }]
}

/// Unknown sections, `[default]`, and unknown options where they look like
/// typos: anything in `[proxy]`, and `image_cache*` names in `[DEFAULT]`.
fn structure_warnings(raw: &RawConfig) -> Vec<ConfigWarning> {
    let backends: Vec<String> = raw
        .get(DEFAULT_SECTION, "enabled_backends")
        .map(|v| enabled_backend_names(&v.value))
        .unwrap_or_default();
    let mut out = Vec::new();
    for s in &raw.sections {
        let kind = if s.normalized == DEFAULT_SECTION
            || s.normalized == PROXY_SECTION
            || s.normalized == CACHE_POLICY_SECTION
            || is_glance_section(&s.normalized)
            || backends.contains(&s.normalized)
        {
            continue;
        } else if s.normalized == "default" {
            WarningKind::NotDefaultSection {
                written: s.written.clone(),
            }
        } else {
            WarningKind::UnknownSection {
                section: s.normalized.clone(),
            }
        };
        out.push(ConfigWarning {
            path: s.path.clone(),
            line: s.line,
            kind,
        });
    }
    for e in &raw.entries {
        if options::find(&e.section, &e.key).is_some() {
            continue;
        }
        let suggestion = suggest(&e.section, &e.key);
        let suspicious = match e.section.as_str() {
            PROXY_SECTION | CACHE_POLICY_SECTION => true,
            DEFAULT_SECTION => {
                suggestion.is_some() || canonical_key(&e.key).starts_with("image_cache")
            }
            // keystonemiddleware and keystoneauth read many more options
            // there; only near-misses of the ones read here are suspicious.
            KEYSTONE_SECTION => {
                suggestion.is_some()
                    && !KEYSTONE_AUTHTOKEN_OPTIONS.contains(&canonical_key(&e.key).as_str())
            }
            _ => false,
        };
        if let (true, Source::File { path, line }) = (suspicious, &e.value.source) {
            out.push(ConfigWarning {
                path: path.clone(),
                line: *line,
                kind: WarningKind::UnknownOption {
                    section: e.section.clone(),
                    option: e.key.clone(),
                    suggestion,
                },
            });
        }
    }
    out
}

/// Options keystonemiddleware's `auth_token` and keystoneauth's loaders
/// (password, application credential, token and session options) read
/// from `[keystone_authtoken]`, current and removed; never reported as typos.
const KEYSTONE_AUTHTOKEN_OPTIONS: &[&str] = &[
    "admin_password",
    "admin_tenant_name",
    "admin_token",
    "admin_user",
    "application_credential_id",
    "application_credential_name",
    "application_credential_secret",
    "auth_admin_prefix",
    "auth_host",
    "auth_port",
    "auth_protocol",
    "auth_section",
    "auth_type",
    "auth_uri",
    "auth_url",
    "auth_version",
    "cache",
    "cafile",
    "certfile",
    "check_revocations_for_cached",
    "collect_timing",
    "default_domain_id",
    "default_domain_name",
    "delay_auth_decision",
    "domain_id",
    "domain_name",
    "enforce_token_bind",
    "hash_algorithms",
    "http_connect_timeout",
    "http_request_max_retries",
    "identity_uri",
    "include_service_catalog",
    "insecure",
    "interface",
    "keyfile",
    "memcache_pool_conn_get_timeout",
    "memcache_pool_dead_retry",
    "memcache_pool_maxsize",
    "memcache_pool_socket_timeout",
    "memcache_pool_unused_timeout",
    "memcache_sasl_enabled",
    "memcache_secret_key",
    "memcache_security_strategy",
    "memcache_tls_allowed_ciphers",
    "memcache_tls_cafile",
    "memcache_tls_certfile",
    "memcache_tls_enabled",
    "memcache_tls_keyfile",
    "memcache_use_advanced_pool",
    "memcache_password",
    "memcache_username",
    "memcached_servers",
    "password",
    "project_domain_id",
    "project_domain_name",
    "project_id",
    "project_name",
    "region_name",
    "revocation_cache_time",
    "service_token_roles",
    "service_token_roles_required",
    "service_type",
    "signing_dir",
    "split_loggers",
    "system_scope",
    "tenant_id",
    "tenant_name",
    "timeout",
    "token",
    "token_cache_time",
    "trust_id",
    "user_domain_id",
    "user_domain_name",
    "user_id",
    "username",
    "www_authenticate_uri",
];

/// Whether `[section] key` holds a credential that must not be shown: a
/// [secret](OptionDef::secret) option, or a key whose name says so
/// (`password`, `*_secret*`, `*_token(s)`, `*_key`, database connections,
/// messaging transport URLs).
pub(crate) fn is_secret(section: &str, key: &str) -> bool {
    if let Some(def) = options::find(section, key) {
        return def.secret;
    }
    let k = canonical_key(key);
    k.contains("password")
        || k.contains("secret")
        || k == "token"
        || k.ends_with("_token")
        || k.ends_with("_tokens")
        || k.ends_with("_key")
        || k == "connection"
        || k.ends_with("_connection")
        || k == "transport_url"
}

/// `value` as it may appear in messages and `Debug` output.
pub(crate) fn shown(section: &str, key: &str, value: &str) -> String {
    if is_secret(section, key) && !value.is_empty() {
        REDACTED.to_owned()
    } else {
        value.to_owned()
    }
}

/// `Image-Cache-Dir` -> `image_cache_dir`.
fn canonical_key(key: &str) -> String {
    key.to_lowercase().replace('-', "_")
}

/// A known option of `section` that `key` probably means: the same name in
/// another case or with dashes, or one at most two edits away.
pub(crate) fn suggest(section: &str, key: &str) -> Option<&'static str> {
    let canonical = canonical_key(key);
    let candidates = || OPTIONS.iter().filter(|o| o.section == section);
    candidates()
        .find(|o| o.name == canonical)
        .or_else(|| candidates().find(|o| edit_distance(o.name, &canonical) <= 2))
        .map(|o| o.name)
}

/// Levenshtein distance over bytes (option names are ASCII).
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, &ca) in a.iter().enumerate() {
        let mut current = Vec::with_capacity(b.len() + 1);
        current.push(i + 1);
        for (j, &cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != cb);
            current.push(substitution.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

/// Why a reference lookup failed.
enum Lookup {
    /// This reference cannot be resolved (reported against the option that
    /// holds it).
    Unresolved(InterpolationProblem),
    /// Resolving it hit an error in another option (reported as is).
    Failed(ConfigError),
}

/// Resolves typed values and `$name` references, detecting cycles.
struct Resolver<'a> {
    raw: &'a RawConfig,
    stack: Vec<(String, String)>,
}

impl<'a> Resolver<'a> {
    fn new(raw: &'a RawConfig) -> Self {
        Self {
            raw,
            stack: Vec::new(),
        }
    }

    /// The converted value of `def`, its text after interpolation, and
    /// where it came from.
    fn typed(&mut self, def: &'static OptionDef) -> Result<(Value, String, Source), ConfigError> {
        let raw_config = self.raw;
        let (text, source) = match raw_config.get(def.section, def.name) {
            // Every assignment adds to a list option (oslo.config's
            // MultiStrOpt); the last one is its source.
            Some(last) if def.kind.multi_valued() => {
                let mut parts = Vec::new();
                for raw in raw_config.get_all(def.section, def.name) {
                    parts.push(self.interpolate(def.section, def.name, raw)?);
                }
                (parts.join(def.kind.joiner()), last.source.clone())
            }
            Some(raw) => (
                self.interpolate(def.section, def.name, raw)?,
                raw.source.clone(),
            ),
            None => (def.default.unwrap_or("").to_owned(), Source::Default),
        };
        match def.parse(&text) {
            Ok(value) => Ok((value, text, source)),
            Err(expected) => Err(ConfigError::Value(Box::new(ValueError {
                location: source,
                section: def.section.to_owned(),
                option: def.name.to_owned(),
                value: def.shown(&text),
                expected,
            }))),
        }
    }

    /// Substitutes the references in the value of `[section] key`.
    fn interpolate(
        &mut self,
        section: &str,
        key: &str,
        raw: &RawValue,
    ) -> Result<String, ConfigError> {
        self.stack.push((section.to_owned(), key.to_owned()));
        let mut failed_reference = String::new();
        let result = interpolate(&raw.value, |name| {
            self.lookup(section, name).inspect_err(|_| {
                failed_reference = name.to_owned();
            })
        });
        self.stack.pop();
        result.map_err(|e| match e {
            Lookup::Failed(e) => e,
            Lookup::Unresolved(problem) => {
                ConfigError::Interpolation(Box::new(InterpolationError {
                    location: raw.source.clone(),
                    section: section.to_owned(),
                    option: key.to_owned(),
                    value: shown(section, key, &raw.value),
                    reference: failed_reference,
                    problem,
                }))
            }
        })
    }

    /// oslo.config's `StrSubWrapper`: `group.name` looks in `[group]`;
    /// a plain `name` looks in the referring option's section, then in
    /// `[DEFAULT]`.
    fn lookup(&mut self, section: &str, name: &str) -> Result<String, Lookup> {
        let candidates: Vec<(String, &str)> = match name.split_once('.') {
            Some((group, option)) => vec![(normalize_section(group), option)],
            None if section == DEFAULT_SECTION => vec![(section.to_owned(), name)],
            None => vec![
                (section.to_owned(), name),
                (DEFAULT_SECTION.to_owned(), name),
            ],
        };
        for (s, n) in candidates {
            match self.lookup_exact(&s, n) {
                Ok(Some(v)) => return Ok(v),
                Ok(None) => {}
                Err(e) => return Err(e),
            }
        }
        Err(Lookup::Unresolved(InterpolationProblem::Unknown))
    }

    /// The interpolated value of exactly `[section] key` (section
    /// normalised): a typed option's value (or default), else the raw value.
    fn lookup_exact(&mut self, section: &str, key: &str) -> Result<Option<String>, Lookup> {
        if self.stack.iter().any(|(s, k)| s == section && k == key) {
            return Err(Lookup::Unresolved(InterpolationProblem::Cycle));
        }
        if let Some(def) = options::find(section, key) {
            let (value, text, _) = self.typed(def).map_err(Lookup::Failed)?;
            return Ok(Some(OptionDef::render(&value, &text)));
        }
        let raw_config = self.raw;
        match raw_config.get(section, key) {
            Some(raw) => self
                .interpolate(section, key, raw)
                .map(Some)
                .map_err(Lookup::Failed),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distances() {
        assert_eq!(edit_distance("upstream_url", "upstream_url"), 0);
        assert_eq!(edit_distance("upstream_url", "upstrem_url"), 1);
        assert_eq!(edit_distance("upstream_url", "upstraem_url"), 2);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("abc", ""), 3);
    }

    #[test]
    fn suggestions() {
        assert_eq!(suggest("proxy", "upstrem_url"), Some("upstream_url"));
        assert_eq!(suggest("proxy", "Upstream-URL"), Some("upstream_url"));
        assert_eq!(
            suggest("DEFAULT", "image-cache-dir"),
            Some("image_cache_dir")
        );
        assert_eq!(
            suggest("DEFAULT", "image_cache_max_sise"),
            Some("image_cache_max_size")
        );
        assert_eq!(suggest("proxy", "something_else"), None);
        // Only options of the same section are suggested.
        assert_eq!(suggest("proxy", "image_cache_dir"), None);
    }
}
