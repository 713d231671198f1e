//! `ConsentStore` on PostgreSQL.

use async_trait::async_trait;
use sqlx::Row;
use tessera_core::StoreError;
use tessera_core::consent::{Consent, ConsentStore};
use tessera_core::time::UnixTime;

use super::{PostgresStore, map_err, retry, scope_from};

#[async_trait]
impl ConsentStore for PostgresStore {
    async fn find_consent(
        &self,
        user_id: &str,
        client_id: &str,
    ) -> Result<Option<Consent>, StoreError> {
        let row = sqlx::query(
            "SELECT scopes, granted_at FROM consents WHERE user_id = $1 AND client_id = $2",
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
        let scopes = c.scopes.to_string();
        // One statement: concurrent approvals serialize on the row; the last one wins whole.
        retry(|| async {
            sqlx::query(
                "INSERT INTO consents (user_id, client_id, scopes, granted_at) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (user_id, client_id) \
                 DO UPDATE SET scopes = EXCLUDED.scopes, granted_at = EXCLUDED.granted_at",
            )
            .bind(&c.user_id)
            .bind(&c.client_id)
            .bind(&scopes)
            .bind(c.granted_at.0)
            .execute(&self.pool)
            .await?;
            Ok(())
        })
        .await
    }

    async fn revoke_consents(
        &self,
        user_id: &str,
        client_id: Option<&str>,
    ) -> Result<u64, StoreError> {
        retry(|| async {
            let done = sqlx::query(
                "DELETE FROM consents WHERE user_id = $1 \
                 AND ($2::TEXT IS NULL OR client_id = $2)",
            )
            .bind(user_id)
            .bind(client_id)
            .execute(&self.pool)
            .await?;
            Ok(done.rows_affected())
        })
        .await
    }
}
