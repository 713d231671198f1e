//! The consent step of the authorization endpoint: the page a signed-in user sees before a
//! third-party client gets a code, and its form, `POST /api/v2/auth/consent`.
//!
//! The form carries the authorization request like the login form does, and nothing in it
//! is trusted: the request is validated again, the user is the one of the session cookie,
//! and the CSRF token must be the one derived from that session. Allow records the consent
//! and redirects with a code; Deny redirects with `access_denied`, `state` and `iss`
//! (RFC 6749 §4.1.2.1, RFC 9207).

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use tessera_core::authorize::{AuthorizationRequest, AuthorizeError, REQUEST_PARAMS};
use tessera_core::params::Params;
use tessera_core::session::Session;
use tessera_core::{OAuthError, audit};
use url::Url;

use crate::authorize::{authorize_error, redirect, server_error_page};
use crate::form::read_form;
use crate::pages::{ConsentView, consent_page, error_page};
use crate::{AppState, client_ip, cookies, paths};

/// What a signed-in browser gets next for a validated request.
pub(crate) enum Next {
    /// The client's redirect URI with a fresh code.
    Code(String),
    /// The consent page first.
    Consent,
}

/// The next step for a signed-in user: a code at once for a first-party client or one the
/// user already approved for every requested scope, otherwise the consent page.
pub(crate) async fn next_step(
    state: &AppState,
    request: &AuthorizationRequest,
    session: &Session,
) -> Result<Next, OAuthError> {
    if state.server.consent_required(request, session).await? {
        return Ok(Next::Consent);
    }
    Ok(Next::Code(state.server.issue_code(request, session).await?))
}

/// The consent page for `request`, for the session whose cookie value is `session_id`.
pub(crate) fn show(
    state: &AppState,
    request: &AuthorizationRequest,
    params: &Params,
    session_id: &str,
    username: &str,
) -> Response {
    let policy = state.server.policy();
    let scopes = request
        .scope
        .iter()
        .map(|s| (s, policy.scope_descriptions.get(s)))
        .collect();
    let hidden = REQUEST_PARAMS
        .iter()
        .filter_map(|name| params.get(name).ok().flatten().map(|v| (*name, v)))
        .collect();
    let return_to = return_to(&request.redirect_uri);
    let csrf = cookies::consent_token(session_id);
    consent_page(&ConsentView {
        client_name: &request.client.name,
        username,
        return_to: &return_to,
        scopes,
        hidden,
        csrf_token: &csrf,
    })
}

/// The authorization request's own URL (a path on this server), to show it again by `GET`:
/// after the login form, the browser is sent there (Post/Redirect/Get), so the consent page
/// comes from a `GET` and reloading it never posts the password again.
///
/// The user has just signed in, which is what `prompt=login` (or `select_account`) and
/// `max_age` asked for: they are left out, or the `GET` would ask for the password again,
/// and again. The other prompt values stay (`consent` must still show the consent page).
pub(crate) fn authorize_again(params: &Params) -> String {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    for (name, value) in params.pairs() {
        match name {
            "max_age" => {}
            "prompt" => {
                let kept: Vec<&str> = value
                    .split(' ')
                    .filter(|v| !matches!(*v, "" | "login" | "select_account"))
                    .collect();
                if !kept.is_empty() {
                    query.append_pair(name, &kept.join(" "));
                }
            }
            _ => {
                query.append_pair(name, value);
            }
        }
    }
    format!("{}?{}", paths::AUTHORIZE, query.finish())
}

/// Where the user is sent back to, for the page: the redirect URI's host (and port), or
/// the scheme of a native app's private-use URI.
fn return_to(redirect_uri: &str) -> String {
    match Url::parse(redirect_uri) {
        Ok(url) => match (url.host_str(), url.port()) {
            (Some(host), Some(port)) => format!("{host}:{port}"),
            (Some(host), None) => host.to_owned(),
            (None, _) => url.scheme().to_owned(),
        },
        Err(_) => redirect_uri.to_owned(),
    }
}

/// `POST /api/v2/auth/consent`: the user's decision.
pub async fn consent_post(State(state): State<AppState>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let form = match read_form(&parts.headers, body).await {
        Ok(f) => f,
        Err(e) => return error_page(e.status(), &e.to_oauth().description()),
    };
    // The token is derived from the session id, which only this browser holds: a form
    // posted from another site (or for another session) cannot carry it.
    let submitted = form.get("csrf_token").ok().flatten();
    let session_id = cookies::get(&parts.headers, state.cookies.session_name())
        .filter(|id| submitted.is_some_and(|s| cookies::consent_token_matches(id, s)));
    let Some(session_id) = session_id else {
        return error_page(
            StatusCode::FORBIDDEN,
            "The consent form expired or did not come from this site. Go back and try again.",
        );
    };
    let mut carried = Vec::new();
    for name in REQUEST_PARAMS {
        match form.get(name) {
            Ok(Some(value)) => carried.push((name, value)),
            Ok(None) => {}
            Err(e) => return error_page(StatusCode::BAD_REQUEST, &e.to_string()),
        }
    }
    let params = Params::from_pairs(carried);
    let request = match state.server.authorization_request(&params).await {
        Ok(r) => r,
        Err(e) => return authorize_error(&state, e),
    };
    let ip = client_ip::of(&parts, &state.server.policy().trusted_proxies);
    let session = match state.server.session(session_id).await {
        Ok(Some((session, _user))) => session,
        // The session ended between the page and the click: sign in again.
        Ok(None) => return redirect(&authorize_again(&params)),
        Err(e) => return server_error_page(&e),
    };
    match form.get("decision") {
        Ok(Some("approve")) => {
            if let Err(e) = state.server.grant_consent(&request, &session).await {
                return server_error_page(&e);
            }
            let scope = request.scope.to_string();
            audit::consent_granted(&request.client.id, &session.user_id, &scope, ip);
            match state.server.issue_code(&request, &session).await {
                Ok(location) => redirect(&location),
                Err(e) => server_error_page(&e),
            }
        }
        Ok(Some("deny")) => {
            let scope = request.scope.to_string();
            audit::consent_denied(&request.client.id, &session.user_id, &scope, ip);
            // RFC 6749 §4.1.2.1: "access_denied: The resource owner or authorization server
            // denied the request." A denial is not remembered; the next request asks again.
            authorize_error(
                &state,
                AuthorizeError::Redirect {
                    redirect_uri: request.redirect_uri,
                    state: request.state,
                    error: "access_denied",
                    description: "the user denied the request".into(),
                },
            )
        }
        _ => error_page(
            StatusCode::BAD_REQUEST,
            "The consent form must be answered with Allow or Deny.",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_names_where_the_user_goes_back_to() {
        assert_eq!(return_to("https://app.example/cb"), "app.example");
        assert_eq!(
            return_to("http://127.0.0.1:8765/callback"),
            "127.0.0.1:8765"
        );
        assert_eq!(return_to("com.example.app:/oauth"), "com.example.app");
    }

    #[test]
    fn the_request_is_shown_again_by_get_on_this_server() {
        let params = Params::from_pairs([("client_id", "a b"), ("state", "x&y")]);
        assert_eq!(
            authorize_again(&params),
            "/api/v2/auth/authorize?client_id=a+b&state=x%26y"
        );
    }

    #[test]
    fn shown_again_after_sign_in_it_no_longer_asks_for_a_fresh_sign_in() {
        let params = Params::from_pairs([
            ("client_id", "c"),
            ("prompt", "login consent"),
            ("max_age", "0"),
            ("nonce", "n"),
        ]);
        assert_eq!(
            authorize_again(&params),
            "/api/v2/auth/authorize?client_id=c&prompt=consent&nonce=n"
        );
        let params = Params::from_pairs([("client_id", "c"), ("prompt", "select_account")]);
        assert_eq!(
            authorize_again(&params),
            "/api/v2/auth/authorize?client_id=c"
        );
    }
}
