//! `tessera config show|check|docs`, and the checks every `serve` start and reload runs.
//!
//! Each problem names the setting, its value, where the value came from (flag, variable,
//! file and line, profile, default) and what is allowed, so that the fix is obvious from
//! the message alone.

use std::ffi::OsString;
use std::time::Duration;

use anyhow::{Result, bail};
use clap::CommandFactory;
use tessera_core::policy::{
    ACCESS_TOKEN_TTL_BOUNDS, REFRESH_TOKEN_TTL_BOUNDS, refresh_covers_access,
};

use crate::cli::{Cli, Command, ConfigCommand, GuardArgs, OutputFormat, ServeArgs};
use crate::settings::{self, ResolveError, Resolved};

/// What the checks found: errors stop a start (or reject a reload), warnings are logged.
#[derive(Debug, Default)]
pub struct Findings {
    /// Values outside their allowed range or inconsistent with each other.
    pub errors: Vec<String>,
    /// Values allowed but outside what is recommended.
    pub warnings: Vec<String>,
}

/// An inclusive range of durations, displayed like the settings are written.
struct Range {
    min: Duration,
    max: Duration,
}

const fn range(min_secs: u64, max_secs: u64) -> Range {
    Range {
        min: Duration::from_secs(min_secs),
        max: Duration::from_secs(max_secs),
    }
}

impl Range {
    fn contains(&self, value: Duration) -> bool {
        self.min <= value && value <= self.max
    }
}

impl std::fmt::Display for Range {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} to {}", compact(self.min), compact(self.max))
    }
}

fn compact(d: Duration) -> String {
    let secs = d.as_secs();
    match secs {
        0 if d.subsec_millis() > 0 => format!("{}ms", d.subsec_millis()),
        s if s > 86_400 && s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s >= 3600 && s % 3600 == 0 => format!("{}h", s / 3600),
        s if s >= 60 && s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

const MINUTE: u64 = 60;
const HOUR: u64 = 3600;
const DAY: u64 = 86_400;

/// Access tokens: 1 minute to 24 hours (the bounds per-client overrides share); 15 to 60
/// minutes recommended.
const ACCESS_TTL: Range = Range {
    min: ACCESS_TOKEN_TTL_BOUNDS.min,
    max: ACCESS_TOKEN_TTL_BOUNDS.max,
};
const ACCESS_TTL_RECOMMENDED: Range = range(15 * MINUTE, 60 * MINUTE);
/// Refresh tokens: 1 hour to 365 days; 7 to 30 days recommended.
const REFRESH_TTL: Range = Range {
    min: REFRESH_TOKEN_TTL_BOUNDS.min,
    max: REFRESH_TOKEN_TTL_BOUNDS.max,
};
const REFRESH_TTL_RECOMMENDED: Range = range(7 * DAY, 30 * DAY);

/// Checks the `serve` settings; `r` says where each value came from.
pub fn check_serve(args: &ServeArgs, r: &Resolved) -> Findings {
    let mut found = Findings::default();
    let mut bound = |key: &str, value: Duration, allowed: Range, why: &str| {
        if !allowed.contains(value) {
            found
                .errors
                .push(format!("{}: must be {allowed}{why}", r.describe(key)));
        }
    };
    bound(
        "access_token_ttl",
        args.keys.access_token_ttl,
        ACCESS_TTL,
        "",
    );
    bound("refresh_token_ttl", args.refresh_token_ttl, REFRESH_TTL, "");
    bound(
        "code_ttl",
        args.code_ttl,
        range(10, 10 * MINUTE),
        " (RFC 6749 §4.1.2: codes are short-lived)",
    );
    bound("session_ttl", args.session_ttl, range(MINUTE, 30 * DAY), "");
    bound(
        "refresh_grace",
        args.refresh_grace,
        range(0, 5 * MINUTE),
        " (0s turns the grace window off)",
    );
    bound(
        "validation_cache_ttl",
        args.validation_cache_ttl,
        range(0, HOUR),
        "",
    );
    bound(
        "client_cache_ttl",
        args.client_cache_ttl,
        range(0, MINUTE),
        " (0s turns the client cache off)",
    );
    bound("jwks_max_age", args.keys.jwks_max_age, range(0, DAY), "");
    bound("login_lockout", args.login_lockout, range(MINUTE, DAY), "");
    bound(
        "login_backoff",
        args.login_backoff,
        range(0, MINUTE),
        " (0s: no waits, only the lockout)",
    );
    bound(
        "key_refresh_interval",
        args.key_refresh_interval,
        range(1, DAY),
        "",
    );
    if !(Duration::from_millis(10)..=Duration::from_secs(1))
        .contains(&args.revocation_poll_interval)
    {
        found.errors.push(format!(
            "{}: must be 10ms to 1s (a revoked token must be refused everywhere within a second)",
            r.describe("revocation_poll_interval")
        ));
    }
    let mut count = |key: &str, value: u32, max: u32| {
        if !(1..=max).contains(&value) {
            found
                .errors
                .push(format!("{}: must be 1 to {max}", r.describe(key)));
        }
    };
    count("login_max_failures", args.login_max_failures, 100);
    count("login_ip_max_failures", args.login_ip_max_failures, 10_000);
    if args.login_ip_max_failures < args.login_max_failures {
        found.warnings.push(format!(
            "{}: below login_max_failures ({}), so a shared address locks before any account does",
            r.describe("login_ip_max_failures"),
            args.login_max_failures
        ));
    }
    if !refresh_covers_access(args.keys.access_token_ttl, args.refresh_token_ttl) {
        found.errors.push(format!(
            "{}: must be at least access_token_ttl ({}), or access tokens would outlive every way to renew them",
            r.describe("refresh_token_ttl"),
            compact(args.keys.access_token_ttl)
        ));
    }
    if args.refresh_token_max_lifetime < args.refresh_token_ttl
        || args.refresh_token_max_lifetime > Duration::from_secs(3 * 365 * DAY)
    {
        found.errors.push(format!(
            "{}: must be at least refresh_token_ttl ({}) and at most 3 years",
            r.describe("refresh_token_max_lifetime"),
            compact(args.refresh_token_ttl)
        ));
    }
    if let Err(problem) = args.redis.check() {
        found.errors.push(problem);
    }
    if let Err(problem) = crate::keys::policy(&args.keys) {
        found.errors.push(format!("{problem:#}"));
    }
    if let Err(problem) = crate::keys::kind(&args.keys) {
        found.errors.push(format!("{problem:#}"));
    }
    if let Some(issuer) = &args.issuer
        && let Err(problem) = check_issuer(issuer, args.allow_http_issuer)
    {
        found
            .errors
            .push(format!("{}: {problem}", r.describe("issuer")));
    }
    if let Err(problem) = tracing_subscriber::EnvFilter::try_new(&args.log_level) {
        found.errors.push(format!(
            "{}: not a log filter ({problem})",
            r.describe("log_level")
        ));
    }
    if ACCESS_TTL.contains(args.keys.access_token_ttl)
        && !ACCESS_TTL_RECOMMENDED.contains(args.keys.access_token_ttl)
    {
        found.warnings.push(format!(
            "{}: outside the recommended {ACCESS_TTL_RECOMMENDED}",
            r.describe("access_token_ttl")
        ));
    }
    if REFRESH_TTL.contains(args.refresh_token_ttl)
        && !REFRESH_TTL_RECOMMENDED.contains(args.refresh_token_ttl)
    {
        found.warnings.push(format!(
            "{}: outside the recommended {REFRESH_TTL_RECOMMENDED}",
            r.describe("refresh_token_ttl")
        ));
    }
    found
}

/// Checks the `guard` settings.
pub fn check_guard(args: &GuardArgs, r: &Resolved) -> Findings {
    let mut found = Findings::default();
    let mut bound = |key: &str, value: Duration, allowed: Range| {
        if !allowed.contains(value) {
            found
                .errors
                .push(format!("{}: must be {allowed}", r.describe(key)));
        }
    };
    bound("cache_ttl", args.cache_ttl, range(0, HOUR));
    bound("leeway", args.leeway, range(0, 5 * MINUTE));
    bound("jwks_min_refresh", args.jwks_min_refresh, range(1, HOUR));
    bound("stale_limit", args.stale_limit, range(0, 7 * DAY));
    bound("discovery_timeout", args.discovery_timeout, range(1, HOUR));
    let issuer = args.issuer.trim_end_matches('/');
    if let Err(problem) = check_issuer(issuer, args.allow_http_issuer) {
        found
            .errors
            .push(format!("{}: {problem}", r.describe("issuer")));
    }
    if args.audience.is_empty() {
        found
            .errors
            .push(format!("{}: must not be empty", r.describe("audience")));
    }
    found
}

/// RFC 8414 §2: an absolute https URL without query or fragment; plain http only for a
/// loopback address, or when explicitly allowed.
pub fn check_issuer(issuer: &str, allow_http: bool) -> Result<(), String> {
    let url = url::Url::parse(issuer).map_err(|_| "must be an absolute URL".to_owned())?;
    if url.query().is_some() || url.fragment().is_some() {
        return Err("must not have a query or fragment (RFC 8414 §2)".into());
    }
    match url.scheme() {
        "https" => Ok(()),
        "http" if allow_http || is_loopback(&url) => Ok(()),
        "http" => Err(
            "must be https unless it is a loopback address (allow plain http anyway with \
             --allow-http-issuer)"
                .into(),
        ),
        _ => Err("must be an http(s) URL".into()),
    }
}

fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(name)) => name == "localhost",
        None => false,
    }
}

/// The checks of the command `resolved` runs (none for commands without settings bounds).
pub fn check(resolved: &Resolved) -> Findings {
    match &resolved.cli.command {
        Command::Serve(serve) => check_serve(serve, resolved),
        Command::Guard(guard) => check_guard(guard, resolved),
        _ => Findings::default(),
    }
}

/// Resolves `tessera <of> <args…>` the way running it would; `outer` are the global flags
/// given to `tessera config` itself (`--config`, `--profile`), passed on.
fn resolve_for(of: &str, args: &[OsString], outer: &[OsString]) -> Result<Resolved, ResolveError> {
    if !["serve", "guard", "janitor"].contains(&of) {
        return Err(ResolveError::Settings(vec![format!(
            "--command {of}: expected serve, guard or janitor"
        )]));
    }
    let mut argv = vec![OsString::from("tessera"), OsString::from(of)];
    argv.extend(outer.iter().cloned());
    argv.extend(args.iter().cloned());
    settings::resolve(&argv)
}

/// Runs `tessera config …`; `outer` are the settings of `tessera config` itself.
pub fn run(command: ConfigCommand, outer: &[settings::Setting]) -> Result<()> {
    let outer: Vec<OsString> = outer
        .iter()
        .filter(|s| matches!(s.source, settings::Source::Flag { .. }))
        .filter(|s| s.key == "config" || s.key == "profile")
        .filter_map(|s| Some(OsString::from(format!("{}={}", s.flag, s.value.as_ref()?))))
        .collect();
    match command {
        ConfigCommand::Show { format, of, args } => {
            let resolved = resolve_for(&of, &args, &outer)?;
            print_settings(&resolved, format);
            Ok(())
        }
        ConfigCommand::Check { of, args } => {
            let resolved = resolve_for(&of, &args, &outer)?;
            let findings = check(&resolved);
            for warning in &findings.warnings {
                eprintln!("warning: {warning}");
            }
            if findings.errors.is_empty() {
                eprintln!("configuration of `tessera {of}` is valid");
                Ok(())
            } else {
                bail!("invalid configuration:\n  {}", findings.errors.join("\n  "))
            }
        }
        ConfigCommand::Docs => {
            use std::io::Write;
            let _ = std::io::stdout().lock().write_all(reference().as_bytes());
            Ok(())
        }
    }
}

fn print_settings(resolved: &Resolved, format: OutputFormat) {
    use std::io::Write;
    let text = match format {
        OutputFormat::Json => {
            serde_json::to_string_pretty(&resolved.settings).unwrap_or_default() + "\n"
        }
        OutputFormat::Text => {
            let width = resolved
                .settings
                .iter()
                .map(|s| s.key.len())
                .max()
                .unwrap_or(0);
            resolved
                .settings
                .iter()
                .map(|s| {
                    format!(
                        "{:width$}  {}  ({})\n",
                        s.key,
                        s.value.as_deref().unwrap_or("-"),
                        s.source
                    )
                })
                .collect()
        }
    };
    // A closed pipe (`| head`) is not an error worth a panic.
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}

/// The settings reference: one table per command, generated from the option definitions
/// (README.md embeds it; a test keeps the two equal).
pub fn reference() -> String {
    let root = Cli::command();
    let mut out = String::new();
    out.push_str(
        "Every setting is a flag, an environment variable and a key of the TOML file \
         (`--config`, `TESSERA_CONFIG`); precedence: flag > environment > file > profile > \
         default. Durations are written `90s`, `15m`, `8h`, `7d`.\n",
    );
    for name in ["serve", "guard", "janitor"] {
        let Some(command) = root.find_subcommand(name) else {
            continue;
        };
        out.push_str(&format!(
            "\n#### `tessera {name}`\n\n| File key | Flag | Environment | Default | On reload | Description |\n|---|---|---|---|---|---|\n"
        ));
        let mut rows: Vec<_> = command
            .get_arguments()
            .chain(root.get_arguments())
            .filter(|a| {
                a.get_long().is_some() && !["help", "version"].contains(&a.get_id().as_str())
            })
            .collect();
        rows.dedup_by_key(|a| a.get_id().clone());
        for arg in rows {
            let default = arg
                .get_default_values()
                .iter()
                .map(|v| v.to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join(",");
            let help = arg
                .get_help()
                .map(|h| h.to_string().replace('|', "\\|"))
                .unwrap_or_default();
            let reload = if name == "serve" && crate::reload::LIVE.contains(&arg.get_id().as_str())
            {
                "live"
            } else {
                "restart"
            };
            out.push_str(&format!(
                "| `{}` | `--{}` | {} | {} | {reload} | {} |\n",
                arg.get_id(),
                arg.get_long().unwrap_or_default(),
                arg.get_env()
                    .map(|e| format!("`{}`", e.to_string_lossy()))
                    .unwrap_or_default(),
                if default.is_empty() {
                    String::new()
                } else {
                    format!("`{default}`")
                },
                help
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issuers_must_be_https_unless_loopback_or_allowed() {
        for ok in [
            "https://auth.example.com",
            "https://auth.example.com/tenant",
            "http://127.0.0.1:8080",
            "http://[::1]:8080",
            "http://localhost:8080",
        ] {
            assert_eq!(check_issuer(ok, false), Ok(()), "{ok}");
        }
        assert!(check_issuer("http://auth.example.com", false).is_err());
        assert_eq!(check_issuer("http://auth.example.com", true), Ok(()));
        assert!(check_issuer("https://auth.example.com/?a=1", true).is_err());
        assert!(check_issuer("https://auth.example.com/#f", true).is_err());
        assert!(check_issuer("auth.example.com", true).is_err());
        assert!(check_issuer("ftp://auth.example.com", true).is_err());
    }

    /// README.md embeds `tessera config docs` between markers; regenerate with
    /// `cargo run -- config docs` and paste it in when an option changes.
    #[test]
    fn the_readme_settings_reference_is_the_generated_one() {
        let readme =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md"))
                .unwrap();
        let begin = "<!-- settings:begin (generated by `tessera config docs`) -->\n";
        let end = "<!-- settings:end -->";
        let start = readme.find(begin).expect("the README has the begin marker") + begin.len();
        let stop = readme[start..]
            .find(end)
            .expect("the README has the end marker")
            + start;
        assert!(
            readme[start..stop] == reference(),
            "README.md's settings reference is stale: regenerate it with `tessera config docs`"
        );
    }
}
