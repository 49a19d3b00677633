//! Tests of the whole loader: INI rules, typed options, interpolation,
//! provenance, errors and warnings.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use super::*;

fn load(text: &str) -> Loaded {
    Config::from_sources(&[("glance-api.conf", text)]).expect("loads")
}

fn load_err(text: &str) -> ConfigError {
    Config::from_sources(&[("glance-api.conf", text)]).expect_err("fails")
}

fn warnings(text: &str) -> Vec<String> {
    load(text).warnings.iter().map(|w| w.to_string()).collect()
}

fn at(path: &str, line: usize) -> Source {
    Source::File {
        path: PathBuf::from(path),
        line,
    }
}

// ---- defaults -------------------------------------------------------------

#[test]
fn config_error_stays_small() {
    // crate::Error wraps it; keep Result<_, Error> cheap everywhere.
    assert!(std::mem::size_of::<ConfigError>() <= 40);
}

#[test]
fn defaults_equal_glance() {
    let c = Config::default();
    assert_eq!(c.bind_host, "0.0.0.0");
    assert_eq!(c.bind_port, 9292);
    assert_eq!(c.image_cache_dir, None);
    assert!(!c.cache_enabled());
    assert_eq!(c.image_cache_sqlite_db, "cache.db");
    assert_eq!(c.image_cache_driver, CacheDriver::CentralizedDb);
    assert_eq!(c.image_cache_max_size, 10_737_418_240);
    assert_eq!(c.image_cache_stall_time, 86_400);
    let p = &c.proxy;
    assert_eq!(p.upstream_url, "http://127.0.0.1:9191/");
    assert_eq!(p.hit_authorization, HitAuthorization::Probe);
    assert_eq!(p.authorization_cache_ttl, Duration::from_secs(10));
    assert_eq!(p.upstream_connect_timeout, Duration::from_secs(5));
    assert_eq!(p.upstream_timeout, Duration::from_secs(60));
    assert_eq!(p.upstream_idle_timeout, Duration::from_secs(60));
    assert_eq!(p.shutdown_timeout, Duration::from_secs(30));
    assert_eq!(p.hit_chunk_size, 262_144);
    assert_eq!(p.min_free_disk, 268_435_456);
    assert!(p.serve_ranges && !p.fill_on_range_miss);
    assert_eq!(p.range_fill_wait, Duration::from_secs(2));
    let m = &c.maintenance;
    assert_eq!(
        (m.scrub_rate, m.scrub_interval),
        (8 << 20, Duration::from_secs(86_400))
    );
}

#[test]
fn no_files_and_empty_file_give_defaults() {
    let none = Config::load::<&str>(&[]).expect("loads");
    assert_eq!(
        format!("{:?}", none.config),
        format!("{:?}", Config::default())
    );
    let empty = load("");
    assert_eq!(
        format!("{:?}", empty.config),
        format!("{:?}", Config::default())
    );
    assert!(empty.warnings.is_empty());
    assert!(empty
        .effective()
        .iter()
        .all(|e| e.source == Source::Default));
}

#[test]
fn every_option_can_be_set() {
    let l = load(
        "[DEFAULT]
bind_host = 127.0.0.1
bind_port = 9393
image_cache_dir = /srv/cache
image_cache_sqlite_db = /srv/index.db
image_cache_driver = xattr
image_cache_max_size = 1_000
image_cache_stall_time = 60
worker_self_reference_url = http://node1:9292
public_endpoint = https://image.example.org
enabled_backends = local:file
debug = true
use_json = true
log_file = /var/log/glance/cache-proxy.log
[proxy]
admin_listen = 127.0.0.1:9393
upstream_url = http://glance:9292/image
hit_authorization = metadata
authorization_cache_ttl = 0
authorization_concurrency = 1
authorization_timeout = 1
upstream_connect_timeout = 1
upstream_timeout = 2
upstream_idle_timeout = 3
shutdown_timeout = 0
client_idle_timeout = 1
hit_chunk_size = 65536
download_buffer_memory = 33554432
min_free_disk = 0
prefetch_enabled = false
prefetch_workers = 16
prefetch_retries = 0
prefetch_retry_delay = 300
auto_prune = no
clean_interval = 0
serve_ranges = false
fill_on_range_miss = true
range_fill_wait = 7
scrub_rate = 0
scrub_interval = 60
upstream_ca_file = /etc/glance/ca.pem
upstream_cert_file = /etc/glance/proxy-client.pem
upstream_key_file = /etc/glance/proxy-client.key
upstream_insecure = true
remote_store_url = s3://glance-cache/nodes
remote_store_endpoint = https://rgw.internal:7480
remote_store_region = eu-1
remote_store_access_key_id = AK
remote_store_secret_access_key = SK
remote_store_allow_http = true
remote_store_ca_file = /etc/glance/rgw-ca.pem
remote_max_size = 1_099_511_627_776
remote_timeout = 5
remote_sync_interval = 0
tls_cert_file = /etc/glance/proxy.pem
tls_key_file = /etc/glance/proxy.key
tls_client_ca_file = /etc/glance/clients.pem
admin_tls_cert_file = /etc/glance/admin.pem
admin_tls_key_file = /etc/glance/admin.key
management_auth = static
admin_tokens = t1, t2
[DEFAULT]
admin_tokens = t3
[keystone_authtoken]
auth_url = http://ks:5000/v3
auth_type = password
username = glance
password = pw
user_domain_name = Default
user_domain_id = default
project_name = service
project_id = 0123
project_domain_name = Default
project_domain_id = default
default_domain_id = default
default_domain_name = Default
region_name = RegionOne
www_authenticate_uri = http://ks:5000
cafile = /etc/glance/ks-ca.pem
certfile = /etc/glance/ks-client.pem
keyfile = /etc/glance/ks-client.key
insecure = false
token_cache_time = 300
[cache_policy]
cache_list = admin, operator
cache_image = admin
cache_delete = !
cache_clean = @
cache_prune = role:admin
list_cached_nodes = admin
manage_image_cache = admin
[paste_deploy]
flavor = keystone
config_file = /etc/glance/glance-api-paste.ini
[oslo_concurrency]
lock_path = /var/lock/glance
[glance_store]
filesystem_store_datadir =
filesystem_store_datadirs = /srv/images:1
[oslo_policy]
policy_file = policy.json
enforce_new_defaults = false
enforce_scope = false
[local]
",
    );
    assert!(l.warnings.is_empty(), "{:?}", l.warnings);
    let c = &l.config;
    assert_eq!(c.bind_host, "127.0.0.1");
    assert_eq!(c.bind_port, 9393);
    assert_eq!(c.image_cache_dir, Some(PathBuf::from("/srv/cache")));
    assert_eq!(c.image_cache_sqlite_db, "/srv/index.db");
    assert_eq!(c.sqlite_db_path(), Some(PathBuf::from("/srv/index.db")));
    assert_eq!(c.image_cache_driver, CacheDriver::Xattr);
    assert_eq!(c.image_cache_max_size, 1000);
    assert_eq!(c.image_cache_stall_time, 60);
    let p = &c.proxy;
    assert_eq!(p.upstream_url, "http://glance:9292/image");
    assert_eq!(p.upstream_url.path(), "/image");
    assert_eq!(p.hit_authorization, HitAuthorization::Metadata);
    assert_eq!(p.authorization_cache_ttl, Duration::ZERO);
    assert_eq!(p.upstream_connect_timeout, Duration::from_secs(1));
    assert_eq!(p.upstream_timeout, Duration::from_secs(2));
    assert_eq!(p.upstream_idle_timeout, Duration::from_secs(3));
    assert_eq!(p.shutdown_timeout, Duration::ZERO);
    assert_eq!(p.hit_chunk_size, 65_536);
    assert_eq!(p.download_buffer_memory, 32 << 20);
    assert_eq!(p.min_free_disk, 0);
    let m = &c.maintenance;
    assert!(!m.prefetch_enabled);
    assert_eq!(m.prefetch_workers, 16);
    assert_eq!(m.prefetch_retries, 0);
    assert_eq!(m.prefetch_retry_delay, Duration::from_secs(300));
    assert!(!m.auto_prune);
    assert_eq!(m.clean_every(), None);
    assert_eq!(
        (m.scrub_rate, m.scrub_interval),
        (0, Duration::from_secs(60))
    );
    assert!(!p.serve_ranges && p.fill_on_range_miss);
    assert_eq!(p.range_fill_wait, Duration::from_secs(7));
    assert_eq!(
        p.remote_store_url.as_deref(),
        Some("s3://glance-cache/nodes")
    );
    assert_eq!(
        p.remote_store_endpoint.as_deref(),
        Some("https://rgw.internal:7480")
    );
    assert_eq!(p.remote_store_region.as_deref(), Some("eu-1"));
    assert_eq!(
        (
            p.remote_store_access_key_id.as_deref(),
            p.remote_store_secret_access_key.as_deref()
        ),
        (Some("AK"), Some("SK"))
    );
    assert!(p.remote_store_allow_http);
    assert_eq!(
        p.remote_store_ca_file.as_deref(),
        Some(std::path::Path::new("/etc/glance/rgw-ca.pem"))
    );
    assert_eq!(p.remote_max_size, 1 << 40);
    assert_eq!(p.remote_timeout, Duration::from_secs(5));
    assert_eq!(p.remote_sync_interval, Duration::ZERO);
    let g = &c.management;
    assert_eq!(g.auth, ManagementAuthMode::Static);
    assert_eq!(g.admin_tokens, vec!["t1", "t2", "t3"]);
    // Static mode keeps [keystone_authtoken] as the service user of its
    // image lookups.
    assert_eq!(
        g.keystone.as_ref().map(|k| k.username.as_str()),
        Some("glance")
    );
    assert_eq!(g.token_cache_time, Duration::from_secs(300));
    assert_eq!(
        g.policy.rule(PolicyRule::CacheList),
        &RoleRule::any_of(["admin", "operator"])
    );
    assert_eq!(g.policy.rule(PolicyRule::CacheDelete), &RoleRule::Nobody);
    assert_eq!(g.policy.rule(PolicyRule::CacheClean), &RoleRule::Everyone);
    assert_eq!(g.policy.rule(PolicyRule::CachePrune), &RoleRule::default());
    assert_eq!(
        c.worker_self_reference_url.as_ref().map(|u| u.to_string()),
        Some("http://node1:9292/".to_owned())
    );
    assert_eq!(
        c.public_endpoint.as_ref().map(|u| u.to_string()),
        Some("https://image.example.org/".to_owned())
    );
    assert_eq!(
        c.enabled_backends.get("local").map(String::as_str),
        Some("file")
    );
    assert_eq!(c.paste_deploy.flavor.as_deref(), Some("keystone"));
    assert!(c.paste_deploy.config_file.is_some());
    assert!(c.oslo_concurrency.lock_path.is_some());
    assert_eq!(c.glance_store.filesystem_store_datadir, None);
    assert_eq!(c.glance_store.filesystem_store_datadirs.len(), 1);
    assert_eq!(c.oslo_policy.policy_file, PathBuf::from("policy.json"));
    assert!(!c.oslo_policy.enforce_new_defaults);
    assert!(!c.oslo_policy.enforce_scope);
    assert!(l.effective().iter().all(|e| e.source != Source::Default));
}

#[test]
fn sqlite_db_path_is_relative_to_cache_dir() {
    let l = load("[DEFAULT]\nimage_cache_dir = /var/lib/glance/image-cache\n");
    assert!(l.config.cache_enabled());
    assert_eq!(
        l.config.sqlite_db_path(),
        Some(PathBuf::from("/var/lib/glance/image-cache/cache.db"))
    );
}

#[test]
fn empty_image_cache_dir_means_off() {
    let l = load("[DEFAULT]\nimage_cache_dir =\n");
    assert_eq!(l.config.image_cache_dir, None);
    assert_eq!(l.config.sqlite_db_path(), None);
}

// ---- INI rules through the loader ------------------------------------------

#[test]
fn comments_are_ignored_and_inline_comments_kept() {
    let l = load("# c\n; c\n[DEFAULT]\nbind_host = 10.0.0.1 # public\n");
    assert_eq!(l.config.bind_host, "10.0.0.1 # public");
    let e = load_err("[DEFAULT]\nbind_port = 9393 # port\n");
    assert!(
        e.to_string()
            .starts_with("glance-api.conf:2: [DEFAULT] bind_port = \"9393 # port\""),
        "{e}"
    );
}

#[test]
fn colon_or_equals_whichever_first() {
    let l = load("[proxy]\nupstream_url: http://glance:9292\n[DEFAULT]\nbind_host: a=b\n");
    assert_eq!(l.config.proxy.upstream_url.port_u16(), Some(9292));
    assert_eq!(l.config.bind_host, "a=b");
}

#[test]
fn quotes_stripped_once() {
    let l = load("[DEFAULT]\nimage_cache_dir = \"/srv/my cache\"\nbind_host = '\"h\"'\n");
    assert_eq!(
        l.config.image_cache_dir,
        Some(PathBuf::from("/srv/my cache"))
    );
    assert_eq!(l.config.bind_host, "\"h\"");
    let l = load("[DEFAULT]\nimage_cache_max_size = \"1_024\"\n");
    assert_eq!(l.config.image_cache_max_size, 1024);
}

#[test]
fn continuation_lines_join_with_newline() {
    let l = load("[DEFAULT]\nimage_cache_dir = /srv\n  /cache\n");
    assert_eq!(
        l.config.image_cache_dir,
        Some(PathBuf::from("/srv\n/cache"))
    );
    assert_eq!(
        l.raw
            .get("DEFAULT", "image_cache_dir")
            .map(|v| v.value.as_str()),
        Some("/srv\n/cache")
    );
}

#[test]
fn multi_line_integer_is_rejected_with_escaped_value() {
    let e = load_err("[DEFAULT]\nimage_cache_max_size = 1\n  2\n");
    assert!(
        e.to_string()
            .starts_with("glance-api.conf:2: [DEFAULT] image_cache_max_size = \"1\\n2\": expected"),
        "{e}"
    );
}

#[test]
fn blank_line_ends_a_value() {
    let e = load_err("[DEFAULT]\nimage_cache_dir = /srv\n\n  /cache\n");
    match e {
        ConfigError::Syntax(e) => {
            assert_eq!(e.kind, SyntaxErrorKind::ContinuationWithoutOption);
            assert_eq!(e.line, 4);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn syntax_errors_name_file_and_line() {
    let cases = [
        (
            "[DEFAULT]\n  x\n",
            "glance-api.conf:2: continuation line with no preceding option",
        ),
        (
            "bind_port = 1\n",
            "glance-api.conf:1: assignment before the first section",
        ),
        (
            "[DEFAULT\n",
            "glance-api.conf:1: section header without closing ]",
        ),
        ("[DEFAULT]\n[]\n", "glance-api.conf:2: empty section name"),
        (
            "[DEFAULT]\nbind_port\n",
            "glance-api.conf:2: expected `option = value`",
        ),
        ("[DEFAULT]\n= 1\n", "glance-api.conf:2: empty option name"),
    ];
    for (text, prefix) in cases {
        let msg = load_err(text).to_string();
        assert!(msg.starts_with(prefix), "{text:?}: {msg}");
    }
}

#[test]
fn section_names_case_insensitive_except_default() {
    let l = load("[PROXY]\nupstream_url = http://a:1\n[Proxy]\nhit_authorization = none\n");
    assert_eq!(l.config.proxy.upstream_url.port_u16(), Some(1));
    assert_eq!(l.config.proxy.hit_authorization, HitAuthorization::None);
    assert!(l.warnings.is_empty(), "{:?}", l.warnings);
}

#[test]
fn lower_case_default_is_another_section() {
    let l = load("[DEFAULT]\nbind_port = 1\n[default]\nbind_port = 2\nimage_cache_dir = /x\n");
    assert_eq!(l.config.bind_port, 1);
    assert_eq!(l.config.image_cache_dir, None);
    assert_eq!(l.source_of("DEFAULT", "image_cache_dir"), Source::Default);
    let w: Vec<_> = l.warnings.iter().map(|w| w.to_string()).collect();
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(
        w[0].starts_with("glance-api.conf:3: section [default] is not [DEFAULT]"),
        "{w:?}"
    );
    assert!(w[0].contains("ignored"), "{w:?}");
    let w = warnings("[Default]\nbind_port = 2\n");
    assert!(w[0].contains("[Default] is not [DEFAULT]"), "{w:?}");
}

#[test]
fn keys_are_case_sensitive_with_underscores() {
    let l = load("[DEFAULT]\nImage_Cache_Dir = /a\nimage-cache-dir = /b\n");
    assert_eq!(l.config.image_cache_dir, None);
    let w = warnings("[DEFAULT]\nImage_Cache_Dir = /a\nimage-cache-dir = /b\n");
    assert_eq!(w.len(), 2, "{w:?}");
    assert!(
        w[0].starts_with("glance-api.conf:2: unknown option [DEFAULT] Image_Cache_Dir (ignored)"),
        "{w:?}"
    );
    assert!(w[1].contains("did you mean image_cache_dir?"), "{w:?}");
}

#[test]
fn repeated_key_last_wins() {
    let l = load("[DEFAULT]\nbind_port = 1\nbind_port = 2\n[DEFAULT]\nbind_port = 3\n");
    assert_eq!(l.config.bind_port, 3);
    assert_eq!(
        l.source_of("DEFAULT", "bind_port"),
        at("glance-api.conf", 5)
    );
    let all: Vec<_> = l
        .raw
        .get_all("DEFAULT", "bind_port")
        .map(|v| v.value.as_str())
        .collect();
    assert_eq!(all, vec!["1", "2", "3"]);
}

#[test]
fn earlier_invalid_value_overridden_is_not_an_error() {
    // Only the effective (last) value is converted, as in oslo.config.
    let l = load("[DEFAULT]\nimage_cache_max_size = 10G\nimage_cache_max_size = 10\n");
    assert_eq!(l.config.image_cache_max_size, 10);
}

#[test]
fn later_files_override_earlier_ones() {
    let l = Config::from_sources(&[
        (
            "glance-api.conf",
            "[DEFAULT]\nimage_cache_dir = /a\nimage_cache_max_size = 1\n[proxy]\nupstream_url = http://a:1\n",
        ),
        ("glance-cache.conf", "[DEFAULT]\nimage_cache_max_size = 2\n"),
    ])
    .expect("loads");
    assert_eq!(l.config.image_cache_dir, Some(PathBuf::from("/a")));
    assert_eq!(l.config.image_cache_max_size, 2);
    assert_eq!(
        l.source_of("DEFAULT", "image_cache_dir"),
        at("glance-api.conf", 2)
    );
    assert_eq!(
        l.source_of("DEFAULT", "image_cache_max_size"),
        at("glance-cache.conf", 2)
    );
    assert_eq!(
        l.source_of("proxy", "upstream_url"),
        at("glance-api.conf", 5)
    );
    assert_eq!(l.source_of("proxy", "hit_authorization"), Source::Default);
}

#[test]
fn error_in_second_file_names_that_file() {
    let e = Config::from_sources(&[
        ("glance-api.conf", "[DEFAULT]\n"),
        (
            "glance-cache.conf",
            "[DEFAULT]\n\nimage_cache_stall_time = -1\n",
        ),
    ])
    .expect_err("fails");
    assert!(
        e.to_string()
            .starts_with("glance-cache.conf:3: [DEFAULT] image_cache_stall_time = \"-1\""),
        "{e}"
    );
}

// ---- integers --------------------------------------------------------------

#[test]
fn python_ints_with_underscores_and_sign() {
    let l =
        load("[DEFAULT]\nimage_cache_max_size = 10_737_418_240\nimage_cache_stall_time = +3_600\n");
    assert_eq!(l.config.image_cache_max_size, 10_737_418_240);
    assert_eq!(l.config.image_cache_stall_time, 3600);
    let l = load("[DEFAULT]\nbind_port = 09292\n");
    assert_eq!(l.config.bind_port, 9292);
}

#[test]
fn unit_suffix_rejected_with_the_documented_message() {
    let e = Config::from_sources(&[(
        "/etc/glance/glance-api.conf",
        "[DEFAULT]\n# a\n# b\n# c\n# d\n# e\n# f\n# g\n# h\n# i\n# j\n# k\n# l\nimage_cache_max_size = 10G\n",
    )])
    .expect_err("fails");
    assert_eq!(
        e.to_string(),
        "/etc/glance/glance-api.conf:14: [DEFAULT] image_cache_max_size = \"10G\": \
         expected an integer >= 0 (bytes; unit suffixes are not supported)"
    );
    match e {
        ConfigError::Value(e) => {
            assert_eq!(e.location, at("/etc/glance/glance-api.conf", 14));
            assert_eq!(e.section, "DEFAULT");
            assert_eq!(e.option, "image_cache_max_size");
            assert_eq!(e.value, "10G");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn negative_rejected() {
    let e = load_err("[DEFAULT]\nimage_cache_max_size = -1\n");
    assert!(e.to_string().contains("expected an integer >= 0"), "{e}");
    let e = load_err("[proxy]\nshutdown_timeout = -5\n");
    assert!(
        e.to_string().contains("expected an integer >= 0 (seconds"),
        "{e}"
    );
}

#[test]
fn empty_integer_rejected() {
    let e = load_err("[DEFAULT]\nimage_cache_stall_time =\n");
    let msg = e.to_string();
    assert!(
        msg.starts_with(
            "glance-api.conf:2: [DEFAULT] image_cache_stall_time = \"\": expected an integer >= 0"
        ),
        "{msg}"
    );
    assert!(msg.contains("not an empty value"), "{msg}");
    assert!(msg.contains("86400"), "{msg}");
    let e = load_err("[DEFAULT]\nbind_port = \"\"\n");
    assert!(e.to_string().contains("not an empty value"), "{e}");
}

#[test]
fn ranges_of_proxy_options() {
    assert!(load_err("[proxy]\nauthorization_cache_ttl = 31\n")
        .to_string()
        .contains("between 0 and 30"));
    assert!(load_err("[proxy]\nupstream_timeout = 0\n")
        .to_string()
        .contains(">= 1"));
    assert!(load_err("[proxy]\nupstream_connect_timeout = 0\n")
        .to_string()
        .contains(">= 1"));
    assert!(load_err("[proxy]\nupstream_idle_timeout = 0\n")
        .to_string()
        .contains(">= 1"));
    assert!(load_err("[proxy]\nhit_chunk_size = 1024\n")
        .to_string()
        .contains("between 65536 and 4194304"));
    assert!(load_err("[DEFAULT]\nbind_port = 70000\n")
        .to_string()
        .contains("between 0 and 65535"));
    assert_eq!(load("[DEFAULT]\nbind_port = 0\n").config.bind_port, 0);
    assert!(load_err("[proxy]\nupstream_timeout = 60s\n")
        .to_string()
        .contains("unit suffixes are not supported"));
}

// ---- strings, choices, URLs ------------------------------------------------

#[test]
fn choices_are_case_insensitive_and_listed_on_error() {
    let l = load("[DEFAULT]\nimage_cache_driver = sqlite\n[proxy]\nhit_authorization = PROBE\n");
    assert_eq!(l.config.image_cache_driver, CacheDriver::Sqlite);
    assert_eq!(l.config.proxy.hit_authorization, HitAuthorization::Probe);
    assert!(l.warnings.is_empty(), "{:?}", l.warnings);
    let e = load_err("[DEFAULT]\nimage_cache_driver = redis\n");
    assert_eq!(
        e.to_string(),
        "glance-api.conf:2: [DEFAULT] image_cache_driver = \"redis\": \
         expected one of centralized_db, sqlite, xattr (case-insensitive)"
    );
    let e = load_err("[proxy]\nhit_authorization = passthrough\n");
    assert!(e.to_string().contains("probe, metadata, none"), "{e}");
}

#[test]
fn mixed_case_glance_choice_warns() {
    let l = load("[DEFAULT]\nimage_cache_driver = Centralized_DB\n");
    assert_eq!(l.config.image_cache_driver, CacheDriver::CentralizedDb);
    let w: Vec<_> = l.warnings.iter().map(|w| w.to_string()).collect();
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(
        w[0].starts_with("glance-api.conf:2: [DEFAULT] image_cache_driver = \"Centralized_DB\""),
        "{w:?}"
    );
    // The effective value keeps the spelling as written.
    let eff = l
        .effective()
        .iter()
        .find(|e| e.option.name == "image_cache_driver")
        .expect("listed");
    assert_eq!(eff.value.as_deref(), Some("Centralized_DB"));
}

#[test]
fn empty_strings_rejected_where_meaningless() {
    assert!(load_err("[DEFAULT]\nbind_host =\n")
        .to_string()
        .contains("expected a non-empty string"));
    assert!(load_err("[DEFAULT]\nimage_cache_sqlite_db = ''\n")
        .to_string()
        .contains("expected a non-empty string"));
}

#[test]
fn upstream_url_rules() {
    let l = load("[proxy]\nupstream_url = http://glance.internal:9292/image/\n");
    assert_eq!(l.config.proxy.upstream_url.host(), Some("glance.internal"));
    assert_eq!(l.config.proxy.upstream_url.path(), "/image/");
    let l = load("[proxy]\nupstream_url = https://glance:9292\n");
    assert_eq!(l.config.proxy.upstream_url.scheme_str(), Some("https"));
    let e = load_err("[proxy]\nupstream_url = ftp://glance:9292\n");
    assert!(e.to_string().contains("http:// or https://"), "{e}");
    let e = load_err("[proxy]\nupstream_url = http://glance/?a=b\n");
    assert!(e.to_string().contains("query"), "{e}");
    let e = load_err("[proxy]\nupstream_url = glance:9292\n");
    assert!(
        e.to_string()
            .starts_with("glance-api.conf:2: [proxy] upstream_url = \"glance:9292\": expected an absolute http:// or https:// URL"),
        "{e}"
    );
}

// ---- interpolation ---------------------------------------------------------

#[test]
fn interpolation_of_plain_and_braced_names() {
    let l = load(
        "[DEFAULT]\nstate_path = /var/lib/glance\nimage_cache_dir = $state_path/image-cache\n\
         image_cache_sqlite_db = ${state_path}/index.db\n",
    );
    assert_eq!(
        l.config.image_cache_dir,
        Some(PathBuf::from("/var/lib/glance/image-cache"))
    );
    assert_eq!(l.config.image_cache_sqlite_db, "/var/lib/glance/index.db");
}

#[test]
fn interpolation_of_group_names_and_defaults() {
    let l = load(
        "[DEFAULT]\nbind_port = 9393\n[glance_store]\nfilesystem_store_datadir = /srv/images\n\
         [proxy]\nupstream_url = http://glance.internal:${DEFAULT.bind_port}\n\
         [wsgi]\nx = ${glance_store.filesystem_store_datadir}/cache\n",
    );
    assert_eq!(l.config.proxy.upstream_url.port_u16(), Some(9393));
    assert_eq!(
        l.interpolated("wsgi", "x").expect("resolves").as_deref(),
        Some("/srv/images/cache")
    );
    // A typed option that is not set resolves to its default.
    let l = load("[DEFAULT]\nimage_cache_dir = /c/$image_cache_max_size\n");
    assert_eq!(
        l.config.image_cache_dir,
        Some(PathBuf::from("/c/10737418240"))
    );
}

#[test]
fn interpolation_in_a_group_falls_back_to_default() {
    let l = load("[DEFAULT]\nglance_host = glance.internal\n[proxy]\nupstream_url = http://$glance_host:9292\n");
    assert_eq!(l.config.proxy.upstream_url.host(), Some("glance.internal"));
}

#[test]
fn interpolation_feeds_type_conversion() {
    let l = load("[DEFAULT]\ngig = 1_073_741_824\nimage_cache_max_size = $gig\n");
    assert_eq!(l.config.image_cache_max_size, 1_073_741_824);
    // A referenced integer option is rendered like Python's str(int).
    let l = load("[DEFAULT]\nbind_port = 9_393\n[proxy]\nupstream_url = http://h:$bind_port\n");
    assert_eq!(l.config.proxy.upstream_url.port_u16(), Some(9393));
}

#[test]
fn interpolation_escapes() {
    let l = load("[DEFAULT]\nimage_cache_dir = /srv/$$weird/\\$x\n");
    assert_eq!(
        l.config.image_cache_dir,
        Some(PathBuf::from("/srv/$weird/$x"))
    );
}

#[test]
fn interpolation_unknown_name_is_an_error() {
    let e = load_err("[DEFAULT]\nimage_cache_dir = $state_path/cache\n");
    assert_eq!(
        e.to_string(),
        "glance-api.conf:2: [DEFAULT] image_cache_dir = \"$state_path/cache\": \
         unknown option \"$state_path\" in interpolation (write $$ or \\$ for a literal $)"
    );
    let e = load_err("[proxy]\nupstream_url = http://${nope.host}/\n");
    assert!(
        matches!(&e, ConfigError::Interpolation(i)
            if i.reference == "nope.host" && i.problem == InterpolationProblem::Unknown),
        "{e:?}"
    );
}

#[test]
fn interpolation_cycles_are_errors() {
    let e = load_err("[DEFAULT]\na = $b\nb = $a\nimage_cache_dir = $a\n");
    assert!(
        matches!(&e, ConfigError::Interpolation(i) if i.problem == InterpolationProblem::Cycle),
        "{e:?}"
    );
    assert!(e.to_string().contains("circular reference"), "{e}");
    let e = load_err("[DEFAULT]\nimage_cache_dir = $image_cache_dir\n");
    assert!(e.to_string().contains("circular reference"), "{e}");
}

#[test]
fn error_in_referenced_option_is_reported_there() {
    let e = load_err("[DEFAULT]\nbind_port = 9x\n[proxy]\nupstream_url = http://h:$bind_port\n");
    assert!(
        e.to_string()
            .starts_with("glance-api.conf:2: [DEFAULT] bind_port = \"9x\""),
        "{e}"
    );
}

#[test]
fn untyped_values_are_not_interpolated_unless_asked() {
    // A password with a '$' in a section this module does not type loads fine.
    let l = load("[keystone_authtoken]\npassword = se$cret\n");
    assert_eq!(
        l.raw
            .get("keystone_authtoken", "password")
            .map(|v| v.value.as_str()),
        Some("se$cret")
    );
    assert!(l.interpolated("keystone_authtoken", "password").is_err());
    assert_eq!(
        l.interpolated("keystone_authtoken", "nope").expect("ok"),
        None
    );
    assert_eq!(
        l.interpolated("DEFAULT", "bind_port")
            .expect("ok")
            .as_deref(),
        Some("9292")
    );
}

// ---- warnings --------------------------------------------------------------

#[test]
fn unknown_proxy_option_warns_with_file_and_line() {
    let w = warnings("[DEFAULT]\n[proxy]\n\n\n\n\n\n\n\n\n\nupstrem_url = http://a\n");
    assert_eq!(
        w,
        vec![
            "glance-api.conf:12: unknown option [proxy] upstrem_url (ignored); did you mean \
             upstream_url? (option names are case-sensitive and use underscores)"
                .to_owned()
        ]
    );
    let w = warnings("[proxy]\ncolour = blue\n");
    assert_eq!(
        w,
        vec!["glance-api.conf:2: unknown option [proxy] colour (ignored)".to_owned()]
    );
}

#[test]
fn image_cache_typos_in_default_warn() {
    let w = warnings("[DEFAULT]\nimage_cache_max_sise = 1\nimage_cache_prefetch = x\n");
    assert_eq!(w.len(), 2, "{w:?}");
    assert!(w[0].contains("did you mean image_cache_max_size?"), "{w:?}");
    assert!(
        w[1].starts_with("glance-api.conf:3: unknown option [DEFAULT] image_cache_prefetch"),
        "{w:?}"
    );
}

#[test]
fn unknown_sections_warn_but_glance_sections_do_not() {
    let w = warnings(
        "[keystone_authtoken]\n[oslo_messaging_rabbit]\n[glance.store.rbd.store]\n[proxi]\nx = 1\n",
    );
    assert_eq!(
        w,
        vec!["glance-api.conf:4: unknown section [proxi] (ignored)".to_owned()]
    );
}

#[test]
fn enabled_backends_sections_are_accepted() {
    let w = warnings("[DEFAULT]\nenabled_backends = fast:rbd, Cheap:file\n[fast]\nrbd_pool = x\n[cheap]\n[other]\n");
    assert_eq!(
        w,
        vec!["glance-api.conf:6: unknown section [other] (ignored)".to_owned()]
    );
}

#[test]
fn warnings_in_file_order() {
    let l = Config::from_sources(&[
        ("a.conf", "[zzz]\n[proxy]\nfoo = 1\n"),
        ("b.conf", "[yyy]\n"),
    ])
    .expect("loads");
    let w: Vec<_> = l
        .warnings
        .iter()
        .map(|w| (w.path.display().to_string(), w.line))
        .collect();
    assert_eq!(
        w,
        vec![
            ("a.conf".into(), 1),
            ("a.conf".into(), 3),
            ("b.conf".into(), 1)
        ]
    );
}

// ---- provenance ------------------------------------------------------------

#[test]
fn effective_values_remember_their_source() {
    let l = load("[DEFAULT]\nimage_cache_dir = /srv\n");
    let eff = l.effective();
    assert_eq!(eff.len(), OPTIONS.len());
    let dir = eff
        .iter()
        .find(|e| e.option.name == "image_cache_dir")
        .expect("listed");
    assert_eq!(dir.value.as_deref(), Some("/srv"));
    assert_eq!(dir.source, at("glance-api.conf", 2));
    let port = eff
        .iter()
        .find(|e| e.option.name == "bind_port")
        .expect("listed");
    assert_eq!(port.value.as_deref(), Some("9292"));
    assert_eq!(port.source, Source::Default);
    let unset = load("");
    let dir = unset
        .effective()
        .iter()
        .find(|e| e.option.name == "image_cache_dir")
        .expect("listed");
    assert_eq!(dir.value, None);
}

// ---- files -----------------------------------------------------------------

#[test]
fn load_reads_files_in_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = dir.path().join("glance-api.conf");
    let b = dir.path().join("glance-cache.conf");
    std::fs::File::create(&a)
        .and_then(|mut f| f.write_all(b"[DEFAULT]\nimage_cache_dir = /a\nbind_port = 1\n"))
        .expect("write a");
    std::fs::File::create(&b)
        .and_then(|mut f| f.write_all(b"[DEFAULT]\nbind_port = 2\n"))
        .expect("write b");
    let l = Config::load(&[&a, &b]).expect("loads");
    assert_eq!(l.config.bind_port, 2);
    assert_eq!(
        l.source_of("DEFAULT", "bind_port"),
        Source::File {
            path: b.clone(),
            line: 2
        }
    );
    assert_eq!(
        l.source_of("DEFAULT", "image_cache_dir"),
        Source::File { path: a, line: 2 }
    );
}

#[test]
fn unreadable_file_names_the_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("nope.conf");
    let e = Config::load(&[&missing]).expect_err("fails");
    assert!(matches!(&e, ConfigError::Read { path, .. } if *path == missing));
    let msg = e.to_string();
    assert!(msg.starts_with("cannot read config file "), "{msg}");
    assert!(msg.contains("nope.conf"), "{msg}");
}

#[test]
fn realistic_glance_api_conf_loads_without_warnings() {
    let text = r#"[DEFAULT]
# Glance API configuration
debug = False
log_file = /var/log/glance/api.log
bind_host = 0.0.0.0
bind_port = 9292
workers = 4
show_image_direct_url = True
show_multiple_locations = False
enabled_import_methods = [glance-direct,web-download,copy-image]
worker_self_reference_url = http://10.0.0.11:9292
public_endpoint = https://image.example.org
transport_url = rabbit://openstack:RABBIT_PASS@controller:5672/
enabled_backends = fast:rbd, local:file
image_cache_dir = /var/lib/glance/image-cache
image_cache_max_size = 10_737_418_240
image_cache_stall_time = 86400
image_cache_driver = centralized_db
image_member_quota = 128
image_property_quota = 128
user_storage_quota = 0
property_protection_file =

[database]
connection = mysql+pymysql://glance:GLANCE_DBPASS@controller/glance
max_retries = -1

[keystone_authtoken]
www_authenticate_uri = http://controller:5000
auth_url = http://controller:5000
memcached_servers = controller:11211
auth_type = password
project_domain_name = Default
user_domain_name = Default
project_name = service
username = glance
password = GLANCE_PA$$WORD
service_token_roles_required = true

[paste_deploy]
flavor = keystone+cachemanagement

[glance_store]
default_backend = fast

[fast]
rbd_store_pool = images
rbd_store_user = glance
rbd_store_ceph_conf = /etc/ceph/ceph.conf

[local]
filesystem_store_datadir = /var/lib/glance/images/

[os_glance_staging_store]
filesystem_store_datadir = /var/lib/glance/staging

[os_glance_tasks_store]
filesystem_store_datadir = /var/lib/glance/tasks_work_dir

[oslo_concurrency]
lock_path = /var/lib/glance/lock

[oslo_messaging_notifications]
driver = messagingv2

[oslo_policy]
enforce_new_defaults = true
enforce_scope = true

[oslo_limit]
auth_url = http://controller:5000
endpoint_id = 340be3625e9b4239a6415d034e98aace

[cors]
allowed_origin = https://dashboard.example.org

[profiler]
enabled = false

[wsgi]
task_pool_threads = 16

[proxy]
upstream_url = http://127.0.0.1:9393
hit_authorization = probe
"#;
    let l = load(text);
    assert!(l.warnings.is_empty(), "{:?}", l.warnings);
    let c = &l.config;
    assert_eq!(
        c.image_cache_dir.as_deref(),
        Some(std::path::Path::new("/var/lib/glance/image-cache"))
    );
    assert_eq!(c.image_cache_max_size, 10_737_418_240);
    assert_eq!(c.proxy.upstream_url.port_u16(), Some(9393));
    assert_eq!(
        l.raw
            .get("paste_deploy", "flavor")
            .map(|v| v.value.as_str()),
        Some("keystone+cachemanagement")
    );
    assert_eq!(
        l.raw
            .get("keystone_authtoken", "password")
            .map(|v| v.value.as_str()),
        Some("GLANCE_PA$$WORD")
    );
    assert_eq!(
        l.interpolated("keystone_authtoken", "password")
            .expect("ok")
            .as_deref(),
        Some("GLANCE_PA$WORD")
    );
    assert!(l.raw.has_section("fast"));
}

#[test]
fn every_bad_value_and_syntax_error_is_reported_in_one_run() {
    let e = load_err(
        "[DEFAULT]\nbind_port = 99999\nimage_cache_max_size = 10G\n[proxy]\nupstream_url = glance:9292\n",
    );
    let lines: Vec<String> = e.to_string().lines().map(str::to_owned).collect();
    assert_eq!(lines.len(), 3, "{e}");
    assert!(
        lines[0].starts_with("glance-api.conf:2: [DEFAULT] bind_port"),
        "{e}"
    );
    assert!(
        lines[1].starts_with("glance-api.conf:3: [DEFAULT] image_cache_max_size"),
        "{e}"
    );
    assert!(
        lines[2].starts_with("glance-api.conf:5: [proxy] upstream_url"),
        "{e}"
    );
    assert_eq!(e.errors().count(), 3);
    assert!(e.errors().all(|e| matches!(e, ConfigError::Value(_))));

    // A broken line in one file and a bad value in the next: both.
    let e = Config::from_sources(&[
        ("a.conf", "[DEFAULT]\nthis line has no equals sign\n"),
        ("b.conf", "[proxy]\nhit_chunk_size = 1\n"),
    ])
    .expect_err("fails");
    assert_eq!(e.errors().count(), 2, "{e}");
    assert!(e.to_string().contains("a.conf:2"), "{e}");
    assert!(
        e.to_string().contains("b.conf:2: [proxy] hit_chunk_size"),
        "{e}"
    );

    // One problem is still that problem, not a list.
    let one = load_err("[DEFAULT]\nbind_port = 99999\n");
    assert!(matches!(one, ConfigError::Value(_)), "{one:?}");
}

#[test]
fn an_upstream_that_is_the_proxys_own_listener_is_refused() {
    for text in [
        "[DEFAULT]\nbind_port = 9292\n[proxy]\nupstream_url = http://127.0.0.1:9292\n",
        "[DEFAULT]\nbind_host = 127.0.0.1\nbind_port = 8080\n[proxy]\nupstream_url = http://localhost:8080/\n",
        "[DEFAULT]\nbind_host = ::\nbind_port = 9292\n[proxy]\nupstream_url = http://[::1]:9292\n",
        "[DEFAULT]\nbind_host = 10.0.0.5\nbind_port = 80\n[proxy]\nupstream_url = http://10.0.0.5\n",
    ] {
        let e = load_err(text);
        assert!(
            matches!(e, ConfigError::Conflict(_)) && e.to_string().contains("own listener"),
            "{text}: {e}"
        );
    }
    // Another port, or another host's address: fine.
    for text in [
        "[DEFAULT]\nbind_port = 9292\n[proxy]\nupstream_url = http://127.0.0.1:9191\n",
        "[DEFAULT]\nbind_host = 10.0.0.5\nbind_port = 9292\n[proxy]\nupstream_url = http://10.0.0.6:9292\n",
    ] {
        load(text);
    }
    // The defaults cannot loop.
    let d = Config::default();
    assert_ne!(d.proxy.upstream_url.port_u16(), Some(d.bind_port));
    load("");
}
