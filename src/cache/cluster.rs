//! The cache's part in a cluster: the remote tier, and the clients that
//! stream an image from the node holding its fill lease.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::Uri;

use super::GlanceCache;
use crate::fill::{Failure, Outcome, Source};
use crate::metrics::RemoteEvent;
use crate::remote::{Lease, RemoteImage, RemoteTier};
use crate::reverse_proxy::ReverseProxy;
use crate::tls::ClientTls;
use crate::upstream::RequestBody;
use crate::ImageId;

/// The header that marks a request as one node streaming an image from
/// the node holding the image's fill lease: the holder serves it from its
/// own fill (or cache, or the upstream), never from a third node.
pub(crate) const PEER_HEADER: http::HeaderName =
    http::HeaderName::from_static("x-glance-cache-peer");

/// How long a node waits to connect to a lease holder before it goes to the
/// upstream itself.
const PEER_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// How long a lease holder may take to send its response head.
const PEER_RESPONSE_TIMEOUT: Duration = Duration::from_secs(60);

pub(crate) struct Cluster {
    pub(crate) tier: RemoteTier,
    /// The TLS configuration of every peer client, built once (its CA file
    /// and the system trust store are read here, not on the download path),
    /// or why it cannot be built.
    peer_tls: Result<Arc<rustls::ClientConfig>, String>,
    peers: Mutex<HashMap<String, ReverseProxy<RequestBody>>>,
}

impl Cluster {
    pub(crate) fn new(tier: RemoteTier, peer_tls: ClientTls) -> Self {
        if peer_tls.is_insecure() {
            tracing::warn!(
                "certificates of https peer nodes are NOT checked (insecure): anyone on the \
                 path can read and change image data"
            );
        }
        Cluster {
            tier,
            peer_tls: peer_tls.build().map(Arc::new).map_err(|e| e.to_string()),
            peers: Mutex::default(),
        }
    }

    /// The client to the node at `url`; `None` for a URL that cannot be one
    /// (logged).
    pub(crate) fn peer(&self, url: &str) -> Option<ReverseProxy<RequestBody>> {
        let mut peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(peer) = peers.get(url) {
            return Some(peer.clone());
        }
        let built = self.peer_tls.clone().and_then(|tls| {
            let uri = url.parse::<Uri>().map_err(|e| e.to_string())?;
            let proxy =
                ReverseProxy::try_new_with_tls(uri, Some(tls)).map_err(|e| e.to_string())?;
            Ok(proxy
                .with_connect_timeout(PEER_CONNECT_TIMEOUT)
                .with_response_timeout(PEER_RESPONSE_TIMEOUT))
        });
        match built {
            Ok(proxy) => {
                peers.insert(url.to_owned(), proxy.clone());
                Some(proxy)
            }
            Err(e) => {
                tracing::warn!(node = url, error = %e, "no client for the node named by a lease (its URL or the peer TLS settings)");
                None
            }
        }
    }
}

impl GlanceCache {
    pub(crate) fn cluster(&self) -> Option<&Cluster> {
        self.inner.cluster.as_ref()
    }

    /// The remote tier, when the cache has one.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), glance_cache::Error> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = glance_cache::store::CacheStore::builder(dir.path()).open().await?;
    /// let cache = glance_cache::GlanceCache::builder(store).build();
    /// assert!(cache.remote().is_none());
    /// # Ok(()) }
    /// ```
    pub fn remote(&self) -> Option<&RemoteTier> {
        self.cluster().map(|c| &c.tier)
    }

    /// Once the fill of `id` from `source` is over: a committed image is
    /// registered as held here and, when it came from the upstream,
    /// uploaded; a remote object that failed verification is deleted; the
    /// fill lease is released last (other nodes stream from this one until
    /// the image is in the remote tier).
    pub(crate) fn after_fill(
        &self,
        id: ImageId,
        fill: tokio::task::JoinHandle<Outcome>,
        source: Source,
        lease: Option<Lease>,
    ) {
        let core = self.clone();
        tokio::spawn(async move {
            let outcome = fill.await;
            if let Some(tier) = core.remote() {
                match outcome {
                    Ok(Outcome::Committed {
                        size,
                        md5,
                        multihash,
                    }) => {
                        if let Err(e) = tier.record_holding(&id).await {
                            tracing::debug!(image_id = %id, error = %e, "not registered");
                        }
                        if source == Source::Upstream {
                            let image = RemoteImage::new(id.clone(), size, Some(md5), multihash);
                            core.upload(tier, &image).await;
                        }
                    }
                    Ok(Outcome::Failed(Failure::Verification(why))) if source == Source::Remote => {
                        tier.metrics().remote(RemoteEvent::Corrupt);
                        tracing::error!(image_id = %id, %why,
                            "the remote tier's copy failed verification; deleted");
                        if let Err(e) = tier.delete_image(&id).await {
                            tracing::warn!(image_id = %id, error = %e,
                                "could not delete the corrupt remote copy");
                        }
                    }
                    _ => {}
                }
            }
            if let Some(lease) = lease {
                lease.release().await;
            }
        });
    }

    async fn upload(&self, tier: &RemoteTier, image: &RemoteImage) {
        let store = self.store();
        let opened = match store.lookup(&image.image_id).await {
            Ok(Some(entry)) => store.open_hit(&entry).await,
            _ => return,
        };
        if let Ok(Some(hit)) = opened {
            let _ = tier.upload(Arc::clone(&hit.file), image).await;
        }
    }
}
