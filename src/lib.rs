//! `codex-mcp-sidecar`: the Codex CLI behind an MCP server.

pub mod appserver;
pub mod codex_bin;
pub mod protocol;
pub mod scripted_model;
