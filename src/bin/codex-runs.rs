//! `codex-runs`: the terminal picker of running and finished runs, and
//! `--json` for scripts. The logic is `codex_mcp_sidecar::picker::cli`.

use std::process::ExitCode;

use clap::Parser;
use codex_mcp_sidecar::picker::cli::{self, RunsArgs};

fn main() -> ExitCode {
    let args = RunsArgs::parse();
    match cli::run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("codex-runs: {error}");
            ExitCode::FAILURE
        }
    }
}
