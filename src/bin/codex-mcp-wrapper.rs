//! The same server under its older name, so existing MCP configurations keep
//! working.

fn main() -> std::process::ExitCode {
    codex_mcp_sidecar::cli::main()
}
