//! A short-lived, bounded memory of positive authorization decisions.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::upstream::ImageFacts;
use crate::ImageId;

/// Most decisions remembered at once; beyond that, expired ones are
/// dropped, and if that is not enough, all of them.
const CAPACITY: usize = 4096;

type Key = (Vec<u8>, ImageId);

#[derive(Debug)]
pub(crate) struct Decisions {
    ttl: Duration,
    map: Mutex<HashMap<Key, (Instant, Option<ImageFacts>)>>,
}

impl Decisions {
    pub(crate) fn new(ttl: Duration) -> Self {
        Decisions {
            ttl,
            map: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, (Instant, Option<ImageFacts>)>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `Some(meta)` when `identity` was allowed to download `id` less than
    /// `ttl` ago.
    pub(crate) fn get(&self, identity: &[u8], id: &ImageId) -> Option<Option<ImageFacts>> {
        if self.ttl.is_zero() {
            return None;
        }
        let key = (identity.to_vec(), id.clone());
        let mut map = self.lock();
        match map.get(&key) {
            Some((at, meta)) if at.elapsed() < self.ttl => Some(meta.clone()),
            Some(_) => {
                map.remove(&key);
                None
            }
            None => None,
        }
    }

    pub(crate) fn allow(&self, identity: Vec<u8>, id: ImageId, meta: Option<ImageFacts>) {
        if self.ttl.is_zero() {
            return;
        }
        let mut map = self.lock();
        if map.len() >= CAPACITY {
            let ttl = self.ttl;
            map.retain(|_, (at, _)| at.elapsed() < ttl);
            if map.len() >= CAPACITY {
                map.clear();
            }
        }
        map.insert((identity, id), (Instant::now(), meta));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_per_identity_until_ttl() {
        let d = Decisions::new(Duration::from_millis(50));
        let id = ImageId::parse("30000000-0000-0000-0000-000000000001").unwrap();
        d.allow(b"T1".to_vec(), id.clone(), None);
        assert!(d.get(b"T1", &id).is_some());
        assert!(d.get(b"T2", &id).is_none());
        std::thread::sleep(Duration::from_millis(60));
        assert!(d.get(b"T1", &id).is_none());
    }

    #[test]
    fn zero_ttl_remembers_nothing() {
        let d = Decisions::new(Duration::ZERO);
        let id = ImageId::parse("30000000-0000-0000-0000-000000000002").unwrap();
        d.allow(b"T1".to_vec(), id.clone(), None);
        assert!(d.get(b"T1", &id).is_none());
    }
}
