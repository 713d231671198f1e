//! Interactive sign-in for native apps and CLIs (RFC 8252): the authorization code flow
//! with PKCE S256 (RFC 7636) and a loopback redirect on an ephemeral 127.0.0.1 port
//! (RFC 8252 §7.3). The browser is the user's; this module only builds the URL, receives
//! the one redirect, and exchanges the code.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::error::Error;
use crate::oauth::{self, ClientCredentials, Endpoints, Failure};
use crate::tokens::TokenSet;

/// The largest request head the loopback listener reads.
const HEAD_LIMIT: usize = 16 * 1024;

/// A sign-in in progress: the URL to open, and the loopback listener waiting for the
/// browser to come back.
pub struct LoopbackLogin {
    listener: TcpListener,
    endpoints: Endpoints,
    client: ClientCredentials,
    redirect_uri: String,
    state: String,
    verifier: String,
    authorize_url: String,
}

impl std::fmt::Debug for LoopbackLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoopbackLogin")
            .field("redirect_uri", &self.redirect_uri)
            .finish_non_exhaustive()
    }
}

fn random_token() -> Result<String, Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| Error::Login(format!("no randomness: {e}")))?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

impl LoopbackLogin {
    /// Binds `127.0.0.1:0` and prepares the authorization request for `scope`.
    pub async fn start(
        endpoints: Endpoints,
        client: ClientCredentials,
        scope: Option<&str>,
    ) -> Result<Self, Error> {
        let authorization_endpoint = endpoints
            .authorization_endpoint
            .clone()
            .ok_or_else(|| Error::Login("the issuer has no authorization endpoint".into()))?;
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| Error::Login(format!("cannot listen on 127.0.0.1: {e}")))?;
        let port = listener
            .local_addr()
            .map_err(|e| Error::Login(e.to_string()))?
            .port();
        let redirect_uri = format!("http://127.0.0.1:{port}/callback");
        let state = random_token()?;
        let verifier = random_token()?;
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        let mut url = url::Url::parse(&authorization_endpoint)
            .map_err(|_| Error::Login("the authorization endpoint is not a URL".into()))?;
        {
            let mut query = url.query_pairs_mut();
            query
                .append_pair("response_type", "code")
                .append_pair("client_id", &client.client_id)
                .append_pair("redirect_uri", &redirect_uri)
                .append_pair("state", &state)
                .append_pair("code_challenge", &challenge)
                .append_pair("code_challenge_method", "S256");
            if let Some(scope) = scope {
                query.append_pair("scope", scope);
            }
        }
        Ok(Self {
            listener,
            endpoints,
            client,
            redirect_uri,
            state,
            verifier,
            authorize_url: url.into(),
        })
    }

    /// The URL to open in the user's browser.
    pub fn authorize_url(&self) -> &str {
        &self.authorize_url
    }

    /// The loopback redirect URI in use (its port was chosen by the OS).
    pub fn redirect_uri(&self) -> &str {
        &self.redirect_uri
    }

    /// Waits up to `timeout` for the browser's redirect, then exchanges the code.
    pub async fn finish(
        self,
        http: &reqwest::Client,
        timeout: Duration,
    ) -> Result<TokenSet, Error> {
        let params = tokio::time::timeout(timeout, self.receive())
            .await
            .map_err(|_| Error::Login("timed out waiting for the browser".into()))??;
        let code = params.code;
        let form = [
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", self.redirect_uri.as_str()),
            ("code_verifier", self.verifier.as_str()),
        ];
        oauth::token_request(http, &self.endpoints.token_endpoint, &self.client, &form)
            .await
            .map_err(|failure| match failure {
                Failure::Final(error) => error,
                Failure::Transient(reason, _) => Error::Unavailable(reason),
            })
    }

    /// Accepts connections until the redirect with our `state` arrives.
    async fn receive(&self) -> Result<Callback, Error> {
        loop {
            let (mut stream, _) = self
                .listener
                .accept()
                .await
                .map_err(|e| Error::Login(e.to_string()))?;
            let Some(target) = read_target(&mut stream).await else {
                continue;
            };
            let Some(query) = target.strip_prefix("/callback?") else {
                respond(&mut stream, 404, "Not found.").await;
                continue;
            };
            let params: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
                .into_owned()
                .collect();
            let get = |name: &str| {
                params
                    .iter()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.as_str())
            };
            // CSRF (RFC 6749 §10.12): only the redirect of our own request counts; another
            // page poking the port is ignored, not fatal.
            if !get("state").is_some_and(|s| constant_time_eq(s, &self.state)) {
                respond(
                    &mut stream,
                    400,
                    "This sign-in link is not the one this program started.",
                )
                .await;
                continue;
            }
            // RFC 9207: a server that names itself must be the one we asked.
            if let Some(iss) = get("iss")
                && iss != self.endpoints.issuer
            {
                respond(&mut stream, 400, "The response came from another issuer.").await;
                return Err(Error::Login(
                    "the response names another issuer (RFC 9207)".into(),
                ));
            }
            if let Some(error) = get("error") {
                respond(
                    &mut stream,
                    200,
                    "Sign-in did not complete. You can close this window.",
                )
                .await;
                return Err(Error::Login(format!("the server answered {error}")));
            }
            let Some(code) = get("code") else {
                respond(&mut stream, 400, "The response has no code.").await;
                return Err(Error::Login("the redirect carries no code".into()));
            };
            respond(&mut stream, 200, "Signed in. You can close this window.").await;
            return Ok(Callback {
                code: code.to_owned(),
            });
        }
    }
}

struct Callback {
    code: String,
}

/// The request target of a `GET` on `stream`, if the head is a readable HTTP request.
async fn read_target(stream: &mut TcpStream) -> Option<String> {
    let mut head = Vec::with_capacity(1024);
    let mut buffer = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let read = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buffer))
            .await
            .ok()?
            .ok()?;
        if read == 0 || head.len() + read > HEAD_LIMIT {
            return None;
        }
        head.extend_from_slice(&buffer[..read]);
    }
    let line = std::str::from_utf8(&head).ok()?.lines().next()?;
    let mut parts = line.split(' ');
    match (parts.next(), parts.next(), parts.next()) {
        (Some("GET"), Some(target), Some(version)) if version.starts_with("HTTP/1.") => {
            Some(target.to_owned())
        }
        _ => None,
    }
}

async fn respond(stream: &mut TcpStream, status: u16, message: &str) {
    let reason = match status {
        200 => "OK",
        404 => "Not Found",
        _ => "Bad Request",
    };
    let body =
        format!("<!doctype html><meta charset=utf-8><title>Tessera</title><p>{message}</p>\n");
    let response = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: text/html; charset=utf-8\r\n\
         content-length: {}\r\ncache-control: no-store\r\nreferrer-policy: no-referrer\r\n\
         connection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}
