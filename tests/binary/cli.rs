//! Command-line and startup errors: clear messages, non-zero exit, nothing lost.

use std::process::Command;

use super::support::*;

#[test]
fn bad_value_names_file_line_option_and_expectation() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("glance-api.conf");
    std::fs::write(
        &conf,
        "[DEFAULT]\nbind_port = 9292\nimage_cache_max_size = 10G\n",
    )
    .unwrap();
    let (code, err) = run(&["serve", "--config-file", conf.to_str().unwrap()]);
    assert_ne!(code, Some(0));
    assert!(err.contains("glance-api.conf:3"), "{err}");
    assert!(err.contains("image_cache_max_size"), "{err}");
    assert!(err.contains("10G"), "{err}");
    assert!(err.contains("integer"), "{err}");
}

#[test]
fn syntax_error_and_missing_file_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("broken.conf");
    std::fs::write(&conf, "bind_port = 1\n").unwrap();
    let (code, err) = run(&["serve", "--config-file", conf.to_str().unwrap()]);
    assert_ne!(code, Some(0));
    assert!(err.contains("broken.conf:1"), "{err}");
    let missing = dir.path().join("nope.conf");
    let (code, err) = run(&["serve", "--config-file", missing.to_str().unwrap()]);
    assert_ne!(code, Some(0));
    assert!(err.contains("nope.conf"), "{err}");
}

#[test]
fn later_config_files_override_earlier_ones() {
    let dir = tempfile::tempdir().unwrap();
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy_port = busy.local_addr().unwrap().port();
    let port = free_port();
    let first = dir.path().join("glance-api.conf");
    std::fs::write(
        &first,
        format!("[DEFAULT]\nbind_host = 127.0.0.1\nbind_port = {busy_port}\n[proxy]\nupstream_url = http://127.0.0.1:9\n"),
    )
    .unwrap();
    let second = dir.path().join("glance-cache.conf");
    std::fs::write(&second, format!("[DEFAULT]\nbind_port = {port}\n")).unwrap();
    // Listening on `port` (not the busy one) proves the second file won.
    let mut p = ProxyProcess::start_files(&[&first, &second], port);
    p.signal("TERM");
    assert_eq!(p.wait_exit(std::time::Duration::from_secs(10)), Some(0));
}

#[test]
fn unwritable_cache_dir_is_a_clear_startup_error() {
    let dir = tempfile::tempdir().unwrap();
    // A file where the cache directory should be: no user can create it.
    let blocker = dir.path().join("blocker");
    std::fs::write(&blocker, b"x").unwrap();
    let cache = blocker.join("cache");
    let conf = write_config(
        dir.path(),
        free_port(),
        Some(&cache),
        "http://127.0.0.1:9",
        "",
    );
    let (code, err) = run(&["serve", "--config-file", conf.to_str().unwrap()]);
    assert_ne!(code, Some(0));
    assert!(err.contains("image_cache_dir"), "{err}");
    assert!(err.contains(&*cache.to_string_lossy()), "{err}");
}

#[test]
fn read_only_cache_dir_for_an_unprivileged_user() {
    assert!(
        Command::new("setpriv")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success()),
        "this test needs setpriv (Debian's util-linux) to run the proxy as nobody"
    );
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    std::fs::create_dir(&cache).unwrap();
    // World-readable, writable only by its owner (root), with the test
    // directory traversable by everyone.
    Command::new("chmod")
        .args(["0755"])
        .arg(dir.path())
        .status()
        .unwrap();
    Command::new("chmod")
        .args(["0755"])
        .arg(&cache)
        .status()
        .unwrap();
    let conf = write_config(
        dir.path(),
        free_port(),
        Some(&cache),
        "http://127.0.0.1:9",
        "",
    );
    Command::new("chmod")
        .args(["0644"])
        .arg(&conf)
        .status()
        .unwrap();
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            BIN,
            "serve",
            "--config-file",
        ])
        .arg(&conf)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !setpriv_refused(&err),
        "this test needs to run as root, to run the proxy as nobody with setpriv: {err}"
    );
    assert_ne!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("image_cache_dir"), "{err}");
    assert!(err.contains("ermission denied"), "{err}");
    assert!(
        std::fs::read_dir(&cache).unwrap().next().is_none(),
        "nothing was created"
    );
}

/// setpriv itself may be refused inside some sandboxes.
fn setpriv_refused(err: &str) -> bool {
    err.starts_with("setpriv:")
}

#[test]
fn port_in_use_is_a_clear_error() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let conf = write_config(dir.path(), port, None, "http://127.0.0.1:9", "");
    let (code, err) = run(&["serve", "--config-file", conf.to_str().unwrap()]);
    assert_ne!(code, Some(0));
    assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
}
