//! The browser cookies of the authorization endpoint.
//!
//! Two cookies: the signed-in session, and a random value that binds the login form's
//! CSRF token to this browser (the token is a hash of it, so nothing is stored before
//! sign-in). Both are HttpOnly and SameSite=Lax; under an https issuer they are `Secure`
//! and carry the `__Host-` prefix, which pins them to this host and path `/`.

use axum::http::{HeaderMap, HeaderValue, header};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Cookie names and attributes for one issuer.
#[derive(Debug, Clone)]
pub struct CookiePolicy {
    secure: bool,
}

impl CookiePolicy {
    /// The policy for an issuer URL: secure cookies whenever it is https.
    pub fn for_issuer(issuer: &str) -> Self {
        Self {
            secure: issuer.starts_with("https://"),
        }
    }

    /// The session cookie's name.
    pub fn session_name(&self) -> &'static str {
        if self.secure {
            "__Host-tessera_session"
        } else {
            "tessera_session"
        }
    }

    /// The CSRF-binding cookie's name.
    pub fn csrf_name(&self) -> &'static str {
        if self.secure {
            "__Host-tessera_csrf"
        } else {
            "tessera_csrf"
        }
    }

    /// A `Set-Cookie` value for `name=value` living `max_age` seconds.
    pub fn set(&self, name: &str, value: &str, max_age: u64) -> Option<HeaderValue> {
        let secure = if self.secure { "; Secure" } else { "" };
        HeaderValue::from_str(&format!(
            "{name}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Lax{secure}"
        ))
        .ok()
    }
}

/// The value of cookie `name` in the request, if present.
pub fn get<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
        .filter(|v| !v.is_empty())
}

/// The CSRF token the login form must carry for a given binding cookie.
pub fn csrf_token(binding: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(b"tessera-login-csrf\0");
    hasher.update(binding.as_bytes());
    URL_SAFE_NO_PAD.encode(hasher.finalize())
}

/// Whether a submitted CSRF token belongs to the binding cookie (constant time).
pub fn csrf_matches(binding: &str, submitted: &str) -> bool {
    csrf_token(binding)
        .as_bytes()
        .ct_eq(submitted.as_bytes())
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_issuers_get_host_prefixed_secure_cookies() {
        let p = CookiePolicy::for_issuer("https://auth.example");
        assert_eq!(p.session_name(), "__Host-tessera_session");
        let v = p.set(p.session_name(), "x", 60).unwrap();
        let v = v.to_str().unwrap();
        assert!(v.contains("Secure") && v.contains("HttpOnly") && v.contains("SameSite=Lax"));
        let p = CookiePolicy::for_issuer("http://127.0.0.1:8080");
        assert!(
            !p.set("a", "b", 1)
                .unwrap()
                .to_str()
                .unwrap()
                .contains("Secure")
        );
    }

    #[test]
    fn cookie_lookup_and_csrf_binding() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; tessera_csrf=xyz"),
        );
        assert_eq!(get(&h, "tessera_csrf"), Some("xyz"));
        assert_eq!(get(&h, "missing"), None);
        let t = csrf_token("xyz");
        assert!(csrf_matches("xyz", &t));
        assert!(!csrf_matches("other", &t));
    }
}
