//! OAuth clients, their registration and their authentication (RFC 6749 §2).

use async_trait::async_trait;

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
    /// Registered redirect URIs, matched exactly.
    pub redirect_uris: Vec<String>,
    /// Grant types this client may use.
    pub grant_types: Vec<GrantType>,
    /// Scopes this client may request.
    pub scopes: ScopeSet,
    /// Audiences (RFC 8707 resources) tokens for this client may name; the first is the default.
    pub audiences: Vec<String>,
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

    /// Whether `uri` is registered, by exact string comparison (RFC 9700 §4.1.3).
    pub fn has_redirect_uri(&self, uri: &str) -> bool {
        self.redirect_uris.iter().any(|r| r == uri)
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
    /// Deletes a client; `false` if there was no such client.
    async fn delete(&self, id: &str) -> Result<bool, StoreError>;
}
