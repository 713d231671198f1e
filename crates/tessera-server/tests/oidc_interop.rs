//! Interoperability with an OpenID Connect relying party we did not write: the
//! `openidconnect` crate discovers the provider, runs the code flow with PKCE and a nonce,
//! validates ID tokens (signature through the discovered JWKS, iss, aud, exp, nonce, at_hash),
//! calls userinfo and builds RP-initiated logout requests against a real server on a socket.
//! Raw requests check what the crate does not model (metadata fields, `WWW-Authenticate`).

mod common;

use std::str::FromStr;
use std::time::Duration;

use common::{
    Browser, PASSWORD, POST_LOGOUT, REDIRECT, SECRET, TestServer, http, oauth_http, query_of,
};
use openidconnect::core::{
    CoreAuthPrompt, CoreAuthenticationFlow, CoreClient, CoreIdToken, CoreIdTokenClaims,
    CoreJwsSigningAlgorithm, CoreProviderMetadata, CoreResponseType, CoreSubjectIdentifierType,
    CoreTokenResponse, CoreUserInfoClaims,
};
use openidconnect::{
    AccessToken, AccessTokenHash, AuthType, AuthorizationCode, ClaimsVerificationError, ClientId,
    ClientSecret, CsrfToken, EndpointMaybeSet, EndpointNotSet, EndpointSet, IssuerUrl, Nonce,
    OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier, PostLogoutRedirectUrl,
    ProviderMetadataWithLogout, RedirectUrl, Scope, TokenResponse, UserInfoError,
};
use serde_json::{Value, json};
use tessera_core::client::{Client, GrantType};
use tessera_core::scope::ScopeSet;
use tessera_core::time::Clock;
use tessera_core::user::{self, User, UserProfile, UserStore};

/// A public client (PKCE, no secret) and a confidential one (client_secret_basic), both with
/// the OpenID scopes.
const PUBLIC: &str = "oidc-spa";
const CONFIDENTIAL: &str = "oidc-web";
const SUB: &str = "usr_olivia";
const NAME: &str = "Olivia Okafor";
const EMAIL: &str = "olivia@example.test";

/// The client `from_provider_metadata` builds: token and userinfo endpoints "maybe set".
type Rp = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// The test server with the two OpenID clients and user `olivia` (name, verified e-mail).
async fn start() -> TestServer {
    let server = TestServer::start().await;
    let grants = [GrantType::AuthorizationCode, GrantType::RefreshToken];
    let scopes = ScopeSet::from_tokens(["openid", "profile", "email"]);
    server
        .add_client_with(Client {
            scopes: scopes.clone(),
            post_logout_redirect_uris: vec![POST_LOGOUT.into()],
            ..server.client_template(PUBLIC, None, &grants, &[REDIRECT])
        })
        .await;
    server
        .add_client_with(Client {
            scopes,
            ..server.client_template(CONFIDENTIAL, Some(SECRET), &grants, &[REDIRECT])
        })
        .await;
    let olivia = User {
        id: SUB.into(),
        username: "olivia".into(),
        password_hash: user::hash_password(PASSWORD).unwrap(),
        roles: Vec::new(),
        profile: UserProfile {
            name: Some(NAME.into()),
            email: Some(EMAIL.into()),
            email_verified: true,
        },
        disabled: false,
        created_at: server.clock.now(),
    };
    UserStore::create(&server.store, &olivia).await.unwrap();
    server
}

fn issuer(server: &TestServer) -> IssuerUrl {
    IssuerUrl::new(server.base.clone()).unwrap()
}

/// A relying party configured only by discovery.
async fn relying_party(server: &TestServer, id: &str) -> Rp {
    let metadata = CoreProviderMetadata::discover_async(issuer(server), &oauth_http)
        .await
        .expect("discovery succeeds");
    let (secret, auth) = match id {
        CONFIDENTIAL => (Some(ClientSecret::new(SECRET.into())), AuthType::BasicAuth),
        _ => (None, AuthType::RequestBody),
    };
    CoreClient::from_provider_metadata(metadata, ClientId::new(id.into()), secret)
        .set_redirect_uri(RedirectUrl::new(REDIRECT.into()).unwrap())
        .set_auth_type(auth)
}

/// An authentication request: the URL, and what the relying party keeps to check the answer.
struct Request {
    url: String,
    state: CsrfToken,
    nonce: Nonce,
    verifier: PkceCodeVerifier,
}

fn auth_request(
    rp: &Rp,
    scopes: &[&str],
    prompt: Option<CoreAuthPrompt>,
    max_age: Option<u64>,
) -> Request {
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let mut request = rp
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .set_pkce_challenge(challenge);
    for scope in scopes {
        request = request.add_scope(Scope::new((*scope).into()));
    }
    if let Some(prompt) = prompt {
        request = request.add_prompt(prompt);
    }
    if let Some(secs) = max_age {
        request = request.set_max_age(Duration::from_secs(secs));
    }
    let (url, state, nonce) = request.url();
    Request {
        url: url.into(),
        state,
        nonce,
        verifier,
    }
}

/// Checks the redirect back to the client (state, RFC 9207 iss) and redeems its code.
async fn redeem(server: &TestServer, rp: &Rp, request: Request, location: &str) -> Signed {
    assert!(location.starts_with(REDIRECT), "{location}");
    let q = query_of(location);
    assert_eq!(q.get("state"), Some(request.state.secret()), "state echoed");
    assert_eq!(q.get("iss"), Some(&server.base), "RFC 9207 iss");
    let code = q
        .get("code")
        .unwrap_or_else(|| panic!("code in {location}"));
    let token = rp
        .exchange_code(AuthorizationCode::new(code.clone()))
        .unwrap()
        .set_pkce_verifier(request.verifier)
        .request_async(&oauth_http)
        .await
        .expect("code exchange succeeds");
    Signed {
        token,
        nonce: request.nonce,
    }
}

struct Signed {
    token: CoreTokenResponse,
    nonce: Nonce,
}

/// Olivia signs in through `rp` with `scopes` (openid is added unless disabled) and the code
/// is exchanged.
async fn sign_in(server: &TestServer, rp: &Rp, scopes: &[&str]) -> Signed {
    let request = auth_request(rp, scopes, None, None);
    let location = common::browser_login(&request.url, "olivia", PASSWORD).await;
    redeem(server, rp, request, &location).await
}

/// Validates the ID token of `token` as the crate does (signature through the discovered
/// JWKS, iss, aud, exp, nonce) and its at_hash against the access token.
fn validate(rp: &Rp, token: &CoreTokenResponse, nonce: &Nonce) -> CoreIdTokenClaims {
    let id_token = token.id_token().expect("an id_token in the token response");
    let verifier = rp.id_token_verifier();
    let claims = id_token
        .claims(&verifier, nonce)
        .expect("the ID token validates")
        .clone();
    check_at_hash(rp, id_token, &claims, token.access_token());
    claims
}

fn check_at_hash(rp: &Rp, id_token: &CoreIdToken, claims: &CoreIdTokenClaims, at: &AccessToken) {
    let verifier = rp.id_token_verifier();
    let alg = id_token.signing_alg().unwrap();
    assert_eq!(*alg, CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256);
    let actual =
        AccessTokenHash::from_token(at, alg, id_token.signing_key(&verifier).unwrap()).unwrap();
    assert_eq!(claims.access_token_hash(), Some(&actual), "at_hash");
}

/// The profile claims every flow with `openid profile email` must carry.
fn check_profile(claims: &CoreIdTokenClaims, client: &str) {
    assert_eq!(claims.subject().as_str(), SUB);
    assert_eq!(claims.audiences().len(), 1);
    assert_eq!(claims.audiences()[0].as_str(), client);
    assert_eq!(claims.authorized_party().map(|a| a.as_str()), Some(client));
    let name = claims.name().and_then(|n| n.get(None)).map(|n| n.as_str());
    assert_eq!(name, Some(NAME));
    let username = claims.preferred_username().map(|u| u.as_str());
    assert_eq!(username, Some("olivia"));
    assert_eq!(claims.email().map(|e| e.as_str()), Some(EMAIL));
    assert_eq!(claims.email_verified(), Some(true));
    let auth_time = claims.auth_time().expect("auth_time");
    assert!(auth_time <= claims.issue_time() && claims.issue_time() < claims.expiration());
}

/// Checks a userinfo refusal: the status and the `WWW-Authenticate` challenge's error.
async fn refused_userinfo(server: &TestServer, bearer: Option<&str>, status: u16, error: &str) {
    let mut request = http().get(server.url("/api/v2/auth/userinfo"));
    if let Some(token) = bearer {
        request = request.bearer_auth(token);
    }
    let r = request.send().await.unwrap();
    let challenge = r
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap());
    let challenge = challenge.unwrap_or_default().to_owned();
    assert_eq!(r.status().as_u16(), status, "{challenge}");
    assert!(challenge.starts_with("Bearer"), "{challenge}");
    let wanted = format!("error=\"{error}\"");
    let found = challenge.contains(if error.is_empty() { "error=" } else { &wanted });
    assert_eq!(found, !error.is_empty(), "{challenge}");
}

/// Userinfo through the crate; a refusal as `status NNN`.
async fn crate_userinfo(rp: &Rp, token: &AccessToken) -> Result<CoreUserInfoClaims, String> {
    let request = rp.user_info(token.clone(), None).unwrap();
    request
        .request_async(&oauth_http)
        .await
        .map_err(|e| match e {
            UserInfoError::Response(status, _, _) => format!("status {}", status.as_u16()),
            other => format!("{other:?}"),
        })
}

/// Checks an error redirect to the client: `error`, the state, `iss`, and no code.
fn refused_redirect(server: &TestServer, location: Option<&str>, error: &str, state: &str) {
    let location = location.expect("a redirect");
    assert!(location.starts_with(REDIRECT), "{location}");
    let q = query_of(location);
    let get = |name: &str| q.get(name).map(String::as_str);
    assert_eq!(
        (get("error"), get("state")),
        (Some(error), Some(state)),
        "{location}"
    );
    assert_eq!(q.get("iss"), Some(&server.base), "{location}");
    assert!(!q.contains_key("code"), "{location}");
}

/// Every item of `want` (space-separated) is in `have`.
fn has_all<'a>(what: &str, have: impl Iterator<Item = &'a str>, want: &str) {
    let have: Vec<&str> = have.collect();
    for item in want.split(' ') {
        assert!(have.contains(&item), "{what} lacks {item}: {have:?}");
    }
}

#[tokio::test]
async fn discovery_serves_what_openidconnect_needs() {
    let server = start().await;
    let meta = ProviderMetadataWithLogout::discover_async(issuer(&server), &oauth_http)
        .await
        .expect("discovery with the crate (issuer must match exactly)");
    let end_session = meta.additional_metadata().end_session_endpoint.as_ref();
    let found = [
        Some(meta.issuer().as_str()),
        Some(meta.authorization_endpoint().as_str()),
        meta.token_endpoint().map(|u| u.as_str()),
        Some(meta.jwks_uri().as_str()),
        meta.userinfo_endpoint().map(|u| u.as_str()),
        end_session.map(|u| u.as_str()),
    ];
    let paths = [
        "",
        "/api/v2/auth/authorize",
        "/api/v2/auth/token",
        "/.well-known/jwks.json",
    ];
    let paths = paths
        .into_iter()
        .chain(["/api/v2/auth/userinfo", "/api/v2/auth/logout"]);
    let expected: Vec<String> = paths.map(|p| server.url(p)).collect();
    assert_eq!(
        found.to_vec(),
        expected
            .iter()
            .map(|e| Some(e.as_str()))
            .collect::<Vec<_>>()
    );
    let response_types = meta.response_types_supported();
    assert_eq!(response_types.len(), 1);
    assert_eq!(**response_types[0], [CoreResponseType::Code]);
    let subject_types = meta.subject_types_supported();
    assert_eq!(subject_types, &[CoreSubjectIdentifierType::Public]);
    let algs = meta.id_token_signing_alg_values_supported();
    assert_eq!(algs, &[CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256]);
    let scopes = meta.scopes_supported().expect("scopes_supported");
    has_all(
        "scopes_supported",
        scopes.iter().map(|s| s.as_str()),
        "openid profile email",
    );
    let claims = meta.claims_supported().expect("claims_supported");
    let expected =
        "sub iss aud exp iat auth_time nonce name preferred_username email email_verified";
    has_all(
        "claims_supported",
        claims.iter().map(|c| c.as_str()),
        expected,
    );
    assert!(
        !meta.jwks().keys().is_empty(),
        "the JWKS was fetched and parsed"
    );

    // What the crate does not model.
    let url = server.url("/.well-known/openid-configuration");
    let raw: Value = http().get(url).send().await.unwrap().json().await.unwrap();
    assert_eq!(raw["response_modes_supported"], json!(["query"]));
    assert_eq!(raw["code_challenge_methods_supported"], json!(["S256"]));
    assert_eq!(raw["authorization_response_iss_parameter_supported"], true);
    let methods = raw["token_endpoint_auth_methods_supported"]
        .as_array()
        .unwrap();
    let methods = methods.iter().filter_map(Value::as_str);
    has_all(
        "token_endpoint_auth_methods_supported",
        methods,
        "client_secret_basic none",
    );
}

#[tokio::test]
async fn public_client_code_flow_with_pkce_and_nonce() {
    let server = start().await;
    let rp = relying_party(&server, PUBLIC).await;
    let signed = sign_in(&server, &rp, &["profile", "email"]).await;
    let claims = validate(&rp, &signed.token, &signed.nonce);
    check_profile(&claims, PUBLIC);
    assert_eq!(claims.issuer().as_str(), server.base);
    let nonce = claims.nonce().map(|n| n.secret());
    assert_eq!(nonce, Some(signed.nonce.secret()));
    let header = jsonwebtoken::decode_header(signed.token.id_token().unwrap().to_string());
    let header = header.unwrap();
    assert_eq!(header.typ.as_deref(), Some("JWT"));
    assert!(header.kid.is_some_and(|k| !k.is_empty()), "a kid");
    let granted = signed.token.scopes().expect("scope in the token response");
    has_all(
        "scope",
        granted.iter().map(|s| s.as_str()),
        "openid profile email",
    );
}

#[tokio::test]
async fn public_client_without_nonce_is_refused() {
    let server = start().await;
    let url = common::authorize_url_for(&server, PUBLIC, "openid profile");
    let r = http().get(&url).send().await.unwrap();
    assert_eq!(r.status(), 303, "redirected with an error");
    let location = r.headers().get("location").map(|l| l.to_str().unwrap());
    refused_redirect(&server, location, "invalid_request", "xyz");
}

#[tokio::test]
async fn confidential_client_userinfo_and_refresh() {
    let server = start().await;
    let rp = relying_party(&server, CONFIDENTIAL).await;
    let signed = sign_in(&server, &rp, &["profile", "email"]).await;
    let claims = validate(&rp, &signed.token, &signed.nonce);
    check_profile(&claims, CONFIDENTIAL);

    let access = signed.token.access_token();
    let info: CoreUserInfoClaims = rp
        .user_info(access.clone(), Some(claims.subject().clone()))
        .unwrap()
        .request_async(&oauth_http)
        .await
        .expect("userinfo through the crate");
    assert_eq!(info.subject().as_str(), SUB);
    let name = info.name().and_then(|n| n.get(None)).map(|n| n.as_str());
    assert_eq!(name, Some(NAME));
    let username = info.preferred_username().map(|u| u.as_str());
    assert_eq!(username, Some("olivia"));
    assert_eq!(info.email().map(|e| e.as_str()), Some(EMAIL));
    assert_eq!(info.email_verified(), Some(true));
    let url = server.url("/api/v2/auth/userinfo");
    let posted = http()
        .post(url)
        .bearer_auth(access.secret())
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), 200, "userinfo by POST");
    assert_eq!(posted.json::<Value>().await.unwrap()["sub"], SUB);

    let refresh = signed.token.refresh_token().expect("a refresh token");
    let renewed = rp
        .exchange_refresh_token(refresh)
        .unwrap()
        .request_async(&oauth_http)
        .await
        .expect("refresh succeeds");
    assert_ne!(renewed.access_token().secret(), access.secret());
    let new_refresh = renewed.refresh_token().expect("a rotated refresh token");
    assert_ne!(new_refresh.secret(), refresh.secret());
    let id_token = renewed.id_token().expect("an ID token on refresh");
    let no_nonce = |n: Option<&Nonce>| match n {
        None => Ok(()),
        Some(n) => Err(format!("a refreshed ID token carries nonce {}", n.secret())),
    };
    let verifier = rp.id_token_verifier();
    let fresh = id_token
        .claims(&verifier, no_nonce)
        .expect("refreshed ID token validates");
    check_at_hash(&rp, id_token, fresh, renewed.access_token());
    assert_eq!(fresh.subject(), claims.subject());
    assert_eq!(fresh.audiences(), claims.audiences());
    assert_eq!(
        fresh.auth_time(),
        claims.auth_time(),
        "auth_time is the sign-in's"
    );
}

#[tokio::test]
async fn a_wrong_nonce_is_rejected_by_the_crate() {
    let server = start().await;
    let rp = relying_party(&server, PUBLIC).await;
    let signed = sign_in(&server, &rp, &["profile"]).await;
    let id_token = signed.token.id_token().unwrap();
    let verifier = rp.id_token_verifier();
    let wrong = Nonce::new("not-the-nonce-of-this-request".into());
    match id_token.claims(&verifier, &wrong) {
        Err(ClaimsVerificationError::InvalidNonce(_)) => {}
        other => panic!("expected InvalidNonce, got {other:?}"),
    }
    // The right one still passes: the failure above is the nonce's alone.
    id_token
        .claims(&verifier, &signed.nonce)
        .expect("right nonce");
}

#[tokio::test]
async fn prompt_none_without_a_session_is_login_required() {
    let server = start().await;
    let rp = relying_party(&server, PUBLIC).await;
    let request = auth_request(&rp, &["profile"], Some(CoreAuthPrompt::None), None);
    let r = http().get(&request.url).send().await.unwrap();
    assert_eq!(r.status(), 303, "no login page with prompt=none");
    let location = r.headers().get("location").map(|l| l.to_str().unwrap());
    refused_redirect(&server, location, "login_required", request.state.secret());
}

/// Olivia signs in with `browser` (keeping its session cookie); the code is exchanged.
async fn browser_sign_in(
    server: &TestServer,
    rp: &Rp,
    browser: &mut Browser,
    request: Request,
) -> Signed {
    let page = browser.authorize(&request.url, "olivia", PASSWORD).await;
    assert_eq!(page.status, 303, "{}", page.html);
    redeem(server, rp, request, page.location().unwrap()).await
}

#[tokio::test]
async fn prompt_and_max_age_with_a_session() {
    let server = start().await;
    let rp = relying_party(&server, PUBLIC).await;
    let mut browser = Browser::new(&server);
    let first = auth_request(&rp, &[], None, None);
    let signed = browser_sign_in(&server, &rp, &mut browser, first).await;
    let auth_time = validate(&rp, &signed.token, &signed.nonce)
        .auth_time()
        .unwrap();

    // prompt=none with a session: a code at once, for the same authentication.
    server.clock.advance(30);
    let silent = auth_request(&rp, &[], Some(CoreAuthPrompt::None), None);
    let page = browser.get(&silent.url).await;
    assert_eq!(
        page.status, 303,
        "prompt=none with a session: {}",
        page.html
    );
    let signed = redeem(&server, &rp, silent, page.location().unwrap()).await;
    let claims = validate(&rp, &signed.token, &signed.nonce);
    assert_eq!(claims.auth_time(), Some(auth_time), "no new sign-in");

    // prompt=login: the login page again, and a new auth_time after it.
    let again = auth_request(&rp, &[], Some(CoreAuthPrompt::Login), None);
    assert!(browser.get(&again.url).await.is_login(), "prompt=login");
    let signed = browser_sign_in(&server, &rp, &mut browser, again).await;
    let relogin = validate(&rp, &signed.token, &signed.nonce)
        .auth_time()
        .unwrap();
    assert!(
        relogin > auth_time,
        "re-authenticated: {relogin} > {auth_time}"
    );

    // max_age: a session older than that asks again; with prompt=none it cannot.
    server.clock.advance(120);
    let fresh_enough = auth_request(&rp, &[], None, Some(600));
    assert_eq!(
        browser.get(&fresh_enough.url).await.status,
        303,
        "max_age=600"
    );
    let too_old = auth_request(&rp, &[], None, Some(60));
    assert!(browser.get(&too_old.url).await.is_login(), "max_age=60");
    let silent = auth_request(&rp, &[], Some(CoreAuthPrompt::None), Some(60));
    let page = browser.get(&silent.url).await;
    refused_redirect(
        &server,
        page.location(),
        "login_required",
        silent.state.secret(),
    );
}

#[tokio::test]
async fn userinfo_needs_the_openid_scope() {
    let server = start().await;
    let rp = relying_party(&server, CONFIDENTIAL)
        .await
        .disable_openid_scope();
    let signed = sign_in(&server, &rp, &["profile"]).await;
    assert!(
        signed.token.id_token().is_none(),
        "no openid scope, no ID token"
    );
    let token = signed.token.access_token();
    assert_eq!(crate_userinfo(&rp, token).await.unwrap_err(), "status 403");
    refused_userinfo(&server, Some(token.secret()), 403, "insufficient_scope").await;
    // A service's client-credentials token has no user and no openid scope.
    let service = common::service_token(&server).await;
    refused_userinfo(&server, Some(&service), 403, "insufficient_scope").await;
    // No token: a bare challenge; a forged one: invalid_token.
    refused_userinfo(&server, None, 401, "").await;
    refused_userinfo(&server, Some("not.a.token"), 401, "invalid_token").await;
}

#[tokio::test]
async fn revoked_and_expired_tokens() {
    let server = start().await;
    let rp = relying_party(&server, CONFIDENTIAL).await;

    // Revoked (RFC 7009): userinfo refuses it.
    let revoked = sign_in(&server, &rp, &["profile"]).await;
    let token = revoked.token.access_token();
    assert!(
        crate_userinfo(&rp, token).await.is_ok(),
        "valid before revocation"
    );
    let r = http()
        .post(server.url("/api/v2/auth/revoke"))
        .basic_auth(CONFIDENTIAL, Some(SECRET))
        .form(&[("token", token.secret().as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    refused_userinfo(&server, Some(token.secret()), 401, "invalid_token").await;

    // Expired: move the server's clock past exp (and any leeway).
    let signed = sign_in(&server, &rp, &["profile"]).await;
    let claims = validate(&rp, &signed.token, &signed.nonce);
    let lifetime = signed.token.expires_in().expect("expires_in").as_secs() as i64;
    server.clock.advance(lifetime + 300);
    let token = signed.token.access_token();
    assert_eq!(crate_userinfo(&rp, token).await.unwrap_err(), "status 401");
    refused_userinfo(&server, Some(token.secret()), 401, "invalid_token").await;

    // The crate rejects the ID token once its own clock is past exp.
    let id_token = signed.token.id_token().unwrap();
    let exp = claims.expiration();
    let verifier = rp.id_token_verifier();
    let after = verifier.set_time_fn(move || exp + Duration::from_secs(1));
    match id_token.claims(&after, &signed.nonce) {
        Err(ClaimsVerificationError::Expired(_)) => {}
        other => panic!("expected Expired, got {other:?}"),
    }
    let before = rp
        .id_token_verifier()
        .set_time_fn(move || exp - Duration::from_secs(1));
    id_token
        .claims(&before, &signed.nonce)
        .expect("valid just before exp");
}

#[tokio::test]
async fn logout_with_an_id_token_hint() {
    let server = start().await;
    let rp = relying_party(&server, PUBLIC).await;
    let meta = ProviderMetadataWithLogout::discover_async(issuer(&server), &oauth_http).await;
    let end_session = meta
        .unwrap()
        .additional_metadata()
        .end_session_endpoint
        .clone()
        .unwrap();
    let mut browser = Browser::new(&server);
    let request = auth_request(&rp, &[], None, None);
    let signed = browser_sign_in(&server, &rp, &mut browser, request).await;
    validate(&rp, &signed.token, &signed.nonce);
    let id_token = signed.token.id_token().unwrap();
    let logout = |hint: &CoreIdToken| {
        openidconnect::LogoutRequest::from(end_session.clone())
            .set_id_token_hint(hint)
            .set_post_logout_redirect_uri(PostLogoutRedirectUrl::new(POST_LOGOUT.into()).unwrap())
            .set_state(CsrfToken::new("s".into()))
            .http_get_url()
    };

    // A tampered hint (a character of the signature changed): no redirect.
    let raw = id_token.to_string();
    let (head, signature) = raw.rsplit_once('.').unwrap();
    let mut sig = signature.as_bytes().to_vec();
    sig[10] = if sig[10] == b'A' { b'B' } else { b'A' };
    let tampered = format!("{head}.{}", String::from_utf8(sig).unwrap());
    let tampered = CoreIdToken::from_str(&tampered).expect("still a well-formed JWT");
    let out = http().get(logout(&tampered).as_str()).send().await.unwrap();
    assert_eq!(out.status(), 200, "a bad hint identifies no client");
    assert!(out.headers().get("location").is_none(), "never redirected");

    // The genuine hint: the client is the hint's aud, no client_id needed.
    let url = logout(id_token);
    assert!(!url.as_str().contains("client_id="), "{url}");
    let out = browser.get(url.as_str()).await;
    assert_eq!(out.status, 303, "{}", out.html);
    assert_eq!(
        out.location(),
        Some(format!("{POST_LOGOUT}?state=s").as_str())
    );
    assert!(browser.cookie("tessera_session").is_none(), "session ended");
    let again = auth_request(&rp, &[], Some(CoreAuthPrompt::None), None);
    let page = browser.get(&again.url).await;
    refused_redirect(
        &server,
        page.location(),
        "login_required",
        again.state.secret(),
    );
}
