//! The HTML pages: login, consent, error, signed-out and the demo callback, with their
//! security headers.
//!
//! Pages are small enough for `format!` with escaping; every interpolated value goes through
//! [`escape`]. No page runs script, so the Content-Security-Policy forbids all of it, and
//! every page works with JavaScript off: forms post, buttons submit, errors render on the
//! server. Accessibility: every field has a `<label>`, the first field has focus, errors are
//! announced (`role="alert"`) and tied to the fields they concern (`aria-describedby`).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::request_id;

/// The stylesheet, served from `/assets/tessera.css` so the CSP needs no `'unsafe-inline'`.
pub const STYLESHEET: &str = include_str!("../assets/tessera.css");

/// Escapes text for HTML element content and double-quoted attributes.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            _ => out.push(c),
        }
    }
    out
}

/// The pages' Content-Security-Policy: nothing but this origin's stylesheet and images; no
/// script at all, no plugins, no `<base>`, and no framing (clickjacking).
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'self'; \
     img-src 'self'; base-uri 'none'; frame-ancestors 'none'";

/// Wraps a page body in the document skeleton and adds the security headers.
pub fn html(status: StatusCode, title: &str, body: &str) -> Response {
    let document = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title} · Tessera</title><link rel=\"stylesheet\" href=\"/assets/tessera.css\">\
         </head><body><main>{body}</main></body></html>\n",
        title = escape(title),
    );
    let mut response = (status, document).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    // No `form-action`: browsers apply it to the redirect that follows a form post too, and
    // the login and consent forms must redirect to the client's (foreign) redirect URI.
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// An error page for requests that must not be redirected (RFC 6749 §4.1.2.1), with a
/// fresh request id that is shown on the page, sent as `X-Request-Id` and logged with the
/// reason, so a screenshot leads an operator to the log line.
pub fn error_page(status: StatusCode, message: &str) -> Response {
    let id = request_id::mint();
    tracing::warn!(
        request_id = %id,
        status = status.as_u16(),
        reason = %message,
        "request refused with an error page"
    );
    let body = format!(
        "<h1>This sign-in request cannot continue</h1><p class=\"error\" role=\"alert\">{}</p>\
         <p>Return to the application and start again. If this keeps happening, tell the \
         application's administrator, quoting the request ID.</p>\
         <p class=\"request-id\">Request ID: <code id=\"request-id\">{id}</code></p>",
        escape(message),
        id = escape(&id),
    );
    let mut response = html(status, "Error", &body);
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", value);
    }
    response
}

/// The page after signing out; `note` says why the browser was not sent back to the
/// application, when it asked to be.
pub fn signed_out_page(note: Option<&str>) -> Response {
    let note = note
        .map(|n| format!("<p class=\"note\">{}</p>", escape(n)))
        .unwrap_or_default();
    let body = format!(
        "<h1>You are signed out</h1><p>You can close this window, or return to the \
         application and sign in again.</p>{note}"
    );
    html(StatusCode::OK, "Signed out", &body)
}

/// What the consent page shows.
#[derive(Debug)]
pub struct ConsentView<'a> {
    /// The client's display name.
    pub client_name: &'a str,
    /// Who is signed in.
    pub username: &'a str,
    /// The host the browser goes back to (from the verified redirect URI).
    pub return_to: &'a str,
    /// Each requested scope with its description, if one is configured.
    pub scopes: Vec<(&'a str, Option<&'a str>)>,
    /// The authorization request, carried through the POST.
    pub hidden: Vec<(&'a str, &'a str)>,
    /// The form's CSRF token.
    pub csrf_token: &'a str,
}

/// The consent page: what the client asks for, in words, with Allow and Deny.
pub fn consent_page(view: &ConsentView<'_>) -> Response {
    let mut scopes = String::new();
    for (scope, description) in &view.scopes {
        // A scope without a description is shown by its name (scope names are public).
        scopes.push_str(&match description {
            Some(d) => format!(
                "<li>{}<span class=\"scope-name\">{}</span></li>",
                escape(d),
                escape(scope)
            ),
            None => format!("<li><code>{}</code></li>", escape(scope)),
        });
    }
    let asks = if scopes.is_empty() {
        "<p>It asks to know that you are signed in, and nothing more.</p>".to_owned()
    } else {
        format!("<p>It asks to:</p><ul class=\"scopes\">{scopes}</ul>")
    };
    let body = format!(
        "<h1>Allow <strong>{client}</strong> access?</h1>\
         <p>Signed in as <strong>{user}</strong>. <a href=\"{logout}\">Not you?</a></p>\
         {asks}\
         <form method=\"post\" action=\"{action}\">{fields}\
         <input type=\"hidden\" name=\"csrf_token\" value=\"{csrf}\">\
         <div class=\"actions\">\
         <button type=\"submit\" name=\"decision\" value=\"approve\" autofocus>Allow</button>\
         <button type=\"submit\" name=\"decision\" value=\"deny\" class=\"secondary\">Deny</button>\
         </div></form>\
         <p class=\"note\">Allowing sends you back to <strong>{return_to}</strong>. Your choice is \
         remembered for this application until an administrator revokes it.</p>",
        client = escape(view.client_name),
        user = escape(view.username),
        logout = crate::paths::LOGOUT,
        action = crate::paths::CONSENT,
        fields = hidden_fields(view.hidden.iter().copied()),
        csrf = escape(view.csrf_token),
        return_to = escape(view.return_to),
    );
    html(StatusCode::OK, "Allow access", &body)
}

fn hidden_fields<'a>(hidden: impl Iterator<Item = (&'a str, &'a str)>) -> String {
    let mut fields = String::new();
    for (name, value) in hidden {
        fields.push_str(&format!(
            "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
            escape(name),
            escape(value)
        ));
    }
    fields
}

/// The login form. `hidden` carries the authorization request through the POST.
pub fn login_page<'a>(
    status: StatusCode,
    client_name: &str,
    hidden: impl Iterator<Item = (&'a str, &'a str)>,
    csrf_token: &str,
    username: &str,
    error: Option<&str>,
) -> Response {
    let fields = hidden_fields(hidden);
    // The error names no field (that would tell which one was wrong); both point at it.
    let described = if error.is_some() {
        " aria-describedby=\"login-error\" aria-invalid=\"true\""
    } else {
        ""
    };
    let error = error
        .map(|e| {
            format!(
                "<p class=\"error\" role=\"alert\" id=\"login-error\">{}</p>",
                escape(e)
            )
        })
        .unwrap_or_default();
    let body = format!(
        "<h1>Sign in</h1><p>to continue to <strong>{client}</strong></p>{error}\
         <form method=\"post\" action=\"{action}\">{fields}\
         <input type=\"hidden\" name=\"csrf_token\" value=\"{csrf}\">\
         <label for=\"username\">Username</label>\
         <input type=\"text\" id=\"username\" name=\"username\" value=\"{username}\" \
         autocomplete=\"username\" autocapitalize=\"none\" spellcheck=\"false\" \
         maxlength=\"128\" required autofocus{described}>\
         <label for=\"password\">Password</label>\
         <input type=\"password\" id=\"password\" name=\"password\" \
         autocomplete=\"current-password\" required{described}>\
         <button type=\"submit\">Sign in</button></form>",
        client = escape(client_name),
        action = crate::paths::AUTHORIZE,
        csrf = escape(csrf_token),
        username = escape(username),
    );
    html(status, "Sign in", &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_neutralises_markup() {
        assert_eq!(
            escape(r#"<script>"a"&'b'</script>"#),
            "&lt;script&gt;&quot;a&quot;&amp;&#x27;b&#x27;&lt;/script&gt;"
        );
    }
}
