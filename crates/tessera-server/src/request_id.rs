//! Request ids for the error pages: a short random value shown to the person who hit the
//! error and logged with it, so an operator can find the log line from a screenshot.
//!
//! Only requests that end on an error page need one, so it is minted on demand. The
//! middleware [`scope`] makes the server's random source reachable from the page builders
//! (which have no state of their own) for the duration of each request.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use tessera_core::random::SecureRandom;

use crate::AppState;

/// Random bytes in a request id: 48 bits, 12 hex digits — unique enough to find one log
/// line, short enough to read out over the phone.
const ID_BYTES: usize = 6;

tokio::task_local! {
    static RANDOM: Arc<dyn SecureRandom>;
}

/// Middleware: runs the rest of the request with the server's random source in reach of
/// [`mint`].
pub async fn scope(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let random = state.server.ports().random.clone();
    RANDOM.scope(random, next.run(request)).await
}

/// A new request id: 12 lowercase hex digits. Outside [`scope`] (a page built outside a
/// request) the id is `unknown`.
pub fn mint() -> String {
    RANDOM
        .try_with(|random| {
            let mut bytes = [0u8; ID_BYTES];
            random.fill(&mut bytes);
            bytes.iter().map(|b| format!("{b:02x}")).collect()
        })
        .unwrap_or_else(|_| "unknown".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Counting(std::sync::atomic::AtomicU8);

    impl SecureRandom for Counting {
        fn fill(&self, dest: &mut [u8]) {
            let n = self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            dest.fill(n);
        }
    }

    #[tokio::test]
    async fn ids_come_from_the_scoped_random_source() {
        let random: Arc<dyn SecureRandom> = Arc::new(Counting(0.into()));
        let (a, b) = RANDOM.scope(random, async { (mint(), mint()) }).await;
        assert_eq!(a, "000000000000");
        assert_eq!(b, "010101010101");
        assert_eq!(mint(), "unknown");
    }
}
