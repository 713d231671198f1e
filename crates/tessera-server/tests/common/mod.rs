//! A real Tessera server for integration tests: SQLite in a temp dir, a fresh RSA key,
//! port 0 on loopback, a clock the test can move, and a browser-like login helper.
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use async_trait::async_trait;
use tessera_cache::{
    CachingClientStore, LocalCache, RedisBus, RedisCache, RedisLink, RedisOptions,
    RevocationFollower, TieredCache,
};
use tessera_core::AuthorizationServer;
use tessera_core::StoreError;
use tessera_core::client::{Client, ClientStore, GrantType};
use tessera_core::key_schedule::KeyPolicy;
use tessera_core::policy::Policy;
use tessera_core::revocation::{Revocation, RevocationList, RevokedEntry};
use tessera_core::scope::ScopeSet;
use tessera_core::secret::SecretHash;
use tessera_core::time::{Clock, SystemClock, UnixTime};
use tessera_core::user::{self, User, UserProfile, UserStore};
use tessera_server::{AppState, HealthCheck};
use tessera_store::key_material::{KeyKind, ScheduledKeyRing};
use tessera_store::{MasterKey, OsRandom, SqliteStore};

/// A clock that starts at the real time and moves only when told.
#[derive(Debug)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    pub fn advance(&self, secs: i64) {
        self.0.fetch_add(secs, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> UnixTime {
        UnixTime(self.0.load(Ordering::SeqCst))
    }
}

struct AlwaysReady;

#[async_trait]
impl HealthCheck for AlwaysReady {
    async fn ready(&self) -> bool {
        true
    }
}

pub const SECRET: &str = "tss_test-secret-that-is-long-enough-0123456789";
pub const REDIRECT: &str = "http://127.0.0.1:8765/callback";
pub const AUDIENCE: &str = "https://api.example.test";
pub const PASSWORD: &str = "correct horse battery staple";
/// The post-logout redirect URI registered for `spa` and `partner`.
pub const POST_LOGOUT: &str = "http://127.0.0.1:8765/signed-out";

/// A change to the default policy.
pub type PolicyChange = Box<dyn FnOnce(&mut Policy)>;

/// How to start a test node.
#[derive(Default)]
pub struct Node<'a> {
    /// Share this node's database, issuer and clock: a second node of one deployment.
    pub share: Option<&'a TestServer>,
    /// Wire an in-process validation cache and revocation follower (polling every 100 ms).
    pub cache: bool,
    /// With `cache`: add the Redis tier and bus at this key prefix, and poll the revocation
    /// list only hourly, so that cross-node eviction has to come through Redis.
    pub redis_prefix: Option<String>,
    /// Adjust the policy.
    pub adjust: Option<PolicyChange>,
    /// The key schedule (default: 30-day rotation, 10 minutes ahead).
    pub key_policy: Option<KeyPolicy>,
    /// The kind of keys the node generates (default RS256, RSA-2048).
    pub key_kind: KeyKind,
    /// Put the client cache of `tessera serve` with this TTL in front of the node's client
    /// store. Off by default: the helpers below (and many tests) change clients straight in
    /// the database, as another process would, and expect every node to see it at once.
    pub client_cache: Option<std::time::Duration>,
}

/// The revocation list, counting how often the revocation status of a token is read.
struct CountingRevocations {
    inner: SqliteStore,
    reads: Arc<AtomicU64>,
}

#[async_trait]
impl RevocationList for CountingRevocations {
    async fn revoke_access_token(
        &self,
        jti: &str,
        expires_at: UnixTime,
        revocation: Revocation,
    ) -> Result<(), StoreError> {
        self.inner
            .revoke_access_token(jti, expires_at, revocation)
            .await
    }
    async fn is_access_token_revoked(&self, jti: &str) -> Result<bool, StoreError> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.inner.is_access_token_revoked(jti).await
    }
    async fn revoked_since(&self, after: i64, limit: u32) -> Result<Vec<RevokedEntry>, StoreError> {
        self.inner.revoked_since(after, limit).await
    }
    async fn latest_seq(&self) -> Result<i64, StoreError> {
        self.inner.latest_seq().await
    }
}

pub struct TestServer {
    pub base: String,
    /// The issuer (the first node's base URL).
    pub issuer: String,
    /// How often a token's revocation status was read from the store.
    pub revocation_reads: Arc<AtomicU64>,
    /// The node's key ring (tick it after moving the clock).
    pub ring: Arc<ScheduledKeyRing>,
    pub state: AppState,
    pub store: SqliteStore,
    pub clock: Arc<ManualClock>,
    _dir: Arc<tempfile::TempDir>,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

impl TestServer {
    /// Starts a server with a confidential client `svc` (client_credentials), a confidential
    /// web client `web` and a public client `spa` (both authorization_code and
    /// refresh_token), all first-party; a third-party public client `partner` (its users
    /// are asked for consent); and user `alice`. `spa` and `partner` have the post-logout
    /// redirect URI [`POST_LOGOUT`].
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// Like [`start`](Self::start), with the default policy adjusted by `adjust`.
    pub async fn start_with(adjust: impl FnOnce(&mut Policy) + 'static) -> Self {
        Self::start_node(Node {
            adjust: Some(Box::new(adjust)),
            ..Node::default()
        })
        .await
    }

    /// Starts a node as `node` describes.
    pub async fn start_node(node: Node<'_>) -> Self {
        let dir = match node.share {
            Some(other) => other._dir.clone(),
            None => Arc::new(tempfile::tempdir().unwrap()),
        };
        let url = format!("sqlite://{}/t.db", dir.path().display());
        let store = SqliteStore::open(&url).await.unwrap();
        let master =
            MasterKey::from_base64("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=").unwrap();
        // Nodes of one deployment share the wall clock.
        let clock = match node.share {
            Some(other) => other.clock.clone(),
            None => Arc::new(ManualClock(AtomicI64::new(SystemClock.now().0))),
        };
        let key_policy = node.key_policy.unwrap_or(KeyPolicy {
            rotation_interval: std::time::Duration::from_secs(30 * 86_400),
            publish_ahead: std::time::Duration::from_secs(600),
            token_lifetime: std::time::Duration::from_secs(900),
            leeway: std::time::Duration::from_secs(60),
        });
        let (ring, _) =
            ScheduledKeyRing::start(&store, master, node.key_kind, clock.clone(), key_policy)
                .await
                .unwrap();
        let ring = Arc::new(ring);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let mut ports = store.ports(ring.clone(), clock.clone(), Arc::new(OsRandom::default()));
        let revocation_reads = Arc::new(AtomicU64::new(0));
        ports.revocations = Arc::new(CountingRevocations {
            inner: store.clone(),
            reads: revocation_reads.clone(),
        });
        if node.cache {
            let ttl = std::time::Duration::from_secs(300);
            let link = node.redis_prefix.as_ref().map(|prefix| {
                let mut options = RedisOptions::new("redis://127.0.0.1:6379");
                options.prefix = prefix.clone();
                RedisLink::open(&options).unwrap()
            });
            let cache = Arc::new(TieredCache::new(
                LocalCache::new(1000, ttl),
                link.clone().map(|l| RedisCache::new(l, ttl)),
            ));
            let poll = match link {
                Some(_) => std::time::Duration::from_secs(3600),
                None => std::time::Duration::from_millis(100),
            };
            let (follower, _) =
                RevocationFollower::start(ports.revocations.clone(), cache.clone(), poll, |_| {})
                    .await
                    .unwrap();
            ports.cache = cache;
            ports.on_revocation = match link {
                Some(link) => {
                    let bus = RedisBus::new(link, follower);
                    bus.subscribe();
                    Arc::new(bus)
                }
                None => Arc::new(follower),
            };
        }
        if let Some(ttl) = node.client_cache {
            ports.clients = Arc::new(CachingClientStore::new(ports.clients.clone(), 1000, ttl));
        }
        let issuer = node
            .share
            .map_or(base.clone(), |other| other.issuer.clone());
        let mut policy = Policy::new(issuer.clone());
        if let Some(adjust) = node.adjust {
            adjust(&mut policy);
        }
        let server = Arc::new(AuthorizationServer::new(ports, policy));
        let state = AppState::new(server, Arc::new(AlwaysReady));
        let router = tessera_server::app(state.clone());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(tessera_server::serve(listener, router, async {
            let _ = rx.await;
        }));
        let s = Self {
            base,
            issuer,
            state,
            store,
            clock,
            revocation_reads,
            ring,
            _dir: dir,
            _shutdown: tx,
        };
        if node.share.is_some() {
            return s;
        }
        s.add_client("svc", Some(SECRET), &[GrantType::ClientCredentials], &[])
            .await;
        let code_and_refresh = [GrantType::AuthorizationCode, GrantType::RefreshToken];
        s.add_client("web", Some(SECRET), &code_and_refresh, &[REDIRECT])
            .await;
        s.add_client_with(Client {
            post_logout_redirect_uris: vec![POST_LOGOUT.into()],
            ..s.client_template("spa", None, &code_and_refresh, &[REDIRECT])
        })
        .await;
        s.add_client_with(Client {
            first_party: false,
            post_logout_redirect_uris: vec![POST_LOGOUT.into()],
            ..s.client_template("partner", None, &code_and_refresh, &[REDIRECT])
        })
        .await;
        s.add_user("alice", PASSWORD, &["admin", "billing"]).await;
        s
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Registers a first-party client (no consent page) with scopes `read write` and two
    /// audiences.
    pub async fn add_client(
        &self,
        id: &str,
        secret: Option<&str>,
        grants: &[GrantType],
        redirects: &[&str],
    ) {
        self.add_client_with(self.client_template(id, secret, grants, redirects))
            .await;
    }

    /// Registers `client` as it is.
    pub async fn add_client_with(&self, client: Client) {
        ClientStore::create(&self.store, &client).await.unwrap();
    }

    /// The client [`add_client`](Self::add_client) registers, to adjust before
    /// [`add_client_with`](Self::add_client_with).
    pub fn client_template(
        &self,
        id: &str,
        secret: Option<&str>,
        grants: &[GrantType],
        redirects: &[&str],
    ) -> Client {
        Client {
            id: id.into(),
            name: format!("{id} app"),
            secret_hash: secret.map(SecretHash::of),
            redirect_uris: redirects.iter().map(|s| s.to_string()).collect(),
            grant_types: grants.to_vec(),
            scopes: ScopeSet::from_tokens(["read", "write"]),
            audiences: vec![AUDIENCE.into(), "https://other.example.test".into()],
            access_token_ttl: None,
            refresh_token_ttl: None,
            first_party: true,
            post_logout_redirect_uris: Vec::new(),
            created_at: self.clock.now(),
        }
    }

    pub async fn add_user(&self, username: &str, password: &str, roles: &[&str]) {
        let u = User {
            id: format!("usr_{username}"),
            username: username.into(),
            password_hash: user::hash_password(password).unwrap(),
            roles: roles.iter().map(|s| s.to_string()).collect(),
            profile: UserProfile::default(),
            disabled: false,
            created_at: self.clock.now(),
        };
        UserStore::create(&self.store, &u).await.unwrap();
    }
}

/// A client-credentials access token for `svc`.
pub async fn service_token(server: &TestServer) -> String {
    let r = http()
        .post(server.url("/api/v2/auth/token"))
        .basic_auth("svc", Some(SECRET))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.unwrap();
    body["access_token"].as_str().unwrap().to_owned()
}

/// An HTTP client that does not follow redirects.
pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// The pluggable HTTP client of the `oauth2` crate (and of `openidconnect`, which uses the
/// same request and response types), over reqwest without redirects, as those crates require.
pub async fn oauth_http(
    request: oauth2::HttpRequest,
) -> Result<oauth2::HttpResponse, reqwest::Error> {
    let (parts, body) = request.into_parts();
    let response = http()
        .request(parts.method, parts.uri.to_string())
        .headers(parts.headers)
        .body(body)
        .send()
        .await?;
    let mut builder = oauth2::http::Response::builder().status(response.status());
    for (name, value) in response.headers() {
        builder = builder.header(name, value);
    }
    Ok(builder.body(response.bytes().await?.to_vec()).unwrap())
}

/// The value of `name="..." value="..."` hidden inputs in a login page.
pub fn hidden_inputs(html: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for piece in html.split("<input type=\"hidden\" ").skip(1) {
        let name = between(piece, "name=\"", "\"");
        let value = between(piece, "value=\"", "\"");
        if let (Some(n), Some(v)) = (name, value) {
            out.push((unescape(n), unescape(v)));
        }
    }
    out
}

fn between<'a>(s: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let i = s.find(start)? + start.len();
    let j = s[i..].find(end)? + i;
    Some(&s[i..j])
}

fn unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// The `name=value` part of every Set-Cookie header, joined for a Cookie header.
pub fn cookies_of(response: &reqwest::Response) -> String {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .collect::<Vec<_>>()
        .join("; ")
}

/// Query parameters of a URL.
pub fn query_of(url: &str) -> HashMap<String, String> {
    reqwest::Url::parse(url)
        .unwrap()
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// Plays the browser: opens `authorize_url`, submits the login form with these
/// credentials, and returns the `Location` the server redirected to.
pub async fn browser_login(authorize_url: &str, username: &str, password: &str) -> String {
    let http = http();
    let page = http.get(authorize_url).send().await.unwrap();
    assert_eq!(page.status(), 200, "login page expected");
    let cookie = cookies_of(&page);
    let html = page.text().await.unwrap();
    let mut form = hidden_inputs(&html);
    form.push(("username".into(), username.into()));
    form.push(("password".into(), password.into()));
    let action = reqwest::Url::parse(authorize_url).unwrap();
    let posted = http
        .post(action.as_str().split('?').next().unwrap())
        .header("cookie", cookie)
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), 303, "redirect after sign-in expected");
    posted.headers()["location"].to_str().unwrap().to_owned()
}

/// The PKCE verifier every test flow uses.
pub const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

/// Alice signs in through the public client `spa` (PKCE S256) with `scope` (the client's
/// default when empty); returns the token response, refresh token included.
pub async fn spa_tokens(server: &TestServer, scope: &str) -> serde_json::Value {
    use base64::Engine;
    use sha2::Digest;
    let challenge =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(VERIFIER));
    let scope = if scope.is_empty() {
        String::new()
    } else {
        format!("&scope={scope}")
    };
    let url = server.url(&format!(
        "/api/v2/auth/authorize?response_type=code&client_id=spa&redirect_uri={}\
         {scope}&code_challenge={challenge}&code_challenge_method=S256",
        url::form_urlencoded::byte_serialize(REDIRECT.as_bytes()).collect::<String>()
    ));
    redeem(
        server,
        "spa",
        None,
        &browser_login(&url, "alice", PASSWORD).await,
    )
    .await
}

/// Redeems the code in `location` (a redirect to [`REDIRECT`]) with [`VERIFIER`] for
/// `client_id`, authenticating with HTTP Basic when it has a `secret`; the token response,
/// which must be a success.
pub async fn redeem(
    server: &TestServer,
    client_id: &str,
    secret: Option<&str>,
    location: &str,
) -> serde_json::Value {
    let code = query_of(location)["code"].clone();
    let mut request = http().post(server.url("/api/v2/auth/token"));
    if let Some(secret) = secret {
        request = request.basic_auth(client_id, Some(secret));
    }
    let r = request
        .form(&[
            ("grant_type", "authorization_code"),
            ("client_id", client_id),
            ("code", code.as_str()),
            ("code_verifier", VERIFIER),
            ("redirect_uri", REDIRECT),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

/// Waits until `condition` holds, checking every 20 ms; fails the test after `limit`.
pub async fn eventually_async<F, Fut>(limit: std::time::Duration, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    while !condition().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not met in {limit:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// A response as a browser sees it.
#[derive(Debug)]
pub struct Page {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub html: String,
}

impl Page {
    /// The `Location` header, if any.
    pub fn location(&self) -> Option<&str> {
        self.headers.get("location").and_then(|v| v.to_str().ok())
    }

    /// Whether this is the login form.
    pub fn is_login(&self) -> bool {
        self.status == 200 && self.html.contains("action=\"/api/v2/auth/authorize\"")
    }

    /// Whether this is the consent page.
    pub fn is_consent(&self) -> bool {
        self.status == 200 && self.html.contains("action=\"/api/v2/auth/consent\"")
    }

    /// Every `Set-Cookie` header, whole.
    pub fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_owned))
            .collect()
    }
}

/// A browser with a cookie jar that does not follow redirects, for flows of several steps.
pub struct Browser {
    http: reqwest::Client,
    base: reqwest::Url,
    jar: std::collections::BTreeMap<String, String>,
}

impl Browser {
    pub fn new(server: &TestServer) -> Self {
        Self {
            http: http(),
            base: reqwest::Url::parse(&server.base).unwrap(),
            jar: Default::default(),
        }
    }

    /// The Cookie header the browser sends.
    pub fn cookie_header(&self) -> String {
        self.jar
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// The value of cookie `name`, if the browser holds it.
    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.jar.get(name).map(String::as_str)
    }

    /// Forgets every cookie (a new browser profile).
    pub fn clear_cookies(&mut self) {
        self.jar.clear();
    }

    async fn send(&mut self, request: reqwest::RequestBuilder) -> Page {
        let request = if self.jar.is_empty() {
            request
        } else {
            request.header("cookie", self.cookie_header())
        };
        let r = request.send().await.unwrap();
        for set in r.headers().get_all("set-cookie") {
            let set = set.to_str().unwrap();
            let pair = set.split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            if set.contains("Max-Age=0") || value.is_empty() {
                self.jar.remove(name);
            } else {
                self.jar.insert(name.to_owned(), value.to_owned());
            }
        }
        Page {
            status: r.status().as_u16(),
            headers: r.headers().clone(),
            html: r.text().await.unwrap(),
        }
    }

    fn resolve(&self, url: &str) -> reqwest::Url {
        self.base.join(url).unwrap()
    }

    /// `GET url` (absolute, or a path on the server).
    pub async fn get(&mut self, url: &str) -> Page {
        let request = self.http.get(self.resolve(url));
        self.send(request).await
    }

    /// `POST` of a form to `url`.
    pub async fn post(&mut self, url: &str, form: &[(String, String)]) -> Page {
        let request = self.http.post(self.resolve(url)).form(form);
        self.send(request).await
    }

    /// Follows a redirect to this server (as the browser would); anything else is returned.
    pub async fn follow_local(&mut self, page: Page) -> Page {
        match page.location() {
            Some(l) if page.status == 303 && l.starts_with('/') => {
                let l = l.to_owned();
                self.get(&l).await
            }
            _ => page,
        }
    }

    /// Opens `authorize_url` and, when the login form comes, signs in; returns the page after
    /// sign-in, following a redirect back to the authorization endpoint (to the consent page).
    pub async fn authorize(&mut self, authorize_url: &str, username: &str, password: &str) -> Page {
        let page = self.get(authorize_url).await;
        if !page.is_login() {
            return page;
        }
        let mut form = hidden_inputs(&page.html);
        form.push(("username".into(), username.into()));
        form.push(("password".into(), password.into()));
        let posted = self.post("/api/v2/auth/authorize", &form).await;
        self.follow_local(posted).await
    }

    /// Answers the consent page with `decision` (`approve` or `deny`).
    pub async fn decide(&mut self, consent: &Page, decision: &str) -> Page {
        assert!(
            consent.is_consent(),
            "consent page expected: {}",
            consent.html
        );
        let mut form = hidden_inputs(&consent.html);
        form.push(("decision".into(), decision.into()));
        self.post("/api/v2/auth/consent", &form).await
    }
}

/// Plays the browser through login and the consent page, approving: returns the `Location`
/// the server redirected to (the client's redirect URI with the code).
pub async fn browser_login_with_consent(
    server: &TestServer,
    authorize_url: &str,
    username: &str,
    password: &str,
) -> String {
    let mut browser = Browser::new(server);
    let page = browser.authorize(authorize_url, username, password).await;
    let done = browser.decide(&page, "approve").await;
    assert_eq!(done.status, 303, "redirect after consent expected");
    done.location().unwrap().to_owned()
}

/// A PKCE S256 challenge for [`VERIFIER`].
pub fn challenge() -> String {
    use base64::Engine;
    use sha2::Digest;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(VERIFIER))
}

/// An authorization URL for `client_id` with `state=xyz`, the PKCE challenge of
/// [`VERIFIER`] and `scope` (omitted when empty).
pub fn authorize_url_for(server: &TestServer, client_id: &str, scope: &str) -> String {
    let mut url = reqwest::Url::parse(&server.url("/api/v2/auth/authorize")).unwrap();
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("response_type", "code")
            .append_pair("client_id", client_id)
            .append_pair("redirect_uri", REDIRECT)
            .append_pair("state", "xyz")
            .append_pair("code_challenge", &challenge())
            .append_pair("code_challenge_method", "S256");
        if !scope.is_empty() {
            q.append_pair("scope", scope);
        }
    }
    url.into()
}
