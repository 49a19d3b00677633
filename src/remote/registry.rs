//! The node registry: which nodes hold which images in their local tier,
//! as one small object per (image, node) under `nodes/`. Written on
//! commit, removed on eviction and delete, and reconciled with the local
//! index periodically (so that a killed process or an offline prune
//! leaves no lasting lie).

use std::collections::BTreeSet;

use object_store::ObjectStoreExt;
use object_store::PutPayload;

use super::{RemoteError, RemoteTier};
use crate::ImageId;

/// What reconciling this node's registry entries changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct HoldingsReport {
    /// Entries written for local images the registry did not list.
    pub added: usize,
    /// Entries removed for images this node no longer holds.
    pub removed: usize,
}

impl RemoteTier {
    /// Records that this node holds `id` (nothing without a node URL).
    ///
    /// # Errors
    /// The store failed.
    pub async fn record_holding(&self, id: &ImageId) -> Result<(), RemoteError> {
        let Some(node) = self.node() else {
            return Ok(());
        };
        let key = self.inner.keys.holder(id, node);
        let body = PutPayload::from(node.as_bytes().to_vec());
        self.call("register", &key, self.inner.store.put(&key, body))
            .await?;
        Ok(())
    }

    /// Records that this node no longer holds `id`.
    ///
    /// # Errors
    /// The store failed.
    pub async fn remove_holding(&self, id: &ImageId) -> Result<(), RemoteError> {
        let Some(node) = self.node() else {
            return Ok(());
        };
        self.delete(&self.inner.keys.holder(id, node)).await
    }

    /// The URLs of the nodes holding `id`, sorted (Glance's
    /// `GET /v2/cache/nodes/{id}`).
    ///
    /// # Errors
    /// The store failed.
    pub async fn holders(&self, id: &ImageId) -> Result<Vec<String>, RemoteError> {
        let keys = &self.inner.keys;
        let mut nodes: Vec<String> = self
            .list_keys(&keys.holders(id))
            .await?
            .iter()
            .filter_map(|k| keys.holding_of(k))
            .filter(|(image, _)| image == id)
            .map(|(_, node)| node)
            .collect();
        nodes.sort();
        nodes.dedup();
        Ok(nodes)
    }

    /// Makes this node's registry entries match `local`, the images it
    /// holds.
    ///
    /// # Errors
    /// The store failed.
    pub async fn reconcile_holdings(
        &self,
        local: &BTreeSet<ImageId>,
    ) -> Result<HoldingsReport, RemoteError> {
        let Some(node) = self.node().map(str::to_owned) else {
            return Ok(HoldingsReport::default());
        };
        let keys = &self.inner.keys;
        let mut listed = BTreeSet::new();
        let mut report = HoldingsReport::default();
        for key in self.list_keys(&keys.nodes()).await? {
            let Some((id, holder)) = keys.holding_of(&key) else {
                continue;
            };
            if holder != node {
                continue;
            }
            if local.contains(&id) {
                listed.insert(id);
            } else {
                self.delete(&key).await?;
                report.removed += 1;
            }
        }
        for id in local.difference(&listed) {
            self.record_holding(id).await?;
            report.added += 1;
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn id(n: u8) -> ImageId {
        ImageId::parse(&format!("6f0c5cb5-5e4c-4c0f-b4a9-0d6a0f1d5e{n:02x}")).unwrap()
    }

    #[tokio::test]
    async fn holders_are_listed_per_image_and_reconciled() {
        let store = Arc::new(object_store::memory::InMemory::new());
        let a = RemoteTier::builder(store.clone())
            .node("http://a:9292")
            .build();
        let b = RemoteTier::builder(store).node("http://b:9292").build();
        a.record_holding(&id(1)).await.unwrap();
        b.record_holding(&id(1)).await.unwrap();
        b.record_holding(&id(2)).await.unwrap();
        assert_eq!(
            a.holders(&id(1)).await.unwrap(),
            ["http://a:9292", "http://b:9292"]
        );
        assert_eq!(a.holders(&id(3)).await.unwrap(), Vec::<String>::new());
        // b lost image 1 (pruned offline) and gained 3.
        let report = b
            .reconcile_holdings(&[id(2), id(3)].into_iter().collect())
            .await
            .unwrap();
        assert_eq!((report.added, report.removed), (1, 1));
        assert_eq!(a.holders(&id(1)).await.unwrap(), ["http://a:9292"]);
        assert_eq!(a.holders(&id(3)).await.unwrap(), ["http://b:9292"]);
        a.remove_holding(&id(1)).await.unwrap();
        assert!(a.holders(&id(1)).await.unwrap().is_empty());
    }
}
