//! `codex-mcp-sidecar` hands work from an MCP client to the real Codex CLI
//! through `codex app-server`, keeps an audit of every run, and lets a person
//! attach the Codex terminal UI to the same live session.
//!
//! # Layout
//!
//! Every module, from the edges in:
//!
//! - [`cli`]: the command line of `codex-mcp-sidecar` (and its alias
//!   `codex-mcp-wrapper`): the MCP server by default, `check`, `run`,
//!   `wait`, `resume`, `app-server ensure|stop`, and the hidden keeper;
//!   [`cli::runs`] is `run`, `resume` and `wait`, a thin client of the
//!   engine that prints one JSON object a line.
//! - [`mcp`]: the MCP server (rmcp, stdio): one table of tools, the tool
//!   methods, arguments turned into engine requests, and the call gate with
//!   MCP tasks. No business logic: every tool is one engine call.
//! - [`picker`]: `codex-runs`: its flags and `--json` listing
//!   ([`picker::cli`], read through `store::catalog` like `codex_runs`), and
//!   its screen as pure state, key handling and drawing (two lists, running
//!   and finished, the selected run's detail, a filter), with no terminal
//!   IO, so every screen is a snapshot test; its event loop and the attach
//!   of the Codex terminal UI.
//! - [`replies`] and [`wait_slice`]: what a wait answers before its run
//!   ends, and how long one wait slice lasts; one rule for the MCP tools and
//!   the command line alike.
//! - [`prompts`]: what Codex is asked in the plan and review conversations.
//! - [`health`]: `codex_wrapper_check` and `check`: the binary and its
//!   version, the Codex home and login, the audit dirs, the app-server.
//! - [`actors`]: the engine: the `Supervisor` (the app-server link and the
//!   run registry), a `RunActor` per turn (what it has seen is
//!   [`actors::run_state`], in memory), the `WaitBroker`, the
//!   `Conversations`, the `Watchdog`, and a follower per run waited for
//!   here that another sidecar owns; `actors.md` draws the tree.
//!   [`actors::person`] is how a run asks the person at the MCP client
//!   about a request (the MCP layer implements it with elicitation).
//! - [`store`]: every file of the audit trail (where each lives,
//!   [`store::paths`]) and its format ([`store::disk_records`]; appends that
//!   never tear, atomic replaces), the indexes and the run catalog.
//! - [`appserver`]: the app-server behind one `Backend` (a private process,
//!   the shared server and its keeper over the files of
//!   [`appserver::shared_files`], `unix://`, a remote server with the bearer
//!   of [`appserver::remote_auth`]), the WebSocket connection
//!   to it (one worker owns the socket; requests are matched to answers by
//!   id), the login check and which Codex a running server runs.
//! - [`backpressure`]: the credits that bound the events between the
//!   app-server's socket and the audit on disk, so a flood faster than the
//!   disk slows the socket instead of growing memory.
//! - [`protocol`]: the app-server's wire types, with no IO. Unknown
//!   notifications, requests and item kinds are kept as raw JSON.
//! - [`codex_bin`]: finding the Codex CLI (`CODEX_BIN`, `PATH`, the project's
//!   pinned install for a binary run from inside its checkout) and placing
//!   its version against the verified range (`SUPPORTED_VERSIONS`);
//!   [`codex_native`]: the native binary behind the npm launcher, run
//!   directly; [`version_cache`]: the versions of binaries already asked.
//! - [`codex_config`]: what the sidecar adds to every thread's Codex config
//!   (secret environment variables kept from commands).
//! - [`config`] and [`shell_path`]: the settings, read from the environment
//!   once, and the named app-servers of `endpoints.toml` (each served by a
//!   `Supervisor` of its own, `actors::endpoints`); every path setting expanded as a shell would (`~`, `$HOME`) and
//!   refused while still relative.
//! - [`text`]: the one rule for cutting text in replies, errors and records.
//! - [`timestamp`]: the one way a point in time is written (RFC 3339, UTC,
//!   to the millisecond, fixed width) and read back.
//! - [`process_table`]: the one place that asks the OS about other processes
//!   (alive, start time, group members, our executable): `/proc` on Linux,
//!   the kernel through `sysinfo` on macOS, `kill(pid, 0)` as the fallback
//!   (`CODEX_MCP_WRAPPER_PROCESS_TABLE=none`, or no `/proc` mounted).
//!
//! Test support (the scripted OpenAI and Anthropic models, the sidecar
//! world) is not here: it is the workspace member `crates/test-support`.

pub mod actors;
pub mod appserver;
pub mod backpressure;
pub mod cli;
pub mod codex_bin;
pub mod codex_config;
pub mod codex_native;
pub mod config;
pub mod health;
pub mod mcp;
pub mod picker;
pub mod process_table;
pub mod prompts;
pub mod protocol;
pub mod replies;
pub mod shell_path;
pub mod store;
pub mod text;
pub mod timestamp;
pub mod version_cache;
pub mod wait_slice;
