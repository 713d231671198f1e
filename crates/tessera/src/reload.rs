//! Live reload of `tessera serve`'s configuration: on SIGHUP, or when the file changes with
//! `--watch-config`, the settings are resolved again (same command line, same environment,
//! the file re-read), checked like at start, and the ones that can change live are applied
//! to new requests; connections and requests in flight are untouched.
//!
//! A configuration that fails the checks is rejected whole: the error is logged with the
//! same messages as at start and the running configuration stays in force. Settings that
//! cannot change in a running process (listen address, database, keys, Redis…) are
//! reported as needing a restart and keep their running values.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tessera_core::AuthorizationServer;
use tracing_subscriber::EnvFilter;

use crate::cli::Command;
use crate::config_cmd::check_serve;
use crate::serve::LogHandle;
use crate::settings::{self, Setting};

/// Settings applied to a running server; every other change needs a restart.
pub const LIVE: [&str; 17] = [
    "access_token_ttl",
    "refresh_token_ttl",
    "refresh_token_max_lifetime",
    "refresh_grace",
    "code_ttl",
    "session_ttl",
    "validation_cache_ttl",
    "scope_descriptions",
    "login_max_failures",
    "login_ip_max_failures",
    "login_lockout",
    "login_backoff",
    "token_rate_limit",
    "trusted_proxies",
    "log_level",
    // The profile only presets the settings above.
    "profile",
    "config",
];

/// What a reload needs to know about the running server.
pub struct Reloader {
    /// The command line the server was started with.
    pub argv: Vec<OsString>,
    /// The settings in force.
    pub running: Vec<Setting>,
    /// The issuer (fixed for the life of the process).
    pub issuer: String,
    /// The server whose policy is replaced.
    pub server: Arc<AuthorizationServer>,
    /// The log filter's handle.
    pub log: LogHandle,
}

/// What a successful reload did.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Live settings whose value changed, as `key: old -> new`.
    pub applied: Vec<String>,
    /// Changed settings that need a restart (kept at their running values).
    pub needs_restart: Vec<String>,
    /// Warnings of the checks.
    pub warnings: Vec<String>,
}

impl Reloader {
    /// Resolves, checks and applies the configuration once.
    pub fn reload(&mut self) -> Result<Outcome, String> {
        let resolved = settings::resolve(&self.argv).map_err(|e| e.to_string())?;
        let Command::Serve(args) = &resolved.cli.command else {
            return Err("the command line is not `tessera serve`".into());
        };
        let findings = check_serve(args, &resolved);
        if !findings.errors.is_empty() {
            return Err(findings.errors.join("; "));
        }
        let running: BTreeMap<&str, &Setting> =
            self.running.iter().map(|s| (s.key.as_str(), s)).collect();
        let mut outcome = Outcome {
            warnings: findings.warnings,
            ..Outcome::default()
        };
        for setting in &resolved.settings {
            let before = running
                .get(setting.key.as_str())
                .and_then(|s| s.value.clone());
            if before == setting.value {
                continue;
            }
            let change = format!(
                "{}: {} -> {}",
                setting.key,
                before.as_deref().unwrap_or("-"),
                setting.value.as_deref().unwrap_or("-")
            );
            if LIVE.contains(&setting.key.as_str()) {
                outcome.applied.push(change);
            } else {
                outcome.needs_restart.push(change);
            }
        }
        let filter = EnvFilter::try_new(&args.log_level).map_err(|e| e.to_string())?;
        self.server
            .set_policy(crate::serve::policy(args, self.issuer.clone()));
        if let Err(e) = self.log.reload(filter) {
            tracing::warn!(error = %e, "the log filter could not be changed");
        }
        // Live settings take their new values; the others keep what the process runs with.
        let live: BTreeMap<String, Setting> = resolved
            .settings
            .iter()
            .filter(|s| LIVE.contains(&s.key.as_str()))
            .map(|s| (s.key.clone(), s.clone()))
            .collect();
        for setting in &mut self.running {
            if let Some(new) = live.get(&setting.key) {
                *setting = new.clone();
            }
        }
        Ok(outcome)
    }

    fn reload_and_report(&mut self, cause: &str) {
        match self.reload() {
            Ok(outcome) => {
                metrics::counter!("tessera_config_reloads_total", "result" => "applied")
                    .increment(1);
                metrics::gauge!("tessera_config_last_reload_success").set(1.0);
                for warning in &outcome.warnings {
                    tracing::warn!("configuration: {warning}");
                }
                for change in &outcome.needs_restart {
                    tracing::warn!(change = %change, "configuration change needs a restart; keeping the running value");
                }
                tracing::info!(
                    cause,
                    applied = %outcome.applied.join(", "),
                    "configuration reloaded"
                );
                tessera_core::audit::config_reloaded(cause, true, &outcome.applied.join(", "));
            }
            Err(error) => {
                metrics::counter!("tessera_config_reloads_total", "result" => "rejected")
                    .increment(1);
                metrics::gauge!("tessera_config_last_reload_success").set(0.0);
                tracing::error!(
                    cause,
                    %error,
                    "configuration rejected; the running configuration stays in force"
                );
                tessera_core::audit::config_reloaded(cause, false, &error);
            }
        }
    }
}

/// Reloads on every SIGHUP, and on every change of `watched` (checked each second).
pub async fn run(mut reloader: Reloader, watched: Option<PathBuf>) {
    #[cfg(unix)]
    let mut hangup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(signal) => Some(signal),
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGHUP; reload by signal is off");
            None
        }
    };
    let mut seen = watched.as_deref().map(fingerprint);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        #[cfg(unix)]
        let signalled = async {
            match hangup.as_mut() {
                Some(signal) => signal.recv().await,
                None => std::future::pending().await,
            }
        };
        #[cfg(not(unix))]
        let signalled = std::future::pending::<Option<()>>();
        tokio::select! {
            Some(()) = signalled => reloader.reload_and_report("SIGHUP"),
            _ = tick.tick(), if watched.is_some() => {
                let now = watched.as_deref().map(fingerprint);
                if now != seen {
                    seen = now;
                    reloader.reload_and_report("file changed");
                }
            }
        }
    }
}

/// The file's content, for change detection (`None` while it cannot be read).
fn fingerprint(path: &std::path::Path) -> Option<Vec<u8>> {
    std::fs::read(path).ok()
}
