//! `RefreshStore` and `RevocationList` on SQLite.
//!
//! Every multi-statement step is one write (`SqliteStore::write`: its own savepoint in a
//! `BEGIN IMMEDIATE` batch) whose first write is a conditional UPDATE: the writer runs one
//! job at a time, so the UPDATE's row count is the compare-and-set, and the loser changes
//! nothing.
//!
//! Inserts into the revocation list skip already listed jtis with `NOT EXISTS`: an INSERT
//! that hits `ON CONFLICT DO NOTHING` still advances the AUTOINCREMENT counter, so
//! `latest_seq` would run ahead of the last entry (the ON CONFLICT stays as a safety net).

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};
use sqlx::Row;
use sqlx::sqlite::SqliteRow;
use tessera_core::StoreError;
use tessera_core::refresh_family::{
    Family, IssuedAccessToken, NewGrant, NewRefreshToken, RefreshStore, RefreshToken,
};
use tessera_core::revocation::{Revocation, RevocationList, RevocationReason, RevokedEntry};
use tessera_core::scope::ScopeSet;
use tessera_core::secret::SecretHash;
use tessera_core::time::UnixTime;

use super::{SqliteStore, hash_from, map_err, map_write_err, run, v};

/// Stores a new family, its first refresh token and its first access token record, inside
/// the caller's write (the code redemption).
pub(super) fn insert_grant(conn: &Connection, grant: &NewGrant) -> Result<(), StoreError> {
    let f = &grant.family;
    run(
        conn,
        "INSERT INTO refresh_families (id, client_id, user_id, scope, audience, auth_time, \
         created_at, absolute_expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        params![
            f.id,
            f.client_id,
            f.user_id,
            f.scope.to_string(),
            f.audience,
            f.auth_time.0,
            f.created_at.0,
            f.absolute_expires_at.0,
        ],
    )?;
    if let Some(r) = &grant.refresh {
        insert_token(conn, &f.id, r)?;
    }
    record_access(conn, &f.id, &grant.access)
}

fn insert_token(conn: &Connection, family_id: &str, r: &NewRefreshToken) -> Result<(), StoreError> {
    run(
        conn,
        "INSERT INTO refresh_tokens (token_hash, family_id, issued_at, expires_at) \
         VALUES (?, ?, ?, ?)",
        params![r.token_hash.0, family_id, r.issued_at.0, r.expires_at.0],
    )?;
    Ok(())
}

fn record_access(
    conn: &Connection,
    family_id: &str,
    access: &IssuedAccessToken,
) -> Result<(), StoreError> {
    run(
        conn,
        "INSERT INTO family_access_tokens (jti, family_id, expires_at) VALUES (?, ?, ?)",
        params![access.jti, family_id, access.expires_at.0],
    )?;
    Ok(())
}

/// Stores `new` in `family_id`, with the access token record.
fn insert_successor(
    conn: &Connection,
    family_id: &str,
    new: &NewRefreshToken,
    access: &IssuedAccessToken,
) -> Result<(), StoreError> {
    insert_token(conn, family_id, new)?;
    record_access(conn, family_id, access)
}

fn row_to_pair(row: &SqliteRow) -> Result<(RefreshToken, Family), StoreError> {
    let get = |e: sqlx::Error| StoreError::backend(e);
    let family_id: String = row.try_get("family_id").map_err(get)?;
    let scope: String = row.try_get("scope").map_err(get)?;
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
        scope: ScopeSet::from_tokens(scope.split(' ').filter(|s| !s.is_empty())),
        audience: row.try_get("audience").map_err(get)?,
        auth_time: UnixTime(row.try_get("auth_time").map_err(get)?),
        created_at: UnixTime(row.try_get("created_at").map_err(get)?),
        absolute_expires_at: UnixTime(row.try_get("absolute_expires_at").map_err(get)?),
        revoked,
    };
    Ok((token, family))
}

#[async_trait]
impl RefreshStore for SqliteStore {
    async fn find(
        &self,
        token_hash: &SecretHash,
    ) -> Result<Option<(RefreshToken, Family)>, StoreError> {
        sqlx::query(
            "SELECT t.token_hash, t.family_id, t.issued_at, t.expires_at, t.rotated_at, \
             t.successor_hash, f.client_id, f.user_id, f.scope, f.audience, f.auth_time, \
             f.created_at, f.absolute_expires_at, f.revoked_at, f.revoked_reason \
             FROM refresh_tokens t JOIN refresh_families f ON f.id = t.family_id \
             WHERE t.token_hash = ?",
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
        let (old, new, access) = (*old, new.clone(), access.clone());
        self.write(move |conn| {
            let family_id: Option<String> = conn
                .prepare_cached(
                    "UPDATE refresh_tokens SET rotated_at = ?, successor_hash = ? \
                     WHERE token_hash = ? AND rotated_at IS NULL AND family_id IN \
                     (SELECT id FROM refresh_families WHERE revoked_at IS NULL) \
                     RETURNING family_id",
                )
                .and_then(|mut s| {
                    s.query_row(params![now.0, new.token_hash.0, old.0], |row| row.get(0))
                        .optional()
                })
                .map_err(map_write_err)?;
            let Some(family_id) = family_id else {
                return Ok(false);
            };
            insert_successor(conn, &family_id, &new, &access)?;
            Ok(true)
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
        let (old, stale, new, access) = (*old, *stale, new.clone(), access.clone());
        self.write(move |conn| {
            // `stale` is `old`'s successor, so the family is the same.
            let family_id: Option<String> = conn
                .prepare_cached(
                    "UPDATE refresh_tokens SET rotated_at = ? \
                     WHERE token_hash = ? AND rotated_at IS NULL \
                     AND token_hash = \
                     (SELECT successor_hash FROM refresh_tokens WHERE token_hash = ?) \
                     AND family_id IN (SELECT id FROM refresh_families WHERE revoked_at IS NULL) \
                     RETURNING family_id",
                )
                .and_then(|mut s| {
                    s.query_row(params![now.0, stale.0, old.0], |row| row.get(0))
                        .optional()
                })
                .map_err(map_write_err)?;
            let Some(family_id) = family_id else {
                return Ok(false);
            };
            run(
                conn,
                "UPDATE refresh_tokens SET successor_hash = ? WHERE token_hash = ?",
                params![new.token_hash.0, old.0],
            )?;
            insert_successor(conn, &family_id, &new, &access)?;
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
        let family_id = family_id.to_owned();
        self.write(move |conn| {
            let done = run(
                conn,
                "UPDATE refresh_families SET revoked_at = ?, revoked_reason = ? \
                 WHERE id = ? AND revoked_at IS NULL",
                params![now.0, reason.as_str(), family_id],
            )?;
            if done != 1 {
                return Ok(false);
            }
            run(
                conn,
                "INSERT INTO revoked_access_tokens (jti, expires_at, revoked_at, reason) \
                 SELECT a.jti, a.expires_at, ?1, ?2 FROM family_access_tokens a \
                 WHERE a.family_id = ?3 AND a.expires_at > ?1 AND NOT EXISTS \
                 (SELECT 1 FROM revoked_access_tokens r WHERE r.jti = a.jti) \
                 ON CONFLICT (jti) DO NOTHING",
                params![now.0, reason.as_str(), family_id],
            )?;
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
        let user_id = user_id.to_owned();
        self.write(move |conn| {
            run(
                conn,
                "INSERT INTO revoked_access_tokens (jti, expires_at, revoked_at, reason) \
                 SELECT a.jti, a.expires_at, ?1, ?2 FROM family_access_tokens a \
                 JOIN refresh_families f ON f.id = a.family_id \
                 WHERE f.user_id = ?3 AND f.revoked_at IS NULL AND a.expires_at > ?1 \
                 AND NOT EXISTS (SELECT 1 FROM revoked_access_tokens r WHERE r.jti = a.jti) \
                 ON CONFLICT (jti) DO NOTHING",
                params![now.0, reason.as_str(), user_id],
            )?;
            run(
                conn,
                "UPDATE refresh_families SET revoked_at = ?, revoked_reason = ? \
                 WHERE user_id = ? AND revoked_at IS NULL",
                params![now.0, reason.as_str(), user_id],
            )
        })
        .await
    }
}

#[async_trait]
impl RevocationList for SqliteStore {
    async fn revoke_access_token(
        &self,
        jti: &str,
        expires_at: UnixTime,
        revocation: Revocation,
    ) -> Result<(), StoreError> {
        // Filtered rather than left to ON CONFLICT alone: an INSERT that conflicts has
        // already drawn a seq, which would push latest_seq past every listed entry.
        self.execute(
            "INSERT INTO revoked_access_tokens (jti, expires_at, revoked_at, reason) \
             SELECT ?1, ?2, ?3, ?4 WHERE NOT EXISTS \
             (SELECT 1 FROM revoked_access_tokens WHERE jti = ?1) \
             ON CONFLICT (jti) DO NOTHING",
            vec![
                v(jti.to_owned()),
                v(expires_at.0),
                v(revocation.at.0),
                v(revocation.reason.as_str().to_owned()),
            ],
        )
        .await?;
        Ok(())
    }

    async fn revoked_since(&self, after: i64, limit: u32) -> Result<Vec<RevokedEntry>, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, jti, expires_at FROM revoked_access_tokens WHERE seq > ? \
             ORDER BY seq LIMIT ?",
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
        // AUTOINCREMENT keeps its high-water mark in sqlite_sequence even after the janitor
        // deletes rows, so the cursor never goes backwards.
        let seq: Option<i64> = sqlx::query_scalar(
            "SELECT seq FROM sqlite_sequence WHERE name = 'revoked_access_tokens'",
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(seq.unwrap_or(0))
    }

    async fn is_access_token_revoked(&self, jti: &str) -> Result<bool, StoreError> {
        let found: Option<i64> =
            sqlx::query_scalar("SELECT 1 FROM revoked_access_tokens WHERE jti = ?")
                .bind(jti)
                .fetch_optional(&self.pool)
                .await
                .map_err(map_err)?;
        Ok(found.is_some())
    }
}
