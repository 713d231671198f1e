//! Finding an issuer's endpoints from its URL: authorization server metadata (RFC 8414),
//! with OpenID Connect discovery as the fallback.
//!
//! The document's `issuer` must be identical to the URL asked about (RFC 8414 §3.3), or an
//! attacker able to serve one document could make the guard trust another issuer's keys.
//! Redirects are not followed, for the same reason.

use std::time::Duration;

use serde::Deserialize;

use crate::config::{GuardConfig, IntrospectionConfig};

/// The endpoints of an issuer the guard needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuerMetadata {
    /// The issuer identifier, identical to the one asked about.
    pub issuer: String,
    /// Where its signing keys are published.
    pub jwks_uri: String,
    /// Its RFC 7662 introspection endpoint, if it has one.
    pub introspection_endpoint: Option<String>,
}

impl IssuerMetadata {
    /// A guard configuration for tokens of this issuer with `audience` (JWKS mode).
    pub fn guard_config(&self, audience: impl Into<String>) -> GuardConfig {
        GuardConfig::new(&self.jwks_uri, &self.issuer, audience)
    }

    /// A guard configuration in introspection mode, as `client_id`; `None` when the issuer
    /// advertises no introspection endpoint.
    pub fn introspecting_config(
        &self,
        audience: impl Into<String>,
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
    ) -> Option<GuardConfig> {
        let mut config = self.guard_config(audience);
        config.introspection = Some(IntrospectionConfig {
            endpoint: self.introspection_endpoint.clone()?,
            client_id: client_id.into(),
            client_secret: client_secret.into(),
        });
        Some(config)
    }
}

/// Why discovery failed.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DiscoveryError {
    /// The issuer is not an absolute http(s) URL without query or fragment.
    #[error("the issuer must be an absolute http(s) URL without query or fragment")]
    IssuerUrl,
    /// No metadata document could be fetched.
    #[error("no metadata at {0}: {1}")]
    Unreachable(String, String),
    /// A document was found but is not valid metadata.
    #[error("the metadata at {0} is invalid: {1}")]
    Invalid(String, &'static str),
    /// The document names another issuer (RFC 8414 §3.3).
    #[error("the metadata at {url} is for issuer {found:?}, not {expected:?}")]
    IssuerMismatch {
        /// The document's URL.
        url: String,
        /// The issuer asked about.
        expected: String,
        /// The issuer the document names.
        found: String,
    },
}

#[derive(Deserialize)]
struct Document {
    issuer: Option<String>,
    jwks_uri: Option<String>,
    introspection_endpoint: Option<String>,
}

/// Where the metadata of `issuer` may be: RFC 8414 §3.1 (the well-known segment inserted
/// before the issuer's path), then OpenID Connect Discovery 1.0 §4 (appended).
pub fn metadata_urls(issuer: &str) -> Result<[String; 2], DiscoveryError> {
    let url = reqwest::Url::parse(issuer).map_err(|_| DiscoveryError::IssuerUrl)?;
    if !matches!(url.scheme(), "http" | "https")
        || url.query().is_some()
        || url.fragment().is_some()
        || url.host_str().is_none()
    {
        return Err(DiscoveryError::IssuerUrl);
    }
    let path = url.path().trim_end_matches('/');
    let origin = url.origin().ascii_serialization();
    Ok([
        format!("{origin}/.well-known/oauth-authorization-server{path}"),
        format!("{origin}{path}/.well-known/openid-configuration"),
    ])
}

/// Fetches the metadata of `issuer` (exactly as tokens name it in `iss`).
pub async fn discover(issuer: &str, timeout: Duration) -> Result<IssuerMetadata, DiscoveryError> {
    let client = reqwest::Client::builder()
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| DiscoveryError::Unreachable(issuer.to_owned(), e.to_string()))?;
    let mut last = None;
    for url in metadata_urls(issuer)? {
        match fetch(&client, &url).await {
            Ok(Some(document)) => return check(issuer, &url, document),
            // Not there: try the other location.
            Ok(None) => last = Some(DiscoveryError::Unreachable(url, "not found".into())),
            Err(error) => return Err(error),
        }
    }
    Err(last.unwrap_or(DiscoveryError::IssuerUrl))
}

/// The document at `url`; `None` when the server says it has none there (404).
async fn fetch(client: &reqwest::Client, url: &str) -> Result<Option<Document>, DiscoveryError> {
    let unreachable = |reason: String| DiscoveryError::Unreachable(url.to_owned(), reason);
    let response = client
        .get(url)
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(|e| unreachable(e.without_url().to_string()))?;
    match response.status().as_u16() {
        200 => response
            .json::<Document>()
            .await
            .map(Some)
            .map_err(|_| DiscoveryError::Invalid(url.to_owned(), "not a JSON metadata object")),
        404 | 410 => Ok(None),
        status => Err(unreachable(format!("HTTP {status}"))),
    }
}

fn check(issuer: &str, url: &str, document: Document) -> Result<IssuerMetadata, DiscoveryError> {
    let found = document
        .issuer
        .ok_or_else(|| DiscoveryError::Invalid(url.to_owned(), "no issuer"))?;
    if found != issuer {
        return Err(DiscoveryError::IssuerMismatch {
            url: url.to_owned(),
            expected: issuer.to_owned(),
            found,
        });
    }
    let absolute = |value: Option<String>| {
        value.filter(|v| reqwest::Url::parse(v).is_ok_and(|u| u.has_host()))
    };
    let jwks_uri = absolute(document.jwks_uri)
        .ok_or_else(|| DiscoveryError::Invalid(url.to_owned(), "no absolute jwks_uri"))?;
    Ok(IssuerMetadata {
        issuer: found,
        jwks_uri,
        introspection_endpoint: absolute(document.introspection_endpoint),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn well_known_urls_follow_rfc_8414_then_oidc() {
        assert_eq!(
            metadata_urls("https://id.example.com").unwrap(),
            [
                "https://id.example.com/.well-known/oauth-authorization-server",
                "https://id.example.com/.well-known/openid-configuration",
            ]
        );
        assert_eq!(
            metadata_urls("http://127.0.0.1:8080/tenant/a").unwrap(),
            [
                "http://127.0.0.1:8080/.well-known/oauth-authorization-server/tenant/a",
                "http://127.0.0.1:8080/tenant/a/.well-known/openid-configuration",
            ]
        );
        for bad in [
            "id.example.com",
            "ftp://x",
            "https://x/?a=1",
            "https://x/#f",
        ] {
            assert_eq!(metadata_urls(bad), Err(DiscoveryError::IssuerUrl), "{bad}");
        }
    }
}
