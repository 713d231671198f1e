//! `KeyStore` on SQLite.

use async_trait::async_trait;
use sqlx::Row;
use tessera_core::StoreError;
use tessera_core::key_schedule::KeySchedule;
use tessera_core::keys::{KeyStore, StoredKey};
use tessera_core::time::UnixTime;

use super::{SqliteStore, map_err, run, v};

#[async_trait]
impl KeyStore for SqliteStore {
    async fn insert(&self, k: &StoredKey) -> Result<(), StoreError> {
        let public = serde_json::to_string(&k.public).map_err(StoreError::backend)?;
        let s = &k.schedule;
        self.execute(
            "INSERT INTO signing_keys (kid, generation, public_jwk, sealed_private, created_at, \
             activates_at, revoked_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            vec![
                v(s.kid.clone()),
                v(s.generation),
                v(public),
                v(k.sealed_private.clone()),
                v(s.created_at.0),
                v(s.activates_at.0),
                v(s.revoked_at.map(|t| t.0)),
            ],
        )
        .await?;
        Ok(())
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
        let done = self
            .execute(
                "DELETE FROM signing_keys WHERE kid = ?",
                vec![v(kid.to_owned())],
            )
            .await?;
        Ok(done == 1)
    }

    async fn revoke(&self, kid: &str, at: UnixTime) -> Result<bool, StoreError> {
        let done = self
            .execute(
                "UPDATE signing_keys SET revoked_at = ? WHERE kid = ? AND revoked_at IS NULL",
                vec![v(at.0), v(kid.to_owned())],
            )
            .await?;
        Ok(done == 1)
    }

    async fn reseal(&self, sealed: &[(String, Vec<u8>)]) -> Result<(), StoreError> {
        let sealed = sealed.to_vec();
        // All or nothing: an error rolls back every key resealed before it.
        self.write(move |conn| {
            for (kid, bytes) in sealed {
                let done = run(
                    conn,
                    "UPDATE signing_keys SET sealed_private = ? WHERE kid = ?",
                    rusqlite::params![bytes, kid],
                )?;
                if done != 1 {
                    return Err(StoreError::Backend("a key vanished during reseal".into()));
                }
            }
            Ok(())
        })
        .await
    }
}
