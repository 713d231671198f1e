//! The authorization endpoint, `GET|POST /api/v2/auth/authorize` (RFC 6749 §4.1.1-4.1.2).
//!
//! `GET` validates the request; a signed-in browser gets its code at once (or the consent
//! page first, for a third-party client the user has not approved, see [`consent`]), anyone
//! else the login page. `POST` is the login form: it checks the CSRF token, validates the
//! carried request again (nothing from the form is trusted), signs the user in and
//! redirects with the code, or back to `GET` for the consent page. Errors about the client
//! or redirect URI are shown, never redirected. Too many failed sign-ins for a username or
//! from an address get `429` with `Retry-After` and the same message, without the password
//! being checked (see `tessera_core::login_throttle`).
//!
//! [`consent`]: crate::consent

use axum::extract::{RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tessera_core::authorize::{self, AuthorizationRequest, AuthorizeError, REQUEST_PARAMS};
use tessera_core::params::Params;
use tessera_core::secret;
use tessera_core::server::{LoginAttempt, SignInError};

use crate::consent::{self, Next};
use crate::error::log_internal;
use crate::form::read_form;
use crate::pages::{error_page, login_page};
use crate::{AppState, client_ip, cookies};

/// Lifetime of the CSRF-binding cookie: long enough to type a password.
const CSRF_COOKIE_MAX_AGE: u64 = 3600;

/// The login page's error while the username or the address is throttled: the usual one
/// (nothing about whether the user exists) and when to come back.
const TOO_MANY_ATTEMPTS: &str =
    "Invalid username or password. Too many failed attempts: try again later.";

/// `GET /api/v2/auth/authorize`.
pub async fn authorize_get(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let params = match Params::parse(query.unwrap_or_default().as_bytes()) {
        Ok(p) => p,
        Err(e) => return error_page(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    let request = match state.server.authorization_request(&params).await {
        Ok(r) => r,
        Err(e) => return authorize_error(&state, e),
    };
    let session = match cookies::get(&headers, state.cookies.session_name()) {
        Some(session_id) => match state.server.session(session_id).await {
            Ok(found) => found.map(|(session, user)| (session_id, session, user)),
            Err(e) => return server_error_page(&e),
        },
        None => None,
    };
    // OIDC Core §3.1.2.1: `prompt=login` and `max_age` can turn a live session down.
    let now = state.server.ports().clock.now();
    let session = session.filter(|(_, s, _)| request.accepts_session(s.auth_time, now));
    if let Some((session_id, session, user)) = session {
        return match consent::next_step(&state, &request, &session).await {
            Ok(Next::Code(location)) => redirect(&location),
            Ok(Next::Consent) if request.prompt.none => {
                authorize_error(&state, no_interaction(request, "consent_required"))
            }
            Ok(Next::Consent) => {
                consent::show(&state, &request, &params, session_id, &user.username)
            }
            Err(e) => server_error_page(&e),
        };
    }
    // `prompt=none`: the client asked for no page at all, and signing in needs one.
    if request.prompt.none {
        return authorize_error(&state, no_interaction(request, "login_required"));
    }
    let (binding, fresh) = match cookies::get(&headers, state.cookies.csrf_name()) {
        Some(b) => (b.to_owned(), false),
        None => (secret::mint_id(state.server.ports().random.as_ref()), true),
    };
    let hint = request.login_hint.clone().unwrap_or_default();
    let mut response = show_login(&request, &params, &binding, StatusCode::OK, &hint, None);
    if fresh {
        set_cookie(
            &mut response,
            &state,
            state.cookies.csrf_name(),
            &binding,
            CSRF_COOKIE_MAX_AGE,
        );
    }
    response
}

/// `POST /api/v2/auth/authorize`: the login form.
pub async fn authorize_post(State(state): State<AppState>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let form = match read_form(&parts.headers, body).await {
        Ok(f) => f,
        Err(e) => return error_page(e.status(), &e.to_oauth().description()),
    };
    let binding = cookies::get(&parts.headers, state.cookies.csrf_name());
    let submitted = form.get("csrf_token").ok().flatten();
    let csrf_ok = matches!((binding, submitted), (Some(b), Some(s)) if cookies::csrf_matches(b, s));
    if !csrf_ok {
        return error_page(
            StatusCode::FORBIDDEN,
            "The sign-in form expired or did not come from this site. Go back and try again.",
        );
    }
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
    let username = form.get("username").ok().flatten().unwrap_or_default();
    let password = form.get("password").ok().flatten().unwrap_or_default();
    let binding = binding.unwrap_or_default();
    let attempt = LoginAttempt {
        username,
        password,
        client_id: &request.client.id,
        ip: client_ip::of(&parts, &state.server.policy().trusted_proxies),
    };
    // The outcome is written as an audit event by the core (login_succeeded, login_failed,
    // login_locked).
    match state.server.sign_in(&attempt).await {
        Ok(new) => {
            // Signing in again (`prompt=login`, `max_age`, another account) replaces the
            // browser's session: the one its cookie named ends now, not when it expires.
            if let Some(old) = cookies::get(&parts.headers, state.cookies.session_name())
                && let Err(e) = state.server.end_session(old).await
            {
                return server_error_page(&e);
            }
            let location = match consent::next_step(&state, &request, &new.session).await {
                Ok(Next::Code(l)) => l,
                // Post/Redirect/Get: the consent page comes from a GET of the same request.
                Ok(Next::Consent) => consent::authorize_again(&params),
                Err(e) => return server_error_page(&e),
            };
            let mut response = redirect(&location);
            let max_age = state.server.policy().session_ttl.as_secs();
            set_cookie(
                &mut response,
                &state,
                state.cookies.session_name(),
                &new.id,
                max_age,
            );
            response
        }
        Err(SignInError::InvalidCredentials) => {
            // One message for unknown user, wrong password and disabled account.
            show_login(
                &request,
                &params,
                binding,
                StatusCode::UNAUTHORIZED,
                username,
                Some("Invalid username or password."),
            )
        }
        Err(SignInError::TooManyAttempts { retry_after }) => {
            // The same message, whether the account exists and whatever the password (it
            // was not even checked), plus when to come back (RFC 6585 §4).
            let mut response = show_login(
                &request,
                &params,
                binding,
                StatusCode::TOO_MANY_REQUESTS,
                username,
                Some(TOO_MANY_ATTEMPTS),
            );
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(retry_after.as_secs().max(1)),
            );
            response
        }
        Err(SignInError::Server(e)) => server_error_page(&e),
        Err(_) => error_page(StatusCode::INTERNAL_SERVER_ERROR, "Sign-in failed."),
    }
}

/// The answer to `prompt=none` when the user would have to see a page: `login_required`
/// or `consent_required`, redirected to the client (OIDC Core §3.1.2.6).
fn no_interaction(request: AuthorizationRequest, error: &'static str) -> AuthorizeError {
    let description = match error {
        "login_required" => "the user must sign in",
        _ => "the user must approve the request",
    };
    AuthorizeError::Redirect {
        redirect_uri: request.redirect_uri,
        state: request.state,
        error,
        description: description.into(),
    }
}

fn show_login(
    request: &AuthorizationRequest,
    params: &Params,
    binding: &str,
    status: StatusCode,
    username: &str,
    error: Option<&str>,
) -> Response {
    let hidden = REQUEST_PARAMS
        .iter()
        .filter_map(|name| params.get(name).ok().flatten().map(|v| (*name, v)));
    login_page(
        status,
        &request.client.name,
        hidden,
        &cookies::csrf_token(binding),
        username,
        error,
    )
}

/// Renders an authorization error: an error page, or a redirect to the verified client
/// URI with `error`, `error_description`, `state` and `iss` (RFC 6749 §4.1.2.1, RFC 9207).
pub(crate) fn authorize_error(state: &AppState, error: AuthorizeError) -> Response {
    match error {
        AuthorizeError::NotRedirectable(reason) => error_page(StatusCode::BAD_REQUEST, &reason),
        AuthorizeError::Redirect {
            redirect_uri,
            state: client_state,
            error,
            description,
        } => {
            let issuer = &state.server.policy().issuer;
            let mut pairs = vec![("error", error), ("error_description", &description)];
            if let Some(s) = &client_state {
                pairs.push(("state", s));
            }
            pairs.push(("iss", issuer));
            match authorize::redirect_with(&redirect_uri, &pairs) {
                Some(location) => redirect(&location),
                None => error_page(StatusCode::BAD_REQUEST, "The redirect URI is invalid."),
            }
        }
        AuthorizeError::Server(e) => server_error_page(&e),
        _ => error_page(StatusCode::INTERNAL_SERVER_ERROR, "The request failed."),
    }
}

/// The error page of an internal failure: 503 when it is transient (the database cannot be
/// reached, as `temporarily_unavailable` is on the JSON endpoints), 500 otherwise.
pub(crate) fn server_error_page(e: &tessera_core::OAuthError) -> Response {
    log_internal(e);
    if let tessera_core::OAuthError::TemporarilyUnavailable(_) = e {
        return error_page(
            StatusCode::SERVICE_UNAVAILABLE,
            "The service is temporarily unavailable. Try again later.",
        );
    }
    error_page(
        StatusCode::INTERNAL_SERVER_ERROR,
        "The server could not complete the request. Try again later.",
    )
}

/// A `303 See Other` to `location`, never cached, and sending no `Referer` onwards (the
/// page's URL holds the request's `state`).
pub(crate) fn redirect(location: &str) -> Response {
    match HeaderValue::from_str(location) {
        Ok(value) => {
            let mut response = StatusCode::SEE_OTHER.into_response();
            let headers = response.headers_mut();
            headers.insert(header::LOCATION, value);
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            headers.insert(
                header::REFERRER_POLICY,
                HeaderValue::from_static("no-referrer"),
            );
            response
        }
        Err(_) => error_page(StatusCode::BAD_REQUEST, "The redirect URI is invalid."),
    }
}

fn set_cookie(response: &mut Response, state: &AppState, name: &str, value: &str, max_age: u64) {
    if let Some(cookie) = state.cookies.set(name, value, max_age) {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
}
