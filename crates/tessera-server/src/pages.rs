//! The HTML pages: login, error and the demo callback, with their security headers.
//!
//! Pages are small enough for `format!` with escaping; every interpolated value goes through
//! [`escape`]. No page runs script, so the Content-Security-Policy forbids all of it.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

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
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'self'; img-src 'self'; base-uri 'none'; \
             frame-ancestors 'none'",
        ),
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

/// An error page for requests that must not be redirected (RFC 6749 §4.1.2.1).
pub fn error_page(status: StatusCode, message: &str) -> Response {
    let body = format!(
        "<h1>This sign-in request cannot continue</h1><p class=\"error\" role=\"alert\">{}</p>\
         <p>Return to the application and start again. If this keeps happening, tell the \
         application's administrator.</p>",
        escape(message)
    );
    html(status, "Error", &body)
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
    let mut fields = String::new();
    for (name, value) in hidden {
        fields.push_str(&format!(
            "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
            escape(name),
            escape(value)
        ));
    }
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
         autocomplete=\"username\" autocapitalize=\"none\" required autofocus>\
         <label for=\"password\">Password</label>\
         <input type=\"password\" id=\"password\" name=\"password\" \
         autocomplete=\"current-password\" required>\
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
