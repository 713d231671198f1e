//! `ClientStore` on SQLite.

use std::time::Duration;

use async_trait::async_trait;
use sqlx::Row;
use sqlx::sqlite::SqliteRow;
use tessera_core::StoreError;
use tessera_core::client::{Client, ClientStore, GrantType};
use tessera_core::scope::ScopeSet;
use tessera_core::secret::SecretHash;
use tessera_core::time::UnixTime;

use crate::codec::{ttl_from, ttl_to};

use super::{SqliteStore, from_json, hash_from, map_err, to_json, v};

fn row_to_client(row: &SqliteRow) -> Result<Client, StoreError> {
    let get = |e: sqlx::Error| StoreError::backend(e);
    let secret: Option<Vec<u8>> = row.try_get("secret_hash").map_err(get)?;
    let grants = from_json(row.try_get("grant_types").map_err(get)?)?
        .iter()
        .map(|g| {
            GrantType::parse(g).ok_or_else(|| StoreError::Backend("unknown grant type".into()))
        })
        .collect::<Result<_, _>>()?;
    let scopes: String = row.try_get("scopes").map_err(get)?;
    Ok(Client {
        id: row.try_get("id").map_err(get)?,
        name: row.try_get("name").map_err(get)?,
        secret_hash: secret.map(hash_from).transpose()?,
        redirect_uris: from_json(row.try_get("redirect_uris").map_err(get)?)?,
        grant_types: grants,
        scopes: ScopeSet::from_tokens(scopes.split(' ').filter(|s| !s.is_empty())),
        audiences: from_json(row.try_get("audiences").map_err(get)?)?,
        access_token_ttl: ttl_from(row.try_get("access_token_ttl").map_err(get)?)?,
        refresh_token_ttl: ttl_from(row.try_get("refresh_token_ttl").map_err(get)?)?,
        first_party: row.try_get("first_party").map_err(get)?,
        post_logout_redirect_uris: from_json(
            row.try_get("post_logout_redirect_uris").map_err(get)?,
        )?,
        created_at: UnixTime(row.try_get("created_at").map_err(get)?),
    })
}

#[async_trait]
impl ClientStore for SqliteStore {
    async fn create(&self, c: &Client) -> Result<(), StoreError> {
        let grants: Vec<String> = c
            .grant_types
            .iter()
            .map(|g| g.as_str().to_owned())
            .collect();
        self.execute(
            "INSERT INTO clients (id, name, secret_hash, redirect_uris, grant_types, scopes, \
             audiences, access_token_ttl, refresh_token_ttl, first_party, \
             post_logout_redirect_uris, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            vec![
                v(c.id.clone()),
                v(c.name.clone()),
                v(c.secret_hash.map(|h| h.0.to_vec())),
                v(to_json(&c.redirect_uris)),
                v(to_json(&grants)),
                v(c.scopes.to_string()),
                v(to_json(&c.audiences)),
                v(ttl_to(c.access_token_ttl)),
                v(ttl_to(c.refresh_token_ttl)),
                v(c.first_party),
                v(to_json(&c.post_logout_redirect_uris)),
                v(c.created_at.0),
            ],
        )
        .await?;
        Ok(())
    }

    async fn find(&self, id: &str) -> Result<Option<Client>, StoreError> {
        sqlx::query(
            "SELECT id, name, secret_hash, redirect_uris, grant_types, scopes, audiences, \
             access_token_ttl, refresh_token_ttl, first_party, post_logout_redirect_uris, \
             created_at FROM clients WHERE id = ?",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?
        .as_ref()
        .map(row_to_client)
        .transpose()
    }

    async fn list(&self) -> Result<Vec<Client>, StoreError> {
        sqlx::query(
            "SELECT id, name, secret_hash, redirect_uris, grant_types, scopes, audiences, \
             access_token_ttl, refresh_token_ttl, first_party, post_logout_redirect_uris, \
             created_at FROM clients ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?
        .iter()
        .map(row_to_client)
        .collect()
    }

    async fn set_secret(&self, id: &str, secret: SecretHash) -> Result<bool, StoreError> {
        let done = self
            .execute(
                "UPDATE clients SET secret_hash = ? WHERE id = ?",
                vec![v(secret.0.to_vec()), v(id.to_owned())],
            )
            .await?;
        Ok(done == 1)
    }

    async fn set_token_lifetimes(
        &self,
        id: &str,
        access_token_ttl: Option<Duration>,
        refresh_token_ttl: Option<Duration>,
    ) -> Result<bool, StoreError> {
        let done = self
            .execute(
                "UPDATE clients SET access_token_ttl = ?, refresh_token_ttl = ? WHERE id = ?",
                vec![
                    v(ttl_to(access_token_ttl)),
                    v(ttl_to(refresh_token_ttl)),
                    v(id.to_owned()),
                ],
            )
            .await?;
        Ok(done == 1)
    }

    async fn set_first_party(&self, id: &str, first_party: bool) -> Result<bool, StoreError> {
        let done = self
            .execute(
                "UPDATE clients SET first_party = ? WHERE id = ?",
                vec![v(first_party), v(id.to_owned())],
            )
            .await?;
        Ok(done == 1)
    }

    async fn delete(&self, id: &str) -> Result<bool, StoreError> {
        let done = self
            .execute("DELETE FROM clients WHERE id = ?", vec![v(id.to_owned())])
            .await?;
        Ok(done == 1)
    }
}
