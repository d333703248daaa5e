//! The cohort hash: which of 10,000 buckets a user's key falls into for a
//! salt. The router's sticky cohorts (salt: the environment name) and the
//! feature flags' percentage rollouts (salt: the flag key, or the
//! environment for `follow_canary`) use this one function, so that a flag
//! that follows a canary picks exactly the users the router sends to it.
//!
//! `bucket(salt, key) = murmur3_x86_32(salt ":" key, seed 0) % 10000`.

/// Buckets a key can fall into; a percentage `p` covers `p * 100` of them.
pub const BUCKETS: u32 = 10_000;

/// The bucket in `0..BUCKETS` of `key` for `salt`:
/// `murmur3_x86_32(salt ":" key, seed 0) % 10000`. It copies nothing: the
/// pieces are hashed where they lie.
pub fn bucket(salt: &str, key: &[u8]) -> u32 {
    let mut hasher = Murmur3::new(0);
    hasher.write(salt.as_bytes());
    hasher.write(b":");
    hasher.write(key);
    hasher.finish() % BUCKETS
}

/// MurmurHash3 x86 32-bit of `data` with `seed` (Austin Appleby's
/// public-domain algorithm).
pub fn murmur3_x86_32(data: &[u8], seed: u32) -> u32 {
    let mut hasher = Murmur3::new(seed);
    hasher.write(data);
    hasher.finish()
}

const C1: u32 = 0xcc9e_2d51;
const C2: u32 = 0x1b87_3593;

/// MurmurHash3 x86 32-bit fed in pieces: the same value as over the pieces
/// joined.
#[derive(Debug, Clone)]
pub struct Murmur3 {
    h: u32,
    /// Bytes not yet forming a 4-byte block, little-endian.
    pending: u32,
    pending_len: u32,
    total: u32,
}

impl Murmur3 {
    pub fn new(seed: u32) -> Self {
        Murmur3 {
            h: seed,
            pending: 0,
            pending_len: 0,
            total: 0,
        }
    }

    fn mix(&mut self, block: u32) {
        let k = block.wrapping_mul(C1).rotate_left(15).wrapping_mul(C2);
        self.h ^= k;
        self.h = self
            .h
            .rotate_left(13)
            .wrapping_mul(5)
            .wrapping_add(0xe654_6b64);
    }

    pub fn write(&mut self, mut data: &[u8]) {
        // The reference folds the length in as a u32; longer inputs wrap the same way.
        self.total = self.total.wrapping_add(data.len() as u32);
        while self.pending_len > 0 && !data.is_empty() {
            self.pending |= u32::from(data[0]) << (8 * self.pending_len);
            self.pending_len += 1;
            data = &data[1..];
            if self.pending_len == 4 {
                let block = self.pending;
                self.mix(block);
                self.pending = 0;
                self.pending_len = 0;
            }
        }
        let mut blocks = data.chunks_exact(4);
        for block in &mut blocks {
            self.mix(u32::from_le_bytes([block[0], block[1], block[2], block[3]]));
        }
        for byte in blocks.remainder() {
            self.pending |= u32::from(*byte) << (8 * self.pending_len);
            self.pending_len += 1;
        }
    }

    pub fn finish(&self) -> u32 {
        let mut h = self.h;
        if self.pending_len > 0 {
            h ^= self
                .pending
                .wrapping_mul(C1)
                .rotate_left(15)
                .wrapping_mul(C2);
        }
        h ^= self.total;
        h ^= h >> 16;
        h = h.wrapping_mul(0x85eb_ca6b);
        h ^= h >> 13;
        h = h.wrapping_mul(0xc2b2_ae35);
        h ^ (h >> 16)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The reference implementation's published test vectors.
    #[test]
    fn murmur3_matches_published_vectors() {
        let vectors: &[(&[u8], u32, u32)] = &[
            (b"", 0, 0),
            (b"", 1, 0x514e_28b7),
            (b"", 0xffff_ffff, 0x81f1_6f39),
            (b"hello", 0, 0x248b_fa47),
            (b"hello, world", 0, 0x149b_bb7f),
            (
                b"The quick brown fox jumps over the lazy dog",
                0,
                0x2e4f_f723,
            ),
            (&[0x21, 0x43, 0x65, 0x87], 0, 0xf55b_516b),
            (&[0x21, 0x43, 0x65], 0, 0x7e4a_8634),
            (&[0x21, 0x43], 0, 0xa0f7_b07a),
            (&[0x21], 0, 0x7266_1cf4),
            (&[0, 0, 0, 0], 0, 0x2362_f9de),
        ];
        for (data, seed, expected) in vectors {
            assert_eq!(murmur3_x86_32(data, *seed), *expected, "{data:?} {seed}");
        }
    }

    #[test]
    fn buckets_are_salted_and_in_range() {
        assert_eq!(
            bucket("prod", b"user-1"),
            murmur3_x86_32(b"prod:user-1", 0) % BUCKETS
        );
        assert_ne!(bucket("prod", b"user-1"), bucket("staging", b"user-1"));
        assert!((0..1000).all(|i| bucket("prod", i.to_string().as_bytes()) < BUCKETS));
    }

    proptest! {
        /// Fed in three pieces, the hash is the hash of the pieces joined.
        #[test]
        fn feeding_in_pieces_matches_one_piece(
            data in proptest::collection::vec(any::<u8>(), 0..64),
            first in 0usize..64,
            second in 0usize..64,
            seed in any::<u32>(),
        ) {
            let first = first.min(data.len());
            let second = second.clamp(first, data.len());
            let mut hasher = Murmur3::new(seed);
            hasher.write(&data[..first]);
            hasher.write(&data[first..second]);
            hasher.write(&data[second..]);
            prop_assert_eq!(hasher.finish(), murmur3_x86_32(&data, seed));
        }

        /// Any salt and key give a bucket in range, and the same one twice.
        #[test]
        fn a_bucket_is_in_range_and_stable(salt in ".{0,16}", key in proptest::collection::vec(any::<u8>(), 0..32)) {
            let first = bucket(&salt, &key);
            prop_assert!(first < BUCKETS);
            prop_assert_eq!(first, bucket(&salt, &key));
        }
    }
}
