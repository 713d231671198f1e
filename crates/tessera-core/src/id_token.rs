//! OpenID Connect ID tokens (OIDC Core §2, §3.1.3.6) and the claims about the user that the
//! `profile` and `email` scopes release (§5.1, §5.4).
//!
//! An ID token is minted next to the access token of a user's grant whose scope holds
//! `openid`, by the same code path and key, so it needs the same proof (PKCE or rotation)
//! the access token does. It is signed RS256 with `typ: JWT`, which keeps it apart from
//! access tokens (`at+jwt`, RFC 9068 §2.1): neither verifies as the other.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::OAuthError;
use crate::jwt;
use crate::keys::SigningKey;
use crate::scope::ScopeSet;
use crate::user::User;

/// The `typ` header of ID tokens.
pub const ID_TOKEN_TYP: &str = "JWT";

/// The scope that turns an authorization into an OpenID Connect one.
pub const OPENID: &str = "openid";

/// The scopes with a meaning in OpenID Connect that Tessera supports (OIDC Core §5.4),
/// besides `openid`.
pub const CLAIM_SCOPES: [&str; 2] = ["profile", "email"];

/// Every claim an ID token or a userinfo answer may hold, for discovery.
pub const CLAIMS_SUPPORTED: [&str; 13] = [
    "iss",
    "sub",
    "aud",
    "exp",
    "iat",
    "auth_time",
    "nonce",
    "azp",
    "at_hash",
    "name",
    "preferred_username",
    "email",
    "email_verified",
];

/// The claims of an ID token (OIDC Core §2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdTokenClaims {
    /// The issuer identifier.
    pub iss: String,
    /// The user's id.
    pub sub: String,
    /// The client the token is for.
    pub aud: String,
    /// Expiry.
    pub exp: i64,
    /// Issue time.
    pub iat: i64,
    /// When the user authenticated.
    pub auth_time: i64,
    /// The authorization request's `nonce`; never set on a refresh (OIDC Core §12.2).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub nonce: Option<String>,
    /// The authorized party: the client (OIDC Core §2).
    pub azp: String,
    /// Half the SHA-256 of the access token issued with it (OIDC Core §3.1.3.6).
    pub at_hash: String,
    /// What the granted scope releases about the user.
    #[serde(flatten)]
    pub user: UserClaims,
}

impl IdTokenClaims {
    /// Signs these claims into a compact JWT with `typ: JWT`.
    pub fn sign(&self, key: &dyn SigningKey) -> Result<String, OAuthError> {
        jwt::sign(key, ID_TOKEN_TYP, self).map_err(|e| OAuthError::ServerError(Box::new(e)))
    }
}

/// The standard claims a scope releases about a user (OIDC Core §5.4): `profile` gives
/// `name` and `preferred_username`, `email` gives `email` and `email_verified`. A claim the
/// user record does not have is left out, never sent empty (§5.3.2).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserClaims {
    /// Full name.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub name: Option<String>,
    /// The login name.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub preferred_username: Option<String>,
    /// Email address.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub email: Option<String>,
    /// Whether the operator vouched for the address; sent with `email` only.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub email_verified: Option<bool>,
}

impl UserClaims {
    /// What `scope` releases about `user`.
    pub fn released(user: &User, scope: &ScopeSet) -> Self {
        let mut claims = Self::default();
        if scope.contains("profile") {
            claims.name = user.profile.name.clone();
            claims.preferred_username = Some(user.username.clone());
        }
        if scope.contains("email")
            && let Some(email) = &user.profile.email
        {
            claims.email = Some(email.clone());
            claims.email_verified = Some(user.profile.email_verified);
        }
        claims
    }
}

/// `at_hash` of an access token for an RS256 ID token: the base64url of the left half of
/// its SHA-256 (OIDC Core §3.1.3.6).
pub fn at_hash(access_token: &str) -> String {
    let digest = Sha256::digest(access_token.as_bytes());
    URL_SAFE_NO_PAD.encode(&digest[..16])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::UnixTime;
    use crate::user::UserProfile;

    fn olivia() -> User {
        User {
            id: "usr_1".into(),
            username: "olivia".into(),
            password_hash: String::new(),
            roles: vec![],
            profile: UserProfile {
                name: Some("Olivia Example".into()),
                email: Some("olivia@example.test".into()),
                email_verified: true,
            },
            disabled: false,
            created_at: UnixTime(0),
        }
    }

    #[test]
    fn at_hash_matches_the_oidc_core_example() {
        // OIDC Core Appendix A.3/A.4 (RS256): the access token and its at_hash.
        assert_eq!(
            at_hash("jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y"),
            "77QmUPtjPfzWtF2AnpK9RQ"
        );
    }

    #[test]
    fn each_scope_releases_only_its_own_claims() {
        let user = olivia();
        let none = UserClaims::released(&user, &ScopeSet::from_tokens(["openid"]));
        assert_eq!(none, UserClaims::default());
        let profile = UserClaims::released(&user, &ScopeSet::from_tokens(["openid", "profile"]));
        assert_eq!(profile.name.as_deref(), Some("Olivia Example"));
        assert_eq!(profile.preferred_username.as_deref(), Some("olivia"));
        assert_eq!((profile.email, profile.email_verified), (None, None));
        let email = UserClaims::released(&user, &ScopeSet::from_tokens(["openid", "email"]));
        assert_eq!(email.email.as_deref(), Some("olivia@example.test"));
        assert_eq!(email.email_verified, Some(true));
        assert_eq!(email.name, None);
    }

    #[test]
    fn a_missing_claim_is_left_out_not_sent_empty() {
        let mut user = olivia();
        user.profile = UserProfile::default();
        let scope = ScopeSet::from_tokens(["openid", "profile", "email"]);
        let json = serde_json::to_value(UserClaims::released(&user, &scope)).unwrap();
        assert_eq!(json, serde_json::json!({"preferred_username": "olivia"}));
    }
}
