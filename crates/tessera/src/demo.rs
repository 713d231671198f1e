//! `serve --demo`: demo clients and user, created idempotently, and the commands to try them.
//!
//! Secrets are stored only as hashes, so the demo cannot print an old secret back: each
//! start sets a fresh demo client secret and user password (nothing else changes) and
//! prints them. This is for trying Tessera on a laptop, never for production.

use anyhow::{Context, Result};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use tessera_core::AuthorizationServer;
use tessera_core::StoreError;
use tessera_core::client::{Client, GrantType};
use tessera_core::scope::ScopeSet;
use tessera_core::secret::{self, SecretHash};
use tessera_core::user::{self, User, UserProfile};
use tessera_server::demo::DemoInfo;
use tessera_server::paths;

/// The demo public client (browser code flow with PKCE).
pub const PUBLIC_CLIENT: &str = "demo-spa";
/// The demo confidential client (client credentials).
pub const SERVICE_CLIENT: &str = "demo-service";
/// The demo user.
pub const USER: &str = "demo";
/// The audience of demo tokens.
pub const AUDIENCE: &str = "urn:tessera:demo-api";

/// What the demo prints.
pub struct DemoSetup {
    /// What the demo callback page needs.
    pub info: DemoInfo,
    issuer: String,
    service_secret: String,
    password: String,
    authorize_url: String,
}

/// Creates or refreshes the demo clients and user.
pub async fn prepare(server: &AuthorizationServer, issuer: &str) -> Result<DemoSetup> {
    let ports = server.ports();
    let random = ports.random.as_ref();
    let now = ports.clock.now();
    let redirect_uri = format!("{issuer}{}", paths::DEMO_CALLBACK);
    let scopes = ScopeSet::from_tokens(["read", "write"]);

    let public = Client {
        id: PUBLIC_CLIENT.into(),
        name: "Tessera demo app".into(),
        secret_hash: None,
        redirect_uris: vec![redirect_uri.clone()],
        grant_types: vec![GrantType::AuthorizationCode, GrantType::RefreshToken],
        // OpenID Connect too: `scope=openid ...` (with a nonce) signs in with an ID token.
        scopes: scopes.union(&ScopeSet::from_tokens(["openid", "profile", "email"])),
        audiences: vec![AUDIENCE.into()],
        access_token_ttl: None,
        refresh_token_ttl: None,
        // The operator's own demo: no consent page, so the README tour stays two steps.
        first_party: true,
        post_logout_redirect_uris: vec![],
        created_at: now,
    };
    match ports.clients.create(&public).await {
        Ok(()) | Err(StoreError::Conflict) => {}
        Err(e) => return Err(e).context("cannot create the demo public client"),
    }

    let service_secret = secret::mint(random, "tss_");
    let service = Client {
        id: SERVICE_CLIENT.into(),
        name: "Tessera demo service".into(),
        secret_hash: Some(SecretHash::of(&service_secret)),
        redirect_uris: vec![],
        grant_types: vec![GrantType::ClientCredentials],
        scopes,
        audiences: vec![AUDIENCE.into()],
        access_token_ttl: None,
        refresh_token_ttl: None,
        // The operator's own demo: no consent page, so the README tour stays two steps.
        first_party: true,
        post_logout_redirect_uris: vec![],
        created_at: now,
    };
    match ports.clients.create(&service).await {
        Ok(()) => {}
        Err(StoreError::Conflict) => {
            ports
                .clients
                .set_secret(SERVICE_CLIENT, SecretHash::of(&service_secret))
                .await
                .context("cannot reset the demo client secret")?;
        }
        Err(e) => return Err(e).context("cannot create the demo service client"),
    }

    let password = secret::mint_id(random);
    let hash = user::hash_password(&password)?;
    let demo_user = User {
        id: secret::mint_id(random),
        username: USER.into(),
        password_hash: hash.clone(),
        roles: vec!["demo".into()],
        profile: UserProfile {
            name: Some("Demo User".into()),
            email: Some("demo@example.com".into()),
            email_verified: false,
        },
        disabled: false,
        created_at: now,
    };
    match ports.users.create(&demo_user).await {
        Ok(()) => {}
        Err(StoreError::Conflict) => {
            ports
                .users
                .set_password(USER, &hash)
                .await
                .context("cannot reset the demo password")?;
        }
        Err(e) => return Err(e).context("cannot create the demo user"),
    }

    // A PKCE pair for the printed authorize URL (RFC 7636 §4.1-4.2).
    let code_verifier = format!("{}{}", secret::mint_id(random), secret::mint_id(random));
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(code_verifier.as_bytes()));
    let state = secret::mint_id(random);
    let authorize_url = tessera_core::authorize::redirect_with(
        &format!("{issuer}{}", paths::AUTHORIZE),
        &[
            ("response_type", "code"),
            ("client_id", PUBLIC_CLIENT),
            ("redirect_uri", &redirect_uri),
            ("scope", "read"),
            ("state", &state),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ],
    )
    .context("cannot build the demo authorize URL")?;

    Ok(DemoSetup {
        info: DemoInfo {
            client_id: PUBLIC_CLIENT.into(),
            redirect_uri,
            code_verifier,
        },
        issuer: issuer.to_owned(),
        service_secret,
        password,
        authorize_url,
    })
}

/// Prints the demo credentials and the two commands to try. Standard output, not the log:
/// these secrets are meant for the person at the terminal.
pub fn print(setup: &DemoSetup) {
    let issuer = &setup.issuer;
    let token = format!("{issuer}{}", paths::TOKEN);
    println!(
        "\n\
         Tessera demo is ready at {issuer}\n\
         \n\
         \x20 confidential client  {SERVICE_CLIENT}  secret {secret}\n\
         \x20 public client        {PUBLIC_CLIENT}  (code flow + PKCE, redirect {redirect})\n\
         \x20 user                 {USER}  password {password}\n\
         \n\
         1. A token with client credentials:\n\
         \n\
         \x20 curl -s -u {SERVICE_CLIENT}:{secret} -d grant_type=client_credentials {token}\n\
         \n\
         2. The browser code flow: open this URL, sign in as {USER}, and the page you land on\n\
         \x20  shows the curl that redeems the code:\n\
         \n\
         \x20 {authorize}\n\
         \n\
         Public keys: {issuer}{jwks}   Metadata: {issuer}{meta}\n\
         (Secrets are new on each --demo start; only their hashes are stored.)\n",
        secret = setup.service_secret,
        redirect = setup.info.redirect_uri,
        password = setup.password,
        authorize = setup.authorize_url,
        jwks = paths::JWKS,
        meta = paths::METADATA,
    );
}
