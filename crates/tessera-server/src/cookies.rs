//! The browser cookies of the authorization endpoint.
//!
//! Two cookies: the signed-in session, and a random value that binds the login form's
//! CSRF token to this browser (the token is a hash of it, so nothing is stored before
//! sign-in). The consent form's CSRF token is a hash of the session id itself: only a page
//! rendered for this signed-in session can approve in its name. Both are HttpOnly and SameSite=Lax; under an https issuer they are `Secure`
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

    /// A `Set-Cookie` value that deletes cookie `name` (same attributes, `Max-Age=0`).
    pub fn clear(&self, name: &str) -> Option<HeaderValue> {
        self.set(name, "", 0)
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
    tagged_hash(b"tessera-login-csrf\0", binding)
}

/// Whether a submitted CSRF token belongs to the binding cookie (constant time).
pub fn csrf_matches(binding: &str, submitted: &str) -> bool {
    constant_time_eq(&csrf_token(binding), submitted)
}

/// The CSRF token the consent form must carry for a session (the session cookie's value).
/// Domain-separated from the login token, so neither can stand in for the other.
pub fn consent_token(session_id: &str) -> String {
    tagged_hash(b"tessera-consent-csrf\0", session_id)
}

/// Whether a submitted consent token belongs to the session (constant time).
pub fn consent_token_matches(session_id: &str, submitted: &str) -> bool {
    constant_time_eq(&consent_token(session_id), submitted)
}

fn tagged_hash(tag: &[u8], value: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(tag);
    hasher.update(value.as_bytes());
    URL_SAFE_NO_PAD.encode(hasher.finalize())
}

fn constant_time_eq(expected: &str, submitted: &str) -> bool {
    expected.as_bytes().ct_eq(submitted.as_bytes()).into()
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
        let c = consent_token("tsn_1");
        assert!(consent_token_matches("tsn_1", &c));
        assert!(!consent_token_matches("tsn_2", &c));
        assert!(!consent_token_matches("tsn_1", &csrf_token("tsn_1")));
        assert!(!csrf_matches("tsn_1", &c));
    }

    #[test]
    fn clearing_keeps_the_attributes_the_prefix_requires() {
        let p = CookiePolicy::for_issuer("https://auth.example");
        let v = p.clear(p.session_name()).unwrap();
        assert_eq!(
            v.to_str().unwrap(),
            "__Host-tessera_session=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax; Secure"
        );
    }
}
