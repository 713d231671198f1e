//! `tessera client create|update|list|show|delete`.

use std::io::Read;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::json;
use tessera_core::StoreError;
use tessera_core::authorize::check_redirect_uri;
use tessera_core::client::{Client, ClientStore, GrantType};
use tessera_core::policy::{
    ACCESS_TOKEN_TTL_BOUNDS, Bounds, REFRESH_TOKEN_TTL_BOUNDS, format_duration,
    refresh_covers_access,
};
use tessera_core::random::SecureRandom;
use tessera_core::scope::ScopeSet;
use tessera_core::secret::{self, SecretHash};
use tessera_core::time::{Clock, SystemClock};
use tessera_store::OsRandom;

use crate::cli::{ClientArgs, ClientCommand, ClientCreate, ClientUpdate, OutputFormat};
use crate::storage;

/// Shortest client secret accepted from an operator: secrets are stored as fast SHA-256
/// hashes, so they must be high-entropy (DESIGN.md, "Tokens and secrets").
const MIN_SECRET_LEN: usize = 32;

/// Runs a client subcommand.
pub async fn run(args: ClientArgs) -> Result<()> {
    let db = storage::open(&args.store).await?;
    let store: &dyn ClientStore = &*db;
    match args.command {
        ClientCommand::Create(create) => create_client(store, create).await,
        ClientCommand::Update(update) => update_client(store, update).await,
        ClientCommand::List { format } => {
            let clients = store.list().await?;
            match format {
                OutputFormat::Json => {
                    let list: Vec<_> = clients.iter().map(to_json).collect();
                    println!("{}", serde_json::to_string_pretty(&list)?);
                }
                OutputFormat::Text => {
                    println!(
                        "{:<24} {:<13} {:<12} {:<40} {:<11} {:<12} NAME",
                        "CLIENT_ID", "TYPE", "PARTY", "GRANTS", "ACCESS_TTL", "REFRESH_TTL"
                    );
                    for c in &clients {
                        let ttl = |t: Option<Duration>| t.map_or("-".into(), format_duration);
                        println!(
                            "{:<24} {:<13} {:<12} {:<40} {:<11} {:<12} {}",
                            c.id,
                            kind(c),
                            party(c),
                            grants(c),
                            ttl(c.access_token_ttl),
                            ttl(c.refresh_token_ttl),
                            c.name
                        );
                    }
                }
            }
            Ok(())
        }
        ClientCommand::Show { id, format } => {
            let Some(c) = store.find(&id).await? else {
                bail!("no client with id `{id}`");
            };
            match format {
                OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&to_json(&c))?),
                OutputFormat::Text => print_client(&c),
            }
            Ok(())
        }
        ClientCommand::Delete { id } => {
            if !store.delete(&id).await? {
                bail!("no client with id `{id}`");
            }
            println!("deleted client {id}");
            Ok(())
        }
    }
}

async fn create_client(store: &dyn ClientStore, args: ClientCreate) -> Result<()> {
    let random = OsRandom::default();
    let client = build_client(&args, &random)?;
    let secret = if args.public {
        None
    } else if let Some(s) = args.secret.clone() {
        eprintln!("warning: --secret is visible in the process list; prefer --secret-stdin");
        Some(checked_secret(s)?)
    } else if args.secret_stdin {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("cannot read the secret from stdin")?;
        Some(checked_secret(s.trim_end_matches(['\r', '\n']).to_owned())?)
    } else {
        Some(secret::mint(&random, "tss_"))
    };
    let generated = !args.public && args.secret.is_none() && !args.secret_stdin;
    let client = Client {
        secret_hash: secret.as_deref().map(SecretHash::of),
        ..client
    };
    match store.create(&client).await {
        Ok(()) => {}
        Err(StoreError::Conflict) => bail!("a client with id `{}` already exists", client.id),
        Err(e) => return Err(e.into()),
    }
    let shown_secret = secret.filter(|_| generated);
    match args.format {
        OutputFormat::Json => {
            let mut value = to_json(&client);
            if let Some(s) = &shown_secret {
                value["client_secret"] = json!(s);
            }
            println!("{}", serde_json::to_string_pretty(&value)?);
        }
        OutputFormat::Text => {
            print_client(&client);
            if let Some(s) = &shown_secret {
                println!("client_secret  {s}");
                println!("(shown once: only its hash is stored)");
            }
        }
    }
    Ok(())
}

/// `tessera client update`: replaces the settings given, keeps the others.
async fn update_client(store: &dyn ClientStore, args: ClientUpdate) -> Result<()> {
    if args.access_token_ttl.is_none()
        && args.refresh_token_ttl.is_none()
        && args.first_party.is_none()
    {
        bail!(
            "nothing to update: give --access-token-ttl, --refresh-token-ttl and/or --first-party"
        );
    }
    let access = args
        .access_token_ttl
        .as_deref()
        .map(|v| lifetime_or_default(ACCESS_FLAG, v, ACCESS_TOKEN_TTL_BOUNDS))
        .transpose()?;
    let refresh = args
        .refresh_token_ttl
        .as_deref()
        .map(|v| lifetime_or_default(REFRESH_FLAG, v, REFRESH_TOKEN_TTL_BOUNDS))
        .transpose()?;
    let Some(client) = store.find(&args.id).await? else {
        bail!("no client with id `{}`", args.id);
    };
    let client = Client {
        access_token_ttl: access.unwrap_or(client.access_token_ttl),
        refresh_token_ttl: refresh.unwrap_or(client.refresh_token_ttl),
        first_party: args.first_party.unwrap_or(client.first_party),
        ..client
    };
    check_refresh_covers_access(client.access_token_ttl, client.refresh_token_ttl)?;
    let mut updated = true;
    if access.is_some() || refresh.is_some() {
        updated &= store
            .set_token_lifetimes(
                &client.id,
                client.access_token_ttl,
                client.refresh_token_ttl,
            )
            .await?;
    }
    if let Some(first_party) = args.first_party {
        updated &= store.set_first_party(&client.id, first_party).await?;
    }
    if !updated {
        bail!("no client with id `{}`", client.id);
    }
    match args.format {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&to_json(&client))?),
        OutputFormat::Text => print_client(&client),
    }
    Ok(())
}

const ACCESS_FLAG: &str = "--access-token-ttl";
const REFRESH_FLAG: &str = "--refresh-token-ttl";

/// A lifetime flag's value: a duration such as `5m` or `2d` within `bounds`.
fn lifetime(flag: &str, value: &str, bounds: Bounds) -> Result<Duration> {
    let ttl = humantime::parse_duration(value.trim()).map_err(|e| {
        anyhow::anyhow!("{flag} {value}: not a duration ({e}; examples: 5m, 8h, 7d)")
    })?;
    if !bounds.contains(ttl) {
        bail!("{flag} {value} is out of range: allowed {bounds}");
    }
    Ok(ttl)
}

/// A lifetime flag's value for `update`: a lifetime, or `default` (`None`) to clear the
/// override so the server's global value applies.
fn lifetime_or_default(flag: &str, value: &str, bounds: Bounds) -> Result<Option<Duration>> {
    if value.trim().eq_ignore_ascii_case("default") {
        return Ok(None);
    }
    lifetime(flag, value, bounds).map(Some)
}

/// Refuses a refresh-token lifetime shorter than the client's access-token lifetime. Only
/// when both are the client's own: the server's global values are the server's setting,
/// validated where it is read.
fn check_refresh_covers_access(access: Option<Duration>, refresh: Option<Duration>) -> Result<()> {
    if let (Some(access), Some(refresh)) = (access, refresh)
        && !refresh_covers_access(access, refresh)
    {
        bail!(
            "{REFRESH_FLAG} {} is shorter than {ACCESS_FLAG} {}: a refresh token must live at \
             least as long as the access tokens issued with it",
            format_duration(refresh),
            format_duration(access)
        );
    }
    Ok(())
}

/// Whether every byte is an RFC 3986 unreserved character. RFC 6749 §2.3.1 has clients
/// form-encode the id and secret inside HTTP Basic, but common clients (authlib, `requests`)
/// send them raw; restricting both to characters that encoding leaves unchanged makes every
/// client agree with the server.
fn unreserved(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

fn checked_secret(secret: String) -> Result<String> {
    if secret.chars().count() < MIN_SECRET_LEN || !unreserved(&secret) {
        bail!(
            "the client secret must be at least {MIN_SECRET_LEN} characters of letters, digits \
             and - . _ ~ (omit it to have one generated)"
        );
    }
    Ok(secret)
}

/// Validates the registration and builds the client (without its secret).
fn build_client(args: &ClientCreate, random: &dyn SecureRandom) -> Result<Client> {
    let id = match &args.id {
        Some(id) => {
            if id.is_empty() || id.len() > 128 || !unreserved(id) {
                bail!("--id must be 1-128 characters of letters, digits and - . _ ~");
            }
            id.clone()
        }
        None => format!("cl_{}", secret::mint_id(random)),
    };
    for uri in &args.redirect_uris {
        check_redirect_uri(uri).map_err(|why| anyhow::anyhow!("--redirect-uri {uri}: {why}"))?;
    }
    // The same rules as redirect URIs: the browser is sent there, with `state`.
    for uri in &args.post_logout_redirect_uris {
        check_redirect_uri(uri).map_err(|why| {
            anyhow::anyhow!(
                "--post-logout-redirect-uri {uri}: {}",
                why.replace("redirect URI", "post-logout redirect URI")
            )
        })?;
    }
    let mut grant_types = Vec::new();
    for g in &args.grant_types {
        let grant = GrantType::parse(g).with_context(|| {
            format!(
                "--grant-type {g}: expected authorization_code, refresh_token or client_credentials"
            )
        })?;
        if !grant_types.contains(&grant) {
            grant_types.push(grant);
        }
    }
    if grant_types.is_empty() {
        grant_types.push(if args.redirect_uris.is_empty() {
            GrantType::ClientCredentials
        } else {
            GrantType::AuthorizationCode
        });
    }
    if grant_types.contains(&GrantType::AuthorizationCode) && args.redirect_uris.is_empty() {
        bail!("the authorization_code grant needs at least one --redirect-uri");
    }
    if args.public && grant_types.contains(&GrantType::ClientCredentials) {
        bail!("a public client cannot use client_credentials (RFC 6749 §4.4)");
    }
    let joined = args.scopes.join(" ");
    let scopes = if joined.trim().is_empty() {
        ScopeSet::default()
    } else {
        ScopeSet::parse(joined.trim())
            .map_err(|e| anyhow::anyhow!("--scope: {}", e.description()))?
    };
    let access_token_ttl = args
        .access_token_ttl
        .as_deref()
        .map(|v| lifetime(ACCESS_FLAG, v, ACCESS_TOKEN_TTL_BOUNDS))
        .transpose()?;
    let refresh_token_ttl = args
        .refresh_token_ttl
        .as_deref()
        .map(|v| lifetime(REFRESH_FLAG, v, REFRESH_TOKEN_TTL_BOUNDS))
        .transpose()?;
    check_refresh_covers_access(access_token_ttl, refresh_token_ttl)?;
    for aud in &args.audiences {
        // RFC 8707 §2: a resource is an absolute URI without a fragment.
        let ok = url::Url::parse(aud).is_ok_and(|u| u.fragment().is_none());
        if !ok {
            bail!("--audience {aud}: must be an absolute URI without a fragment");
        }
    }
    Ok(Client {
        name: args.name.clone().unwrap_or_else(|| id.clone()),
        id,
        secret_hash: None,
        redirect_uris: args.redirect_uris.clone(),
        grant_types,
        scopes,
        audiences: args.audiences.clone(),
        access_token_ttl,
        refresh_token_ttl,
        first_party: args.first_party,
        post_logout_redirect_uris: args.post_logout_redirect_uris.clone(),
        created_at: SystemClock.now(),
    })
}

fn kind(c: &Client) -> &'static str {
    if c.is_public() {
        "public"
    } else {
        "confidential"
    }
}

/// Whether the client's users are asked for consent.
fn party(c: &Client) -> &'static str {
    if c.first_party {
        "first-party"
    } else {
        "third-party"
    }
}

fn grants(c: &Client) -> String {
    c.grant_types
        .iter()
        .map(|g| g.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

fn to_json(c: &Client) -> serde_json::Value {
    json!({
        "client_id": c.id,
        "name": c.name,
        "type": kind(c),
        "redirect_uris": c.redirect_uris,
        "grant_types": c.grant_types.iter().map(|g| g.as_str()).collect::<Vec<_>>(),
        "scope": c.scopes.to_string(),
        "audiences": c.audiences,
        // Seconds, as in `tessera export`; null: the server's global value.
        "access_token_ttl": c.access_token_ttl.map(|d| d.as_secs()),
        "refresh_token_ttl": c.refresh_token_ttl.map(|d| d.as_secs()),
        "first_party": c.first_party,
        "post_logout_redirect_uris": c.post_logout_redirect_uris,
        "created_at": c.created_at.0,
    })
}

fn print_client(c: &Client) {
    println!("client_id      {}", c.id);
    println!("name           {}", c.name);
    println!("type           {}", kind(c));
    println!(
        "party          {} ({})",
        party(c),
        if c.first_party {
            "no consent page"
        } else {
            "users approve its scopes"
        }
    );
    println!("grant_types    {}", grants(c));
    println!("redirect_uris  {}", c.redirect_uris.join(" "));
    println!("post_logout    {}", c.post_logout_redirect_uris.join(" "));
    println!("scope          {}", c.scopes);
    println!("audiences      {}", c.audiences.join(" "));
    let ttl = |t: Option<Duration>| t.map_or("server default".into(), format_duration);
    println!("access_ttl     {}", ttl(c.access_token_ttl));
    println!("refresh_ttl    {}", ttl(c.refresh_token_ttl));
}
