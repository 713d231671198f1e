//! [`AuthorizationServer`]: the ports wired together, with one entry point per endpoint.

use std::sync::{Arc, RwLock};

use crate::audit;
use crate::authorization_code::{CODE_PREFIX, CodeRecord, CodeStore};
use crate::authorize::{self, AuthorizationRequest, AuthorizeError};
use crate::client::{self, AuthenticatedClient, ClientCredentials, ClientStore, GrantType};
use crate::consent::ConsentStore;
use crate::error::OAuthError;
use crate::grant::{self, TokenResponse};
use crate::introspection::{self, Introspection, ValidationCache};
use crate::keys::{Jwks, KeyRing};
use crate::login_throttle::LoginThrottle;
use crate::params::Params;
use crate::policy::Policy;
use crate::random::SecureRandom;
use crate::rate_limit::TokenRateLimiter;
use crate::refresh_family::RefreshStore;
use crate::revocation::{RevocationList, RevocationListener, RevocationReason};
use crate::revoke::{self, Revoked};
use crate::secret::{self, SecretHash};
use crate::session::{Session, SessionStore};
pub use crate::sign_in::{LoginAttempt, SignInError};
use crate::time::Clock;
use crate::user::{User, UserStore};

/// Prefix of browser session ids.
pub(crate) const SESSION_PREFIX: &str = "tsn_";

/// The adapters the domain runs on.
#[derive(Clone)]
pub struct Ports {
    /// Registered clients.
    pub clients: Arc<dyn ClientStore>,
    /// User accounts.
    pub users: Arc<dyn UserStore>,
    /// Authorization codes.
    pub codes: Arc<dyn CodeStore>,
    /// Browser sessions.
    pub sessions: Arc<dyn SessionStore>,
    /// Users' consents to third-party clients.
    pub consents: Arc<dyn ConsentStore>,
    /// Refresh-token families.
    pub refresh: Arc<dyn RefreshStore>,
    /// The access-token revocation list.
    pub revocations: Arc<dyn RevocationList>,
    /// Told after every committed revocation.
    pub on_revocation: Arc<dyn RevocationListener>,
    /// The validation cache of introspection.
    pub cache: Arc<dyn ValidationCache>,
    /// Signing keys.
    pub keys: Arc<dyn KeyRing>,
    /// The clock.
    pub clock: Arc<dyn Clock>,
    /// The CSPRNG.
    pub random: Arc<dyn SecureRandom>,
}

/// A browser session just started: the id goes into the cookie, nowhere else.
pub struct NewSession {
    /// The session id for the cookie.
    pub id: String,
    /// The stored session.
    pub session: Session,
}

/// The authorization server.
pub struct AuthorizationServer {
    ports: Ports,
    /// Replaced whole on a configuration reload; each request works with one snapshot.
    policy: RwLock<Arc<Policy>>,
    /// Failed sign-ins of this node (per node, in memory: see [`crate::login_throttle`]).
    login_throttle: LoginThrottle,
    /// The token endpoint's buckets of this node (see [`crate::rate_limit`]).
    token_limiter: TokenRateLimiter,
}

impl AuthorizationServer {
    /// Builds a server from its adapters and policy.
    pub fn new(ports: Ports, policy: Policy) -> Self {
        Self {
            ports,
            policy: RwLock::new(Arc::new(policy)),
            login_throttle: LoginThrottle::default(),
            token_limiter: TokenRateLimiter::default(),
        }
    }

    /// The policy in force: a snapshot, unaffected by a reload while it is held.
    pub fn policy(&self) -> Arc<Policy> {
        match self.policy.read() {
            Ok(policy) => policy.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Replaces the policy (a configuration reload): requests that start afterwards use
    /// `policy`; requests in flight finish with the snapshot they took.
    pub fn set_policy(&self, policy: Policy) {
        let policy = Arc::new(policy);
        match self.policy.write() {
            Ok(mut current) => *current = policy,
            Err(poisoned) => *poisoned.into_inner() = policy,
        }
    }

    /// The adapters.
    pub fn ports(&self) -> &Ports {
        &self.ports
    }

    /// The public keys to publish (RFC 7517).
    pub fn jwks(&self) -> Jwks {
        self.ports.keys.published()
    }

    /// Validates an authorization request (RFC 6749 §4.1.1).
    pub async fn authorization_request(
        &self,
        params: &Params,
    ) -> Result<AuthorizationRequest, AuthorizeError> {
        authorize::validate(self.ports.clients.as_ref(), params).await
    }

    /// Checks a login form submission and starts a browser session, unless the
    /// username or the address has too many recent failures (see [`crate::sign_in`]).
    pub async fn sign_in(&self, attempt: &LoginAttempt<'_>) -> Result<NewSession, SignInError> {
        crate::sign_in::sign_in(self, attempt).await
    }

    /// The failure counts of the login form.
    pub(crate) fn login_throttle(&self) -> &LoginThrottle {
        &self.login_throttle
    }

    /// The live session behind a cookie value, with its user; `None` if expired, unknown, or
    /// the user is disabled.
    pub async fn session(&self, session_id: &str) -> Result<Option<(Session, User)>, OAuthError> {
        let hash = SecretHash::of(session_id);
        let Some(session) = self.ports.sessions.find(&hash).await? else {
            return Ok(None);
        };
        if self.ports.clock.now() >= session.expires_at {
            return Ok(None);
        }
        let user = self.ports.users.find(&session.user_id).await?;
        Ok(user.filter(|u| !u.disabled).map(|u| (session, u)))
    }

    /// Issues a code for an approved request and returns the redirect URI carrying it with
    /// `state` and `iss` (RFC 6749 §4.1.2, RFC 9207 §2).
    pub async fn issue_code(
        &self,
        request: &AuthorizationRequest,
        session: &Session,
    ) -> Result<String, OAuthError> {
        let code = secret::mint(self.ports.random.as_ref(), CODE_PREFIX);
        let now = self.ports.clock.now();
        let record = CodeRecord {
            code_hash: SecretHash::of(&code),
            client_id: request.client.id.clone(),
            user_id: session.user_id.clone(),
            redirect_uri: request.redirect_uri.clone(),
            redirect_uri_explicit: request.redirect_uri_explicit,
            challenge: request.challenge.clone(),
            scope: request.scope.clone(),
            resource: request.resource.clone(),
            auth_time: session.auth_time,
            expires_at: now.plus(self.policy().code_ttl),
            used_at: None,
            family_id: None,
            nonce: request.nonce.clone(),
        };
        self.ports.codes.insert(&record).await?;
        let mut pairs = vec![("code", code.as_str())];
        if let Some(state) = &request.state {
            pairs.push(("state", state));
        }
        let policy = self.policy();
        pairs.push(("iss", &policy.issuer));
        authorize::redirect_with(&request.redirect_uri, &pairs).ok_or_else(|| {
            OAuthError::ServerError("a registered redirect URI no longer parses".into())
        })
    }

    /// Handles a token request (RFC 6749 §3.2). `basic` holds the decoded credentials of an
    /// `Authorization: Basic` header, if one was sent.
    pub async fn token(
        &self,
        params: &Params,
        basic: Option<(String, String)>,
    ) -> Result<TokenResponse, OAuthError> {
        let grant_type = params.require("grant_type")?;
        let grant = GrantType::parse(grant_type).ok_or(OAuthError::UnsupportedGrantType)?;
        let credentials = credentials(params, basic)?;
        let client = client::authenticate(self.ports.clients.as_ref(), credentials).await?;
        // Checked after authentication, so nobody can spend a client's allowance by naming it.
        let limit = self.policy().token_rate_limit;
        let client_id = client.client().id.clone();
        if let Err(limited) =
            self.token_limiter
                .check(&client_id, limit, self.ports.clock.now_millis())
        {
            metrics::counter!("tessera_token_rate_limited_total").increment(1);
            return Err(OAuthError::SlowDown {
                retry_after: limited.retry_after,
            });
        }
        let issued = match grant {
            GrantType::AuthorizationCode => {
                grant::authorization_code::exchange(self, client, params).await
            }
            GrantType::ClientCredentials => {
                grant::client_credentials::grant(self, client, params).await
            }
            GrantType::RefreshToken => grant::refresh_token::refresh(self, client, params).await,
        }?;
        audit::token_issued(
            &client_id,
            grant.as_str(),
            issued.issued_to.user.as_deref(),
            issued.issued_to.family.as_deref(),
            &issued.scope,
            &issued.access_token,
        );
        Ok(issued)
    }

    /// Revokes a family (store first), then tells the caches; `true` if this call did it.
    pub async fn revoke_family(
        &self,
        family_id: &str,
        reason: RevocationReason,
    ) -> Result<bool, OAuthError> {
        let now = self.ports.clock.now();
        let revoked = self
            .ports
            .refresh
            .revoke_family(family_id, reason, now)
            .await?;
        if revoked {
            metrics::counter!(
                "tessera_revocations_published_total",
                "kind" => "family",
                "reason" => reason.as_str()
            )
            .increment(1);
            self.ports.on_revocation.revoked().await;
        }
        Ok(revoked)
    }

    /// Introspects a token (RFC 7662 §2.1), authenticating the client as the token
    /// endpoint does.
    pub async fn introspect(
        &self,
        params: &Params,
        basic: Option<(String, String)>,
    ) -> Result<(Introspection, introspection::Source), OAuthError> {
        let credentials = credentials(params, basic)?;
        let client = client::authenticate(self.ports.clients.as_ref(), credentials).await?;
        introspection::introspect(self, client, params).await
    }

    /// Authenticates a client from HTTP Basic credentials alone (for GET endpoints).
    pub async fn authenticate_basic(
        &self,
        basic: Option<(String, String)>,
    ) -> Result<AuthenticatedClient, OAuthError> {
        let Some((id, secret)) = basic else {
            return Err(OAuthError::InvalidClient { basic: true });
        };
        let credentials = ClientCredentials::Basic { id, secret };
        client::authenticate(self.ports.clients.as_ref(), credentials).await
    }

    /// Handles a revocation request (RFC 7009 §2.1), authenticating the client as the token
    /// endpoint does.
    pub async fn revoke(
        &self,
        params: &Params,
        basic: Option<(String, String)>,
    ) -> Result<Revoked, OAuthError> {
        let credentials = credentials(params, basic)?;
        let client = client::authenticate(self.ports.clients.as_ref(), credentials).await?;
        revoke::revoke(self, client, params).await
    }
}

/// Works out how the client authenticated (RFC 6749 §2.3.1).
fn credentials(
    params: &Params,
    basic: Option<(String, String)>,
) -> Result<ClientCredentials, OAuthError> {
    let form_id = params.get("client_id")?;
    let form_secret = params.get("client_secret")?;
    match (basic, form_id, form_secret) {
        // RFC 6749 §2.3: "The client MUST NOT use more than one authentication method in
        // each request."
        (Some(_), _, Some(_)) => Err(OAuthError::invalid_request(
            "use only one client authentication method",
        )),
        (Some((id, _)), Some(form), None) if form != id => {
            Err(OAuthError::InvalidClient { basic: true })
        }
        (Some((id, secret)), _, None) => Ok(ClientCredentials::Basic { id, secret }),
        (None, Some(id), Some(secret)) => Ok(ClientCredentials::Post {
            id: id.to_owned(),
            secret: secret.to_owned(),
        }),
        (None, Some(id), None) => Ok(ClientCredentials::None { id: id.to_owned() }),
        // RFC 6749 §5.2: "no client authentication included" is invalid_client.
        (None, None, _) => Err(OAuthError::InvalidClient { basic: false }),
    }
}
