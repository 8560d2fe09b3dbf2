//! `codex-mcp-sidecar` hands work from an MCP client to the real Codex CLI
//! through `codex app-server`, keeps an audit of every run, and lets a person
//! attach the Codex terminal UI to the same live session.
//!
//! # Layout
//!
//! - [`codex_bin`]: finding the Codex CLI (`CODEX_BIN`, `PATH`, the project's
//!   pinned install for a binary run from inside its checkout) and placing
//!   its version against the verified range (`SUPPORTED_VERSIONS`).
//! - [`config`] and [`shell_path`]: the settings, read from the environment
//!   once; every path setting expanded as a shell would (`~`, `$HOME`) and
//!   refused while still relative.
//! - [`codex_config`]: what the sidecar adds to every thread's Codex config
//!   (secret environment variables kept from commands).
//! - [`protocol`]: the app-server's wire types, with no IO. Unknown
//!   notifications, requests and item kinds are kept as raw JSON.
//! - [`appserver`]: the app-server as a process we start (process group,
//!   capability token, stderr, `/readyz`) and the WebSocket connection to it
//!   (one worker owns the socket; requests are matched to answers by id),
//!   and which Codex a running server runs (`appserver::version`).
//! - [`backpressure`]: the credits that bound the events between the
//!   app-server's socket and the audit on disk, so a flood faster than the
//!   disk slows the socket instead of growing memory.
//! - [`picker`]: `codex-runs`' screen as pure state, key handling and
//!   drawing (two lists, running and finished, the selected run's detail, a
//!   filter), with no terminal IO, so every screen is a snapshot test.
//! - [`process_table`]: the one place that asks the OS about other processes
//!   (alive, start time, group members, our executable): `/proc` on Linux,
//!   the kernel through `sysinfo` on macOS, `kill(pid, 0)` as the fallback
//!   (`CODEX_MCP_WRAPPER_PROCESS_TABLE=none`, or no `/proc` mounted).
//! - [`replies`] and [`wait_slice`]: what a wait answers before its run
//!   ends, and how long one wait slice lasts; one rule for the MCP tools and
//!   the command line alike.
//! - [`runs_cli`]: `codex-runs`' flags and its `--json` listing, read
//!   through `store::catalog` like `codex_runs` and the picker.

pub mod actors;
pub mod appserver;
pub mod backpressure;
pub mod cli;
pub mod cli_runs;
pub mod codex_bin;
pub mod codex_config;
pub mod config;
pub mod health;
pub mod mcp;
pub mod picker;
pub mod process_table;
pub mod prompts;
pub mod protocol;
pub mod replies;
pub mod runs_cli;
pub mod shell_path;
pub mod store;
pub mod wait_slice;
