//! `CodeStore` on PostgreSQL.

use async_trait::async_trait;
use sqlx::Row;
use sqlx::postgres::PgRow;
use tessera_core::StoreError;
use tessera_core::authorization_code::{CodeRecord, CodeStore};
use tessera_core::pkce::CodeChallenge;
use tessera_core::refresh_family::NewGrant;
use tessera_core::secret::SecretHash;
use tessera_core::time::UnixTime;

use super::{PostgresStore, hash_from, map_err, refresh, retry, scope_from};

fn row_to_code(row: &PgRow) -> Result<CodeRecord, StoreError> {
    let get = |e: sqlx::Error| StoreError::backend(e);
    Ok(CodeRecord {
        code_hash: hash_from(row.try_get("code_hash").map_err(get)?)?,
        client_id: row.try_get("client_id").map_err(get)?,
        user_id: row.try_get("user_id").map_err(get)?,
        redirect_uri: row.try_get("redirect_uri").map_err(get)?,
        redirect_uri_explicit: row.try_get("redirect_uri_explicit").map_err(get)?,
        challenge: CodeChallenge::from_stored(row.try_get("code_challenge").map_err(get)?),
        scope: scope_from(row.try_get("scope").map_err(get)?),
        resource: row.try_get("resource").map_err(get)?,
        auth_time: UnixTime(row.try_get("auth_time").map_err(get)?),
        expires_at: UnixTime(row.try_get("expires_at").map_err(get)?),
        used_at: row
            .try_get::<Option<i64>, _>("used_at")
            .map_err(get)?
            .map(UnixTime),
        family_id: row.try_get("family_id").map_err(get)?,
        nonce: row.try_get("nonce").map_err(get)?,
    })
}

#[async_trait]
impl CodeStore for PostgresStore {
    async fn insert(&self, r: &CodeRecord) -> Result<(), StoreError> {
        retry(|| async {
            sqlx::query(
                "INSERT INTO authorization_codes (code_hash, client_id, user_id, redirect_uri, \
                 redirect_uri_explicit, code_challenge, scope, resource, auth_time, \
                 expires_at, used_at, family_id, nonce) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
            )
            .bind(r.code_hash.0.to_vec())
            .bind(&r.client_id)
            .bind(&r.user_id)
            .bind(&r.redirect_uri)
            .bind(r.redirect_uri_explicit)
            .bind(r.challenge.as_str())
            .bind(r.scope.to_string())
            .bind(&r.resource)
            .bind(r.auth_time.0)
            .bind(r.expires_at.0)
            .bind(r.used_at.map(|t| t.0))
            .bind(&r.family_id)
            .bind(&r.nonce)
            .execute(&self.pool)
            .await?;
            Ok(())
        })
        .await
    }

    async fn find(&self, code_hash: &SecretHash) -> Result<Option<CodeRecord>, StoreError> {
        sqlx::query(
            "SELECT code_hash, client_id, user_id, redirect_uri, redirect_uri_explicit, \
             code_challenge, scope, resource, auth_time, expires_at, used_at, family_id, nonce \
             FROM authorization_codes WHERE code_hash = $1",
        )
        .bind(code_hash.0.to_vec())
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?
        .as_ref()
        .map(row_to_code)
        .transpose()
    }

    async fn redeem(
        &self,
        code_hash: &SecretHash,
        now: UnixTime,
        grant: &NewGrant,
    ) -> Result<bool, StoreError> {
        retry(|| async {
            let mut tx = self.pool.begin().await?;
            // The compare-and-set: a concurrent redeemer waits for this row's lock, then
            // re-checks `used_at IS NULL` against the committed row and updates nothing.
            let done = sqlx::query(
                "UPDATE authorization_codes SET used_at = $1, family_id = $2 \
                 WHERE code_hash = $3 AND used_at IS NULL",
            )
            .bind(now.0)
            .bind(&grant.family.id)
            .bind(code_hash.0.to_vec())
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() != 1 {
                return Ok(false);
            }
            refresh::insert_grant(&mut tx, grant).await?;
            tx.commit().await?;
            Ok(true)
        })
        .await
    }
}
