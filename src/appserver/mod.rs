//! The app-server as a process we start and as a connection we hold.

pub mod account;
pub mod backend;
pub mod connection;
pub mod keeper;
pub mod keeper_identity;
pub mod process;
pub mod remote_auth;
pub mod shared;
pub mod shared_files;
pub mod token;
pub mod version;

pub use connection::{AppServerConnection, ConnectOptions, ConnectionError, ServerEvent};
pub use process::{AppServerError, AppServerProcess, SpawnOptions};
pub use token::CapabilityToken;
