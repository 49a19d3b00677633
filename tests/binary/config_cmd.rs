//! `check-config`, `sample-config`, configuration sources (`--config-file`,
//! `--config-dir`, `GLANCE_CACHE__*` variables) and the systemd units.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::support::*;

/// The repository root (this test target belongs to `proxy/`).
fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("proxy/ has a parent")
        .to_path_buf()
}

/// The binary with `args`, with no configuration variables but `env`.
fn command(args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args).stdin(Stdio::null());
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("GLANCE_CACHE__") {
            cmd.env_remove(key);
        }
    }
    cmd.env("RUST_LOG", "warn");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn run_with(args: &[&str], env: &[(&str, &str)]) -> Run {
    let Output {
        status,
        stdout,
        stderr,
    } = command(args, env).output().expect("run glance-cache-proxy");
    Run {
        code: status.code(),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write config");
    path
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// The `check-config` line of `[section] option`, split into the value
/// part and the source.
fn line<'a>(out: &'a str, section_option: &str) -> (&'a str, &'a str) {
    let prefix = format!("{section_option} = ");
    let l = out
        .lines()
        .find(|l| l.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no line for {section_option} in:\n{out}"));
    let (left, source) = l.rsplit_once("    (").expect("a source");
    (
        left[prefix.len()..].trim_end(),
        source.strip_suffix(')').expect("closing parenthesis"),
    )
}

// ---- check-config ------------------------------------------------------------

#[test]
fn check_config_shows_each_value_with_its_source_in_precedence_order() {
    let tmp = tempfile::tempdir().unwrap();
    let conf_d = tmp.path().join("conf.d");
    std::fs::create_dir(&conf_d).unwrap();
    let api = write(
        tmp.path(),
        "glance-api.conf",
        "[DEFAULT]\nbind_port = 1111\nimage_cache_max_size = 1\nimage_cache_stall_time = 1\n\
         image_cache_sqlite_db = api.db\n[proxy]\nprefetch_workers = 1\n\
         [keystone_authtoken]\npassword = hunter2\n",
    );
    let cache = write(
        tmp.path(),
        "glance-cache-proxy.conf",
        "[DEFAULT]\nimage_cache_max_size = 2\nimage_cache_stall_time = 2\n\
         image_cache_sqlite_db = proxy.db\n[proxy]\nprefetch_workers = 2\n\
         management_auth = static\nadmin_tokens = sekrit-token\n",
    );
    let late = write(
        &conf_d,
        "50-late.conf",
        "[DEFAULT]\nimage_cache_sqlite_db = late.db\n[proxy]\nprefetch_workers = 4\n",
    );
    let early = write(
        &conf_d,
        "10-early.conf",
        "[DEFAULT]\nimage_cache_stall_time = 3\nimage_cache_sqlite_db = early.db\n",
    );
    let r = run_with(
        &[
            "check-config",
            "--config-file",
            s(&api),
            "--config-dir",
            s(&conf_d),
            "--config-file",
            s(&cache),
        ],
        &[("GLANCE_CACHE__PROXY__PREFETCH_WORKERS", "5")],
    );
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let out = &r.stdout;
    assert!(
        out.starts_with(&format!(
            "# files: {}, {}, {}, {}\n",
            s(&api),
            s(&cache),
            s(&early),
            s(&late)
        )),
        "{out}"
    );
    assert_eq!(line(out, "[DEFAULT] bind_host"), ("0.0.0.0", "default"));
    assert_eq!(
        line(out, "[DEFAULT] bind_port"),
        ("1111", &*format!("{}:2", s(&api)))
    );
    assert_eq!(
        line(out, "[DEFAULT] image_cache_max_size"),
        ("2", &*format!("{}:2", s(&cache)))
    );
    assert_eq!(
        line(out, "[DEFAULT] image_cache_stall_time"),
        ("3", &*format!("{}:2", s(&early)))
    );
    assert_eq!(
        line(out, "[DEFAULT] image_cache_sqlite_db"),
        ("late.db", &*format!("{}:2", s(&late)))
    );
    assert_eq!(
        line(out, "[proxy] prefetch_workers"),
        ("5", "environment GLANCE_CACHE__PROXY__PREFETCH_WORKERS")
    );
    assert_eq!(
        line(out, "[DEFAULT] image_cache_dir"),
        ("<unset>", "default")
    );
    // Credentials are masked wherever they come from.
    assert_eq!(
        line(out, "[keystone_authtoken] password"),
        ("****", &*format!("{}:9", s(&api)))
    );
    assert_eq!(
        line(out, "[proxy] admin_tokens"),
        ("****", &*format!("{}:8", s(&cache)))
    );
    for secret in ["hunter2", "sekrit-token"] {
        assert!(!out.contains(secret) && !r.stderr.contains(secret), "{out}");
    }
    assert!(
        out.contains("# [proxy] management_auth resolves to static\n"),
        "{out}"
    );
    // Every option of the table is listed once.
    let options = out.lines().filter(|l| l.starts_with('[')).count();
    assert_eq!(options, glance_cache_config::OPTIONS.len(), "{out}");
    assert!(
        r.stderr
            .contains("glance-cache-proxy: the configuration is valid (0 warnings)"),
        "{}",
        r.stderr
    );
}

#[test]
fn check_config_prints_warnings_and_still_exits_0() {
    let tmp = tempfile::tempdir().unwrap();
    let conf = write(
        tmp.path(),
        "glance-cache-proxy.conf",
        "[proxy]\nupstrem_url = http://127.0.0.1:9191\n[proxi]\n",
    );
    let r = run_with(&["check-config", "--config-file", s(&conf)], &[]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(
        r.stderr.contains(&format!(
            "glance-cache-proxy: warning: {}:2: unknown option [proxy] upstrem_url (ignored); \
             did you mean upstream_url?",
            s(&conf)
        )),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains(&format!(
            "glance-cache-proxy: warning: {}:3: unknown section [proxi]",
            s(&conf)
        )),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("the configuration is valid (2 warnings)"),
        "{}",
        r.stderr
    );
    // Warnings never go to stdout, which stays a clean listing.
    assert!(!r.stdout.contains("warning"), "{}", r.stdout);
}

#[test]
fn check_config_errors_name_file_and_line_and_exit_1() {
    let tmp = tempfile::tempdir().unwrap();
    let good = write(
        tmp.path(),
        "glance-api.conf",
        "[DEFAULT]\nbind_port = 9292\n",
    );
    let bad = write(
        tmp.path(),
        "glance-cache-proxy.conf",
        "[DEFAULT]\n\nimage_cache_max_size = 10G\n",
    );
    let r = run_with(
        &[
            "check-config",
            "--config-file",
            s(&good),
            "--config-file",
            s(&bad),
        ],
        &[],
    );
    assert_eq!(r.code, Some(1), "{}", r.stderr);
    assert_eq!(
        r.stderr.trim_end(),
        format!(
            "glance-cache-proxy: error: {}:3: [DEFAULT] image_cache_max_size = \"10G\": expected \
             an integer >= 0 (bytes; unit suffixes are not supported)",
            s(&bad)
        )
    );
    assert!(r.stdout.is_empty(), "{}", r.stdout);

    let syntax = write(tmp.path(), "syntax.conf", "[DEFAULT]\nbind_port\n");
    let r = run_with(&["check-config", "--config-file", s(&syntax)], &[]);
    assert_eq!(r.code, Some(1));
    assert!(
        r.stderr
            .starts_with(&format!("glance-cache-proxy: error: {}:2: ", s(&syntax))),
        "{}",
        r.stderr
    );

    let missing = tmp.path().join("nope.conf");
    let r = run_with(&["check-config", "--config-file", s(&missing)], &[]);
    assert_eq!(r.code, Some(1));
    assert!(
        r.stderr.starts_with(&format!(
            "glance-cache-proxy: error: cannot read config file {}: ",
            s(&missing)
        )),
        "{}",
        r.stderr
    );
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);

    let missing_dir = tmp.path().join("nope.d");
    let r = run_with(&["check-config", "--config-dir", s(&missing_dir)], &[]);
    assert_eq!(r.code, Some(1));
    assert!(
        r.stderr.starts_with(&format!(
            "glance-cache-proxy: error: cannot read config directory {}: ",
            s(&missing_dir)
        )),
        "{}",
        r.stderr
    );
}

#[test]
fn check_config_environment_errors_name_the_variable() {
    let tmp = tempfile::tempdir().unwrap();
    let conf = write(tmp.path(), "a.conf", "[DEFAULT]\n");
    let r = run_with(
        &["check-config", "--config-file", s(&conf)],
        &[("GLANCE_CACHE__DEFAULT__BIND_PORT", "92_92_92")],
    );
    assert_eq!(r.code, Some(1));
    assert_eq!(
        r.stderr.trim_end(),
        "glance-cache-proxy: error: environment GLANCE_CACHE__DEFAULT__BIND_PORT: [DEFAULT] \
         bind_port = \"92_92_92\": expected an integer between 0 and 65535 (TCP port)"
    );
    let r = run_with(
        &["check-config", "--config-file", s(&conf)],
        &[("GLANCE_CACHE__PROXY__UPSTREAM", "http://127.0.0.1:9191")],
    );
    assert_eq!(r.code, Some(1));
    assert!(
        r.stderr.starts_with(
            "glance-cache-proxy: error: environment GLANCE_CACHE__PROXY__UPSTREAM: unknown option \
             [proxy] upstream"
        ),
        "{}",
        r.stderr
    );
}

#[test]
fn check_config_without_flags_reads_the_default_files_that_exist() {
    let defaults = [
        "/etc/glance/glance-api.conf",
        "/etc/glance/glance-cache.conf",
    ];
    let existing: Vec<&str> = defaults
        .into_iter()
        .filter(|p| Path::new(p).is_file())
        .collect();
    let r = run_with(
        &["check-config"],
        &[("GLANCE_CACHE__DEFAULT__BIND_PORT", "1234")],
    );
    let first = r.stdout.lines().next().unwrap_or_default().to_owned();
    if existing.is_empty() {
        assert_eq!(r.code, Some(0), "{}", r.stderr);
        assert_eq!(first, "# files: none (defaults and environment only)");
        assert_eq!(
            line(&r.stdout, "[DEFAULT] bind_port"),
            ("1234", "environment GLANCE_CACHE__DEFAULT__BIND_PORT")
        );
    } else {
        // This machine has Glance's files: they are the ones read.
        assert!(
            first == format!("# files: {}", existing.join(", ")) || r.code == Some(1),
            "{first}\n{}",
            r.stderr
        );
    }
}

#[test]
fn check_config_help_documents_output_and_exit_status() {
    let r = run_with(&["check-config", "--help"], &[]);
    assert_eq!(r.code, Some(0));
    for needle in [
        "--config-file <FILE>",
        "--config-dir <DIR>",
        "GLANCE_CACHE__<SECTION>__<OPTION>",
        "/etc/glance/glance-api.conf",
        "Exit status: 0",
        "****",
    ] {
        assert!(r.stdout.contains(needle), "{needle} in:\n{}", r.stdout);
    }
    let r = run_with(&["check-config", "--no-such-flag"], &[]);
    assert_eq!(r.code, Some(2), "{}", r.stderr);
}

// ---- sample-config -----------------------------------------------------------

#[test]
fn sample_config_prints_the_committed_sample_which_checks_clean() {
    let r = run_with(&["sample-config"], &[]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let committed = repo_root().join("etc/glance-cache-proxy.conf.sample");
    assert_eq!(
        r.stdout,
        std::fs::read_to_string(&committed).unwrap(),
        "etc/glance-cache-proxy.conf.sample is stale; regenerate it with: \
         cargo run -q -p glance-cache-proxy -- sample-config > etc/glance-cache-proxy.conf.sample"
    );
    let r = run_with(&["check-config", "--config-file", s(&committed)], &[]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(r.stderr.contains("(0 warnings)"), "{}", r.stderr);
    assert!(
        r.stdout
            .lines()
            .filter(|l| l.starts_with('['))
            .all(|l| l.ends_with("(default)")),
        "{}",
        r.stdout
    );
}

#[test]
fn sample_config_into_a_closed_pipe_is_not_an_error() {
    let mut child = command(&["sample-config"], &[])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Close the read end without reading.
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("error"), "{stderr}");
}

// ---- serve uses the same sources -----------------------------------------------

#[test]
fn serve_reads_config_dir_and_environment() {
    let tmp = tempfile::tempdir().unwrap();
    let conf_d = tmp.path().join("conf.d");
    std::fs::create_dir(&conf_d).unwrap();
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy_port = busy.local_addr().unwrap().port();
    write(
        &conf_d,
        "proxy.conf",
        &format!(
            "[DEFAULT]\nbind_host = 127.0.0.1\nbind_port = {busy_port}\n[proxy]\n\
             upstream_url = http://127.0.0.1:9\n"
        ),
    );
    let port = free_port();
    let port_text = port.to_string();
    let log = tmp.path().join("serve.log");
    let mut child = command(
        &["serve", "--config-dir", s(&conf_d)],
        &[("GLANCE_CACHE__DEFAULT__BIND_PORT", &port_text)],
    )
    .stdout(Stdio::null())
    .stderr(std::fs::File::create(&log).unwrap())
    .spawn()
    .unwrap();
    // Listening on `port` (not the busy one from the directory) proves the
    // environment won over the directory's file.
    let deadline = Instant::now() + Duration::from_secs(20);
    let listening = loop {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break true;
        }
        if child.try_wait().unwrap().is_some() || Instant::now() > deadline {
            break false;
        }
        std::thread::sleep(Duration::from_millis(25));
    };
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        listening,
        "proxy did not listen on {port}:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
}

// ---- systemd units -------------------------------------------------------------

/// The `key=value` lines of a unit file (comments, sections and blank lines
/// skipped; `\` continuations joined).
fn unit_entries(path: &Path) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut out = Vec::new();
    let mut pending = String::new();
    for raw in text.lines() {
        let l = raw.trim();
        if pending.is_empty() && (l.is_empty() || l.starts_with(['#', ';', '['])) {
            continue;
        }
        if let Some(head) = l.strip_suffix('\\') {
            pending.push_str(head);
            pending.push(' ');
            continue;
        }
        pending.push_str(l);
        let (k, v) = pending
            .split_once('=')
            .unwrap_or_else(|| panic!("{}: not key=value: {pending}", path.display()));
        out.push((k.trim().to_owned(), v.trim().to_owned()));
        pending.clear();
    }
    out
}

fn units(ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(repo_root().join("etc/systemd"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    v.sort();
    v
}

#[test]
fn systemd_units_run_existing_subcommands_with_existing_flags() {
    let services = units("service");
    let names: Vec<String> = services
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for expected in [
        "glance-cache-proxy.service",
        "glance-cache-pruner.service",
        "glance-cache-cleaner.service",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} in {names:?}"
        );
    }
    let mut subcommands = Vec::new();
    for unit in &services {
        let entries = unit_entries(unit);
        let exec: Vec<&String> = entries
            .iter()
            .filter(|(k, _)| k == "ExecStart")
            .map(|(_, v)| v)
            .collect();
        assert_eq!(exec.len(), 1, "{}: one ExecStart", unit.display());
        let argv: Vec<&str> = exec[0].split_whitespace().collect();
        assert!(
            !exec[0].contains(['"', '\'', '$', '%']),
            "{}: keep ExecStart free of quoting and specifiers",
            unit.display()
        );
        assert!(
            argv[0].starts_with('/') && argv[0].ends_with("/glance-cache-proxy"),
            "{}: {}",
            unit.display(),
            exec[0]
        );
        let sub = argv[1];
        subcommands.push(sub.to_owned());
        let help = run_with(&[sub, "--help"], &[]);
        assert_eq!(
            help.code,
            Some(0),
            "{}: `glance-cache-proxy {sub}` is not a subcommand:\n{}",
            unit.display(),
            help.stderr
        );
        for flag in argv[2..].iter().filter(|a| a.starts_with("--")) {
            let flag = flag.split('=').next().unwrap_or(flag);
            assert!(
                help.stdout.contains(&format!("{flag} ")),
                "{}: `{sub}` has no {flag}:\n{}",
                unit.display(),
                help.stdout
            );
        }
        // The same arguments, with the files swapped for readable ones,
        // form a valid configuration command line.
        let tmp = tempfile::tempdir().unwrap();
        let mut args = vec!["check-config".to_owned()];
        let mut rest = argv[2..].iter();
        while let Some(a) = rest.next() {
            args.push((*a).to_owned());
            if *a == "--config-file" {
                let original = rest.next().expect("a file after --config-file");
                let name = Path::new(original).file_name().unwrap();
                let copy = tmp.path().join(name);
                std::fs::write(&copy, "[DEFAULT]\n").unwrap();
                args.push(s(&copy).to_owned());
            }
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let r = run_with(&args, &[]);
        assert_eq!(
            r.code,
            Some(0),
            "{}: {args:?}: {}",
            unit.display(),
            r.stderr
        );
    }
    assert!(subcommands.contains(&"serve".to_owned()), "{subcommands:?}");
    assert!(subcommands.contains(&"prune".to_owned()), "{subcommands:?}");
    assert!(subcommands.contains(&"clean".to_owned()), "{subcommands:?}");
    let proxy = unit_entries(&repo_root().join("etc/systemd/glance-cache-proxy.service"));
    let exec = &proxy.iter().find(|(k, _)| k == "ExecStart").unwrap().1;
    assert!(
        exec.contains("--config-file /etc/glance/glance-api.conf --config-file /etc/glance/glance-cache-proxy.conf"),
        "{exec}"
    );
}

#[test]
fn systemd_timers_start_existing_services_on_schedule() {
    let timers = units("timer");
    let mut schedules = Vec::new();
    for timer in &timers {
        let entries = unit_entries(timer);
        let get = |key: &str| {
            entries
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.clone())
        };
        let unit = get("Unit").unwrap_or_else(|| {
            timer
                .with_extension("service")
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned()
        });
        assert!(
            repo_root().join("etc/systemd").join(&unit).is_file(),
            "{}: {unit} does not exist",
            timer.display()
        );
        assert_eq!(get("WantedBy").as_deref(), Some("timers.target"));
        let name = timer.file_name().unwrap().to_string_lossy().into_owned();
        schedules.push((name, get("OnCalendar").expect("OnCalendar")));
    }
    assert_eq!(
        schedules,
        vec![
            ("glance-cache-cleaner.timer".to_owned(), "daily".to_owned()),
            ("glance-cache-pruner.timer".to_owned(), "*:0/30".to_owned()),
        ]
    );
}

#[test]
fn systemd_analyze_accepts_the_units() {
    let available = Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        available,
        "this test needs systemd-analyze (Debian's systemd package) to verify the units"
    );
    let tmp = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for unit in units("service").into_iter().chain(units("timer")) {
        let text = std::fs::read_to_string(&unit)
            .unwrap()
            .replace("/usr/bin/glance-cache-proxy", BIN);
        let copy = tmp.path().join(unit.file_name().unwrap());
        std::fs::write(&copy, text).unwrap();
        files.push(copy);
    }
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .args(&files)
        .env("SYSTEMD_LOG_LEVEL", "warning")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let ours: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("glance-cache"))
        .collect();
    assert!(out.status.success() && ours.is_empty(), "{stderr}");
}

#[test]
fn a_config_that_forwards_to_the_proxy_itself_is_refused_by_check_config_and_serve() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let conf = write_config(
        dir.path(),
        port,
        None,
        &format!("http://127.0.0.1:{port}"),
        "",
    );
    for command in ["check-config", "serve"] {
        let (code, err) = run(&[command, "--config-file", conf.to_str().unwrap()]);
        assert_eq!(code, Some(1), "{command}: {err}");
        assert!(
            err.contains("upstream_url") && err.contains("own listener"),
            "{command}: {err}"
        );
    }
}
