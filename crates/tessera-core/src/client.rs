//! OAuth clients, their registration and their authentication (RFC 6749 §2).

use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use async_trait::async_trait;
use url::{Host, Url};

use crate::error::{OAuthError, StoreError};
use crate::scope::ScopeSet;
use crate::secret::SecretHash;
use crate::time::UnixTime;

/// A grant type a client may be allowed to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GrantType {
    /// RFC 6749 §4.1, with PKCE.
    AuthorizationCode,
    /// RFC 6749 §6.
    RefreshToken,
    /// RFC 6749 §4.4.
    ClientCredentials,
}

impl GrantType {
    /// Every grant type, in the order they are advertised.
    pub const ALL: [GrantType; 3] = [
        GrantType::AuthorizationCode,
        GrantType::RefreshToken,
        GrantType::ClientCredentials,
    ];

    /// The registered `grant_type` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AuthorizationCode => "authorization_code",
            Self::RefreshToken => "refresh_token",
            Self::ClientCredentials => "client_credentials",
        }
    }

    /// Parses a registered `grant_type` value.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|g| g.as_str() == s)
    }
}

/// A registered client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    /// The `client_id`.
    pub id: String,
    /// A display name for login pages and listings.
    pub name: String,
    /// Hash of the client secret; `None` for a public client (RFC 6749 §2.1).
    pub secret_hash: Option<SecretHash>,
    /// Registered redirect URIs, matched exactly (loopback IP URIs on any port, see
    /// [`Client::has_redirect_uri`]).
    pub redirect_uris: Vec<String>,
    /// Grant types this client may use.
    pub grant_types: Vec<GrantType>,
    /// Scopes this client may request.
    pub scopes: ScopeSet,
    /// Audiences (RFC 8707 resources) tokens for this client may name; the first is the default.
    pub audiences: Vec<String>,
    /// This client's lifetime of access tokens; `None` for the server's
    /// [`Policy::access_token_ttl`](crate::policy::Policy::access_token_ttl). Within
    /// [`ACCESS_TOKEN_TTL_BOUNDS`](crate::policy::ACCESS_TOKEN_TTL_BOUNDS).
    pub access_token_ttl: Option<Duration>,
    /// This client's lifetime of each refresh token; `None` for the server's
    /// [`Policy::refresh_token_ttl`](crate::policy::Policy::refresh_token_ttl). Within
    /// [`REFRESH_TOKEN_TTL_BOUNDS`](crate::policy::REFRESH_TOKEN_TTL_BOUNDS). The family's
    /// absolute lifetime stays the server's.
    pub refresh_token_ttl: Option<Duration>,
    /// An application of the operator itself: its users are not asked for consent
    /// ([`consent`](crate::consent)).
    pub first_party: bool,
    /// Where the browser may be sent back after signing out, matched exactly
    /// ([`end_session`](crate::end_session)).
    pub post_logout_redirect_uris: Vec<String>,
    /// When the client was registered.
    pub created_at: UnixTime,
}

impl Client {
    /// Whether this is a public client (no secret, RFC 6749 §2.1).
    pub fn is_public(&self) -> bool {
        self.secret_hash.is_none()
    }

    /// Whether the client may use `grant`.
    pub fn allows(&self, grant: GrantType) -> bool {
        self.grant_types.contains(&grant)
    }

    /// Whether `uri` is registered: by exact string comparison (RFC 9700 §2.1, §4.1.3), with
    /// the one exception RFC 8252 §7.3 makes: a loopback IP redirect URI may name any port.
    pub fn has_redirect_uri(&self, uri: &str) -> bool {
        self.redirect_uris
            .iter()
            .any(|registered| redirect_uri_matches(registered, uri))
    }

    /// Whether `uri` is a registered post-logout redirect URI, by exact string comparison
    /// (OpenID Connect RP-Initiated Logout 1.0 §3; no loopback port exception).
    pub fn has_post_logout_redirect_uri(&self, uri: &str) -> bool {
        self.post_logout_redirect_uris.iter().any(|r| r == uri)
    }

    /// The audience for a token: the requested resource if registered (RFC 8707 §2), else the
    /// client's default audience, else `fallback` (the issuer).
    pub fn audience(&self, resource: Option<&str>, fallback: &str) -> Result<String, OAuthError> {
        match resource {
            Some(r) if self.audiences.iter().any(|a| a == r) => Ok(r.to_owned()),
            Some(_) => Err(OAuthError::InvalidTarget(
                "the resource is not registered for this client",
            )),
            None => Ok(self
                .audiences
                .first()
                .cloned()
                .unwrap_or_else(|| fallback.to_owned())),
        }
    }
}

/// Whether a requested redirect URI matches a registered one.
///
/// Simple string comparison (RFC 6749 §3.1.2.3, RFC 9700 §4.1.3), except that when both are
/// loopback IP redirect URIs (`http://127.0.0.1` or `http://[::1]`, RFC 8252 §7.3) the port
/// may differ, or be absent on either side. Everything else must still be byte-identical;
/// `localhost` gets no exception (RFC 8252 §8.3).
fn redirect_uri_matches(registered: &str, requested: &str) -> bool {
    if registered == requested {
        return true;
    }
    match (
        LoopbackUri::split(registered),
        LoopbackUri::split(requested),
    ) {
        (Some(r), Some(q)) => {
            // The raw texts around the port decide; the parsed components must agree too,
            // so neither our split nor the `url` crate's normalisation can widen a match.
            r.host == q.host
                && r.rest == q.rest
                && r.url.host() == q.url.host()
                && r.url.path() == q.url.path()
                && r.url.query() == q.url.query()
        }
        _ => false,
    }
}

/// A loopback IP redirect URI (RFC 8252 §7.3), split around its port.
struct LoopbackUri<'a> {
    /// The host exactly as written: `127.0.0.1` or `[::1]`.
    host: &'a str,
    /// Everything after the authority (path, query), exactly as written.
    rest: &'a str,
    /// The parsed URI, which has been checked to agree with the split.
    url: Url,
}

impl<'a> LoopbackUri<'a> {
    /// Splits `uri` if it is, as written, `http://` + a loopback IP literal + an optional
    /// `:port` (1-65535, decimal digits, no leading zero) + the rest, with no userinfo and
    /// no fragment, and the `url` crate reads it the same way. Anything else (`HTTP://`,
    /// `localhost`, `127.1`, `[0:0::1]`, userinfo, an empty or odd port) is `None` and is
    /// left to exact matching.
    fn split(uri: &'a str) -> Option<Self> {
        let after_scheme = uri.strip_prefix("http://")?;
        let end = after_scheme
            .find(['/', '?', '#'])
            .unwrap_or(after_scheme.len());
        let (authority, rest) = after_scheme.split_at(end);
        if rest.contains('#') {
            return None;
        }
        let (host, expected) = [
            ("127.0.0.1", Host::Ipv4(Ipv4Addr::LOCALHOST)),
            ("[::1]", Host::Ipv6(Ipv6Addr::LOCALHOST)),
        ]
        .into_iter()
        .find(|(h, _)| authority.starts_with(h))?;
        let port = match &authority[host.len()..] {
            "" => 80,
            port => parse_port(port.strip_prefix(':')?)?,
        };
        let url = Url::parse(uri).ok()?;
        let agrees = url.scheme() == "http"
            && url.host() == Some(expected)
            && url.port_or_known_default() == Some(port)
            && url.username().is_empty()
            && url.password().is_none()
            && url.fragment().is_none();
        agrees.then_some(Self { host, rest, url })
    }
}

/// A port as a loopback redirect URI may write it: 1-65535 in plain decimal digits.
fn parse_port(text: &str) -> Option<u16> {
    let canonical = (1..=5).contains(&text.len())
        && text.bytes().all(|b| b.is_ascii_digit())
        && !text.starts_with('0');
    canonical.then(|| text.parse().ok()).flatten()
}

/// Credentials a client presented at the token endpoint (RFC 6749 §2.3.1).
pub enum ClientCredentials {
    /// `Authorization: Basic` (`client_secret_basic`).
    Basic {
        /// The decoded client id.
        id: String,
        /// The decoded client secret.
        secret: String,
    },
    /// `client_id` and `client_secret` in the form body (`client_secret_post`).
    Post {
        /// The client id.
        id: String,
        /// The client secret.
        secret: String,
    },
    /// Only a `client_id`: a public client (`none`).
    None {
        /// The client id.
        id: String,
    },
}

impl std::fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (method, id) = match self {
            Self::Basic { id, .. } => ("basic", id),
            Self::Post { id, .. } => ("post", id),
            Self::None { id } => ("none", id),
        };
        write!(f, "ClientCredentials::{method}({id})")
    }
}

/// Proof that the client behind a request authenticated (or is a public client that
/// identified itself). Only [`authenticate`] makes one; minting tokens requires it.
#[derive(Debug)]
pub struct AuthenticatedClient(Client);

impl AuthenticatedClient {
    /// The authenticated client.
    pub fn client(&self) -> &Client {
        &self.0
    }
}

/// A fixed hash to compare against when the client is unknown, so both paths take the
/// same time and an attacker cannot enumerate client ids.
const DUMMY: SecretHash = SecretHash([0x5a; 32]);

/// Authenticates a client (RFC 6749 §2.3, §3.2.1).
pub async fn authenticate(
    store: &dyn ClientStore,
    credentials: ClientCredentials,
) -> Result<AuthenticatedClient, OAuthError> {
    let (id, secret, basic) = match &credentials {
        ClientCredentials::Basic { id, secret } => (id, Some(secret.as_str()), true),
        ClientCredentials::Post { id, secret } => (id, Some(secret.as_str()), false),
        ClientCredentials::None { id } => (id, None, false),
    };
    let fail = OAuthError::InvalidClient { basic };
    let client = store.find(id).await?;
    match (client, secret) {
        (Some(client), Some(secret)) => match client.secret_hash {
            Some(hash) if hash.matches(secret) => Ok(AuthenticatedClient(client)),
            // A public client has no secret to present: a secret is a misconfiguration.
            _ => Err(fail),
        },
        // RFC 6749 §3.2.1: confidential clients MUST authenticate.
        (Some(client), None) if client.is_public() => Ok(AuthenticatedClient(client)),
        (Some(_), None) => Err(fail),
        (None, secret) => {
            let _ = DUMMY.matches(secret.unwrap_or_default());
            Err(fail)
        }
    }
}

/// Storage of registered clients.
///
/// Contract: ids are unique; `create` of an existing id returns `StoreError::Conflict` and
/// changes nothing.
#[async_trait]
pub trait ClientStore: Send + Sync {
    /// Registers a new client.
    async fn create(&self, client: &Client) -> Result<(), StoreError>;
    /// The client with this id, if any.
    async fn find(&self, id: &str) -> Result<Option<Client>, StoreError>;
    /// All clients, ordered by id.
    async fn list(&self) -> Result<Vec<Client>, StoreError>;
    /// Replaces the secret hash of an existing client; `false` if there is no such client.
    async fn set_secret(&self, id: &str, secret: SecretHash) -> Result<bool, StoreError>;
    /// Replaces both token-lifetime overrides of an existing client (`None` clears one, so the
    /// server's global value applies); `false` if there is no such client.
    async fn set_token_lifetimes(
        &self,
        id: &str,
        access_token_ttl: Option<Duration>,
        refresh_token_ttl: Option<Duration>,
    ) -> Result<bool, StoreError>;
    /// Marks an existing client first-party or not; `false` if there is no such client.
    async fn set_first_party(&self, id: &str, first_party: bool) -> Result<bool, StoreError>;
    /// Deletes a client; `false` if there was no such client.
    async fn delete(&self, id: &str) -> Result<bool, StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_uri_matching() {
        const V4: &str = "http://127.0.0.1/callback";
        const V4_PORT: &str = "http://127.0.0.1:8765/callback";
        const V6: &str = "http://[::1]/callback";
        const LOCALHOST: &str = "http://localhost/callback";
        const HTTPS: &str = "https://app.example/cb";
        #[rustfmt::skip]
        let cases: &[(&str, &str, &str, bool)] = &[
            // Accepted.
            ("exact loopback", V4, V4, true),
            ("loopback, ephemeral port", V4, "http://127.0.0.1:53682/callback", true),
            ("loopback, port 80 written out", V4, "http://127.0.0.1:80/callback", true),
            ("loopback, highest port", V4, "http://127.0.0.1:65535/callback", true),
            ("registered with a port, other port", V4_PORT, "http://127.0.0.1:53682/callback", true),
            ("registered with a port, none sent", V4_PORT, V4, true),
            ("IPv6 loopback, ephemeral port", V6, "http://[::1]:61023/callback", true),
            ("loopback without a path", "http://127.0.0.1", "http://127.0.0.1:5000", true),
            ("loopback with a query", "http://127.0.0.1/cb?x=1", "http://127.0.0.1:5000/cb?x=1", true),
            ("exact https", HTTPS, HTTPS, true),
            ("exact localhost", LOCALHOST, LOCALHOST, true),
            ("exact private-use scheme", "com.example.app:/oauth", "com.example.app:/oauth", true),
            // Refused: not the registered URI on another port.
            ("localhost gets no port exception", LOCALHOST, "http://localhost:53682/callback", false),
            ("non-loopback port", HTTPS, "https://app.example:8443/cb", false),
            ("non-loopback http port", "http://app.example/cb", "http://app.example:8080/cb", false),
            ("loopback https", "https://127.0.0.1/callback", "https://127.0.0.1:53682/callback", false),
            ("https requested for http", V4, "https://127.0.0.1:53682/callback", false),
            ("uppercase scheme", V4, "HTTP://127.0.0.1:53682/callback", false),
            ("uppercase scheme registered", "HTTP://127.0.0.1/callback", "HTTP://127.0.0.1:53682/callback", false),
            ("IPv4 registered, IPv6 sent", V4, "http://[::1]:53682/callback", false),
            ("IPv6 registered, IPv4 sent", V6, "http://127.0.0.1:53682/callback", false),
            ("localhost for the IP literal", V4, "http://localhost:53682/callback", false),
            ("userinfo then another host", V4, "http://127.0.0.1:80@evil.com/callback", false),
            ("userinfo before loopback", V4, "http://user@127.0.0.1:53682/callback", false),
            ("userinfo with password", V4, "http://u:p@127.0.0.1:53682/callback", false),
            ("loopback as a subdomain", V4, "http://127.0.0.1.evil.com/callback", false),
            ("loopback as a subdomain with port", V4, "http://127.0.0.1.evil.com:53682/callback", false),
            ("port out of range", V4, "http://127.0.0.1:99999/callback", false),
            ("port 65536", V4, "http://127.0.0.1:65536/callback", false),
            ("port 0", V4, "http://127.0.0.1:0/callback", false),
            ("empty port", V4, "http://127.0.0.1:/callback", false),
            ("hex port", V4, "http://127.0.0.1:0x50/callback", false),
            ("leading zero port", V4, "http://127.0.0.1:053682/callback", false),
            ("signed port", V4, "http://127.0.0.1:+5368/callback", false),
            ("tab inside the port", V4, "http://127.0.0.1:536\t82/callback", false),
            ("short IPv4 form", V4, "http://127.1:53682/callback", false),
            ("hex IPv4 form", V4, "http://0x7f.0.0.1:53682/callback", false),
            ("decimal IPv4 form", V4, "http://2130706433:53682/callback", false),
            ("long IPv6 form", V6, "http://[0:0:0:0:0:0:0:1]:53682/callback", false),
            ("percent-encoded host", V4, "http://127.0.0.%31:53682/callback", false),
            ("fragment", V4, "http://127.0.0.1:53682/callback#x", false),
            ("empty fragment", V4, "http://127.0.0.1:53682/callback#", false),
            ("other path", V4, "http://127.0.0.1:53682/other", false),
            ("path case", V4, "http://127.0.0.1:53682/Callback", false),
            ("trailing slash", V4, "http://127.0.0.1:53682/callback/", false),
            ("path prefix", V4, "http://127.0.0.1:53682/callback/x", false),
            ("dot segments", V4, "http://127.0.0.1:53682/x/../callback", false),
            ("percent-encoded path", V4, "http://127.0.0.1:53682/%63allback", false),
            ("backslash path", V4, "http://127.0.0.1:53682\\callback", false),
            ("added query", V4, "http://127.0.0.1:53682/callback?x=1", false),
            ("empty query", V4, "http://127.0.0.1:53682/callback?", false),
            ("missing path", V4, "http://127.0.0.1:53682", false),
            ("trailing space", V4, "http://127.0.0.1:53682/callback ", false),
            ("leading space", V4, " http://127.0.0.1:53682/callback", false),
        ];
        for (name, registered, requested, expected) in cases {
            assert_eq!(
                redirect_uri_matches(registered, requested),
                *expected,
                "{name}: {registered} vs {requested}"
            );
        }
    }

    #[test]
    fn has_redirect_uri_checks_every_registered_uri() {
        let client = Client {
            id: "cli".into(),
            name: "cli".into(),
            secret_hash: None,
            redirect_uris: vec![
                "https://app.example/cb".into(),
                "http://127.0.0.1/callback".into(),
            ],
            grant_types: vec![GrantType::AuthorizationCode],
            scopes: ScopeSet::from_tokens(["read"]),
            audiences: Vec::new(),
            access_token_ttl: None,
            refresh_token_ttl: None,
            first_party: false,
            post_logout_redirect_uris: vec!["https://app.example/bye".into()],
            created_at: UnixTime(0),
        };
        assert!(client.has_redirect_uri("https://app.example/cb"));
        assert!(client.has_redirect_uri("http://127.0.0.1:53682/callback"));
        assert!(!client.has_redirect_uri("https://app.example:8443/cb"));
        assert!(!client.has_redirect_uri("http://127.0.0.1:53682/cb"));
        assert!(client.has_post_logout_redirect_uri("https://app.example/bye"));
        assert!(!client.has_post_logout_redirect_uri("https://app.example/bye/"));
        assert!(!client.has_post_logout_redirect_uri("https://app.example/cb"));
    }
}
