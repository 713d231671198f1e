//! `tessera login`, `tessera token`, `tessera logout`: a person's session with an issuer,
//! kept in their config directory, for scripts such as
//! `curl -H "Authorization: Bearer $(tessera token)"`.
//!
//! The config directory (`$TESSERA_CONFIG_DIR`, else `$XDG_CONFIG_HOME/tessera`, else
//! `~/.config/tessera`; mode 0700) holds two files, both mode 0600 and replaced atomically:
//! `session.json`, what renewal needs (issuer, client id, endpoints; no secret), and
//! `tokens.json`, the tokens themselves (`tessera_client::FileStore`). A lock file
//! serializes the commands: refresh tokens are single-use, so two `tessera token` running at
//! once must not both present the same one (the second would look like a replay and end the
//! session).

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow, bail};
use serde_json::{Value, json};
use tessera_client::{
    ClientCredentials, Endpoints, Error, FileStore, LoopbackLogin, RenewBefore, TokenManager,
    TokenManagerBuilder, TokenStore,
};

use crate::cli::{LoginArgs, TokenArgs};

/// The command failed because there is no usable session: the user must sign in (again).
/// `main` exits with status 2 on it, so scripts can tell it from other failures.
#[derive(Debug)]
pub enum SignedOut {
    /// There is no session.
    Never,
    /// The session has ended (revoked, expired, or replaced at the issuer).
    Ended {
        /// The session's issuer.
        issuer: String,
        /// The session's client.
        client_id: String,
    },
}

impl fmt::Display for SignedOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SignedOut::Never => {
                write!(
                    f,
                    "not signed in; run `tessera login --issuer URL --client-id ID`"
                )
            }
            SignedOut::Ended { issuer, client_id } => write!(
                f,
                "the session has ended; run `tessera login --issuer {issuer} --client-id {client_id}`"
            ),
        }
    }
}

impl std::error::Error for SignedOut {}

/// `tessera login`.
pub async fn login(args: LoginArgs) -> Result<()> {
    let files = Files::locate()?;
    let issuer = args.issuer.trim_end_matches('/');
    let http = http_client()?;
    let endpoints = Endpoints::discover(&http, issuer)
        .await
        .with_context(|| format!("cannot read the metadata of issuer {issuer}"))?;
    let session = Session {
        issuer: endpoints.issuer.clone(),
        client_id: args.client_id.clone(),
        token_endpoint: endpoints.token_endpoint.clone(),
        revocation_endpoint: endpoints.revocation_endpoint.clone(),
    };
    let scope = (!args.scopes.is_empty()).then(|| args.scopes.join(" "));
    let login = LoopbackLogin::start(
        endpoints,
        ClientCredentials::public(&args.client_id),
        scope.as_deref(),
    )
    .await?;
    // Always printed: the browser may not open, or may be on another screen.
    eprintln!(
        "To sign in to {issuer}, open this URL in a browser:\n\n    {}\n",
        login.authorize_url()
    );
    if !args.no_browser && open_browser(login.authorize_url()) {
        eprintln!("(Opening your browser.)");
    }
    eprintln!(
        "Waiting up to {} for the browser to come back to {} ...",
        humantime::format_duration(args.timeout),
        login.redirect_uri()
    );
    let tokens = login.finish(&http, args.timeout).await?;

    files.create_dir()?;
    let _lock = files.lock().await?;
    write_private(&files.session, &session.to_json())?;
    FileStore::new(&files.tokens)
        .save(&tokens)
        .await
        .context("cannot save the tokens")?;
    let scope = tokens
        .scope
        .as_deref()
        .map(|s| format!(", scope \"{s}\""))
        .unwrap_or_default();
    eprintln!(
        "Signed in to {issuer} (client {}{scope}); credentials saved in {}",
        args.client_id,
        files.dir.display()
    );
    if tokens.refresh_token.is_none() {
        eprintln!(
            "warning: the issuer granted no refresh token (does client {} have the \
             refresh_token grant?); `tessera token` works only until the access token \
             expires, in {}",
            args.client_id,
            humantime::format_duration(tokens.lifetime())
        );
    }
    Ok(())
}

/// `tessera token`.
pub async fn token(args: TokenArgs) -> Result<()> {
    let files = Files::locate()?;
    let Some(session) = files.session()? else {
        return Err(SignedOut::Never.into());
    };
    let _lock = files.lock().await?;
    let store = FileStore::new(&files.tokens);
    let before = store.load().await.ok().flatten();
    let renew_before = args
        .min_valid
        .map_or(RenewBefore::Default, RenewBefore::Fixed);
    let manager = session.manager(store)?.renew_before(renew_before).build();
    let token = match manager.access_token().await {
        Ok(token) => token,
        Err(Error::ReauthenticationRequired) => return Err(session.ended().into()),
        Err(error) => return Err(error).context("cannot get an access token"),
    };
    // The manager hands out the current token when renewal fails but the token has not
    // expired yet; say so, since the caller asked for more time than it has.
    if let Some(old) = before
        && old.access_token == token
        && old.needs_renewal(unix_now(), renew_before)
    {
        eprintln!(
            "warning: the token could not be renewed; it expires in {}",
            humantime::format_duration(old.remaining(unix_now()))
        );
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "{token}")
        .and_then(|()| out.flush())
        .context("cannot write the token")?;
    Ok(())
}

/// `tessera logout`.
pub async fn logout() -> Result<()> {
    let files = Files::locate()?;
    let session = match files.session() {
        Ok(session) => session,
        Err(error) => {
            files.remove_all()?;
            return Err(
                error.context("the local credentials were deleted, but nothing could be revoked")
            );
        }
    };
    let Some(session) = session else {
        files.remove_all()?;
        eprintln!("Not signed in; nothing to do.");
        return Ok(());
    };
    let _lock = files.lock().await?;
    let store = FileStore::new(&files.tokens);
    let had_tokens = matches!(store.load().await, Ok(Some(_)));
    let revoked = session.manager(store)?.build().logout().await;
    files.remove_all()?;
    let issuer = &session.issuer;
    match revoked {
        Err(error) => Err(anyhow!(error).context(format!(
            "the local credentials were deleted, but the revocation at {issuer} could not be \
             confirmed"
        ))),
        Ok(()) if !had_tokens => {
            eprintln!("The session with {issuer} had already ended; removed it.");
            Ok(())
        }
        Ok(()) if session.revocation_endpoint.is_none() => {
            eprintln!(
                "Signed out: the local credentials were deleted. {issuer} has no revocation \
                 endpoint, so its refresh token stays valid until it expires."
            );
            Ok(())
        }
        Ok(()) => {
            eprintln!(
                "Signed out of {issuer}: the session was revoked and the local credentials \
                 deleted."
            );
            Ok(())
        }
    }
}

/// What renewal needs besides the tokens: no secret (the client is public).
struct Session {
    issuer: String,
    client_id: String,
    token_endpoint: String,
    revocation_endpoint: Option<String>,
}

impl Session {
    fn to_json(&self) -> Vec<u8> {
        let value = json!({
            "issuer": self.issuer,
            "client_id": self.client_id,
            "token_endpoint": self.token_endpoint,
            "revocation_endpoint": self.revocation_endpoint,
        });
        let mut bytes = serde_json::to_vec_pretty(&value).unwrap_or_default();
        bytes.push(b'\n');
        bytes
    }

    fn from_json(bytes: &[u8]) -> Option<Self> {
        let value: Value = serde_json::from_slice(bytes).ok()?;
        let text = |name: &str| value.get(name)?.as_str().map(str::to_owned);
        Some(Self {
            issuer: text("issuer")?,
            client_id: text("client_id")?,
            token_endpoint: text("token_endpoint")?,
            revocation_endpoint: text("revocation_endpoint"),
        })
    }

    fn manager(&self, store: FileStore) -> Result<TokenManagerBuilder> {
        let builder = TokenManager::refreshing(
            &self.token_endpoint,
            ClientCredentials::public(&self.client_id),
            store,
        )
        .http(http_client()?);
        Ok(match &self.revocation_endpoint {
            Some(endpoint) => builder.revocation_endpoint(endpoint),
            None => builder,
        })
    }

    fn ended(&self) -> SignedOut {
        SignedOut::Ended {
            issuer: self.issuer.clone(),
            client_id: self.client_id.clone(),
        }
    }
}

/// The session's files.
struct Files {
    dir: PathBuf,
    session: PathBuf,
    tokens: PathBuf,
    lock: PathBuf,
}

impl Files {
    /// `$TESSERA_CONFIG_DIR`, else `$XDG_CONFIG_HOME/tessera`, else `$HOME/.config/tessera`.
    fn locate() -> Result<Self> {
        let var = |name: &str| {
            std::env::var_os(name)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        let dir = if let Some(dir) = var("TESSERA_CONFIG_DIR") {
            dir
        } else if let Some(xdg) = var("XDG_CONFIG_HOME").filter(|p| p.is_absolute()) {
            xdg.join("tessera")
        } else if let Some(home) = var("HOME") {
            home.join(".config").join("tessera")
        } else {
            bail!("no config directory: set TESSERA_CONFIG_DIR (or HOME)");
        };
        Ok(Self {
            session: dir.join("session.json"),
            tokens: dir.join("tokens.json"),
            lock: dir.join(".lock"),
            dir,
        })
    }

    fn create_dir(&self) -> Result<()> {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder
            .create(&self.dir)
            .with_context(|| format!("cannot create {}", self.dir.display()))
    }

    /// The session, if there is one.
    fn session(&self) -> Result<Option<Session>> {
        match std::fs::read(&self.session) {
            Ok(bytes) => Session::from_json(&bytes).map(Some).ok_or_else(|| {
                anyhow!(
                    "{} is not a Tessera session file; `tessera logout` removes it",
                    self.session.display()
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", self.session.display())),
        }
    }

    /// Holds the lock of the config directory until dropped (waiting for another command
    /// that holds it).
    async fn lock(&self) -> Result<std::fs::File> {
        let path = self.lock.clone();
        tokio::task::spawn_blocking(move || {
            let mut options = std::fs::OpenOptions::new();
            options.read(true).write(true).create(true).truncate(false);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let file = options
                .open(&path)
                .with_context(|| format!("cannot open {}", path.display()))?;
            file.lock()
                .with_context(|| format!("cannot lock {}", path.display()))?;
            Ok(file)
        })
        .await
        .context("the lock task failed")?
    }

    /// Deletes the tokens, then the session.
    fn remove_all(&self) -> Result<()> {
        for path in [&self.tokens, &self.session] {
            match std::fs::remove_file(path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(e).with_context(|| format!("cannot delete {}", path.display()));
                }
            }
        }
        Ok(())
    }
}

/// Writes `bytes` to `path` readable by its owner only, atomically: a temporary file in the
/// same directory, synced, renamed over `path`, and the directory synced.
fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("session");
    let temp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let written = options
        .open(&temp)
        .and_then(|mut file| {
            file.write_all(bytes)?;
            file.sync_all()
        })
        .and_then(|()| std::fs::rename(&temp, path));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&temp);
        return Err(e).with_context(|| format!("cannot write {}", path.display()));
    }
    #[cfg(unix)]
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("cannot sync {}", dir.display()))?;
    Ok(())
}

/// Starts the desktop's URL opener without waiting for it; whether it works is its
/// business (the URL is printed anyway). On Linux only under a graphical session: without
/// one, `xdg-open` falls back to a text browser that would take over the terminal.
fn open_browser(url: &str) -> bool {
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else if cfg!(unix)
        && (std::env::var_os("DISPLAY").is_some() || std::env::var_os("WAYLAND_DISPLAY").is_some())
    {
        "xdg-open"
    } else {
        return false;
    };
    Command::new(opener)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .is_ok()
}

/// The HTTP client of the three commands: no redirects, bounded.
fn http_client() -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .context("cannot set up the HTTP client")
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
