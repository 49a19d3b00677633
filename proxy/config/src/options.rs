//! The option table: every option this crate reads, with its section, type,
//! default and help text. Loading, the sample configuration and
//! `check-config` are all driven by [`OPTIONS`].

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use http::Uri;

use super::glance::{parse_dict, parse_store_dirs, StoreDir};
use super::value::{match_choice, parse_bool, parse_python_int, render_bool, IntError};
use super::{CacheDriver, Config, HitAuthorization};
use glance_cache::auth::manage::{PolicyRule, RoleRule};

/// The section of Glance's own options.
pub const DEFAULT_SECTION: &str = "DEFAULT";
/// The section of this proxy's own options.
pub const PROXY_SECTION: &str = "proxy";
/// keystonemiddleware's section: the service credentials this proxy uses to
/// validate tokens of management calls.
pub const KEYSTONE_SECTION: &str = "keystone_authtoken";
/// The roles each cache-management policy rule requires.
pub const CACHE_POLICY_SECTION: &str = "cache_policy";
/// Glance's WSGI pipeline (read for compatibility).
pub const PASTE_DEPLOY_SECTION: &str = "paste_deploy";
/// oslo.concurrency's external locks (read for compatibility).
pub const OSLO_CONCURRENCY_SECTION: &str = "oslo_concurrency";
/// glance_store's options (read for compatibility).
pub const GLANCE_STORE_SECTION: &str = "glance_store";
/// oslo.policy's options (read for compatibility).
pub const OSLO_POLICY_SECTION: &str = "oslo_policy";

/// What an integer option counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Unit {
    /// A plain number.
    Count,
    /// A size in bytes.
    Bytes,
    /// A duration in whole seconds.
    Seconds,
    /// A TCP port number.
    Port,
}

/// The type of an option, with its constraints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum OptionKind {
    /// A string; empty is rejected unless `allow_empty`.
    String {
        /// Whether the empty string is a valid value.
        allow_empty: bool,
    },
    /// A filesystem path; empty means unset.
    Path,
    /// A Python-style integer (`_` separators, optional sign) in `min..=max`.
    /// No unit suffixes.
    Integer {
        /// Smallest accepted value.
        min: u64,
        /// Largest accepted value.
        max: u64,
        /// What the number counts.
        unit: Unit,
    },
    /// One of a fixed list of strings.
    Choice {
        /// The accepted values, canonical spelling.
        choices: &'static [&'static str],
        /// Whether the value is matched ignoring ASCII case.
        ignore_case: bool,
    },
    /// An absolute `http://` URL with a host and an optional path prefix.
    HttpUrl,
    /// An absolute `http://` or `https://` URL with a host and an optional
    /// path prefix; empty means unset.
    Url,
    /// oslo.config's `Dict`: `name:value` pairs separated by commas.
    Dict,
    /// glance_store's directory list: `path[:priority]` items, one per
    /// assignment (or per line of a value). Every assignment of the option,
    /// in every file, adds to the list (oslo.config's `MultiStrOpt`).
    DirList,
    /// oslo.config's boolean: `true`/`1`/`on`/`yes` or `false`/`0`/`off`/`no`,
    /// case-insensitive.
    Bool,
    /// A comma-separated list of tokens (printable ASCII without spaces);
    /// empty items are skipped. Every assignment of the option, in every
    /// file, adds to the list (oslo.config's `MultiStrOpt` merging).
    TokenList,
    /// A comma-separated list of role names (compared ignoring case; a
    /// `role:` prefix is accepted), or `@` (any authenticated caller) or `!`
    /// (nobody).
    Roles,
    /// keystonemiddleware's `token_cache_time`: a Python-style integer
    /// `>= -1` of seconds, where `-1` turns caching off and values above
    /// `cap` count as `cap`.
    CacheSeconds {
        /// The largest effective value.
        cap: u64,
    },
}

impl OptionKind {
    /// Whether every assignment of the option, in every file, adds to its
    /// value (oslo.config's `MultiStrOpt`) instead of replacing it.
    pub fn multi_valued(self) -> bool {
        matches!(self, OptionKind::TokenList | OptionKind::DirList)
    }

    /// How the assignments of a [multi-valued](OptionKind::multi_valued)
    /// option are joined into one text before conversion.
    pub(crate) fn joiner(self) -> &'static str {
        match self {
            OptionKind::DirList => "\n",
            _ => ",",
        }
    }
}

impl fmt::Display for OptionKind {
    /// What the option accepts, phrased to follow "expected ".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            OptionKind::String { allow_empty: true } => f.write_str("a string"),
            OptionKind::String { allow_empty: false } => f.write_str("a non-empty string"),
            OptionKind::Path => f.write_str("a path (empty means unset)"),
            OptionKind::Integer { min, max, unit } => write_int(f, min, max, unit, false),
            OptionKind::Choice {
                choices,
                ignore_case,
            } => {
                write!(f, "one of {}", choices.join(", "))?;
                if ignore_case {
                    f.write_str(" (case-insensitive)")?;
                }
                Ok(())
            }
            OptionKind::Bool => f.write_str("a boolean (true/false, 1/0, on/off, yes/no)"),
            OptionKind::HttpUrl => f.write_str(
                "an absolute http:// or https:// URL with a host, e.g. http://127.0.0.1:9292 \
                 (a path prefix is allowed; no query)",
            ),
            OptionKind::TokenList => f.write_str(
                "a comma-separated list of tokens (printable ASCII, no spaces); repeat the \
                 option to add more",
            ),
            OptionKind::Url => f.write_str(
                "an absolute http:// or https:// URL with a host, e.g. \
                 https://image.example.org (a path prefix is allowed; no query; empty means \
                 unset)",
            ),
            OptionKind::Dict => f.write_str(
                "name:type pairs separated by commas, e.g. fast:rbd, local:file (empty means \
                 none)",
            ),
            OptionKind::DirList => f.write_str(
                "a directory with an optional integer priority, path[:priority]; repeat the \
                 option to add more",
            ),
            OptionKind::Roles => f.write_str(
                "a comma-separated list of role names (any of them passes), @ for any \
                 authenticated caller, or ! for nobody",
            ),
            OptionKind::CacheSeconds { cap } => write!(
                f,
                "an integer >= -1 (seconds; -1 turns the cache off, values above {cap} count as \
                 {cap})"
            ),
        }
    }
}

fn write_int(
    f: &mut impl fmt::Write,
    min: u64,
    max: u64,
    unit: Unit,
    force_range: bool,
) -> fmt::Result {
    if max == u64::MAX && !force_range {
        write!(f, "an integer >= {min}")?;
    } else {
        write!(f, "an integer between {min} and {max}")?;
    }
    match unit {
        Unit::Count => Ok(()),
        Unit::Bytes => f.write_str(" (bytes; unit suffixes are not supported)"),
        Unit::Seconds => f.write_str(" (seconds; unit suffixes are not supported)"),
        Unit::Port => f.write_str(" (TCP port)"),
    }
}

/// A converted option value, before it is stored in [`Config`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Value {
    Str(String),
    Int(u64),
    Choice(&'static str),
    Url(Uri),
    Bool(bool),
    List(Vec<String>),
    Roles(RoleRule),
    Dict(BTreeMap<String, String>),
    Dirs(Vec<StoreDir>),
}

/// One option: where it lives, what it accepts, its default and its help.
#[derive(Debug)]
pub struct OptionDef {
    /// `DEFAULT` or a lower-case section name.
    pub section: &'static str,
    /// The option name (case-sensitive, with underscores).
    pub name: &'static str,
    /// Type and constraints.
    pub kind: OptionKind,
    /// The default as it would be written in a file; `None` means unset.
    pub default: Option<&'static str>,
    /// Whether Glance itself reads this option with the same meaning
    /// (so it must agree with Glance's configuration).
    pub glance: bool,
    /// Whether the value is a credential: it is never shown in errors,
    /// [`Effective`](super::Effective) values or `Debug` output.
    pub secret: bool,
    /// One paragraph for the sample configuration and `--help`-like output.
    pub help: &'static str,
    apply: fn(&mut Config, Value),
}

impl PartialEq for OptionDef {
    /// Options are identified by section and name.
    fn eq(&self, other: &Self) -> bool {
        self.section == other.section && self.name == other.name
    }
}

impl Eq for OptionDef {}

impl OptionDef {
    /// Converts `text` (already interpolated) to this option's type.
    /// On failure, returns what was expected, for the error message.
    pub(crate) fn parse(&self, text: &str) -> Result<Value, String> {
        match self.kind {
            OptionKind::String { allow_empty } => {
                if text.is_empty() && !allow_empty {
                    Err(self.kind.to_string())
                } else {
                    Ok(Value::Str(text.to_owned()))
                }
            }
            OptionKind::Path => Ok(Value::Str(text.to_owned())),
            OptionKind::Integer { min, max, .. } => match parse_python_int(text) {
                Ok(n) if n > i128::from(max) => Err(self.int_expected(true)),
                Ok(n) => match u64::try_from(n) {
                    Ok(n) if n >= min => Ok(Value::Int(n)),
                    _ => Err(self.int_expected(false)),
                },
                Err(IntError::Empty) => Err(format!(
                    "{}, not an empty value (oslo.config reads an empty value as None, not as \
                     the default; delete the line to get the default{})",
                    self.kind,
                    self.default.map(|d| format!(" {d}")).unwrap_or_default()
                )),
                Err(IntError::TooLarge) => Err(self.int_expected(n_too_large(text))),
                Err(IntError::Invalid) => Err(self.kind.to_string()),
            },
            OptionKind::Choice {
                choices,
                ignore_case,
            } => match_choice(text, choices, ignore_case)
                .map(Value::Choice)
                .ok_or_else(|| self.kind.to_string()),
            OptionKind::HttpUrl => parse_http_url(text).map(Value::Url),
            OptionKind::Url if text.is_empty() => Ok(Value::Str(String::new())),
            OptionKind::Url => parse_url(text, OptionKind::Url).map(Value::Url),
            OptionKind::Dict => parse_dict(text)
                .map(Value::Dict)
                .map_err(|problem| format!("{}; {problem}", self.kind)),
            OptionKind::DirList => parse_store_dirs(text)
                .map(Value::Dirs)
                .map_err(|problem| format!("{}; {problem}", self.kind)),
            OptionKind::Bool => parse_bool(text)
                .map(Value::Bool)
                .ok_or_else(|| self.kind.to_string()),
            OptionKind::TokenList => parse_token_list(text).map(Value::List),
            OptionKind::Roles => RoleRule::parse(text)
                .map(Value::Roles)
                .map_err(|problem| format!("{}; {problem}", self.kind)),
            OptionKind::CacheSeconds { cap } => match parse_python_int(text) {
                Ok(-1) => Ok(Value::Int(0)),
                Ok(n) if n >= 0 => Ok(Value::Int(u64::try_from(n).map_or(cap, |n| n.min(cap)))),
                Err(IntError::TooLarge) if n_too_large(text) => Ok(Value::Int(cap)),
                _ => Err(self.kind.to_string()),
            },
        }
    }

    /// `text` as it may appear in messages: the text itself, or a
    /// placeholder for [secret](OptionDef::secret) options.
    pub(crate) fn shown(&self, text: &str) -> String {
        if self.secret && !text.is_empty() {
            REDACTED.to_owned()
        } else {
            text.to_owned()
        }
    }

    fn int_expected(&self, force_range: bool) -> String {
        let mut s = String::new();
        if let OptionKind::Integer { min, max, unit } = self.kind {
            // Writing into a String cannot fail.
            let _ = write_int(&mut s, min, max, unit, force_range);
        }
        s
    }

    /// Stores a converted value in `config`.
    pub(crate) fn apply(&self, config: &mut Config, value: Value) {
        (self.apply)(config, value)
    }

    /// The text an interpolation reference to this option is replaced with.
    pub(crate) fn render(value: &Value, text: &str) -> String {
        match value {
            // Python's str(int): separators and signs normalised.
            Value::Int(n) => n.to_string(),
            // Python's str(bool).
            Value::Bool(b) => render_bool(*b).to_owned(),
            _ => text.to_owned(),
        }
    }
}

/// What a secret value is replaced with in messages and `Debug` output.
pub(crate) const REDACTED: &str = "<redacted>";

/// Splits a token list at commas, trims the items and skips empty ones.
/// Items must be printable ASCII without spaces (they are compared with the
/// bytes of an `X-Auth-Token` header). Errors never show the tokens.
fn parse_token_list(text: &str) -> Result<Vec<String>, String> {
    let items: Vec<&str> = text
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .collect();
    for (i, item) in items.iter().enumerate() {
        if !item.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(format!(
                "{}; item {} of {} contains a space or a character outside printable ASCII",
                OptionKind::TokenList,
                i + 1,
                items.len()
            ));
        }
    }
    Ok(items.into_iter().map(str::to_owned).collect())
}

/// Whether an integer text that overflowed was positive (too large rather
/// than too small).
fn n_too_large(text: &str) -> bool {
    !text.trim_start().starts_with('-')
}

pub(crate) fn parse_http_url(text: &str) -> Result<Uri, String> {
    parse_url(text, OptionKind::HttpUrl)
}

/// An absolute URL as `kind` ([`OptionKind::HttpUrl`] or
/// [`OptionKind::Url`], which also accepts `https://`) describes it.
fn parse_url(text: &str, kind: OptionKind) -> Result<Uri, String> {
    let generic = || kind.to_string();
    if text.contains('#') {
        return Err(format!("{}; a fragment (#...) is not allowed", generic()));
    }
    let uri: Uri = text.parse().map_err(|_| generic())?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        _ => return Err(generic()),
    }
    let Some(authority) = uri.authority() else {
        return Err(generic());
    };
    if authority.as_str().contains('@') {
        return Err(format!(
            "{}; user:password@ in the URL is not supported",
            generic()
        ));
    }
    if authority.host().is_empty() {
        return Err(generic());
    }
    let has_port_text = authority.as_str().len() > authority.host().len();
    match authority.port_u16() {
        Some(0) => return Err(format!("{}; the port must be 1..=65535", generic())),
        None if has_port_text => return Err(format!("{}; the port must be 1..=65535", generic())),
        _ => {}
    }
    if uri.query().is_some() {
        return Err(format!("{}; found a query string", generic()));
    }
    Ok(uri)
}

fn int<T: TryFrom<u64>>(v: &Value) -> Option<T> {
    match v {
        Value::Int(n) => T::try_from(*n).ok(),
        _ => None,
    }
}

fn secs(v: &Value) -> Option<Duration> {
    int::<u64>(v).map(Duration::from_secs)
}

fn string(v: Value) -> Option<String> {
    match v {
        Value::Str(s) => Some(s),
        _ => None,
    }
}

/// A string or path where empty means unset.
fn optional(v: Value) -> Option<Option<String>> {
    string(v).map(|s| (!s.is_empty()).then_some(s))
}

/// A URL where empty means unset.
fn optional_url(v: Value) -> Option<Option<Uri>> {
    match v {
        Value::Url(u) => Some(Some(u)),
        Value::Str(s) if s.is_empty() => Some(None),
        _ => None,
    }
}

fn boolean(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        _ => None,
    }
}

fn add_admin_tokens(c: &mut Config, v: Value) {
    if let Value::List(tokens) = v {
        for t in tokens {
            if !c.management.admin_tokens.contains(&t) {
                c.management.admin_tokens.push(t);
            }
        }
    }
}

fn set_policy(c: &mut Config, rule: PolicyRule, v: Value) {
    if let Value::Roles(roles) = v {
        c.management.policy = std::mem::take(&mut c.management.policy).with_rule(rule, roles);
    }
}

/// Read after all options are loaded, when `management_auth = auto` is
/// resolved (see `management::resolve`).
fn resolved_later(_: &mut Config, _: Value) {}

/// Choices of `image_cache_driver`, canonical spelling.
const DRIVERS: &[&str] = &["centralized_db", "sqlite", "xattr"];
/// Choices of `[proxy] hit_authorization`.
const HIT_AUTHORIZATIONS: &[&str] = &["probe", "metadata", "none"];
/// Choices of `[proxy] management_auth`.
pub(crate) const MANAGEMENT_AUTHS: &[&str] = &["auto", "keystone", "static", "open", "deny"];

/// A `[keystone_authtoken]` string option read when management calls are
/// validated with Keystone (empty means unset).
macro_rules! keystone_option {
    ($name:literal, $secret:literal, $help:literal) => {
        OptionDef {
            section: KEYSTONE_SECTION,
            name: $name,
            kind: OptionKind::String { allow_empty: true },
            default: None,
            glance: true,
            secret: $secret,
            help: $help,
            apply: resolved_later,
        }
    };
}

/// A `[cache_policy]` rule.
macro_rules! policy_option {
    ($rule:expr, $name:literal, $help:literal) => {
        OptionDef {
            section: CACHE_POLICY_SECTION,
            name: $name,
            kind: OptionKind::Roles,
            default: Some("admin"),
            glance: false,
            secret: false,
            help: $help,
            apply: |c, v| set_policy(c, $rule, v),
        }
    };
}

impl CacheDriver {
    /// The name used in configuration files.
    pub fn as_str(self) -> &'static str {
        match self {
            CacheDriver::CentralizedDb => "centralized_db",
            CacheDriver::Sqlite => "sqlite",
            CacheDriver::Xattr => "xattr",
        }
    }

    fn from_choice(s: &str) -> Option<Self> {
        match s {
            "centralized_db" => Some(CacheDriver::CentralizedDb),
            "sqlite" => Some(CacheDriver::Sqlite),
            "xattr" => Some(CacheDriver::Xattr),
            _ => None,
        }
    }
}

/// Every option this crate reads, in sample-configuration order.
pub static OPTIONS: &[OptionDef] = &[
    OptionDef {
        section: DEFAULT_SECTION,
        name: "bind_host",
        kind: OptionKind::String { allow_empty: false },
        default: Some("0.0.0.0"),
        glance: true,
        secret: false,
        help: "Address the proxy listens on (an IP address or host name).",
        apply: |c, v| {
            if let Some(s) = string(v) {
                c.bind_host = s;
            }
        },
    },
    OptionDef {
        section: DEFAULT_SECTION,
        name: "bind_port",
        kind: OptionKind::Integer {
            min: 0,
            max: 65535,
            unit: Unit::Port,
        },
        default: Some("9292"),
        glance: true,
        secret: false,
        help: "Port the proxy listens on. When the proxy runs next to Glance, give one of \
               them another port.",
        apply: |c, v| {
            if let Some(n) = int(&v) {
                c.bind_port = n;
            }
        },
    },
    OptionDef {
        section: DEFAULT_SECTION,
        name: "image_cache_dir",
        kind: OptionKind::Path,
        default: None,
        glance: true,
        secret: false,
        help: "Base directory of the image cache (Glance's layout: <image id>, incomplete/, \
               invalid/, queue/). Unset or empty means caching is off: the cache API answers \
               404 and requests are only proxied.",
        apply: |c, v| {
            if let Some(s) = string(v) {
                c.image_cache_dir = (!s.is_empty()).then(|| s.into());
            }
        },
    },
    OptionDef {
        section: DEFAULT_SECTION,
        name: "image_cache_sqlite_db",
        kind: OptionKind::String { allow_empty: false },
        default: Some("cache.db"),
        glance: true,
        secret: false,
        help: "SQLite file of the cache index, relative to image_cache_dir (an absolute path \
               is allowed).",
        apply: |c, v| {
            if let Some(s) = string(v) {
                c.image_cache_sqlite_db = s;
            }
        },
    },
    OptionDef {
        section: DEFAULT_SECTION,
        name: "image_cache_driver",
        kind: OptionKind::Choice {
            choices: DRIVERS,
            ignore_case: true,
        },
        default: Some("centralized_db"),
        glance: true,
        secret: false,
        help: "Cache metadata driver: centralized_db (Glance's default since 2024.1), sqlite \
               (deprecated) or xattr. Write it in lower case: Glance accepts other spellings \
               but then silently uses sqlite.",
        apply: |c, v| {
            if let Value::Choice(s) = v {
                if let Some(d) = CacheDriver::from_choice(s) {
                    c.image_cache_driver = d;
                }
            }
        },
    },
    OptionDef {
        section: DEFAULT_SECTION,
        name: "image_cache_max_size",
        kind: OptionKind::Integer {
            min: 0,
            max: u64::MAX,
            unit: Unit::Bytes,
        },
        default: Some("10737418240"),
        glance: true,
        secret: false,
        help: "Cache size in bytes above which pruning removes the least recently used \
               images. Not a hard cap: the cache can grow past it between prunes. Plain \
               integer (10_737_418_240 is fine); unit suffixes such as 10G are not supported.",
        apply: |c, v| {
            if let Some(n) = int(&v) {
                c.image_cache_max_size = n;
            }
        },
    },
    OptionDef {
        section: DEFAULT_SECTION,
        name: "image_cache_stall_time",
        kind: OptionKind::Integer {
            min: 0,
            max: u64::MAX,
            unit: Unit::Seconds,
        },
        default: Some("86400"),
        glance: true,
        secret: false,
        help: "Seconds after which a file in incomplete/ counts as stalled and is removed by \
               cleaning.",
        apply: |c, v| {
            if let Some(n) = int(&v) {
                c.image_cache_stall_time = n;
            }
        },
    },
    OptionDef {
        section: DEFAULT_SECTION,
        name: "worker_self_reference_url",
        kind: OptionKind::Url,
        default: None,
        glance: true,
        secret: false,
        help: "This node's own URL, which Glance's centralized_db cache driver uses to tell \
               nodes apart. With a remote tier (remote_store_url) the proxy registers the \
               images it holds under it (GET /v2/cache/nodes/{id} lists them) and other nodes \
               stream an image from it while it holds the image's fill lease: it must reach \
               this proxy's listener. Unset: the node reads and uploads the remote tier but \
               takes no leases and registers nothing.",
        apply: |c, v| {
            if let Some(u) = optional_url(v) {
                c.worker_self_reference_url = u;
            }
        },
    },
    OptionDef {
        section: DEFAULT_SECTION,
        name: "public_endpoint",
        kind: OptionKind::Url,
        default: None,
        glance: true,
        secret: false,
        help: "Public base URL of the image API. When set, the proxy uses it as the base of \
               the links (href) in the versions document (GET / and GET /versions), like \
               Glance; when unset, the links are built from the request's Host header.",
        apply: |c, v| {
            if let Some(u) = optional_url(v) {
                c.public_endpoint = u;
            }
        },
    },
    OptionDef {
        section: DEFAULT_SECTION,
        name: "enabled_backends",
        kind: OptionKind::Dict,
        default: None,
        glance: true,
        secret: false,
        help: "Glance's multiple stores, as name:type pairs (e.g. fast:rbd, local:file). Read \
               for compatibility: the proxy fetches every image through the upstream API, and \
               only uses the names to accept the per-store [name] sections without warnings.",
        apply: |c, v| {
            if let Value::Dict(d) = v {
                c.enabled_backends = d;
            }
        },
    },
    OptionDef {
        section: PROXY_SECTION,
        name: "upstream_url",
        kind: OptionKind::HttpUrl,
        default: Some("http://127.0.0.1:9191"),
        glance: false,
        secret: false,
        help: "The Glance API that requests are forwarded to: an absolute http:// or \
               https:// URL, optionally with a path prefix. The default is where the \
               deployment guide moves glance-api, so that the proxy can take its port; a URL \
               that is the proxy's own listener is refused. An https upstream's certificate \
               is checked against upstream_ca_file (default: the system's trust store); \
               HTTP/2 is used when it offers it.",
        apply: |c, v| {
            if let Value::Url(u) = v {
                c.proxy.upstream_url = u;
            }
        },
    },
    OptionDef {
        section: PROXY_SECTION,
        name: "upstream_ca_file",
        kind: OptionKind::Path,
        default: None,
        glance: false,
        secret: false,
        help: "PEM bundle of the certificate authorities an https upstream_url's certificate \
               must chain to. Unset: the system's trust store.",
        apply: |c, v| {
            if let Some(path) = optional(v) {
                c.proxy.upstream_ca_file = path.map(PathBuf::from);
            }
        },
    },
    OptionDef {
        section: PROXY_SECTION,
        name: "upstream_cert_file",
        kind: OptionKind::Path,
        default: None,
        glance: false,
        secret: false,
        help: "PEM certificate (chain) the proxy presents to an https upstream that asks for \
               one (mutual TLS); needs upstream_key_file.",
        apply: |c, v| {
            if let Some(path) = optional(v) {
                c.proxy.upstream_cert_file = path.map(PathBuf::from);
            }
        },
    },
    OptionDef {
        section: PROXY_SECTION,
        name: "upstream_key_file",
        kind: OptionKind::Path,
        default: None,
        glance: false,
        secret: false,
        help: "PEM private key of upstream_cert_file.",
        apply: |c, v| {
            if let Some(path) = optional(v) {
                c.proxy.upstream_key_file = path.map(PathBuf::from);
            }
        },
    },
    OptionDef {
        section: PROXY_SECTION,
        name: "upstream_insecure",
        kind: OptionKind::Bool,
        default: Some("false"),
        glance: false,
        secret: false,
        help: "Accept any certificate from an https upstream, unchecked. For labs only: \
               anyone on the path can read and change image data. Logged as a warning at \
               startup.",
        apply: |c, v| {
            if let Some(b) = boolean(&v) {
                c.proxy.upstream_insecure = b;
            }
        },
    },
    OptionDef {
        section: PROXY_SECTION,
        name: "tls_cert_file",
        kind: OptionKind::Path,
        default: None,
        glance: false,
        secret: false,
        help: "PEM certificate chain (leaf first) of the listener. With tls_key_file set, \
               the proxy speaks HTTPS only (HTTP/2 and HTTP/1.1 through ALPN, TLS 1.2 and \
               1.3); SIGHUP reads both files again.",
        apply: |c, v| {
            if let Some(path) = optional(v) {
                c.proxy.tls_cert_file = path.map(PathBuf::from);
            }
        },
    },
    OptionDef {
        section: PROXY_SECTION,
        name: "tls_key_file",
        kind: OptionKind::Path,
        default: None,
        glance: false,
        secret: false,
        help: "PEM private key of tls_cert_file (PKCS#8, PKCS#1 or SEC1).",
        apply: |c, v| {
            if let Some(path) = optional(v) {
                c.proxy.tls_key_file = path.map(PathBuf::from);
            }
        },
    },
    OptionDef {
        section: PROXY_SECTION,
        name: "tls_client_ca_file",
        kind: OptionKind::Path,
        default: None,
        glance: false,
        secret: false,
        help: "PEM bundle of certificate authorities: when set, every client must present a \
               certificate that chains to one of them.",
        apply: |c, v| {
            if let Some(path) = optional(v) {
                c.proxy.tls_client_ca_file = path.map(PathBuf::from);
            }
        },
    },
    OptionDef {
        section: PROXY_SECTION,
        name: "admin_tls_cert_file",
        kind: OptionKind::Path,
        default: None,
        glance: false,
        secret: false,
        help: "PEM certificate chain of the admin endpoint (admin_listen). Unset: the admin \
               endpoint speaks plain HTTP.",
        apply: |c, v| {
            if let Some(path) = optional(v) {
                c.proxy.admin_tls_cert_file = path.map(PathBuf::from);
            }
        },
    },
    OptionDef {
        section: PROXY_SECTION,
        name: "admin_tls_key_file",
        kind: OptionKind::Path,
        default: None,
        glance: false,
        secret: false,
        help: "PEM private key of admin_tls_cert_file.",
        apply: |c, v| {
            if let Some(path) = optional(v) {
                c.proxy.admin_tls_key_file = path.map(PathBuf::from);
            }
        },
    },
    OptionDef {
        section: PROXY_SECTION,
        name: "hit_authorization",
        kind: OptionKind::Choice {
            choices: HIT_AUTHORIZATIONS,
            ignore_case: true,
        },
        default: Some("probe"),
        glance: false,
        secret: false,
        help: "How a cache hit is authorized, with the caller's credentials, before it is \
               served. probe: one one-byte ranged download from the upstream, which applies \
               Glance's download policy (its answer also carries the image's size and MD5, \
               checked against the cached entry). metadata: fetch the image record only \
               (users who may see but not download an image get it from the cache). none: no \
               check; only for trusted networks.",
        apply: |c, v| {
            if let Value::Choice(s) = v {
                if let Some(h) = HitAuthorization::from_name(s) {
                    c.proxy.hit_authorization = h;
                }
            }
        },
    },
    OptionDef {
        section: PROXY_SECTION,
        name: "authorization_cache_ttl",
        kind: OptionKind::Integer {
            min: 0,
            max: 30,
            unit: Unit::Seconds,
        },
        default: Some("10"),
        glance: false,
        secret: false,
        help: "Seconds a hit authorization result is remembered, per token and image; \
               results are never shared between tokens. The upstream serving a caller's own \
               download of the image counts as a positive result. 0 turns the memory off; \
               at most 30.",
        apply: |c, v| {
            if let Some(d) = secs(&v) {
                c.proxy.authorization_cache_ttl = d;
            }
        },
    },
    OptionDef {
        section: PROXY_SECTION,
        name: "authorization_concurrency",
        kind: OptionKind::Integer {
            min: 1,
            max: 4096,
            unit: Unit::Count,
        },
        default: Some("64"),
        glance: false,
        secret: false,
        help: "How many hit authorizations may be asking the upstream at once (1 to 4096); \
               more wait their turn, first come first served, within authorization_timeout.",
        apply: |c, v| {
            if let Some(n) = int::<u64>(&v) {
                c.proxy.authorization_concurrency = n as usize;
            }
        },
    },
    OptionDef {
        section: PROXY_SECTION,
        name: "authorization_timeout",
        kind: OptionKind::Integer {
            min: 1,
            max: 600,
            unit: Unit::Seconds,
        },
        default: Some("10"),
        glance: false,
        secret: false,
        help: "Seconds a hit's authorization may take, its wait for a turn included. Past it, \
               or when the upstream is unreachable or answers that it is overloaded (429, 502, \
               503, 504), the client gets 503 with Retry-After at once; the download of a \
               cached image is never forwarded to an upstream that cannot answer the question.",
        apply: |c, v| {
            if let Some(d) = secs(&v) {
                c.proxy.authorization_timeout = d;
            }
        },
    },
    OptionDef {
        section: PROXY_SECTION,
        name: "upstream_connect_timeout",
        kind: OptionKind::Integer {
            min: 1,
            max: u64::MAX,
            unit: Unit::Seconds,
        },
        default: Some("5"),
        glance: false,
        secret: false,
        help: "Seconds to wait for a connection to the upstream.",
        apply: |c, v| {
            if let Some(d) = secs(&v) {
                c.proxy.upstream_connect_timeout = d;
            }
        },
    },
    OptionDef {
        section: PROXY_SECTION,
        name: "upstream_timeout",
        kind: OptionKind::Integer {
            min: 1,
            max: u64::MAX,
            unit: Unit::Seconds,
        },
        default: Some("60"),
        glance: false,
        secret: false,
        help: "Seconds to wait for the upstream's response headers.",
        apply: |c, v| {
            if let Some(d) = secs(&v) {
                c.proxy.upstream_timeout = d;
            }
        },
    },
    OptionDef {
        section: PROXY_SECTION,
        name: "upstream_idle_timeout",
        kind: OptionKind::Integer {
            min: 1,
            max: u64::MAX,
            unit: Unit::Seconds,
        },
        default: Some("60"),
        glance: false,
        secret: false,
        help: "Seconds without receiving body bytes from the upstream after which a \
               download or cache fill is abandoned.",
        apply: |c, v| {
            if let Some(d) = secs(&v) {
                c.proxy.upstream_idle_timeout = d;
            }
        },
    },
    OptionDef {
        section: PROXY_SECTION,
        name: "client_idle_timeout",
        kind: OptionKind::Integer {
            min: 0,
            max: u64::MAX,
            unit: Unit::Seconds,
        },
        default: Some("60"),
        glance: false,
        secret: false,
        help: "Seconds an HTTP/1.1 client may take no bytes of a response (it stopped \
               reading) before its connection is closed, with a log line, releasing what the \
               download held (a cache file, a place in a fill). A slow client that keeps \
               reading is never cut. (An HTTP/2 stream stalled by its client while the \
               connection carries others is not detected.) 0 turns it off.",
        apply: |c, v| {
            if let Some(d) = secs(&v) {
                c.proxy.client_idle_timeout = d;
            }
        },
    },
    OptionDef {
        section: PROXY_SECTION,
        name: "shutdown_timeout",
        kind: OptionKind::Integer {
            min: 0,
            max: u64::MAX,
            unit: Unit::Seconds,
        },
        default: Some("30"),
        glance: false,
        secret: false,
        help: "Seconds to let running downloads and cache fills finish after SIGTERM before \
               the proxy exits.",
        apply: |c, v| {
            if let Some(d) = secs(&v) {
                c.proxy.shutdown_timeout = d;
            }
        },
    },
    OptionDef {
        section: PROXY_SECTION,
        name: "hit_chunk_size",
        kind: OptionKind::Integer {
            min: 65536,
            max: 4194304,
            unit: Unit::Bytes,
        },
        default: Some("262144"),
        glance: false,
        secret: false,
        help: "Bytes read from the cache file per chunk when serving a hit (64 KiB to 4 MiB).",
        apply: |c, v| {
            if let Some(n) = int(&v) {
                c.proxy.hit_chunk_size = n;
            }
        },
    },
    OptionDef {
        section: PROXY_SECTION,
        name: "download_buffer_memory",
        kind: OptionKind::Integer {
            min: 1048576,
            max: 17179869184,
            unit: Unit::Bytes,
        },
        default: Some("67108864"),
        glance: false,
        secret: false,
        help: "Bytes of memory that the full-size read buffers (hit_chunk_size each) of all \
               downloads from the cache (hits, ranges, clients following a fill) share. While \
               they are spent, further downloads read in 16 KiB pieces, so that memory stays \
               bounded by this setting, not by the number of clients (1 MiB to 16 GiB).",
        apply: |c, v| {
            if let Some(n) = int(&v) {
                c.proxy.download_buffer_memory = n;
            }
        },
    },
    OptionDef {
        section: PROXY_SECTION,
        name: "min_free_disk",
        kind: OptionKind::Integer {
            min: 0,
            max: u64::MAX,
            unit: Unit::Bytes,
        },
        default: Some("268435456"),
        glance: false,
        secret: false,
        help: "Bytes that must stay free on the cache filesystem for a cache fill to start; \
               below that, requests are only proxied. 0 turns the check off.",
        apply: |c, v| {
            if let Some(n) = int(&v) {
                c.proxy.min_free_disk = n;
            }
        },
    },
    OptionDef {
        section: PROXY_SECTION,
        name: "prefetch_enabled",
        kind: OptionKind::Bool,
        default: Some("true"),
        glance: false,
        secret: false,
        help: "Whether the prefetch worker caches queued images. false pauses it: \
               PUT /v2/cache/{image_id} still queues images (on disk, in queue/), and they are \
               cached once it is true again.",
        apply: |c, v| {
            if let Some(b) = boolean(&v) {
                c.maintenance.prefetch_enabled = b;
            }
        },
    },
    OptionDef {
        section: PROXY_SECTION,
        name: "prefetch_workers",
        kind: OptionKind::Integer {
            min: 1,
            max: 16,
            unit: Unit::Count,
        },
        default: Some("2"),
        glance: false,
        secret: false,
        help: "How many queued images the prefetch worker caches at the same time (1 to 16).",
        apply: |c, v| {
            if let Some(n) = int(&v) {
                c.maintenance.prefetch_workers = n;
            }
        },
    },
    OptionDef {
        section: PROXY_SECTION,
        name: "prefetch_retries",
        kind: OptionKind::Integer {
            min: 0,
            max: 100,
            unit: Unit::Count,
        },
        default: Some("5"),
        glance: false,
        secret: false,
        help: "How many times a failed prefetch of a queued image is retried before the image \
               is dropped from the queue (0 to 100).",
        apply: |c, v| {
            if let Some(n) = int(&v) {
                c.maintenance.prefetch_retries = n;
            }
        },
    },
    OptionDef {
        section: PROXY_SECTION,
        name: "prefetch_retry_delay",
        kind: OptionKind::Integer {
            min: 1,
            max: 300,
            unit: Unit::Seconds,
        },
        default: Some("5"),
        glance: false,
        secret: false,
        help: "Seconds before the first retry of a failed prefetch; the delay doubles with \
               every further retry, up to 300 seconds.",
        apply: |c, v| {
            if let Some(d) = secs(&v) {
                c.maintenance.prefetch_retry_delay = d;
            }
        },
    },
    OptionDef {
        section: DEFAULT_SECTION,
        name: "debug",
        kind: OptionKind::Bool,
        default: Some("false"),
        glance: true,
        secret: false,
        help: "Log this program's own modules at debug level (oslo.log's option); RUST_LOG, \
               when set, overrides the level.",
        apply: |c, v| {
            if let Some(b) = boolean(&v) {
                c.logging.debug = b;
            }
        },
    },
    OptionDef {
        section: DEFAULT_SECTION,
        name: "use_json",
        kind: OptionKind::Bool,
        default: Some("false"),
        glance: true,
        secret: false,
        help: "Write logs as JSON, one object per line, with each request's request_id \
               (oslo.log's option).",
        apply: |c, v| {
            if let Some(b) = boolean(&v) {
                c.logging.use_json = b;
            }
        },
    },
    OptionDef {
        section: DEFAULT_SECTION,
        name: "log_file",
        kind: OptionKind::String { allow_empty: true },
        default: None,
        glance: true,
        secret: false,
        help: "Append logs to this file instead of standard error (oslo.log's option). An \
               empty value means standard error, which undoes a log_file set in \
               glance-api.conf when that file is passed first.",
        apply: |c, v| {
            if let Some(path) = optional(v) {
                c.logging.log_file = path.map(PathBuf::from);
            }
        },
    },
    OptionDef {
        section: PROXY_SECTION,
        name: "admin_listen",
        kind: OptionKind::String { allow_empty: true },
        default: None,
        glance: false,
        secret: false,
        help: "host:port of the admin endpoint (GET /metrics in Prometheus text format, GET \
               /healthz). Unset: off. It has no authentication: bind it to 127.0.0.1 or a \
               management network.",
        apply: |c, v| {
            if let Some(listen) = optional(v) {
                c.proxy.admin_listen = listen
                    .map(|l| l.trim().to_owned())
                    .filter(|l| !l.is_empty());
            }
        },
    },
    OptionDef {
        section: PROXY_SECTION,
        name: "remote_store_url",
        kind: OptionKind::String { allow_empty: true },
        default: None,
        glance: false,
        secret: false,
        help: "s3://bucket[/prefix] of the remote tier shared by every node of the cluster \
               (any S3-compatible store: Ceph RGW, Swift's S3 API, MinIO, AWS). A local miss \
               is filled from it, else from the node holding the image's fill lease, else \
               from the upstream; committed images are uploaded to it. Unset: no remote tier \
               (each node caches alone).",
        apply: |c, v| {
            if let Some(url) = optional(v) {
                c.proxy.remote_store_url =
                    url.map(|u| u.trim().to_owned()).filter(|u| !u.is_empty());
            }
        },
    },
    OptionDef {
        section: PROXY_SECTION,
        name: "remote_store_endpoint",
        kind: OptionKind::String { allow_empty: true },
        default: None,
        glance: false,
        secret: false,
        help: "Base URL of the S3-compatible store (https://rgw.internal:7480). Unset: \
               AWS_ENDPOINT, else AWS itself.",
        apply: |c, v| {
            if let Some(e) = optional(v) {
                c.proxy.remote_store_endpoint = e;
            }
        },
    },
    OptionDef {
        section: PROXY_SECTION,
        name: "remote_store_region",
        kind: OptionKind::String { allow_empty: true },
        default: None,
        glance: false,
        secret: false,
        help: "Region the requests to the remote store are signed for. Unset: AWS_REGION, \
               else us-east-1.",
        apply: |c, v| {
            if let Some(r) = optional(v) {
                c.proxy.remote_store_region = r;
            }
        },
    },
    OptionDef {
        section: PROXY_SECTION,
        name: "remote_store_access_key_id",
        kind: OptionKind::String { allow_empty: true },
        default: None,
        glance: false,
        secret: false,
        help: "Access key id for the remote store. Unset: AWS_ACCESS_KEY_ID.",
        apply: |c, v| {
            if let Some(k) = optional(v) {
                c.proxy.remote_store_access_key_id = k;
            }
        },
    },
    OptionDef {
        section: PROXY_SECTION,
        name: "remote_store_secret_access_key",
        kind: OptionKind::String { allow_empty: true },
        default: None,
        glance: false,
        secret: true,
        help: "Secret access key for the remote store. Unset: AWS_SECRET_ACCESS_KEY.",
        apply: |c, v| {
            if let Some(k) = optional(v) {
                c.proxy.remote_store_secret_access_key = k;
            }
        },
    },
    OptionDef {
        section: PROXY_SECTION,
        name: "remote_store_allow_http",
        kind: OptionKind::Bool,
        default: Some("false"),
        glance: false,
        secret: false,
        help: "Allow a plain-http remote_store_endpoint (image data and signed requests in \
               clear: for labs and tests). false leaves it to AWS_ALLOW_HTTP (default: \
               https only).",
        apply: |c, v| {
            if let Some(b) = boolean(&v) {
                c.proxy.remote_store_allow_http = b;
            }
        },
    },
    OptionDef {
        section: PROXY_SECTION,
        name: "remote_store_ca_file",
        kind: OptionKind::Path,
        default: None,
        glance: false,
        secret: false,
        help: "PEM bundle of the certificate authorities an https remote_store_endpoint's \
               certificate must chain to. Unset: the system's trust store.",
        apply: |c, v| {
            if let Some(path) = optional(v) {
                c.proxy.remote_store_ca_file = path.map(PathBuf::from);
            }
        },
    },
    OptionDef {
        section: PROXY_SECTION,
        name: "remote_max_size",
        kind: OptionKind::Integer {
            min: 0,
            max: u64::MAX,
            unit: Unit::Bytes,
        },
        default: Some("0"),
        glance: false,
        secret: false,
        help: "Bytes the remote tier's images may take; above it the least recently used are \
               deleted (by one node at a time, every remote_sync_interval). 0: no limit.",
        apply: |c, v| {
            if let Some(n) = int(&v) {
                c.proxy.remote_max_size = n;
            }
        },
    },
    OptionDef {
        section: PROXY_SECTION,
        name: "remote_timeout",
        kind: OptionKind::Integer {
            min: 1,
            max: 60,
            unit: Unit::Seconds,
        },
        default: Some("2"),
        glance: false,
        secret: false,
        help: "Seconds one request to the remote store may take (the first byte of a download \
               included). Past it, or on any failure, the download goes to the upstream and \
               the store is left alone for 10 seconds.",
        apply: |c, v| {
            if let Some(d) = secs(&v) {
                c.proxy.remote_timeout = d;
            }
        },
    },
    OptionDef {
        section: PROXY_SECTION,
        name: "remote_sync_interval",
        kind: OptionKind::Integer {
            min: 0,
            max: u64::MAX,
            unit: Unit::Seconds,
        },
        default: Some("60"),
        glance: false,
        secret: false,
        help: "Seconds between reconciliations of this node's entries in the node registry \
               with its local cache (after evictions, offline prunes, a killed process) and \
               prunes of the remote tier to remote_max_size. 0: never.",
        apply: |c, v| {
            if let Some(d) = secs(&v) {
                c.proxy.remote_sync_interval = d;
            }
        },
    },
    OptionDef {
        section: PROXY_SECTION,
        name: "auto_prune",
        kind: OptionKind::Bool,
        default: Some("true"),
        glance: false,
        secret: false,
        help: "Whether the proxy prunes the cache (least recently used images first) whenever \
               it grows past image_cache_max_size. false leaves pruning to POST \
               /v2/cache/prune or an external pruner.",
        apply: |c, v| {
            if let Some(b) = boolean(&v) {
                c.maintenance.auto_prune = b;
            }
        },
    },
    OptionDef {
        section: PROXY_SECTION,
        name: "clean_interval",
        kind: OptionKind::Integer {
            min: 0,
            max: u64::MAX,
            unit: Unit::Seconds,
        },
        default: Some("3600"),
        glance: false,
        secret: false,
        help: "Seconds between cleanings (invalid files, and incomplete files older than \
               image_cache_stall_time). 0 turns periodic cleaning off.",
        apply: |c, v| {
            if let Some(d) = secs(&v) {
                c.maintenance.clean_interval = d;
            }
        },
    },
    OptionDef {
        section: PROXY_SECTION,
        name: "serve_ranges",
        kind: OptionKind::Bool,
        default: Some("true"),
        glance: false,
        secret: false,
        help: "Whether a single-range download (Range: bytes=a-b, bytes=a- or bytes=-n) of a \
               cached image, or of one being cached, is answered from the cache with Glance's \
               206 or 416, after the same authorization as a whole download. false sends \
               every ranged request to the upstream, as Glance's own cache does. Ranges with \
               several parts, malformed ones and Content-Range request headers always go to \
               the upstream; a part is never stored.",
        apply: |c, v| {
            if let Some(b) = boolean(&v) {
                c.proxy.serve_ranges = b;
            }
        },
    },
    OptionDef {
        section: PROXY_SECTION,
        name: "fill_on_range_miss",
        kind: OptionKind::Bool,
        default: Some("false"),
        glance: false,
        secret: false,
        help: "Whether a range the cache cannot answer, besides going to the upstream \
               unchanged, starts a download of the whole image with the caller's \
               credentials: an image that is not cached is cached, and a cached file never \
               verified (adopted from a Glance cache directory) whose checksum the range's \
               authorization did not bring (hit_authorization = none) is read through and \
               verified against the upstream's, so that later ranges are answered from the \
               cache. (Other cached files that must be verified again are hashed for any \
               range, whatever this option says.)",
        apply: |c, v| {
            if let Some(b) = boolean(&v) {
                c.proxy.fill_on_range_miss = b;
            }
        },
    },
    OptionDef {
        section: PROXY_SECTION,
        name: "range_fill_wait",
        kind: OptionKind::Integer {
            min: 0,
            max: 3600,
            unit: Unit::Seconds,
        },
        default: Some("2"),
        glance: false,
        secret: false,
        help: "Seconds a range of an image that is being cached waits for the download to \
               bring its first byte (when the bytes come from the remote tier, another node \
               or another process, for the whole image to be verified: a part cannot be \
               checked once sent) before it is sent to the upstream instead, unchanged and \
               never stored. Once under way, the range follows the download. 0 serves only \
               what is already on disk. A range of a cached file that changed since it was \
               verified waits as long for the file to be hashed again.",
        apply: |c, v| {
            if let Some(d) = secs(&v) {
                c.proxy.range_fill_wait = d;
            }
        },
    },
    OptionDef {
        section: PROXY_SECTION,
        name: "scrub_rate",
        kind: OptionKind::Integer {
            min: 0,
            max: u64::MAX,
            unit: Unit::Bytes,
        },
        default: Some("8388608"),
        glance: false,
        secret: false,
        help: "Bytes per second the background scrubber reads to hash cached files again \
               (least recently verified first) and quarantine those that no longer match \
               their digests, which finds rot that changes no file metadata. 0 turns the \
               scrubber off; the default (8 MiB/s) takes about 3% of one core, at the lowest CPU \
               priority: on a busy node it reads slower rather than slowing downloads.",
        apply: |c, v| {
            if let Some(n) = int(&v) {
                c.maintenance.scrub_rate = n;
            }
        },
    },
    OptionDef {
        section: PROXY_SECTION,
        name: "scrub_interval",
        kind: OptionKind::Integer {
            min: 0,
            max: u64::MAX,
            unit: Unit::Seconds,
        },
        default: Some("86400"),
        glance: false,
        secret: false,
        help: "Shortest time in seconds between two scrubs of the same cached file.",
        apply: |c, v| {
            if let Some(d) = secs(&v) {
                c.maintenance.scrub_interval = d;
            }
        },
    },
    OptionDef {
        section: PROXY_SECTION,
        name: "management_auth",
        kind: OptionKind::Choice {
            choices: MANAGEMENT_AUTHS,
            ignore_case: true,
        },
        default: Some("auto"),
        glance: false,
        secret: false,
        help: "Who may call the cache-management API (/v2/cache..., /v2/cached_images..., \
               /v2/queued_images...). keystone: the X-Auth-Token is validated with Keystone \
               ([keystone_authtoken] service credentials) and the caller's roles are checked \
               against [cache_policy]. static: the X-Auth-Token must be one of admin_tokens \
               (the caller counts as admin). open: every caller counts as admin (lab or \
               loopback-only setups; a warning is logged at startup). deny: every call is \
               refused with 401. auto: keystone when [keystone_authtoken] auth_url is set, \
               else static when admin_tokens is set, else deny.",
        apply: resolved_later,
    },
    OptionDef {
        section: PROXY_SECTION,
        name: "admin_tokens",
        kind: OptionKind::TokenList,
        default: None,
        glance: false,
        secret: true,
        help: "Static tokens that may call the cache-management API as admin when \
               management_auth is static (or auto without Keystone), comma-separated; \
               repeat the option to add more. Merged with [DEFAULT] admin_tokens. Their \
               values are never logged. The image lookups of calls made with them, and the \
               prefetches they queue, run as the service user of [keystone_authtoken] when \
               its auth_url is set (needed when the image service requires Keystone tokens; \
               the static token then never goes upstream).",
        apply: add_admin_tokens,
    },
    OptionDef {
        section: DEFAULT_SECTION,
        name: "admin_tokens",
        kind: OptionKind::TokenList,
        default: None,
        glance: false,
        secret: true,
        help: "Like [proxy] admin_tokens (the two lists are merged).",
        apply: add_admin_tokens,
    },
    keystone_option!(
        "auth_url",
        false,
        "Keystone's identity endpoint (http:// or https://), with or without /v3. When \
         it is set and [proxy] management_auth is auto, management calls are validated \
         with Keystone."
    ),
    keystone_option!(
        "auth_type",
        false,
        "keystoneauth plugin of the service credentials. Only password (or v3password) is \
         supported for management calls; unset counts as password."
    ),
    keystone_option!(
        "username",
        false,
        "Service user that validates tokens: it needs the admin or service role in its \
         project (Keystone's identity:validate_token policy)."
    ),
    keystone_option!(
        "password",
        true,
        "Password of the service user. Never logged."
    ),
    keystone_option!(
        "user_domain_name",
        false,
        "Domain of the service user, by name (user_domain_id wins when both are set; \
         neither means the domain id default)."
    ),
    keystone_option!(
        "user_domain_id",
        false,
        "Domain of the service user, by id."
    ),
    keystone_option!(
        "project_name",
        false,
        "Project the service token is scoped to, by name (project_id wins when both are set)."
    ),
    keystone_option!(
        "project_id",
        false,
        "Project the service token is scoped to, by id."
    ),
    keystone_option!(
        "project_domain_name",
        false,
        "Domain of project_name, by name (project_domain_id wins when both are set; \
         neither means the domain id default)."
    ),
    keystone_option!("project_domain_id", false, "Domain of project_name, by id."),
    keystone_option!(
        "default_domain_id",
        false,
        "Domain id used for the user and the project when their own domain options are \
         unset (keystoneauth's fallback)."
    ),
    keystone_option!(
        "default_domain_name",
        false,
        "Domain name used for the user and the project when their own domain options and \
         default_domain_id are unset."
    ),
    keystone_option!(
        "cafile",
        false,
        "PEM bundle of the certificate authorities an https auth_url's certificate must \
         chain to (keystonemiddleware's option). Unset: the system's trust store."
    ),
    keystone_option!(
        "certfile",
        false,
        "PEM client certificate presented to Keystone (keystonemiddleware's option); \
         needs keyfile."
    ),
    keystone_option!(
        "keyfile",
        false,
        "PEM private key of certfile (keystonemiddleware's option)."
    ),
    keystone_option!(
        "insecure",
        false,
        "true: Keystone's certificate is not checked (keystonemiddleware's option; for \
         labs only)."
    ),
    keystone_option!(
        "region_name",
        false,
        "Region of the identity service (informational; the proxy talks to auth_url)."
    ),
    keystone_option!(
        "www_authenticate_uri",
        false,
        "Keystone URL put in the WWW-Authenticate header of 401 answers to management \
         calls (default: auth_url)."
    ),
    OptionDef {
        section: KEYSTONE_SECTION,
        name: "token_cache_time",
        kind: OptionKind::CacheSeconds { cap: 300 },
        default: Some("60"),
        glance: true,
        secret: false,
        help: "Seconds a successful token validation is reused (never beyond the token's \
               expiry; failed validations are never reused). -1 or 0 turns the cache off; \
               values above 300 count as 300. keystonemiddleware's option; its default there \
               is 300, the proxy's is 60.",
        apply: |c, v| {
            if let Some(d) = secs(&v) {
                c.management.token_cache_time = d;
            }
        },
    },
    policy_option!(
        PolicyRule::CacheList,
        "cache_list",
        "Roles that may list the cache and the queue (GET /v2/cache)."
    ),
    policy_option!(
        PolicyRule::CacheImage,
        "cache_image",
        "Roles that may queue an image for caching (PUT /v2/cache/{image_id})."
    ),
    policy_option!(
        PolicyRule::CacheDelete,
        "cache_delete",
        "Roles that may delete cached or queued images (DELETE /v2/cache, DELETE \
         /v2/cache/{image_id})."
    ),
    policy_option!(
        PolicyRule::CacheClean,
        "cache_clean",
        "Roles that may clean the cache (POST /v2/cache/clean)."
    ),
    policy_option!(
        PolicyRule::CachePrune,
        "cache_prune",
        "Roles that may prune the cache (POST /v2/cache/prune)."
    ),
    policy_option!(
        PolicyRule::ListCachedNodes,
        "list_cached_nodes",
        "Roles that may list the nodes caching an image (GET /v2/cache/nodes/{image_id}); \
         the answer exposes internal URLs."
    ),
    policy_option!(
        PolicyRule::ManageImageCache,
        "manage_image_cache",
        "Roles that may use the legacy cache API (/v2/cached_images, /v2/queued_images)."
    ),
    OptionDef {
        section: PASTE_DEPLOY_SECTION,
        name: "flavor",
        kind: OptionKind::String { allow_empty: true },
        default: None,
        glance: true,
        secret: false,
        help: "Glance's WSGI pipeline (keystone, keystone+caching, ...; unset or empty is \
               Glance's default pipeline). Read for compatibility: the proxy runs its own \
               stack. With a caching flavor (caching, cachemanagement, keystone+caching, \
               keystone+cachemanagement) the glance-api behind the proxy keeps a second copy \
               of every image; use keystone there.",
        apply: |c, v| {
            if let Some(s) = optional(v) {
                c.paste_deploy.flavor = s;
            }
        },
    },
    OptionDef {
        section: PASTE_DEPLOY_SECTION,
        name: "config_file",
        kind: OptionKind::Path,
        default: None,
        glance: true,
        secret: false,
        help: "Glance's paste ini file (unset: glance-api-paste.ini next to the last config \
               file). Read for compatibility; the proxy does not read it.",
        apply: |c, v| {
            if let Some(s) = optional(v) {
                c.paste_deploy.config_file = s.map(Into::into);
            }
        },
    },
    OptionDef {
        section: OSLO_CONCURRENCY_SECTION,
        name: "lock_path",
        kind: OptionKind::Path,
        default: None,
        glance: true,
        secret: false,
        help: "Directory of Glance's external lock files (Glance's cache uses image_cache_dir \
               when it is unset). Read for compatibility; the proxy takes no external locks.",
        apply: |c, v| {
            if let Some(s) = optional(v) {
                c.oslo_concurrency.lock_path = s.map(Into::into);
            }
        },
    },
    OptionDef {
        section: GLANCE_STORE_SECTION,
        name: "filesystem_store_datadir",
        kind: OptionKind::Path,
        default: Some(super::glance::DEFAULT_DATADIR),
        glance: true,
        secret: false,
        help: "Directory of Glance's filesystem store, from which Glance's prefetcher reads \
               image data. Read for compatibility: the proxy fetches every image through the \
               upstream API. Set it to the empty value when filesystem_store_datadirs is \
               used (glance_store refuses both).",
        apply: |c, v| {
            if let Some(s) = optional(v) {
                c.glance_store.filesystem_store_datadir = s.map(Into::into);
            }
        },
    },
    OptionDef {
        section: GLANCE_STORE_SECTION,
        name: "filesystem_store_datadirs",
        kind: OptionKind::DirList,
        default: None,
        glance: true,
        secret: false,
        help: "Several filesystem store directories, one path[:priority] per assignment \
               (repeat the option; a higher priority is preferred, default 0). Deprecated in \
               glance_store. Read for compatibility, like filesystem_store_datadir.",
        apply: |c, v| {
            if let Value::Dirs(d) = v {
                c.glance_store.filesystem_store_datadirs = d;
            }
        },
    },
    OptionDef {
        section: OSLO_POLICY_SECTION,
        name: "policy_file",
        kind: OptionKind::String { allow_empty: false },
        default: Some("policy.yaml"),
        glance: true,
        secret: false,
        help: "Glance's policy file. Read for compatibility: the proxy does not read it; who \
               may call the cache-management API is set in [cache_policy], with Glance's rule \
               names.",
        apply: |c, v| {
            if let Some(s) = string(v) {
                c.oslo_policy.policy_file = s.into();
            }
        },
    },
    OptionDef {
        section: OSLO_POLICY_SECTION,
        name: "enforce_new_defaults",
        kind: OptionKind::Bool,
        default: Some("true"),
        glance: true,
        secret: false,
        help: "Whether Glance enforces its new default policies. Read for compatibility: the \
               [cache_policy] rules apply as written.",
        apply: |c, v| {
            if let Some(b) = boolean(&v) {
                c.oslo_policy.enforce_new_defaults = b;
            }
        },
    },
    OptionDef {
        section: OSLO_POLICY_SECTION,
        name: "enforce_scope",
        kind: OptionKind::Bool,
        default: Some("true"),
        glance: true,
        secret: false,
        help: "Whether Glance checks token scopes in its policies. Read for compatibility: the \
               [cache_policy] rules apply as written.",
        apply: |c, v| {
            if let Some(b) = boolean(&v) {
                c.oslo_policy.enforce_scope = b;
            }
        },
    },
];

/// The definition of `[section] name`, if this crate reads it. `section` is
/// compared after normalisation (`DEFAULT` exact, others lower-cased).
pub fn find(section: &str, name: &str) -> Option<&'static OptionDef> {
    let section = super::raw::normalize_section(section);
    OPTIONS
        .iter()
        .find(|o| o.section == section && o.name == name)
}

/// Sections a real glance-api.conf (or glance-cache.conf) carries that this
/// crate does not read; they are accepted without a warning.
pub const GLANCE_SECTIONS: &[&str] = &[
    "barbican",
    "barbican_service_user",
    "cinder",
    "cors",
    "database",
    "file",
    "glance_store",
    "healthcheck",
    "image_format",
    "image_import_opts",
    "import_filtering_opts",
    "inject_metadata_properties",
    "key_manager",
    "keystone_authtoken",
    "os_brick",
    "os_glance_staging_store",
    "os_glance_tasks_store",
    "oslo_concurrency",
    "oslo_limit",
    "oslo_messaging_amqp",
    "oslo_messaging_kafka",
    "oslo_messaging_notifications",
    "oslo_messaging_rabbit",
    "oslo_middleware",
    "oslo_policy",
    "oslo_reports",
    "paste_deploy",
    "profiler",
    "store_type_location_strategy",
    "task",
    "taskflow_executor",
    "vault",
    "wsgi",
];

/// Whether `section` (normalised) is one Glance reads: listed in
/// [`GLANCE_SECTIONS`], any `oslo_messaging_*`, or a per-driver store section
/// such as `glance.store.rbd.store`.
pub fn is_glance_section(section: &str) -> bool {
    GLANCE_SECTIONS.contains(&section)
        || section.starts_with("oslo_messaging_")
        || (section.starts_with("glance.store.") && section.ends_with(".store"))
}

/// The store names declared by `enabled_backends = name:type, name:type`
/// (oslo.config `Dict` syntax), lower-cased like section names.
pub(crate) fn enabled_backend_names(value: &str) -> Vec<String> {
    value
        .split(',')
        .filter_map(|pair| {
            let name = pair.split(':').next().unwrap_or(pair).trim();
            (!name.is_empty()).then(|| name.to_lowercase())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(section: &str, name: &str) -> &'static OptionDef {
        find(section, name).expect("known option")
    }

    #[test]
    fn table_is_consistent() {
        let mut seen = std::collections::HashSet::new();
        for o in OPTIONS {
            assert!(seen.insert((o.section, o.name)), "duplicate {}", o.name);
            assert!(
                o.section == DEFAULT_SECTION || o.section == o.section.to_lowercase(),
                "{}",
                o.section
            );
            assert!(!o.help.is_empty(), "{} has no help", o.name);
            assert!(o.name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'));
            if let Some(d) = o.default {
                assert!(o.parse(d).is_ok(), "default of {} does not parse", o.name);
            }
        }
    }

    #[test]
    fn defaults_applied_through_table_equal_config_default() {
        let mut c = Config {
            bind_host: String::new(),
            bind_port: 1,
            image_cache_dir: Some("/x".into()),
            image_cache_sqlite_db: String::new(),
            image_cache_driver: CacheDriver::Xattr,
            image_cache_max_size: 1,
            image_cache_stall_time: 1,
            worker_self_reference_url: Some(Uri::from_static("http://x")),
            public_endpoint: Some(Uri::from_static("http://x")),
            enabled_backends: [("a".to_owned(), "file".to_owned())].into(),
            paste_deploy: super::super::PasteDeployOptions {
                flavor: Some("x".into()),
                config_file: Some("/x".into()),
            },
            oslo_concurrency: super::super::OsloConcurrencyOptions {
                lock_path: Some("/x".into()),
            },
            glance_store: super::super::GlanceStoreOptions {
                filesystem_store_datadir: None,
                filesystem_store_datadirs: vec![super::super::StoreDir {
                    path: "/x".into(),
                    priority: 1,
                }],
            },
            oslo_policy: super::super::OsloPolicyOptions {
                policy_file: "x".into(),
                enforce_new_defaults: false,
                enforce_scope: false,
            },
            proxy: super::super::ProxyOptions {
                upstream_url: Uri::from_static("http://x"),
                hit_authorization: HitAuthorization::None,
                authorization_cache_ttl: Duration::ZERO,
                authorization_concurrency: 1,
                authorization_timeout: Duration::from_secs(1),
                upstream_connect_timeout: Duration::ZERO,
                upstream_timeout: Duration::ZERO,
                upstream_idle_timeout: Duration::ZERO,
                shutdown_timeout: Duration::ZERO,
                client_idle_timeout: Duration::from_secs(1),
                hit_chunk_size: 0,
                download_buffer_memory: 0,
                min_free_disk: 0,
                admin_listen: Some("x:1".into()),
                serve_ranges: false,
                fill_on_range_miss: true,
                range_fill_wait: Duration::ZERO,
                upstream_ca_file: Some("x".into()),
                upstream_cert_file: Some("x".into()),
                upstream_key_file: Some("x".into()),
                upstream_insecure: true,
                tls_cert_file: Some("x".into()),
                tls_key_file: Some("x".into()),
                tls_client_ca_file: Some("x".into()),
                admin_tls_cert_file: Some("x".into()),
                admin_tls_key_file: Some("x".into()),
                remote_store_url: Some("s3://x".into()),
                remote_store_endpoint: Some("x".into()),
                remote_store_region: Some("x".into()),
                remote_store_access_key_id: Some("x".into()),
                remote_store_secret_access_key: Some("x".into()),
                remote_store_allow_http: true,
                remote_store_ca_file: Some("x".into()),
                remote_max_size: 1,
                remote_timeout: Duration::ZERO,
                remote_sync_interval: Duration::ZERO,
            },
            // auth and keystone are resolved after loading, not applied.
            management: super::super::ManagementOptions {
                token_cache_time: Duration::ZERO,
                policy: PolicyRule::ALL
                    .into_iter()
                    .fold(Default::default(), |p: super::super::CachePolicy, r| {
                        p.with_rule(r, RoleRule::Nobody)
                    }),
                ..Default::default()
            },
            maintenance: super::super::MaintenanceOptions {
                prefetch_enabled: false,
                prefetch_workers: 0,
                prefetch_retries: 0,
                prefetch_retry_delay: Duration::ZERO,
                auto_prune: false,
                clean_interval: Duration::ZERO,
                scrub_rate: 0,
                scrub_interval: Duration::ZERO,
            },
            logging: super::super::LoggingOptions {
                debug: true,
                use_json: true,
                log_file: Some("/x".into()),
            },
        };
        for o in OPTIONS {
            let v = o.parse(o.default.unwrap_or("")).expect("default parses");
            o.apply(&mut c, v);
        }
        assert_eq!(format!("{c:?}"), format!("{:?}", Config::default()));
    }

    #[test]
    fn integer_messages() {
        let max = def("DEFAULT", "image_cache_max_size");
        assert_eq!(
            max.parse("10G"),
            Err("an integer >= 0 (bytes; unit suffixes are not supported)".into())
        );
        assert_eq!(max.parse("-1"), max.parse("10G"));
        assert_eq!(max.parse("10_737_418_240"), Ok(Value::Int(10_737_418_240)));
        let empty = max.parse("").expect_err("empty rejected");
        assert!(empty.contains("not an empty value"), "{empty}");
        assert!(empty.contains("10737418240"), "{empty}");
        let huge = max.parse(&"9".repeat(30)).expect_err("too large");
        assert!(
            huge.contains("between 0 and 18446744073709551615"),
            "{huge}"
        );
        let ttl = def("proxy", "authorization_cache_ttl");
        assert_eq!(
            ttl.parse("31"),
            Err("an integer between 0 and 30 (seconds; unit suffixes are not supported)".into())
        );
        assert_eq!(ttl.parse("10s"), ttl.parse("31"));
        assert_eq!(
            def("DEFAULT", "bind_port").parse("65536"),
            Err("an integer between 0 and 65535 (TCP port)".into())
        );
        assert_eq!(
            def("proxy", "upstream_timeout").parse("0"),
            Err("an integer >= 1 (seconds; unit suffixes are not supported)".into())
        );
        let chunk = def("proxy", "hit_chunk_size");
        assert!(chunk.parse("65535").is_err());
        assert!(chunk.parse("4194305").is_err());
        assert_eq!(chunk.parse("4_194_304"), Ok(Value::Int(4_194_304)));
    }

    #[test]
    fn choice_messages() {
        let d = def("DEFAULT", "image_cache_driver");
        assert_eq!(d.parse("XATTR"), Ok(Value::Choice("xattr")));
        assert_eq!(
            d.parse("redis"),
            Err("one of centralized_db, sqlite, xattr (case-insensitive)".into())
        );
        assert!(d.parse("").is_err());
    }

    #[test]
    fn http_urls() {
        let u = def("proxy", "upstream_url");
        for ok in [
            "http://127.0.0.1:9292",
            "http://glance.example:9292/image",
            "http://[::1]:9292/",
            "HTTP://Glance",
        ] {
            assert!(matches!(u.parse(ok), Ok(Value::Url(_))), "{ok}");
        }
        assert!(matches!(u.parse("https://glance:9292"), Ok(Value::Url(_))));
        for bad in [
            "",
            "glance:9292",
            "/image",
            "ftp://glance/",
            "http:///x",
            "http://:80/",
            "http://a:0/",
            "http://a:99999/",
            "http://a:b/",
            "http://u:p@a/",
            "http://a/?x=1",
            "http://a/#frag",
            "http://a b/",
        ] {
            assert!(u.parse(bad).is_err(), "{bad}");
        }
        assert!(u.parse("http://a/?x").expect_err("query").contains("query"));
    }

    #[test]
    fn strings_and_paths() {
        assert!(def("DEFAULT", "bind_host").parse("").is_err());
        assert!(def("DEFAULT", "image_cache_sqlite_db").parse("").is_err());
        assert_eq!(
            def("DEFAULT", "image_cache_dir").parse(""),
            Ok(Value::Str(String::new()))
        );
    }

    #[test]
    fn bools_parse_and_render_like_python() {
        let b = OptionDef {
            section: "test",
            name: "flag",
            kind: OptionKind::Bool,
            default: Some("false"),
            glance: false,
            secret: false,
            help: "A test flag.",
            apply: |_, _| {},
        };
        assert_eq!(b.parse("Yes"), Ok(Value::Bool(true)));
        assert_eq!(b.parse("off"), Ok(Value::Bool(false)));
        assert_eq!(
            b.parse("maybe"),
            Err("a boolean (true/false, 1/0, on/off, yes/no)".into())
        );
        assert_eq!(OptionDef::render(&Value::Bool(true), "yes"), "True");
        assert_eq!(OptionDef::render(&Value::Int(1000), "1_000"), "1000");
        assert_eq!(
            OptionDef::render(&Value::Choice("sqlite"), "SQLite"),
            "SQLite"
        );
    }

    #[test]
    fn find_normalises_the_section() {
        assert!(find("PROXY", "upstream_url").is_some());
        assert!(find("default", "image_cache_dir").is_none());
        assert!(find("DEFAULT", "Image_Cache_Dir").is_none());
    }

    #[test]
    fn glance_sections() {
        assert!(is_glance_section("keystone_authtoken"));
        assert!(is_glance_section("oslo_messaging_zmq"));
        assert!(is_glance_section("glance.store.rbd.store"));
        assert!(!is_glance_section("proxyy"));
        assert!(!is_glance_section("default"));
    }

    #[test]
    fn backend_names() {
        assert_eq!(
            enabled_backend_names("fast:rbd, Cheap : file,,slow"),
            vec!["fast", "cheap", "slow"]
        );
        assert!(enabled_backend_names("").is_empty());
    }
}
