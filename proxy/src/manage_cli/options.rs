//! The options every cache command takes: where the proxy is, how to
//! authenticate (a token, or Keystone password authentication from the
//! usual `OS_*` variables), and how to print. Names, short forms, hidden
//! aliases and environment variables are `glance-cache-manage`'s.

use clap::{Args, ValueEnum};

/// How results are printed on stdout.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    /// Human-readable lines and tables, as glance-cache-manage prints them.
    #[default]
    Table,
    /// One JSON document (the proxy's own for lists and "delete all"), for
    /// scripts.
    Json,
}

/// `-S/--os-auth-strategy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Strategy {
    /// Get a token from Keystone with the `--os-*` credentials.
    Keystone,
    /// Send only the token given (or none).
    Noauth,
}

/// Options shared by every cache command.
#[derive(Clone, Debug, Args)]
pub(crate) struct CommonArgs {
    /// Address of the proxy (connected to as given; 0.0.0.0 reaches a proxy
    /// listening on all addresses of this host). Prefix it with https:// for
    /// a proxy that speaks TLS.
    #[arg(
        short = 'H',
        long,
        value_name = "ADDRESS",
        default_value = "0.0.0.0",
        help_heading = "Connection"
    )]
    pub(crate) host: String,

    /// Port the proxy listens on.
    #[arg(
        short,
        long,
        value_name = "PORT",
        default_value_t = 9292,
        help_heading = "Connection"
    )]
    pub(crate) port: u16,

    /// Do not check the certificates of the proxy (an https:// --host) and
    /// of Keystone. For labs only.
    #[arg(short = 'k', long, help_heading = "Connection")]
    pub(crate) insecure: bool,

    /// Print more: what was done, and the time taken.
    #[arg(short, long, help_heading = "Output")]
    pub(crate) verbose: bool,

    /// Print each request and answer (and Keystone's URL and user) on
    /// stderr, and the full error.
    #[arg(short, long, help_heading = "Output")]
    pub(crate) debug: bool,

    /// Output format.
    #[arg(
        long,
        value_enum,
        default_value_t = Format::Table,
        value_name = "FORMAT",
        help_heading = "Output"
    )]
    pub(crate) format: Format,

    #[command(flatten)]
    pub(crate) auth: AuthArgs,
}

/// Authentication options. A token skips Keystone entirely.
#[derive(Clone, Debug, Args)]
pub(crate) struct AuthArgs {
    /// Token to send as X-Auth-Token (a Keystone token, or one of the
    /// proxy's admin_tokens). Given, no other credentials are used.
    #[arg(
        long = "os-auth-token",
        short_alias = 'A',
        aliases = ["os_auth_token", "auth_token"],
        env = "OS_AUTH_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN",
        help_heading = "Authentication"
    )]
    pub(crate) token: Option<String>,

    /// Keystone endpoint for password authentication (/v3 is appended when
    /// missing; http only). Its presence selects Keystone.
    #[arg(
        short = 'N',
        long = "os-auth-url",
        alias = "os_auth_url",
        env = "OS_AUTH_URL",
        value_name = "URL",
        help_heading = "Authentication"
    )]
    pub(crate) auth_url: Option<String>,

    /// Keystone user name.
    #[arg(
        short = 'I',
        long = "os-username",
        alias = "os_username",
        env = "OS_USERNAME",
        value_name = "NAME",
        help_heading = "Authentication"
    )]
    pub(crate) username: Option<String>,

    /// Keystone password.
    #[arg(
        short = 'K',
        long = "os-password",
        alias = "os_password",
        env = "OS_PASSWORD",
        hide_env_values = true,
        value_name = "PASSWORD",
        help_heading = "Authentication"
    )]
    pub(crate) password: Option<String>,

    /// Project to scope the token to, by name.
    #[arg(
        short = 'T',
        long = "os-project-name",
        aliases = ["os_project_name", "os-tenant-name", "os_tenant_name"],
        env = "OS_PROJECT_NAME",
        value_name = "NAME",
        help_heading = "Authentication"
    )]
    pub(crate) project_name: Option<String>,

    /// Project to scope the token to, by id (wins over the name).
    #[arg(
        long = "os-project-id",
        aliases = ["os_project_id", "os-tenant-id", "os_tenant_id"],
        env = "OS_PROJECT_ID",
        value_name = "ID",
        help_heading = "Authentication"
    )]
    pub(crate) project_id: Option<String>,

    /// Domain of the user, by id.
    #[arg(
        long = "os-user-domain-id",
        env = "OS_USER_DOMAIN_ID",
        value_name = "ID",
        help_heading = "Authentication"
    )]
    pub(crate) user_domain_id: Option<String>,

    /// Domain of the user, by name.
    #[arg(
        long = "os-user-domain-name",
        env = "OS_USER_DOMAIN_NAME",
        value_name = "NAME",
        help_heading = "Authentication"
    )]
    pub(crate) user_domain_name: Option<String>,

    /// Domain of the project, by id.
    #[arg(
        long = "os-project-domain-id",
        env = "OS_PROJECT_DOMAIN_ID",
        value_name = "ID",
        help_heading = "Authentication"
    )]
    pub(crate) project_domain_id: Option<String>,

    /// Domain of the project, by name.
    #[arg(
        long = "os-project-domain-name",
        env = "OS_PROJECT_DOMAIN_NAME",
        value_name = "NAME",
        help_heading = "Authentication"
    )]
    pub(crate) project_domain_name: Option<String>,

    /// Domain id used for the user and the project when their own domain
    /// is not given.
    #[arg(
        long = "os-domain-id",
        env = "OS_DOMAIN_ID",
        default_value = "default",
        value_name = "ID",
        help_heading = "Authentication"
    )]
    pub(crate) domain_id: String,

    /// Region name; accepted for compatibility: the proxy is always reached
    /// at --host and --port, never through the service catalog.
    #[arg(
        short = 'R',
        long = "os-region-name",
        alias = "os_region_name",
        env = "OS_REGION_NAME",
        value_name = "NAME",
        help_heading = "Authentication"
    )]
    pub(crate) region_name: Option<String>,

    /// keystone or noauth (default: keystone when an auth URL is given,
    /// else noauth).
    #[arg(
        short = 'S',
        long = "os-auth-strategy",
        alias = "os_auth_strategy",
        env = "OS_AUTH_STRATEGY",
        value_enum,
        value_name = "STRATEGY",
        help_heading = "Authentication"
    )]
    pub(crate) strategy: Option<Strategy>,

    /// PEM bundle of the certificate authorities that the certificates of
    /// Keystone and of an https:// proxy must chain to (default: the
    /// system's trust store).
    #[arg(
        long = "os-cacert",
        alias = "os_cacert",
        env = "OS_CACERT",
        value_name = "FILE",
        help_heading = "Authentication"
    )]
    pub(crate) cacert: Option<std::path::PathBuf>,

    /// PEM client certificate for Keystone and the proxy (mutual TLS).
    #[arg(
        long = "os-cert",
        alias = "os_cert",
        env = "OS_CERT",
        value_name = "FILE",
        requires = "key",
        help_heading = "Authentication"
    )]
    pub(crate) cert: Option<std::path::PathBuf>,

    /// PEM private key of --os-cert.
    #[arg(
        long = "os-key",
        alias = "os_key",
        env = "OS_KEY",
        value_name = "FILE",
        requires = "cert",
        help_heading = "Authentication"
    )]
    pub(crate) key: Option<std::path::PathBuf>,
}

impl CommonArgs {
    /// How the certificates of Keystone and of an https proxy are checked.
    pub(crate) fn tls(&self) -> glance_cache::tls::ClientTls {
        let mut tls = glance_cache::tls::ClientTls::new().with_insecure(self.insecure);
        if let Some(ca) = &self.auth.cacert {
            tls = tls.with_ca_file(ca);
        }
        if let (Some(cert), Some(key)) = (&self.auth.cert, &self.auth.key) {
            tls = tls.with_client_cert(cert, key);
        }
        tls
    }
}
