//! A bounded memory of successful token validations.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::Principal;

/// A token's SHA-256 digest: tokens themselves are not kept.
pub(crate) type TokenKey = [u8; 32];

/// Successful validations, each until its own deadline. Failures are never
/// stored.
#[derive(Debug)]
pub(crate) struct Validations {
    capacity: usize,
    map: Mutex<HashMap<TokenKey, (Instant, Principal)>>,
}

impl Validations {
    pub(crate) fn new(capacity: usize) -> Self {
        Validations {
            capacity: capacity.max(1),
            map: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<TokenKey, (Instant, Principal)>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The principal of `key` if it was validated and its time is not up.
    pub(crate) fn get(&self, key: &TokenKey) -> Option<Principal> {
        let mut map = self.lock();
        match map.get(key) {
            Some((until, p)) if Instant::now() < *until => Some(p.clone()),
            Some(_) => {
                map.remove(key);
                None
            }
            None => None,
        }
    }

    /// Remembers `principal` for `ttl` (nothing when `ttl` is zero). When
    /// full, expired entries go first, then the ones expiring soonest.
    pub(crate) fn insert(&self, key: TokenKey, principal: Principal, ttl: Duration) {
        if ttl.is_zero() {
            return;
        }
        let now = Instant::now();
        let mut map = self.lock();
        if map.len() >= self.capacity && !map.contains_key(&key) {
            map.retain(|_, (until, _)| *until > now);
            while map.len() >= self.capacity {
                let Some(soonest) = map
                    .iter()
                    .min_by_key(|(_, (until, _))| *until)
                    .map(|(k, _)| *k)
                else {
                    break;
                };
                map.remove(&soonest);
            }
        }
        map.insert(key, (now + ttl, principal));
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(user: &str) -> Principal {
        Principal {
            user_id: Some(user.to_owned()),
            project_id: None,
            roles: vec!["admin".to_owned()],
            static_token: false,
        }
    }

    #[test]
    fn remembers_until_ttl_and_never_zero() {
        let v = Validations::new(10);
        v.insert([1; 32], p("a"), Duration::from_millis(40));
        v.insert([2; 32], p("b"), Duration::ZERO);
        assert_eq!(v.get(&[1; 32]), Some(p("a")));
        assert_eq!(v.get(&[2; 32]), None);
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(v.get(&[1; 32]), None);
        assert_eq!(v.len(), 0);
    }

    #[test]
    fn bounded_evicts_soonest_expiring() {
        let v = Validations::new(3);
        for i in 0..3u8 {
            v.insert([i; 32], p("x"), Duration::from_secs(10 + u64::from(i)));
        }
        v.insert([9; 32], p("y"), Duration::from_secs(60));
        assert_eq!(v.len(), 3);
        assert_eq!(v.get(&[0; 32]), None);
        assert!(v.get(&[1; 32]).is_some());
        assert!(v.get(&[9; 32]).is_some());
        // Replacing an entry does not evict another one.
        v.insert([9; 32], p("z"), Duration::from_secs(60));
        assert_eq!(v.len(), 3);
    }
}
