//! The one documented derivation of every random stream seispipe uses.
//!
//! Each (pipeline seed, input identity, sample index, copy index, stage index)
//! gets its own generator, so a sample's random draws never depend on thread
//! scheduling, on which other samples ran, or on whether the run was resumed.
//!
//! Derivation (version 1, recorded in every manifest as `rng`):
//!
//! ```text
//! key  = SHA-256( "seispipe-rng-v1" 0x00
//!                 seed as u64 little-endian
//!                 len(input_id) as u64 LE ‖ input_id (UTF-8)
//!                 sample_index as u64 LE
//!                 copy  as u64 LE   (0 = the untouched original, k+1 = copy k)
//!                 stage_index as u64 LE )
//! rng  = ChaCha8Rng::from_seed(key)          (rand_chacha 0.9)
//! ```
//!
//! `input_id` is the input file's path relative to the input root, with `/`
//! separators, so the same data on another machine gives the same streams.
//! ChaCha8 is a named, portable generator whose output rand_chacha documents
//! as stable; normal draws use seispipe's own ziggurat over this stream
//! ([`crate::stage::normal`]), so they too are fixed by this crate's code.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use sha2::{Digest, Sha256};

/// The generator every stage draws from.
pub type StageRng = ChaCha8Rng;

/// The name of this derivation, recorded in manifests.
pub const RNG_DERIVATION: &str =
    "seispipe-rng-v1: ChaCha8Rng(SHA-256(seed, input_id, sample, copy, stage))";

/// The 32-byte key for one (seed, input, sample, copy, stage).
#[must_use]
pub fn derive_key(
    seed: u64,
    input_id: &str,
    sample_index: u64,
    copy: u64,
    stage_index: u64,
) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"seispipe-rng-v1\0");
    h.update(seed.to_le_bytes());
    h.update((input_id.len() as u64).to_le_bytes());
    h.update(input_id.as_bytes());
    h.update(sample_index.to_le_bytes());
    h.update(copy.to_le_bytes());
    h.update(stage_index.to_le_bytes());
    h.finalize().into()
}

/// The generator for one (seed, input, sample, copy, stage).
#[must_use]
pub fn stage_rng(
    seed: u64,
    input_id: &str,
    sample_index: u64,
    copy: u64,
    stage_index: u64,
) -> StageRng {
    ChaCha8Rng::from_seed(derive_key(seed, input_id, sample_index, copy, stage_index))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    #[test]
    fn streams_differ_per_coordinate_and_repeat_per_key() {
        let a: u64 = stage_rng(1, "a.npy", 0, 1, 0).random();
        assert_eq!(a, stage_rng(1, "a.npy", 0, 1, 0).random::<u64>());
        for other in [
            stage_rng(2, "a.npy", 0, 1, 0),
            stage_rng(1, "b.npy", 0, 1, 0),
            stage_rng(1, "a.npy", 1, 1, 0),
            stage_rng(1, "a.npy", 0, 2, 0),
            stage_rng(1, "a.npy", 0, 1, 1),
        ] {
            let mut other = other;
            assert_ne!(a, other.random::<u64>());
        }
    }

    #[test]
    fn input_id_length_prefix_prevents_ambiguity() {
        // "ab" + sample 0 must not collide with "a" + some other encoding.
        assert_ne!(derive_key(0, "ab", 0, 0, 0), derive_key(0, "a", 0, 0, 0));
    }
}
