//! The `glance-cache-manage` commands of the binary (`list-cached`,
//! `list-queued`, `queue-image`, `delete-cached-image`,
//! `delete-all-cached-images`, `delete-queued-image`,
//! `delete-all-queued-images`) against a running proxy process: output
//! (tables and JSON), prompts, exit codes and errors; byte-for-byte the
//! real glance-cache-manage's tables; Keystone password authentication
//! with a REAL Keystone. CI=true turns a missing Glance venv or Keystone
//! into a failure.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use glance_cache_support::fake_glance::RunningFakeGlance;
use serde_json::{json, Value};

use super::support::*;
use glance_cache_support::client::*;
use glance_cache_support::fixture::fake_glance;
use glance_cache_support::fixture::*;
use glance_cache_support::real_glance::venv_dir;
use glance_cache_support::real_keystone::RealKeystone;
use glance_cache_support::wait::*;

const TOKEN: &str = "op-s3cret";
const MEMBER: [(&str, &str); 1] = [("x-auth-token", "MEMBER")];

/// A finished command.
#[derive(Debug)]
struct Out {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Out {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:?}"))
    }

    #[track_caller]
    fn ok(self) -> Self {
        assert_eq!(self.code, Some(0), "{self:?}");
        self
    }

    #[track_caller]
    fn failed_with(self, message: &str) -> Self {
        assert_eq!(self.code, Some(1), "{self:?}");
        assert!(self.stdout.is_empty(), "nothing on stdout: {self:?}");
        // After a confirmation prompt (on stderr, answered from a pipe).
        let prompt_end = self.stderr.find("[y/N] ").map_or(0, |i| i + 6);
        let error = &self.stderr[prompt_end..];
        assert!(error.starts_with("glance-cache-proxy: error: "), "{self:?}");
        assert!(error.contains(message), "{message:?} in {self:?}");
        assert_eq!(error.lines().count(), 1, "one line: {self:?}");
        self
    }
}

/// Runs `program args` with no `OS_*` variable but `env`, `stdin` as its
/// standard input (`None`: empty, i.e. end of input at once).
async fn exec(program: &Path, args: &[&str], env: &[(&str, &str)], stdin: Option<&str>) -> Out {
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("OS_") {
            cmd.env_remove(name);
        }
    }
    cmd.envs(env.iter().copied());
    let mut child = cmd.spawn().expect("spawn");
    let mut input = child.stdin.take().expect("stdin");
    let text = stdin.unwrap_or("").to_owned();
    let writer = tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        let _ = input.write_all(text.as_bytes()).await;
    });
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("command finished within 60 s")
        .expect("command ran");
    let _ = writer.await;
    Out {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A proxy process in front of the fake Glance, management by static
/// token.
struct Setup {
    _glance: RunningFakeGlance,
    proxy: ProxyProcess,
    cache: PathBuf,
    port: String,
    _dir: tempfile::TempDir,
}

impl Setup {
    async fn start() -> Setup {
        Self::start_with(true, "").await
    }

    /// `caching`: with an image_cache_dir; `extra`: more [proxy] options
    /// (and possibly further sections).
    async fn start_with(caching: bool, extra: &str) -> Setup {
        let glance = fake_glance().await;
        let dir = tempfile::tempdir().expect("tempdir");
        let cache = dir.path().join("cache");
        let port = free_port();
        let conf = write_config(
            dir.path(),
            port,
            caching.then_some(cache.as_path()),
            &glance.url(),
            &format!("management_auth = static\nadmin_tokens = {TOKEN}\n{extra}"),
        );
        let proxy = tokio::task::block_in_place(|| ProxyProcess::start(&conf, port));
        Setup {
            _glance: glance,
            proxy,
            cache,
            port: port.to_string(),
            _dir: dir,
        }
    }

    /// `glance-cache-proxy <command> -H 127.0.0.1 -p <port> <args>`.
    async fn cli(&self, command: &str, args: &[&str], stdin: Option<&str>) -> Out {
        self.cli_env(command, args, &[], stdin).await
    }

    async fn cli_env(
        &self,
        command: &str,
        args: &[&str],
        env: &[(&str, &str)],
        stdin: Option<&str>,
    ) -> Out {
        let mut all = vec![command, "-H", "127.0.0.1", "-p", &self.port];
        all.extend_from_slice(args);
        exec(Path::new(BIN), &all, env, stdin).await
    }

    /// The same with the admin token.
    async fn admin(&self, command: &str, args: &[&str], stdin: Option<&str>) -> Out {
        let mut all = vec!["--os-auth-token", TOKEN];
        all.extend_from_slice(args);
        self.cli(command, &all, stdin).await
    }

    async fn cached_json(&self) -> Value {
        self.admin("list-cached", &["--format", "json"], None)
            .await
            .ok()
            .json()
    }

    async fn queued(&self) -> Vec<String> {
        let doc = self
            .admin("list-queued", &["--format", "json"], None)
            .await
            .ok()
            .json();
        let mut ids: Vec<String> = doc["queued_images"]
            .as_array()
            .expect("queued_images")
            .iter()
            .map(|v| v.as_str().expect("id").to_owned())
            .collect();
        ids.sort();
        ids
    }

    /// Downloads `id` through the proxy and waits until it is cached and
    /// listed (the index row is written just after the file is renamed).
    async fn download(&self, id: &str) {
        let r = Client::new()
            .get(&format!("{}/v2/images/{id}/file", self.proxy.url), &MEMBER)
            .await;
        assert_eq!(r.status, 200);
        let path = self.cache.join(id);
        wait_for(
            "the image to be cached",
            Duration::from_secs(30),
            || async { path.exists() },
        )
        .await;
        for _ in 0..200 {
            if self.cached_rows().await.iter().any(|r| r["image_id"] == id) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{id} is cached but not listed");
    }

    async fn cached_rows(&self) -> Vec<Value> {
        self.cached_json().await["cached_images"]
            .as_array()
            .cloned()
            .expect("cached_images")
    }
}

/// Whether `s` looks like Python's `isoformat()` of a UTC time this
/// century.
fn is_iso(s: &str) -> bool {
    let digits = |r: std::ops::Range<usize>| {
        s.get(r)
            .is_some_and(|p| p.bytes().all(|b| b.is_ascii_digit()))
    };
    (s.len() == 19 || (s.len() == 26 && &s[19..20] == "." && digits(20..26)))
        && s.starts_with("20")
        && digits(0..4)
        && &s[4..5] == "-"
        && digits(5..7)
        && &s[7..8] == "-"
        && digits(8..10)
        && &s[10..11] == "T"
        && digits(11..13)
        && &s[13..14] == ":"
        && digits(14..16)
        && &s[16..17] == ":"
        && digits(17..19)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_lists_then_a_cached_image_as_table_and_json() {
    let s = Setup::start().await;
    let out = s.admin("list-cached", &[], None).await.ok();
    assert_eq!(out.stdout, "No cached images.\n");
    assert_eq!(out.stderr, "");
    let out = s.admin("list-queued", &[], None).await.ok();
    assert_eq!(out.stdout, "No queued images.\n");
    assert_eq!(s.cached_json().await, json!({"cached_images": []}));
    assert_eq!(
        s.admin("list-queued", &["--format", "json"], None)
            .await
            .ok()
            .json(),
        json!({"queued_images": []})
    );

    s.download(PUB).await;
    let doc = s.cached_json().await;
    let rows = doc["cached_images"].as_array().expect("rows");
    assert_eq!(rows.len(), 1, "{doc}");
    assert_eq!(rows[0]["image_id"], PUB);
    assert_eq!(rows[0]["size"], 9);

    let out = s.admin("list-cached", &[], None).await.ok();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 6, "{}", out.stdout);
    assert_eq!(lines[0], "Found 1 cached images...");
    for rule in [lines[1], lines[3], lines[5]] {
        assert!(
            rule.starts_with("+--------------------------------------+"),
            "{rule}"
        );
        assert!(rule.chars().all(|c| c == '+' || c == '-'), "{rule}");
    }
    assert!(
        lines[1..].iter().all(|l| l.len() == lines[1].len()),
        "aligned:\n{}",
        out.stdout
    );
    let header: Vec<&str> = lines[2].split('|').map(str::trim).collect();
    assert_eq!(
        header,
        [
            "",
            "ID",
            "Last Accessed (UTC)",
            "Last Modified (UTC)",
            "Size",
            "Hits",
            ""
        ]
    );
    assert!(
        lines[2].starts_with("|                  ID                  |"),
        "{}",
        lines[2]
    );
    assert!(lines[2].ends_with("| Size | Hits |"), "{}", lines[2]);
    let raw: Vec<&str> = lines[4].split('|').collect();
    let cells: Vec<&str> = raw.iter().map(|c| c.trim()).collect();
    assert_eq!(cells[1], PUB);
    assert!(cells[2] == "N/A" || is_iso(cells[2]), "{}", lines[4]);
    assert!(is_iso(cells[3]), "{}", lines[4]);
    assert_eq!(
        (raw[4], raw[5]),
        (
            "    9 ",
            format!("{:>5} ", rows[0]["hits"].to_string()).as_str()
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_list_and_delete_queued_with_prompts() {
    let s = Setup::start().await;
    // -f: no prompt, and (without -v) nothing printed.
    let out = s.admin("queue-image", &["-f", PRIV], None).await.ok();
    assert_eq!((out.stdout.as_str(), out.stderr.as_str()), ("", ""));
    // -v: Glance's messages.
    let out = s.admin("queue-image", &["-f", "-v", BIG], None).await.ok();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines[0], format!("Queued image {BIG} for caching"));
    assert!(
        lines[1].starts_with("Completed in ") && lines[1].ends_with(" sec.") && lines.len() == 2,
        "{}",
        out.stdout
    );
    let secs = &lines[1]["Completed in ".len()..lines[1].len() - " sec.".len()];
    assert_eq!(secs.split('.').nth(1).map(str::len), Some(4), "{secs}");
    // JSON result; upper case is canonicalised.
    let out = s
        .admin(
            "queue-image",
            &["-f", "--format", "json", &QUEUED.to_uppercase()],
            None,
        )
        .await
        .ok();
    assert_eq!(out.json(), json!({"image_id": QUEUED, "queued": true}));
    let mut expected = vec![PRIV.to_owned(), QUEUED.to_owned(), BIG.to_owned()];
    expected.sort();
    assert_eq!(s.queued().await, expected);

    // Nothing is fetched: the legacy API only queues.
    assert!(!s.cache.join(PRIV).exists());

    let out = s.admin("list-queued", &[], None).await.ok();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines[0], "Found 3 queued images...");
    assert_eq!(lines[1], "+--------------------------------------+");
    assert_eq!(lines[2], "|                  ID                  |");
    assert_eq!(lines[3], lines[1]);
    let mut listed: Vec<String> = lines[4..7]
        .iter()
        .map(|l| l.trim_matches(|c| c == '|' || c == ' ').to_owned())
        .collect();
    listed.sort();
    assert_eq!(listed, expected);
    assert_eq!(lines[7], lines[1]);
    assert_eq!(lines.len(), 8);

    // A refusal, an empty answer and end of input change nothing.
    for answer in [Some("n\n"), Some("\n"), Some("nope\n"), None] {
        let out = s.admin("delete-queued-image", &[PRIV], answer).await.ok();
        assert_eq!(out.stdout, "", "{answer:?}");
        assert!(
            out.stderr
                .starts_with(&format!("Delete queued image {PRIV}? [y/N] ")),
            "{out:?}"
        );
        assert_eq!(s.queued().await.len(), 3, "{answer:?}");
    }
    let out = s
        .admin(
            "delete-all-queued-images",
            &["--format", "json"],
            Some("no\n"),
        )
        .await
        .ok();
    assert_eq!(out.json(), json!({"cancelled": true}));
    assert_eq!(out.stderr, "Delete all queued images? [y/N] ");
    assert_eq!(s.queued().await.len(), 3);

    // "y" proceeds.
    let out = s
        .admin("delete-queued-image", &["-v", PRIV], Some("y\n"))
        .await
        .ok();
    assert!(
        out.stdout
            .starts_with(&format!("Deleted queued image {PRIV}\nCompleted in ")),
        "{out:?}"
    );
    assert!(!s.queued().await.contains(&PRIV.to_owned()));
    // Deleting it again is not an error (as in Glance).
    s.admin("delete-queued-image", &["-f", PRIV], None)
        .await
        .ok();
    let out = s
        .admin(
            "delete-queued-image",
            &["-f", "--format", "json", BIG],
            None,
        )
        .await
        .ok();
    assert_eq!(out.json(), json!({"image_id": BIG, "deleted": true}));

    // "YES" (any case) proceeds too; -v reports the count.
    s.admin("queue-image", &["-f", PUB], None).await.ok();
    let out = s
        .admin("delete-all-queued-images", &["-v"], Some("YES\n"))
        .await
        .ok();
    assert!(
        out.stdout.starts_with("Deleted 2 queued images\n"),
        "{out:?}"
    );
    assert_eq!(s.queued().await, Vec::<String>::new());
    s.admin("queue-image", &["-f", PUB], None).await.ok();
    let out = s
        .admin(
            "delete-all-queued-images",
            &["-f", "--format", "json"],
            None,
        )
        .await
        .ok();
    assert_eq!(out.json(), json!({"num_deleted": 1}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_cached_images_with_and_without_confirmation() {
    let s = Setup::start().await;
    s.download(PUB).await;
    s.download(PRIV).await;

    let out = s
        .admin("delete-cached-image", &[PUB], Some("n\n"))
        .await
        .ok();
    assert_eq!(out.stdout, "");
    assert!(s.cache.join(PUB).exists());
    let out = s.admin("delete-all-cached-images", &[], None).await.ok();
    assert_eq!(
        out.stderr, "Delete all cached images? [y/N] \n",
        "end of input"
    );
    assert_eq!(
        s.cached_json().await["cached_images"]
            .as_array()
            .map(Vec::len),
        Some(2)
    );

    let out = s
        .admin("delete-cached-image", &["-v", PUB], Some("Y\n"))
        .await
        .ok();
    assert!(
        out.stdout
            .starts_with(&format!("Deleted cached image {PUB}\n")),
        "{out:?}"
    );
    assert!(!s.cache.join(PUB).exists());
    let out = s
        .admin(
            "delete-cached-image",
            &["-f", "--format", "json", PUB],
            None,
        )
        .await
        .ok();
    assert_eq!(out.json(), json!({"image_id": PUB, "deleted": true}));

    let out = s
        .admin("delete-all-cached-images", &["-f", "-v"], None)
        .await
        .ok();
    assert!(
        out.stdout
            .starts_with("Deleted 1 cached images\nCompleted in "),
        "{out:?}"
    );
    assert!(!s.cache.join(PRIV).exists());
    assert_eq!(
        s.admin("list-cached", &[], None).await.ok().stdout,
        "No cached images.\n"
    );
    s.download(PUB).await;
    let out = s
        .admin(
            "delete-all-cached-images",
            &["-f", "--format", "json", "-v"],
            None,
        )
        .await
        .ok();
    assert_eq!(out.json(), json!({"num_deleted": 1}));
    // With --format json, -v goes to stderr.
    assert!(
        out.stderr
            .starts_with("Deleted 1 cached images\nCompleted in "),
        "{out:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_id_checks_come_first_and_exit_1() {
    // No proxy at all: the checks fail before any connection is tried.
    let port = free_port().to_string();
    for command in ["queue-image", "delete-cached-image", "delete-queued-image"] {
        let expected = format!(
            "Please specify the ID of the image you wish for command '{command}' from the cache \
             as the first and only argument."
        );
        for (ids, message) in [
            (
                &["not-a-uuid"][..],
                "Image ID 'not-a-uuid' is not a valid UUID.",
            ),
            (
                &["../cache.db"][..],
                "Image ID '../cache.db' is not a valid UUID.",
            ),
            (&[PUB, PRIV][..], expected.as_str()),
            (&[][..], expected.as_str()),
        ] {
            let mut args = vec![command, "-p", &port, "-f"];
            args.extend_from_slice(ids);
            exec(Path::new(BIN), &args, &[], None)
                .await
                .failed_with(message);
        }
    }
    // clap's own usage errors exit 2.
    let out = exec(Path::new(BIN), &["list-cached", "--port", "x"], &[], None).await;
    assert_eq!(out.code, Some(2), "{out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authentication_errors_and_the_environment_token() {
    let s = Setup::start().await;
    s.cli("list-cached", &["--os-auth-token", "wrong"], None)
        .await
        .failed_with("Not authenticated (401 Unauthorized from 127.0.0.1:");
    let out = s.cli("list-queued", &[], None).await;
    let out = out.failed_with("no token was sent");
    assert!(out.stderr.contains("OS_AUTH_TOKEN"), "{out:?}");
    // Hidden aliases of the token option.
    for flag in ["-A", "--os_auth_token", "--auth_token"] {
        s.cli("list-cached", &[flag, TOKEN], None).await.ok();
    }
    // OS_AUTH_TOKEN, and the option winning over it.
    let out = s
        .cli_env("list-cached", &[], &[("OS_AUTH_TOKEN", TOKEN)], None)
        .await
        .ok();
    assert_eq!(out.stdout, "No cached images.\n");
    s.cli_env(
        "list-cached",
        &["-A", TOKEN],
        &[("OS_AUTH_TOKEN", "wrong")],
        None,
    )
    .await
    .ok();
    s.cli_env("list-cached", &[], &[("OS_AUTH_TOKEN", "wrong")], None)
        .await
        .failed_with("401");
    // A mutating command refused after confirming: exit 1, nothing changed.
    s.cli("queue-image", &["-A", "wrong", PUB], Some("y\n"))
        .await
        .failed_with("Not authenticated");
    assert!(s.queued().await.is_empty());
    // Keystone selected without a user name: Glance's message.
    s.cli_env(
        "list-cached",
        &[],
        &[("OS_AUTH_URL", "http://127.0.0.1:9/v3")],
        None,
    )
    .await
    .failed_with("Failed to show cached images. Got error: Missing required credential: username");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forbidden_not_enabled_and_proxy_down() {
    // The policy refuses everybody the legacy API: 403.
    let s = Setup::start_with(true, "\n[cache_policy]\nmanage_image_cache = !\n").await;
    s.admin("list-cached", &[], None)
        .await
        .failed_with("Not authorized to make this request.");
    s.admin("delete-all-queued-images", &["-f"], None)
        .await
        .failed_with("Not authorized to make this request.");

    // No image_cache_dir: the legacy paths go to the upstream, as in a
    // Glance without the cachemanagement flavor, which answers 404 (the fake
    // Glance wants one of its own tokens first).
    let s = Setup::start_with(false, "").await;
    s.cli("list-queued", &["-A", "ADMIN"], None)
        .await
        .failed_with("Cache management middleware not enabled on host 127.0.0.1");

    // Nobody listening: one line naming host and port.
    let port = free_port().to_string();
    let out = exec(
        Path::new(BIN),
        &["list-cached", "-H", "127.0.0.1", "-p", &port, "-A", TOKEN],
        &[],
        None,
    )
    .await;
    let out = out.failed_with(&format!("cannot connect to the proxy at 127.0.0.1:{port}"));
    assert!(out.stderr.contains("refused"), "{out:?}");
    // Confirmed, then the proxy is down: exit 1 too. The default host is
    // 0.0.0.0, connected to as it is.
    exec(
        Path::new(BIN),
        &["delete-all-cached-images", "-p", &port, "-A", TOKEN],
        &[],
        Some("y\n"),
    )
    .await
    .failed_with(&format!("cannot connect to the proxy at 0.0.0.0:{port}"));
}

/// The real glance-cache-manage from the Glance venv (tests/harness/setup-python.sh).
fn glance_cache_manage() -> PathBuf {
    let bin = venv_dir().join("bin").join("glance-cache-manage");
    assert!(
        bin.is_file(),
        "glance-cache-manage is missing at {} (bash tests/run.sh installs it)",
        bin.display()
    );
    bin
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tables_are_byte_for_byte_the_real_glance_cache_manage() {
    let real = glance_cache_manage();
    let s = Setup::start().await;
    let compare = |command: &'static str| {
        let real = real.clone();
        let s = &s;
        async move {
            let args = ["-H", "127.0.0.1", "-p", &s.port, "-A", TOKEN, command];
            let theirs = exec(&real, &args, &[], None).await;
            assert_eq!(theirs.code, Some(0), "{theirs:?}");
            let ours = s.admin(command, &[], None).await.ok();
            assert_eq!(ours.stdout, theirs.stdout, "{command}");
        }
    };
    compare("list-cached").await;
    compare("list-queued").await;
    s.download(PUB).await;
    s.download(PRIV).await;
    // A hit: hits and last_accessed change (recorded as the hit ends: wait
    // for it, so that both tools see the same state).
    s.download(PUB).await;
    let mut hit = false;
    for _ in 0..100 {
        let rows = s.cached_rows().await;
        if rows.iter().any(|r| r["image_id"] == PUB && r["hits"] == 1) {
            hit = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(hit, "the hit was not recorded");
    for id in [QUEUED, DEACT] {
        s.admin("queue-image", &["-f", id], None).await.ok();
    }
    compare("list-cached").await;
    compare("list-queued").await;
    let ours = s.admin("list-cached", &[], None).await.ok();
    assert!(
        ours.stdout.starts_with("Found 2 cached images..."),
        "{ours:?}"
    );
    // -v messages.
    let args = [
        "-H",
        "127.0.0.1",
        "-p",
        &s.port,
        "-A",
        TOKEN,
        "-f",
        "-v",
        "queue-image",
        BIG,
    ];
    let theirs = exec(&real, &args, &[], None).await;
    let ours = s.admin("queue-image", &["-f", "-v", BIG], None).await.ok();
    assert_eq!(
        ours.stdout.lines().next(),
        theirs.stdout.lines().next(),
        "{theirs:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keystone_password_authentication_with_a_real_keystone() {
    let ks = tokio::task::spawn_blocking(RealKeystone::start)
        .await
        .expect("join");
    let glance = ks.user("glance");
    let demo = ks.user("demo");
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let conf = write_config(
        dir.path(),
        port,
        Some(&dir.path().join("cache")),
        "http://127.0.0.1:9",
        &format!(
            "management_auth = keystone\n\n[keystone_authtoken]\nauth_type = password\n\
             auth_url = {}\nusername = glance\npassword = {}\nproject_name = service\n\
             user_domain_name = Default\nproject_domain_name = Default\n",
            ks.url, glance.password
        ),
    );
    let _proxy = tokio::task::block_in_place(|| ProxyProcess::start(&conf, port));
    let port = port.to_string();
    // The auth URL without /v3 (it is appended), the rest from OS_*.
    let root = ks.url.trim_end_matches("/v3").to_owned();
    let env = |user: &str, password: &str, project: &str| -> Vec<(String, String)> {
        vec![
            ("OS_AUTH_URL".into(), root.clone()),
            ("OS_USERNAME".into(), user.into()),
            ("OS_PASSWORD".into(), password.into()),
            ("OS_PROJECT_NAME".into(), project.into()),
            ("OS_USER_DOMAIN_ID".into(), "default".into()),
            ("OS_PROJECT_DOMAIN_ID".into(), "default".into()),
        ]
    };
    let run = |env: Vec<(String, String)>, args: &'static [&'static str]| {
        let port = port.clone();
        async move {
            let env: Vec<(&str, &str)> =
                env.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
            let mut all: Vec<&str> = args.to_vec();
            all.extend(["-H", "127.0.0.1", "-p", &port]);
            exec(Path::new(BIN), &all, &env, None).await
        }
    };
    let out = run(env("glance", &glance.password, "service"), &["list-cached"])
        .await
        .ok();
    assert_eq!(out.stdout, "No cached images.\n");
    let out = run(
        env("glance", &glance.password, "service"),
        &["queue-image", "-f", "-v", PUB],
    )
    .await
    .ok();
    assert!(
        out.stdout
            .starts_with(&format!("Queued image {PUB} for caching\n")),
        "{out:?}"
    );
    // A member of another project: authenticated, not authorized.
    run(env("demo", &demo.password, "demo"), &["list-queued"])
        .await
        .failed_with("Not authorized to make this request.");
    // Wrong password: Keystone refuses; exit 1 naming the user.
    let out = run(env("glance", "wrong-password", "service"), &["list-cached"]).await;
    let out = out.failed_with("Failed to show cached images. Got error: Keystone");
    assert!(
        out.stderr.contains("\"glance\"") && out.stderr.contains("401"),
        "{out:?}"
    );
    assert!(!out.stderr.contains("wrong-password"), "{out:?}");
    // Flags instead of variables, project by id and domain by name.
    let service_id = ks.project_id("service");
    let out = exec(
        Path::new(BIN),
        &[
            "list-queued",
            "-H",
            "127.0.0.1",
            "-p",
            &port,
            "--os-auth-url",
            &ks.url,
            "-I",
            "glance",
            "-K",
            &glance.password,
            "--os-project-id",
            &service_id,
            "--os-user-domain-name",
            "Default",
            "--format",
            "json",
        ],
        &[],
        None,
    )
    .await
    .ok();
    assert_eq!(out.json(), json!({"queued_images": [PUB]}));
}
