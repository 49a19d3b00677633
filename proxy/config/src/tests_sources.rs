//! Tests of configuration sources (files, `--config-dir`, environment) and
//! of the Glance options read for compatibility.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::*;

fn env(vars: &[(&str, &str)]) -> Vec<(String, String)> {
    vars.iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write");
    path
}

fn at(path: &Path, line: usize) -> Source {
    Source::File {
        path: path.to_path_buf(),
        line,
    }
}

fn env_source(variable: &str) -> Source {
    Source::Environment {
        variable: variable.to_owned(),
    }
}

// ---- precedence ------------------------------------------------------------

#[test]
fn defaults_then_files_then_config_dir_then_environment() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("conf.d");
    std::fs::create_dir(&dir).expect("mkdir");
    // Each level sets one more option than the next; the last setter wins.
    let file1 = write(
        tmp.path(),
        "glance-api.conf",
        "[DEFAULT]\nbind_port = 1\nimage_cache_stall_time = 1\nimage_cache_max_size = 1\n\
         image_cache_sqlite_db = one.db\n[proxy]\nprefetch_workers = 1\n",
    );
    let file2 = write(
        tmp.path(),
        "glance-cache.conf",
        "[DEFAULT]\nimage_cache_stall_time = 2\nimage_cache_max_size = 2\n\
         image_cache_sqlite_db = two.db\n[proxy]\nprefetch_workers = 2\n",
    );
    // Written in reverse order: the directory is read sorted by name.
    let d20 = write(
        &dir,
        "20-late.conf",
        "[DEFAULT]\nimage_cache_sqlite_db = late.db\n[proxy]\nprefetch_workers = 4\n",
    );
    let d10 = write(
        &dir,
        "10-early.conf",
        "[DEFAULT]\nimage_cache_max_size = 3\nimage_cache_sqlite_db = early.db\n\
         [proxy]\nprefetch_workers = 3\n",
    );
    write(
        &dir,
        "99-ignored.conf.disabled",
        "[DEFAULT]\nbind_port = 99\n",
    );
    write(&dir, ".hidden.conf", "[DEFAULT]\nbind_port = 98\n");

    let dir_files = Config::config_dir_files(&dir).expect("lists");
    assert_eq!(dir_files, vec![d10.clone(), d20.clone()]);
    let mut files = vec![file1.clone(), file2.clone()];
    files.extend(dir_files);
    let l = Config::load_with_env(
        &files,
        env(&[
            ("GLANCE_CACHE__PROXY__PREFETCH_WORKERS", "5"),
            ("HOME", "/root"),
        ]),
    )
    .expect("loads");
    let c = &l.config;
    assert_eq!(c.image_cache_driver, CacheDriver::CentralizedDb);
    assert_eq!(c.bind_port, 1);
    assert_eq!(c.image_cache_stall_time, 2);
    assert_eq!(c.image_cache_max_size, 3);
    assert_eq!(c.image_cache_sqlite_db, "late.db");
    assert_eq!(c.maintenance.prefetch_workers, 5);
    assert_eq!(
        l.source_of("DEFAULT", "image_cache_driver"),
        Source::Default
    );
    assert_eq!(l.source_of("DEFAULT", "bind_port"), at(&file1, 2));
    assert_eq!(
        l.source_of("DEFAULT", "image_cache_stall_time"),
        at(&file2, 2)
    );
    assert_eq!(l.source_of("DEFAULT", "image_cache_max_size"), at(&d10, 2));
    assert_eq!(l.source_of("DEFAULT", "image_cache_sqlite_db"), at(&d20, 2));
    assert_eq!(
        l.source_of("proxy", "prefetch_workers"),
        env_source("GLANCE_CACHE__PROXY__PREFETCH_WORKERS")
    );
    let workers = l
        .effective()
        .iter()
        .find(|e| e.option.name == "prefetch_workers")
        .expect("listed");
    assert_eq!(workers.value.as_deref(), Some("5"));
    assert_eq!(
        workers.source,
        env_source("GLANCE_CACHE__PROXY__PREFETCH_WORKERS")
    );
}

#[test]
fn environment_overrides_and_interpolates_like_files() {
    let l = Config::from_sources_with_env(
        &[(
            "glance-api.conf",
            "[DEFAULT]\nimage_cache_dir = /srv/cache\n[proxy]\nupstream_url = http://a:1\n",
        )],
        env(&[
            (
                "GLANCE_CACHE__DEFAULT__IMAGE_CACHE_SQLITE_DB",
                "$image_cache_dir/x.db",
            ),
            ("GLANCE_CACHE__PROXY__UPSTREAM_URL", "http://b:2/image"),
            ("GLANCE_CACHE__DEFAULT__IMAGE_CACHE_DIR", ""),
        ]),
    )
    .expect("loads");
    // An empty value from the environment unsets, like an empty line.
    assert_eq!(l.config.image_cache_dir, None);
    assert_eq!(l.config.image_cache_sqlite_db, "/x.db");
    assert_eq!(l.config.proxy.upstream_url, "http://b:2/image");
}

#[test]
fn environment_replaces_multi_valued_options() {
    let l = Config::from_sources_with_env(
        &[(
            "glance-api.conf",
            "[proxy]\nmanagement_auth = static\nadmin_tokens = file1\nadmin_tokens = file2\n",
        )],
        env(&[("GLANCE_CACHE__PROXY__ADMIN_TOKENS", "env1, env2")]),
    )
    .expect("loads");
    assert_eq!(l.config.management.admin_tokens, vec!["env1", "env2"]);
    let tokens = l
        .effective()
        .iter()
        .find(|e| e.option.section == "proxy" && e.option.name == "admin_tokens")
        .expect("listed");
    assert_eq!(tokens.value.as_deref(), Some("<redacted>"));
}

// ---- errors ----------------------------------------------------------------

#[test]
fn environment_value_errors_name_the_variable() {
    let e = Config::from_sources_with_env(
        &[("glance-api.conf", "[DEFAULT]\nimage_cache_max_size = 1\n")],
        env(&[("GLANCE_CACHE__DEFAULT__IMAGE_CACHE_MAX_SIZE", "10G")]),
    )
    .expect_err("fails");
    assert_eq!(
        e.to_string(),
        "environment GLANCE_CACHE__DEFAULT__IMAGE_CACHE_MAX_SIZE: [DEFAULT] \
         image_cache_max_size = \"10G\": expected an integer >= 0 (bytes; unit suffixes are not \
         supported)"
    );
    let e =
        Config::from_sources_with_env(&[], env(&[("GLANCE_CACHE__PROXY__UPSTREAM_URL", "$nope")]))
            .expect_err("fails");
    assert!(
        e.to_string()
            .starts_with("environment GLANCE_CACHE__PROXY__UPSTREAM_URL: [proxy] upstream_url"),
        "{e}"
    );
    let e = Config::from_sources_with_env(
        &[],
        env(&[("GLANCE_CACHE__KEYSTONE_AUTHTOKEN__PASSWORD", "hunter2")]),
    )
    .map(|_| ())
    .err();
    assert!(e.is_none(), "a password alone is fine: {e:?}");
    let e = Config::from_sources_with_env(
        &[],
        env(&[
            ("GLANCE_CACHE__PROXY__MANAGEMENT_AUTH", "static"),
            ("GLANCE_CACHE__PROXY__ADMIN_TOKENS", "a b"),
        ]),
    )
    .expect_err("fails");
    let msg = e.to_string();
    assert!(
        msg.starts_with("environment GLANCE_CACHE__PROXY__ADMIN_TOKENS: "),
        "{msg}"
    );
    assert!(!msg.contains("a b"), "token values are never shown: {msg}");
}

#[test]
fn environment_name_errors() {
    let e = Config::from_sources_with_env(&[], env(&[("GLANCE_CACHE__PROXY__UPSTREM_URL", "x")]))
        .expect_err("fails");
    assert!(
        matches!(&e, ConfigError::Environment(b) if b.variable == "GLANCE_CACHE__PROXY__UPSTREM_URL")
    );
    assert!(e
        .to_string()
        .contains("did you mean GLANCE_CACHE__PROXY__UPSTREAM_URL?"));
}

#[test]
fn file_errors_still_name_file_and_line_when_env_is_given() {
    let e = Config::from_sources_with_env(
        &[("glance-cache.conf", "[DEFAULT]\n\nbind_port = x\n")],
        env(&[("GLANCE_CACHE__PROXY__UPSTREAM_URL", "http://a")]),
    )
    .expect_err("fails");
    assert!(
        e.to_string()
            .starts_with("glance-cache.conf:3: [DEFAULT] bind_port = \"x\""),
        "{e}"
    );
}

#[test]
fn config_dir_errors_name_the_directory() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let missing = tmp.path().join("nope.d");
    let e = Config::config_dir_files(&missing).expect_err("missing");
    assert!(matches!(&e, ConfigError::ReadDir { path, .. } if *path == missing));
    let msg = e.to_string();
    assert!(msg.starts_with("cannot read config directory "), "{msg}");
    assert!(msg.contains("nope.d"), "{msg}");
    let file = write(tmp.path(), "file.conf", "");
    assert!(Config::config_dir_files(&file).is_err());
    assert_eq!(
        Config::config_dir_files(tmp.path()).expect("lists"),
        vec![file]
    );
}

#[test]
fn config_dir_skips_subdirectories_named_conf() {
    let tmp = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(tmp.path().join("sub.conf")).expect("mkdir");
    let a = write(tmp.path(), "a.conf", "");
    assert_eq!(
        Config::config_dir_files(tmp.path()).expect("lists"),
        vec![a]
    );
}

// ---- Glance options read for compatibility -----------------------------------

#[test]
fn glance_compatibility_options_have_glance_defaults() {
    let c = Config::default();
    assert_eq!(c.worker_self_reference_url, None);
    assert_eq!(c.public_endpoint, None);
    assert!(c.enabled_backends.is_empty());
    assert_eq!(c.paste_deploy, PasteDeployOptions::default());
    assert_eq!(c.paste_deploy.flavor, None);
    assert_eq!(c.paste_deploy.config_file, None);
    assert_eq!(c.oslo_concurrency.lock_path, None);
    assert_eq!(
        c.glance_store.filesystem_store_datadir.as_deref(),
        Some(Path::new("/var/lib/glance/images"))
    );
    assert!(c.glance_store.filesystem_store_datadirs.is_empty());
    assert_eq!(c.oslo_policy.policy_file, PathBuf::from("policy.yaml"));
    assert!(c.oslo_policy.enforce_new_defaults);
    assert!(c.oslo_policy.enforce_scope);
}

#[test]
fn glance_compatibility_options_are_typed() {
    let l = Config::from_sources(&[(
        "glance-api.conf",
        "[DEFAULT]
worker_self_reference_url = http://10.0.0.11:9292
public_endpoint = https://image.example.org/image
enabled_backends = fast:rbd, local:file
[paste_deploy]
flavor = keystone
config_file = /etc/glance/glance-api-paste.ini
[oslo_concurrency]
lock_path = /var/lib/glance/lock
[glance_store]
filesystem_store_datadir =
filesystem_store_datadirs = /srv/a:200
filesystem_store_datadirs = /srv/b
[oslo_policy]
policy_file = /etc/glance/policy.yaml
enforce_new_defaults = False
enforce_scope = no
[fast]
[local]
",
    )])
    .expect("loads");
    assert!(l.warnings.is_empty(), "{:?}", l.warnings);
    let c = &l.config;
    assert_eq!(
        c.worker_self_reference_url.as_ref().map(|u| u.to_string()),
        Some("http://10.0.0.11:9292/".to_owned())
    );
    let public = c.public_endpoint.as_ref().expect("set");
    assert_eq!(public.scheme_str(), Some("https"));
    assert_eq!(public.path(), "/image");
    assert_eq!(
        c.enabled_backends,
        BTreeMap::from([
            ("fast".to_owned(), "rbd".to_owned()),
            ("local".to_owned(), "file".to_owned())
        ])
    );
    assert_eq!(c.paste_deploy.flavor.as_deref(), Some("keystone"));
    assert_eq!(
        c.paste_deploy.config_file.as_deref(),
        Some(Path::new("/etc/glance/glance-api-paste.ini"))
    );
    assert_eq!(
        c.oslo_concurrency.lock_path.as_deref(),
        Some(Path::new("/var/lib/glance/lock"))
    );
    assert_eq!(c.glance_store.filesystem_store_datadir, None);
    assert_eq!(
        c.glance_store.filesystem_store_datadirs,
        vec![
            StoreDir {
                path: "/srv/a".into(),
                priority: 200
            },
            StoreDir {
                path: "/srv/b".into(),
                priority: 0
            }
        ]
    );
    assert_eq!(
        c.oslo_policy.policy_file,
        PathBuf::from("/etc/glance/policy.yaml")
    );
    assert!(!c.oslo_policy.enforce_new_defaults);
    assert!(!c.oslo_policy.enforce_scope);
    let dirs = l
        .effective()
        .iter()
        .find(|e| e.option.name == "filesystem_store_datadirs")
        .expect("listed");
    assert_eq!(dirs.value.as_deref(), Some("/srv/a:200, /srv/b"));
    assert_eq!(dirs.source.to_string(), "glance-api.conf:13");
}

#[test]
fn store_dirs_accumulate_across_files_and_come_from_the_environment() {
    let l = Config::from_sources(&[
        (
            "a.conf",
            "[glance_store]\nfilesystem_store_datadir =\nfilesystem_store_datadirs = /a:1\n",
        ),
        (
            "b.conf",
            "[glance_store]\nfilesystem_store_datadirs = /b:2\n",
        ),
    ])
    .expect("loads");
    let paths: Vec<_> = l
        .config
        .glance_store
        .filesystem_store_datadirs
        .iter()
        .map(|d| (d.path.display().to_string(), d.priority))
        .collect();
    assert_eq!(paths, vec![("/a".into(), 1), ("/b".into(), 2)]);
    let l = Config::from_sources_with_env(
        &[(
            "a.conf",
            "[glance_store]\nfilesystem_store_datadirs = /a:1\n",
        )],
        env(&[
            (
                "GLANCE_CACHE__GLANCE_STORE__FILESYSTEM_STORE_DATADIRS",
                "/x:5,/y",
            ),
            ("GLANCE_CACHE__GLANCE_STORE__FILESYSTEM_STORE_DATADIR", ""),
        ]),
    )
    .expect("loads");
    let paths: Vec<_> = l
        .config
        .glance_store
        .filesystem_store_datadirs
        .iter()
        .map(|d| (d.path.display().to_string(), d.priority))
        .collect();
    assert_eq!(paths, vec![("/x".into(), 5), ("/y".into(), 0)]);
}

#[test]
fn both_store_dir_options_warn_like_glance_store_refuses_them() {
    let l = Config::from_sources(&[(
        "glance-api.conf",
        "[glance_store]\nfilesystem_store_datadirs = /a:1\n",
    )])
    .expect("loads");
    let w: Vec<String> = l.warnings.iter().map(|w| w.to_string()).collect();
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(
        w[0].starts_with(
            "glance-api.conf:2: [glance_store] filesystem_store_datadirs is ignored: \
             filesystem_store_datadir is set too"
        ),
        "{w:?}"
    );
}

#[test]
fn glance_compatibility_option_errors() {
    let err = |text: &str| {
        Config::from_sources(&[("glance-api.conf", text)])
            .expect_err("fails")
            .to_string()
    };
    let e = err("[DEFAULT]\npublic_endpoint = image.example.org\n");
    assert!(
        e.starts_with(
            "glance-api.conf:2: [DEFAULT] public_endpoint = \"image.example.org\": expected an \
             absolute http:// or https:// URL"
        ),
        "{e}"
    );
    let e = err("[DEFAULT]\nworker_self_reference_url = http://a/?x=1\n");
    assert!(e.contains("query"), "{e}");
    let e = err("[DEFAULT]\nenabled_backends = fast\n");
    assert!(
        e.starts_with(
            "glance-api.conf:2: [DEFAULT] enabled_backends = \"fast\": expected name:type pairs"
        ),
        "{e}"
    );
    assert!(e.ends_with("pair 1 (\"fast\") has no ':'"), "{e}");
    let e = err("[glance_store]\nfilesystem_store_datadir =\nfilesystem_store_datadirs = /a:x\n");
    assert!(
        e.starts_with("glance-api.conf:3: [glance_store] filesystem_store_datadirs"),
        "{e}"
    );
    assert!(e.contains("priority"), "{e}");
    let e = err("[oslo_policy]\nenforce_scope = maybe\n");
    assert!(
        e.starts_with(
            "glance-api.conf:2: [oslo_policy] enforce_scope = \"maybe\": expected a boolean"
        ),
        "{e}"
    );
    let e = err("[oslo_policy]\npolicy_file =\n");
    assert!(e.contains("a non-empty string"), "{e}");
}

#[test]
fn empty_compatibility_values_mean_unset() {
    let l = Config::from_sources(&[(
        "glance-api.conf",
        "[DEFAULT]\npublic_endpoint =\nworker_self_reference_url =\nenabled_backends =\n\
         [paste_deploy]\nflavor =\n",
    )])
    .expect("loads");
    assert_eq!(l.config.public_endpoint, None);
    assert_eq!(l.config.worker_self_reference_url, None);
    assert!(l.config.enabled_backends.is_empty());
    assert_eq!(l.config.paste_deploy.flavor, None);
}

#[test]
fn effective_values_keep_newlines_except_in_store_dir_lists() {
    let l = Config::from_sources(&[(
        "a.conf",
        "[paste_deploy]\nflavor = one\n two\n\n[glance_store]\nfilesystem_store_datadir =\n\
         filesystem_store_datadirs = /a\n /b:1\n",
    )])
    .expect("loads");
    let value = |name: &str| {
        l.effective()
            .iter()
            .find(|e| e.option.name == name)
            .and_then(|e| e.value.clone())
    };
    assert_eq!(value("flavor").as_deref(), Some("one\ntwo"));
    // One assignment, two lines: two directories.
    assert_eq!(
        value("filesystem_store_datadirs").as_deref(),
        Some("/a, /b:1")
    );
    assert_eq!(l.config.glance_store.filesystem_store_datadirs.len(), 2);
}
