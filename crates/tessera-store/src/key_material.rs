//! RSA signing keys: generation (aws-lc-rs), sealing at rest (AES-256-GCM), and the parsed
//! in-memory key that signs.
//!
//! Why parsed once: re-parsing a PKCS#8 key for every token costs about 3.5x the signing
//! throughput (DESIGN.md), so [`RsaSigningKey`] holds the `KeyPair` for its whole life.

use std::collections::HashMap;
use std::sync::Arc;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::{
    KeyPair as _, RSA_PKCS1_2048_8192_SHA256, RSA_PKCS1_SHA256, RsaPublicKeyComponents,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use tessera_core::StoreError;
use tessera_core::keys::{Jwk, Jwks, KeyRing, KeyStore, SignError, SigningKey, StoredKey};
use tessera_core::random::SecureRandom;
use tessera_core::time::UnixTime;

use crate::master_key::MasterKey;
use crate::random::OsRandom;

/// Marks the sealed-key format, so a future format can be told apart.
const SEAL_VERSION: &[u8; 4] = b"TSK1";

/// Why key material could not be produced or opened.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Key generation or encoding failed in aws-lc-rs.
    #[error("RSA key generation failed")]
    Generate,
    /// The sealed key could not be opened: wrong master key or corrupted data.
    #[error("signing key {kid} cannot be unsealed: wrong TESSERA_MASTER_KEY or corrupted key")]
    Unseal {
        /// The key id.
        kid: String,
    },
    /// The key store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// An RSA private key parsed in memory, signing RS256.
pub struct RsaSigningKey {
    kid: String,
    pair: KeyPair,
    rng: SystemRandom,
}

impl std::fmt::Debug for RsaSigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RsaSigningKey({})", self.kid)
    }
}

impl SigningKey for RsaSigningKey {
    fn kid(&self) -> &str {
        &self.kid
    }

    fn alg(&self) -> &'static str {
        "RS256"
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignError> {
        let mut signature = vec![0u8; self.pair.public_modulus_len()];
        self.pair
            .sign(&RSA_PKCS1_SHA256, &self.rng, message, &mut signature)
            .map_err(|_| SignError)?;
        Ok(signature)
    }
}

/// The public JWK of a key pair, with its RFC 7638 thumbprint as `kid`.
fn public_jwk(pair: &KeyPair) -> Jwk {
    let public = pair.public_key();
    let n = URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero());
    let e = URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero());
    // RFC 7638 §3.2: the required members in lexicographic order, no whitespace.
    let canonical = format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#);
    let kid = URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()));
    Jwk {
        kty: "RSA".into(),
        use_: "sig".into(),
        alg: "RS256".into(),
        kid,
        n,
        e,
    }
}

fn cipher(master: &MasterKey) -> Result<LessSafeKey, KeyError> {
    UnboundKey::new(&AES_256_GCM, master.bytes())
        .map(LessSafeKey::new)
        .map_err(|_| KeyError::Generate)
}

/// Generates a new RSA-2048 key, returning it parsed and sealed for storage.
pub fn generate(master: &MasterKey, now: UnixTime) -> Result<(RsaSigningKey, StoredKey), KeyError> {
    let pair = KeyPair::generate(KeySize::Rsa2048).map_err(|_| KeyError::Generate)?;
    let pkcs8 = pair.as_der().map_err(|_| KeyError::Generate)?;
    let public = public_jwk(&pair);
    let kid = public.kid.clone();

    let mut nonce = [0u8; NONCE_LEN];
    OsRandom::default().fill(&mut nonce);
    let mut in_out = pkcs8.as_ref().to_vec();
    // The kid is the associated data: a sealed key moved under another kid will not open.
    cipher(master)?
        .seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(kid.as_bytes()),
            &mut in_out,
        )
        .map_err(|_| KeyError::Generate)?;
    let mut sealed = Vec::with_capacity(4 + NONCE_LEN + in_out.len());
    sealed.extend_from_slice(SEAL_VERSION);
    sealed.extend_from_slice(&nonce);
    sealed.extend_from_slice(&in_out);

    let stored = StoredKey {
        kid: kid.clone(),
        public,
        sealed_private: sealed,
        created_at: now,
    };
    let key = RsaSigningKey {
        kid,
        pair,
        rng: SystemRandom::new(),
    };
    Ok((key, stored))
}

/// Opens a sealed key and parses it for signing.
pub fn unseal(master: &MasterKey, stored: &StoredKey) -> Result<RsaSigningKey, KeyError> {
    let fail = || KeyError::Unseal {
        kid: stored.kid.clone(),
    };
    let sealed = &stored.sealed_private;
    if sealed.len() < 4 + NONCE_LEN || &sealed[..4] != SEAL_VERSION {
        return Err(fail());
    }
    let nonce = Nonce::try_assume_unique_for_key(&sealed[4..4 + NONCE_LEN]).map_err(|_| fail())?;
    let mut in_out = sealed[4 + NONCE_LEN..].to_vec();
    let plain = cipher(master)?
        .open_in_place(nonce, Aad::from(stored.kid.as_bytes()), &mut in_out)
        .map_err(|_| fail())?;
    let pair = KeyPair::from_pkcs8(plain).map_err(|_| fail())?;
    if public_jwk(&pair) != stored.public {
        return Err(fail());
    }
    Ok(RsaSigningKey {
        kid: stored.kid.clone(),
        pair,
        rng: SystemRandom::new(),
    })
}

/// A key ring with one signing key, loaded (or created) at start.
#[derive(Debug)]
pub struct StaticKeyRing {
    active: Arc<RsaSigningKey>,
    published: Jwks,
    verifiers: HashMap<String, RsaPublicKeyComponents<Vec<u8>>>,
}

impl StaticKeyRing {
    /// Loads the newest stored key, generating and storing one if there is none. Returns the
    /// ring and whether a key was generated.
    pub async fn load_or_generate(
        store: &dyn KeyStore,
        master: &MasterKey,
        now: UnixTime,
    ) -> Result<(Self, bool), KeyError> {
        let stored = store.list().await?;
        let (active, generated) = match stored.last() {
            Some(newest) => (unseal(master, newest)?, false),
            None => {
                let (key, record) = generate(master, now)?;
                store.insert(&record).await?;
                (key, true)
            }
        };
        let mut keys: Vec<Jwk> = stored.into_iter().map(|k| k.public).collect();
        if generated {
            keys.push(public_jwk(&active.pair));
        }
        let verifiers = keys
            .iter()
            .filter_map(|k| {
                let n = URL_SAFE_NO_PAD.decode(&k.n).ok()?;
                let e = URL_SAFE_NO_PAD.decode(&k.e).ok()?;
                Some((k.kid.clone(), RsaPublicKeyComponents { n, e }))
            })
            .collect();
        let ring = Self {
            active: Arc::new(active),
            published: Jwks { keys },
            verifiers,
        };
        Ok((ring, generated))
    }
}

impl KeyRing for StaticKeyRing {
    fn signing_key(&self) -> Arc<dyn SigningKey> {
        self.active.clone()
    }

    fn published(&self) -> Jwks {
        self.published.clone()
    }

    fn verify(&self, kid: &str, alg: &str, message: &[u8], signature: &[u8]) -> bool {
        // Only the algorithm our keys sign with; anything else (none, HS256...) fails.
        if alg != "RS256" {
            return false;
        }
        self.verifiers.get(kid).is_some_and(|key| {
            key.verify(&RSA_PKCS1_2048_8192_SHA256, message, signature)
                .is_ok()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn master(byte: u8) -> MasterKey {
        MasterKey::from_base64(&base64::engine::general_purpose::STANDARD.encode([byte; 32]))
            .unwrap()
    }

    #[test]
    fn sealed_key_round_trips_and_signs_verifiably() {
        let (key, stored) = generate(&master(1), UnixTime(0)).unwrap();
        assert_eq!(stored.public.kid, key.kid());
        assert_eq!(stored.public.e, "AQAB");
        let reopened = unseal(&master(1), &stored).unwrap();
        let sig = reopened.sign(b"message").unwrap();
        let public = aws_lc_rs::signature::RsaPublicKeyComponents {
            n: URL_SAFE_NO_PAD.decode(&stored.public.n).unwrap(),
            e: URL_SAFE_NO_PAD.decode(&stored.public.e).unwrap(),
        };
        public
            .verify(
                &aws_lc_rs::signature::RSA_PKCS1_2048_8192_SHA256,
                b"message",
                &sig,
            )
            .unwrap();
    }

    #[test]
    fn wrong_master_key_or_tampering_fails_closed() {
        let (_, stored) = generate(&master(1), UnixTime(0)).unwrap();
        assert!(matches!(
            unseal(&master(2), &stored),
            Err(KeyError::Unseal { .. })
        ));
        let mut tampered = stored.clone();
        let last = tampered.sealed_private.len() - 1;
        tampered.sealed_private[last] ^= 1;
        assert!(unseal(&master(1), &tampered).is_err());
        let mut moved = stored;
        moved.kid = "other".into();
        assert!(unseal(&master(1), &moved).is_err());
    }

    #[test]
    fn sealed_form_does_not_contain_the_plain_private_key() {
        let (key, stored) = generate(&master(1), UnixTime(0)).unwrap();
        let der = key.pair.as_der().unwrap();
        let plain = der.as_ref();
        assert!(
            !stored
                .sealed_private
                .windows(64)
                .any(|w| w == &plain[100..164])
        );
    }
}
