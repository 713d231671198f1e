//! The address a request came from, as the login throttle and the audit trail see it.
//!
//! The socket peer, which the server records on every connection ([`crate::serve`] serves
//! with `into_make_service_with_connect_info`). `X-Forwarded-For` is believed only when that
//! peer is one of the trusted proxies of the policy (`TESSERA_TRUSTED_PROXIES`), as
//! [`tessera_core::client_ip`] explains; otherwise anyone could claim any address.

use std::net::{IpAddr, SocketAddr};

use axum::extract::ConnectInfo;
use axum::http::request::Parts;
use tessera_core::client_ip::{self, IpNetwork};

/// The client's address, or `None` when the router runs without connection info (a router
/// driven in-process, as some tests do).
pub fn of(parts: &Parts, trusted: &[IpNetwork]) -> Option<IpAddr> {
    let ConnectInfo(peer) = parts.extensions.get::<ConnectInfo<SocketAddr>>()?;
    // An unreadable header value is kept as an unreadable hop: it ends the walk there.
    let forwarded: Vec<&str> = parts
        .headers
        .get_all("x-forwarded-for")
        .iter()
        .map(|v| v.to_str().unwrap_or(""))
        .collect();
    Some(client_ip::client_ip(peer.ip(), &forwarded, trusted))
}
