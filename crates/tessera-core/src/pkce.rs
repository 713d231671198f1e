//! Proof Key for Code Exchange (RFC 7636), `S256` only.
//!
//! `plain` offers no protection when the authorization request leaks, so Tessera refuses it
//! (RFC 9700 §2.1.1 recommends S256); a missing challenge is refused too, for every client.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::OAuthError;

/// An `S256` code challenge: base64url(SHA-256(verifier)), exactly 43 characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeChallenge(String);

impl CodeChallenge {
    /// Parses `code_challenge` and `code_challenge_method` from an authorization request.
    pub fn parse(challenge: Option<&str>, method: Option<&str>) -> Result<Self, OAuthError> {
        // RFC 7636 §4.4.1: a server that requires PKCE answers a missing challenge with
        // invalid_request.
        let challenge = challenge.ok_or(OAuthError::invalid_request(
            "code_challenge is required (PKCE)",
        ))?;
        // RFC 7636 §4.3: the method defaults to "plain", which this server does not support.
        match method {
            Some("S256") => {}
            _ => {
                return Err(OAuthError::invalid_request(
                    "code_challenge_method must be S256",
                ));
            }
        }
        let valid = challenge.len() == 43
            && URL_SAFE_NO_PAD
                .decode(challenge)
                .is_ok_and(|raw| raw.len() == 32);
        if !valid {
            return Err(OAuthError::invalid_request(
                "code_challenge must be the base64url SHA-256 of the verifier",
            ));
        }
        Ok(Self(challenge.to_owned()))
    }

    /// Restores a challenge that was validated when it was stored.
    pub fn from_stored(challenge: String) -> Self {
        Self(challenge)
    }

    /// The challenge as sent.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Checks a `code_verifier` against this challenge (RFC 7636 §4.6).
    pub fn verify(&self, verifier: &str) -> Result<PkceVerified, OAuthError> {
        // RFC 7636 §4.1: 43..=128 characters of [A-Z a-z 0-9 - . _ ~].
        let well_formed = (43..=128).contains(&verifier.len())
            && verifier
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
        if !well_formed {
            return Err(OAuthError::invalid_request(
                "code_verifier must be 43-128 unreserved characters",
            ));
        }
        let computed = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        if computed.as_bytes().ct_eq(self.0.as_bytes()).into() {
            Ok(PkceVerified(()))
        } else {
            Err(OAuthError::InvalidGrant(
                "code_verifier does not match the challenge",
            ))
        }
    }
}

/// Proof that a code verifier matched its challenge; required to redeem a code.
#[derive(Debug)]
pub struct PkceVerified(());

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 7636 Appendix B.
    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    #[test]
    fn rfc7636_appendix_b_vector_verifies() {
        let c = CodeChallenge::parse(Some(CHALLENGE), Some("S256")).unwrap();
        assert!(c.verify(VERIFIER).is_ok());
    }

    #[test]
    fn wrong_verifier_is_invalid_grant() {
        let c = CodeChallenge::parse(Some(CHALLENGE), Some("S256")).unwrap();
        let wrong = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXl";
        assert_eq!(c.verify(wrong).unwrap_err().code(), "invalid_grant");
    }

    #[test]
    fn malformed_verifier_is_invalid_request() {
        let c = CodeChallenge::parse(Some(CHALLENGE), Some("S256")).unwrap();
        for bad in ["short", &"a".repeat(129), &format!("{}!", &VERIFIER[..43])] {
            assert_eq!(
                c.verify(bad).unwrap_err().code(),
                "invalid_request",
                "{bad}"
            );
        }
    }

    #[test]
    fn plain_missing_and_malformed_challenges_are_refused() {
        let cases = [
            (None, Some("S256")),
            (Some(CHALLENGE), None),
            (Some(CHALLENGE), Some("plain")),
            (Some(CHALLENGE), Some("s256")),
            (Some("too-short"), Some("S256")),
            (
                Some("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-c+"),
                Some("S256"),
            ),
        ];
        for (c, m) in cases {
            let err = CodeChallenge::parse(c, m).unwrap_err();
            assert_eq!(err.code(), "invalid_request", "{c:?} {m:?}");
        }
    }
}
