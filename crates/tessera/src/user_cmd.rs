//! `tessera user create|list|disable|enable|revoke-tokens|revoke-consent`.

use std::io::Read;

use anyhow::{Context, Result, bail};
use serde_json::json;
use tessera_core::StoreError;
use tessera_core::audit::{AuditEvent, Event, Outcome};
use tessera_core::client::ClientStore;
use tessera_core::revocation::RevocationReason;
use tessera_core::secret;
use tessera_core::time::{Clock, SystemClock};
use tessera_core::user::{self, User, UserProfile, UserStore};
use tessera_store::OsRandom;

use crate::cli::{OutputFormat, UserArgs, UserCommand};
use crate::storage;

/// Shortest password accepted (OWASP ASVS V2.1.1 asks for at least 12).
const MIN_PASSWORD_LEN: usize = 12;

/// Runs a user subcommand.
pub async fn run(args: UserArgs) -> Result<()> {
    let db = storage::open(&args.store).await?;
    let store: &dyn UserStore = &*db;
    match args.command {
        UserCommand::Create {
            name,
            password_stdin,
            roles,
            full_name,
            email,
            email_verified,
            format,
        } => {
            let profile = profile(full_name, email, email_verified)?;
            create(store, name, password_stdin, roles, profile, format).await
        }
        UserCommand::List { format } => {
            let users = store.list().await?;
            match format {
                OutputFormat::Json => {
                    let list: Vec<_> = users.iter().map(to_json).collect();
                    println!("{}", serde_json::to_string_pretty(&list)?);
                }
                OutputFormat::Text => {
                    println!("{:<24} {:<24} {:<9} ROLES", "USERNAME", "ID", "STATUS");
                    for u in &users {
                        let status = if u.disabled { "disabled" } else { "active" };
                        println!(
                            "{:<24} {:<24} {:<9} {}",
                            u.username,
                            u.id,
                            status,
                            u.roles.join(",")
                        );
                    }
                }
            }
            Ok(())
        }
        UserCommand::Disable { name } => set_disabled(store, &name, true).await,
        UserCommand::Enable { name } => set_disabled(store, &name, false).await,
        UserCommand::RevokeTokens { name } => {
            // The revocation is an audit event: written to standard error like a server's.
            crate::serve::init_logging(
                crate::cli::LogFormat::Text,
                &crate::serve::env_log_filter(),
            );
            let Some(user) = store.find_by_username(&name).await? else {
                bail!("no user named `{name}`");
            };
            let families = db
                .revoke_user_families(&user.id, RevocationReason::UserSignOut, SystemClock.now())
                .await?;
            let detail = format!("{families} token families");
            AuditEvent::new(Event::TokenRevoked, Outcome::Success)
                .user(&user.id)
                .reason(RevocationReason::UserSignOut.as_str())
                .detail(&detail)
                .emit();
            println!(
                "revoked {families} token famil{} of {name}; their refresh tokens no longer work \
                 and their access tokens are on the revocation list",
                if families == 1 { "y" } else { "ies" }
            );
            Ok(())
        }
        UserCommand::RevokeConsent { name, client } => {
            // The revocation is an audit event: written to standard error like a server's.
            crate::serve::init_logging(
                crate::cli::LogFormat::Text,
                &crate::serve::env_log_filter(),
            );
            let Some(user) = store.find_by_username(&name).await? else {
                bail!("no user named `{name}`");
            };
            if let Some(id) = &client
                && ClientStore::find(&*db, id).await?.is_none()
            {
                bail!("no client with id `{id}`");
            }
            let removed = db.revoke_consents(&user.id, client.as_deref()).await?;
            if removed > 0 {
                tessera_core::audit::consent_revoked(client.as_deref(), &user.id);
            }
            let whose = match &client {
                Some(id) => format!("for client {id}"),
                None => "for every client".to_owned(),
            };
            println!(
                "revoked {removed} consent{} of {name} {whose}; the next sign-in asks again \
                 (tokens already issued stay valid: `tessera user revoke-tokens {name}` ends them)",
                if removed == 1 { "" } else { "s" }
            );
            Ok(())
        }
    }
}

async fn create(
    store: &dyn UserStore,
    name: String,
    password_stdin: bool,
    roles: Vec<String>,
    profile: UserProfile,
    format: OutputFormat,
) -> Result<()> {
    let valid_name = !name.is_empty()
        && name.len() <= 128
        && !name.chars().any(|c| c.is_control() || c.is_whitespace());
    if !valid_name {
        bail!("the username must be 1-128 characters without spaces or control characters");
    }
    for role in &roles {
        if role.is_empty() || role.chars().any(|c| c.is_control() || c.is_whitespace()) {
            bail!("--role `{role}`: roles must be non-empty and without spaces");
        }
    }
    let random = OsRandom::default();
    let (password, generated) = if password_stdin {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("cannot read the password from stdin")?;
        let s = s.trim_end_matches(['\r', '\n']).to_owned();
        if s.chars().count() < MIN_PASSWORD_LEN {
            bail!("the password must be at least {MIN_PASSWORD_LEN} characters");
        }
        (s, false)
    } else {
        (secret::mint_id(&random), true)
    };
    let user = User {
        id: format!("usr_{}", secret::mint_id(&random)),
        username: name,
        password_hash: user::hash_password(&password)?,
        roles,
        profile,
        disabled: false,
        created_at: SystemClock.now(),
    };
    match store.create(&user).await {
        Ok(()) => {}
        Err(StoreError::Conflict) => bail!("a user named `{}` already exists", user.username),
        Err(e) => return Err(e.into()),
    }
    match format {
        OutputFormat::Json => {
            let mut value = to_json(&user);
            if generated {
                value["password"] = json!(password);
            }
            println!("{}", serde_json::to_string_pretty(&value)?);
        }
        OutputFormat::Text => {
            println!("created user {} (id {})", user.username, user.id);
            if generated {
                println!("password  {password}");
                println!("(shown once: only its Argon2id hash is stored)");
            }
        }
    }
    Ok(())
}

async fn set_disabled(store: &dyn UserStore, name: &str, disabled: bool) -> Result<()> {
    if !store.set_disabled(name, disabled).await? {
        bail!("no user named `{name}`");
    }
    println!(
        "{} user {name}",
        if disabled { "disabled" } else { "enabled" }
    );
    Ok(())
}

/// Checks the OpenID Connect profile given on the command line.
fn profile(
    name: Option<String>,
    email: Option<String>,
    email_verified: bool,
) -> Result<UserProfile> {
    if let Some(name) = &name
        && (name.trim().is_empty()
            || name.chars().count() > 256
            || name.chars().any(char::is_control))
    {
        bail!("--name must be 1-256 characters without control characters");
    }
    if let Some(email) = &email {
        // Not RFC 5322 in full: one `@` with something on both sides, no spaces, and the
        // length limit of RFC 5321 §4.5.3.1.3. The operator vouches for the rest.
        let valid = email.len() <= 254
            && !email.chars().any(|c| c.is_control() || c.is_whitespace())
            && matches!(email.split_once('@'), Some((local, domain))
                if !local.is_empty() && !domain.is_empty() && !domain.contains('@'));
        if !valid {
            bail!("--email `{email}` is not an email address");
        }
    }
    Ok(UserProfile {
        name,
        email,
        email_verified,
    })
}

fn to_json(u: &User) -> serde_json::Value {
    json!({
        "username": u.username,
        "id": u.id,
        "name": u.profile.name,
        "email": u.profile.email,
        "email_verified": u.profile.email_verified,
        "roles": u.roles,
        "disabled": u.disabled,
        "created_at": u.created_at.0,
    })
}
