//! The forward-auth service: one endpoint a gateway asks before passing a request on.
//!
//! NGINX `auth_request`, Traefik `ForwardAuth` and Envoy `ext_authz` (HTTP) all send the
//! original request's headers to `/verify` and pass the request on when it answers 2xx. The
//! answer carries the caller's identity in `X-Auth-Subject`, `X-Auth-Client-Id`,
//! `X-Auth-Scope` and `X-Auth-Roles` for the upstream; a refusal is 401 or 403 with the
//! RFC 6750 `WWW-Authenticate` challenge, which the gateway relays.
//!
//! Per-path scope requirements come from a small rules file: one rule per line, a path
//! prefix followed by the scopes it requires (all of them); the longest matching prefix
//! wins; `#` starts a comment. The path is taken from `X-Original-URI` (NGINX),
//! `X-Forwarded-Uri` (Traefik) or `X-Envoy-Original-Path`, query string removed.

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};

use crate::Guard;
use crate::error::GuardError;

/// Scope requirements by path prefix.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScopeRules {
    rules: Vec<(String, Vec<String>)>,
}

/// A rules file line that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("rules line {line}: expected `/path/prefix scope [scope...]`")]
pub struct RulesError {
    /// The 1-based line number.
    pub line: usize,
}

impl ScopeRules {
    /// Parses a rules file.
    pub fn parse(text: &str) -> Result<Self, RulesError> {
        let mut rules = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.split('#').next().unwrap_or_default().trim();
            if line.is_empty() {
                continue;
            }
            let mut words = line.split_whitespace();
            let prefix = words.next().filter(|p| p.starts_with('/'));
            let scopes: Vec<String> = words.map(str::to_owned).collect();
            match prefix {
                Some(prefix) if !scopes.is_empty() => rules.push((prefix.to_owned(), scopes)),
                _ => return Err(RulesError { line: i + 1 }),
            }
        }
        // Longest prefix first, so the first match is the most specific.
        rules.sort_by_key(|rule| std::cmp::Reverse(rule.0.len()));
        Ok(Self { rules })
    }

    /// The scopes required for `path` (none when no rule matches).
    pub fn required(&self, path: &str) -> &[String] {
        self.rules
            .iter()
            .find(|(prefix, _)| path.starts_with(prefix.as_str()))
            .map_or(&[], |(_, scopes)| scopes.as_slice())
    }
}

#[derive(Clone)]
struct Service {
    guard: Guard,
    rules: ScopeRules,
}

/// The forward-auth router: `/verify` (any method) and `/healthz`.
pub fn router(guard: Guard, rules: ScopeRules) -> Router {
    Router::new()
        .route("/verify", any(verify))
        .route("/healthz", get(|| async { "ok" }))
        .with_state(Service { guard, rules })
}

/// The original request's path, from the header the gateway in front put it in.
fn original_path(headers: &HeaderMap) -> String {
    ["x-original-uri", "x-forwarded-uri", "x-envoy-original-path"]
        .iter()
        .find_map(|name| headers.get(*name).and_then(|v| v.to_str().ok()))
        .map(|uri| uri.split('?').next().unwrap_or_default().to_owned())
        .unwrap_or_default()
}

async fn verify(State(service): State<Service>, headers: HeaderMap) -> Response {
    // RFC 6750 §2.1: the header only; a repeated header is refused, not guessed at.
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let (first, second) = (values.next(), values.next());
    let authorization = match (first, second) {
        (Some(v), None) => v.to_str().unwrap_or_default(),
        (Some(_), Some(_)) => {
            return refuse(GuardError::from(crate::error::InvalidReason::Malformed));
        }
        (None, _) => return refuse(GuardError::MissingToken),
    };
    let claims = match service.guard.verify(authorization).await {
        Ok(c) => c,
        Err(e) => return refuse(e),
    };
    for scope in service.rules.required(&original_path(&headers)) {
        if let Err(e) = claims.require_scope(scope) {
            return refuse(e);
        }
    }
    let roles = claims
        .extra
        .get("roles")
        .and_then(|r| r.as_array())
        .map(|r| {
            r.iter()
                .filter_map(|v| v.as_str())
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    let mut response = StatusCode::OK.into_response();
    let out = response.headers_mut();
    for (name, value) in [
        ("x-auth-subject", claims.sub.as_str()),
        ("x-auth-client-id", claims.client_id.as_str()),
        ("x-auth-scope", claims.scope.as_deref().unwrap_or_default()),
        ("x-auth-roles", roles.as_str()),
    ] {
        if let Ok(v) = HeaderValue::from_str(value) {
            out.insert(name, v);
        }
    }
    out.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn refuse(error: GuardError) -> Response {
    error.into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_prefix_wins_and_bad_lines_are_refused() {
        let rules =
            ScopeRules::parse("# orders\n/orders read\n/orders/admin read admin # strict\n\n")
                .unwrap();
        assert_eq!(rules.required("/orders/1"), ["read"]);
        assert_eq!(rules.required("/orders/admin/x"), ["read", "admin"]);
        assert!(rules.required("/health").is_empty());
        assert_eq!(
            ScopeRules::parse("orders read"),
            Err(RulesError { line: 1 })
        );
        assert_eq!(ScopeRules::parse("/a\n/b"), Err(RulesError { line: 1 }));
    }
}
