//! The few OAuth 2.0 requests a client makes: discovery (RFC 8414), token requests
//! (RFC 6749 §4.1.3, §4.4, §6) and revocation (RFC 7009), with errors classified for retry.

use std::time::Duration;

use serde::Deserialize;

use crate::error::Error;
use crate::tokens::{TokenSet, unix_now};

/// An authorization server's endpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    /// The issuer identifier.
    pub issuer: String,
    /// The token endpoint.
    pub token_endpoint: String,
    /// The authorization endpoint (needed for interactive sign-in).
    pub authorization_endpoint: Option<String>,
    /// The revocation endpoint (used on logout).
    pub revocation_endpoint: Option<String>,
}

impl Endpoints {
    /// Reads the issuer's metadata: RFC 8414 first, OpenID Connect discovery as fallback.
    /// The document must name exactly `issuer` (RFC 8414 §3.3).
    pub async fn discover(http: &reqwest::Client, issuer: &str) -> Result<Self, Error> {
        #[derive(Deserialize)]
        struct Metadata {
            issuer: String,
            token_endpoint: String,
            authorization_endpoint: Option<String>,
            revocation_endpoint: Option<String>,
        }
        let url = url::Url::parse(issuer)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.has_host())
            .filter(|u| u.query().is_none() && u.fragment().is_none())
            .ok_or_else(|| Error::Discovery(format!("{issuer:?} is not an issuer URL")))?;
        let origin = url.origin().ascii_serialization();
        let path = url.path().trim_end_matches('/');
        let mut last = String::new();
        for location in [
            format!("{origin}/.well-known/oauth-authorization-server{path}"),
            format!("{origin}{path}/.well-known/openid-configuration"),
        ] {
            let response = http
                .get(&location)
                .send()
                .await
                .map_err(|e| Error::Discovery(format!("{location}: {}", e.without_url())))?;
            if !response.status().is_success() {
                last = format!("{location}: HTTP {}", response.status().as_u16());
                continue;
            }
            let metadata: Metadata = response
                .json()
                .await
                .map_err(|_| Error::Discovery(format!("{location}: not valid metadata")))?;
            if metadata.issuer != issuer {
                return Err(Error::Discovery(format!(
                    "{location} names issuer {:?}, not {issuer:?}",
                    metadata.issuer
                )));
            }
            return Ok(Self {
                issuer: metadata.issuer,
                token_endpoint: metadata.token_endpoint,
                authorization_endpoint: metadata.authorization_endpoint,
                revocation_endpoint: metadata.revocation_endpoint,
            });
        }
        Err(Error::Discovery(last))
    }
}

/// How the client authenticates at the token endpoint.
#[derive(Clone)]
pub struct ClientCredentials {
    /// The client id.
    pub client_id: String,
    /// The secret of a confidential client (HTTP Basic, RFC 6749 §2.3.1); `None` for a
    /// public client, which sends only its `client_id`.
    pub client_secret: Option<String>,
}

impl std::fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCredentials")
            .field("client_id", &self.client_id)
            .field("confidential", &self.client_secret.is_some())
            .finish()
    }
}

impl ClientCredentials {
    /// A public client.
    pub fn public(client_id: impl Into<String>) -> Self {
        Self {
            client_id: client_id.into(),
            client_secret: None,
        }
    }

    /// A confidential client.
    pub fn confidential(client_id: impl Into<String>, secret: impl Into<String>) -> Self {
        Self {
            client_id: client_id.into(),
            client_secret: Some(secret.into()),
        }
    }

    /// `request` authenticated as this client, with `form` as its body.
    pub(crate) fn authenticate(
        &self,
        request: reqwest::RequestBuilder,
        form: &[(&str, &str)],
    ) -> reqwest::RequestBuilder {
        let mut form = form.to_vec();
        match &self.client_secret {
            Some(secret) => {
                let encode = |v: &str| {
                    url::form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>()
                };
                request
                    .basic_auth(encode(&self.client_id), Some(encode(secret)))
                    .form(&form)
            }
            None => {
                form.push(("client_id", &self.client_id));
                request.form(&form)
            }
        }
    }
}

/// How one token request failed.
#[derive(Debug)]
pub(crate) enum Failure {
    /// Worth retrying: the request may not have been processed, or the server asked for
    /// patience (network error, 5xx, 429). `Some` is the server's `Retry-After`.
    Transient(String, Option<Duration>),
    /// Final.
    Final(Error),
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    token_type: String,
    expires_in: Option<u64>,
    refresh_token: Option<String>,
    scope: Option<String>,
}

#[derive(Deserialize)]
struct ErrorResponse {
    error: String,
    error_description: Option<String>,
}

/// One token request, no retry.
pub(crate) async fn token_request(
    http: &reqwest::Client,
    token_endpoint: &str,
    client: &ClientCredentials,
    form: &[(&str, &str)],
) -> Result<TokenSet, Failure> {
    let request = client.authenticate(
        http.post(token_endpoint)
            .header(reqwest::header::ACCEPT, "application/json"),
        form,
    );
    let response = request
        .send()
        .await
        .map_err(|e| Failure::Transient(e.without_url().to_string(), None))?;
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .map(Duration::from_secs);
    let received_at = unix_now();
    let body = response
        .bytes()
        .await
        .map_err(|e| Failure::Transient(e.without_url().to_string(), None))?;
    if status == 429 || status >= 500 {
        return Err(Failure::Transient(format!("HTTP {status}"), retry_after));
    }
    if status != 200 {
        let error = serde_json::from_slice::<ErrorResponse>(&body).map_err(|_| {
            Failure::Final(Error::Response(format!(
                "HTTP {status} without an OAuth error"
            )))
        })?;
        return Err(Failure::Final(Error::Rejected {
            status,
            error: error.error,
            description: error.error_description,
        }));
    }
    let token: TokenResponse = serde_json::from_slice(&body)
        .map_err(|_| Failure::Final(Error::Response("not a token response".into())))?;
    if !token.token_type.eq_ignore_ascii_case("bearer") {
        return Err(Failure::Final(Error::Response(format!(
            "token_type {:?} is not Bearer",
            token.token_type
        ))));
    }
    // Without expires_in (RFC 6749 §5.1 RECOMMENDED) assume a short life: renewing early is
    // cheap, using an expired token is not.
    let lifetime = token.expires_in.unwrap_or(300);
    Ok(TokenSet {
        access_token: token.access_token,
        refresh_token: token.refresh_token,
        scope: token.scope,
        received_at,
        expires_at: received_at + lifetime,
    })
}

/// Revokes `token` (RFC 7009); the answer is 200 whether or not the token was live.
pub(crate) async fn revoke(
    http: &reqwest::Client,
    revocation_endpoint: &str,
    client: &ClientCredentials,
    token: &str,
    hint: &str,
) -> Result<(), Error> {
    let response = client
        .authenticate(
            http.post(revocation_endpoint),
            &[("token", token), ("token_type_hint", hint)],
        )
        .send()
        .await
        .map_err(|e| Error::Unavailable(e.without_url().to_string()))?;
    match response.status().as_u16() {
        200 => Ok(()),
        status if status >= 500 => Err(Error::Unavailable(format!("HTTP {status}"))),
        status => Err(Error::Rejected {
            status,
            error: "revocation refused".into(),
            description: None,
        }),
    }
}
