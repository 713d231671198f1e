//! `RefreshStore` on PostgreSQL.
//!
//! Rotation and supersession first lock the family row `FOR SHARE`, requiring it to be
//! unrevoked, then compare-and-set the token row. The share lock is what makes revocation
//! and rotation exclude each other under READ COMMITTED: `revoke_family` updates the family
//! row, so it waits for a rotation in flight to commit, and its next statement (a fresh
//! snapshot) lists the access token that rotation recorded; a rotation that comes second
//! waits for the revocation, re-reads the family as revoked and changes nothing. Without
//! the lock a rotation whose snapshot predates the revocation could commit a live token
//! and an unlisted access token into a revoked family.
//!
//! Revocations insert into the revocation list under its advisory lock (see
//! `revocations`), taken first so a transaction never waits for it while holding rows.

use async_trait::async_trait;
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};
use tessera_core::StoreError;
use tessera_core::refresh_family::{
    Family, IssuedAccessToken, NewGrant, NewRefreshToken, RefreshStore, RefreshToken,
};
use tessera_core::revocation::{Revocation, RevocationReason};
use tessera_core::secret::SecretHash;
use tessera_core::time::UnixTime;

use super::revocations::lock_revocations;
use super::{PostgresStore, hash_from, map_err, retry, scope_from};

/// Stores a new family, its first refresh token and its first access token record, inside
/// the caller's transaction (the code redemption).
pub(super) async fn insert_grant(
    conn: &mut PgConnection,
    grant: &NewGrant,
) -> Result<(), sqlx::Error> {
    let f = &grant.family;
    sqlx::query(
        "INSERT INTO refresh_families (id, client_id, user_id, scope, audience, auth_time, \
         created_at, absolute_expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&f.id)
    .bind(&f.client_id)
    .bind(&f.user_id)
    .bind(f.scope.to_string())
    .bind(&f.audience)
    .bind(f.auth_time.0)
    .bind(f.created_at.0)
    .bind(f.absolute_expires_at.0)
    .execute(&mut *conn)
    .await?;
    if let Some(r) = &grant.refresh {
        insert_token(conn, &f.id, r).await?;
    }
    record_access(conn, &f.id, &grant.access).await
}

async fn insert_token(
    conn: &mut PgConnection,
    family_id: &str,
    token: &NewRefreshToken,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO refresh_tokens (token_hash, family_id, issued_at, expires_at) \
         VALUES ($1, $2, $3, $4)",
    )
    .bind(token.token_hash.0.to_vec())
    .bind(family_id)
    .bind(token.issued_at.0)
    .bind(token.expires_at.0)
    .execute(conn)
    .await?;
    Ok(())
}

async fn record_access(
    conn: &mut PgConnection,
    family_id: &str,
    access: &IssuedAccessToken,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO family_access_tokens (jti, family_id, expires_at) VALUES ($1, $2, $3)",
    )
    .bind(&access.jti)
    .bind(family_id)
    .bind(access.expires_at.0)
    .execute(conn)
    .await?;
    Ok(())
}

/// Locks the family of `token` against revocation until the transaction ends; its id, or
/// `None` if the token is unknown or its family revoked (re-checked after waiting for a
/// concurrent revocation).
async fn lock_live_family(
    conn: &mut PgConnection,
    token: &SecretHash,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT f.id FROM refresh_families f JOIN refresh_tokens t ON t.family_id = f.id \
         WHERE t.token_hash = $1 AND f.revoked_at IS NULL FOR SHARE OF f",
    )
    .bind(token.0.to_vec())
    .fetch_optional(conn)
    .await
}

/// Lists the unexpired, not yet listed access tokens of `families` (after the caller took
/// the revocation lock).
async fn list_family_tokens(
    conn: &mut PgConnection,
    families: &[String],
    reason: RevocationReason,
    now: UnixTime,
) -> Result<(), sqlx::Error> {
    // NOT EXISTS rather than ON CONFLICT alone: a conflicting row has already drawn a seq,
    // which would push latest_seq past every listed entry.
    sqlx::query(
        "INSERT INTO revoked_access_tokens (jti, expires_at, revoked_at, reason) \
         SELECT a.jti, a.expires_at, $1, $2 FROM family_access_tokens a \
         WHERE a.family_id = ANY($3) AND a.expires_at > $1 AND NOT EXISTS \
         (SELECT 1 FROM revoked_access_tokens r WHERE r.jti = a.jti) \
         ORDER BY a.jti \
         ON CONFLICT (jti) DO NOTHING",
    )
    .bind(now.0)
    .bind(reason.as_str())
    .bind(families)
    .execute(conn)
    .await?;
    Ok(())
}

fn row_to_pair(row: &PgRow) -> Result<(RefreshToken, Family), StoreError> {
    let get = |e: sqlx::Error| StoreError::backend(e);
    let family_id: String = row.try_get("family_id").map_err(get)?;
    let revoked_at: Option<i64> = row.try_get("revoked_at").map_err(get)?;
    let reason: Option<String> = row.try_get("revoked_reason").map_err(get)?;
    let revoked = match (revoked_at, reason) {
        (Some(at), Some(reason)) => Some(Revocation {
            at: UnixTime(at),
            reason: RevocationReason::parse(&reason)
                .ok_or_else(|| StoreError::Backend("unknown revocation reason".into()))?,
        }),
        _ => None,
    };
    let successor: Option<Vec<u8>> = row.try_get("successor_hash").map_err(get)?;
    let token = RefreshToken {
        token_hash: hash_from(row.try_get("token_hash").map_err(get)?)?,
        family_id: family_id.clone(),
        issued_at: UnixTime(row.try_get("issued_at").map_err(get)?),
        expires_at: UnixTime(row.try_get("expires_at").map_err(get)?),
        rotated_at: row
            .try_get::<Option<i64>, _>("rotated_at")
            .map_err(get)?
            .map(UnixTime),
        successor: successor.map(hash_from).transpose()?,
    };
    let family = Family {
        id: family_id,
        client_id: row.try_get("client_id").map_err(get)?,
        user_id: row.try_get("user_id").map_err(get)?,
        scope: scope_from(row.try_get("scope").map_err(get)?),
        audience: row.try_get("audience").map_err(get)?,
        auth_time: UnixTime(row.try_get("auth_time").map_err(get)?),
        created_at: UnixTime(row.try_get("created_at").map_err(get)?),
        absolute_expires_at: UnixTime(row.try_get("absolute_expires_at").map_err(get)?),
        revoked,
    };
    Ok((token, family))
}

#[async_trait]
impl RefreshStore for PostgresStore {
    async fn find(
        &self,
        token_hash: &SecretHash,
    ) -> Result<Option<(RefreshToken, Family)>, StoreError> {
        sqlx::query(
            "SELECT t.token_hash, t.family_id, t.issued_at, t.expires_at, t.rotated_at, \
             t.successor_hash, f.client_id, f.user_id, f.scope, f.audience, f.auth_time, \
             f.created_at, f.absolute_expires_at, f.revoked_at, f.revoked_reason \
             FROM refresh_tokens t JOIN refresh_families f ON f.id = t.family_id \
             WHERE t.token_hash = $1",
        )
        .bind(token_hash.0.to_vec())
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?
        .as_ref()
        .map(row_to_pair)
        .transpose()
    }

    async fn rotate(
        &self,
        old: &SecretHash,
        new: &NewRefreshToken,
        access: &IssuedAccessToken,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        // One statement, so one round trip and its own transaction: the same steps as
        // `supersede` (lock the live family FOR SHARE, compare-and-set the token row, store
        // the successor and the access token record), each feeding the next through
        // RETURNING. Concurrent rotations of `old` queue on its row lock and the losers,
        // re-reading it, find it rotated and insert nothing.
        retry(|| async {
            let rotated: Option<String> = sqlx::query_scalar(
                "WITH family AS ( \
                   SELECT f.id FROM refresh_families f \
                   JOIN refresh_tokens t ON t.family_id = f.id \
                   WHERE t.token_hash = $3 AND f.revoked_at IS NULL FOR SHARE OF f \
                 ), old AS ( \
                   UPDATE refresh_tokens SET rotated_at = $1, successor_hash = $2 \
                   WHERE token_hash = $3 AND rotated_at IS NULL \
                   AND family_id = (SELECT id FROM family) \
                   RETURNING family_id \
                 ), successor AS ( \
                   INSERT INTO refresh_tokens (token_hash, family_id, issued_at, expires_at) \
                   SELECT $2, family_id, $4, $5 FROM old \
                 ), access AS ( \
                   INSERT INTO family_access_tokens (jti, family_id, expires_at) \
                   SELECT $6, family_id, $7 FROM old \
                 ) \
                 SELECT family_id FROM old",
            )
            .bind(now.0)
            .bind(new.token_hash.0.to_vec())
            .bind(old.0.to_vec())
            .bind(new.issued_at.0)
            .bind(new.expires_at.0)
            .bind(&access.jti)
            .bind(access.expires_at.0)
            .fetch_optional(&self.pool)
            .await?;
            Ok(rotated.is_some())
        })
        .await
    }

    async fn supersede(
        &self,
        old: &SecretHash,
        stale: &SecretHash,
        new: &NewRefreshToken,
        access: &IssuedAccessToken,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        retry(|| async {
            let mut tx = self.pool.begin().await?;
            let Some(family_id) = lock_live_family(&mut tx, old).await? else {
                return Ok(false);
            };
            // The compare-and-set is on `stale`: a concurrent supersede or a rotation of
            // the stale successor queues on its row lock, and only one finds it unrotated.
            let done = sqlx::query(
                "UPDATE refresh_tokens SET rotated_at = $1 \
                 WHERE token_hash = $2 AND rotated_at IS NULL AND family_id = $3 \
                 AND token_hash = (SELECT successor_hash FROM refresh_tokens \
                                   WHERE token_hash = $4)",
            )
            .bind(now.0)
            .bind(stale.0.to_vec())
            .bind(&family_id)
            .bind(old.0.to_vec())
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() != 1 {
                return Ok(false);
            }
            sqlx::query("UPDATE refresh_tokens SET successor_hash = $1 WHERE token_hash = $2")
                .bind(new.token_hash.0.to_vec())
                .bind(old.0.to_vec())
                .execute(&mut *tx)
                .await?;
            insert_token(&mut tx, &family_id, new).await?;
            record_access(&mut tx, &family_id, access).await?;
            tx.commit().await?;
            Ok(true)
        })
        .await
    }

    async fn revoke_family(
        &self,
        family_id: &str,
        reason: RevocationReason,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        retry(|| async {
            let mut tx = self.pool.begin().await?;
            lock_revocations(&mut tx).await?;
            let done = sqlx::query(
                "UPDATE refresh_families SET revoked_at = $1, revoked_reason = $2 \
                 WHERE id = $3 AND revoked_at IS NULL",
            )
            .bind(now.0)
            .bind(reason.as_str())
            .bind(family_id)
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() != 1 {
                return Ok(false);
            }
            list_family_tokens(&mut tx, &[family_id.to_owned()], reason, now).await?;
            tx.commit().await?;
            Ok(true)
        })
        .await
    }

    async fn revoke_user_families(
        &self,
        user_id: &str,
        reason: RevocationReason,
        now: UnixTime,
    ) -> Result<u64, StoreError> {
        retry(|| async {
            let mut tx = self.pool.begin().await?;
            lock_revocations(&mut tx).await?;
            // Revoke first, then list the access tokens of exactly the families revoked
            // here: the UPDATE waited out rotations in flight, so the listing sees theirs.
            let families: Vec<String> = sqlx::query_scalar(
                "UPDATE refresh_families SET revoked_at = $1, revoked_reason = $2 \
                 WHERE user_id = $3 AND revoked_at IS NULL RETURNING id",
            )
            .bind(now.0)
            .bind(reason.as_str())
            .bind(user_id)
            .fetch_all(&mut *tx)
            .await?;
            if families.is_empty() {
                return Ok(0);
            }
            list_family_tokens(&mut tx, &families, reason, now).await?;
            tx.commit().await?;
            Ok(families.len() as u64)
        })
        .await
    }
}
