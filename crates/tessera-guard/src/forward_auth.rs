//! The forward-auth service: one endpoint a gateway asks before passing a request on.
//!
//! NGINX `auth_request`, Traefik `ForwardAuth` and Envoy `ext_authz` (HTTP) all ask it about
//! the original request and pass the request on when it answers 2xx. The answer carries the
//! caller's identity in `X-Auth-Subject`, `X-Auth-Client-Id`, `X-Auth-Scope` and
//! `X-Auth-Roles` for the upstream; a refusal is 401 or 403 with the RFC 6750
//! `WWW-Authenticate` challenge, which the gateway relays.
//!
//! Per-path scope requirements come from a small rules file: one rule per line, a path
//! prefix followed by the scopes it requires (all of them); the longest matching prefix
//! wins; `#` starts a comment.
//!
//! Where the original path comes from, in this order (query string removed):
//!
//! 1. The request path after `/verify`, when the gateway called `/verify/<original path>`:
//!    Envoy's `ext_authz` with `path_prefix: /verify` does (`/verify/orders/42?x=1` is
//!    `/orders/42`). The gateway builds this from the request line itself, so no header a
//!    client sends can change it; headers are then ignored.
//! 2. Otherwise `X-Original-URI` (NGINX) and `X-Forwarded-Uri` (Traefik), every value of
//!    both: the scopes of each path named are required. A gateway sets its own header but
//!    may pass the other one through from the client (Traefik copies all client headers),
//!    so a forged header can only add requirements, never lift them.
//! 3. Otherwise `X-Envoy-Original-Path`.
//!
//! When rules are configured, a request that names no path, or a path that is not readable
//! text starting with `/`, is refused with 400: without the path the rules cannot be
//! applied, and applying none would let everything through. So is a path the upstream
//! might read differently after normalizing it (`/orders/../admin`, `//admin`,
//! `/%2e%2e/admin`): rules match raw prefixes, and a raw prefix must mean what it says.
//!
//! The token comes from the `Authorization` header; with `allow_query_token`, also from the
//! original URI's `access_token` parameter (RFC 6750 §2.3). Sent both ways, or twice, the
//! request is refused with 400 `invalid_request`.

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};

use crate::Guard;
use crate::credential;
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

    /// Whether there are no rules (then the original path does not matter).
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
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

/// The path of the verify endpoint; Envoy's `path_prefix` is this.
const VERIFY: &str = "/verify";

/// The headers that carry the original request URI, from the most to the least trusted group.
const PATH_HEADERS: [&[&str]; 2] = [
    &["x-original-uri", "x-forwarded-uri"],
    &["x-envoy-original-path"],
];

/// The original request's query string, for an `access_token` parameter when query tokens
/// are enabled (`None` otherwise). Gateways that disagree on it make the request invalid.
fn original_query<'a>(
    uri: &'a Uri,
    headers: &'a HeaderMap,
    config: &crate::GuardConfig,
) -> Result<Option<&'a str>, GuardError> {
    if !config.allow_query_token {
        return Ok(None);
    }
    if uri.path().starts_with("/verify/") {
        return Ok(uri.query());
    }
    let mut queries = PATH_HEADERS[0]
        .iter()
        .flat_map(|name| headers.get_all(*name))
        .map(|value| {
            value
                .to_str()
                .map(|uri| uri.split_once('?').map(|(_, q)| q))
        });
    let first = queries
        .next()
        .transpose()
        .map_err(|_| GuardError::InvalidRequest)?;
    for other in queries {
        if other.map_err(|_| GuardError::InvalidRequest)? != first.flatten() {
            return Err(GuardError::InvalidRequest);
        }
    }
    Ok(first.flatten())
}

/// Whether a path could mean something else after the upstream normalizes it (dot
/// segments, empty segments, encoded dots, slashes or backslashes): a rule for `/admin`
/// must not be dodged with `/orders/../admin` or `//admin`. Such paths are refused.
fn ambiguous(path: &str) -> bool {
    let lower = path.to_ascii_lowercase();
    path.contains("//")
        || path.contains('\\')
        || ["%2e", "%2f", "%5c", "%00"]
            .iter()
            .any(|e| lower.contains(e))
        || path
            .split('/')
            .any(|segment| segment == "." || segment == "..")
}

/// The forward-auth router: `/verify` and `/verify/{*path}` (any method) and `/healthz`.
pub fn router(guard: Guard, rules: ScopeRules) -> Router {
    Router::new()
        .route(VERIFY, any(verify))
        // Envoy ext_authz (HTTP) calls `path_prefix` + the original path; `/verify/` is `/`.
        .route("/verify/", any(verify))
        .route("/verify/{*path}", any(verify))
        .route("/healthz", get(|| async { "ok" }))
        .with_state(Service { guard, rules })
}

/// An original path that cannot be used: not text, not starting with `/`, or ambiguous.
#[derive(Debug, PartialEq, Eq)]
struct UnreadablePath;

/// The original request's paths, query strings removed (see the module docs for the order).
///
/// Empty when the request names none; more than one when a gateway passed a client's header
/// through next to its own.
fn original_paths<'a>(
    uri: &'a Uri,
    headers: &'a HeaderMap,
) -> Result<Vec<&'a str>, UnreadablePath> {
    if let Some(path) = uri
        .path()
        .strip_prefix(VERIFY)
        .filter(|path| path.starts_with('/'))
    {
        if ambiguous(path) {
            return Err(UnreadablePath);
        }
        return Ok(vec![path]);
    }
    for group in PATH_HEADERS {
        let mut paths = Vec::new();
        for name in group {
            for value in headers.get_all(*name) {
                let path = value
                    .to_str()
                    .ok()
                    .map(|uri| uri.split('?').next().unwrap_or_default())
                    .filter(|path| path.starts_with('/') && !ambiguous(path))
                    .ok_or(UnreadablePath)?;
                if !paths.contains(&path) {
                    paths.push(path);
                }
            }
        }
        if !paths.is_empty() {
            return Ok(paths);
        }
    }
    Ok(Vec::new())
}

async fn verify(State(service): State<Service>, uri: Uri, headers: HeaderMap) -> Response {
    let paths = if service.rules.is_empty() {
        Vec::new()
    } else {
        match original_paths(&uri, &headers) {
            Ok(paths) if !paths.is_empty() => paths,
            Ok(_) => {
                tracing::warn!(
                    "forward auth: no original path (X-Original-URI, X-Forwarded-Uri or \
                     /verify/<path>); scope rules cannot be applied, refusing"
                );
                return bad_request();
            }
            Err(UnreadablePath) => {
                tracing::warn!("forward auth: unreadable original path header; refusing");
                return bad_request();
            }
        }
    };
    // RFC 6750 §2: the header; the original URI's query only when enabled; a credential
    // sent twice is refused, not guessed at.
    let query = match original_query(&uri, &headers, service.guard.config()) {
        Ok(query) => query,
        Err(error) => return refuse(error),
    };
    let token = match credential::bearer_token(service.guard.config(), &headers, query, None) {
        Ok(token) => token,
        Err(error) => return refuse(error),
    };
    let claims = match service.guard.verify_token(&token).await {
        Ok(c) => c,
        Err(e) => return refuse(e),
    };
    for path in paths {
        for scope in service.rules.required(path) {
            if let Err(e) = claims.require_scope(scope) {
                return refuse(e);
            }
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
        // Always set, empty if unrepresentable: the gateway then overwrites a client's forgery.
        let value = HeaderValue::from_str(value).unwrap_or(HeaderValue::from_static(""));
        out.insert(name, value);
    }
    out.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn refuse(error: GuardError) -> Response {
    error.into_response()
}

/// The gateway's question is not answerable: no usable original path while rules exist.
fn bad_request() -> Response {
    let mut response = StatusCode::BAD_REQUEST.into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
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

    fn paths(uri: &str, headers: &[(&'static str, &[u8])]) -> Result<Vec<String>, UnreadablePath> {
        let uri: Uri = uri.parse().unwrap();
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.append(*name, HeaderValue::from_bytes(value).unwrap());
        }
        original_paths(&uri, &map).map(|p| p.into_iter().map(str::to_owned).collect())
    }

    #[test]
    fn the_path_after_verify_wins_over_every_header() {
        let spoofed = [
            ("x-original-uri", &b"/public"[..]),
            ("x-forwarded-uri", b"/public"),
        ];
        assert_eq!(
            paths("/verify/admin/x?next=/public", &spoofed),
            Ok(vec!["/admin/x".into()])
        );
        assert_eq!(paths("/verify/", &spoofed), Ok(vec!["/".into()]));
        // `/verifyx` is not `/verify/…`.
        assert_eq!(paths("/verifyx", &spoofed), Ok(vec!["/public".into()]));
    }

    #[test]
    fn every_gateway_header_counts_and_envoys_header_is_the_last_resort() {
        let both = [
            ("x-original-uri", &b"/orders?x=1"[..]),
            ("x-forwarded-uri", b"/admin"),
        ];
        assert_eq!(
            paths("/verify", &both),
            Ok(vec!["/orders".into(), "/admin".into()])
        );
        let repeated = [
            ("x-forwarded-uri", &b"/a"[..]),
            ("x-forwarded-uri", b"/a?b"),
        ];
        assert_eq!(paths("/verify", &repeated), Ok(vec!["/a".into()]));
        let envoy = [
            ("x-envoy-original-path", &b"/e"[..]),
            ("x-forwarded-uri", b"/f"),
        ];
        assert_eq!(paths("/verify", &envoy), Ok(vec!["/f".into()]));
        assert_eq!(paths("/verify", &envoy[..1]), Ok(vec!["/e".into()]));
        assert_eq!(paths("/verify", &[]), Ok(vec![]));
    }

    #[test]
    fn an_unreadable_path_header_is_not_skipped() {
        // Skipping it would let a second, client-supplied header decide.
        let binary = [
            ("x-original-uri", &b"/admin/\xff"[..]),
            ("x-forwarded-uri", b"/public"),
        ];
        assert_eq!(paths("/verify", &binary), Err(UnreadablePath));
        let absolute = [("x-original-uri", &b"http://h/admin"[..])];
        assert_eq!(paths("/verify", &absolute), Err(UnreadablePath));
    }

    #[test]
    fn paths_that_normalize_to_something_else_are_refused() {
        for path in [
            "/orders/../admin",
            "/orders/./x",
            "//admin",
            "/orders/..",
            "/%2e%2e/admin",
            "/orders%2F..%2Fadmin",
            "/orders\\..\\admin",
            "/admin%00",
        ] {
            let header = [("x-original-uri", path.as_bytes())];
            assert_eq!(paths("/verify", &header), Err(UnreadablePath), "{path}");
            assert_eq!(
                paths(&format!("/verify{path}"), &[]),
                Err(UnreadablePath),
                "/verify{path}"
            );
        }
        assert_eq!(
            paths("/verify", &[("x-original-uri", b"/orders/..x/a.b")]),
            Ok(vec!["/orders/..x/a.b".into()])
        );
    }
}
