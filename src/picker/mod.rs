//! `codex-runs`: its command line and `--json` listing ([`cli`]), and the
//! picker. The pure part is the state of the screen, what each
//! key does to it, and how it is drawn: no terminal, no files, no clock. The
//! event loop ([`runtime`]) reads the catalog, merges keys, ticks and file
//! changes, hands them to [`App`], draws it, and carries out the [`Action`]
//! it returns (attach, refresh, quit).
//!
//! # Layout of the screen
//!
//! ```text
//! codex-runs · <project or all projects> · 3 running, 1 waiting · 12 finished
//! ── Running 3 ─────────────────────  ── Completed 12 ─────────────────────
//!  Title          Status   Time Tokens  Title          Status   Time Tokens
//!  fix the parser waiting  3m 12s 12.3k  add tests      completed 41s  950
//! ── Run 20261121-052301-482-7f3a9c ─────────────────────────────────────
//!  <title> / status · age · tokens / approve? <kind: summary> / progress /
//!  error / said <last agent message, wrapped> / thread / cwd
//! <message from the event loop> · <problems reading the catalog>
//! Enter attach  ↑↓ move  Tab column  / filter  r refresh  q quit
//! ```
//!
//! The two lists sit side by side from [`view::SIDE_BY_SIDE_MIN_WIDTH`]
//! columns on, and one above the other below that.
//!
//! - [`cli`]: `codex-runs`' flags, which runs they name, and `--json`.
//! - [`scope`]: which runs a listing shows, read through `store::catalog`.
//! - [`app`]: [`App`], its key handling and [`Action`].
//! - [`runtime`]: the event loop around it (terminal, catalog reads, file
//!   watching, attach); [`attach`]: which Codex command opens a run.
//! - [`view`]: `impl Widget for &App`.
//! - `format`: cell widths, truncation, wrapping, compact numbers.

pub mod app;
pub mod attach;
pub mod cli;
mod format;
pub mod runtime;
pub mod scope;
pub mod view;

pub use app::{Action, App, Column, status_label};

#[cfg(test)]
mod fixtures;
#[cfg(test)]
mod tests;
