//! The TLS settings of `[proxy]` turned into the library's TLS types, and
//! certificate reloading on SIGHUP.

use std::path::Path;

use anyhow::Context;
use glance_cache::tls::{ClientTls, ServerTls};
use glance_cache_config::ProxyOptions;

/// How the upstream's certificate is checked: `upstream_ca_file`,
/// `upstream_cert_file` + `upstream_key_file`, `upstream_insecure`.
pub(crate) fn upstream(p: &ProxyOptions) -> anyhow::Result<ClientTls> {
    let mut tls = ClientTls::new().with_insecure(p.upstream_insecure);
    if let Some(ca) = &p.upstream_ca_file {
        tls = tls.with_ca_file(ca);
    }
    if let Some((cert, key)) = pair(
        &p.upstream_cert_file,
        &p.upstream_key_file,
        "upstream_cert_file",
        "upstream_key_file",
    )? {
        tls = tls.with_client_cert(cert, key);
    }
    Ok(tls)
}

/// The listener's TLS (`tls_cert_file`, `tls_key_file`,
/// `tls_client_ca_file`), or `None` for plain HTTP.
pub(crate) fn listener(p: &ProxyOptions) -> anyhow::Result<Option<ServerTls>> {
    let Some((cert, key)) = pair(
        &p.tls_cert_file,
        &p.tls_key_file,
        "tls_cert_file",
        "tls_key_file",
    )?
    else {
        anyhow::ensure!(
            p.tls_client_ca_file.is_none(),
            "[proxy] tls_client_ca_file is set but tls_cert_file and tls_key_file are not: \
             client certificates need TLS on the listener"
        );
        return Ok(None);
    };
    let mut builder = ServerTls::builder(cert, key);
    if let Some(ca) = &p.tls_client_ca_file {
        builder = builder.client_ca_file(ca);
    }
    let tls = builder
        .build()
        .context("cannot use the listener's TLS settings ([proxy] tls_cert_file, tls_key_file)")?;
    tracing::info!(certificate = %tls.loaded(), client_certificates = tls.verifies_clients(),
        "listener speaks TLS");
    Ok(Some(tls))
}

/// The admin endpoint's TLS (`admin_tls_cert_file`, `admin_tls_key_file`).
pub(crate) fn admin_listener(p: &ProxyOptions) -> anyhow::Result<Option<ServerTls>> {
    let Some((cert, key)) = pair(
        &p.admin_tls_cert_file,
        &p.admin_tls_key_file,
        "admin_tls_cert_file",
        "admin_tls_key_file",
    )?
    else {
        return Ok(None);
    };
    let tls = ServerTls::builder(cert, key).build().context(
        "cannot use the admin endpoint's TLS settings ([proxy] admin_tls_cert_file, \
         admin_tls_key_file)",
    )?;
    Ok(Some(tls))
}

fn pair<'a>(
    cert: &'a Option<std::path::PathBuf>,
    key: &'a Option<std::path::PathBuf>,
    cert_name: &str,
    key_name: &str,
) -> anyhow::Result<Option<(&'a Path, &'a Path)>> {
    match (cert, key) {
        (Some(c), Some(k)) => Ok(Some((c, k))),
        (None, None) => Ok(None),
        (Some(_), None) => anyhow::bail!("[proxy] {cert_name} is set but {key_name} is not"),
        (None, Some(_)) => anyhow::bail!("[proxy] {key_name} is set but {cert_name} is not"),
    }
}

/// On every SIGHUP, reads the certificate files of `listeners` again (on
/// the blocking pool). A listener whose new files cannot be used keeps its
/// certificate; both outcomes are logged. Without listeners, SIGHUP is
/// logged and otherwise ignored.
pub(crate) fn reload_on_sighup(listeners: Vec<ServerTls>) {
    // Installed even without TLS: SIGHUP's default action would end the
    // process and every download in flight.
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut hup = match signal(SignalKind::hangup()) {
            Ok(s) => s,
            Err(error) => {
                tracing::error!(%error, "cannot install a SIGHUP handler: certificates will not be reloaded");
                return;
            }
        };
        tokio::spawn(async move {
            while hup.recv().await.is_some() {
                if listeners.is_empty() {
                    tracing::info!("SIGHUP: no TLS certificate to reload");
                }
                for tls in &listeners {
                    let before = tls.loaded();
                    let reloading = tls.clone();
                    let reloaded = tokio::task::spawn_blocking(move || reloading.reload())
                        .await
                        .unwrap_or_else(|e| {
                            Err(glance_cache::tls::TlsError::Config(e.to_string()))
                        });
                    match reloaded {
                        Ok(now) => tracing::info!(certificate = %now,
                            changed = now.fingerprint != before.fingerprint,
                            "SIGHUP: certificate reloaded; new connections use it"),
                        Err(error) => tracing::error!(%error, kept = %before,
                            "SIGHUP: cannot use the new certificate files; keeping the certificate in use"),
                    }
                }
            }
        });
    }
}
