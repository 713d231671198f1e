//! Tessera's client side: access tokens that are always valid, for services and people.
//!
//! - [`TokenManager`] hands out an access token valid for at least the renewal margin and
//!   renews ahead of expiry, with a refresh token ([`TokenManager::refreshing`]) or client
//!   credentials ([`TokenManager::client_credentials`]). Renewal is single-flight, the
//!   rotated refresh token is saved before the new access token is used, transient failures
//!   are retried with jittered backoff, and a refused refresh token becomes
//!   [`Error::ReauthenticationRequired`].
//! - [`TokenStore`]: where the tokens live ([`MemoryStore`], [`FileStore`] with mode 0600 and
//!   atomic replacement, or your own).
//! - [`AuthorizedClient`]: reqwest with the bearer token attached, renewing and retrying once
//!   on `401 invalid_token`.
//! - [`LoopbackLogin`]: sign-in for CLIs (PKCE S256, loopback redirect, RFC 8252).
//!
//! A service calling another:
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use tessera_client::{AuthorizedClient, ClientCredentials, TokenManager};
//!
//! let tokens = TokenManager::client_credentials(
//!     "https://auth.example.com/api/v2/auth/token",
//!     ClientCredentials::confidential("orders", std::env::var("ORDERS_SECRET")?),
//! )
//! .scope("billing:read")
//! .build();
//! let api = AuthorizedClient::new(reqwest::Client::new(), tokens);
//! let invoices = api.send(api.get("https://billing.example.com/invoices")).await?;
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

mod error;
mod http;
mod login;
mod manager;
mod oauth;
mod store;
mod tokens;

pub use error::Error;
pub use http::{AuthorizedClient, HttpError};
pub use login::LoopbackLogin;
pub use manager::{RetryPolicy, TokenManager, TokenManagerBuilder};
pub use oauth::{ClientCredentials, Endpoints};
pub use store::{FileStore, MemoryStore, StoreError, TokenStore};
pub use tokens::{RenewBefore, TokenSet};

/// The HTTP client this crate speaks through, re-exported so versions match.
pub use reqwest;
