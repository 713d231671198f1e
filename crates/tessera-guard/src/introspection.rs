//! Introspection mode: a token is checked online at the issuer (RFC 7662) instead of
//! against the JWKS, for strict online checking or opaque tokens.
//!
//! The answer is held to the same rules as a JWT's claims: active, an access token (a
//! refresh token presented as a bearer token is refused), issued by our issuer, for our
//! audience, not expired, not before `nbf`. The issuer being unreachable, or refusing our
//! client credentials, fails closed with 503: the token may be good, we cannot tell.

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::claims::Claims;
use crate::config::{GuardConfig, IntrospectionConfig};
use crate::error::{GuardError, InvalidReason};

/// The introspection client of one guard.
pub(crate) struct Introspector {
    client: reqwest::Client,
    config: IntrospectionConfig,
    /// The issuer the endpoint speaks for (`iss` is optional in an answer).
    issuer: String,
}

impl Introspector {
    pub(crate) fn new(
        config: &GuardConfig,
        introspection: &IntrospectionConfig,
    ) -> Result<Self, crate::ConfigError> {
        let client = reqwest::Client::builder()
            .timeout(config.fetch_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|_| crate::ConfigError::Client)?;
        Ok(Self {
            client,
            config: introspection.clone(),
            issuer: config.issuer.clone(),
        })
    }

    /// Asks the issuer about `token` and returns its claims if it is an active access
    /// token; `iss`, `aud` and the time checks are the caller's (shared with JWT mode).
    pub(crate) async fn introspect(&self, token: &str) -> Result<Claims, GuardError> {
        let (id, secret) =
            crate::basic_credentials(&self.config.client_id, &self.config.client_secret);
        let response = self
            .client
            .post(&self.config.endpoint)
            .basic_auth(id, Some(secret))
            .header(reqwest::header::ACCEPT, "application/json")
            .form(&[("token", token), ("token_type_hint", "access_token")])
            .send()
            .await
            .map_err(|error| {
                tracing::warn!(error = %error.without_url(), "introspection endpoint unreachable");
                GuardError::IssuerUnavailable
            })?;
        match response.status().as_u16() {
            200 => {}
            401 | 403 => {
                tracing::error!(
                    client_id = %self.config.client_id,
                    "the introspection endpoint refused the guard's client credentials"
                );
                return Err(GuardError::IssuerUnavailable);
            }
            status => {
                tracing::warn!(status, "introspection failed");
                return Err(GuardError::IssuerUnavailable);
            }
        }
        let body: Map<String, Value> = response.json().await.map_err(|_| {
            tracing::warn!("introspection answered with something other than a JSON object");
            GuardError::IssuerUnavailable
        })?;
        claims(body, token, &self.issuer)
    }
}

/// The claims of an introspection answer (RFC 7662 §2.2).
fn claims(mut body: Map<String, Value>, token: &str, issuer: &str) -> Result<Claims, GuardError> {
    // Only a JSON `true` is active; `"true"` or a missing member is not.
    if body.remove("active") != Some(Value::Bool(true)) {
        return Err(InvalidReason::Inactive.into());
    }
    // RFC 7662 §2.2 `token_type` (RFC 6749 §7.1): only access tokens are bearer tokens.
    if let Some(kind) = body.remove("token_type") {
        let bearer = kind
            .as_str()
            .is_some_and(|k| k.eq_ignore_ascii_case("bearer") || k == "access_token");
        if !bearer {
            return Err(InvalidReason::Type.into());
        }
    }
    // `iss`, `iat` and `jti` are optional in RFC 7662; the claims we hand out always have
    // them. An answer without `iss` speaks for the issuer whose endpoint gave it.
    body.entry("iss").or_insert_with(|| Value::from(issuer));
    body.entry("iat")
        .or_insert_with(|| Value::from(crate::guard::unix_now()));
    body.entry("jti").or_insert_with(|| {
        let hash = Sha256::digest(token.as_bytes());
        let hex: String = hash[..16].iter().map(|b| format!("{b:02x}")).collect();
        Value::from(format!("introspected:{hex}"))
    });
    Ok(Claims::parse(Value::Object(body))?)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn answer(extra: Value) -> Map<String, Value> {
        let mut body = json!({
            "active": true, "token_type": "Bearer", "iss": "https://i", "aud": "api",
            "sub": "alice", "client_id": "web", "exp": 2_000_000_000, "iat": 1_900_000_000,
            "jti": "j1", "scope": "read",
        });
        for (k, v) in extra.as_object().unwrap() {
            if v.is_null() {
                body.as_object_mut().unwrap().remove(k);
            } else {
                body[k] = v.clone();
            }
        }
        body.as_object().unwrap().clone()
    }

    #[test]
    fn an_active_access_token_gives_its_claims() {
        let claims = claims(answer(json!({})), "t", "https://i").unwrap();
        assert_eq!(claims.sub, "alice");
        assert_eq!(claims.aud, ["api"]);
        assert_eq!(claims.jti, "j1");
        assert!(claims.has_scope("read"));
    }

    #[test]
    fn inactive_refresh_and_ill_typed_answers_are_refused() {
        let refused = [
            ("inactive", json!({ "active": false })),
            ("active as a string", json!({ "active": "true" })),
            ("active missing", json!({ "active": null })),
            ("a refresh token", json!({ "token_type": "refresh_token" })),
            ("string exp", json!({ "exp": "2000000000" })),
            ("no exp", json!({ "exp": null })),
            ("no sub", json!({ "sub": null })),
        ];
        for (name, extra) in refused {
            assert!(claims(answer(extra), "t", "https://i").is_err(), "{name}");
        }
    }

    #[test]
    fn a_missing_jti_is_derived_from_the_token_not_left_empty() {
        let a = claims(answer(json!({ "jti": null })), "token-a", "https://i").unwrap();
        let b = claims(answer(json!({ "jti": null })), "token-b", "https://i").unwrap();
        assert!(a.jti.starts_with("introspected:"));
        assert_ne!(a.jti, b.jti);
    }
}
