//! What can go wrong talking to the app-server: one enum for the whole
//! connection, from the dial to a request's answer.

use std::time::Duration;

use tokio_tungstenite::tungstenite;

use super::CONNECT_TIMEOUT;
use crate::protocol::jsonrpc::RpcError;

/// Everything that can go wrong talking to the app-server.
#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    #[error("{0} is not a ws://HOST:PORT, wss://HOST:PORT or unix://PATH app-server URL")]
    InvalidUrl(String),
    #[error("could not reach the app-server at {url}: {source}")]
    Connect {
        url: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the WebSocket upgrade to {url} failed: {source}")]
    Handshake {
        url: String,
        #[source]
        source: Box<tungstenite::Error>,
    },
    #[error(
        "the app-server at {url} refused our capability token (HTTP 401); the token file does not match the running server"
    )]
    Unauthorized { url: String },
    /// A remote server's 401: what to check is a setting, named in `hint`.
    #[error("the app-server at {url} refused our token (HTTP 401): {hint}")]
    RemoteUnauthorized { url: String, hint: String },
    /// The TLS handshake of `wss://` failed (most often a certificate signed
    /// by a CA we were not told to trust).
    #[error(
        "the TLS handshake with {url} failed ({reason}); if its certificate comes from a private CA, name that CA's PEM file in {ca_setting}"
    )]
    Tls {
        url: String,
        reason: String,
        ca_setting: String,
    },
    #[error(
        "{url} answered the WebSocket upgrade with HTTP {status}; it is not a codex app-server that accepts us"
    )]
    Rejected { url: String, status: u16 },
    #[error("connecting to {url} took longer than {CONNECT_TIMEOUT:?}")]
    ConnectTimedOut { url: String },
    #[error("the app-server connection is closed: {reason}")]
    Disconnected { reason: String },
    #[error("`{method}` got no answer within {after:?}")]
    TimedOut { method: String, after: Duration },
    #[error("`{method}` failed: {error}")]
    Rpc { method: String, error: RpcError },
    #[error("`{method}` answered with an unexpected result: {source}")]
    UnexpectedResult {
        method: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("could not encode the params of `{method}`: {source}")]
    Encode {
        method: String,
        #[source]
        source: serde_json::Error,
    },
}
