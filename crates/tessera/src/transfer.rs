//! `tessera export` / `tessera import`: clients, users and signing keys as one JSON
//! document, so an embedded deployment can move to PostgreSQL (or back).
//!
//! Secrets travel as they are stored: client secrets as SHA-256 hashes, passwords as
//! Argon2id hashes, private keys sealed under the master key (the target must use the same
//! `TESSERA_MASTER_KEY`, or `tessera keys rewrap` before exporting). Tokens, codes,
//! sessions, families and consents are not exported: users sign in (and approve
//! third-party clients) again after a move.

use std::io::{Read, Write};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use tessera_core::StoreError;
use tessera_core::client::{Client, ClientStore, GrantType};
use tessera_core::key_schedule::KeySchedule;
use tessera_core::keys::{Jwk, KeyStore, StoredKey};
use tessera_core::scope::ScopeSet;
use tessera_core::secret::SecretHash;
use tessera_core::time::UnixTime;
use tessera_core::user::{User, UserProfile, UserStore};

use crate::cli::StoreOnly;
use crate::storage;

/// `tessera export`: the document to standard output.
pub async fn run_export(args: StoreOnly) -> Result<()> {
    let store = storage::open(&args.store).await?;
    export(&*store, &mut std::io::stdout().lock()).await
}

/// `tessera import`: the document from standard input.
pub async fn run_import(args: StoreOnly) -> Result<()> {
    let store = storage::open(&args.store).await?;
    let done = import(&*store, &mut std::io::stdin().lock()).await?;
    println!(
        "imported {} records ({} already present, skipped)",
        done.created, done.skipped
    );
    Ok(())
}

/// The format version written and accepted.
const VERSION: u64 = 1;

/// Writes the export document to `out`.
pub async fn export<S>(store: &S, out: &mut dyn Write) -> Result<()>
where
    S: ClientStore + UserStore + KeyStore + ?Sized,
{
    let clients: Vec<Value> = ClientStore::list(store)
        .await?
        .iter()
        .map(|c| {
            json!({
                "id": c.id,
                "name": c.name,
                "secret_sha256": c.secret_hash.map(|h| hex(&h.0)),
                "redirect_uris": c.redirect_uris,
                "grant_types": c.grant_types.iter().map(|g| g.as_str()).collect::<Vec<_>>(),
                "scope": c.scopes.to_string(),
                "audiences": c.audiences,
                "access_token_ttl": c.access_token_ttl.map(|d| d.as_secs()),
                "refresh_token_ttl": c.refresh_token_ttl.map(|d| d.as_secs()),
                "first_party": c.first_party,
                "post_logout_redirect_uris": c.post_logout_redirect_uris,
                "created_at": c.created_at.0,
            })
        })
        .collect();
    let users: Vec<Value> = UserStore::list(store)
        .await?
        .iter()
        .map(|u| {
            json!({
                "id": u.id,
                "username": u.username,
                "password_hash": u.password_hash,
                "roles": u.roles,
                "name": u.profile.name,
                "email": u.profile.email,
                "email_verified": u.profile.email_verified,
                "disabled": u.disabled,
                "created_at": u.created_at.0,
            })
        })
        .collect();
    let keys: Vec<Value> = KeyStore::list(store)
        .await?
        .iter()
        .map(|k| {
            json!({
                "kid": k.schedule.kid,
                "generation": k.schedule.generation,
                "created_at": k.schedule.created_at.0,
                "activates_at": k.schedule.activates_at.0,
                "revoked_at": k.schedule.revoked_at.map(|t| t.0),
                "public": k.public,
                "sealed_private": STANDARD.encode(&k.sealed_private),
            })
        })
        .collect();
    let doc = json!({"tessera_export": VERSION, "clients": clients, "users": users, "keys": keys});
    serde_json::to_writer_pretty(&mut *out, &doc)?;
    writeln!(out)?;
    Ok(())
}

/// What an import did.
#[derive(Debug, Default)]
pub struct Imported {
    /// Records created.
    pub created: usize,
    /// Records skipped because one with the same identity exists.
    pub skipped: usize,
}

/// Reads an export document from `input` and creates every record that does not exist yet.
pub async fn import<S>(store: &S, input: &mut dyn Read) -> Result<Imported>
where
    S: ClientStore + UserStore + KeyStore + ?Sized,
{
    let mut text = String::new();
    input
        .read_to_string(&mut text)
        .context("cannot read the export document")?;
    let doc: Value = serde_json::from_str(&text).context("the export document is not JSON")?;
    if doc["tessera_export"].as_u64() != Some(VERSION) {
        bail!("not a Tessera export (version {VERSION})");
    }
    let mut done = Imported::default();
    let mut count = |r: Result<(), StoreError>| -> Result<()> {
        match r {
            Ok(()) => done.created += 1,
            Err(StoreError::Conflict) => done.skipped += 1,
            Err(e) => return Err(e.into()),
        }
        Ok(())
    };
    for c in array(&doc, "clients")? {
        let client = client(c).context("a client in the export")?;
        count(ClientStore::create(store, &client).await)?;
    }
    for u in array(&doc, "users")? {
        let user = user(u).context("a user in the export")?;
        count(UserStore::create(store, &user).await)?;
    }
    for k in array(&doc, "keys")? {
        let key = key(k).context("a key in the export")?;
        count(KeyStore::insert(store, &key).await)?;
    }
    Ok(done)
}

fn array<'a>(doc: &'a Value, name: &str) -> Result<&'a Vec<Value>> {
    doc[name]
        .as_array()
        .with_context(|| format!("`{name}` is missing"))
}

fn string(v: &Value, name: &str) -> Result<String> {
    v[name]
        .as_str()
        .map(str::to_owned)
        .with_context(|| format!("`{name}` is missing"))
}

fn int(v: &Value, name: &str) -> Result<i64> {
    v[name]
        .as_i64()
        .with_context(|| format!("`{name}` is missing"))
}

/// A boolean that exports from before it existed lack: missing or `null` is `default`.
fn flag(v: &Value, name: &str, default: bool) -> Result<bool> {
    match &v[name] {
        Value::Null => Ok(default),
        value => value
            .as_bool()
            .with_context(|| format!("`{name}` must be true or false")),
    }
}

/// A string that may be missing or `null`.
fn optional_string(v: &Value, name: &str) -> Result<Option<String>> {
    match &v[name] {
        Value::Null => Ok(None),
        value => value
            .as_str()
            .map(|s| Some(s.to_owned()))
            .with_context(|| format!("`{name}` must be a string or null")),
    }
}

fn strings(v: &Value, name: &str) -> Result<Vec<String>> {
    serde_json::from_value(v[name].clone()).with_context(|| format!("`{name}` is malformed"))
}

fn client(v: &Value) -> Result<Client> {
    let secret_hash = match v["secret_sha256"].as_str() {
        Some(h) => Some(SecretHash(
            unhex(h).context("`secret_sha256` is not 32 bytes of hex")?,
        )),
        None => None,
    };
    let grant_types = strings(v, "grant_types")?
        .iter()
        .map(|g| GrantType::parse(g).with_context(|| format!("unknown grant type {g}")))
        .collect::<Result<_>>()?;
    let scope = string(v, "scope")?;
    Ok(Client {
        id: string(v, "id")?,
        name: string(v, "name")?,
        secret_hash,
        redirect_uris: strings(v, "redirect_uris")?,
        grant_types,
        scopes: ScopeSet::from_tokens(scope.split(' ').filter(|s| !s.is_empty())),
        audiences: strings(v, "audiences")?,
        access_token_ttl: lifetime(v, "access_token_ttl")?,
        refresh_token_ttl: lifetime(v, "refresh_token_ttl")?,
        // Exports from before consent existed: every client signed users in without a
        // consent page then, as the migration that added the flag keeps them doing.
        first_party: flag(v, "first_party", true)?,
        post_logout_redirect_uris: match &v["post_logout_redirect_uris"] {
            Value::Null => Vec::new(),
            _ => strings(v, "post_logout_redirect_uris")?,
        },
        created_at: UnixTime(int(v, "created_at")?),
    })
}

/// An optional lifetime in whole seconds; missing or `null` (exports from before per-client
/// lifetimes) is `None`, the server's global value.
fn lifetime(v: &Value, name: &str) -> Result<Option<Duration>> {
    match &v[name] {
        Value::Null => Ok(None),
        value => match value.as_u64() {
            Some(secs) if secs > 0 => Ok(Some(Duration::from_secs(secs))),
            _ => bail!("`{name}` must be a positive number of seconds or null"),
        },
    }
}

fn user(v: &Value) -> Result<User> {
    Ok(User {
        id: string(v, "id")?,
        username: string(v, "username")?,
        password_hash: string(v, "password_hash")?,
        roles: strings(v, "roles")?,
        // Exports from before OpenID Connect have no profile: the user has none.
        profile: UserProfile {
            name: optional_string(v, "name")?,
            email: optional_string(v, "email")?,
            email_verified: flag(v, "email_verified", false)?,
        },
        disabled: v["disabled"].as_bool().context("`disabled` is missing")?,
        created_at: UnixTime(int(v, "created_at")?),
    })
}

fn key(v: &Value) -> Result<StoredKey> {
    let public: Jwk =
        serde_json::from_value(v["public"].clone()).context("`public` is malformed")?;
    Ok(StoredKey {
        schedule: KeySchedule {
            kid: string(v, "kid")?,
            generation: int(v, "generation")?,
            created_at: UnixTime(int(v, "created_at")?),
            activates_at: UnixTime(int(v, "activates_at")?),
            revoked_at: v["revoked_at"].as_i64().map(UnixTime),
        },
        public,
        sealed_private: STANDARD
            .decode(string(v, "sealed_private")?)
            .context("`sealed_private` is not base64")?,
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}
