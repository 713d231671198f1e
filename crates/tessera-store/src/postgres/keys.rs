//! `KeyStore` on PostgreSQL.
//!
//! `kid` and `generation` are unique: of several nodes inserting the same scheduled step,
//! the later inserts wait for the first to commit, then fail with a unique violation
//! (`StoreError::Conflict`), which is how each step happens once.

use async_trait::async_trait;
use sqlx::Row;
use tessera_core::StoreError;
use tessera_core::key_schedule::KeySchedule;
use tessera_core::keys::{KeyStore, StoredKey};
use tessera_core::time::UnixTime;

use super::{Failure, PostgresStore, map_err, retry};

#[async_trait]
impl KeyStore for PostgresStore {
    async fn insert(&self, k: &StoredKey) -> Result<(), StoreError> {
        let public = serde_json::to_string(&k.public).map_err(StoreError::backend)?;
        let s = &k.schedule;
        retry(|| async {
            sqlx::query(
                "INSERT INTO signing_keys (kid, generation, public_jwk, sealed_private, \
                 created_at, activates_at, revoked_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(&s.kid)
            .bind(s.generation)
            .bind(&public)
            .bind(&k.sealed_private)
            .bind(s.created_at.0)
            .bind(s.activates_at.0)
            .bind(s.revoked_at.map(|t| t.0))
            .execute(&self.pool)
            .await?;
            Ok(())
        })
        .await
    }

    async fn list(&self) -> Result<Vec<StoredKey>, StoreError> {
        let rows = sqlx::query(
            "SELECT kid, generation, public_jwk, sealed_private, created_at, activates_at, \
             revoked_at FROM signing_keys ORDER BY generation",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        let get = |e: sqlx::Error| StoreError::backend(e);
        rows.iter()
            .map(|row| {
                let public: String = row.try_get("public_jwk").map_err(get)?;
                Ok(StoredKey {
                    schedule: KeySchedule {
                        kid: row.try_get("kid").map_err(get)?,
                        generation: row.try_get("generation").map_err(get)?,
                        created_at: UnixTime(row.try_get("created_at").map_err(get)?),
                        activates_at: UnixTime(row.try_get("activates_at").map_err(get)?),
                        revoked_at: row
                            .try_get::<Option<i64>, _>("revoked_at")
                            .map_err(get)?
                            .map(UnixTime),
                    },
                    public: serde_json::from_str(&public).map_err(StoreError::backend)?,
                    sealed_private: row.try_get("sealed_private").map_err(get)?,
                })
            })
            .collect()
    }

    async fn delete(&self, kid: &str) -> Result<bool, StoreError> {
        retry(|| async {
            let done = sqlx::query("DELETE FROM signing_keys WHERE kid = $1")
                .bind(kid)
                .execute(&self.pool)
                .await?;
            Ok(done.rows_affected() == 1)
        })
        .await
    }

    async fn revoke(&self, kid: &str, at: UnixTime) -> Result<bool, StoreError> {
        retry(|| async {
            let done = sqlx::query(
                "UPDATE signing_keys SET revoked_at = $1 WHERE kid = $2 AND revoked_at IS NULL",
            )
            .bind(at.0)
            .bind(kid)
            .execute(&self.pool)
            .await?;
            Ok(done.rows_affected() == 1)
        })
        .await
    }

    async fn reseal(&self, sealed: &[(String, Vec<u8>)]) -> Result<(), StoreError> {
        retry(|| async {
            let mut tx = self.pool.begin().await?;
            for (kid, bytes) in sealed {
                let done =
                    sqlx::query("UPDATE signing_keys SET sealed_private = $1 WHERE kid = $2")
                        .bind(bytes)
                        .bind(kid)
                        .execute(&mut *tx)
                        .await?;
                if done.rows_affected() != 1 {
                    // Dropping the transaction rolls back the keys already resealed.
                    return Err(Failure::Store(StoreError::Backend(
                        "a key vanished during reseal".into(),
                    )));
                }
            }
            tx.commit().await?;
            Ok(())
        })
        .await
    }
}
