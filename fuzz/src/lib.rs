//! What the fuzz targets share: one tokio runtime per process, a real Tessera server (the
//! axum router of `tessera-server` over SQLite in a temporary directory) driven in-process,
//! fixed test keys, and the checks every answer of an OAuth JSON endpoint must pass.
//!
//! Each target builds its state once (the first input pays for it) and then drives it
//! input by input: state carries over between inputs, as it would in a running server.

pub mod checks;
pub mod guard;
pub mod keys;
pub mod server;

use std::future::Future;
use std::sync::OnceLock;

/// The process's runtime: current-thread, so that an input runs to completion before the
/// next one starts and nothing runs behind libFuzzer's back.
pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime")
    })
}

/// Runs `future` on [`runtime`].
pub fn block_on<F: Future>(future: F) -> F::Output {
    runtime().block_on(future)
}

/// Splits `data` at the first `separator`: (before, after). Without one, all of `data` is
/// the first part.
pub fn split_once(data: &[u8], separator: u8) -> (&[u8], &[u8]) {
    match data.iter().position(|b| *b == separator) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[]),
    }
}
