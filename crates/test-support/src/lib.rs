//! The scaffolding of the tests, benches and examples, kept out of the
//! shipped crate so that its binaries carry no web server they never run.
//!
//! # Layout
//!
//! - [`scripted_model`]: an OpenAI Responses-API server over SSE whose
//!   answers are scripted by a marker in the prompt, so that Codex runs
//!   offline in the examples (`make demo`), the tests and the benchmarks.
//! - [`scripted_anthropic`]: the same for Claude Code: an Anthropic
//!   Messages API on loopback that answers by rules a test sets, so that
//!   `claude -p` runs offline and calls the tools the test names.
//! - [`codex`]: the one lookup of the Codex under test (`CODEX_BIN`, else
//!   the project's pinned install) and its version.
//! - [`world`]: one test's throwaway world for the built sidecar (scripted
//!   model, `CODEX_HOME`, pointer dir, project, free port), and the guard
//!   that kills whatever the test started on its URL.
//! - [`app_server`]: the world around an app-server the caller owns, for
//!   the connection tests and the benchmarks.
//! - [`netns`]: binding a socket inside a network namespace, the second
//!   host of the cross-host tests.
//! - [`tcp_proxy`]: a TCP proxy between two hosts whose restart resets
//!   every connection, and that counts the connections it accepted.
//! - [`tls_proxy`]: a TLS terminator with a throwaway CA in front of a
//!   TCP server: `wss://` to an app-server, which has no TLS of its own.

pub mod app_server;
pub mod codex;
// Network namespaces are Linux's; the cross-host tests run only there.
#[cfg(target_os = "linux")]
pub mod netns;
pub mod scripted_anthropic;
pub mod scripted_model;
pub mod tcp_proxy;
pub mod tls_proxy;
pub mod world;

pub use codex::{codex_bin, codex_binary, codex_version, pinned_codex_bin, workspace_root};
