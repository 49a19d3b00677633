//! Fill leases: one upstream download per image across the cluster.
//!
//! A node about to fill an image creates `leases/<id>` with a conditional
//! create (`If-None-Match: *`): exactly one node succeeds. The lease names
//! the holder's URL and an expiry; the holder renews it while its fill
//! runs and deletes it when the fill is over. A node that finds a fresh
//! lease of another node streams the image from that node; a lease past
//! its expiry is taken over with a conditional update (`If-Match` its
//! ETag), so that of two nodes finding it stale only one wins.

use std::time::{SystemTime, UNIX_EPOCH};

use object_store::path::Path;
use object_store::ObjectStoreExt;
use object_store::{PutMode, PutOptions, PutPayload, UpdateVersion};
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;

use super::tier::is_not_found;
use super::{RemoteError, RemoteTier};

/// What a lease object holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct LeaseRecord {
    /// The holder's `worker_self_reference_url`.
    pub(crate) holder: String,
    /// Epoch seconds after which the lease is stale.
    pub(crate) expires: f64,
}

/// What trying to take a lease found.
#[derive(Debug)]
pub(crate) enum LeaseOutcome {
    /// This node holds it now (renewed until dropped or released).
    Acquired(Lease),
    /// Another node does, and has renewed it in time.
    Held(LeaseRecord),
    /// No lease could be taken or read (no node URL, the store failed, a
    /// store without conditional writes): go ahead without one.
    Unavailable,
}

/// A lease this node holds: renewed in the background until released or
/// dropped (then deleted).
#[derive(Debug)]
pub(crate) struct Lease {
    tier: RemoteTier,
    key: Path,
    renewal: JoinHandle<()>,
    released: bool,
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default()
}

impl RemoteTier {
    /// Tries to take the fill lease of `key` for this node.
    pub(crate) async fn try_lease(&self, key: Path) -> LeaseOutcome {
        let Some(node) = self.node().map(str::to_owned) else {
            return LeaseOutcome::Unavailable;
        };
        let record = |node: &str| LeaseRecord {
            holder: node.to_owned(),
            expires: now() + self.lease_ttl().as_secs_f64(),
        };
        let store = &self.inner.store;
        let create = PutOptions {
            mode: PutMode::Create,
            ..PutOptions::default()
        };
        let body = payload(&record(&node));
        match self
            .call("create lease", &key, store.put_opts(&key, body, create))
            .await
        {
            Ok(_) => return LeaseOutcome::Acquired(self.hold(key)),
            Err(RemoteError::Store {
                source: object_store::Error::AlreadyExists { .. },
                ..
            }) => {}
            Err(e) => {
                tracing::debug!(%key, error = %e, "no fill lease");
                return LeaseOutcome::Unavailable;
            }
        }
        // Someone holds it: fresh, or stale and ours to take over.
        let got = match self.call("read lease", &key, store.get(&key)).await {
            Ok(got) => got,
            // Released in between: the next miss will take it.
            Err(e) if is_not_found(&e) => return LeaseOutcome::Unavailable,
            Err(_) => return LeaseOutcome::Unavailable,
        };
        let version = UpdateVersion {
            e_tag: got.meta.e_tag.clone(),
            version: got.meta.version.clone(),
        };
        let bytes = match self.call("read lease", &key, got.bytes()).await {
            Ok(bytes) => bytes,
            Err(_) => return LeaseOutcome::Unavailable,
        };
        let held: Option<LeaseRecord> = serde_json::from_slice(&bytes).ok();
        match held {
            Some(held) if held.expires > now() && held.holder != node => LeaseOutcome::Held(held),
            held => {
                // Stale, unreadable, or a lease of this node's previous
                // life: take it over, unless another node just did.
                tracing::info!(%key, ?held, "taking over a stale fill lease");
                let update = PutOptions {
                    mode: PutMode::Update(version),
                    ..PutOptions::default()
                };
                match self
                    .call(
                        "take over lease",
                        &key,
                        store.put_opts(&key, payload(&record(&node)), update),
                    )
                    .await
                {
                    Ok(_) => LeaseOutcome::Acquired(self.hold(key)),
                    Err(e) => {
                        tracing::debug!(%key, error = %e, "stale lease not taken over");
                        LeaseOutcome::Unavailable
                    }
                }
            }
        }
    }

    /// Renews the lease at `key` every third of its time to live.
    fn hold(&self, key: Path) -> Lease {
        let tier = self.clone();
        let renewal_key = key.clone();
        let renewal = tokio::spawn(async move {
            let ttl = tier.lease_ttl();
            let node = tier.node().unwrap_or_default().to_owned();
            loop {
                tokio::time::sleep(ttl / 3).await;
                let record = LeaseRecord {
                    holder: node.clone(),
                    expires: now() + ttl.as_secs_f64(),
                };
                let store = &tier.inner.store;
                if let Err(e) = tier
                    .call(
                        "renew lease",
                        &renewal_key,
                        store.put(&renewal_key, payload(&record)),
                    )
                    .await
                {
                    tracing::debug!(key = %renewal_key, error = %e, "lease not renewed");
                }
            }
        });
        Lease {
            tier: self.clone(),
            key,
            renewal,
            released: false,
        }
    }
}

impl Lease {
    /// Stops renewing and deletes the lease.
    pub(crate) async fn release(mut self) {
        self.released = true;
        self.renewal.abort();
        if let Err(e) = self.tier.delete(&self.key).await {
            tracing::debug!(key = %self.key, error = %e, "lease not deleted; it expires");
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.renewal.abort();
        if !self.released {
            let (tier, key) = (self.tier.clone(), self.key.clone());
            if let Ok(handle) = tokio::runtime::Handle::try_current() {
                handle.spawn(async move {
                    let _ = tier.delete(&key).await;
                });
            }
        }
    }
}

fn payload(record: &LeaseRecord) -> PutPayload {
    PutPayload::from(serde_json::to_vec(record).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::ImageId;

    fn id() -> ImageId {
        ImageId::parse("6f0c5cb5-5e4c-4c0f-b4a9-0d6a0f1d5e3b").unwrap()
    }

    #[tokio::test]
    async fn one_node_wins_the_lease_and_the_other_sees_it() {
        let store = Arc::new(object_store::memory::InMemory::new());
        let a = RemoteTier::builder(store.clone()).node("http://a").build();
        let b = RemoteTier::builder(store).node("http://b").build();
        let key = a.inner.keys.lease(&id());
        let LeaseOutcome::Acquired(lease) = a.try_lease(key.clone()).await else {
            panic!("the first node takes the lease")
        };
        match b.try_lease(key.clone()).await {
            LeaseOutcome::Held(held) => assert_eq!(held.holder, "http://a"),
            other => panic!("the second node must see a's lease: {other:?}"),
        }
        lease.release().await;
        assert!(matches!(b.try_lease(key).await, LeaseOutcome::Acquired(_)));
    }

    #[tokio::test]
    async fn a_stale_lease_is_taken_over_once() {
        let store = Arc::new(object_store::memory::InMemory::new());
        let b = RemoteTier::builder(store.clone()).node("http://b").build();
        let c = RemoteTier::builder(store.clone()).node("http://c").build();
        let key = b.inner.keys.lease(&id());
        let stale = LeaseRecord {
            holder: "http://a".into(),
            expires: now() - 1.0,
        };
        store.put(&key, payload(&stale)).await.unwrap();
        let LeaseOutcome::Acquired(_lease) = b.try_lease(key.clone()).await else {
            panic!("a stale lease is taken over")
        };
        match c.try_lease(key).await {
            LeaseOutcome::Held(held) => assert_eq!(held.holder, "http://b"),
            other => panic!("after the take-over b holds it: {other:?}"),
        }
    }

    #[tokio::test]
    async fn without_a_node_url_there_is_no_lease() {
        let store = Arc::new(object_store::memory::InMemory::new());
        let tier = RemoteTier::builder(store).build();
        let key = tier.inner.keys.lease(&id());
        assert!(matches!(
            tier.try_lease(key).await,
            LeaseOutcome::Unavailable
        ));
    }
}
