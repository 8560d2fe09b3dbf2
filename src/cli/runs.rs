//! `run`, `resume` and `wait` on the command line: a thin client of the
//! engine that prints one JSON object a line, so scripts (and tests) can
//! drive runs without an MCP client.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use serde_json::Value;

use crate::actors::wait_many::{WaitMode, settled};
use crate::actors::{Engine, ResumeRequest, ResumeTarget, RunRequest, RunStarted, WaitOutcome};
use crate::codex_bin::CodexBinary;
use crate::config::{Config, Permissions};
use crate::store::RunId;

#[derive(Debug, Args)]
pub struct RunArgs {
    /// What Codex should do.
    pub prompt: String,
    /// The project directory (default: the current directory).
    #[arg(long)]
    pub cwd: Option<PathBuf>,
    /// A title for listings (default: the prompt's first line).
    #[arg(long)]
    pub name: Option<String>,
    /// yolo, workspace-write or read-only.
    #[arg(long)]
    pub permissions: Option<String>,
    #[command(flatten)]
    pub turn: TurnFlags,
}

#[derive(Debug, Args)]
pub struct ResumeArgs {
    /// The earlier run whose thread gets the new turn.
    pub run_id: String,
    pub prompt: String,
    /// The project directory (default: the earlier run's).
    #[arg(long)]
    pub cwd: Option<PathBuf>,
    /// yolo, workspace-write or read-only (default: what the thread has).
    #[arg(long)]
    pub permissions: Option<String>,
    #[command(flatten)]
    pub turn: TurnFlags,
}

/// How long the turn may run and how the command waits for it.
#[derive(Debug, Args)]
pub struct TurnFlags {
    /// Interrupt the run after this long.
    #[arg(long)]
    pub timeout_ms: Option<u64>,
    /// Print the run handle and exit instead of waiting.
    #[arg(long)]
    pub no_wait: bool,
    /// Each wait slice's length (0: block until the end).
    #[arg(long)]
    pub soft_timeout_ms: Option<u64>,
}

#[derive(Debug, Args)]
pub struct WaitArgs {
    /// One run id, or several: then each run's line is printed as it ends.
    #[arg(required = true, num_args = 1..)]
    pub run_ids: Vec<String>,
    /// Each slice's length (0: block until the end).
    #[arg(long)]
    pub soft_timeout_ms: Option<u64>,
    /// Return after one slice instead of waiting to the end.
    #[arg(long)]
    pub once: bool,
}

pub async fn run(args: RunArgs) -> Result<(), String> {
    let engine = engine().await?;
    let cwd = match args.cwd {
        Some(cwd) => cwd,
        None => std::env::current_dir().map_err(|error| error.to_string())?,
    };
    let mut request = RunRequest::new(args.prompt, cwd);
    request.run_name = args.name;
    request.turn.permissions = parse_permissions(args.permissions.as_deref())?;
    request.turn.timeout = args.turn.timeout_ms.map(Duration::from_millis);
    let outcome = match engine.run(request).await {
        Ok(started) => follow(&engine, &started, &args.turn).await,
        Err(error) => Err(error.to_string()),
    };
    engine.shutdown().await;
    outcome
}

pub async fn resume(args: ResumeArgs) -> Result<(), String> {
    let engine = engine().await?;
    let run_id = RunId::parse(&args.run_id).map_err(|error| error.to_string())?;
    let mut request = ResumeRequest::new(ResumeTarget::Run(run_id), args.prompt);
    request.cwd = args.cwd;
    request.turn.permissions = parse_permissions(args.permissions.as_deref())?;
    request.turn.timeout = args.turn.timeout_ms.map(Duration::from_millis);
    let outcome = match engine.resume(request).await {
        Ok(started) => follow(&engine, &started, &args.turn).await,
        Err(error) => Err(error.to_string()),
    };
    engine.shutdown().await;
    outcome
}

fn parse_permissions(value: Option<&str>) -> Result<Option<Permissions>, String> {
    value
        .map(|value| {
            Permissions::parse(value).ok_or_else(|| {
                format!("--permissions {value:?} is not yolo, workspace-write or read-only")
            })
        })
        .transpose()
}

pub async fn wait(args: WaitArgs) -> Result<(), String> {
    let engine = engine().await?;
    let outcome = match args.run_ids.as_slice() {
        [one] => match RunId::parse(one) {
            Ok(run_id) => wait_to_end(&engine, &run_id, args.soft_timeout_ms, args.once).await,
            Err(error) => Err(error.to_string()),
        },
        many => wait_on_many(&engine, many, args.soft_timeout_ms, args.once).await,
    };
    engine.shutdown().await;
    outcome
}

/// Prints the run handle, then (unless told not to) waits to the end.
async fn follow(engine: &Engine, started: &RunStarted, flags: &TurnFlags) -> Result<(), String> {
    emit(&serde_json::to_value(started).unwrap_or(Value::Null));
    if flags.no_wait {
        return Ok(());
    }
    wait_to_end(engine, &started.run_id, flags.soft_timeout_ms, false).await
}

async fn engine() -> Result<Engine, String> {
    let config = Config::from_env().map_err(|error| error.to_string())?;
    let codex = CodexBinary::discover_remembered(&config.pointer_dir)
        .await
        .map_err(|error| error.to_string())?;
    Engine::start(config, codex)
        .await
        .map_err(|error| error.to_string())
}

async fn wait_to_end(
    engine: &Engine,
    run_id: &RunId,
    soft_timeout_ms: Option<u64>,
    once: bool,
) -> Result<(), String> {
    loop {
        let soft =
            crate::wait_slice::wait_slice(soft_timeout_ms, None, engine.config().wait_soft_timeout);
        let outcome = engine
            .wait(run_id, soft)
            .await
            .map_err(|error| error.to_string())?;
        // The shapes the MCP tools answer with, but the whole result:
        // a terminal has no reply budget.
        let value = match crate::replies::unfinished(&outcome, soft.unwrap_or_default()) {
            Ok(value) => value,
            Err(result) => serde_json::to_value(result).unwrap_or(Value::Null),
        };
        emit(&value);
        if once || !matches!(outcome, WaitOutcome::StillRunning { .. }) {
            return Ok(());
        }
    }
}

/// Waits on several runs at once (`any`, slice after slice): prints each
/// run's line as it ends (or waits for an answer, or is unknown) and drops
/// it, and every run's progress when a slice ends first.
async fn wait_on_many(
    engine: &Engine,
    run_ids: &[String],
    soft_timeout_ms: Option<u64>,
    once: bool,
) -> Result<(), String> {
    let mut left = run_ids.to_vec();
    while !left.is_empty() {
        let soft =
            crate::wait_slice::wait_slice(soft_timeout_ms, None, engine.config().wait_soft_timeout);
        let outcome = engine
            .wait_many(&left, WaitMode::Any, soft)
            .await
            .map_err(|error| error.to_string())?;
        let over = outcome.first_settled().is_some();
        for (id, standing) in &outcome.runs {
            let value = match standing {
                Ok(outcome) => {
                    match crate::replies::unfinished(outcome, soft.unwrap_or_default()) {
                        Ok(_) if over && !settled(standing) => continue,
                        Ok(value) => value,
                        Err(result) => serde_json::to_value(result).unwrap_or(Value::Null),
                    }
                }
                Err(error) => serde_json::json!({"runId": id, "status": "unknown", "error": error}),
            };
            emit(&value);
            if settled(standing) || standing.is_err() {
                left.retain(|left_id| left_id != id);
            }
        }
        if once {
            return Ok(());
        }
    }
    Ok(())
}

fn emit(value: &Value) {
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{value}");
    let _ = stdout.flush();
}
