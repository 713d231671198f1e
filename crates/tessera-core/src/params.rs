//! Request parameters, parsed strictly.
//!
//! RFC 6749 §3.1 and §3.2: "Request and response parameters MUST NOT be included more than
//! once", and parameters sent without a value are treated as omitted. The parser refuses
//! what lenient parsers silently repair: invalid UTF-8 (instead of replacing it with
//! U+FFFD), too many parameters, and absurdly long names or values.

use std::borrow::Cow;

use percent_encoding::percent_decode;

use crate::error::OAuthError;

/// The most parameters one request may carry.
pub const MAX_PARAMS: usize = 64;
/// The longest parameter value accepted, in bytes after decoding.
pub const MAX_VALUE_LEN: usize = 4096;
/// The longest parameter name accepted, in bytes after decoding.
pub const MAX_NAME_LEN: usize = 64;

/// Why a parameter string was refused.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamsError {
    /// A name or value is not valid UTF-8 once percent-decoded.
    #[error("parameters must be valid UTF-8")]
    InvalidUtf8,
    /// More than [`MAX_PARAMS`] parameters.
    #[error("too many parameters")]
    TooMany,
    /// A name or value is longer than allowed.
    #[error("a parameter is too long")]
    TooLong,
    /// The named parameter appears more than once (RFC 6749 §3.1).
    #[error("parameter `{0}` is repeated")]
    Repeated(String),
}

impl From<ParamsError> for OAuthError {
    fn from(e: ParamsError) -> Self {
        OAuthError::InvalidRequest(Cow::Owned(e.to_string()))
    }
}

/// A parsed `application/x-www-form-urlencoded` parameter set.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Params {
    pairs: Vec<(String, String)>,
}

impl std::fmt::Debug for Params {
    // Values may be codes, secrets or passwords: show names only.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.pairs.iter().map(|(k, _)| k))
            .finish()
    }
}

impl Params {
    /// Parses a form body or a URL query string.
    pub fn parse(input: &[u8]) -> Result<Self, ParamsError> {
        let mut pairs = Vec::new();
        for piece in input.split(|b| *b == b'&').filter(|p| !p.is_empty()) {
            if pairs.len() == MAX_PARAMS {
                return Err(ParamsError::TooMany);
            }
            let (name, value) = match piece.iter().position(|b| *b == b'=') {
                Some(i) => (&piece[..i], &piece[i + 1..]),
                None => (piece, &b""[..]),
            };
            let name = decode(name, MAX_NAME_LEN)?;
            let value = decode(value, MAX_VALUE_LEN)?;
            pairs.push((name, value));
        }
        Ok(Self { pairs })
    }

    /// Builds a parameter set from pairs (for callers that already hold decoded values).
    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Self {
            pairs: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }

    /// The single non-empty value of `name`; `None` when absent or empty (RFC 6749 §3.1:
    /// parameters sent without a value are treated as omitted); an error when repeated.
    pub fn get(&self, name: &str) -> Result<Option<&str>, ParamsError> {
        let mut found = None;
        for (k, v) in &self.pairs {
            if k == name && !v.is_empty() {
                if found.is_some() {
                    return Err(ParamsError::Repeated(name.to_owned()));
                }
                found = Some(v.as_str());
            }
        }
        Ok(found)
    }

    /// Like [`get`](Self::get) but a missing parameter is an `invalid_request` naming it.
    pub fn require(&self, name: &str) -> Result<&str, OAuthError> {
        self.get(name)?.ok_or_else(|| {
            OAuthError::InvalidRequest(Cow::Owned(format!("missing parameter `{name}`")))
        })
    }

    /// All (name, value) pairs in order, for re-rendering a request in a form.
    pub fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.pairs.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

fn decode(raw: &[u8], max: usize) -> Result<String, ParamsError> {
    // '+' is a space in form encoding (WHATWG URL §5.1); replace before percent-decoding so
    // that an encoded "%2B" stays a plus.
    let spaced: Cow<'_, [u8]> = if raw.contains(&b'+') {
        Cow::Owned(
            raw.iter()
                .map(|b| if *b == b'+' { b' ' } else { *b })
                .collect(),
        )
    } else {
        Cow::Borrowed(raw)
    };
    let bytes: Vec<u8> = percent_decode(&spaced).collect();
    if bytes.len() > max {
        return Err(ParamsError::TooLong);
    }
    String::from_utf8(bytes).map_err(|_| ParamsError::InvalidUtf8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_plus_and_percent_escapes() {
        let p = Params::parse(b"a=x+y&b=%2B%20z&c=%C3%A9").unwrap();
        assert_eq!(p.get("a").unwrap(), Some("x y"));
        assert_eq!(p.get("b").unwrap(), Some("+ z"));
        assert_eq!(p.get("c").unwrap(), Some("é"));
    }

    #[test]
    fn empty_value_counts_as_absent() {
        let p = Params::parse(b"scope=&state").unwrap();
        assert_eq!(p.get("scope").unwrap(), None);
        assert_eq!(p.get("state").unwrap(), None);
    }

    #[test]
    fn repeated_parameter_is_refused() {
        let p = Params::parse(b"code=a&code=b").unwrap();
        assert_eq!(p.get("code"), Err(ParamsError::Repeated("code".into())));
    }

    #[test]
    fn invalid_utf8_is_refused_not_replaced() {
        assert_eq!(Params::parse(b"a=%FF"), Err(ParamsError::InvalidUtf8));
        assert_eq!(Params::parse(b"a=\xff"), Err(ParamsError::InvalidUtf8));
    }

    #[test]
    fn limits_are_enforced() {
        let long = format!("a={}", "x".repeat(MAX_VALUE_LEN + 1));
        assert_eq!(Params::parse(long.as_bytes()), Err(ParamsError::TooLong));
        let many = vec!["a=b"; MAX_PARAMS + 1].join("&");
        assert_eq!(Params::parse(many.as_bytes()), Err(ParamsError::TooMany));
    }

    #[test]
    fn debug_shows_names_not_values() {
        let p = Params::parse(b"password=hunter2").unwrap();
        assert!(!format!("{p:?}").contains("hunter2"));
    }
}
