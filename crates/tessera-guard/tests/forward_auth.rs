//! The forward-auth router on a real socket, asked the way each gateway asks it.
//!
//! - NGINX `auth_request`: `GET /verify`, the original URI in `X-Original-URI` (as in
//!   `deploy/nginx-auth-request.conf`), the client's headers passed along, no body.
//! - Traefik `ForwardAuth`: `GET` to the configured address (`/verify`) with
//!   `X-Forwarded-Method`, `-Proto`, `-Host`, `-Uri` and `-For`, plus the client's headers.
//! - Envoy `ext_authz` (HTTP service, `path_prefix: /verify`): the original method to
//!   `/verify` + the original path and query, `Content-Length: 0`, only the allowed headers.
//!
//! The rules make a wrong path visible: `/orders` needs `orders:read` (the token has it),
//! `/admin` needs `admin` (it has not), and every other path needs a scope nobody has, so a
//! path taken from the wrong place is refused where it should pass, or refused for the
//! wrong scope.

mod common;

use axum::http::{HeaderMap, Method, StatusCode, header};
use serde_json::json;
use tessera_guard::forward_auth::{self, ScopeRules};
use tessera_store::key_material::KeyPairSigner;

use common::*;

const RULES: &str = "/ never:granted\n/orders orders:read\n/admin admin\n";

/// The guard's forward-auth router on 127.0.0.1:0, with a JWKS server and a signing key.
struct Verifier {
    base: String,
    key: KeyPairSigner,
    _jwks: JwksServer,
}

impl Verifier {
    async fn start() -> Self {
        let (key, jwk) = rsa_key();
        let jwks = JwksServer::start(vec![jwk], 300).await;
        let rules = ScopeRules::parse(RULES).unwrap();
        let app = forward_auth::router(guard(&jwks.url), rules);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self {
            base: format!("http://{addr}"),
            key,
            _jwks: jwks,
        }
    }

    /// A valid token for the orders API, with `orders:read profile` and two roles.
    fn token(&self) -> String {
        let mut claims = claims();
        claims["roles"] = json!(["clerk", "auditor"]);
        token(&self.key, &claims)
    }

    /// A token signed by a key the issuer never published.
    fn foreign_token(&self) -> String {
        let (other, _) = rsa_key();
        token(&other, &claims())
    }
}

#[derive(Debug, Clone, Copy)]
enum Gateway {
    Nginx,
    Traefik,
    Envoy,
}

impl Gateway {
    /// The request this gateway sends to the guard for a client's `method uri`.
    fn check(
        self,
        verifier: &Verifier,
        method: Method,
        uri: &str,
        authorization: Option<&str>,
    ) -> reqwest::RequestBuilder {
        let client = reqwest::Client::new();
        let base = &verifier.base;
        let request = match self {
            Gateway::Nginx => client
                .get(format!("{base}/verify"))
                .header("x-original-uri", uri)
                .header(header::ACCEPT, "application/json"),
            Gateway::Traefik => client
                .get(format!("{base}/verify"))
                .header("x-forwarded-method", method.as_str())
                .header("x-forwarded-proto", "https")
                .header("x-forwarded-host", "api.example.com")
                .header("x-forwarded-uri", uri)
                .header("x-forwarded-for", "203.0.113.7")
                .header(header::ACCEPT, "application/json"),
            Gateway::Envoy => client
                .request(method, format!("{base}/verify{uri}"))
                .header(header::HOST, "api.example.com")
                .header(header::CONTENT_LENGTH, "0"),
        };
        match authorization {
            Some(value) => request.header(header::AUTHORIZATION, value),
            None => request,
        }
    }
}

/// What a case expects back.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// 200 with the identity headers.
    Granted,
    /// 403 `insufficient_scope` naming this scope.
    InsufficientScope(&'static str),
    /// 401 with a bare `Bearer realm=` challenge.
    NoToken,
    /// 401 `invalid_token`.
    InvalidToken,
}

enum Credential {
    Valid,
    Missing,
    Foreign,
}

struct Case {
    name: &'static str,
    method: Method,
    uri: &'static str,
    credential: Credential,
    expect: Expect,
}

fn challenge(headers: &HeaderMap) -> String {
    let values: Vec<_> = headers.get_all(header::WWW_AUTHENTICATE).iter().collect();
    assert_eq!(values.len(), 1, "one challenge: {values:?}");
    values[0].to_str().unwrap().to_owned()
}

fn assert_no_identity(name: &str, headers: &HeaderMap) {
    for identity in [
        "x-auth-subject",
        "x-auth-client-id",
        "x-auth-scope",
        "x-auth-roles",
    ] {
        assert!(
            headers.get(identity).is_none(),
            "{name}: a refusal carries no {identity}"
        );
    }
}

async fn run(gateway: Gateway, cases: Vec<Case>) {
    let verifier = Verifier::start().await;
    let (valid, foreign) = (verifier.token(), verifier.foreign_token());
    for case in cases {
        let name = format!("{gateway:?} {}: {} {}", case.name, case.method, case.uri);
        let authorization = match case.credential {
            Credential::Valid => Some(bearer(&valid)),
            Credential::Missing => None,
            Credential::Foreign => Some(bearer(&foreign)),
        };
        let response = gateway
            .check(&verifier, case.method, case.uri, authorization.as_deref())
            .send()
            .await
            .unwrap();
        let (status, headers) = (response.status(), response.headers().clone());
        match case.expect {
            Expect::Granted => {
                assert_eq!(status, StatusCode::OK, "{name}");
                assert_eq!(headers["x-auth-subject"], "user-42", "{name}");
                assert_eq!(headers["x-auth-client-id"], "web-app", "{name}");
                assert_eq!(headers["x-auth-scope"], "orders:read profile", "{name}");
                assert_eq!(headers["x-auth-roles"], "clerk,auditor", "{name}");
                assert_eq!(headers[header::CACHE_CONTROL], "no-store", "{name}");
                assert!(headers.get(header::WWW_AUTHENTICATE).is_none(), "{name}");
            }
            Expect::InsufficientScope(scope) => {
                assert_eq!(status, StatusCode::FORBIDDEN, "{name}");
                let challenge = challenge(&headers);
                assert!(
                    challenge.starts_with("Bearer realm=\"tessera\"")
                        && challenge.contains("error=\"insufficient_scope\"")
                        && challenge.contains(&format!("scope=\"{scope}\"")),
                    "{name}: {challenge}"
                );
                assert_no_identity(&name, &headers);
            }
            Expect::NoToken => {
                assert_eq!(status, StatusCode::UNAUTHORIZED, "{name}");
                let challenge = challenge(&headers);
                assert_eq!(
                    challenge, "Bearer realm=\"tessera\"",
                    "{name}: no error code"
                );
                assert_no_identity(&name, &headers);
            }
            Expect::InvalidToken => {
                assert_eq!(status, StatusCode::UNAUTHORIZED, "{name}");
                let challenge = challenge(&headers);
                assert!(
                    challenge.starts_with("Bearer realm=\"tessera\"")
                        && challenge.contains("error=\"invalid_token\""),
                    "{name}: {challenge}"
                );
                assert_no_identity(&name, &headers);
            }
        }
    }
}

/// The cases every gateway must get right, for a client request `method`.
fn common_cases(method: Method) -> Vec<Case> {
    vec![
        Case {
            name: "granted under /orders, query ignored",
            method: method.clone(),
            uri: "/orders/42?x=1&next=/admin",
            credential: Credential::Valid,
            expect: Expect::Granted,
        },
        Case {
            name: "the /admin rule applies, query ignored",
            method: method.clone(),
            uri: "/admin/users?as=/orders",
            credential: Credential::Valid,
            expect: Expect::InsufficientScope("admin"),
        },
        Case {
            name: "a path no specific rule covers falls to the / rule",
            method: method.clone(),
            uri: "/reports",
            credential: Credential::Valid,
            expect: Expect::InsufficientScope("never:granted"),
        },
        Case {
            name: "a missing token gets a bare challenge",
            method: method.clone(),
            uri: "/orders/42",
            credential: Credential::Missing,
            expect: Expect::NoToken,
        },
        Case {
            name: "a missing token on a scoped path is still 401",
            method: method.clone(),
            uri: "/admin/users",
            credential: Credential::Missing,
            expect: Expect::NoToken,
        },
        Case {
            name: "a token of an unpublished key is invalid",
            method,
            uri: "/orders/42",
            credential: Credential::Foreign,
            expect: Expect::InvalidToken,
        },
    ]
}

#[tokio::test]
async fn nginx_auth_request_with_x_original_uri() {
    run(Gateway::Nginx, common_cases(Method::GET)).await;
}

#[tokio::test]
async fn traefik_forward_auth_with_x_forwarded_uri_for_a_get() {
    run(Gateway::Traefik, common_cases(Method::GET)).await;
}

#[tokio::test]
async fn traefik_forward_auth_with_x_forwarded_uri_for_a_delete() {
    // Traefik asks with GET whatever the client's method; X-Forwarded-Method carries it.
    run(Gateway::Traefik, common_cases(Method::DELETE)).await;
}

#[tokio::test]
async fn envoy_ext_authz_path_prefix_for_a_get() {
    run(Gateway::Envoy, common_cases(Method::GET)).await;
}

#[tokio::test]
async fn envoy_ext_authz_path_prefix_for_a_bodiless_post() {
    run(Gateway::Envoy, common_cases(Method::POST)).await;
}

#[tokio::test]
async fn envoy_ext_authz_path_prefix_for_a_delete() {
    run(Gateway::Envoy, common_cases(Method::DELETE)).await;
}

#[tokio::test]
async fn envoy_ext_authz_path_prefix_for_the_root_and_other_methods() {
    let cases = vec![
        Case {
            name: "the root path is /verify/ and falls to the / rule",
            method: Method::GET,
            uri: "/",
            credential: Credential::Valid,
            expect: Expect::InsufficientScope("never:granted"),
        },
        Case {
            name: "the root with a query",
            method: Method::OPTIONS,
            uri: "/?orders",
            credential: Credential::Valid,
            expect: Expect::InsufficientScope("never:granted"),
        },
        Case {
            name: "PUT under /orders",
            method: Method::PUT,
            uri: "/orders/42",
            credential: Credential::Valid,
            expect: Expect::Granted,
        },
        Case {
            name: "PATCH under /admin",
            method: Method::PATCH,
            uri: "/admin/users/7",
            credential: Credential::Valid,
            expect: Expect::InsufficientScope("admin"),
        },
    ];
    run(Gateway::Envoy, cases).await;
}

/// A client's forged path header next to the one the gateway set cannot lift a rule.
#[tokio::test]
async fn a_forged_path_header_next_to_the_gateways_own_cannot_lift_a_rule() {
    let verifier = Verifier::start().await;
    let authorization = bearer(&verifier.token());
    // Traefik copies every client header, X-Original-URI included, next to its X-Forwarded-Uri.
    let traefik = Gateway::Traefik
        .check(&verifier, Method::GET, "/admin/users", Some(&authorization))
        .header("x-original-uri", "/orders/1");
    // NGINX sets X-Original-URI itself but passes a client's X-Forwarded-Uri along.
    let nginx = Gateway::Nginx
        .check(&verifier, Method::GET, "/admin/users", Some(&authorization))
        .header("x-forwarded-uri", "/orders/1");
    // Envoy with loose allowed_headers: the path it put in the request line decides.
    let envoy = Gateway::Envoy
        .check(&verifier, Method::GET, "/admin/users", Some(&authorization))
        .header("x-original-uri", "/orders/1")
        .header("x-forwarded-uri", "/orders/1");
    for (name, request) in [("traefik", traefik), ("nginx", nginx), ("envoy", envoy)] {
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{name}");
        let challenge = challenge(response.headers());
        assert!(challenge.contains("scope=\"admin\""), "{name}: {challenge}");
    }
    // And the forgery the other way round does not hurt a legitimate request to Envoy.
    let envoy = Gateway::Envoy
        .check(&verifier, Method::GET, "/orders/1", Some(&authorization))
        .header("x-original-uri", "/admin/users");
    assert_eq!(envoy.send().await.unwrap().status(), StatusCode::OK);
}

/// With rules configured, a request naming no usable path is refused, never waved through.
#[tokio::test]
async fn without_a_usable_original_path_the_rules_fail_closed() {
    let verifier = Verifier::start().await;
    let authorization = bearer(&verifier.token());
    let client = reqwest::Client::new();
    let verify = format!("{}/verify", verifier.base);
    let cases = [
        ("no path header at all", None),
        ("a path that is not text", Some(&b"/admin/\xff"[..])),
        (
            "an absolute URI",
            Some(&b"https://api.example.com/admin"[..]),
        ),
    ];
    for (name, value) in cases {
        let mut request = client
            .get(&verify)
            .header(header::AUTHORIZATION, &authorization);
        if let Some(value) = value {
            let value = axum::http::HeaderValue::from_bytes(value).unwrap();
            request = request
                .header("x-original-uri", value)
                .header("x-forwarded-uri", "/orders/1");
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{name}");
        assert_no_identity(name, response.headers());
    }
}

/// Without rules the path is irrelevant: a bare `/verify` authenticates as before.
#[tokio::test]
async fn without_rules_a_bare_verify_only_authenticates() {
    let (key, jwk) = rsa_key();
    let jwks = JwksServer::start(vec![jwk], 300).await;
    let app = forward_auth::router(guard(&jwks.url), ScopeRules::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let response = reqwest::Client::new()
        .post(format!("http://{addr}/verify"))
        .header(header::AUTHORIZATION, bearer(&token(&key, &claims())))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["x-auth-subject"], "user-42");
}

/// The forward-auth router with `RULES`, query tokens allowed or not; returns its base URL.
async fn router_allowing_query(jwks: &JwksServer, allow: bool) -> String {
    let mut config = config(&jwks.url);
    config.allow_query_token = allow;
    let guard = tessera_guard::Guard::new(config).unwrap();
    let app = forward_auth::router(guard, ScopeRules::parse(RULES).unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

/// RFC 6750 §2.3: the original URI's `access_token`, only when enabled, never next to a header.
#[tokio::test]
async fn a_query_token_in_the_original_uri_counts_only_when_enabled() {
    let (key, jwk) = rsa_key();
    let jwks = JwksServer::start(vec![jwk], 300).await;
    let mut claims = claims();
    claims["scope"] = json!("orders:read");
    let token = token(&key, &claims);
    let original = format!("/orders/1?access_token={token}");
    let client = reqwest::Client::new();
    let ask = |base: &str, authorization: Option<String>| {
        let mut request = client
            .get(format!("{base}/verify"))
            .header("x-original-uri", &original);
        if let Some(value) = authorization {
            request = request.header(header::AUTHORIZATION, value);
        }
        request.send()
    };
    let off = router_allowing_query(&jwks, false).await;
    let refused = ask(&off, None).await.unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(challenge(refused.headers()), "Bearer realm=\"tessera\"");
    let on = router_allowing_query(&jwks, true).await;
    let granted = ask(&on, None).await.unwrap();
    assert_eq!(granted.status(), StatusCode::OK);
    assert_eq!(granted.headers()["x-auth-subject"], "user-42");
    // Envoy's form: the query rides on the /verify path itself.
    let envoy = client
        .get(format!("{on}/verify{original}"))
        .send()
        .await
        .unwrap();
    assert_eq!(envoy.status(), StatusCode::OK);
    let twice = ask(&on, Some(bearer(&token))).await.unwrap();
    assert_eq!(twice.status(), StatusCode::BAD_REQUEST);
    assert!(challenge(twice.headers()).contains("invalid_request"));
}

/// `/orders/../admin` is `/admin` to most upstreams: refused, not matched as `/orders`.
#[tokio::test]
async fn a_path_that_normalizes_elsewhere_cannot_dodge_a_rule() {
    let verifier = Verifier::start().await;
    let authorization = bearer(&verifier.token());
    for gateway in [Gateway::Nginx, Gateway::Traefik, Gateway::Envoy] {
        for path in ["/orders/../admin", "//admin", "/orders/%2e%2e/admin"] {
            let response = gateway
                .check(&verifier, Method::GET, path, Some(&authorization))
                .send()
                .await
                .unwrap();
            let name = format!("{gateway:?} {path}");
            // reqwest (WHATWG URL rules) resolves `..` and `%2e%2e` in the URL it sends
            // Envoy-style, which then names `/admin` plainly and meets its rule (403);
            // every other form reaches the guard as is and is refused.
            let expected = match (gateway, path) {
                (Gateway::Envoy, "/orders/../admin" | "/orders/%2e%2e/admin") => {
                    StatusCode::FORBIDDEN
                }
                _ => StatusCode::BAD_REQUEST,
            };
            assert_eq!(response.status(), expected, "{name}");
            assert_no_identity(&name, response.headers());
        }
    }
}
