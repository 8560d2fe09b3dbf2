//! `codex-runs`: the terminal picker of running and finished runs.

use std::process::ExitCode;

use clap::Parser;

#[derive(Debug, Parser)]
#[command(
    version,
    about = "Pick a Codex run and attach the Codex terminal UI to it."
)]
struct Cli {}

fn main() -> ExitCode {
    let _cli = Cli::parse();
    eprintln!(
        "codex-runs: the picker is not built yet; this release only has the app-server layer"
    );
    ExitCode::FAILURE
}
