//! [`Pattern`]: deterministic image data of any length, never materialised.
//!
//! Byte `i` of a pattern depends only on `(seed, i)`, so any window of a
//! multi-gigabyte image can be produced on demand (ranges, resumed reads) and
//! a test can regenerate the bytes it expects without keeping a copy.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use super::image::Digests;

/// A deterministic pseudo-random byte stream selected by a seed.
///
/// ```
/// use glance_cache_support::fake_glance::Pattern;
///
/// let p = Pattern::new(7);
/// let whole = p.to_vec(0, 100);
/// // Any window equals the same slice of the whole.
/// assert_eq!(p.to_vec(37, 20), whole[37..57].to_vec());
/// assert_ne!(Pattern::new(8).to_vec(0, 100), whole);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Pattern {
    seed: u64,
}

impl Pattern {
    /// The pattern selected by `seed`.
    pub fn new(seed: u64) -> Self {
        Pattern { seed }
    }

    /// The seed this pattern was made from.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Fills `buf` with the pattern's bytes starting at byte `offset`.
    pub fn fill(&self, offset: u64, buf: &mut [u8]) {
        let key = mix(self.seed ^ 0x5851_f42d_4c95_7f2d);
        let mut pos = offset;
        let mut out = buf;
        // Leading bytes up to the next 8-byte boundary.
        let lead = ((8 - (pos % 8)) % 8) as usize;
        if lead > 0 {
            let n = lead.min(out.len());
            let word = word_at(key, pos / 8).to_le_bytes();
            let skip = (pos % 8) as usize;
            out[..n].copy_from_slice(&word[skip..skip + n]);
            out = &mut out[n..];
            pos += n as u64;
        }
        // Whole words.
        let mut index = pos / 8;
        let mut words = out.chunks_exact_mut(8);
        for chunk in &mut words {
            chunk.copy_from_slice(&word_at(key, index).to_le_bytes());
            index += 1;
        }
        // Trailing partial word.
        let rest = words.into_remainder();
        if !rest.is_empty() {
            let n = rest.len();
            rest.copy_from_slice(&word_at(key, index).to_le_bytes()[..n]);
        }
    }

    /// `len` bytes of the pattern starting at `offset`, as a vector.
    ///
    /// Meant for small windows in tests; image bodies are produced chunk by
    /// chunk with [`Pattern::fill`].
    pub fn to_vec(&self, offset: u64, len: usize) -> Vec<u8> {
        let mut v = vec![0; len];
        self.fill(offset, &mut v);
        v
    }

    /// MD5 and SHA-512 of the first `len` bytes, computed by streaming the
    /// pattern through both hashes (blocking; run it on a blocking thread).
    ///
    /// Results are remembered for the life of the process, so fixtures that
    /// reuse the same `(len, seed)` pay once.
    pub(crate) fn digests(&self, len: u64) -> Digests {
        static KNOWN: OnceLock<Mutex<HashMap<(u64, u64), Digests>>> = OnceLock::new();
        let known = KNOWN.get_or_init(|| Mutex::new(HashMap::new()));
        if let Some(d) = known
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&(self.seed, len))
        {
            return d.clone();
        }
        // MD5 and SHA-512 on two threads, each generating the pattern
        // itself: about twice as fast as one thread doing both.
        let (md5, sha512) = std::thread::scope(|s| {
            let md5 = s.spawn(|| self.hash::<md5::Md5>(len));
            let sha512 = self.hash::<sha2::Sha512>(len);
            let md5 = md5.join().unwrap_or_else(|_| self.hash::<md5::Md5>(len));
            (md5, sha512)
        });
        let digests = Digests { md5, sha512 };
        known
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert((self.seed, len), digests.clone());
        digests
    }
}

impl Pattern {
    fn hash<D: md5::Digest>(&self, len: u64) -> String {
        let mut hasher = D::new();
        let mut buf = vec![0u8; 1 << 20];
        let mut pos = 0u64;
        while pos < len {
            let n = (len - pos).min(buf.len() as u64) as usize;
            self.fill(pos, &mut buf[..n]);
            hasher.update(&buf[..n]);
            pos += n as u64;
        }
        hex::encode(hasher.finalize())
    }
}

fn word_at(key: u64, index: u64) -> u64 {
    mix(key ^ index.wrapping_mul(0x9e37_79b9_7f4a_7c15))
}

/// splitmix64's finaliser: a cheap, well-mixed bijection on `u64`.
fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use md5::Digest;

    #[test]
    fn windows_agree_with_the_whole_at_every_alignment() {
        let p = Pattern::new(42);
        let whole = p.to_vec(0, 300);
        for start in 0..20u64 {
            for len in [0usize, 1, 7, 8, 9, 15, 16, 17, 100] {
                let s = start as usize;
                assert_eq!(p.to_vec(start, len), whole[s..s + len], "{start}+{len}");
            }
        }
    }

    #[test]
    fn deterministic_and_seed_dependent() {
        assert_eq!(Pattern::new(1).to_vec(0, 64), Pattern::new(1).to_vec(0, 64));
        assert_ne!(Pattern::new(1).to_vec(0, 64), Pattern::new(2).to_vec(0, 64));
        // Not trivially periodic or constant.
        let v = Pattern::new(3).to_vec(0, 4096);
        assert_ne!(v[..2048], v[2048..]);
        assert!(v.iter().any(|b| *b != v[0]));
    }

    #[test]
    fn digests_match_a_one_shot_hash() {
        let p = Pattern::new(9);
        let len = (3 << 20) + 5;
        let data = p.to_vec(0, len);
        let d = p.digests(len as u64);
        assert_eq!(d.md5, hex::encode(md5::Md5::digest(&data)));
        assert_eq!(d.sha512, hex::encode(sha2::Sha512::digest(&data)));
        // Second call comes from the memo and agrees.
        assert_eq!(p.digests(len as u64), d);
    }
}
