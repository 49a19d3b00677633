//! Object keys of the remote tier. Only an [`ImageId`] (or this node's
//! URL, hex-encoded) becomes part of a key.
//!
//! ```text
//! <prefix>/images/<id>              the image bytes; size and digests as metadata
//! <prefix>/leases/<id>              who is filling <id> now (conditional create)
//! <prefix>/leases/prune             who prunes the tier now
//! <prefix>/nodes/<id>/<hex(url)>    node <url> holds <id> in its local tier
//! ```

use object_store::path::Path;

use crate::ImageId;

/// The key layout under one prefix.
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    prefix: String,
}

impl Keys {
    /// Keys under `prefix` (`""` for the bucket's root; slashes at either
    /// end are ignored).
    pub(crate) fn new(prefix: &str) -> Self {
        let prefix = prefix.trim_matches('/');
        Keys {
            prefix: if prefix.is_empty() {
                String::new()
            } else {
                format!("{prefix}/")
            },
        }
    }

    fn path(&self, rest: &str) -> Path {
        Path::from(format!("{}{rest}", self.prefix))
    }

    pub(crate) fn images(&self) -> Path {
        self.path("images")
    }

    pub(crate) fn image(&self, id: &ImageId) -> Path {
        self.path(&format!("images/{id}"))
    }

    pub(crate) fn lease(&self, id: &ImageId) -> Path {
        self.path(&format!("leases/{id}"))
    }

    pub(crate) fn prune_lease(&self) -> Path {
        self.path("leases/prune")
    }

    pub(crate) fn nodes(&self) -> Path {
        self.path("nodes")
    }

    pub(crate) fn holders(&self, id: &ImageId) -> Path {
        self.path(&format!("nodes/{id}"))
    }

    pub(crate) fn holder(&self, id: &ImageId, node: &str) -> Path {
        self.path(&format!("nodes/{id}/{}", hex::encode(node)))
    }

    /// The image id of an `images/<id>` key.
    pub(crate) fn image_of(&self, key: &Path) -> Option<ImageId> {
        let rest = key.as_ref().strip_prefix(&self.prefix)?;
        ImageId::parse(rest.strip_prefix("images/")?).ok()
    }

    /// The image id and node URL of a `nodes/<id>/<hex(url)>` key.
    pub(crate) fn holding_of(&self, key: &Path) -> Option<(ImageId, String)> {
        let rest = key.as_ref().strip_prefix(&self.prefix)?;
        let (id, node) = rest.strip_prefix("nodes/")?.split_once('/')?;
        let node = String::from_utf8(hex::decode(node).ok()?).ok()?;
        Some((ImageId::parse(id).ok()?, node))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id() -> ImageId {
        ImageId::parse("6f0c5cb5-5e4c-4c0f-b4a9-0d6a0f1d5e3b").unwrap()
    }

    #[test]
    fn keys_live_under_the_prefix_and_parse_back() {
        let keys = Keys::new("/glance/cache/");
        assert_eq!(
            keys.image(&id()).as_ref(),
            "glance/cache/images/6f0c5cb5-5e4c-4c0f-b4a9-0d6a0f1d5e3b"
        );
        assert_eq!(keys.image_of(&keys.image(&id())), Some(id()));
        let holder = keys.holder(&id(), "http://10.0.0.1:9292");
        assert_eq!(
            keys.holding_of(&holder),
            Some((id(), "http://10.0.0.1:9292".to_owned()))
        );
        assert_eq!(keys.prune_lease().as_ref(), "glance/cache/leases/prune");
    }

    #[test]
    fn an_empty_prefix_is_the_bucket_root() {
        let keys = Keys::new("");
        assert_eq!(keys.lease(&id()).as_ref(), format!("leases/{}", id()));
    }

    #[test]
    fn foreign_keys_are_not_images_or_holdings() {
        let keys = Keys::new("p");
        for key in [
            "p/images/../x",
            "q/images/6f0c5cb5-5e4c-4c0f-b4a9-0d6a0f1d5e3b",
            "p/nodes/x/zz",
        ] {
            let key = Path::from(key);
            assert_eq!(keys.image_of(&key), None, "{key}");
            assert_eq!(keys.holding_of(&key), None, "{key}");
        }
    }
}
