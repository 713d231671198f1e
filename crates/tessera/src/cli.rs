//! Command-line interface: every server setting is a flag and a `TESSERA_*` variable.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use tessera_cache::RedisOptions;
use tessera_core::client_ip::IpNetwork;
use tessera_core::rate_limit::RateLimit;

/// Tessera: an OAuth 2.0 authorization server issuing RS256 JWT access tokens.
#[derive(Debug, Parser)]
#[command(
    name = "tessera",
    version,
    about = "Tessera: an OAuth 2.0 authorization server issuing signed JWT access tokens",
    long_about = None
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
    /// TOML configuration file: keys are the settings' names (`access_token_ttl = "15m"`),
    /// top-level or in a table per command (`[serve]`); flags and environment win over it.
    #[arg(long, env = "TESSERA_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// Security profile presetting token lifetimes: standard, high or internal; explicit
    /// settings (flag, environment, file) win over it.
    #[arg(long, env = "TESSERA_PROFILE", global = true, value_enum)]
    pub profile: Option<crate::settings::Profile>,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the authorization server.
    Serve(Box<ServeArgs>),
    /// Register and manage OAuth clients.
    Client(ClientArgs),
    /// Create and manage users who sign in on the login page.
    User(UserArgs),
    /// Remove expired codes, tokens, families, sessions and revocation entries.
    Janitor(JanitorArgs),
    /// Inspect and operate the signing-key schedule.
    Keys(KeysArgs),
    /// Run the forward-auth service for NGINX auth_request, Traefik ForwardAuth and Envoy ext_authz.
    Guard(GuardArgs),
    /// Apply pending database migrations and exit.
    Migrate(StoreOnly),
    /// Write clients, users and signing keys (sealed) as JSON to standard output.
    Export(StoreOnly),
    /// Create the clients, users and keys of an export (read from standard input) that do not exist yet.
    Import(StoreOnly),
    /// Sign in to an issuer from the terminal (browser, PKCE, loopback redirect) and keep the session.
    Login(LoginArgs),
    /// Print a valid access token of the session on standard output, renewing it if needed.
    Token(TokenArgs),
    /// Revoke the session's refresh token at the issuer and delete the local credentials.
    Logout,
    /// Show, check or document the effective configuration.
    Config(ConfigArgs),
}

/// `tessera config`.
#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: ConfigCommand,
}

/// Configuration operations; each resolves the settings of `--command` (default `serve`)
/// from the arguments after `--`, the environment, the file and the profile.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print every setting's effective value and where it came from (secrets redacted).
    Show {
        /// Output format.
        #[arg(long, value_enum, default_value = "text")]
        format: OutputFormat,
        /// The command whose settings to show: serve, guard or janitor.
        #[arg(long = "command", default_value = "serve")]
        of: String,
        /// Arguments of that command, after `--`.
        #[arg(last = true)]
        args: Vec<OsString>,
    },
    /// Validate the settings without starting anything; exit 1 on the first problem list.
    Check {
        /// The command whose settings to check: serve, guard or janitor.
        #[arg(long = "command", default_value = "serve")]
        of: String,
        /// Arguments of that command, after `--`.
        #[arg(last = true)]
        args: Vec<OsString>,
    },
    /// Print the settings reference (Markdown) that README.md embeds.
    Docs,
}

/// `tessera login`.
#[derive(Debug, Args)]
pub struct LoginArgs {
    /// The issuer to sign in to (its base URL, as in its discovery metadata).
    #[arg(long)]
    pub issuer: String,
    /// A public client of the issuer with the redirect URI `http://127.0.0.1/callback`
    /// (any port is accepted, RFC 8252 §7.3) and the grants authorization_code and refresh_token.
    #[arg(long)]
    pub client_id: String,
    /// Scope to request (repeatable, or space-separated; default: the client's).
    #[arg(long = "scope")]
    pub scopes: Vec<String>,
    /// Do not try to open a browser; only print the URL to open.
    #[arg(long)]
    pub no_browser: bool,
    /// How long to wait for the browser to come back.
    #[arg(long, default_value = "5m", value_parser = duration)]
    pub timeout: Duration,
}

/// `tessera token`.
#[derive(Debug, Args)]
pub struct TokenArgs {
    /// Renew first if the token has less than this left (default: the larger of 60s and a
    /// fifth of the token's lifetime, at most half of it). Longer than the tokens' lifetime:
    /// renew on every call.
    #[arg(long, value_parser = duration)]
    pub min_valid: Option<Duration>,
}

/// `tessera guard`.
#[derive(Debug, Args)]
pub struct GuardArgs {
    /// The issuer whose tokens are accepted (its base URL, as in the tokens' `iss`).
    #[arg(long, env = "TESSERA_GUARD_ISSUER")]
    pub issuer: String,
    /// The audience this gateway protects; tokens must name it in `aud`.
    #[arg(long, env = "TESSERA_GUARD_AUDIENCE")]
    pub audience: String,
    /// Address to listen on.
    #[arg(long, env = "TESSERA_GUARD_LISTEN", default_value = "127.0.0.1:8081")]
    pub listen: SocketAddr,
    /// How tokens are checked: `jwt` verifies signatures locally against the JWKS;
    /// `introspection` asks the issuer about each new token (RFC 7662; needs --client-id).
    #[arg(long, env = "TESSERA_GUARD_MODE", value_enum, default_value = "jwt")]
    pub mode: GuardMode,
    /// JWKS URL (default: the `jwks_uri` of the issuer's metadata, RFC 8414).
    #[arg(long, env = "TESSERA_GUARD_JWKS_URL")]
    pub jwks_url: Option<String>,
    /// Introspection endpoint in introspection mode (default: from the issuer's metadata).
    #[arg(long, env = "TESSERA_GUARD_INTROSPECTION_URL")]
    pub introspection_url: Option<String>,
    /// How long to keep trying to read the issuer's metadata at startup before giving up.
    #[arg(long, env = "TESSERA_GUARD_DISCOVERY_TIMEOUT", default_value = "60s", value_parser = duration)]
    pub discovery_timeout: Duration,
    /// Accepted algorithms, comma-separated (none and HMAC are always refused).
    #[arg(
        long,
        env = "TESSERA_GUARD_ALGORITHMS",
        value_delimiter = ',',
        default_value = "RS256"
    )]
    pub algorithms: Vec<String>,
    /// Per-path scope rules: lines of `/path/prefix scope [scope...]`.
    #[arg(long, env = "TESSERA_GUARD_RULES")]
    pub rules: Option<PathBuf>,
    /// How long a verified token's result is reused (never past its `exp`).
    #[arg(long, env = "TESSERA_GUARD_CACHE_TTL", default_value = "300s", value_parser = duration)]
    pub cache_ttl: Duration,
    /// How many verified results are kept at most.
    #[arg(long, env = "TESSERA_GUARD_CACHE_CAPACITY", default_value_t = 100_000)]
    pub cache_capacity: u64,
    /// Clock leeway for `exp` and `nbf`.
    #[arg(long, env = "TESSERA_GUARD_LEEWAY", default_value = "60s", value_parser = duration)]
    pub leeway: Duration,
    /// Minimum time between JWKS fetches caused by unknown key ids.
    #[arg(long, env = "TESSERA_GUARD_JWKS_MIN_REFRESH", default_value = "10s", value_parser = duration)]
    pub jwks_min_refresh: Duration,
    /// How long past its max-age the last good JWKS is used while the issuer is unreachable;
    /// after that every request is refused with 503.
    #[arg(long, env = "TESSERA_GUARD_STALE_LIMIT", default_value = "1h", value_parser = duration)]
    pub stale_limit: Duration,
    /// Also accept the token from the `access_token` query parameter of the original URI
    /// (RFC 6750 §2.3). Off by default: URLs are logged and leak through Referer.
    #[arg(long, env = "TESSERA_GUARD_ALLOW_QUERY_TOKEN")]
    pub allow_query_token: bool,
    /// Allow an http:// issuer that is not a loopback address (keys and introspection would then travel in clear).
    #[arg(long, env = "TESSERA_GUARD_ALLOW_HTTP_ISSUER")]
    pub allow_http_issuer: bool,
    /// A confidential client of the issuer, used to follow its revocation feed (revoked
    /// tokens refused within a second) and, in introspection mode, to introspect.
    #[arg(
        long,
        visible_alias = "feed-client-id",
        env = "TESSERA_GUARD_CLIENT_ID",
        requires = "client_secret"
    )]
    pub client_id: Option<String>,
    /// Its secret.
    #[arg(
        long,
        visible_alias = "feed-client-secret",
        env = "TESSERA_GUARD_CLIENT_SECRET",
        hide_env_values = true
    )]
    pub client_secret: Option<String>,
}

/// How `tessera guard` checks tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum GuardMode {
    /// Local signature verification against the issuer's JWKS.
    Jwt,
    /// RFC 7662 introspection at the issuer, results cached like verified tokens.
    Introspection,
}

/// A command that needs only the storage location.
#[derive(Debug, Args)]
pub struct StoreOnly {
    /// Storage location.
    #[command(flatten)]
    pub store: StoreArgs,
}

/// The signing-key schedule settings, shared by `serve` and `keys`.
#[derive(Debug, Clone, Args)]
pub struct KeySettings {
    /// How long each signing key signs before the next one takes over.
    #[arg(long, env = "TESSERA_KEY_ROTATION_INTERVAL", default_value = "30d", value_parser = duration)]
    pub key_rotation_interval: Duration,
    /// How long a new key is published before it signs (default: twice the JWKS max-age; never less than it).
    #[arg(long, env = "TESSERA_KEY_PUBLISH_AHEAD", value_parser = duration)]
    pub key_publish_ahead: Option<Duration>,
    /// Algorithm of new signing keys: RS256 or ES256 (switching is a rotation like any other).
    #[arg(long, env = "TESSERA_SIGNING_ALG", default_value = "RS256")]
    pub signing_alg: String,
    /// RSA modulus size for new RS256 keys: 2048, 3072 or 4096.
    #[arg(long, env = "TESSERA_RSA_BITS", default_value_t = 2048)]
    pub rsa_bits: u32,
    /// Clock leeway verifiers allow past `exp`; a retired key stays published this much longer.
    #[arg(long, env = "TESSERA_CLOCK_LEEWAY", default_value = "60s", value_parser = duration)]
    pub clock_leeway: Duration,
    /// Lifetime of access tokens (1m to 24h).
    #[arg(long, env = "TESSERA_ACCESS_TOKEN_TTL", default_value = "15m", value_parser = duration)]
    pub access_token_ttl: Duration,
    /// `Cache-Control: max-age` of the JWKS response.
    #[arg(long, env = "TESSERA_JWKS_MAX_AGE", default_value = "5m", value_parser = duration)]
    pub jwks_max_age: Duration,
    /// Master key sealing private signing keys: base64 of 32 bytes (default: <data-dir>/master.key, created on first start).
    #[arg(long, env = "TESSERA_MASTER_KEY", hide_env_values = true)]
    pub master_key: Option<String>,
}

/// `tessera keys ...`.
#[derive(Debug, Args)]
pub struct KeysArgs {
    /// The key operation.
    #[command(subcommand)]
    pub command: KeysCommand,
    /// Schedule settings (must match the servers').
    #[command(flatten)]
    pub keys: KeySettings,
    /// The servers' Redis, if any: after a rotate or revoke every node reloads its keys at once.
    #[command(flatten)]
    pub redis: RedisArgs,
    /// Storage location.
    #[command(flatten)]
    pub store: StoreArgs,
}

/// Key operations.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// List keys with their state and timeline.
    List {
        /// Output format.
        #[arg(long, value_enum, default_value = "text")]
        format: OutputFormat,
    },
    /// Start a rotation now: a new key is published at once and signs after the publish-ahead time.
    Rotate,
    /// Emergency: revoke a compromised key. It leaves the JWKS at once, a new key signs at once, and every token it signed stops validating.
    Revoke {
        /// The kid to revoke (a kid may start with `-`: base64url).
        #[arg(allow_hyphen_values = true)]
        kid: String,
    },
    /// Re-encrypt every private key under a new master key (read from standard input), in one transaction.
    Rewrap {
        /// Read the new master key (base64 of 32 bytes) from standard input.
        #[arg(long, required = true)]
        new_master_key_stdin: bool,
    },
}

/// `tessera janitor`.
#[derive(Debug, Args)]
pub struct JanitorArgs {
    /// Run one pass and exit (otherwise run every --interval until stopped).
    #[arg(long)]
    pub once: bool,
    /// Time between passes.
    #[arg(long, env = "TESSERA_JANITOR_INTERVAL", default_value = "5m", value_parser = duration)]
    pub interval: Duration,
    /// Storage location.
    #[command(flatten)]
    pub store: StoreArgs,
    /// The Redis whose keys without a TTL are swept too, when configured.
    #[command(flatten)]
    pub redis: RedisArgs,
}

/// The optional Redis: shared validation cache tier and revocation bus.
#[derive(Debug, Clone, Args)]
pub struct RedisArgs {
    /// Redis URL, redis://[user:password@]host[:port][/db]; turns on the shared validation cache and the revocation bus.
    #[arg(long, env = "TESSERA_REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,
    /// Prefix of every Redis key and channel; nodes sharing a cache use the same one.
    #[arg(long, env = "TESSERA_REDIS_PREFIX", default_value = tessera_cache::redis_link::DEFAULT_PREFIX)]
    pub redis_prefix: String,
    /// Bound on each Redis call (1ms to 5s); a slower or failed call is a cache miss, never an error.
    #[arg(long, env = "TESSERA_REDIS_TIMEOUT", default_value = "100ms", value_parser = duration)]
    pub redis_timeout: Duration,
}

impl RedisArgs {
    /// The connection options, when a URL is configured.
    pub fn options(&self) -> Option<RedisOptions> {
        let url = self.redis_url.as_ref()?;
        Some(RedisOptions {
            url: url.clone(),
            prefix: self.redis_prefix.clone(),
            timeout: self.redis_timeout,
        })
    }

    /// Checks the prefix and timeout (the URL is checked when the connection is prepared).
    pub fn check(&self) -> Result<(), String> {
        if self.redis_prefix.is_empty() {
            return Err("TESSERA_REDIS_PREFIX / --redis-prefix must not be empty".into());
        }
        if !(Duration::from_millis(1)..=Duration::from_secs(5)).contains(&self.redis_timeout) {
            return Err(
                "TESSERA_REDIS_TIMEOUT / --redis-timeout must be between 1ms and 5s".into(),
            );
        }
        Ok(())
    }
}

/// Where the data lives; shared by every subcommand.
#[derive(Debug, Clone, Args)]
pub struct StoreArgs {
    /// Directory for the embedded SQLite database and master key.
    #[arg(
        long,
        env = "TESSERA_DATA_DIR",
        default_value = "./tessera-data",
        global = true
    )]
    pub data_dir: PathBuf,
    /// Database URL: postgres://user@host/db, or sqlite://path; overrides the SQLite file in the data directory.
    #[arg(
        long,
        env = "TESSERA_DATABASE_URL",
        global = true,
        hide_env_values = true
    )]
    pub database_url: Option<String>,
    /// Most database connections this process opens (per node).
    #[arg(
        long,
        env = "TESSERA_DATABASE_MAX_CONNECTIONS",
        default_value_t = 10,
        global = true
    )]
    pub database_max_connections: u32,
    /// How long a request waits for a database connection before answering 503.
    #[arg(long, env = "TESSERA_DATABASE_ACQUIRE_TIMEOUT", default_value = "5s", value_parser = duration, global = true)]
    pub database_acquire_timeout: Duration,
}

/// Log output format.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// `tessera serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, env = "TESSERA_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Issuer identifier, the public base URL (default: http:// + the listen address).
    #[arg(long, env = "TESSERA_ISSUER")]
    pub issuer: Option<String>,
    /// Lifetime of authorization codes (10s to 10m).
    #[arg(long, env = "TESSERA_CODE_TTL", default_value = "60s", value_parser = duration)]
    pub code_ttl: Duration,
    /// Lifetime each rotation gives a refresh token (1h to 365d).
    #[arg(long, env = "TESSERA_REFRESH_TOKEN_TTL", default_value = "14d", value_parser = duration)]
    pub refresh_token_ttl: Duration,
    /// Absolute limit of a refresh-token family from sign-in; at least the refresh TTL.
    #[arg(long, env = "TESSERA_REFRESH_TOKEN_MAX_LIFETIME", default_value = "90d", value_parser = duration)]
    pub refresh_token_max_lifetime: Duration,
    /// Window in which a client may retry a refresh whose response was lost (0s = off, at most 5m).
    #[arg(long, env = "TESSERA_REFRESH_GRACE", default_value = "0s", value_parser = duration)]
    pub refresh_grace: Duration,
    /// Lifetime of a browser sign-in session.
    #[arg(long, env = "TESSERA_SESSION_TTL", default_value = "8h", value_parser = duration)]
    pub session_ttl: Duration,
    /// What a scope means, for the consent page: `SCOPE=TEXT`, e.g. `orders:read=Read your orders` (repeatable; `;` separates entries in the variable); other scopes are shown by name.
    #[arg(
        long = "scope-description",
        env = "TESSERA_SCOPE_DESCRIPTIONS",
        value_delimiter = ';',
        value_name = "SCOPE=TEXT",
        value_parser = scope_description
    )]
    pub scope_descriptions: Vec<String>,
    /// Failed sign-ins that lock a username (known or not) for --login-lockout; the first half are free, each further one doubles the wait before the next attempt is checked (1 to 100).
    #[arg(long, env = "TESSERA_LOGIN_MAX_FAILURES", default_value_t = 5)]
    pub login_max_failures: u32,
    /// Failed sign-ins that lock a client address (IPv4, or an IPv6 /64), whatever the usernames; higher, as people share addresses (1 to 10000).
    #[arg(long, env = "TESSERA_LOGIN_IP_MAX_FAILURES", default_value_t = 20)]
    pub login_ip_max_failures: u32,
    /// How long a sign-in lockout lasts; failures are forgotten after this long without one (1m to 24h).
    #[arg(long, env = "TESSERA_LOGIN_LOCKOUT", default_value = "15m", value_parser = duration)]
    pub login_lockout: Duration,
    /// First wait after the free failed sign-ins, doubling with each further one, at most the lockout (0s to 1m; 0s: lockout only).
    #[arg(long, env = "TESSERA_LOGIN_BACKOFF", default_value = "1s", value_parser = duration)]
    pub login_backoff: Duration,
    /// Token requests per client and node: off, or N/s, N/m, N/h (bursts of N, refilled at N per period); over it, 429 slow_down with Retry-After.
    #[arg(
        long,
        env = "TESSERA_TOKEN_RATE_LIMIT",
        default_value = "off",
        value_parser = RateLimit::parse
    )]
    pub token_rate_limit: RateLimit,
    /// Reverse proxies whose X-Forwarded-For names the client address (addresses or CIDR networks, comma-separated); by default none: the socket peer is the client.
    #[arg(
        long,
        env = "TESSERA_TRUSTED_PROXIES",
        value_delimiter = ',',
        value_name = "CIDR",
        value_parser = IpNetwork::parse
    )]
    pub trusted_proxies: Vec<IpNetwork>,
    /// Longest life of a cached introspection result (never past the token's own expiry; at most 1h).
    #[arg(long, env = "TESSERA_VALIDATION_CACHE_TTL", default_value = "300s", value_parser = duration)]
    pub validation_cache_ttl: Duration,
    /// Most introspection results held in this process's cache.
    #[arg(
        long,
        env = "TESSERA_VALIDATION_CACHE_CAPACITY",
        default_value_t = 100_000
    )]
    pub validation_cache_capacity: u64,
    /// How often the revocation list is polled for revocations made elsewhere (other nodes, the CLI).
    #[arg(long, env = "TESSERA_REVOCATION_POLL_INTERVAL", default_value = "250ms", value_parser = duration)]
    pub revocation_poll_interval: Duration,
    /// How long this process reuses a client it read to authenticate it; a client deleted, given a new secret or changed elsewhere (the CLI, another node) takes effect here within it, changes this process makes at once (0s = off, at most 1m).
    #[arg(long, env = "TESSERA_CLIENT_CACHE_TTL", default_value = "5s", value_parser = duration)]
    pub client_cache_ttl: Duration,
    /// Time between janitor passes inside the server (0s turns the janitor off).
    #[arg(long, env = "TESSERA_JANITOR_INTERVAL", default_value = "5m", value_parser = duration)]
    pub janitor_interval: Duration,
    /// Log format.
    #[arg(long, env = "TESSERA_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// Log filter: a level, or per-target directives (`info,tessera_core=debug`); changes on reload.
    #[arg(
        long,
        env = "TESSERA_LOG",
        default_value = "info,sqlx=warn,tower_http=warn"
    )]
    pub log_level: String,
    /// Reload the configuration file when it changes (as on SIGHUP), checked every second.
    #[arg(long, env = "TESSERA_WATCH_CONFIG")]
    pub watch_config: bool,
    /// Allow an http:// issuer that is not a loopback address (never in production: tokens and credentials would cross the network in clear).
    #[arg(long, env = "TESSERA_ALLOW_HTTP_ISSUER")]
    pub allow_http_issuer: bool,
    /// Signing keys, their schedule, and the settings it depends on.
    #[command(flatten)]
    pub keys: KeySettings,
    /// How often each node takes due key-schedule steps and reloads the key ring.
    #[arg(long, env = "TESSERA_KEY_REFRESH_INTERVAL", default_value = "30s", value_parser = duration)]
    pub key_refresh_interval: Duration,
    /// Create (or refresh) a demo public client, confidential client and user, and print how to get a token.
    #[arg(long)]
    pub demo: bool,
    /// Storage location.
    #[command(flatten)]
    pub store: StoreArgs,
    /// Redis, optional.
    #[command(flatten)]
    pub redis: RedisArgs,
}

/// `tessera client ...`.
#[derive(Debug, Args)]
pub struct ClientArgs {
    /// The client operation.
    #[command(subcommand)]
    pub command: ClientCommand,
    /// Storage location.
    #[command(flatten)]
    pub store: StoreArgs,
}

/// Output format of administration commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Aligned text for people.
    Text,
    /// JSON for scripts.
    Json,
}

/// Client operations.
#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Register a client.
    Create(ClientCreate),
    /// Change a client's token lifetimes, or whether it is first-party.
    Update(ClientUpdate),
    /// List clients.
    List {
        /// Output format.
        #[arg(long, value_enum, default_value = "text")]
        format: OutputFormat,
    },
    /// Show one client.
    Show {
        /// The client id.
        id: String,
        /// Output format.
        #[arg(long, value_enum, default_value = "text")]
        format: OutputFormat,
    },
    /// Delete a client (its outstanding codes go with it).
    Delete {
        /// The client id.
        id: String,
    },
}

/// `tessera client create`.
#[derive(Debug, Args)]
pub struct ClientCreate {
    /// Client id (generated when omitted).
    #[arg(long)]
    pub id: Option<String>,
    /// Display name shown on the login page (default: the id).
    #[arg(long)]
    pub name: Option<String>,
    /// Client secret, at least 32 characters (generated and printed once when omitted).
    #[arg(long, conflicts_with_all = ["secret_stdin", "public"])]
    pub secret: Option<String>,
    /// Read the client secret from standard input.
    #[arg(long, conflicts_with = "public")]
    pub secret_stdin: bool,
    /// A public client (no secret; authorization code with PKCE only).
    #[arg(long)]
    pub public: bool,
    /// Allowed redirect URI, matched exactly (repeatable).
    #[arg(long = "redirect-uri")]
    pub redirect_uris: Vec<String>,
    /// Allowed grant type (repeatable): authorization_code, refresh_token, client_credentials.
    /// Default: authorization_code when redirect URIs are given, else client_credentials.
    #[arg(long = "grant-type")]
    pub grant_types: Vec<String>,
    /// Allowed scope (repeatable, or space-separated).
    #[arg(long = "scope")]
    pub scopes: Vec<String>,
    /// Allowed audience / RFC 8707 resource (repeatable); the first is the default `aud`.
    #[arg(long = "audience", visible_alias = "resource")]
    pub audiences: Vec<String>,
    /// An application of this deployment's own operator: its users are not asked for consent
    /// (default: third-party, users approve the scopes it asks for once).
    #[arg(long)]
    pub first_party: bool,
    /// Where the browser may be sent back after signing out (`post_logout_redirect_uri` at
    /// the logout endpoint), matched exactly (repeatable).
    #[arg(long = "post-logout-redirect-uri")]
    pub post_logout_redirect_uris: Vec<String>,
    /// This client's access-token lifetime, e.g. `5m` (1m to 24h; default: the server's).
    #[arg(long, value_name = "DURATION")]
    pub access_token_ttl: Option<String>,
    /// This client's refresh-token lifetime, e.g. `2d` (1h to 365d, at least the access-token
    /// lifetime; default: the server's).
    #[arg(long, value_name = "DURATION")]
    pub refresh_token_ttl: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: OutputFormat,
}

/// `tessera client update`: the lifetimes given change, the others stay.
#[derive(Debug, Args)]
pub struct ClientUpdate {
    /// The client id.
    pub id: String,
    /// This client's access-token lifetime, e.g. `5m` (1m to 24h), or `default` for the
    /// server's.
    #[arg(long, value_name = "DURATION|default")]
    pub access_token_ttl: Option<String>,
    /// This client's refresh-token lifetime, e.g. `2d` (1h to 365d, at least the access-token
    /// lifetime), or `default` for the server's.
    #[arg(long, value_name = "DURATION|default")]
    pub refresh_token_ttl: Option<String>,
    /// `true`: a first-party client, its users are not asked for consent; `false`: they are.
    #[arg(long, value_name = "true|false")]
    pub first_party: Option<bool>,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: OutputFormat,
}

/// `tessera user ...`.
#[derive(Debug, Args)]
pub struct UserArgs {
    /// The user operation.
    #[command(subcommand)]
    pub command: UserCommand,
    /// Storage location.
    #[command(flatten)]
    pub store: StoreArgs,
}

/// User operations.
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user.
    Create {
        /// The login name.
        name: String,
        /// Read the password from standard input (otherwise one is generated and printed once).
        #[arg(long)]
        password_stdin: bool,
        /// Role carried in the `roles` claim (repeatable).
        #[arg(long = "role")]
        roles: Vec<String>,
        /// Full name, the OpenID Connect `name` claim (released under the `profile` scope).
        #[arg(long = "name", value_name = "FULL_NAME")]
        full_name: Option<String>,
        /// Email address, the `email` claim (released under the `email` scope).
        #[arg(long)]
        email: Option<String>,
        /// Vouch that the email address is the user's: `email_verified` is `true`
        /// (default `false`; Tessera sends no verification mail).
        #[arg(long, requires = "email")]
        email_verified: bool,
        /// Output format.
        #[arg(long, value_enum, default_value = "text")]
        format: OutputFormat,
    },
    /// List users.
    List {
        /// Output format.
        #[arg(long, value_enum, default_value = "text")]
        format: OutputFormat,
    },
    /// Disable a user: no more sign-ins or code redemptions.
    Disable {
        /// The login name.
        name: String,
    },
    /// Re-enable a disabled user.
    Enable {
        /// The login name.
        name: String,
    },
    /// Sign a user out everywhere: revoke every refresh-token family and the access tokens
    /// issued from them (after a password change or a stolen device).
    RevokeTokens {
        /// The login name.
        name: String,
    },
    /// Forget a user's consents to third-party clients: the next sign-in through such a
    /// client shows the consent page again.
    RevokeConsent {
        /// The login name.
        name: String,
        /// Only the consent to this client (default: every client).
        #[arg(long = "client", value_name = "CLIENT_ID")]
        client: Option<String>,
    },
}

/// Checks a `SCOPE=TEXT` scope description.
fn scope_description(s: &str) -> Result<String, String> {
    tessera_core::consent::parse_entry(s).map(|_| s.to_owned())
}

/// Parses a human-readable duration such as `15m`, `7d` or `300s`.
fn duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e} (examples: 90s, 15m, 8h, 7d)"))
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[test]
    fn a_kid_starting_with_a_hyphen_is_a_kid_not_a_flag() {
        let cli = Cli::try_parse_from(["tessera", "keys", "revoke", "-Xk2_a"]).unwrap();
        match cli.command {
            Command::Keys(KeysArgs {
                command: KeysCommand::Revoke { kid },
                ..
            }) => assert_eq!(kid, "-Xk2_a"),
            other => panic!("{other:?}"),
        }
    }
}
