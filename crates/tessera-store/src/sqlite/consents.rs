//! `ConsentStore` on SQLite.

use async_trait::async_trait;
use sqlx::Row;
use tessera_core::StoreError;
use tessera_core::consent::{Consent, ConsentStore};
use tessera_core::time::UnixTime;

use crate::codec::scope_from;

use super::{SqliteStore, map_err, v};

#[async_trait]
impl ConsentStore for SqliteStore {
    async fn find_consent(
        &self,
        user_id: &str,
        client_id: &str,
    ) -> Result<Option<Consent>, StoreError> {
        let row = sqlx::query(
            "SELECT scopes, granted_at FROM consents WHERE user_id = ? AND client_id = ?",
        )
        .bind(user_id)
        .bind(client_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?;
        let Some(row) = row else { return Ok(None) };
        let get = |e: sqlx::Error| StoreError::backend(e);
        Ok(Some(Consent {
            user_id: user_id.to_owned(),
            client_id: client_id.to_owned(),
            scopes: scope_from(row.try_get("scopes").map_err(get)?),
            granted_at: UnixTime(row.try_get("granted_at").map_err(get)?),
        }))
    }

    async fn save_consent(&self, c: &Consent) -> Result<(), StoreError> {
        // One statement: the row is inserted or replaced whole, never half-written.
        self.execute(
            "INSERT INTO consents (user_id, client_id, scopes, granted_at) VALUES (?, ?, ?, ?) \
             ON CONFLICT (user_id, client_id) \
             DO UPDATE SET scopes = excluded.scopes, granted_at = excluded.granted_at",
            vec![
                v(c.user_id.clone()),
                v(c.client_id.clone()),
                v(c.scopes.to_string()),
                v(c.granted_at.0),
            ],
        )
        .await?;
        Ok(())
    }

    async fn revoke_consents(
        &self,
        user_id: &str,
        client_id: Option<&str>,
    ) -> Result<u64, StoreError> {
        let client_id = client_id.map(str::to_owned);
        self.execute(
            "DELETE FROM consents WHERE user_id = ?1 AND (?2 IS NULL OR client_id = ?2)",
            vec![v(user_id.to_owned()), v(client_id)],
        )
        .await
    }
}
