//! Token introspection (RFC 7662), with a validation cache.
//!
//! The caller is an authenticated confidential client (a resource server or gateway). An
//! access token is active when its signature verifies under one of our keys, its issuer is
//! ours, `nbf <= now < exp`, and its `jti` is not on the revocation list. A refresh token is
//! active when it is its family's live token and the caller is the client it belongs to
//! (anyone else learns nothing). Every other token is `{"active": false}`.
//!
//! Active access-token results are cached under the SHA-256 of the token (never the token),
//! each entry living `min(cache TTL, exp - now)`; `exp` is checked again on every hit, and a
//! revocation evicts by `jti` (see [`ValidationCache`]). Refresh tokens are never cached:
//! their state changes on every use.

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::access_token::{ACCESS_TOKEN_TYP, AccessTokenClaims};
use crate::client::AuthenticatedClient;
use crate::error::OAuthError;
use crate::grant::refresh_token::is_live;
use crate::jwt;
use crate::params::Params;
use crate::refresh_family::REFRESH_PREFIX;
use crate::secret::SecretHash;
use crate::server::AuthorizationServer;
use crate::time::UnixTime;

/// The members of an active token's introspection response (RFC 7662 §2.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActiveToken {
    /// Granted scope.
    #[serde(skip_serializing_if = "String::is_empty", default)]
    pub scope: String,
    /// The client the token was issued to.
    pub client_id: String,
    /// The subject.
    pub sub: String,
    /// The audience.
    pub aud: String,
    /// The issuer.
    pub iss: String,
    /// Expiry.
    pub exp: i64,
    /// Issue time.
    pub iat: i64,
    /// Not before.
    pub nbf: i64,
    /// Token id (access tokens only).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub jti: Option<String>,
    /// `Bearer` for access tokens, `refresh_token` for refresh tokens.
    pub token_type: String,
}

/// An introspection response: `{"active": false}` or `active: true` with the details.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Introspection {
    /// Whether the token is active.
    pub active: bool,
    /// The details, present only when active.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub token: Option<ActiveToken>,
}

impl Introspection {
    /// The one answer for every token that is not active (RFC 7662 §2.2).
    pub const INACTIVE: Introspection = Introspection {
        active: false,
        token: None,
    };

    fn active(token: ActiveToken) -> Self {
        Self {
            active: true,
            token: Some(token),
        }
    }
}

/// Which tier answered, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheTier {
    /// This process's memory.
    Local,
    /// The shared cache (Redis).
    Shared,
}

/// A cache of active access-token validations.
///
/// Contract: `get` never returns an entry whose `jti` was passed to `evict_jti` after or
/// before the entry was put (an eviction also blocks later puts of that `jti` for as long
/// as entries may live); entries disappear after their TTL.
#[async_trait]
pub trait ValidationCache: Send + Sync {
    /// The cached result for a token hash, and the tier that had it.
    async fn get(&self, key: &SecretHash) -> Option<(ActiveToken, CacheTier)>;
    /// Caches an active result for `ttl`.
    async fn put(&self, key: &SecretHash, token: &ActiveToken, ttl: Duration);
    /// Evicts every entry of this `jti` and refuses it from now on.
    async fn evict_jti(&self, jti: &str);
}

/// A cache that caches nothing (introspection then always validates).
#[derive(Debug, Default, Clone, Copy)]
pub struct NoCache;

#[async_trait]
impl ValidationCache for NoCache {
    async fn get(&self, _: &SecretHash) -> Option<(ActiveToken, CacheTier)> {
        None
    }
    async fn put(&self, _: &SecretHash, _: &ActiveToken, _: Duration) {}
    async fn evict_jti(&self, _: &str) {}
}

/// How an introspection was answered, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// From a cache tier.
    Cache(CacheTier),
    /// Validated now (signature, claims, revocation list, or store lookup).
    Validated,
}

/// Introspects a token for an authenticated client.
pub async fn introspect(
    server: &AuthorizationServer,
    client: AuthenticatedClient,
    params: &Params,
) -> Result<(Introspection, Source), OAuthError> {
    // RFC 7662 §2.1: the caller must be authorized; a public client cannot be.
    if client.client().is_public() {
        return Err(OAuthError::InvalidClient { basic: false });
    }
    let token = params.require("token")?;
    // RFC 7662 §2.1: the hint may speed up the search but must not limit it.
    let refresh_first = match params.get("token_type_hint")? {
        Some("access_token") => false,
        Some(_) | None => token.starts_with(REFRESH_PREFIX),
    };
    let answer = if refresh_first {
        match refresh(server, &client, token).await? {
            Some(active) => Some((active, Source::Validated)),
            None => access(server, token).await?,
        }
    } else {
        match access(server, token).await? {
            Some(found) => Some(found),
            None => refresh(server, &client, token)
                .await?
                .map(|a| (a, Source::Validated)),
        }
    };
    Ok(match answer {
        Some((active, source)) => (Introspection::active(active), source),
        None => (Introspection::INACTIVE, Source::Validated),
    })
}

/// An access token's validation (through the cache), `None` when it is not active.
pub(crate) async fn access(
    server: &AuthorizationServer,
    token: &str,
) -> Result<Option<(ActiveToken, Source)>, OAuthError> {
    let ports = server.ports();
    let key = SecretHash::of(token);
    let now = ports.clock.now();
    if let Some((hit, tier)) = ports.cache.get(&key).await {
        // The entry may have been put with a TTL computed on another node's clock: the
        // token's own expiry is checked again on every hit; and a key revoked since
        // (compromise) takes its tokens' cached results with it.
        let key_published = jwt::header_kid(token).is_some_and(|kid| ports.keys.publishes(&kid));
        if now.0 < hit.exp && key_published {
            return Ok(Some((hit, Source::Cache(tier))));
        }
        return Ok(None);
    }
    let Ok(claims) = jwt::verify::<AccessTokenClaims>(ports.keys.as_ref(), ACCESS_TOKEN_TYP, token)
    else {
        return Ok(None);
    };
    let policy = server.policy();
    if claims.iss != policy.issuer || now.0 >= claims.exp || now.0 < claims.nbf {
        return Ok(None);
    }
    if ports
        .revocations
        .is_access_token_revoked(&claims.jti)
        .await?
    {
        return Ok(None);
    }
    let active = ActiveToken {
        scope: claims.scope,
        client_id: claims.client_id,
        sub: claims.sub,
        aud: claims.aud,
        iss: claims.iss,
        exp: claims.exp,
        iat: claims.iat,
        nbf: claims.nbf,
        jti: Some(claims.jti),
        token_type: "Bearer".into(),
    };
    let ttl = policy.validation_cache_ttl.min(remaining(claims.exp, now));
    if !ttl.is_zero() {
        ports.cache.put(&key, &active, ttl).await;
    }
    Ok(Some((active, Source::Validated)))
}

async fn refresh(
    server: &AuthorizationServer,
    client: &AuthenticatedClient,
    token: &str,
) -> Result<Option<ActiveToken>, OAuthError> {
    let ports = server.ports();
    let Some((record, family)) = ports.refresh.find(&SecretHash::of(token)).await? else {
        return Ok(None);
    };
    let now = ports.clock.now();
    if family.client_id != client.client().id || !is_live(&record, &family, now) {
        return Ok(None);
    }
    Ok(Some(ActiveToken {
        scope: family.scope.to_string(),
        client_id: family.client_id,
        sub: family.user_id,
        aud: family.audience,
        iss: server.policy().issuer.clone(),
        exp: record.expires_at.0,
        iat: record.issued_at.0,
        nbf: record.issued_at.0,
        jti: None,
        token_type: "refresh_token".into(),
    }))
}

/// Seconds left before `exp`, for cache TTLs.
pub fn remaining(exp: i64, now: UnixTime) -> Duration {
    Duration::from_secs(u64::try_from(exp - now.0).unwrap_or(0))
}
