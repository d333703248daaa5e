//! The cohort hash shared with the router: `murmur3_x86_32(salt ":" key, 0) % 10000`.

/// Buckets a key can fall into; a percentage `p` covers `p * 100` of them.
pub const BUCKETS: u32 = 10_000;

/// The user's bucket in `0..10000` for `salt` (a flag key, or an environment
/// name for `follow_canary`): `murmur3_x86_32(salt ":" key, seed 0) % 10000`,
/// exactly as the router computes cohorts.
pub fn bucket(salt: &str, key: &str) -> u32 {
    let mut hasher = Murmur3::new(0);
    hasher.write(salt.as_bytes());
    hasher.write(b":");
    hasher.write(key.as_bytes());
    hasher.finish() % BUCKETS
}

const C1: u32 = 0xcc9e_2d51;
const C2: u32 = 0x1b87_3593;

/// MurmurHash3 x86 32-bit (Austin Appleby's public-domain algorithm), fed in
/// pieces so the salted key never has to be copied into one buffer.
#[derive(Debug, Clone)]
pub(crate) struct Murmur3 {
    h: u32,
    /// Bytes not yet forming a 4-byte block, little-endian.
    pending: u32,
    pending_len: u32,
    total: u32,
}

impl Murmur3 {
    pub(crate) fn new(seed: u32) -> Self {
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

    pub(crate) fn write(&mut self, mut data: &[u8]) {
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

    pub(crate) fn finish(&self) -> u32 {
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
    use super::Murmur3;

    fn murmur(data: &[u8], seed: u32) -> u32 {
        let mut hasher = Murmur3::new(seed);
        hasher.write(data);
        hasher.finish()
    }

    #[test]
    fn murmur3_matches_published_vectors() {
        assert_eq!(murmur(b"", 0), 0);
        assert_eq!(murmur(b"", 1), 0x514e_28b7);
        assert_eq!(murmur(b"", 0xffff_ffff), 0x81f1_6f39);
        assert_eq!(murmur(b"hello", 0), 0x248b_fa47);
        assert_eq!(murmur(b"hello, world", 0), 0x149b_bb7f);
        assert_eq!(
            murmur(b"The quick brown fox jumps over the lazy dog", 0),
            0x2e4f_f723
        );
        assert_eq!(murmur(&[0x21, 0x43, 0x65, 0x87], 0), 0xf55b_516b);
    }

    #[test]
    fn feeding_in_pieces_matches_one_piece() {
        let text = b"The quick brown fox jumps over the lazy dog";
        for first in 0..text.len() {
            for second in first..text.len() {
                let mut hasher = Murmur3::new(7);
                hasher.write(&text[..first]);
                hasher.write(&text[first..second]);
                hasher.write(&text[second..]);
                assert_eq!(hasher.finish(), murmur(text, 7), "{first} {second}");
            }
        }
    }
}
