//! `UserStore` on SQLite.

use async_trait::async_trait;
use sqlx::Row;
use sqlx::sqlite::SqliteRow;
use tessera_core::StoreError;
use tessera_core::time::UnixTime;
use tessera_core::user::{User, UserProfile, UserStore};

use super::{SqliteStore, from_json, map_err, to_json, v};

fn row_to_user(row: &SqliteRow) -> Result<User, StoreError> {
    let get = |e: sqlx::Error| StoreError::backend(e);
    Ok(User {
        id: row.try_get("id").map_err(get)?,
        username: row.try_get("username").map_err(get)?,
        password_hash: row.try_get("password_hash").map_err(get)?,
        roles: from_json(row.try_get("roles").map_err(get)?)?,
        profile: UserProfile {
            name: row.try_get("name").map_err(get)?,
            email: row.try_get("email").map_err(get)?,
            email_verified: row.try_get("email_verified").map_err(get)?,
        },
        disabled: row.try_get("disabled").map_err(get)?,
        created_at: UnixTime(row.try_get("created_at").map_err(get)?),
    })
}

#[async_trait]
impl UserStore for SqliteStore {
    async fn create(&self, u: &User) -> Result<(), StoreError> {
        self.execute(
            "INSERT INTO users (id, username, password_hash, roles, name, email, \
             email_verified, disabled, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            vec![
                v(u.id.clone()),
                v(u.username.clone()),
                v(u.password_hash.clone()),
                v(to_json(&u.roles)),
                v(u.profile.name.clone()),
                v(u.profile.email.clone()),
                v(u.profile.email_verified),
                v(u.disabled),
                v(u.created_at.0),
            ],
        )
        .await?;
        Ok(())
    }

    async fn find_by_username(&self, username: &str) -> Result<Option<User>, StoreError> {
        sqlx::query(
            "SELECT id, username, password_hash, roles, name, email, email_verified, disabled, \
             created_at FROM users \
             WHERE username = ?",
        )
        .bind(username)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?
        .as_ref()
        .map(row_to_user)
        .transpose()
    }

    async fn find(&self, id: &str) -> Result<Option<User>, StoreError> {
        sqlx::query(
            "SELECT id, username, password_hash, roles, name, email, email_verified, disabled, \
             created_at FROM users \
             WHERE id = ?",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?
        .as_ref()
        .map(row_to_user)
        .transpose()
    }

    async fn list(&self) -> Result<Vec<User>, StoreError> {
        sqlx::query(
            "SELECT id, username, password_hash, roles, name, email, email_verified, disabled, \
             created_at FROM users \
             ORDER BY username",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?
        .iter()
        .map(row_to_user)
        .collect()
    }

    async fn set_disabled(&self, username: &str, disabled: bool) -> Result<bool, StoreError> {
        let done = self
            .execute(
                "UPDATE users SET disabled = ? WHERE username = ?",
                vec![v(disabled), v(username.to_owned())],
            )
            .await?;
        Ok(done == 1)
    }

    async fn set_password(&self, username: &str, password_hash: &str) -> Result<bool, StoreError> {
        let done = self
            .execute(
                "UPDATE users SET password_hash = ? WHERE username = ?",
                vec![v(password_hash.to_owned()), v(username.to_owned())],
            )
            .await?;
        Ok(done == 1)
    }
}
