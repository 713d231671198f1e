//! `UserStore` on PostgreSQL.

use async_trait::async_trait;
use sqlx::Row;
use sqlx::postgres::PgRow;
use tessera_core::StoreError;
use tessera_core::time::UnixTime;
use tessera_core::user::{User, UserProfile, UserStore};

use super::{PostgresStore, from_json, map_err, retry, to_json};

fn row_to_user(row: &PgRow) -> Result<User, StoreError> {
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
impl UserStore for PostgresStore {
    async fn create(&self, u: &User) -> Result<(), StoreError> {
        let roles = to_json(&u.roles);
        retry(|| async {
            sqlx::query(
                "INSERT INTO users (id, username, password_hash, roles, name, email, \
                 email_verified, disabled, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(&u.id)
            .bind(&u.username)
            .bind(&u.password_hash)
            .bind(&roles)
            .bind(&u.profile.name)
            .bind(&u.profile.email)
            .bind(u.profile.email_verified)
            .bind(u.disabled)
            .bind(u.created_at.0)
            .execute(&self.pool)
            .await?;
            Ok(())
        })
        .await
    }

    async fn find_by_username(&self, username: &str) -> Result<Option<User>, StoreError> {
        sqlx::query(
            "SELECT id, username, password_hash, roles, name, email, email_verified, disabled, \
             created_at FROM users \
             WHERE username = $1",
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
             WHERE id = $1",
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
        // COLLATE "C": byte order, as SQLite sorts, whatever the database's locale.
        sqlx::query(
            "SELECT id, username, password_hash, roles, name, email, email_verified, disabled, \
             created_at FROM users \
             ORDER BY username COLLATE \"C\"",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?
        .iter()
        .map(row_to_user)
        .collect()
    }

    async fn set_disabled(&self, username: &str, disabled: bool) -> Result<bool, StoreError> {
        retry(|| async {
            let done = sqlx::query("UPDATE users SET disabled = $1 WHERE username = $2")
                .bind(disabled)
                .bind(username)
                .execute(&self.pool)
                .await?;
            Ok(done.rows_affected() == 1)
        })
        .await
    }

    async fn set_password(&self, username: &str, password_hash: &str) -> Result<bool, StoreError> {
        retry(|| async {
            let done = sqlx::query("UPDATE users SET password_hash = $1 WHERE username = $2")
                .bind(password_hash)
                .bind(username)
                .execute(&self.pool)
                .await?;
            Ok(done.rows_affected() == 1)
        })
        .await
    }
}
