//! The demo callback page (`serve --demo` only): shows the code a browser flow returned and
//! the ready-to-paste `curl` that redeems it, so a newcomer completes the flow in a minute.

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use tessera_core::params::Params;

use crate::AppState;
use crate::pages::{error_page, escape, html};

/// What the demo page needs to know about the demo public client.
#[derive(Debug, Clone)]
pub struct DemoInfo {
    /// The public client's id.
    pub client_id: String,
    /// Its redirect URI (this page).
    pub redirect_uri: String,
    /// The PKCE verifier whose challenge the printed authorize URL carries.
    pub code_verifier: String,
}

/// `GET /demo/callback`.
pub async fn callback(State(state): State<AppState>, RawQuery(query): RawQuery) -> Response {
    let Some(demo) = state.demo.as_ref() else {
        return error_page(StatusCode::NOT_FOUND, "The demo is not enabled.");
    };
    let Ok(params) = Params::parse(query.unwrap_or_default().as_bytes()) else {
        return error_page(StatusCode::BAD_REQUEST, "Malformed callback.");
    };
    if let Ok(Some(error)) = params.get("error") {
        let body = format!(
            "<h1>The authorization failed</h1><p class=\"error\">{}</p>",
            escape(error)
        );
        return html(StatusCode::OK, "Demo callback", &body);
    }
    let Ok(Some(code)) = params.get("code") else {
        return error_page(StatusCode::BAD_REQUEST, "No code in the callback.");
    };
    let token_url = format!("{}{}", state.server.policy().issuer, crate::paths::TOKEN);
    let curl = format!(
        "curl -s {token_url} -d grant_type=authorization_code -d client_id={} \
         -d code={code} -d code_verifier={} --data-urlencode redirect_uri={}",
        demo.client_id, demo.code_verifier, demo.redirect_uri
    );
    let body = format!(
        "<h1>Signed in</h1><p>The server redirected here with a single-use code, valid for \
         60 seconds. Redeem it with the PKCE verifier:</p><pre>{}</pre>",
        escape(&curl)
    );
    html(StatusCode::OK, "Demo callback", &body)
}
