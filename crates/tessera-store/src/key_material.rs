//! RSA signing keys: generation (aws-lc-rs), sealing at rest (AES-256-GCM), and the parsed
//! in-memory key that signs.
//!
//! Why parsed once: re-parsing a PKCS#8 key for every token costs about 3.5x the signing
//! throughput (DESIGN.md), so [`KeyPairSigner`] holds the `KeyPair` for its whole life.

use std::sync::{Arc, RwLock};

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _,
    RSA_PKCS1_2048_8192_SHA256, RSA_PKCS1_SHA256, RsaPublicKeyComponents, UnparsedPublicKey,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use tessera_core::StoreError;
use tessera_core::key_schedule::{
    KeyPolicy, KeySchedule, KeyState, KeyTimeline, ScheduleStep, due, timeline,
};
use tessera_core::keys::{Jwk, Jwks, KeyRing, KeyStore, SignError, SigningKey, StoredKey};
use tessera_core::random::SecureRandom;
use tessera_core::time::Clock;
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

/// The algorithm of new keys (`TESSERA_SIGNING_ALG`, `TESSERA_RSA_BITS`). Switching is a
/// rotation like any other: the next key is of the new kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// RS256 with an RSA key of this size (the default, RSA-2048).
    Rs256(RsaBits),
    /// ES256 with a P-256 key: smaller tokens, faster signing.
    Es256,
}

impl Default for KeyKind {
    fn default() -> Self {
        Self::Rs256(RsaBits::Rsa2048)
    }
}

/// A parsed private key.
enum Pair {
    Rsa(KeyPair),
    Ec(EcdsaKeyPair),
}

/// A private key parsed in memory, ready to sign.
pub struct KeyPairSigner {
    kid: String,
    pair: Pair,
    rng: SystemRandom,
}

impl std::fmt::Debug for KeyPairSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyPairSigner({})", self.kid)
    }
}

impl SigningKey for KeyPairSigner {
    fn kid(&self) -> &str {
        &self.kid
    }

    fn alg(&self) -> &'static str {
        match self.pair {
            Pair::Rsa(_) => "RS256",
            Pair::Ec(_) => "ES256",
        }
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignError> {
        match &self.pair {
            Pair::Rsa(pair) => {
                let mut signature = vec![0u8; pair.public_modulus_len()];
                pair.sign(&RSA_PKCS1_SHA256, &self.rng, message, &mut signature)
                    .map_err(|_| SignError)?;
                Ok(signature)
            }
            // RFC 7518 §3.4: the JWS signature is R || S, fixed width.
            Pair::Ec(pair) => pair
                .sign(&self.rng, message)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| SignError),
        }
    }
}

/// The public JWK of a key pair, with its RFC 7638 thumbprint as `kid`.
fn public_jwk(pair: &Pair) -> Jwk {
    let b64 = |bytes: &[u8]| URL_SAFE_NO_PAD.encode(bytes);
    match pair {
        Pair::Rsa(pair) => {
            let public = pair.public_key();
            let n = b64(public.modulus().big_endian_without_leading_zero());
            let e = b64(public.exponent().big_endian_without_leading_zero());
            // RFC 7638 §3.2: the required members in lexicographic order, no whitespace.
            let canonical = format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#);
            Jwk {
                kty: "RSA".into(),
                use_: "sig".into(),
                alg: "RS256".into(),
                kid: b64(&Sha256::digest(canonical.as_bytes())),
                n: Some(n),
                e: Some(e),
                crv: None,
                x: None,
                y: None,
            }
        }
        Pair::Ec(pair) => {
            // The uncompressed point: 0x04 || X (32 bytes) || Y (32 bytes).
            let point = pair.public_key().as_ref();
            let (x, y) = (b64(&point[1..33]), b64(&point[33..65]));
            let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
            Jwk {
                kty: "EC".into(),
                use_: "sig".into(),
                alg: "ES256".into(),
                kid: b64(&Sha256::digest(canonical.as_bytes())),
                n: None,
                e: None,
                crv: Some("P-256".into()),
                x: Some(x),
                y: Some(y),
            }
        }
    }
}

/// Verifies signatures of one published key.
#[derive(Clone)]
enum Verifier {
    Rsa(RsaPublicKeyComponents<Vec<u8>>),
    Ec(Vec<u8>),
}

impl Verifier {
    /// Builds the verifier for a JWK; `None` if its members are missing or malformed.
    fn of(jwk: &Jwk) -> Option<Self> {
        let decode = |v: &Option<String>| URL_SAFE_NO_PAD.decode(v.as_deref()?).ok();
        match (jwk.kty.as_str(), jwk.alg.as_str()) {
            ("RSA", "RS256") => Some(Self::Rsa(RsaPublicKeyComponents {
                n: decode(&jwk.n)?,
                e: decode(&jwk.e)?,
            })),
            ("EC", "ES256") => {
                let (x, y) = (decode(&jwk.x)?, decode(&jwk.y)?);
                let mut point = Vec::with_capacity(65);
                point.push(4);
                point.extend_from_slice(&x);
                point.extend_from_slice(&y);
                Some(Self::Ec(point))
            }
            _ => None,
        }
    }

    fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        match self {
            Self::Rsa(key) => key
                .verify(&RSA_PKCS1_2048_8192_SHA256, message, signature)
                .is_ok(),
            Self::Ec(point) => UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point)
                .verify(message, signature)
                .is_ok(),
        }
    }
}

fn cipher(master: &MasterKey) -> Result<LessSafeKey, KeyError> {
    UnboundKey::new(&AES_256_GCM, master.bytes())
        .map(LessSafeKey::new)
        .map_err(|_| KeyError::Generate)
}

/// RSA modulus sizes Tessera generates (`TESSERA_RSA_BITS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RsaBits {
    /// 2048 bits, the default: about 2,000 signatures/s per core.
    #[default]
    Rsa2048,
    /// 3072 bits.
    Rsa3072,
    /// 4096 bits: several times slower to sign.
    Rsa4096,
}

impl RsaBits {
    /// Parses `2048`, `3072` or `4096`.
    pub fn parse(bits: u32) -> Option<Self> {
        match bits {
            2048 => Some(Self::Rsa2048),
            3072 => Some(Self::Rsa3072),
            4096 => Some(Self::Rsa4096),
            _ => None,
        }
    }

    fn size(self) -> KeySize {
        match self {
            Self::Rsa2048 => KeySize::Rsa2048,
            Self::Rsa3072 => KeySize::Rsa3072,
            Self::Rsa4096 => KeySize::Rsa4096,
        }
    }
}

/// Encrypts a PKCS#8 key under the master key, binding it to its kid.
fn seal(master: &MasterKey, kid: &str, pkcs8: &[u8]) -> Result<Vec<u8>, KeyError> {
    let mut nonce = [0u8; NONCE_LEN];
    OsRandom::default().fill(&mut nonce);
    let mut in_out = pkcs8.to_vec();
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
    Ok(sealed)
}

/// Decrypts a stored key to its PKCS#8 bytes.
fn open(master: &MasterKey, stored: &StoredKey) -> Result<Vec<u8>, KeyError> {
    let kid = &stored.schedule.kid;
    let fail = || KeyError::Unseal { kid: kid.clone() };
    let sealed = &stored.sealed_private;
    if sealed.len() < 4 + NONCE_LEN || &sealed[..4] != SEAL_VERSION {
        return Err(fail());
    }
    let nonce = Nonce::try_assume_unique_for_key(&sealed[4..4 + NONCE_LEN]).map_err(|_| fail())?;
    let mut in_out = sealed[4 + NONCE_LEN..].to_vec();
    let plain = cipher(master)?
        .open_in_place(nonce, Aad::from(kid.as_bytes()), &mut in_out)
        .map_err(|_| fail())?;
    Ok(plain.to_vec())
}

/// Generates a new key of `kind` for a place in the schedule, returning it parsed and
/// sealed.
pub fn generate(
    master: &MasterKey,
    kind: KeyKind,
    generation: i64,
    created_at: UnixTime,
    activates_at: UnixTime,
) -> Result<(KeyPairSigner, StoredKey), KeyError> {
    let (pair, pkcs8) = match kind {
        KeyKind::Rs256(bits) => {
            let pair = KeyPair::generate(bits.size()).map_err(|_| KeyError::Generate)?;
            let der = pair.as_der().map_err(|_| KeyError::Generate)?;
            let der = der.as_ref().to_vec();
            (Pair::Rsa(pair), der)
        }
        KeyKind::Es256 => {
            let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
                .map_err(|_| KeyError::Generate)?;
            let der = pair.to_pkcs8v1().map_err(|_| KeyError::Generate)?;
            let der = der.as_ref().to_vec();
            (Pair::Ec(pair), der)
        }
    };
    let public = public_jwk(&pair);
    let kid = public.kid.clone();
    let stored = StoredKey {
        schedule: KeySchedule {
            kid: kid.clone(),
            generation,
            created_at,
            activates_at,
            revoked_at: None,
        },
        public,
        sealed_private: seal(master, &kid, &pkcs8)?,
    };
    let key = KeyPairSigner {
        kid,
        pair,
        rng: SystemRandom::new(),
    };
    Ok((key, stored))
}

/// Opens a sealed key and parses it for signing; fails closed on a wrong master key,
/// tampering, or a key whose public half does not match.
pub fn unseal(master: &MasterKey, stored: &StoredKey) -> Result<KeyPairSigner, KeyError> {
    let fail = || KeyError::Unseal {
        kid: stored.schedule.kid.clone(),
    };
    let pkcs8 = open(master, stored)?;
    let pair = match stored.public.kty.as_str() {
        "EC" => Pair::Ec(
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &pkcs8)
                .map_err(|_| fail())?,
        ),
        _ => Pair::Rsa(KeyPair::from_pkcs8(&pkcs8).map_err(|_| fail())?),
    };
    if public_jwk(&pair) != stored.public {
        return Err(fail());
    }
    Ok(KeyPairSigner {
        kid: stored.schedule.kid.clone(),
        pair,
        rng: SystemRandom::new(),
    })
}

/// Re-encrypts every stored key from `old` to `new` master key, in one store transaction.
/// Nothing changes unless every key opens under `old`.
pub async fn rewrap(
    store: &dyn KeyStore,
    old: &MasterKey,
    new: &MasterKey,
) -> Result<usize, KeyError> {
    let keys = store.list().await?;
    let mut sealed = Vec::with_capacity(keys.len());
    for key in &keys {
        let pkcs8 = open(old, key)?;
        sealed.push((
            key.schedule.kid.clone(),
            seal(new, &key.schedule.kid, &pkcs8)?,
        ));
    }
    store.reseal(&sealed).await?;
    Ok(sealed.len())
}

/// One loaded key: its schedule, public JWK, parsed signer and verifier.
struct LoadedKey {
    schedule: KeySchedule,
    public: Jwk,
    signer: Arc<KeyPairSigner>,
    verifier: Verifier,
}

/// What a [`ScheduledKeyRing::tick`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tick {
    /// Keys this node generated (a step another node won is not listed).
    pub generated: Vec<String>,
    /// Keys this node deleted.
    pub deleted: Vec<String>,
}

/// The key ring that follows the schedule (see `tessera_core::key_schedule`): it signs with
/// the key active at the moment of signing and publishes next, active and retired keys.
/// Every node runs [`tick`](Self::tick) periodically: due steps are taken (the store's unique
/// generation makes each happen once across nodes) and the ring reloads what others did.
pub struct ScheduledKeyRing {
    loaded: RwLock<Vec<LoadedKey>>,
    clock: Arc<dyn Clock>,
    policy: KeyPolicy,
    master: MasterKey,
    kind: KeyKind,
}

impl std::fmt::Debug for ScheduledKeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScheduledKeyRing").finish_non_exhaustive()
    }
}

impl ScheduledKeyRing {
    /// Loads the ring, taking due steps first (so a first start has a key to sign with).
    /// A key that cannot be unsealed (wrong master key) fails the start: never a silent new
    /// key.
    pub async fn start(
        store: &dyn KeyStore,
        master: MasterKey,
        kind: KeyKind,
        clock: Arc<dyn Clock>,
        policy: KeyPolicy,
    ) -> Result<(Self, Tick), KeyError> {
        // Open what exists before acting, so a wrong master key fails before anything is
        // generated.
        let ring = Self::load(store, master, kind, clock, policy).await?;
        let tick = ring.tick(store).await?;
        Ok((ring, tick))
    }

    /// Loads the ring without taking any step (for inspection).
    pub async fn load(
        store: &dyn KeyStore,
        master: MasterKey,
        kind: KeyKind,
        clock: Arc<dyn Clock>,
        policy: KeyPolicy,
    ) -> Result<Self, KeyError> {
        let ring = Self {
            loaded: RwLock::new(Vec::new()),
            clock,
            policy,
            master,
            kind,
        };
        ring.reload(store).await?;
        Ok(ring)
    }

    /// The key waiting to activate, if a rotation is already scheduled.
    pub fn pending(stored: &[StoredKey], policy: &KeyPolicy, now: UnixTime) -> Option<KeyTimeline> {
        let schedules: Vec<KeySchedule> = stored.iter().map(|k| k.schedule.clone()).collect();
        timeline(&schedules, policy, now)
            .into_iter()
            .find(|l| l.state == KeyState::Next)
    }

    /// Takes the steps due now and reloads.
    pub async fn tick(&self, store: &dyn KeyStore) -> Result<Tick, KeyError> {
        let now = self.clock.now();
        let stored = store.list().await?;
        let schedules: Vec<KeySchedule> = stored.iter().map(|k| k.schedule.clone()).collect();
        let mut tick = Tick::default();
        for step in due(&schedules, &self.policy, now) {
            match step {
                ScheduleStep::Generate {
                    generation,
                    activates_at,
                } => {
                    let (_, record) =
                        generate(&self.master, self.kind, generation, now, activates_at)?;
                    match store.insert(&record).await {
                        Ok(()) => tick.generated.push(record.schedule.kid),
                        // Another node took this step first: its key is the one.
                        Err(StoreError::Conflict) => {}
                        Err(e) => return Err(e.into()),
                    }
                }
                ScheduleStep::Delete { kid } => {
                    if store.delete(&kid).await? {
                        tick.deleted.push(kid);
                    }
                }
            }
        }
        self.reload(store).await?;
        Ok(tick)
    }

    /// Reloads the keys from the store, unsealing only keys not loaded yet.
    pub async fn reload(&self, store: &dyn KeyStore) -> Result<(), KeyError> {
        let stored = store.list().await?;
        let mut fresh = Vec::with_capacity(stored.len());
        for key in stored {
            let known = self.read().iter().find_map(|l| {
                (l.schedule.kid == key.schedule.kid).then(|| (l.signer.clone(), l.verifier.clone()))
            });
            let (signer, verifier) = match known {
                Some(pair) => pair,
                None => {
                    let signer = Arc::new(unseal(&self.master, &key)?);
                    let verifier = Verifier::of(&key.public).ok_or_else(|| KeyError::Unseal {
                        kid: key.schedule.kid.clone(),
                    })?;
                    (signer, verifier)
                }
            };
            fresh.push(LoadedKey {
                schedule: key.schedule,
                public: key.public,
                signer,
                verifier,
            });
        }
        *self.write() = fresh;
        Ok(())
    }

    /// The algorithm of a loaded key.
    pub fn alg(&self, kid: &str) -> Option<String> {
        self.read()
            .iter()
            .find(|l| l.schedule.kid == kid)
            .map(|l| l.public.alg.clone())
    }

    /// Every key's timeline now, for listings.
    pub fn timeline(&self) -> Vec<KeyTimeline> {
        let schedules: Vec<KeySchedule> = self.read().iter().map(|l| l.schedule.clone()).collect();
        timeline(&schedules, &self.policy, self.clock.now())
    }

    fn states(&self) -> Vec<(String, KeyState)> {
        self.timeline()
            .into_iter()
            .map(|l| (l.key.kid, l.state))
            .collect()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Vec<LoadedKey>> {
        // A poisoned lock means a panic while swapping in a fully built Vec; the data is
        // still a consistent ring.
        self.loaded
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Vec<LoadedKey>> {
        self.loaded
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl KeyRing for ScheduledKeyRing {
    fn signing_key(&self) -> Arc<dyn SigningKey> {
        let active = self
            .states()
            .into_iter()
            .find(|(_, s)| *s == KeyState::Active)
            .map(|(kid, _)| kid);
        let loaded = self.read();
        let chosen = active
            .and_then(|kid| loaded.iter().find(|l| l.schedule.kid == kid))
            // Between a revocation and the next tick nothing may be active; the newest
            // unrevoked key is the safest fallback, and the next tick makes a proper one.
            // Never a revoked key: with every key revoked, signing fails closed (NoKey).
            .or_else(|| {
                loaded
                    .iter()
                    .rev()
                    .find(|l| l.schedule.revoked_at.is_none())
            });
        match chosen {
            Some(key) => key.signer.clone(),
            None => Arc::new(NoKey),
        }
    }

    fn published(&self) -> Jwks {
        let states = self.states();
        let loaded = self.read();
        let keys = loaded
            .iter()
            .filter(|l| {
                states
                    .iter()
                    .any(|(kid, s)| *kid == l.schedule.kid && s.is_published())
            })
            .map(|l| l.public.clone())
            .collect();
        Jwks { keys }
    }

    fn verify(&self, kid: &str, alg: &str, message: &[u8], signature: &[u8]) -> bool {
        if !self.publishes(kid) {
            return false;
        }
        let loaded = self.read();
        // The algorithm must be the key's own (RFC 8725 §3.1): `none`, HMAC, or another
        // key's algorithm never verifies.
        loaded
            .iter()
            .find(|l| l.schedule.kid == kid)
            .is_some_and(|l| l.public.alg == alg && l.verifier.verify(message, signature))
    }

    fn publishes(&self, kid: &str) -> bool {
        self.states()
            .iter()
            .any(|(k, s)| k == kid && s.is_published())
    }
}

/// The signer of an empty ring: fails every signature (fail closed).
struct NoKey;

impl SigningKey for NoKey {
    fn kid(&self) -> &str {
        ""
    }

    fn alg(&self) -> &'static str {
        "RS256"
    }

    fn sign(&self, _: &[u8]) -> Result<Vec<u8>, SignError> {
        Err(SignError)
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
        let (key, stored) = generate(
            &master(1),
            KeyKind::Rs256(RsaBits::Rsa2048),
            1,
            UnixTime(0),
            UnixTime(0),
        )
        .unwrap();
        assert_eq!(stored.public.kid, key.kid());
        assert_eq!(stored.public.e.as_deref(), Some("AQAB"));
        let reopened = unseal(&master(1), &stored).unwrap();
        let sig = reopened.sign(b"message").unwrap();
        let public = aws_lc_rs::signature::RsaPublicKeyComponents {
            n: URL_SAFE_NO_PAD
                .decode(stored.public.n.as_deref().unwrap())
                .unwrap(),
            e: URL_SAFE_NO_PAD
                .decode(stored.public.e.as_deref().unwrap())
                .unwrap(),
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
        let (_, stored) = generate(
            &master(1),
            KeyKind::Rs256(RsaBits::Rsa2048),
            1,
            UnixTime(0),
            UnixTime(0),
        )
        .unwrap();
        assert!(matches!(
            unseal(&master(2), &stored),
            Err(KeyError::Unseal { .. })
        ));
        let mut tampered = stored.clone();
        let last = tampered.sealed_private.len() - 1;
        tampered.sealed_private[last] ^= 1;
        assert!(unseal(&master(1), &tampered).is_err());
        let mut moved = stored;
        moved.schedule.kid = "other".into();
        assert!(unseal(&master(1), &moved).is_err());
    }

    #[test]
    fn es256_keys_sign_verifiably_and_survive_sealing() {
        let (key, stored) =
            generate(&master(1), KeyKind::Es256, 1, UnixTime(0), UnixTime(0)).unwrap();
        assert_eq!(key.alg(), "ES256");
        assert_eq!(stored.public.kty, "EC");
        assert_eq!(stored.public.crv.as_deref(), Some("P-256"));
        assert!(stored.public.n.is_none() && stored.public.e.is_none());
        let reopened = unseal(&master(1), &stored).unwrap();
        let signature = reopened.sign(b"message").unwrap();
        assert_eq!(signature.len(), 64, "RFC 7518 §3.4: R || S");
        let verifier = Verifier::of(&stored.public).unwrap();
        assert!(verifier.verify(b"message", &signature));
        assert!(!verifier.verify(b"messagf", &signature));
        let mut rs256 = stored.public.clone();
        rs256.alg = "RS256".into();
        assert!(
            Verifier::of(&rs256).is_none(),
            "an EC key never verifies as RSA"
        );
    }

    #[test]
    fn rewrap_moves_every_key_to_the_new_master_key() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let url = format!("sqlite://{}/k.db", dir.path().display());
            let store = crate::SqliteStore::open(&url).await.unwrap();
            for generation in 1..=2 {
                let (_, stored) = generate(
                    &master(1),
                    KeyKind::Rs256(RsaBits::Rsa2048),
                    generation,
                    UnixTime(0),
                    UnixTime(0),
                )
                .unwrap();
                KeyStore::insert(&store, &stored).await.unwrap();
            }
            // The wrong old key changes nothing.
            assert!(rewrap(&store, &master(3), &master(2)).await.is_err());
            for key in KeyStore::list(&store).await.unwrap() {
                assert!(unseal(&master(1), &key).is_ok());
            }
            assert_eq!(rewrap(&store, &master(1), &master(2)).await.unwrap(), 2);
            for key in KeyStore::list(&store).await.unwrap() {
                assert!(unseal(&master(2), &key).is_ok());
                assert!(matches!(
                    unseal(&master(1), &key),
                    Err(KeyError::Unseal { .. })
                ));
            }
        });
    }

    #[test]
    fn sealed_form_does_not_contain_the_plain_private_key() {
        let (key, stored) = generate(
            &master(1),
            KeyKind::Rs256(RsaBits::Rsa2048),
            1,
            UnixTime(0),
            UnixTime(0),
        )
        .unwrap();
        let Pair::Rsa(pair) = &key.pair else {
            panic!("an RSA key was asked for")
        };
        let der = pair.as_der().unwrap();
        let plain = der.as_ref();
        assert!(
            !stored
                .sealed_private
                .windows(64)
                .any(|w| w == &plain[100..164])
        );
    }
}
