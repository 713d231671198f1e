//! `CodeStore` on SQLite.

use async_trait::async_trait;
use rusqlite::params;
use sqlx::Row;
use sqlx::sqlite::SqliteRow;
use tessera_core::StoreError;
use tessera_core::authorization_code::{CodeRecord, CodeStore};
use tessera_core::pkce::CodeChallenge;
use tessera_core::refresh_family::NewGrant;
use tessera_core::scope::ScopeSet;
use tessera_core::secret::SecretHash;
use tessera_core::time::UnixTime;

use super::{SqliteStore, hash_from, map_err, refresh, run, v};

fn row_to_code(row: &SqliteRow) -> Result<CodeRecord, StoreError> {
    let get = |e: sqlx::Error| StoreError::backend(e);
    let scope: String = row.try_get("scope").map_err(get)?;
    Ok(CodeRecord {
        code_hash: hash_from(row.try_get("code_hash").map_err(get)?)?,
        client_id: row.try_get("client_id").map_err(get)?,
        user_id: row.try_get("user_id").map_err(get)?,
        redirect_uri: row.try_get("redirect_uri").map_err(get)?,
        redirect_uri_explicit: row.try_get("redirect_uri_explicit").map_err(get)?,
        challenge: CodeChallenge::from_stored(row.try_get("code_challenge").map_err(get)?),
        scope: ScopeSet::from_tokens(scope.split(' ').filter(|s| !s.is_empty())),
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
impl CodeStore for SqliteStore {
    async fn insert(&self, r: &CodeRecord) -> Result<(), StoreError> {
        self.execute(
            "INSERT INTO authorization_codes (code_hash, client_id, user_id, redirect_uri, \
             redirect_uri_explicit, code_challenge, scope, resource, auth_time, expires_at, \
             used_at, family_id, nonce) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            vec![
                v(r.code_hash.0.to_vec()),
                v(r.client_id.clone()),
                v(r.user_id.clone()),
                v(r.redirect_uri.clone()),
                v(r.redirect_uri_explicit),
                v(r.challenge.as_str().to_owned()),
                v(r.scope.to_string()),
                v(r.resource.clone()),
                v(r.auth_time.0),
                v(r.expires_at.0),
                v(r.used_at.map(|t| t.0)),
                v(r.family_id.clone()),
                v(r.nonce.clone()),
            ],
        )
        .await?;
        Ok(())
    }

    async fn find(&self, code_hash: &SecretHash) -> Result<Option<CodeRecord>, StoreError> {
        sqlx::query(
            "SELECT code_hash, client_id, user_id, redirect_uri, redirect_uri_explicit, \
             code_challenge, scope, resource, auth_time, expires_at, used_at, family_id, nonce \
             FROM authorization_codes WHERE code_hash = ?",
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
        // The writer runs one write at a time under SQLite's write lock, so the conditional
        // UPDATE below is the compare-and-set: exactly one caller flips the code from unused
        // to used, and only that caller stores the grant.
        let (code_hash, grant) = (*code_hash, grant.clone());
        self.write(move |conn| {
            let done = run(
                conn,
                "UPDATE authorization_codes SET used_at = ?, family_id = ? \
                 WHERE code_hash = ? AND used_at IS NULL",
                params![now.0, grant.family.id, code_hash.0],
            )?;
            if done != 1 {
                return Ok(false);
            }
            refresh::insert_grant(conn, &grant)?;
            Ok(true)
        })
        .await
    }
}
