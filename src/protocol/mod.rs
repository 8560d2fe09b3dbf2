//! The app-server's wire types, with no IO: JSON-RPC framing, the typed
//! params and results of the methods we call, and the notifications and
//! requests the server sends us. Anything we do not model is kept as raw JSON.

pub mod account;
pub mod events;
pub mod ids;
pub mod jsonrpc;
pub mod limits;
#[cfg(test)]
pub(crate) mod properties;
pub mod types;

pub use events::{
    ApprovalDecision, ApprovalParams, FileChangeStarted, NotificationKind, ServerNotification,
    ServerRequest, ServerRequestKind,
};
pub use ids::ThreadId;
pub use jsonrpc::{Incoming, RequestId, RpcError};
pub use types::*;
