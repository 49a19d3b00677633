//! Tests of the management and maintenance options: `management_auth`
//! resolution, `admin_tokens`, `[keystone_authtoken]`, `[cache_policy]`,
//! and the prefetch/prune/clean options.

use std::time::Duration;

use super::*;

fn load(text: &str) -> Loaded {
    Config::from_sources(&[("glance-api.conf", text)]).expect("loads")
}

fn load_err(text: &str) -> String {
    Config::from_sources(&[("glance-api.conf", text)])
        .expect_err("fails")
        .to_string()
}

fn warnings(text: &str) -> Vec<String> {
    load(text).warnings.iter().map(|w| w.to_string()).collect()
}

const KEYSTONE: &str = "[keystone_authtoken]
auth_url = http://127.0.0.1:5000
username = glance
password = secret-pw
project_name = service
";

#[test]
fn defaults() {
    let c = Config::default();
    let m = &c.management;
    assert_eq!(m.auth, ManagementAuthMode::Deny);
    assert!(m.admin_tokens.is_empty());
    assert_eq!(m.keystone, None);
    assert_eq!(m.token_cache_time, Duration::from_secs(60));
    assert_eq!(m.policy, CachePolicy::default());
    assert_eq!(c.maintenance, MaintenanceOptions::default());
    let d = &c.maintenance;
    assert!(d.prefetch_enabled && d.auto_prune);
    assert_eq!(d.prefetch_workers, 2);
    assert_eq!(d.prefetch_retries, 5);
    assert_eq!(d.prefetch_retry_delay, Duration::from_secs(5));
    assert_eq!(d.clean_interval, Duration::from_secs(3600));

    let l = load("[proxy]\n[cache_policy]\n[keystone_authtoken]\n");
    assert!(l.warnings.is_empty(), "{:?}", l.warnings);
    assert_eq!(l.config.management, ManagementOptions::default());
    assert_eq!(l.config.maintenance, MaintenanceOptions::default());
}

#[test]
fn auto_picks_keystone_when_auth_url_is_set() {
    let l = load(KEYSTONE);
    assert!(l.warnings.is_empty(), "{:?}", l.warnings);
    let m = &l.config.management;
    assert_eq!(m.auth, ManagementAuthMode::Keystone);
    let ks = m.keystone.as_ref().expect("keystone options");
    assert_eq!(
        ks,
        &KeystoneOptions::new("http://127.0.0.1:5000", "glance", "secret-pw", "service")
    );
    assert_eq!(ks.user_domain, Domain::Id("default".into()));
    assert_eq!(ks.identity_url().expect("url"), "http://127.0.0.1:5000/v3");
}

#[test]
fn auto_picks_static_then_deny() {
    let l = load("[proxy]\nadmin_tokens = abc\n");
    assert_eq!(l.config.management.auth, ManagementAuthMode::Static);
    assert_eq!(l.config.management.admin_tokens, vec!["abc"]);
    assert_eq!(l.config.management.keystone, None);
    let l = load("[DEFAULT]\nadmin_tokens = abc\n");
    assert_eq!(l.config.management.auth, ManagementAuthMode::Static);
    // An empty auth_url counts as unset.
    let l = load("[keystone_authtoken]\nauth_url =\nusername = glance\n");
    assert_eq!(l.config.management.auth, ManagementAuthMode::Deny);
    assert!(l.warnings.is_empty());
}

#[test]
fn admin_tokens_merge_repeated_keys_sections_and_files() {
    let l = Config::from_sources(&[
        (
            "a.conf",
            "[DEFAULT]\nadmin_tokens = d1\n[proxy]\nadmin_tokens = p1, p2,,\nadmin_tokens = p3\n",
        ),
        ("b.conf", "[proxy]\nadmin_tokens = p1,p4\n"),
    ])
    .expect("loads");
    assert_eq!(
        l.config.management.admin_tokens,
        vec!["p1", "p2", "p3", "p4", "d1"]
    );
    assert_eq!(l.source_of("proxy", "admin_tokens").to_string(), "b.conf:2");
    // Never shown: not in effective values, not in Debug output.
    for e in l.effective() {
        if e.option.name == "admin_tokens" {
            assert_eq!(e.value.as_deref(), Some("<redacted>"));
        }
    }
    let debug = format!("{l:?}");
    for t in ["p1", "p2", "p3", "p4", "d1"] {
        assert!(!debug.contains(&format!("\"{t}")), "{t} in {debug}");
        assert!(!debug.contains(&format!("{t}\"")), "{t} in {debug}");
    }
}

#[test]
fn admin_tokens_with_spaces_are_rejected_without_showing_them() {
    let e = load_err("[proxy]\n\nadmin_tokens = good, bad token\n");
    assert!(e.starts_with("glance-api.conf:3: [proxy] admin_tokens = \"<redacted>\": expected a comma-separated list of tokens"), "{e}");
    assert!(e.contains("item 2 of 2 contains a space"), "{e}");
    assert!(!e.contains("bad") && !e.contains("good"), "{e}");
}

#[test]
fn explicit_modes_need_their_options() {
    assert_eq!(
        load_err("[proxy]\nmanagement_auth = static\n"),
        "glance-api.conf:2: [proxy] management_auth = \"static\": static needs at least one \
         token in [proxy] admin_tokens or [DEFAULT] admin_tokens"
    );
    assert_eq!(
        load_err("[proxy]\n\nmanagement_auth = keystone\n"),
        "glance-api.conf:3: [proxy] management_auth = \"keystone\": keystone needs \
         [keystone_authtoken] auth_url, username, password and project_name (or project_id)"
    );
    let l = load("[proxy]\nmanagement_auth = Open\nadmin_tokens = x\n");
    assert_eq!(l.config.management.auth, ManagementAuthMode::Open);
    let l = load(&format!("{KEYSTONE}[proxy]\nmanagement_auth = deny\n"));
    assert_eq!(l.config.management.auth, ManagementAuthMode::Deny);
    assert_eq!(l.config.management.keystone, None);
    let e = load_err("[proxy]\nmanagement_auth = none\n");
    assert!(
        e.ends_with("expected one of auto, keystone, static, open, deny (case-insensitive)"),
        "{e}"
    );
}

#[test]
fn missing_keystone_credentials_point_at_auth_url() {
    let e = load_err(
        "[keystone_authtoken]\nauth_url = http://ks:5000/v3\nusername = glance\nproject_name = service\n",
    );
    assert_eq!(
        e,
        "glance-api.conf:2: [keystone_authtoken] auth_url = \"http://ks:5000/v3\": \
         [keystone_authtoken] password is not set (management_auth = auto uses Keystone because \
         auth_url is set; set [proxy] management_auth to static, open or deny to not use it)"
    );
    let e = load_err(
        "[proxy]\nmanagement_auth = keystone\n[keystone_authtoken]\nauth_url = http://ks\n\
         username = glance\npassword = pw\n",
    );
    assert!(
        e.contains("project_name (or project_id) is not set (needed for [proxy] management_auth = keystone)"),
        "{e}"
    );
    let e = load_err("[keystone_authtoken]\nauth_url = http://ks\npassword = pw\n");
    assert!(e.contains("username is not set"), "{e}");
}

#[test]
fn https_keystone_with_keystonemiddlewares_tls_options_and_other_auth_types() {
    let https = "[keystone_authtoken]\nauth_url = https://ks:5000/v3\nusername = g\npassword = p\n\
                 project_name = service\ncafile = /etc/ssl/ks-ca.pem\ninsecure = False\n";
    let l = load(https);
    assert_eq!(l.config.management.auth, ManagementAuthMode::Keystone);
    let ks = l.config.management.keystone.as_ref().expect("keystone");
    assert_eq!(
        ks.tls.ca_file(),
        Some(std::path::Path::new("/etc/ssl/ks-ca.pem"))
    );
    assert!(!ks.tls.is_insecure());
    let e = load_err(&format!("{https}certfile = /etc/ssl/c.pem\n"));
    assert!(
        e.contains("[keystone_authtoken] certfile") && e.contains("keyfile is not set"),
        "{e}"
    );
    let e = load_err(&format!("{https}keyfile = /etc/ssl/c.key\n"));
    assert!(
        e.contains("[keystone_authtoken] keyfile") && e.contains("certfile is not set"),
        "{e}"
    );
    let e = load_err(
        "[keystone_authtoken]\nauth_url = https://ks\nusername = g\npassword = p\n\
                      project_name = s\ninsecure = maybe\n",
    );
    assert!(
        e.contains("insecure = \"maybe\": expected a boolean"),
        "{e}"
    );
    let l = load(&format!(
        "{https}[proxy]\nmanagement_auth = static\nadmin_tokens = t\n"
    ));
    assert_eq!(l.config.management.auth, ManagementAuthMode::Static);
    assert!(l.warnings.is_empty(), "{:?}", l.warnings);
    assert!(
        l.config.management.keystone.is_some(),
        "static mode keeps the service user"
    );

    let appcred = format!("{KEYSTONE}auth_type = v3applicationcredential\n");
    let e = load_err(&appcred);
    assert!(
        e.starts_with("glance-api.conf:6: [keystone_authtoken] auth_type = \"v3applicationcredential\": expected password or v3password"),
        "{e}"
    );
    let l = load(&format!("{KEYSTONE}auth_type = V3Password\n"));
    assert_eq!(l.config.management.auth, ManagementAuthMode::Keystone);
    let l = load(&format!("{appcred}[proxy]\nmanagement_auth = open\n"));
    assert_eq!(l.config.management.auth, ManagementAuthMode::Open);
}

#[test]
fn keystone_errors_never_show_the_password() {
    let text = "[keystone_authtoken]\nauth_url = http://ks\nusername = g\npassword = pa$word\n\
                project_name = p\n";
    let e = load_err(text);
    assert_eq!(
        e,
        "glance-api.conf:4: [keystone_authtoken] password = \"<redacted>\": unknown option \
         \"$word\" in interpolation (write $$ or \\$ for a literal $)"
    );
    // Not used, not checked (Glance reports its own configuration).
    let l = load(&format!("{text}[proxy]\nmanagement_auth = deny\n"));
    assert_eq!(l.config.management.auth, ManagementAuthMode::Deny);
    // $$ is a literal $.
    let l = load(&text.replace("pa$word", "pa$$word"));
    let ks = l.config.management.keystone.clone().expect("keystone");
    assert_eq!(ks.password, "pa$word");
    assert!(!format!("{ks:?}").contains("pa$word"));
    let eff = l
        .effective()
        .iter()
        .find(|e| e.option.name == "password")
        .expect("listed");
    assert_eq!(eff.value.as_deref(), Some("<redacted>"));
}

#[test]
fn domains_and_projects_like_keystoneauth() {
    let base = "[keystone_authtoken]\nauth_url = http://ks\nusername = g\npassword = p\n";
    let ks = |extra: &str| {
        load(&format!("{base}{extra}"))
            .config
            .management
            .keystone
            .expect("keystone")
    };
    let k = ks("project_name = service\n");
    assert_eq!(k.user_domain, Domain::Id("default".into()));
    assert_eq!(
        k.project,
        Project::Name {
            name: "service".into(),
            domain: Domain::Id("default".into())
        }
    );
    let k = ks("project_name = s\nuser_domain_name = Default\nproject_domain_name = Corp\n");
    assert_eq!(k.user_domain, Domain::Name("Default".into()));
    assert_eq!(
        k.project,
        Project::Name {
            name: "s".into(),
            domain: Domain::Name("Corp".into())
        }
    );
    let k = ks("project_name = s\nuser_domain_name = N\nuser_domain_id = i\nproject_id = pid\n");
    assert_eq!(k.user_domain, Domain::Id("i".into()));
    assert_eq!(k.project, Project::Id("pid".into()));
    let k = ks("project_name = s\ndefault_domain_name = Corp\n");
    assert_eq!(k.user_domain, Domain::Name("Corp".into()));
    assert_eq!(
        k.project,
        Project::Name {
            name: "s".into(),
            domain: Domain::Name("Corp".into())
        }
    );
    let k = ks("project_name = s\ndefault_domain_id = d\ndefault_domain_name = Corp\nregion_name = R\nwww_authenticate_uri = http://pub:5000\n");
    assert_eq!(k.user_domain, Domain::Id("d".into()));
    assert_eq!(k.region_name.as_deref(), Some("R"));
    assert_eq!(k.www_authenticate_uri.as_deref(), Some("http://pub:5000"));
}

#[test]
fn token_cache_time_like_keystonemiddleware_capped() {
    let t = |v: &str| {
        load(&format!("[keystone_authtoken]\ntoken_cache_time = {v}\n"))
            .config
            .management
            .token_cache_time
    };
    assert_eq!(t("300"), Duration::from_secs(300));
    assert_eq!(t("3600"), Duration::from_secs(300));
    assert_eq!(t("99999999999999999999999999"), Duration::from_secs(300));
    assert_eq!(t("-1"), Duration::ZERO);
    assert_eq!(t("0"), Duration::ZERO);
    assert_eq!(t("1_0"), Duration::from_secs(10));
    // Invalid values count only when Keystone is used.
    let l = load("[keystone_authtoken]\ntoken_cache_time = 5m\n");
    assert_eq!(
        l.config.management.token_cache_time,
        Duration::from_secs(60)
    );
    let e = load_err(&format!("{KEYSTONE}token_cache_time = -2\n"));
    assert_eq!(
        e,
        "glance-api.conf:6: [keystone_authtoken] token_cache_time = \"-2\": expected an integer \
         >= -1 (seconds; -1 turns the cache off, values above 300 count as 300)"
    );
}

#[test]
fn cache_policy_rules() {
    let l =
        load("[cache_policy]\ncache_list = admin, Operator\ncache_image = @\ncache_delete = !\n");
    let p = &l.config.management.policy;
    assert!(p.allows(PolicyRule::CacheList, &["operator"]));
    assert!(p.allows(PolicyRule::CacheImage, &["reader"]));
    assert!(!p.allows(PolicyRule::CacheDelete, &["admin"]));
    assert!(p.allows(PolicyRule::CacheClean, &["admin"]));
    assert!(!p.allows(PolicyRule::CacheClean, &["member"]));

    let e = load_err("[cache_policy]\n\ncache_list = rule:context_is_admin\n");
    assert!(
        e.starts_with("glance-api.conf:3: [cache_policy] cache_list = \"rule:context_is_admin\": expected a comma-separated list of role names"),
        "{e}"
    );
    assert!(e.contains("oslo.policy expressions"), "{e}");
    assert!(load_err("[cache_policy]\ncache_prune =\n").contains("found no role"));
}

#[test]
fn typos_in_new_sections_warn_but_keystonemiddleware_options_do_not() {
    assert_eq!(
        warnings("[cache_policy]\ncache_lst = admin\n"),
        vec![
            "glance-api.conf:2: unknown option [cache_policy] cache_lst (ignored); did you mean \
             cache_list? (option names are case-sensitive and use underscores)"
                .to_owned()
        ]
    );
    assert_eq!(
        warnings("[keystone_authtoken]\nusernme = glance\nauth_uri = http://ks\nfoo = 1\n"),
        vec![
            "glance-api.conf:2: unknown option [keystone_authtoken] usernme (ignored); did you \
             mean username? (option names are case-sensitive and use underscores)"
                .to_owned()
        ]
    );
    assert_eq!(
        warnings("[proxy]\nprefetch_worker = 2\n").len(),
        1,
        "a [proxy] typo"
    );
}

#[test]
fn admin_tokens_ignored_outside_static_mode_warn() {
    let w = warnings(&format!("{KEYSTONE}[proxy]\nadmin_tokens = t\n"));
    assert_eq!(
        w,
        vec![
            "glance-api.conf:7: [proxy] admin_tokens is ignored: [proxy] management_auth is \
             keystone (auto, because [keystone_authtoken] auth_url is set); set \
             management_auth = static to use the tokens"
                .to_owned()
        ]
    );
    let w = warnings("[DEFAULT]\nadmin_tokens = t\n[proxy]\nmanagement_auth = open\n");
    assert_eq!(
        w,
        vec![
            "glance-api.conf:2: [DEFAULT] admin_tokens is ignored: [proxy] management_auth is \
             open; set management_auth = static to use the tokens"
                .to_owned()
        ]
    );
}

#[test]
fn maintenance_ranges() {
    for (line, expected) in [
        ("prefetch_workers = 0", "an integer between 1 and 16"),
        ("prefetch_workers = 17", "an integer between 1 and 16"),
        ("prefetch_retries = 101", "an integer between 0 and 100"),
        (
            "prefetch_retry_delay = 0",
            "an integer between 1 and 300 (seconds",
        ),
        ("prefetch_enabled = paused", "a boolean"),
        ("auto_prune = 2", "a boolean"),
        ("clean_interval = 1h", "an integer >= 0 (seconds"),
    ] {
        let e = load_err(&format!("[proxy]\n{line}\n"));
        assert!(e.starts_with("glance-api.conf:2: [proxy] "), "{e}");
        assert!(e.contains(expected), "{line}: {e}");
    }
    let l = load("[proxy]\nprefetch_enabled = off\nclean_interval = 60\n");
    assert!(!l.config.maintenance.prefetch_enabled);
    assert_eq!(
        l.config.maintenance.clean_every(),
        Some(Duration::from_secs(60))
    );
}

/// An operator's glance-api.conf with a full `[keystone_authtoken]` section
/// (devstack / openstack-ansible style) loads unchanged, without warnings,
/// and turns Keystone validation on.
#[test]
fn operators_keystone_authtoken_section_loads_without_warnings() {
    let text = r#"[DEFAULT]
bind_host = 0.0.0.0
bind_port = 9292
image_cache_dir = /var/lib/glance/image-cache
transport_url = rabbit://openstack:RABBIT_PASS@controller:5672/

[keystone_authtoken]
www_authenticate_uri = http://controller:5000
auth_url = http://controller:5000
auth_type = password
auth_version = v3
interface = internal
memcached_servers = controller:11211
memcache_security_strategy = ENCRYPT
memcache_secret_key = MEMCACHE_KEY
memcache_pool_maxsize = 10
memcache_use_advanced_pool = true
project_domain_name = Default
user_domain_name = Default
project_name = service
username = glance
password = GLANCE_PASS
region_name = RegionOne
service_type = image
service_token_roles = service
service_token_roles_required = true
token_cache_time = 300
include_service_catalog = false
delay_auth_decision = false
http_connect_timeout = 5
http_request_max_retries = 3
cafile = /etc/ssl/certs/ca-certificates.crt
insecure = false
enforce_token_bind = permissive
auth_uri = http://controller:5000

[paste_deploy]
flavor = keystone+cachemanagement

[oslo_policy]
enforce_new_defaults = true
"#;
    let l = load(text);
    assert!(l.warnings.is_empty(), "{:?}", l.warnings);
    let m = &l.config.management;
    assert_eq!(m.auth, ManagementAuthMode::Keystone);
    assert_eq!(m.token_cache_time, Duration::from_secs(300));
    let ks = m.keystone.as_ref().expect("keystone");
    assert_eq!(ks.auth_url, "http://controller:5000");
    assert_eq!(ks.username, "glance");
    assert_eq!(ks.password, "GLANCE_PASS");
    assert_eq!(ks.user_domain, Domain::Name("Default".into()));
    assert_eq!(
        ks.project,
        Project::Name {
            name: "service".into(),
            domain: Domain::Name("Default".into())
        }
    );
    assert_eq!(ks.region_name.as_deref(), Some("RegionOne"));
    assert_eq!(
        ks.www_authenticate_uri.as_deref(),
        Some("http://controller:5000")
    );
    let debug = format!("{l:?}");
    for secret in ["GLANCE_PASS", "RABBIT_PASS", "MEMCACHE_KEY"] {
        assert!(!debug.contains(secret), "{secret} shown in {debug}");
    }
}

#[test]
fn static_mode_takes_keystone_credentials_as_its_service_user() {
    let statik = "[proxy]\nmanagement_auth = static\nadmin_tokens = t\n";
    // Without auth_url: no service user (lookups go without credentials).
    let l = load(statik);
    assert_eq!(l.config.management.auth, ManagementAuthMode::Static);
    assert_eq!(l.config.management.keystone, None);
    // With complete credentials: they are the service user.
    let l = load(&format!("{statik}{KEYSTONE}"));
    assert_eq!(l.config.management.auth, ManagementAuthMode::Static);
    let ks = l.config.management.keystone.as_ref().expect("service user");
    assert_eq!(ks.username, "glance");
    assert!(l
        .config
        .management
        .auth()
        .unwrap()
        .has_service_credentials());
    // auth_url without the rest is an error that says what they are for.
    let e = load_err(&format!(
        "{statik}[keystone_authtoken]\nauth_url = http://ks:5000/v3\nusername = glance\n"
    ));
    assert!(
        e.contains("password is not set") && e.contains("static admin token"),
        "{e}"
    );
}
