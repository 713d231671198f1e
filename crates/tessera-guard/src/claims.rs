//! The claims of a verified access token (RFC 9068 §2.2), strictly typed.
//!
//! Parsing is strict on purpose: a required claim of the wrong JSON type (a string `exp`,
//! a numeric `sub`) makes the token invalid rather than being skipped (the lesson of
//! CVE-2026-25537).

use serde::{Deserialize, Deserializer};

use crate::error::{GuardError, InvalidReason};

/// The verified claims of an access token.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Claims {
    /// Issuer.
    pub iss: String,
    /// Subject: the user, or the client for client-credentials tokens.
    pub sub: String,
    /// Audiences (a single string in the token becomes one element).
    #[serde(deserialize_with = "audiences")]
    pub aud: Vec<String>,
    /// Expiry, seconds since the epoch.
    #[serde(deserialize_with = "numeric_date")]
    pub exp: i64,
    /// Issued at, seconds since the epoch.
    #[serde(deserialize_with = "numeric_date")]
    pub iat: i64,
    /// Not before, seconds since the epoch, if present.
    #[serde(default, deserialize_with = "optional_numeric_date")]
    pub nbf: Option<i64>,
    /// Token id, the handle for revocation.
    pub jti: String,
    /// The client the token was issued to.
    pub client_id: String,
    /// Space-separated granted scopes (RFC 6749 §3.3), if any.
    #[serde(default)]
    pub scope: Option<String>,
    /// Every other claim (roles and the like), as sent.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl Claims {
    /// The granted scopes, one by one.
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.scope
            .as_deref()
            .unwrap_or("")
            .split(' ')
            .filter(|s| !s.is_empty())
    }

    /// Whether `scope` was granted (exact token match, RFC 6749 §3.3).
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes().any(|granted| granted == scope)
    }

    /// `Ok` if `scope` was granted, else the RFC 6750 `insufficient_scope` refusal.
    pub fn require_scope(&self, scope: &str) -> Result<(), GuardError> {
        if self.has_scope(scope) {
            Ok(())
        } else {
            Err(GuardError::InsufficientScope(scope.to_owned()))
        }
    }

    /// Parses verified claims, refusing missing or ill-typed required members.
    pub(crate) fn parse(value: serde_json::Value) -> Result<Self, InvalidReason> {
        serde_json::from_value(value).map_err(|_| InvalidReason::Claims)
    }
}

/// RFC 7519 §2 NumericDate: a JSON number, never a string.
fn numeric_date<'de, D: Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
    let number = serde_json::Number::deserialize(deserializer)?;
    to_seconds(&number).ok_or_else(|| serde::de::Error::custom("NumericDate out of range"))
}

fn optional_numeric_date<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<i64>, D::Error> {
    numeric_date(deserializer).map(Some)
}

fn to_seconds(number: &serde_json::Number) -> Option<i64> {
    if let Some(n) = number.as_i64() {
        return Some(n);
    }
    // Fractional seconds are allowed by RFC 7519 §2; whole seconds are what we compare.
    number
        .as_f64()
        .filter(|f| f.is_finite() && f.abs() < 1e15)
        .map(|f| f.floor() as i64)
}

/// RFC 7519 §4.1.3: `aud` is a string or an array of strings.
fn audiences<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Aud {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Aud::deserialize(deserializer)? {
        Aud::One(one) => vec![one],
        Aud::Many(many) => many,
    })
}
