//! `SessionStore` on SQLite.

use async_trait::async_trait;
use sqlx::Row;
use tessera_core::StoreError;
use tessera_core::secret::SecretHash;
use tessera_core::session::{Session, SessionStore};
use tessera_core::time::UnixTime;

use super::{SqliteStore, hash_from, map_err, v};

#[async_trait]
impl SessionStore for SqliteStore {
    async fn create(&self, s: &Session) -> Result<(), StoreError> {
        self.execute(
            "INSERT INTO browser_sessions (id_hash, user_id, auth_time, expires_at) \
             VALUES (?, ?, ?, ?)",
            vec![
                v(s.id_hash.0.to_vec()),
                v(s.user_id.clone()),
                v(s.auth_time.0),
                v(s.expires_at.0),
            ],
        )
        .await?;
        Ok(())
    }

    async fn find(&self, id_hash: &SecretHash) -> Result<Option<Session>, StoreError> {
        let row = sqlx::query(
            "SELECT id_hash, user_id, auth_time, expires_at FROM browser_sessions \
             WHERE id_hash = ?",
        )
        .bind(id_hash.0.to_vec())
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?;
        let Some(row) = row else { return Ok(None) };
        let get = |e: sqlx::Error| StoreError::backend(e);
        Ok(Some(Session {
            id_hash: hash_from(row.try_get("id_hash").map_err(get)?)?,
            user_id: row.try_get("user_id").map_err(get)?,
            auth_time: UnixTime(row.try_get("auth_time").map_err(get)?),
            expires_at: UnixTime(row.try_get("expires_at").map_err(get)?),
        }))
    }

    async fn delete(&self, id_hash: &SecretHash) -> Result<bool, StoreError> {
        let done = self
            .execute(
                "DELETE FROM browser_sessions WHERE id_hash = ?",
                vec![v(id_hash.0.to_vec())],
            )
            .await?;
        Ok(done == 1)
    }
}
