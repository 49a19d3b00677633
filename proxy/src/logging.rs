//! Log setup with oslo.log's option names.
//!
//! * `[DEFAULT] debug` (bool, default false): `debug` level for this
//!   program's own modules (`glance_cache`, `glance_cache_proxy`), `info`
//!   for everything else; otherwise `info`, or `warn` for the one-shot
//!   maintenance commands ([`LogOptions::with_quiet`]), which cron runs and
//!   which should print nothing when all is well.
//! * `[DEFAULT] use_json` (bool, default false): one JSON object per line
//!   (`timestamp`, `level`, `message` and the event's fields at the top
//!   level, `target`, and the request's `span` with its `request_id`)
//!   instead of text.
//! * `[DEFAULT] log_file` (path, unset): append to this file instead of
//!   writing to standard error. An empty value means standard error, so a
//!   later file can undo a `log_file` set in `glance-api.conf`. (oslo.log's
//!   `log_dir` is not read.)
//! * `RUST_LOG`, when set, replaces the level from `debug` (tracing's
//!   filter syntax, for example `RUST_LOG=info,glance_cache::fill=trace`).
//!
//! `serve` calls [`init`] right after loading its configuration (errors in
//! the configuration itself are printed before, on standard error); the
//! other commands call it with [`LogOptions::default`] (quiet for the
//! one-shot maintenance commands).

use std::fs::{File, OpenOptions};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Mutex;

use anyhow::Context;
use glance_cache_config::LoggingOptions;
use tracing_subscriber::fmt::writer::BoxMakeWriter;
use tracing_subscriber::EnvFilter;

/// The level filter without `debug`.
const INFO: &str = "info";
/// The level filter without `debug`, for quiet commands.
const WARN: &str = "warn";
/// The level filter with `debug = true`: ours at debug, libraries at info.
const DEBUG: &str = "info,glance_cache=debug,glance_cache_proxy=debug";

/// How and where to log.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct LogOptions {
    /// `[DEFAULT] debug`
    pub(crate) debug: bool,
    /// `[DEFAULT] use_json`
    pub(crate) use_json: bool,
    /// `[DEFAULT] log_file`
    pub(crate) log_file: Option<PathBuf>,
    /// Without `debug`: `warn` instead of `info`.
    pub(crate) quiet: bool,
}

impl LogOptions {
    /// `debug`, `use_json` and `log_file` from the loaded configuration.
    pub(crate) fn from_config(logging: &LoggingOptions) -> Self {
        LogOptions {
            debug: logging.debug,
            use_json: logging.use_json,
            log_file: logging.log_file.clone(),
            quiet: false,
        }
    }

    /// Quiet: `warn` rather than `info` unless `debug` is set.
    pub(crate) fn with_quiet(mut self, quiet: bool) -> Self {
        self.quiet = quiet;
        self
    }

    /// The level filter used when `RUST_LOG` is not set.
    fn default_filter(&self) -> &'static str {
        match (self.debug, self.quiet) {
            (true, _) => DEBUG,
            (false, true) => WARN,
            (false, false) => INFO,
        }
    }
}

/// Installs the global subscriber. Fails only if `log_file` cannot be
/// opened for appending. An invalid `RUST_LOG` is reported as a warning and
/// the level from `debug` is used.
pub(crate) fn init(options: &LogOptions) -> anyhow::Result<()> {
    let default = options.default_filter();
    let mut bad_env = None;
    let filter = match std::env::var("RUST_LOG") {
        Ok(directives) if !directives.trim().is_empty() => EnvFilter::try_new(&directives)
            .unwrap_or_else(|e| {
                bad_env = Some(format!(
                    "RUST_LOG={directives:?} is not a valid filter ({e}); using {default:?}"
                ));
                EnvFilter::new(default)
            }),
        _ => EnvFilter::new(default),
    };
    let (writer, ansi) = match &options.log_file {
        Some(path) => {
            let file = open_append(path)?;
            (BoxMakeWriter::new(Mutex::new(file)), false)
        }
        None => (
            BoxMakeWriter::new(std::io::stderr),
            std::io::stderr().is_terminal(),
        ),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    // Already installed (only possible in tests): keep the first one.
    let _ = if options.use_json {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init()
    } else {
        builder.with_ansi(ansi).try_init()
    };
    if let Some(warning) = bad_env {
        tracing::warn!("{warning}");
    }
    Ok(())
}

fn open_append(path: &std::path::Path) -> anyhow::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("cannot open log_file {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use glance_cache_config::Config;

    fn options(sources: &[(&str, &str)]) -> LogOptions {
        LogOptions::from_config(&Config::from_sources(sources).unwrap().config.logging)
    }

    #[test]
    fn defaults_when_unset() {
        let options = options(&[("proxy.conf", "[DEFAULT]\n")]);
        assert_eq!(options, LogOptions::default());
    }

    #[test]
    fn reads_oslo_log_options() {
        let options = options(&[(
            "proxy.conf",
            "[DEFAULT]\nstate = /var/log\ndebug = True\nuse_json = yes\nlog_file = $state/proxy.log\n",
        )]);
        assert!(options.debug && options.use_json);
        assert_eq!(options.log_file, Some(PathBuf::from("/var/log/proxy.log")));
    }

    #[test]
    fn levels() {
        let quiet = LogOptions::default().with_quiet(true);
        assert_eq!(quiet.default_filter(), "warn");
        assert_eq!(LogOptions::default().default_filter(), "info");
        let debug = LogOptions {
            debug: true,
            ..quiet
        };
        assert_eq!(debug.default_filter(), DEBUG);
    }

    #[test]
    fn an_empty_log_file_in_a_later_file_means_stderr() {
        let options = options(&[
            (
                "glance-api.conf",
                "[DEFAULT]\nlog_file = /var/log/glance/api.log\n",
            ),
            ("proxy.conf", "[DEFAULT]\nlog_file =\n"),
        ]);
        assert_eq!(options.log_file, None);
    }

    #[test]
    fn a_bad_boolean_names_file_and_line() {
        // The option table types it, so loading the configuration fails.
        let err =
            Config::from_sources(&[("proxy.conf", "[DEFAULT]\n\nuse_json = maybe\n")]).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("proxy.conf:3"), "{msg}");
        assert!(msg.contains("use_json"), "{msg}");
        assert!(msg.contains("maybe"), "{msg}");
    }

    #[test]
    fn an_unwritable_log_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = open_append(&dir.path().join("missing").join("x.log")).unwrap_err();
        assert!(
            err.to_string().starts_with("cannot open log_file "),
            "{err}"
        );
    }
}
