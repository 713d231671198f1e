//! Resource owners: users who sign in on the login page.
//!
//! Passwords are hashed with Argon2id (OWASP ASVS V2.4) in the PHC string format, so the
//! parameters travel with each hash and can be raised later without a migration.

use argon2::{Argon2, PasswordHash, PasswordHasher, PasswordVerifier};
use async_trait::async_trait;

use crate::error::StoreError;
use crate::time::UnixTime;

/// A user account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Stable, never-reused identifier; the `sub` claim.
    pub id: String,
    /// The login name, unique.
    pub username: String,
    /// Argon2id PHC string.
    pub password_hash: String,
    /// Role names, carried in the `roles` claim for RBAC.
    pub roles: Vec<String>,
    /// Standard claims released under the `profile` and `email` scopes (OIDC Core §5.1).
    pub profile: UserProfile,
    /// A disabled user cannot sign in and cannot redeem codes.
    pub disabled: bool,
    /// When the account was created.
    pub created_at: UnixTime,
}

/// What a user's ID token and userinfo answer may say about them (OIDC Core §5.1, §5.4):
/// `name` under the `profile` scope, `email` and `email_verified` under `email`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserProfile {
    /// Full name, for display (`name`).
    pub name: Option<String>,
    /// Email address (`email`).
    pub email: Option<String>,
    /// Whether the operator vouches that the address belongs to the user
    /// (`email_verified`); Tessera itself sends no verification mail.
    pub email_verified: bool,
}

/// Why a password could not be hashed.
#[derive(Debug, thiserror::Error)]
#[error("password hashing failed")]
pub struct HashError;

/// Hashes a password with Argon2id and a random salt.
pub fn hash_password(password: &str) -> Result<String, HashError> {
    let hash: PasswordHash = Argon2::default()
        .hash_password(password.as_bytes())
        .map_err(|_| HashError)?;
    Ok(hash.to_string())
}

/// A valid Argon2id hash of a random password no one knows, verified against when the user
/// does not exist so that the response time does not reveal which usernames exist.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$9d3E2wxWQyzWG8mUcOlZ3xy6bJ0mtYN2kbVJf5Oyz8A";

/// Checks a password against a user (or against nothing, in the same time).
pub fn verify_password(user: Option<&User>, password: &str) -> bool {
    let hash = user.map_or(DUMMY_HASH, |u| u.password_hash.as_str());
    let ok = PasswordHash::new(hash)
        .map(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false);
    ok && user.is_some_and(|u| !u.disabled)
}

/// Storage of user accounts.
///
/// Contract: ids and usernames are unique; `create` of an existing username returns
/// `StoreError::Conflict` and changes nothing.
#[async_trait]
pub trait UserStore: Send + Sync {
    /// Creates a user.
    async fn create(&self, user: &User) -> Result<(), StoreError>;
    /// The user with this login name.
    async fn find_by_username(&self, username: &str) -> Result<Option<User>, StoreError>;
    /// The user with this id.
    async fn find(&self, id: &str) -> Result<Option<User>, StoreError>;
    /// All users, ordered by username.
    async fn list(&self) -> Result<Vec<User>, StoreError>;
    /// Enables or disables a user; `false` if there is no such user.
    async fn set_disabled(&self, username: &str, disabled: bool) -> Result<bool, StoreError>;
    /// Replaces a user's password hash; `false` if there is no such user.
    async fn set_password(&self, username: &str, password_hash: &str) -> Result<bool, StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(hash: String, disabled: bool) -> User {
        User {
            id: "u1".into(),
            username: "alice".into(),
            password_hash: hash,
            roles: vec![],
            profile: UserProfile::default(),
            disabled,
            created_at: UnixTime(0),
        }
    }

    #[test]
    fn hash_is_argon2id_and_verifies() {
        let h = hash_password("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password(
            Some(&user(h.clone(), false)),
            "correct horse"
        ));
        assert!(!verify_password(Some(&user(h.clone(), false)), "wrong"));
        assert!(!verify_password(Some(&user(h, true)), "correct horse"));
    }

    #[test]
    fn unknown_user_never_verifies() {
        assert!(!verify_password(None, ""));
        assert!(
            PasswordHash::new(DUMMY_HASH).is_ok(),
            "dummy hash must parse"
        );
    }
}
