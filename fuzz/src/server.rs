//! A real Tessera server for the fuzz targets: the axum router of `tessera-server` on an
//! `AuthorizationServer` over SQLite (a file in a temporary directory: `run.sh` points
//! `TMPDIR` at tmpfs and removes it afterwards), a fresh RS256 key, the system clock, driven
//! in-process with `tower::ServiceExt::oneshot` (no socket).
//!
//! Registered: `svc` (confidential, client credentials), `web` (confidential, code and
//! refresh), `spa` (public, code and refresh), `partner` (public, third party: consent),
//! and the user `alice`.
//!
//! Inputs may carry placeholders that are replaced by secrets minted through the real
//! server just before the request is sent (see [`TestServer::expand`]), so that the fuzzer
//! reaches code exchange, rotation and introspection of live tokens, which it could never
//! guess.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Request, StatusCode};
use tessera_core::AuthorizationServer;
use tessera_core::client::{Client, ClientStore, GrantType};
use tessera_core::key_schedule::KeyPolicy;
use tessera_core::params::Params;
use tessera_core::policy::Policy;
use tessera_core::scope::ScopeSet;
use tessera_core::secret::SecretHash;
use tessera_core::server::LoginAttempt;
use tessera_core::session::Session;
use tessera_core::time::{Clock, SystemClock};
use tessera_core::user::{self, User, UserProfile, UserStore};
use tessera_server::{AppState, HealthCheck};
use tessera_store::key_material::{KeyKind, ScheduledKeyRing};
use tessera_store::{MasterKey, OsRandom, SqliteStore};
use tower::ServiceExt;

/// The server's issuer.
pub const ISSUER: &str = "https://tessera.fuzz.test";
/// The secret of `svc` and `web`.
pub const SECRET: &str = "tss_fuzz-secret-that-is-long-enough-0123456789";
/// A loopback redirect URI of `web`, `spa` and `partner`.
pub const REDIRECT: &str = "http://127.0.0.1:8765/callback";
/// An https redirect URI of `web`, with a query of its own.
pub const HTTPS_REDIRECT: &str = "https://app.fuzz.test/cb?x=1";
/// A private-use redirect URI of `partner` (RFC 8252 §7.1).
pub const NATIVE_REDIRECT: &str = "com.example.app:/oauth";
/// The default audience of every client.
pub const AUDIENCE: &str = "https://api.fuzz.test";
/// The second audience of every client.
pub const OTHER_AUDIENCE: &str = "https://other.fuzz.test";
/// `alice`'s password.
pub const PASSWORD: &str = "correct horse battery staple";
/// The PKCE verifier of every code the harness mints (RFC 7636 §4.1: 43-128 unreserved).
pub const VERIFIER: &str = "fuzz-verifier-0123456789abcdefghijklmnopqrstuvwxyz";

/// Placeholder for a fresh authorization code of `spa` for [`REDIRECT`] (PKCE:
/// [`VERIFIER`], scope `read write`).
pub const CODE: &[u8] = b"@CODE@";
/// Placeholder for a fresh authorization code of `web` for [`HTTPS_REDIRECT`].
pub const WEB_CODE: &[u8] = b"@WEBCODE@";
/// Placeholder for a fresh refresh token of `spa`.
pub const REFRESH: &[u8] = b"@RT@";
/// Placeholder for a fresh access token of `alice`, issued to `spa`.
pub const USER_ACCESS: &[u8] = b"@UAT@";
/// Placeholder for a fresh client-credentials access token of `svc`.
pub const CLIENT_ACCESS: &[u8] = b"@AT@";

/// At most this many placeholders are expanded per input (each costs a signature or a
/// database write).
const MAX_EXPANSIONS: usize = 4;

struct AlwaysReady;

#[async_trait]
impl HealthCheck for AlwaysReady {
    async fn ready(&self) -> bool {
        true
    }
}

/// An HTTP answer, read whole.
#[derive(Debug)]
pub struct Answer {
    /// The status.
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The body.
    pub body: Bytes,
}

/// The server under test.
pub struct TestServer {
    /// The application router, as `tessera serve` serves it.
    pub router: Router,
    /// The domain behind it.
    pub server: Arc<AuthorizationServer>,
    /// `Cookie` header value of a signed-in session of `alice`.
    pub session_cookie: String,
    /// `Cookie` header value of a session id the server never issued.
    pub unknown_session_cookie: String,
    session: Session,
    /// Every token and code the harness minted (for "only what was issued is active").
    issued: Mutex<HashSet<String>>,
    _dir: tempfile::TempDir,
}

/// The process's server, started on first use (outside any `block_on`).
pub fn test_server() -> &'static TestServer {
    static SERVER: OnceLock<TestServer> = OnceLock::new();
    SERVER.get_or_init(|| crate::block_on(TestServer::start()))
}

impl TestServer {
    async fn start() -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let url = format!("sqlite://{}/tessera.db", dir.path().display());
        let store = SqliteStore::open(&url).await.expect("SQLite opens");
        let master = MasterKey::from_base64("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")
            .expect("a master key");
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let key_policy = KeyPolicy {
            rotation_interval: Duration::from_secs(30 * 86_400),
            publish_ahead: Duration::from_secs(600),
            token_lifetime: Duration::from_secs(900),
            leeway: Duration::from_secs(60),
        };
        let (ring, _) = ScheduledKeyRing::start(
            &store,
            master,
            KeyKind::default(),
            clock.clone(),
            key_policy,
        )
        .await
        .expect("a signing key");
        let ports = store.ports(Arc::new(ring), clock.clone(), Arc::new(OsRandom::default()));
        let server = Arc::new(AuthorizationServer::new(ports, Policy::new(ISSUER)));
        let state = AppState::new(server.clone(), Arc::new(AlwaysReady));
        let router = tessera_server::app(state.clone());

        let now = clock.now();
        let client = |id: &str, secret: bool, grants: &[GrantType], redirects: &[&str]| Client {
            id: id.into(),
            name: format!("{id} app"),
            secret_hash: secret.then(|| SecretHash::of(SECRET)),
            redirect_uris: redirects.iter().map(|s| s.to_string()).collect(),
            grant_types: grants.to_vec(),
            // OpenID Connect too, so that `nonce`, `prompt` and `max_age` are reached.
            scopes: ScopeSet::from_tokens(["read", "write", "openid", "profile", "email"]),
            audiences: vec![AUDIENCE.into(), OTHER_AUDIENCE.into()],
            access_token_ttl: None,
            refresh_token_ttl: None,
            first_party: true,
            post_logout_redirect_uris: Vec::new(),
            created_at: now,
        };
        let code_and_refresh = [GrantType::AuthorizationCode, GrantType::RefreshToken];
        let clients = [
            client("svc", true, &[GrantType::ClientCredentials], &[]),
            client("web", true, &code_and_refresh, &[REDIRECT, HTTPS_REDIRECT]),
            client("spa", false, &code_and_refresh, &[REDIRECT]),
            Client {
                first_party: false,
                ..client(
                    "partner",
                    false,
                    &code_and_refresh,
                    &[REDIRECT, NATIVE_REDIRECT],
                )
            },
        ];
        for c in &clients {
            ClientStore::create(&store, c).await.expect("client stored");
        }
        let alice = User {
            id: "usr_alice".into(),
            username: "alice".into(),
            password_hash: user::hash_password(PASSWORD).expect("Argon2"),
            roles: vec!["admin".into(), "billing".into()],
            profile: UserProfile::default(),
            disabled: false,
            created_at: now,
        };
        UserStore::create(&store, &alice)
            .await
            .expect("user stored");
        let signed_in = server
            .sign_in(&LoginAttempt {
                username: "alice",
                password: PASSWORD,
                client_id: "spa",
                ip: None,
            })
            .await
            .unwrap_or_else(|_| panic!("alice signs in"));
        let session_cookie = format!("{}={}", state.cookies.session_name(), signed_in.id);
        let unknown_session_cookie =
            format!("{}=tsn_unknown; other=1", state.cookies.session_name());
        Self {
            router,
            server,
            session_cookie,
            unknown_session_cookie,
            session: signed_in.session,
            issued: Mutex::new(HashSet::new()),
            _dir: dir,
        }
    }

    /// Sends `request` through the router and reads the whole answer.
    pub async fn send(&self, request: Request<Body>) -> Answer {
        let response = self
            .router
            .clone()
            .oneshot(request)
            .await
            .unwrap_or_else(|never| match never {});
        let (parts, body) = response.into_parts();
        let body = axum::body::to_bytes(body, usize::MAX)
            .await
            .expect("a response body is readable");
        Answer {
            status: parts.status,
            headers: parts.headers,
            body,
        }
    }

    /// Whether the harness minted `token` (an access or refresh token, or a code).
    pub fn was_issued(&self, token: &str) -> bool {
        self.issued
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(token)
    }

    fn remember(&self, token: &str) {
        self.issued
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(token.to_owned());
    }

    /// Replaces placeholders ([`CODE`], [`WEB_CODE`], [`REFRESH`], [`USER_ACCESS`],
    /// [`CLIENT_ACCESS`]) in `input` by freshly minted secrets, at most a few per input;
    /// also says how many were replaced.
    pub async fn expand(&self, input: &[u8]) -> (Vec<u8>, usize) {
        let placeholders = [CODE, WEB_CODE, REFRESH, USER_ACCESS, CLIENT_ACCESS];
        let mut out = Vec::with_capacity(input.len());
        let mut rest = input;
        let mut expansions = 0;
        while expansions < MAX_EXPANSIONS {
            let next = placeholders
                .iter()
                .filter_map(|p| find(rest, p).map(|at| (at, *p)))
                .min_by_key(|(at, _)| *at);
            let Some((at, placeholder)) = next else {
                break;
            };
            out.extend_from_slice(&rest[..at]);
            out.extend_from_slice(self.mint(placeholder).await.as_bytes());
            rest = &rest[at + placeholder.len()..];
            expansions += 1;
        }
        out.extend_from_slice(rest);
        (out, expansions)
    }

    async fn mint(&self, placeholder: &[u8]) -> String {
        let minted = match placeholder {
            CODE => self.code("spa", REDIRECT).await,
            WEB_CODE => self.code("web", HTTPS_REDIRECT).await,
            REFRESH => self.user_tokens().await.1,
            USER_ACCESS => self.user_tokens().await.0,
            _ => self.client_access_token().await,
        };
        self.remember(&minted);
        minted
    }

    /// A fresh code of `client_id` for `redirect_uri`, through the core as the
    /// authorization endpoint issues it.
    pub async fn code(&self, client_id: &str, redirect_uri: &str) -> String {
        let challenge = crate::checks::s256(VERIFIER);
        let params = Params::from_pairs([
            ("response_type", "code"),
            ("client_id", client_id),
            ("redirect_uri", redirect_uri),
            ("scope", "read write"),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
        ]);
        let request = self
            .server
            .authorization_request(&params)
            .await
            .unwrap_or_else(|e| panic!("the harness's authorization request is valid: {e:?}"));
        let location = self
            .server
            .issue_code(&request, &self.session)
            .await
            .expect("a code is issued");
        let url = url::Url::parse(&location).expect("the redirect parses");
        let code = url
            .query_pairs()
            .find(|(k, _)| k == "code")
            .map(|(_, v)| v.into_owned())
            .expect("the redirect carries the code");
        self.remember(&code);
        code
    }

    /// A fresh (access token, refresh token) pair of `alice` for `spa`, from a code
    /// exchange through the core.
    pub async fn user_tokens(&self) -> (String, String) {
        let code = self.code("spa", REDIRECT).await;
        let params = Params::from_pairs([
            ("grant_type", "authorization_code"),
            ("client_id", "spa"),
            ("code", code.as_str()),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
        ]);
        let issued = self
            .server
            .token(&params, None)
            .await
            .unwrap_or_else(|e| panic!("the harness's code exchange succeeds: {e:?}"));
        let refresh = issued.refresh_token.expect("a refresh token");
        self.remember(&issued.access_token);
        self.remember(&refresh);
        (issued.access_token, refresh)
    }

    /// A fresh client-credentials access token of `svc`.
    pub async fn client_access_token(&self) -> String {
        let params = Params::from_pairs([("grant_type", "client_credentials")]);
        let issued = self
            .server
            .token(&params, Some(("svc".into(), SECRET.into())))
            .await
            .unwrap_or_else(|e| panic!("the harness's client credentials grant succeeds: {e:?}"));
        self.remember(&issued.access_token);
        issued.access_token
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
