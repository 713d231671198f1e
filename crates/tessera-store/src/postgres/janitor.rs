//! `Janitor` on PostgreSQL: batched deletes, each its own short transaction.

use async_trait::async_trait;
use tessera_core::StoreError;
use tessera_core::janitor::{Janitor, Purged};
use tessera_core::time::UnixTime;

use super::{PostgresStore, retry};

/// One `DELETE` per kind, each removing at most `batch` rows (by primary key) that are dead
/// at `now`; run until a batch comes back short. Expired tokens and access token records go
/// before the families, so each is counted under its own kind even when its family dies
/// too (whether a family is dead does not depend on its expired rows).
///
/// `FOR UPDATE SKIP LOCKED` lets janitors on several nodes share the work instead of
/// queueing on the same rows, and passes over rows a token request holds (a family being
/// rotated is locked, so it is never deleted under a rotation); they go in a later pass.
const DELETES: [&str; 6] = [
    "DELETE FROM authorization_codes WHERE code_hash IN \
     (SELECT code_hash FROM authorization_codes WHERE expires_at <= $1 \
      LIMIT $2 FOR UPDATE SKIP LOCKED)",
    "DELETE FROM refresh_tokens WHERE token_hash IN \
     (SELECT token_hash FROM refresh_tokens WHERE expires_at <= $1 \
      LIMIT $2 FOR UPDATE SKIP LOCKED)",
    "DELETE FROM family_access_tokens WHERE jti IN \
     (SELECT jti FROM family_access_tokens WHERE expires_at <= $1 \
      LIMIT $2 FOR UPDATE SKIP LOCKED)",
    // A family is dead once it is revoked or has no live refresh token (which includes
    // passing its absolute limit), and none of its access tokens still lives; whatever it
    // still holds goes with it (ON DELETE CASCADE).
    "DELETE FROM refresh_families WHERE id IN \
     (SELECT f.id FROM refresh_families f \
      WHERE (f.revoked_at IS NOT NULL OR NOT EXISTS (SELECT 1 FROM refresh_tokens t \
             WHERE t.family_id = f.id AND t.rotated_at IS NULL AND t.expires_at > $1)) \
      AND NOT EXISTS (SELECT 1 FROM family_access_tokens a \
                      WHERE a.family_id = f.id AND a.expires_at > $1) \
      LIMIT $2 FOR UPDATE OF f SKIP LOCKED)",
    "DELETE FROM revoked_access_tokens WHERE seq IN \
     (SELECT seq FROM revoked_access_tokens WHERE expires_at <= $1 \
      LIMIT $2 FOR UPDATE SKIP LOCKED)",
    "DELETE FROM browser_sessions WHERE id_hash IN \
     (SELECT id_hash FROM browser_sessions WHERE expires_at <= $1 \
      LIMIT $2 FOR UPDATE SKIP LOCKED)",
];

#[async_trait]
impl Janitor for PostgresStore {
    async fn purge_expired(&self, now: UnixTime, batch: u32) -> Result<Purged, StoreError> {
        let batch = batch.max(1);
        let mut counts = [0u64; 6];
        for (count, sql) in counts.iter_mut().zip(DELETES) {
            loop {
                let removed = retry(|| async {
                    let done = sqlx::query(sql)
                        .bind(now.0)
                        .bind(i64::from(batch))
                        .execute(&self.pool)
                        .await?;
                    Ok(done.rows_affected())
                })
                .await?;
                *count += removed;
                if removed < u64::from(batch) {
                    break;
                }
            }
        }
        let [
            codes,
            refresh_tokens,
            access_token_records,
            families,
            revocations,
            sessions,
        ] = counts;
        Ok(Purged {
            codes,
            refresh_tokens,
            families,
            access_token_records,
            revocations,
            sessions,
        })
    }
}
