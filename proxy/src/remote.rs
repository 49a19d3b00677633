//! The remote tier as configured: `[proxy] remote_store_*`, the
//! environment's `AWS_*` variables as the fallback, and
//! `[DEFAULT] worker_self_reference_url` as this node's name.

use anyhow::Context;
use glance_cache::remote::{RemoteTier, RemoteTierBuilder, S3Options};
use glance_cache::tls::ClientTls;
use glance_cache_config::Config;

/// The remote tier's builder, or `None` when `remote_store_url` is unset.
pub(crate) fn tier(config: &Config) -> anyhow::Result<Option<RemoteTierBuilder>> {
    let p = &config.proxy;
    let Some(url) = &p.remote_store_url else {
        return Ok(None);
    };
    let mut options = S3Options::new(url);
    if let Some(endpoint) = &p.remote_store_endpoint {
        options = options.with_endpoint(endpoint);
    }
    if let Some(region) = &p.remote_store_region {
        options = options.with_region(region);
    }
    match (
        &p.remote_store_access_key_id,
        &p.remote_store_secret_access_key,
    ) {
        (Some(key), Some(secret)) => options = options.with_credentials(key, secret),
        (None, None) => {}
        _ => anyhow::bail!(
            "[proxy] remote_store_access_key_id and remote_store_secret_access_key must be set \
             together (or both left to AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY)"
        ),
    }
    if p.remote_store_allow_http {
        options = options.with_allow_http(true);
    }
    if let Some(ca) = &p.remote_store_ca_file {
        options = options.with_tls(ClientTls::new().with_ca_file(ca));
    }
    let mut tier = RemoteTier::s3(&options)
        .with_context(|| format!("cannot use [proxy] remote_store_url {url}"))?
        .max_size(p.remote_max_size)
        .timeout(p.remote_timeout);
    match &config.worker_self_reference_url {
        Some(node) => tier = tier.node(node.to_string()),
        None => tracing::warn!(
            "remote_store_url is set but worker_self_reference_url is not: this node uses the \
             remote tier but takes no fill leases and is not listed in the node registry"
        ),
    }
    Ok(Some(tier))
}
