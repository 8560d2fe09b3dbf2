//! The command line of `codex-mcp-sidecar` and its alias `codex-mcp-wrapper`.
//! Thin: parse, start logging, call the library.

pub mod runs;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::codex_bin::{CodexBinary, SUPPORTED_VERSIONS};

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
    /// Read the settings and find the Codex CLI (CODEX_BIN, PATH, the
    /// project's pinned install) and check its version.
    Check,
    /// Start a Codex run and wait for it, printing one JSON object a line:
    /// the run handle, progress at each slice's end, the result.
    Run(runs::RunArgs),
    /// A new turn on the thread of an earlier run.
    Resume(runs::ResumeArgs),
    /// Wait for a run (started here or by another sidecar) to end.
    Wait(runs::WaitArgs),
    /// The shared app-server that every sidecar of this user connects to.
    #[command(name = "app-server")]
    AppServer {
        #[command(subcommand)]
        action: AppServerAction,
    },
    /// Runs the detached keeper of the shared app-server (started by
    /// `ensure`, never by hand).
    #[command(name = crate::appserver::keeper::KEEPER_SUBCOMMAND, hide = true)]
    AppServerKeeper {
        #[arg(long)]
        url: String,
        #[arg(long)]
        pointer_dir: std::path::PathBuf,
        #[arg(long)]
        codex_bin: std::path::PathBuf,
        #[arg(long)]
        codex_home: Option<std::path::PathBuf>,
        #[arg(long)]
        idle_exit_ms: u64,
    },
}

#[derive(Debug, Subcommand)]
enum AppServerAction {
    /// Start the shared app-server unless it runs, and print its URL and the
    /// keeper's pid. It keeps running after this command exits, until idle.
    Ensure,
    /// Stop the shared app-server (SIGTERM to its keeper) and wait until it
    /// is gone.
    Stop,
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
            Some(Command::Check) => check().await,
            Some(Command::Run(args)) => runs::run(args).await,
            Some(Command::Resume(args)) => runs::resume(args).await,
            Some(Command::Wait(args)) => runs::wait(args).await,
            Some(Command::AppServer {
                action: AppServerAction::Ensure,
            }) => app_server_ensure().await,
            Some(Command::AppServer {
                action: AppServerAction::Stop,
            }) => app_server_stop().await,
            Some(Command::AppServerKeeper {
                url,
                pointer_dir,
                codex_bin,
                codex_home,
                idle_exit_ms,
            }) => crate::appserver::keeper::run_keeper(crate::appserver::keeper::KeeperArgs {
                url,
                pointer_dir,
                codex_bin,
                codex_home,
                idle_exit: std::time::Duration::from_millis(idle_exit_ms),
            })
            .await
            .map_err(|error| error.to_string()),
            None => crate::mcp::serve_stdio().await,
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
    // Every setting first, so that `check` says why the MCP server would not start.
    let config = crate::config::Config::from_env().map_err(|error| error.to_string())?;
    let codex = CodexBinary::discover()
        .await
        .map_err(|error| error.to_string())?;
    println!(
        "codex-cli {} at {} (found via {})",
        codex.version,
        codex.path.display(),
        codex.source
    );
    // The same sentence as `codex_wrapper_check`'s `codexSupport.summary`.
    println!("{}", SUPPORTED_VERSIONS.describe(&codex.version));
    let mut problems = Vec::new();
    let login = crate::appserver::account::check(&config, Some(&codex), &mut problems).await;
    println!("{}", login.describe());
    problems.pop().map_or(Ok(()), Err)
}

/// `app-server ensure`: the lease is released when this process exits, so
/// the server then lives on until it has been idle for the configured time.
async fn app_server_ensure() -> Result<(), String> {
    use crate::appserver::shared::{SharedOptions, ensure_shared};
    use crate::config::{AppServerMode, Config};

    let config = Config::from_env().map_err(|error| error.to_string())?;
    let AppServerMode::Shared { url } = config.app_server else {
        return Err("`app-server ensure` needs the shared mode (unset CODEX_MCP_WRAPPER_APP_SERVER_MODE, use a ws:// URL)".to_string());
    };
    let codex = CodexBinary::discover()
        .await
        .map_err(|error| error.to_string())?;
    let options = SharedOptions {
        url,
        pointer_dir: config.pointer_dir,
        codex_bin: codex.path,
        codex_home: Some(config.codex_home),
        idle_exit: config.shared_idle_exit,
        cli_version: Some(codex.version),
    };
    let lease = ensure_shared(&options)
        .await
        .map_err(|error| error.to_string())?;
    let keeper = lease.state.as_ref().map_or_else(
        || "unknown".to_string(),
        |state| state.keeper_pid.to_string(),
    );
    println!("shared app-server {} keeper pid {keeper}", lease.url);
    Ok(())
}

/// `app-server stop`.
async fn app_server_stop() -> Result<(), String> {
    use crate::appserver::keeper::{StopOutcome, stop_keeper};

    let config = crate::config::Config::from_env().map_err(|error| error.to_string())?;
    match stop_keeper(&config.pointer_dir)
        .await
        .map_err(|error| error.to_string())?
    {
        StopOutcome::NotRunning => println!(
            "no shared app-server runs from {}",
            config.pointer_dir.display()
        ),
        StopOutcome::Stale(keeper_pid) => {
            println!("the keeper (pid {keeper_pid}) was already gone; cleaned up after it")
        }
        StopOutcome::Stopped(keeper_pid) => {
            println!("stopped the shared app-server (keeper pid {keeper_pid})")
        }
    }
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
