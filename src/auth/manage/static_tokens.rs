//! Static admin tokens, compared in constant time.

use std::fmt;

use sha2::{Digest, Sha256};

/// The SHA-256 digests of the configured tokens. Comparing digests keeps
/// the comparison independent of the tokens' lengths, and the tokens
/// themselves are not kept in memory.
#[derive(Clone)]
pub(crate) struct StaticTokens {
    digests: Vec<[u8; 32]>,
}

impl fmt::Debug for StaticTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StaticTokens(<{} redacted>)", self.digests.len())
    }
}

pub(crate) fn digest(token: &[u8]) -> [u8; 32] {
    Sha256::digest(token).into()
}

/// `a == b` without an early exit on the first difference.
fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let diff = a
        .iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

impl StaticTokens {
    pub(crate) fn new<I, T>(tokens: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: AsRef<[u8]>,
    {
        let mut digests: Vec<[u8; 32]> = Vec::new();
        for t in tokens {
            let t = t.as_ref();
            if t.is_empty() {
                continue;
            }
            let d = digest(t);
            if !digests.contains(&d) {
                digests.push(d);
            }
        }
        StaticTokens { digests }
    }

    pub(crate) fn len(&self) -> usize {
        self.digests.len()
    }

    /// Whether `presented` is one of the tokens. Every configured token is
    /// compared, whatever matched before.
    pub(crate) fn contains(&self, presented: &[u8]) -> bool {
        let d = digest(presented);
        self.digests
            .iter()
            .fold(false, |found, t| found | constant_time_eq(t, &d))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_exactly() {
        let t = StaticTokens::new(["alpha", "beta", "", "alpha"]);
        assert_eq!(t.len(), 2);
        assert!(t.contains(b"alpha"));
        assert!(t.contains(b"beta"));
        for no in [&b"Alpha"[..], b"alph", b"alpha ", b"", b"gamma"] {
            assert!(!t.contains(no), "{no:?}");
        }
        assert!(!StaticTokens::new(Vec::<String>::new()).contains(b""));
        assert!(!format!("{t:?}").contains("alpha"));
    }

    #[test]
    fn constant_time_eq_compares_every_byte() {
        let a = [7u8; 32];
        let mut b = a;
        assert!(constant_time_eq(&a, &b));
        b[31] ^= 1;
        assert!(!constant_time_eq(&a, &b));
    }
}
