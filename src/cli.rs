//! The command line of `codex-mcp-sidecar` and its alias `codex-mcp-wrapper`.
//! Thin: parse, start logging, call the library.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::codex_bin::CodexBinary;

#[derive(Debug, Parser)]
#[command(
    version,
    about = "Hands work from an MCP client to the Codex CLI through `codex app-server`."
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run Codex against the built-in scripted model (no credentials, no
    /// network): start an app-server, stream a turn, answer an approval.
    Demo,
    /// Find the Codex CLI (CODEX_BIN, PATH, the project's pinned install) and
    /// check its version.
    Check,
}

/// Entry point shared by both binary names.
pub fn main() -> ExitCode {
    init_logging();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: could not start the tokio runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(async {
        match cli.command {
            Some(Command::Demo) => crate::demo::run().await.map_err(|error| error.to_string()),
            Some(Command::Check) => check().await,
            None => Err(
                "the MCP server is not built yet; available now: `demo`, `check` (see --help)"
                    .to_string(),
            ),
        }
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn check() -> Result<(), String> {
    let codex = CodexBinary::discover()
        .await
        .map_err(|error| error.to_string())?;
    println!(
        "codex-cli {} at {} (found via {})",
        codex.version,
        codex.path.display(),
        codex.source
    );
    Ok(())
}

/// Logs go to stderr, filtered by `RUST_LOG` (default: warnings): stdout is
/// the MCP protocol once the server runs.
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
