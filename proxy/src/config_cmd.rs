//! Where the configuration comes from, for every command ([`ConfigArgs`]:
//! `--config-file`, `--config-dir`, `GLANCE_CACHE__*` variables), and the
//! `check-config` and `sample-config` commands.

use std::io::Write;
use std::path::PathBuf;

use glance_cache_config::{
    Config, ConfigError, Effective, EnvironmentError, Loaded, ManagementAuthMode, ENV_PREFIX,
};

/// The files read when no `--config-file` or `--config-dir` is given (those
/// that exist, in this order): Glance's own, as its cache commands read
/// them, then the proxy's, which the package installs and the units pass,
/// so a bare `glance-cache-pruner` from an old cron line sees the same
/// cache as the running proxy.
pub(crate) const DEFAULT_CONFIG_FILES: &[&str] = &[
    "/etc/glance/glance-api.conf",
    "/etc/glance/glance-cache.conf",
    "/etc/glance/glance-cache-proxy.conf",
];

/// Help shown after the options of `check-config` (and useful for every
/// command that takes [`ConfigArgs`]).
pub(crate) const CHECK_CONFIG_AFTER_HELP: &str = "\
Output: one line per option, `[section] option = value    (source)`, where source is
`default`, `FILE:LINE` or `environment VARIABLE`; passwords and tokens are shown as ****.
Warnings go to stderr.

Exit status: 0 the configuration is valid (warnings allowed); 1 it is not (the error names
the file and line, or the environment variable); 2 usage error.";

/// Where the configuration comes from: flatten it into every command that
/// reads the configuration.
// The doc comments are clap's help text (plain text, `<SECTION>` is not HTML).
#[allow(rustdoc::invalid_html_tags)]
#[derive(Clone, Debug, Default, clap::Args)]
pub(crate) struct ConfigArgs {
    /// Configuration file (oslo.config INI: glance-api.conf, glance-cache-proxy.conf, ...);
    /// repeatable, later files override earlier ones.
    ///
    /// Without any --config-file or --config-dir, /etc/glance/glance-api.conf,
    /// /etc/glance/glance-cache.conf and /etc/glance/glance-cache-proxy.conf are read, those
    /// that exist, in this order.
    ///
    /// Environment variables GLANCE_CACHE__<SECTION>__<OPTION> override every file, e.g.
    /// GLANCE_CACHE__DEFAULT__IMAGE_CACHE_DIR=/var/lib/glance/image-cache or
    /// GLANCE_CACHE__PROXY__UPSTREAM_URL=http://127.0.0.1:9191 (a comma-separated list for
    /// options that can be repeated); they are validated like file values.
    #[arg(long = "config-file", value_name = "FILE")]
    pub(crate) config_files: Vec<PathBuf>,
    /// Directory whose *.conf files are read (sorted by name) after every --config-file;
    /// repeatable.
    #[arg(long = "config-dir", value_name = "DIR")]
    pub(crate) config_dirs: Vec<PathBuf>,
}

impl ConfigArgs {
    /// The files to read, in order: the `--config-file`s, then the
    /// `*.conf` files of each `--config-dir`; with neither, the
    /// [`DEFAULT_CONFIG_FILES`] that exist.
    pub(crate) fn files(&self) -> Result<Vec<PathBuf>, ConfigError> {
        self.files_or(DEFAULT_CONFIG_FILES)
    }

    fn files_or(&self, defaults: &[&str]) -> Result<Vec<PathBuf>, ConfigError> {
        if self.config_files.is_empty() && self.config_dirs.is_empty() {
            return Ok(defaults
                .iter()
                .map(PathBuf::from)
                .filter(|p| p.is_file())
                .collect());
        }
        let mut files = self.config_files.clone();
        for dir in &self.config_dirs {
            files.extend(Config::config_dir_files(dir)?);
        }
        Ok(files)
    }

    /// Loads the configuration: [`ConfigArgs::files`], then the
    /// `GLANCE_CACHE__*` variables of the process environment.
    pub(crate) fn load(&self) -> Result<Loaded, ConfigError> {
        let files = self.files()?;
        tracing::debug!(?files, "loading configuration");
        Config::load_with_env(&files, process_env()?)
    }

    /// Loads the configuration for a command: every warning is logged, and
    /// an error becomes `invalid configuration: FILE:LINE: ...`.
    pub(crate) fn load_config(&self) -> anyhow::Result<Config> {
        let loaded = self
            .load()
            .map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
        for warning in &loaded.warnings {
            tracing::warn!("{warning}");
        }
        Ok(loaded.config)
    }
}

/// The configuration variables of the process environment. A value that
/// is not UTF-8 is an error naming the variable.
fn process_env() -> Result<Vec<(String, String)>, ConfigError> {
    let mut out = Vec::new();
    for (key, value) in std::env::vars_os() {
        let Some(key) = key.to_str().filter(|k| k.starts_with(ENV_PREFIX)) else {
            continue;
        };
        let value = value.into_string().map_err(|_| {
            ConfigError::Environment(Box::new(EnvironmentError {
                variable: key.to_owned(),
                problem: "the value is not valid UTF-8".to_owned(),
            }))
        })?;
        out.push((key.to_owned(), value));
    }
    Ok(out)
}

/// `glance-cache-proxy check-config`.
#[derive(Debug, clap::Args)]
#[command(after_help = CHECK_CONFIG_AFTER_HELP)]
pub(crate) struct CheckConfigArgs {
    #[command(flatten)]
    pub(crate) config: ConfigArgs,
}

/// Prints the effective configuration to stdout and the warnings to
/// stderr. An invalid configuration is an error whose message starts with
/// the file and line (or the environment variable).
pub(crate) fn check_config(args: &CheckConfigArgs) -> anyhow::Result<()> {
    // The message of a ConfigError is complete (its source included).
    let plain = |e: ConfigError| anyhow::Error::msg(e.to_string());
    let files = args.config.files().map_err(plain)?;
    let loaded = Config::load_with_env(&files, process_env().map_err(plain)?).map_err(plain)?;
    let mut out = String::new();
    out.push_str(&files_line(&files));
    out.push_str(&render_effective(loaded.effective()));
    out.push_str(&format!(
        "# [proxy] management_auth resolves to {}\n",
        loaded.config.management.auth
    ));
    if loaded.config.management.auth == ManagementAuthMode::Deny {
        out.push_str("# (every cache-management call is refused with 401)\n");
    }
    write_stdout(&out)?;
    for warning in &loaded.warnings {
        eprintln!("glance-cache-proxy: warning: {warning}");
    }
    // The certificate files are read and checked as `serve` would.
    check_tls_files(&loaded.config)?;
    eprintln!(
        "glance-cache-proxy: the configuration is valid ({} warning{})",
        loaded.warnings.len(),
        if loaded.warnings.len() == 1 { "" } else { "s" }
    );
    Ok(())
}

/// The TLS settings as `serve` uses them: pairs complete, files readable,
/// keys matching their certificates.
fn check_tls_files(config: &Config) -> anyhow::Result<()> {
    let p = &config.proxy;
    let upstream = crate::tls::upstream(p)?;
    if p.upstream_url.scheme() == Some(&http::uri::Scheme::HTTPS)
        && (upstream.ca_file().is_some() || upstream.client_cert().is_some())
    {
        upstream
            .build()
            .map_err(|e| anyhow::anyhow!("the TLS settings of the https upstream_url: {e}"))?;
    }
    crate::tls::listener(p)?;
    crate::tls::admin_listener(p)?;
    Ok(())
}

/// `# files: a, b` (or a note that none was read).
fn files_line(files: &[PathBuf]) -> String {
    if files.is_empty() {
        return "# files: none (defaults and environment only)\n".to_owned();
    }
    let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    format!("# files: {}\n", names.join(", "))
}

/// One line per option: `[section] option = value    (source)`, grouped by
/// section like the sample configuration, the sources aligned.
fn render_effective(effective: &[Effective]) -> String {
    let mut sections: Vec<&str> = Vec::new();
    for e in effective {
        if !sections.contains(&e.option.section) {
            sections.push(e.option.section);
        }
    }
    let lines: Vec<(String, &Effective)> = sections
        .iter()
        .flat_map(|s| effective.iter().filter(move |e| e.option.section == *s))
        .map(|e| {
            let left = format!("[{}] {} = {}", e.option.section, e.option.name, shown(e));
            (left, e)
        })
        .collect();
    let width = lines
        .iter()
        .map(|(l, _)| l.chars().count())
        .max()
        .unwrap_or(0)
        .min(64);
    let mut out = String::new();
    for (left, e) in &lines {
        out.push_str(&format!("{left:<width$}    ({})\n", e.source));
    }
    out
}

/// The value as `check-config` shows it: `<unset>`, `""`, `****` for a
/// credential, or the value with newlines escaped.
fn shown(e: &Effective) -> String {
    match &e.value {
        None => "<unset>".to_owned(),
        Some(v) if v.is_empty() => "\"\"".to_owned(),
        Some(_) if e.option.secret => "****".to_owned(),
        Some(v) => v.replace('\n', "\\n"),
    }
}

/// What `sample-config` prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum SampleFormat {
    /// The commented sample configuration file.
    Ini,
    /// A Markdown table of the options (the README's reference).
    Markdown,
}

/// `glance-cache-proxy sample-config`: the commented sample configuration
/// (`etc/glance-cache-proxy.conf.sample` is this output).
pub(crate) fn sample_config(format: SampleFormat) -> anyhow::Result<()> {
    match format {
        SampleFormat::Ini => write_stdout(&glance_cache_config::sample()),
        SampleFormat::Markdown => write_stdout(&glance_cache_config::options_table()),
    }
}

/// Writes `text` to stdout; a closed pipe (`| head`) is not an error.
fn write_stdout(text: &str) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(anyhow::Error::new(e).context("cannot write to stdout"))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_flags_the_existing_default_files_are_read() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let api = tmp.path().join("glance-api.conf");
        let cache = tmp.path().join("glance-cache.conf");
        std::fs::write(&cache, "").expect("write");
        let defaults = [api.to_str().expect("utf-8"), cache.to_str().expect("utf-8")];
        let none = ConfigArgs::default();
        assert_eq!(none.files_or(&defaults).expect("ok"), vec![cache.clone()]);
        std::fs::write(&api, "").expect("write");
        assert_eq!(
            none.files_or(&defaults).expect("ok"),
            vec![api.clone(), cache.clone()]
        );
        // Any flag turns the defaults off.
        let dir = tmp.path().join("empty.d");
        std::fs::create_dir(&dir).expect("mkdir");
        let only_dir = ConfigArgs {
            config_dirs: vec![dir],
            ..ConfigArgs::default()
        };
        assert!(only_dir.files_or(&defaults).expect("ok").is_empty());
    }

    #[test]
    fn a_bare_command_reads_every_file_the_systemd_units_pass() {
        let units = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../etc/systemd");
        let mut passed = 0;
        for unit in std::fs::read_dir(&units).expect("etc/systemd") {
            let text = std::fs::read_to_string(unit.expect("entry").path()).expect("unit");
            for file in text
                .split("--config-file ")
                .skip(1)
                .filter_map(|rest| rest.split_whitespace().next())
            {
                assert!(
                    DEFAULT_CONFIG_FILES.contains(&file),
                    "{file} is not read by default"
                );
                passed += 1;
            }
        }
        assert!(passed >= 6, "the units pass their files with --config-file");
        // Glance's files first: the proxy's own file overrides them.
        assert_eq!(
            DEFAULT_CONFIG_FILES.last(),
            Some(&"/etc/glance/glance-cache-proxy.conf")
        );
    }

    #[test]
    fn files_then_directories() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let d1 = tmp.path().join("one.d");
        let d2 = tmp.path().join("two.d");
        std::fs::create_dir(&d1).expect("mkdir");
        std::fs::create_dir(&d2).expect("mkdir");
        for p in [d1.join("b.conf"), d1.join("a.conf"), d2.join("0.conf")] {
            std::fs::write(p, "").expect("write");
        }
        let args = ConfigArgs {
            config_files: vec!["/x.conf".into(), "/y.conf".into()],
            config_dirs: vec![d1.clone(), d2.clone()],
        };
        assert_eq!(
            args.files().expect("ok"),
            vec![
                PathBuf::from("/x.conf"),
                PathBuf::from("/y.conf"),
                d1.join("a.conf"),
                d1.join("b.conf"),
                d2.join("0.conf")
            ]
        );
        let missing = ConfigArgs {
            config_dirs: vec![tmp.path().join("nope")],
            ..ConfigArgs::default()
        };
        assert!(matches!(missing.files(), Err(ConfigError::ReadDir { .. })));
    }

    #[test]
    fn values_are_shown_safely() {
        let loaded = Config::from_sources(&[(
            "a.conf",
            "[DEFAULT]\nimage_cache_dir =\n[keystone_authtoken]\npassword = hunter2\n\
             [proxy]\nadmin_tokens = tok\n",
        )])
        .expect("loads");
        let text = render_effective(loaded.effective());
        assert!(
            !text.contains("hunter2") && !text.contains("tok\n"),
            "{text}"
        );
        let line = |prefix: &str| {
            text.lines()
                .find(|l| l.starts_with(prefix))
                .unwrap_or_else(|| panic!("{prefix} in {text}"))
                .to_owned()
        };
        assert!(line("[keystone_authtoken] password = ****").ends_with("(a.conf:4)"));
        assert!(line("[proxy] admin_tokens = ****").ends_with("(a.conf:6)"));
        assert!(line("[DEFAULT] image_cache_dir = \"\"").ends_with("(a.conf:2)"));
        assert!(line("[DEFAULT] bind_port = 9292 ").ends_with("(default)"));
        assert!(line("[DEFAULT] public_endpoint = <unset> ").ends_with("(default)"));
        assert!(line("[keystone_authtoken] username = <unset> ").ends_with("(default)"));
        // Grouped by section, sources lined up.
        let default_tokens = text.find("[DEFAULT] admin_tokens").expect("listed");
        assert!(
            default_tokens < text.find("[proxy]").expect("listed"),
            "{text}"
        );
        let columns: Vec<usize> = text
            .lines()
            .map(|l| l.rfind("    (").unwrap_or(0))
            .collect();
        assert!(columns.iter().all(|c| *c == columns[0]), "{text}");
    }
}
