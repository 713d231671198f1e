//! Signing out, `GET|POST /api/v2/auth/logout` (OpenID Connect RP-Initiated Logout 1.0):
//! the browser session ends server-side and its cookie is cleared, then the browser goes
//! back to a registered `post_logout_redirect_uri` or sees the "signed out" page.
//!
//! `GET` reads the parameters from the query, `POST` from a form body (RP-Initiated Logout
//! §2). Either way the session ends first, whatever the rest of the request says: a
//! malformed or unverifiable redirect request still signs the user out, it only loses its
//! redirect. No CSRF token is asked for: signing out is what a forged request could do at
//! worst, and an application must be able to send its users here by a plain link.

use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::request::Parts;
use axum::http::{Method, header};
use axum::response::Response;
use tessera_core::audit;
use tessera_core::end_session::LogoutDestination;
use tessera_core::params::Params;

use crate::authorize::{redirect, server_error_page};
use crate::form::read_form;
use crate::pages::signed_out_page;
use crate::{AppState, client_ip, cookies};

/// `GET|POST /api/v2/auth/logout`.
pub async fn logout(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    parts: Parts,
    body: Body,
) -> Response {
    let params = if parts.method == Method::POST {
        read_form(&parts.headers, body).await.ok()
    } else {
        Params::parse(query.unwrap_or_default().as_bytes()).ok()
    };
    if let Some(session_id) = cookies::get(&parts.headers, state.cookies.session_name()) {
        // Whose session it was, for the audit trail (an expired one is ended all the same).
        let user = match state.server.session(session_id).await {
            Ok(found) => found.map(|(session, _)| session.user_id),
            Err(e) => return clear_session(&state, server_error_page(&e)),
        };
        match state.server.end_session(session_id).await {
            Ok(true) => {
                if let Some(user) = user {
                    let client_id = params
                        .as_ref()
                        .and_then(|p| p.get("client_id").ok().flatten());
                    let ip = client_ip::of(&parts, &state.server.policy().trusted_proxies);
                    audit::logout(client_id, &user, ip);
                }
            }
            Ok(false) => {}
            Err(e) => return clear_session(&state, server_error_page(&e)),
        }
    }
    let destination = match params {
        Some(params) => state.server.logout_destination(&params).await,
        None => Ok(LogoutDestination::SignedOutPage {
            refused: Some("the request's parameters are malformed"),
        }),
    };
    let response = match destination {
        Ok(LogoutDestination::Redirect(location)) => redirect(&location),
        Ok(LogoutDestination::SignedOutPage { refused: None }) => signed_out_page(None),
        Ok(LogoutDestination::SignedOutPage {
            refused: Some(reason),
        }) => {
            tracing::info!(reason, "post-logout redirect refused");
            signed_out_page(Some(
                "The application asked to send you back to an address that is not registered \
                 for it, so you stay here.",
            ))
        }
        Err(e) => server_error_page(&e),
    };
    clear_session(&state, response)
}

/// Deletes the session cookie in the browser, whatever happened on the server.
fn clear_session(state: &AppState, mut response: Response) -> Response {
    if let Some(cookie) = state.cookies.clear(state.cookies.session_name()) {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    response
}
