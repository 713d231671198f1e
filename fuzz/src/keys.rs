//! Fixed test keys (`fuzz/keys/`, PKCS#8 DER from `openssl genpkey` then `openssl pkcs8
//! -topk8`, used for nothing but fuzzing), their JWK Set, and JWS signing and checking done
//! here with aws-lc-rs, apart from the code under test.
//!
//! The keys are fixed so that the seed corpus can hold tokens that verify on every run.

use std::sync::OnceLock;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeyPair as RsaKeyPair;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _,
    RSA_PKCS1_2048_8192_SHA256, RSA_PKCS1_SHA256, UnparsedPublicKey,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// The issuer the test tokens name.
pub const ISSUER: &str = "https://issuer.fuzz.test";
/// The audience the test tokens name.
pub const AUDIENCE: &str = "https://api.fuzz.test";
/// `kid` of the RSA test key (RS256).
pub const RSA_KID: &str = "fuzz-rsa-1";
/// `kid` of the P-256 test key (ES256).
pub const EC_KID: &str = "fuzz-p256-1";

const RSA_PKCS8: &[u8] = include_bytes!("../keys/test-rsa.pk8.der");
const EC_PKCS8: &[u8] = include_bytes!("../keys/test-p256.pk8.der");

/// The parsed test keys.
pub struct TestKeys {
    rsa: RsaKeyPair,
    ec: EcdsaKeyPair,
    rng: SystemRandom,
}

/// The test keys, parsed once.
pub fn test_keys() -> &'static TestKeys {
    static KEYS: OnceLock<TestKeys> = OnceLock::new();
    KEYS.get_or_init(|| TestKeys {
        rsa: RsaKeyPair::from_pkcs8(RSA_PKCS8).expect("the RSA test key parses"),
        ec: EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, EC_PKCS8)
            .expect("the P-256 test key parses"),
        rng: SystemRandom::new(),
    })
}

/// A signing algorithm of the test keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alg {
    /// RS256 with [`RSA_KID`].
    Rs256,
    /// ES256 with [`EC_KID`].
    Es256,
}

impl Alg {
    /// The JOSE name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Rs256 => "RS256",
            Self::Es256 => "ES256",
        }
    }

    /// The `kid` of the key for this algorithm.
    pub fn kid(self) -> &'static str {
        match self {
            Self::Rs256 => RSA_KID,
            Self::Es256 => EC_KID,
        }
    }
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

impl TestKeys {
    /// The public JWK Set of both keys, as an issuer publishes it.
    pub fn jwks(&self) -> serde_json::Value {
        let public = self.rsa.public_key();
        let point = self.ec.public_key().as_ref();
        serde_json::json!({
            "keys": [
                {
                    "kty": "RSA", "use": "sig", "alg": "RS256", "kid": RSA_KID,
                    "n": b64(public.modulus().big_endian_without_leading_zero()),
                    "e": b64(public.exponent().big_endian_without_leading_zero()),
                },
                {
                    "kty": "EC", "use": "sig", "alg": "ES256", "kid": EC_KID, "crv": "P-256",
                    "x": b64(&point[1..33]), "y": b64(&point[33..65]),
                },
            ]
        })
    }

    /// A compact JWS of `header` and `payload` (taken as they are, any bytes), signed with
    /// the key of `alg`.
    pub fn sign(&self, alg: Alg, header: &[u8], payload: &[u8]) -> String {
        let signing_input = format!("{}.{}", b64(header), b64(payload));
        let signature = match alg {
            Alg::Rs256 => {
                let mut signature = vec![0u8; self.rsa.public_modulus_len()];
                self.rsa
                    .sign(
                        &RSA_PKCS1_SHA256,
                        &self.rng,
                        signing_input.as_bytes(),
                        &mut signature,
                    )
                    .expect("RS256 signing");
                signature
            }
            Alg::Es256 => self
                .ec
                .sign(&self.rng, signing_input.as_bytes())
                .expect("ES256 signing")
                .as_ref()
                .to_vec(),
        };
        format!("{signing_input}.{}", b64(&signature))
    }

    /// Whether `token` is a compact JWS whose signature verifies under the test key of
    /// `alg`: checked independently of `jsonwebtoken` and the guard.
    pub fn signed_by(&self, alg: Alg, token: &str) -> bool {
        let Some((signing_input, signature)) = token.rsplit_once('.') else {
            return false;
        };
        let Ok(signature) = URL_SAFE_NO_PAD.decode(signature) else {
            return false;
        };
        match alg {
            Alg::Rs256 => {
                UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, self.rsa.public_key().as_ref())
                    .verify(signing_input.as_bytes(), &signature)
                    .is_ok()
            }
            Alg::Es256 => {
                UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, self.ec.public_key().as_ref())
                    .verify(signing_input.as_bytes(), &signature)
                    .is_ok()
            }
        }
    }
}
