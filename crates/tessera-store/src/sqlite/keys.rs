//! `KeyStore` on SQLite.

use async_trait::async_trait;
use sqlx::Row;
use tessera_core::StoreError;
use tessera_core::keys::{KeyStore, StoredKey};
use tessera_core::time::UnixTime;

use super::{SqliteStore, map_err};

#[async_trait]
impl KeyStore for SqliteStore {
    async fn insert(&self, k: &StoredKey) -> Result<(), StoreError> {
        let public = serde_json::to_string(&k.public).map_err(StoreError::backend)?;
        sqlx::query(
            "INSERT INTO signing_keys (kid, public_jwk, sealed_private, created_at) \
             VALUES (?, ?, ?, ?)",
        )
        .bind(&k.kid)
        .bind(public)
        .bind(&k.sealed_private)
        .bind(k.created_at.0)
        .execute(&self.writer)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    async fn list(&self) -> Result<Vec<StoredKey>, StoreError> {
        let rows = sqlx::query(
            "SELECT kid, public_jwk, sealed_private, created_at FROM signing_keys \
             ORDER BY created_at, rowid",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        let get = |e: sqlx::Error| StoreError::backend(e);
        rows.iter()
            .map(|row| {
                let public: String = row.try_get("public_jwk").map_err(get)?;
                Ok(StoredKey {
                    kid: row.try_get("kid").map_err(get)?,
                    public: serde_json::from_str(&public).map_err(StoreError::backend)?,
                    sealed_private: row.try_get("sealed_private").map_err(get)?,
                    created_at: UnixTime(row.try_get("created_at").map_err(get)?),
                })
            })
            .collect()
    }
}
