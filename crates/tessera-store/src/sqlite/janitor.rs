//! `Janitor` on SQLite: batched deletes through the writer task.

use async_trait::async_trait;
use tessera_core::StoreError;
use tessera_core::janitor::{Janitor, Purged};
use tessera_core::time::UnixTime;

use super::{SqliteStore, v};

/// One `DELETE` per kind, each removing at most `batch` rows (by rowid) that are dead at
/// `now`; run until a batch comes back short. Expired tokens and access token records go
/// before the families, so each is counted under its own kind even when its family dies
/// too (whether a family is dead does not depend on its expired rows).
const DELETES: [&str; 6] = [
    "DELETE FROM authorization_codes WHERE rowid IN \
     (SELECT rowid FROM authorization_codes WHERE expires_at <= ?1 LIMIT ?2)",
    "DELETE FROM refresh_tokens WHERE rowid IN \
     (SELECT rowid FROM refresh_tokens WHERE expires_at <= ?1 LIMIT ?2)",
    "DELETE FROM family_access_tokens WHERE rowid IN \
     (SELECT rowid FROM family_access_tokens WHERE expires_at <= ?1 LIMIT ?2)",
    // A family is dead once it is revoked or has no live refresh token (which includes
    // passing its absolute limit), and none of its access tokens still lives; whatever it
    // still holds goes with it (ON DELETE CASCADE).
    "DELETE FROM refresh_families WHERE id IN \
     (SELECT f.id FROM refresh_families f \
      WHERE (f.revoked_at IS NOT NULL OR NOT EXISTS (SELECT 1 FROM refresh_tokens t \
             WHERE t.family_id = f.id AND t.rotated_at IS NULL AND t.expires_at > ?1)) \
      AND NOT EXISTS (SELECT 1 FROM family_access_tokens a \
                      WHERE a.family_id = f.id AND a.expires_at > ?1) \
      LIMIT ?2)",
    "DELETE FROM revoked_access_tokens WHERE seq IN \
     (SELECT seq FROM revoked_access_tokens WHERE expires_at <= ?1 LIMIT ?2)",
    "DELETE FROM browser_sessions WHERE rowid IN \
     (SELECT rowid FROM browser_sessions WHERE expires_at <= ?1 LIMIT ?2)",
];

#[async_trait]
impl Janitor for SqliteStore {
    async fn purge_expired(&self, now: UnixTime, batch: u32) -> Result<Purged, StoreError> {
        let mut counts = [0u64; 6];
        for (count, sql) in counts.iter_mut().zip(DELETES) {
            loop {
                // Each batch is its own short write on the writer task, so token traffic
                // interleaves with a large purge.
                let done = self
                    .execute(sql, vec![v(now.0), v(i64::from(batch.max(1)))])
                    .await?;
                *count += done;
                if done < u64::from(batch.max(1)) {
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
