//! Opaque secrets: authorization codes, client secrets and session ids.
//!
//! Each is 256 bits from the CSPRNG, base64url-encoded behind a short prefix (`tsc_` for
//! codes, `tss_` for client secrets, ...) so secret scanners can recognise a leaked one.
//! Only the SHA-256 hash is stored: the values are high-entropy, so a slow hash would
//! only cost throughput.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::random::SecureRandom;

/// Number of random bytes in every minted secret (256 bits).
pub const SECRET_BYTES: usize = 32;

/// Mints a new opaque secret `prefix` + base64url(32 random bytes).
pub fn mint(random: &dyn SecureRandom, prefix: &str) -> String {
    let mut bytes = [0u8; SECRET_BYTES];
    random.fill(&mut bytes);
    let mut out = String::with_capacity(prefix.len() + 43);
    out.push_str(prefix);
    URL_SAFE_NO_PAD.encode_string(bytes, &mut out);
    out
}

/// Mints a short random identifier (128 bits, base64url), for ids and `jti`.
pub fn mint_id(random: &dyn SecureRandom) -> String {
    let mut bytes = [0u8; 16];
    random.fill(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The SHA-256 hash under which a secret is stored and looked up.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SecretHash(pub [u8; 32]);

impl SecretHash {
    /// Hashes a presented secret.
    pub fn of(secret: &str) -> Self {
        Self(Sha256::digest(secret.as_bytes()).into())
    }

    /// Whether `presented` hashes to this value, compared in constant time.
    pub fn matches(&self, presented: &str) -> bool {
        Self::of(presented).0.ct_eq(&self.0).into()
    }

    /// A short, non-reversible label for logs (first 8 hex digits of the hash).
    pub fn log_label(&self) -> String {
        self.0[..4].iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl std::fmt::Debug for SecretHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretHash({}…)", self.log_label())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Counter;
    impl SecureRandom for Counter {
        fn fill(&self, dest: &mut [u8]) {
            for (i, b) in dest.iter_mut().enumerate() {
                *b = i as u8;
            }
        }
    }

    #[test]
    fn minted_secret_has_prefix_and_256_bits() {
        let s = mint(&Counter, "tsc_");
        assert!(s.starts_with("tsc_"));
        let raw = URL_SAFE_NO_PAD.decode(&s[4..]).unwrap();
        assert_eq!(raw.len(), 32);
    }

    #[test]
    fn hash_matches_only_the_same_secret() {
        let h = SecretHash::of("tss_abc");
        assert!(h.matches("tss_abc"));
        assert!(!h.matches("tss_abd"));
        assert!(!h.matches(""));
    }

    #[test]
    fn debug_output_does_not_contain_the_full_hash() {
        let h = SecretHash::of("x");
        let dbg = format!("{h:?}");
        assert!(dbg.len() < 30, "{dbg}");
    }
}
