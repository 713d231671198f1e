//! The authorization request (RFC 6749 §4.1.1, RFC 7636 §4.3, RFC 8707 §2).
//!
//! Validation happens in the order RFC 6749 §4.1.2.1 imposes: first the client and the
//! redirect URI, whose failures must never redirect (an open redirector otherwise); then
//! everything else, whose failures are redirected back to the client with `error`, `state`
//! and `iss` (RFC 9207).
//!
//! OpenID Connect adds `nonce`, `prompt`, `max_age` and `login_hint` (OIDC Core §3.1.2.1):
//! they are read here and acted on by the authorization endpoint (see
//! [`AuthorizationRequest::accepts_session`]).

use std::borrow::Cow;

use url::Url;

use crate::client::{Client, ClientStore, GrantType};
use crate::error::OAuthError;
use crate::params::Params;
use crate::pkce::CodeChallenge;
use crate::scope::ScopeSet;
use crate::time::UnixTime;

/// A failed authorization request.
#[non_exhaustive]
#[derive(Debug)]
pub enum AuthorizeError {
    /// The client or redirect URI cannot be trusted: show an error page, never redirect
    /// (RFC 6749 §4.1.2.1).
    NotRedirectable(Cow<'static, str>),
    /// Report the error to the client at its (verified) redirect URI.
    Redirect {
        /// The verified redirect URI.
        redirect_uri: String,
        /// The client's `state`, echoed.
        state: Option<String>,
        /// The RFC 6749 §4.1.2.1 error code.
        error: &'static str,
        /// A fixed description.
        description: Cow<'static, str>,
    },
    /// Storage failed; show an error page.
    Server(OAuthError),
}

/// A validated authorization request, ready for the user's decision.
#[derive(Debug, Clone)]
pub struct AuthorizationRequest {
    /// The requesting client.
    pub client: Client,
    /// The verified redirect URI.
    pub redirect_uri: String,
    /// Whether `redirect_uri` was sent (then the token request must repeat it).
    pub redirect_uri_explicit: bool,
    /// The client's opaque `state`.
    pub state: Option<String>,
    /// The scope to grant.
    pub scope: ScopeSet,
    /// The PKCE challenge.
    pub challenge: CodeChallenge,
    /// The RFC 8707 resource, if one was requested.
    pub resource: Option<String>,
    /// The OpenID Connect `nonce`, returned in the ID token.
    pub nonce: Option<String>,
    /// What the client asked the server to show, or not (`prompt`).
    pub prompt: Prompt,
    /// The longest time since the user's authentication the client accepts, in seconds
    /// (`max_age`).
    pub max_age: Option<u64>,
    /// The username the client expects, to fill in on the login page (`login_hint`).
    pub login_hint: Option<String>,
}

impl AuthorizationRequest {
    /// Whether the session of a user who authenticated at `auth_time` may answer this
    /// request at `now` without signing in again: not when the client asked for a fresh
    /// sign-in (`prompt=login` or `select_account`), nor when the authentication is older
    /// than `max_age` seconds (OIDC Core §3.1.2.1). `max_age=0` is `prompt=login`, whatever
    /// the clock says: a session started this very second is still not a fresh sign-in.
    pub fn accepts_session(&self, auth_time: UnixTime, now: UnixTime) -> bool {
        if self.prompt.login || self.max_age == Some(0) {
            return false;
        }
        self.max_age.is_none_or(|max| {
            let max = i64::try_from(max).unwrap_or(i64::MAX);
            now.0.saturating_sub(auth_time.0) <= max
        })
    }
}

/// The `prompt` parameter (OIDC Core §3.1.2.1): space-delimited `none`, `login`, `consent`,
/// `select_account`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Prompt {
    /// `none`: show nothing; answer `login_required` or `consent_required` instead.
    pub none: bool,
    /// `login` (or `select_account`: there is no account chooser, signing in again is how a
    /// user picks another account): ask for the password even with a session.
    pub login: bool,
    /// `consent`: show the consent page even when an earlier consent covers the request.
    pub consent: bool,
}

impl Prompt {
    /// Parses a `prompt` value; `none` cannot be combined with anything else.
    pub fn parse(raw: Option<&str>) -> Result<Self, OAuthError> {
        let mut prompt = Self::default();
        let Some(raw) = raw else {
            return Ok(prompt);
        };
        for value in raw.split(' ').filter(|v| !v.is_empty()) {
            match value {
                "none" => prompt.none = true,
                "login" | "select_account" => prompt.login = true,
                "consent" => prompt.consent = true,
                _ => {
                    return Err(OAuthError::invalid_request(
                        "prompt has an unsupported value",
                    ));
                }
            }
        }
        if prompt.none && (prompt.login || prompt.consent) {
            return Err(OAuthError::invalid_request(
                "prompt=none cannot be combined with other values",
            ));
        }
        Ok(prompt)
    }
}

/// Longest `nonce` accepted: it is stored with the code and copied into the ID token.
pub const MAX_NONCE_LEN: usize = 512;

/// The names of the parameters that make up an authorization request; a login form carries
/// exactly these through the sign-in step.
pub const REQUEST_PARAMS: [&str; 12] = [
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "code_challenge",
    "code_challenge_method",
    "resource",
    "nonce",
    "prompt",
    "max_age",
    "login_hint",
];

/// Validates an authorization request.
pub async fn validate(
    clients: &dyn ClientStore,
    params: &Params,
) -> Result<AuthorizationRequest, AuthorizeError> {
    let not_redirectable = |d: &'static str| AuthorizeError::NotRedirectable(Cow::Borrowed(d));

    // RFC 6749 §4.1.2.1: a missing, invalid or mismatching client_id or redirect_uri MUST NOT
    // be redirected to.
    let client_id = params
        .get("client_id")
        .map_err(|_| not_redirectable("client_id is repeated"))?
        .ok_or_else(|| not_redirectable("client_id is missing"))?;
    let client = clients
        .find(client_id)
        .await
        .map_err(|e| AuthorizeError::Server(e.into()))?
        .ok_or_else(|| not_redirectable("the client is not registered"))?;
    let sent_redirect = params
        .get("redirect_uri")
        .map_err(|_| not_redirectable("redirect_uri is repeated"))?;
    let redirect_uri = match sent_redirect {
        // RFC 9700 §4.1.3: exact string matching, except for the port of a loopback IP
        // redirect URI (RFC 8252 §7.3). The URI as sent, port included, is what the code is
        // bound to and what the token request must repeat (RFC 6749 §4.1.3).
        Some(uri) if client.has_redirect_uri(uri) => uri.to_owned(),
        Some(_) => {
            return Err(not_redirectable(
                "redirect_uri is not registered for this client",
            ));
        }
        // RFC 6749 §3.1.2.3: it may be omitted only when exactly one is registered.
        None => match client.redirect_uris.as_slice() {
            [only] => only.clone(),
            _ => return Err(not_redirectable("redirect_uri is required for this client")),
        },
    };

    // From here on the redirect URI is trusted; `state` must be read first so that every
    // later error can echo it. A repeated state cannot be echoed: report it without one.
    let (state, state_error) = match params.get("state") {
        Ok(s) => (s.map(str::to_owned), None),
        Err(e) => (None, Some(OAuthError::from(e))),
    };
    let redirect = |e: OAuthError| AuthorizeError::Redirect {
        redirect_uri: redirect_uri.clone(),
        state: state.clone(),
        error: e.code(),
        description: e.description(),
    };
    if let Some(e) = state_error {
        return Err(redirect(e));
    }
    match params
        .get("response_type")
        .map_err(|e| redirect(e.into()))?
    {
        Some("code") => {}
        Some(_) => {
            return Err(AuthorizeError::Redirect {
                redirect_uri,
                state,
                error: "unsupported_response_type",
                description: Cow::Borrowed("only response_type=code is supported"),
            });
        }
        None => {
            return Err(redirect(OAuthError::invalid_request(
                "response_type is missing",
            )));
        }
    }
    if !client.allows(GrantType::AuthorizationCode) {
        return Err(redirect(OAuthError::UnauthorizedClient(
            "the client may not use the authorization code grant",
        )));
    }
    let challenge = CodeChallenge::parse(
        params
            .get("code_challenge")
            .map_err(|e| redirect(e.into()))?,
        params
            .get("code_challenge_method")
            .map_err(|e| redirect(e.into()))?,
    )
    .map_err(redirect)?;
    let requested_scope = params.get("scope").map_err(|e| redirect(e.into()))?;
    let mut scope = ScopeSet::requested(requested_scope, &client.scopes).map_err(redirect)?;
    if requested_scope.is_none() {
        // The default scope is every scope the client may ask for but `openid`: a request
        // is an OpenID Connect one only when it says so (OIDC Core §3.1.2.1), since that
        // changes what it must carry (a `nonce`) and what it gets back (an ID token).
        scope = scope.without("openid");
    }
    let resource = params.get("resource").map_err(|e| redirect(e.into()))?;
    if let Some(r) = resource {
        // RFC 8707 §2: the resource must be registered for the client.
        client.audience(Some(r), "").map_err(redirect)?;
    }
    let nonce = params.get("nonce").map_err(|e| redirect(e.into()))?;
    if nonce.is_some_and(|n| n.is_empty() || n.len() > MAX_NONCE_LEN) {
        return Err(redirect(OAuthError::invalid_request(
            "nonce must be 1 to 512 characters",
        )));
    }
    // OIDC Core §3.1.2.1 makes `nonce` optional for the code flow. A public client has no
    // secret to bind the code exchange to the browser that started it beyond PKCE, and an
    // ID token replayed into another session is what the nonce detects: public clients
    // must send one.
    if scope.contains("openid") && client.is_public() && nonce.is_none() {
        return Err(redirect(OAuthError::invalid_request(
            "nonce is required for public clients requesting openid",
        )));
    }
    let prompt =
        Prompt::parse(params.get("prompt").map_err(|e| redirect(e.into()))?).map_err(redirect)?;
    let max_age = match params.get("max_age").map_err(|e| redirect(e.into()))? {
        None => None,
        // A non-negative integer number of seconds.
        Some(raw) => Some(
            raw.parse::<u64>()
                .ok()
                .filter(|_| raw.bytes().all(|b| b.is_ascii_digit()))
                .ok_or_else(|| {
                    redirect(OAuthError::invalid_request(
                        "max_age must be a non-negative integer",
                    ))
                })?,
        ),
    };
    // Only a hint for the login page: one that could not be a username is ignored.
    let login_hint = params
        .get("login_hint")
        .map_err(|e| redirect(e.into()))?
        .filter(|h| h.len() <= 128 && !h.chars().any(char::is_control))
        .map(str::to_owned);
    Ok(AuthorizationRequest {
        redirect_uri_explicit: sent_redirect.is_some(),
        resource: resource.map(str::to_owned),
        client,
        redirect_uri,
        state,
        scope,
        challenge,
        nonce: nonce.map(str::to_owned),
        prompt,
        max_age,
        login_hint,
    })
}

/// Appends response parameters to a redirect URI, keeping its own query (RFC 6749 §3.1.2).
/// `None` if the stored redirect URI no longer parses, which registration prevents.
pub fn redirect_with(redirect_uri: &str, pairs: &[(&str, &str)]) -> Option<String> {
    let mut url = Url::parse(redirect_uri).ok()?;
    {
        let mut q = url.query_pairs_mut();
        for (k, v) in pairs {
            q.append_pair(k, v);
        }
    }
    Some(url.into())
}

/// Checks a redirect URI for registration: absolute, no fragment (RFC 6749 §3.1.2), and
/// https unless it is a loopback or private-use (native app) URI (RFC 8252 §7).
pub fn check_redirect_uri(uri: &str) -> Result<(), &'static str> {
    let url = Url::parse(uri).map_err(|_| "redirect URI must be an absolute URI")?;
    if url.fragment().is_some() {
        return Err("redirect URI must not contain a fragment");
    }
    let loopback = matches!(url.host_str(), Some("127.0.0.1" | "[::1]" | "localhost"));
    match url.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        "http" => Err("http redirect URIs are only allowed on loopback hosts"),
        // RFC 8252 §7.1: private-use schemes for native apps (reverse domain names).
        s if s.contains('.') => Ok(()),
        _ => Err(
            "redirect URI scheme must be https, loopback http, or a reverse-domain private-use scheme",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_keeps_existing_query_and_encodes_values() {
        let out = redirect_with("https://app.example/cb?x=1", &[("state", "a b&c")]).unwrap();
        assert_eq!(out, "https://app.example/cb?x=1&state=a+b%26c");
    }

    #[test]
    fn prompt_values_and_their_combinations() {
        assert_eq!(Prompt::parse(None).unwrap(), Prompt::default());
        let p = Prompt::parse(Some("login consent")).unwrap();
        assert!(p.login && p.consent && !p.none);
        assert!(Prompt::parse(Some("select_account")).unwrap().login);
        assert!(Prompt::parse(Some("none")).unwrap().none);
        assert!(Prompt::parse(Some("none login")).is_err());
        assert!(Prompt::parse(Some("none consent")).is_err());
        assert!(Prompt::parse(Some("create")).is_err());
    }

    #[test]
    fn registration_rules_for_redirect_uris() {
        assert!(check_redirect_uri("https://app.example/cb").is_ok());
        assert!(check_redirect_uri("http://127.0.0.1:8765/callback").is_ok());
        assert!(check_redirect_uri("com.example.app:/oauth").is_ok());
        assert!(check_redirect_uri("http://app.example/cb").is_err());
        assert!(check_redirect_uri("https://app.example/cb#frag").is_err());
        assert!(check_redirect_uri("/relative").is_err());
        assert!(check_redirect_uri("javascript:alert(1)").is_err());
    }
}
