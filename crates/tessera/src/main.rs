//! `tessera`: the authorization server and its administration commands.
//!
//! `main` only parses arguments and dispatches; each subcommand lives in its own module.

mod cli;
mod client_cmd;
mod config_cmd;
mod demo;
mod guard_cmd;
mod janitor;
mod keys;
mod login_cmd;
mod reload;
mod serve;
mod settings;
mod storage;
mod transfer;
mod user_cmd;

use std::process::ExitCode;

use crate::cli::Command;
use crate::settings::ResolveError;

#[tokio::main]
async fn main() -> ExitCode {
    // Flags, environment, the configuration file and the profile, with their sources.
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let resolved = match settings::resolve(&argv) {
        Ok(resolved) => resolved,
        Err(ResolveError::Clap(e)) => e.exit(),
        Err(ResolveError::Settings(problems)) => {
            eprintln!("error: invalid configuration:\n  {}", problems.join("\n  "));
            return ExitCode::FAILURE;
        }
    };
    // Checked before anything binds a port.
    let findings = config_cmd::check(&resolved);
    if !findings.errors.is_empty() {
        eprintln!(
            "error: invalid configuration:\n  {}",
            findings.errors.join("\n  ")
        );
        return ExitCode::FAILURE;
    }
    let settings = resolved.settings;
    let result = match resolved.cli.command {
        Command::Serve(args) => {
            let startup = serve::Startup {
                argv,
                settings,
                warnings: findings.warnings,
            };
            serve::run(*args, startup).await
        }
        Command::Config(args) => config_cmd::run(args.command, &settings),
        Command::Client(args) => client_cmd::run(args).await,
        Command::User(args) => user_cmd::run(args).await,
        Command::Janitor(args) => janitor::run(args).await,
        Command::Keys(args) => keys::run(args).await,
        Command::Guard(args) => guard_cmd::run(args).await,
        Command::Migrate(args) => storage::migrate(&args.store).await,
        Command::Export(args) => transfer::run_export(args).await,
        Command::Import(args) => transfer::run_import(args).await,
        Command::Login(args) => login_cmd::login(args).await,
        Command::Token(args) => login_cmd::token(args).await,
        Command::Logout => login_cmd::logout().await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            // 2: not signed in, or the session has ended (`tessera token`, for scripts).
            if e.downcast_ref::<login_cmd::SignedOut>().is_some() {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}
