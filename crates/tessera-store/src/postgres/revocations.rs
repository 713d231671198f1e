//! `RevocationList` on PostgreSQL.
//!
//! Followers read the list with a cursor (`seq > after`), so entries must become visible in
//! `seq` order. An identity value is drawn at insert time, not at commit: without care, a
//! transaction holding seq 5 could commit after one holding seq 6, and a follower that had
//! already moved its cursor to 6 would never see 5. So every transaction that inserts into
//! the list first takes one transaction-scoped advisory lock: inserts are serialized, each
//! commits before the next draws a seq, and commit order is seq order.
//!
//! `latest_seq` is the identity sequence's last value, a high-water mark that the janitor's
//! deletes never lower, read under the same lock (shared) so that no seq it reports
//! belongs to a transaction still in flight.

use async_trait::async_trait;
use sqlx::{PgConnection, Row};
use tessera_core::StoreError;
use tessera_core::revocation::{Revocation, RevocationList, RevokedEntry};
use tessera_core::time::UnixTime;

use super::{PostgresStore, map_err, retry};

/// The advisory lock guarding the list, in the two-key space (distinct from sqlx's
/// one-key migration lock): "TSRA" and 1.
const LIST_LOCK: (i32, i32) = (0x5453_5241, 1);

/// Takes the list's insert lock until the transaction ends. Call it first in the
/// transaction, before locking any row, so that waiting for it never holds up others.
pub(super) async fn lock_revocations(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_advisory_xact_lock($1, $2)")
        .bind(LIST_LOCK.0)
        .bind(LIST_LOCK.1)
        .execute(conn)
        .await?;
    Ok(())
}

#[async_trait]
impl RevocationList for PostgresStore {
    async fn revoke_access_token(
        &self,
        jti: &str,
        expires_at: UnixTime,
        revocation: Revocation,
    ) -> Result<(), StoreError> {
        retry(|| async {
            let mut tx = self.pool.begin().await?;
            lock_revocations(&mut tx).await?;
            // Filtered rather than left to ON CONFLICT alone: a conflicting INSERT has
            // already drawn a seq, which would push latest_seq past every listed entry.
            sqlx::query(
                "INSERT INTO revoked_access_tokens (jti, expires_at, revoked_at, reason) \
                 SELECT $1, $2, $3, $4 WHERE NOT EXISTS \
                 (SELECT 1 FROM revoked_access_tokens WHERE jti = $1) \
                 ON CONFLICT (jti) DO NOTHING",
            )
            .bind(jti)
            .bind(expires_at.0)
            .bind(revocation.at.0)
            .bind(revocation.reason.as_str())
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    async fn is_access_token_revoked(&self, jti: &str) -> Result<bool, StoreError> {
        let found: Option<i32> =
            sqlx::query_scalar("SELECT 1 FROM revoked_access_tokens WHERE jti = $1")
                .bind(jti)
                .fetch_optional(&self.pool)
                .await
                .map_err(map_err)?;
        Ok(found.is_some())
    }

    async fn revoked_since(&self, after: i64, limit: u32) -> Result<Vec<RevokedEntry>, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, jti, expires_at FROM revoked_access_tokens WHERE seq > $1 \
             ORDER BY seq LIMIT $2",
        )
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        let get = |e: sqlx::Error| StoreError::backend(e);
        rows.iter()
            .map(|row| {
                Ok(RevokedEntry {
                    seq: row.try_get("seq").map_err(get)?,
                    jti: row.try_get("jti").map_err(get)?,
                    expires_at: UnixTime(row.try_get("expires_at").map_err(get)?),
                })
            })
            .collect()
    }

    async fn latest_seq(&self) -> Result<i64, StoreError> {
        retry(|| async {
            let mut tx = self.pool.begin().await?;
            sqlx::query("SELECT pg_advisory_xact_lock_shared($1, $2)")
                .bind(LIST_LOCK.0)
                .bind(LIST_LOCK.1)
                .execute(&mut *tx)
                .await?;
            // NULL until the sequence hands out its first value.
            let seq: i64 = sqlx::query_scalar(
                "SELECT COALESCE(pg_sequence_last_value(\
                 pg_get_serial_sequence('revoked_access_tokens', 'seq')::regclass), 0)",
            )
            .fetch_one(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(seq)
        })
        .await
    }
}
