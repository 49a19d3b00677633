//! [`S3Options`]: where the shared tier lives on an S3-compatible store
//! (Ceph RGW, Swift's S3 API, MinIO, AWS) and how the proxy signs in.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey, S3ConditionalPut};
use object_store::{BackoffConfig, ObjectStore, RetryConfig};

use super::connector::HyperConnector;
use super::RemoteError;
use crate::tls::ClientTls;

/// Connection settings of an S3-compatible remote tier.
///
/// Every setting left unset falls back to the standard variables the S3
/// builder reads from the environment (`AWS_ENDPOINT`, `AWS_REGION`,
/// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_ALLOW_HTTP`, …).
/// Conditional create (`If-None-Match: *`), which the fill leases need, is
/// always on.
///
/// ```
/// use glance_cache::remote::S3Options;
///
/// let options = S3Options::new("s3://glance-cache/node-cache")
///     .with_endpoint("http://127.0.0.1:9000")
///     .with_region("us-east-1")
///     .with_credentials("AK", "SK")
///     .with_allow_http(true);
/// assert_eq!(options.bucket().unwrap(), "glance-cache");
/// assert_eq!(options.prefix().unwrap(), "node-cache");
/// assert!(!format!("{options:?}").contains("SK"), "the secret is not printed");
/// ```
#[derive(Clone)]
pub struct S3Options {
    url: String,
    endpoint: Option<String>,
    region: Option<String>,
    credentials: Option<(String, String)>,
    allow_http: Option<bool>,
    tls: ClientTls,
    connect_timeout: Duration,
}

impl fmt::Debug for S3Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Options")
            .field("url", &self.url)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.credentials.as_ref().map(|c| &c.0))
            .field("allow_http", &self.allow_http)
            .field("tls", &self.tls)
            .finish_non_exhaustive()
    }
}

impl S3Options {
    /// The tier at `url`: `s3://bucket` or `s3://bucket/prefix`.
    pub fn new(url: impl Into<String>) -> Self {
        S3Options {
            url: url.into(),
            endpoint: None,
            region: None,
            credentials: None,
            allow_http: None,
            tls: ClientTls::new(),
            connect_timeout: Duration::from_secs(2),
        }
    }

    /// The store's base URL (`https://rgw.internal:7480`); unset means AWS.
    pub fn with_endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.endpoint = Some(endpoint.into());
        self
    }

    /// The region to sign for (`us-east-1` suits most S3-compatible stores).
    pub fn with_region(mut self, region: impl Into<String>) -> Self {
        self.region = Some(region.into());
        self
    }

    /// The access key id and secret.
    pub fn with_credentials(mut self, key: impl Into<String>, secret: impl Into<String>) -> Self {
        self.credentials = Some((key.into(), secret.into()));
        self
    }

    /// Whether a plain-`http` endpoint is allowed (default: the
    /// environment's `AWS_ALLOW_HTTP`, else no).
    pub fn with_allow_http(mut self, allow: bool) -> Self {
        self.allow_http = Some(allow);
        self
    }

    /// How the store's certificate is checked (default: the system's trust
    /// store).
    pub fn with_tls(mut self, tls: ClientTls) -> Self {
        self.tls = tls;
        self
    }

    /// How long a TCP connection to the store may take (default 2 s).
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    fn split(&self) -> Result<(&str, &str), RemoteError> {
        let rest = self.url.strip_prefix("s3://").ok_or_else(|| {
            RemoteError::Config(format!(
                "remote_store_url {:?} is not s3://bucket[/prefix]",
                self.url
            ))
        })?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(RemoteError::Config(format!(
                "remote_store_url {:?} names no bucket",
                self.url
            )));
        }
        Ok((bucket, prefix.trim_matches('/')))
    }

    /// The bucket the URL names.
    ///
    /// # Errors
    /// The URL is not `s3://bucket[/prefix]`.
    pub fn bucket(&self) -> Result<&str, RemoteError> {
        Ok(self.split()?.0)
    }

    /// The key prefix the URL names (`""` for none).
    ///
    /// # Errors
    /// The URL is not `s3://bucket[/prefix]`.
    pub fn prefix(&self) -> Result<&str, RemoteError> {
        Ok(self.split()?.1)
    }

    /// The object store client. Nothing is sent yet.
    ///
    /// # Errors
    /// The URL, the TLS files or the environment's settings cannot be used.
    pub(crate) fn store(&self) -> Result<Arc<dyn ObjectStore>, RemoteError> {
        let bucket = self.bucket()?;
        let mut builder = AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            .with_conditional_put(S3ConditionalPut::ETagMatch)
            // Fail fast: a download falls back to the upstream rather than
            // wait minutes for a store that is down.
            .with_retry(RetryConfig {
                backoff: BackoffConfig {
                    init_backoff: Duration::from_millis(50),
                    max_backoff: Duration::from_millis(500),
                    base: 2.0,
                },
                max_retries: 2,
                retry_timeout: Duration::from_secs(5),
            })
            .with_http_connector(HyperConnector {
                tls: Arc::new(
                    self.tls
                        .build()
                        .map_err(|e| RemoteError::Config(format!("remote store TLS: {e}")))?,
                ),
                connect_timeout: self.connect_timeout,
            });
        if let Some(endpoint) = &self.endpoint {
            builder = builder
                .with_endpoint(endpoint)
                // An S3-compatible store names buckets in the path.
                .with_virtual_hosted_style_request(false);
        }
        if builder
            .get_config_value(&AmazonS3ConfigKey::Region)
            .is_none()
            && self.region.is_none()
        {
            builder = builder.with_region("us-east-1");
        }
        if let Some(region) = &self.region {
            builder = builder.with_region(region);
        }
        if let Some((key, secret)) = &self.credentials {
            builder = builder
                .with_access_key_id(key)
                .with_secret_access_key(secret);
        }
        if let Some(allow) = self.allow_http {
            builder = builder.with_allow_http(allow);
        }
        let store = builder
            .build()
            .map_err(|e| RemoteError::Config(e.to_string()))?;
        Ok(Arc::new(store))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_url_names_bucket_and_prefix() {
        let o = S3Options::new("s3://b");
        assert_eq!((o.bucket().unwrap(), o.prefix().unwrap()), ("b", ""));
        let o = S3Options::new("s3://b/a/c/");
        assert_eq!((o.bucket().unwrap(), o.prefix().unwrap()), ("b", "a/c"));
    }

    #[test]
    fn other_urls_are_refused_with_the_value() {
        for bad in ["http://b/x", "s3://", "s3:///x", "b"] {
            let e = S3Options::new(bad).bucket().unwrap_err().to_string();
            assert!(e.contains("remote_store_url"), "{bad}: {e}");
        }
    }

    #[tokio::test]
    async fn a_store_is_built_without_contacting_it() {
        let o = S3Options::new("s3://b/p")
            .with_endpoint("http://127.0.0.1:9")
            .with_credentials("k", "s")
            .with_allow_http(true);
        o.store().unwrap();
    }
}
