//! Scopes (RFC 6749 §3.3): space-delimited, case-sensitive scope tokens.

use std::borrow::Cow;
use std::collections::BTreeSet;

use crate::error::OAuthError;

/// A set of scope tokens, kept sorted so its string form is canonical.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScopeSet(BTreeSet<String>);

impl ScopeSet {
    /// Parses a `scope` parameter. RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E ),
    /// separated by single spaces.
    pub fn parse(raw: &str) -> Result<Self, OAuthError> {
        let mut set = BTreeSet::new();
        for token in raw.split(' ') {
            let valid = !token.is_empty()
                && token
                    .bytes()
                    .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b));
            if !valid {
                return Err(OAuthError::InvalidScope(Cow::Borrowed(
                    "scope must be space-separated scope tokens",
                )));
            }
            set.insert(token.to_owned());
        }
        Ok(Self(set))
    }

    /// Builds a set from tokens that are already known to be valid.
    pub fn from_tokens<S: Into<String>>(tokens: impl IntoIterator<Item = S>) -> Self {
        Self(tokens.into_iter().map(Into::into).collect())
    }

    /// The scope the client asked for, checked against what it may ask for; when nothing was
    /// asked, everything allowed is granted (RFC 6749 §3.3 lets the server pick a default).
    pub fn requested(requested: Option<&str>, allowed: &ScopeSet) -> Result<Self, OAuthError> {
        let Some(raw) = requested else {
            return Ok(allowed.clone());
        };
        let wanted = Self::parse(raw)?;
        if let Some(unknown) = wanted.0.iter().find(|s| !allowed.0.contains(*s)) {
            // Scope names are public vocabulary, not secrets; naming the culprit helps.
            return Err(OAuthError::InvalidScope(Cow::Owned(format!(
                "scope `{unknown}` is not allowed for this client"
            ))));
        }
        Ok(wanted)
    }

    /// The set without `scope`.
    pub fn without(mut self, scope: &str) -> ScopeSet {
        self.0.remove(scope);
        self
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `scope` is in the set.
    pub fn contains(&self, scope: &str) -> bool {
        self.0.contains(scope)
    }

    /// Whether every scope of this set is also in `other`.
    pub fn is_subset(&self, other: &ScopeSet) -> bool {
        self.0.is_subset(&other.0)
    }

    /// The scopes of both sets.
    pub fn union(&self, other: &ScopeSet) -> ScopeSet {
        Self(self.0.union(&other.0).cloned().collect())
    }

    /// The tokens in canonical (sorted) order.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }
}

impl std::fmt::Display for ScopeSet {
    /// The space-delimited wire form.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut first = true;
        for s in &self.0 {
            if !first {
                f.write_str(" ")?;
            }
            f.write_str(s)?;
            first = false;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_canonically() {
        let s = ScopeSet::parse("write read").unwrap();
        assert_eq!(s.to_string(), "read write");
    }

    #[test]
    fn rejects_malformed_tokens() {
        for bad in ["", "a  b", " a", "a\"b", "a\\b", "é"] {
            assert_eq!(
                ScopeSet::parse(bad).unwrap_err().code(),
                "invalid_scope",
                "{bad:?}"
            );
        }
    }

    #[test]
    fn subset_and_union() {
        let read = ScopeSet::from_tokens(["read"]);
        let both = ScopeSet::from_tokens(["read", "write"]);
        assert!(read.is_subset(&both) && !both.is_subset(&read));
        assert!(ScopeSet::default().is_subset(&read));
        assert_eq!(read.union(&ScopeSet::from_tokens(["write"])), both);
        assert_eq!(both.clone().without("write"), read);
        assert_eq!(read.clone().without("write"), read);
    }

    #[test]
    fn requested_must_be_subset_of_allowed() {
        let allowed = ScopeSet::from_tokens(["read", "write"]);
        assert_eq!(
            ScopeSet::requested(Some("read"), &allowed)
                .unwrap()
                .to_string(),
            "read"
        );
        assert_eq!(ScopeSet::requested(None, &allowed).unwrap(), allowed);
        let err = ScopeSet::requested(Some("read admin"), &allowed).unwrap_err();
        assert_eq!(err.code(), "invalid_scope");
        assert!(err.description().contains("admin"));
    }
}
