fn main() -> std::process::ExitCode {
    codex_mcp_sidecar::cli::main()
}
