//! Configuration: Glance's `glance-api.conf` / `glance-cache.conf` files,
//! read with oslo.config's rules, plus this proxy's own `[proxy]` section.
//!
//! - [`Config::load`] reads files in order; later files override earlier
//!   ones, and within a file the last assignment of an option wins.
//!   [`Config::config_dir_files`] lists a `--config-dir` like oslo.config
//!   does (`*.conf`, sorted). [`Config::load_with_env`] then applies
//!   environment variables `GLANCE_CACHE__<SECTION>__<OPTION>`
//!   ([`ENV_PREFIX`]), which override every file and are validated like
//!   file values; [`Source`] says where each effective value came from.
//! - The INI syntax is a port of oslo.config's reader: `#` and
//!   `;` full-line comments only (`key = v # x` has the value `v # x`),
//!   `=` or `:` (whichever comes first), one pair of surrounding quotes
//!   removed, indented continuation lines joined with `\n`, section names
//!   case-insensitive except `DEFAULT` (`[default]` is a different section).
//! - Values are typed like oslo.config does it: integers follow Python's
//!   `int()` (`10_737_418_240` is fine, `10G` is not), choices, and
//!   `$name` / `${name}` / `${group.name}` interpolation (`$$` or `\$` for a
//!   literal `$`). An empty value for an integer option is an error (oslo.config
//!   would silently read it as `None`).
//! - Glance's own options keep Glance's names and defaults; every option is
//!   described in [`options::OPTIONS`], which also drives `check-config` and
//!   the sample configuration.
//! - Errors name file, line, section, option, value and what was expected.
//!   Probable typos and unknown sections become [`ConfigWarning`]s; the many
//!   Glance options and sections this crate does not read are accepted
//!   silently and kept in [`Loaded::raw`].
//! - [`sample()`] renders the option table as a commented sample file.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use glance_cache_config::{CacheDriver, Config, Source};
//!
//! let text = "\
//! [DEFAULT]
//! image_cache_dir = /var/lib/glance/image-cache
//! image_cache_max_size = 20_000_000_000
//! # Glance options this crate does not read are fine:
//! show_image_direct_url = true
//!
//! [proxy]
//! upstream_url = http://127.0.0.1:9393
//! authorization_cache_ttl = 5
//! ";
//! let loaded = Config::from_sources(&[("glance-api.conf", text)])?;
//! let config = &loaded.config;
//! assert_eq!(config.image_cache_max_size, 20_000_000_000);
//! assert_eq!(config.image_cache_driver, CacheDriver::CentralizedDb); // the default
//! assert_eq!(config.proxy.authorization_cache_ttl, Duration::from_secs(5));
//! assert_eq!(config.proxy.upstream_url.port_u16(), Some(9393));
//! assert!(loaded.warnings.is_empty());
//!
//! assert_eq!(loaded.source_of("DEFAULT", "image_cache_max_size").to_string(), "glance-api.conf:3");
//! assert_eq!(loaded.source_of("DEFAULT", "image_cache_driver"), Source::Default);
//!
//! // Sections this crate does not type are still available, raw.
//! let raw = loaded.raw.get("DEFAULT", "show_image_direct_url").unwrap();
//! assert_eq!(raw.value, "true");
//!
//! // Mistakes are reported with file and line.
//! let err = Config::from_sources(&[("glance-api.conf", "[DEFAULT]\nimage_cache_max_size = 10G\n")])
//!     .unwrap_err();
//! assert_eq!(
//!     err.to_string(),
//!     "glance-api.conf:2: [DEFAULT] image_cache_max_size = \"10G\": \
//!      expected an integer >= 0 (bytes; unit suffixes are not supported)"
//! );
//! // The environment overrides every file, and errors name the variable.
//! let env = [("GLANCE_CACHE__PROXY__UPSTREAM_URL".to_owned(), "http://127.0.0.1:9191".to_owned())];
//! let loaded = Config::from_sources_with_env(&[("glance-api.conf", text)], env)?;
//! assert_eq!(loaded.config.proxy.upstream_url.port_u16(), Some(9191));
//! assert_eq!(
//!     loaded.source_of("proxy", "upstream_url").to_string(),
//!     "environment GLANCE_CACHE__PROXY__UPSTREAM_URL"
//! );
//! let env = [("GLANCE_CACHE__DEFAULT__BIND_PORT".to_owned(), "http".to_owned())];
//! let err = Config::from_sources_with_env(&[("glance-api.conf", text)], env).unwrap_err();
//! assert_eq!(
//!     err.to_string(),
//!     "environment GLANCE_CACHE__DEFAULT__BIND_PORT: [DEFAULT] bind_port = \"http\": \
//!      expected an integer between 0 and 65535 (TCP port)"
//! );
//! # Ok::<(), glance_cache_config::ConfigError>(())
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

mod env;
mod error;
mod glance;
mod ini;
mod load;
mod maintenance;
mod management;
pub mod options;
mod raw;
mod sample;
mod value;

pub use env::{env_var_name, ENV_PREFIX};
pub use error::{
    ConfigError, ConfigWarning, ConflictError, EnvironmentError, InterpolationError,
    InterpolationProblem, SyntaxError, SyntaxErrorKind, ValueError, WarningKind,
};
pub use glance::{
    GlanceStoreOptions, OsloConcurrencyOptions, OsloPolicyOptions, PasteDeployOptions, StoreDir,
};
pub use glance_cache::auth::manage::{
    CachePolicy, Domain, KeystoneOptions, ManagementAuthMode, PolicyRule, Project, RoleRule,
};
pub use glance_cache::auth::HitAuthorization;
pub use load::{Effective, Loaded};
pub use maintenance::MaintenanceOptions;
pub use management::{AuthSettingsError, ManagementOptions};
pub use options::{OptionDef, OptionKind, Unit, OPTIONS};
pub use raw::{RawConfig, RawValue, Source};
pub use sample::{options_table, sample};

/// The typed configuration. `Default` gives every option its default.
#[derive(Clone, Debug)]
pub struct Config {
    /// `[DEFAULT] bind_host`: the address to listen on. Default `0.0.0.0`.
    pub bind_host: String,
    /// `[DEFAULT] bind_port`: the port to listen on. Default 9292.
    pub bind_port: u16,
    /// `[DEFAULT] image_cache_dir`: the cache base directory; `None` (unset
    /// or empty) means caching is off.
    pub image_cache_dir: Option<PathBuf>,
    /// `[DEFAULT] image_cache_sqlite_db`: the index file, relative to
    /// `image_cache_dir` unless absolute. Default `cache.db`.
    pub image_cache_sqlite_db: String,
    /// `[DEFAULT] image_cache_driver`. Default [`CacheDriver::CentralizedDb`].
    pub image_cache_driver: CacheDriver,
    /// `[DEFAULT] image_cache_max_size`: the prune threshold in bytes.
    /// Default 10737418240 (10 GiB).
    pub image_cache_max_size: u64,
    /// `[DEFAULT] image_cache_stall_time`: seconds after which incomplete
    /// files are cleaned. Default 86400.
    pub image_cache_stall_time: u64,
    /// `[DEFAULT] worker_self_reference_url`: this node's URL for Glance's
    /// centralized_db driver; `None` when unset or empty. Read for
    /// compatibility.
    pub worker_self_reference_url: Option<http::Uri>,
    /// `[DEFAULT] public_endpoint`: the public base URL of the image API,
    /// the base of the links in the versions document; `None` (unset or
    /// empty) means "from the request".
    pub public_endpoint: Option<http::Uri>,
    /// `[DEFAULT] enabled_backends`: Glance's stores, name to type. Read
    /// for compatibility. Default empty.
    pub enabled_backends: BTreeMap<String, String>,
    /// `[paste_deploy]`. Read for compatibility.
    pub paste_deploy: PasteDeployOptions,
    /// `[oslo_concurrency]`. Read for compatibility.
    pub oslo_concurrency: OsloConcurrencyOptions,
    /// `[glance_store]`: the filesystem store. Read for compatibility.
    pub glance_store: GlanceStoreOptions,
    /// `[oslo_policy]`. Read for compatibility.
    pub oslo_policy: OsloPolicyOptions,
    /// The `[proxy]` section.
    pub proxy: ProxyOptions,
    /// Who may call the cache-management API: `[proxy] management_auth`
    /// and `admin_tokens`, `[keystone_authtoken]`, `[cache_policy]`.
    pub management: ManagementOptions,
    /// The prefetch worker, pruning and cleaning (`[proxy]` options).
    pub maintenance: MaintenanceOptions,
    /// Logging: oslo.log's `debug`, `use_json` and `log_file`.
    pub logging: LoggingOptions,
}

/// Logging, with oslo.log's option names (`[DEFAULT]`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LoggingOptions {
    /// `debug`: this program's own modules log at debug level. Default false.
    pub debug: bool,
    /// `use_json`: one JSON object per line instead of text. Default false.
    pub use_json: bool,
    /// `log_file`: append to this file instead of standard error; `None`
    /// when unset or empty.
    pub log_file: Option<PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            bind_host: "0.0.0.0".to_owned(),
            bind_port: 9292,
            image_cache_dir: None,
            image_cache_sqlite_db: "cache.db".to_owned(),
            image_cache_driver: CacheDriver::CentralizedDb,
            image_cache_max_size: 10_737_418_240,
            image_cache_stall_time: 86_400,
            worker_self_reference_url: None,
            public_endpoint: None,
            enabled_backends: BTreeMap::new(),
            paste_deploy: PasteDeployOptions::default(),
            oslo_concurrency: OsloConcurrencyOptions::default(),
            glance_store: GlanceStoreOptions::default(),
            oslo_policy: OsloPolicyOptions::default(),
            proxy: ProxyOptions::default(),
            management: ManagementOptions::default(),
            maintenance: MaintenanceOptions::default(),
            logging: LoggingOptions::default(),
        }
    }
}

impl Config {
    /// Loads `files` like oslo.config: in order, later files override
    /// earlier ones (Glance's cache tools read `glance-api.conf`, then
    /// `glance-cache.conf`). No files gives all defaults.
    ///
    /// The environment is not read; see [`Config::load_with_env`].
    pub fn load<P: AsRef<Path>>(files: &[P]) -> Result<Loaded, ConfigError> {
        load::load_files(files, [])
    }

    /// Like [`Config::load`], then applies the configuration variables
    /// among `env` (pass `std::env::vars()`; variables without the
    /// [`ENV_PREFIX`] are ignored): `GLANCE_CACHE__<SECTION>__<OPTION>=value`
    /// sets `[section] option` (names are case-insensitive; `DEFAULT` is
    /// the default section) and overrides every file. A multi-valued option
    /// takes a comma-separated list that replaces the files' values.
    ///
    /// Values are interpolated and validated like file values, with
    /// [`Source::Environment`] as their location. A prefixed variable that
    /// names no option is a [`ConfigError::Environment`].
    pub fn load_with_env<P: AsRef<Path>>(
        files: &[P],
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Loaded, ConfigError> {
        load::load_files(files, env)
    }

    /// Like [`Config::load`], from in-memory `(name, text)` pairs; the name
    /// is used as the path in errors, warnings and [`Source`]s.
    pub fn from_sources(sources: &[(&str, &str)]) -> Result<Loaded, ConfigError> {
        Self::from_sources_with_env(sources, [])
    }

    /// Like [`Config::load_with_env`], from in-memory `(name, text)` pairs.
    pub fn from_sources_with_env(
        sources: &[(&str, &str)],
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Loaded, ConfigError> {
        load::load_texts(
            sources
                .iter()
                .map(|(name, text)| (PathBuf::from(name), *text)),
            env,
        )
    }

    /// The files oslo.config's `--config-dir DIR` reads: every regular file
    /// (or link to one) in `dir` named `*.conf` and not hidden, sorted by
    /// name. An unreadable or missing directory is a
    /// [`ConfigError::ReadDir`].
    pub fn config_dir_files(dir: impl AsRef<Path>) -> Result<Vec<PathBuf>, ConfigError> {
        load::config_dir_files(dir.as_ref())
    }

    /// Whether caching is on (`image_cache_dir` is set).
    pub fn cache_enabled(&self) -> bool {
        self.image_cache_dir.is_some()
    }

    /// The SQLite index file: `image_cache_sqlite_db` under
    /// `image_cache_dir` (an absolute `image_cache_sqlite_db` is used as is).
    /// `None` when caching is off.
    pub fn sqlite_db_path(&self) -> Option<PathBuf> {
        self.image_cache_dir
            .as_ref()
            .map(|dir| dir.join(&self.image_cache_sqlite_db))
    }
}

/// The `[proxy]` section: options of this proxy that Glance does not have.
#[derive(Clone, Debug)]
pub struct ProxyOptions {
    /// `upstream_url`: the Glance API to forward to; an absolute `http://`
    /// URL, possibly with a path prefix. Default `http://127.0.0.1:9191`.
    pub upstream_url: http::Uri,
    /// `hit_authorization`: how hits are authorized. Default
    /// [`HitAuthorization::Probe`].
    pub hit_authorization: HitAuthorization,
    /// `authorization_cache_ttl`: how long a per-token authorization result
    /// is reused, 0 to 30 s. Default 10 s.
    pub authorization_cache_ttl: Duration,
    /// `authorization_concurrency`: hit authorizations asking the upstream
    /// at once. Default 64.
    pub authorization_concurrency: usize,
    /// `authorization_timeout`: bound on one hit authorization. Default 10 s.
    pub authorization_timeout: Duration,
    /// `upstream_connect_timeout`: connection timeout, >= 1 s. Default 5 s.
    pub upstream_connect_timeout: Duration,
    /// `upstream_timeout`: time until the upstream's response headers,
    /// >= 1 s. Default 60 s.
    pub upstream_timeout: Duration,
    /// `upstream_idle_timeout`: longest pause between body bytes from the
    /// upstream, >= 1 s. Default 60 s.
    pub upstream_idle_timeout: Duration,
    /// `shutdown_timeout`: time downloads get to finish after SIGTERM.
    /// Default 30 s.
    pub shutdown_timeout: Duration,
    /// `client_idle_timeout`: a client that takes no bytes for this long is
    /// disconnected; zero means never. Default 60 s.
    pub client_idle_timeout: Duration,
    /// `hit_chunk_size`: bytes per read when serving a hit, 64 KiB to 4 MiB.
    /// Default 256 KiB.
    pub hit_chunk_size: usize,
    /// `download_buffer_memory`: bytes the full-size read buffers of all
    /// downloads share. Default 64 MiB.
    pub download_buffer_memory: usize,
    /// `min_free_disk`: bytes that must stay free on the cache filesystem
    /// for a fill to start. Default 256 MiB.
    pub min_free_disk: u64,
    /// `admin_listen`: `host:port` of the admin endpoint (metrics, health);
    /// `None` (unset or empty) means off.
    pub admin_listen: Option<String>,
    /// `serve_ranges`: single ranges answered from the cache. Default true.
    pub serve_ranges: bool,
    /// `fill_on_range_miss`: a range of an image not cached starts caching
    /// it. Default false.
    pub fill_on_range_miss: bool,
    /// `range_fill_wait`: how long a range of an image being filled waits
    /// for the fill before it goes to the upstream. Default 2 s.
    pub range_fill_wait: Duration,
    /// `upstream_ca_file`: CA bundle for an https upstream (unset: the
    /// system's trust store).
    pub upstream_ca_file: Option<PathBuf>,
    /// `upstream_cert_file`: client certificate shown to the upstream.
    pub upstream_cert_file: Option<PathBuf>,
    /// `upstream_key_file`: its key.
    pub upstream_key_file: Option<PathBuf>,
    /// `upstream_insecure`: upstream certificates unchecked. Default false.
    pub upstream_insecure: bool,
    /// `tls_cert_file`: the listener's certificate chain (TLS when set with
    /// `tls_key_file`).
    pub tls_cert_file: Option<PathBuf>,
    /// `tls_key_file`: the listener's key.
    pub tls_key_file: Option<PathBuf>,
    /// `tls_client_ca_file`: clients must present a certificate of these CAs.
    pub tls_client_ca_file: Option<PathBuf>,
    /// `admin_tls_cert_file`: the admin endpoint's certificate chain.
    pub admin_tls_cert_file: Option<PathBuf>,
    /// `admin_tls_key_file`: the admin endpoint's key.
    pub admin_tls_key_file: Option<PathBuf>,
    /// `remote_store_url`: `s3://bucket[/prefix]` of the shared remote
    /// tier; `None` means none.
    pub remote_store_url: Option<String>,
    /// `remote_store_endpoint`: the S3-compatible store's base URL.
    pub remote_store_endpoint: Option<String>,
    /// `remote_store_region`.
    pub remote_store_region: Option<String>,
    /// `remote_store_access_key_id`.
    pub remote_store_access_key_id: Option<String>,
    /// `remote_store_secret_access_key`.
    pub remote_store_secret_access_key: Option<String>,
    /// `remote_store_allow_http`: plain http allowed; `false` leaves it
    /// to `AWS_ALLOW_HTTP`.
    pub remote_store_allow_http: bool,
    /// `remote_store_ca_file`: CA bundle for an https store.
    pub remote_store_ca_file: Option<PathBuf>,
    /// `remote_max_size`: bytes of the remote tier; 0 means no limit.
    pub remote_max_size: u64,
    /// `remote_timeout`: bound on one request to the store. Default 2 s.
    pub remote_timeout: Duration,
    /// `remote_sync_interval`: registry reconciliation and remote pruning
    /// period; zero means never. Default 60 s.
    pub remote_sync_interval: Duration,
}

impl Default for ProxyOptions {
    fn default() -> Self {
        Self {
            upstream_url: http::Uri::from_static("http://127.0.0.1:9191"),
            hit_authorization: HitAuthorization::Probe,
            authorization_cache_ttl: Duration::from_secs(10),
            authorization_concurrency: 64,
            authorization_timeout: Duration::from_secs(10),
            upstream_connect_timeout: Duration::from_secs(5),
            upstream_timeout: Duration::from_secs(60),
            upstream_idle_timeout: Duration::from_secs(60),
            shutdown_timeout: Duration::from_secs(30),
            client_idle_timeout: Duration::from_secs(60),
            hit_chunk_size: 262_144,
            download_buffer_memory: 67_108_864,
            min_free_disk: 268_435_456,
            admin_listen: None,
            serve_ranges: true,
            fill_on_range_miss: false,
            range_fill_wait: Duration::from_secs(2),
            upstream_ca_file: None,
            upstream_cert_file: None,
            upstream_key_file: None,
            upstream_insecure: false,
            tls_cert_file: None,
            tls_key_file: None,
            tls_client_ca_file: None,
            admin_tls_cert_file: None,
            admin_tls_key_file: None,
            remote_store_url: None,
            remote_store_endpoint: None,
            remote_store_region: None,
            remote_store_access_key_id: None,
            remote_store_secret_access_key: None,
            remote_store_allow_http: false,
            remote_store_ca_file: None,
            remote_max_size: 0,
            remote_timeout: Duration::from_secs(2),
            remote_sync_interval: Duration::from_secs(60),
        }
    }
}

/// `image_cache_driver`: where cache metadata lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheDriver {
    /// `centralized_db`: Glance's database, shared by all nodes (Glance's
    /// default since 2024.1).
    CentralizedDb,
    /// `sqlite`: a per-node SQLite file (deprecated in Glance).
    Sqlite,
    /// `xattr`: extended attributes on the cached files.
    Xattr,
}

impl fmt::Display for CacheDriver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod tests_auth;

#[cfg(test)]
mod tests_management;

#[cfg(test)]
mod tests_sources;
