//! `tessera`: the authorization server and its administration commands.
//!
//! `main` only parses arguments and dispatches; each subcommand lives in its own module.

mod cli;
mod client_cmd;
mod demo;
mod guard_cmd;
mod janitor;
mod keys;
mod login_cmd;
mod serve;
mod storage;
mod transfer;
mod user_cmd;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve::run(*args).await,
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
