//! The offline demo: the real Codex CLI, driven through `codex app-server`,
//! answering from the built-in scripted model. No credentials, no network
//! beyond loopback, nothing left behind.

use std::io::Write;
use std::time::Duration;

use crate::appserver::{
    AppServerConnection, AppServerError, AppServerProcess, ConnectOptions, ConnectionError,
    ServerEvent, SpawnOptions,
};
use crate::codex_bin::{CodexBinError, CodexBinary};
use crate::protocol::{
    ApprovalDecision, ApprovalPolicy, NotificationKind, SandboxMode, ServerRequestKind, ThreadItem,
    ThreadStartParams, TokenUsage, TurnStartParams,
};
use crate::scripted_model::{Script, ScriptedModel, ScriptedModelError};

/// A scripted turn takes well under a second; a minute means it is stuck.
const TURN_TIMEOUT: Duration = Duration::from_secs(60);

/// Pause between streamed words, so a person sees them arrive one by one.
const DEMO_DELTA_DELAY_MS: u64 = 60;

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error(transparent)]
    Codex(#[from] CodexBinError),
    #[error("the scripted model server failed: {0}")]
    Model(#[from] ScriptedModelError),
    #[error("could not prepare a throwaway CODEX_HOME: {0}")]
    Home(#[from] std::io::Error),
    #[error(transparent)]
    AppServer(#[from] AppServerError),
    #[error(transparent)]
    Connection(#[from] ConnectionError),
    #[error("no turn/completed within {TURN_TIMEOUT:?}")]
    TurnTimedOut,
    #[error("the app-server connection ended during the turn: {0}")]
    Disconnected(String),
}

/// Runs the demo, printing as it goes.
pub async fn run() -> Result<(), DemoError> {
    let codex = CodexBinary::discover().await?;
    say(format_args!(
        "codex-cli {} ({}, found via {})",
        codex.version,
        codex.path.display(),
        codex.source
    ));

    let model = ScriptedModel::start().await?;
    let scratch = tempfile::tempdir()?;
    let codex_home = scratch.path().join("codex-home");
    let work = scratch.path().join("project");
    std::fs::create_dir_all(&work)?;
    model.write_codex_home(&codex_home)?;
    say(format_args!("scripted model at {}", model.base_url()));

    let mut options = SpawnOptions::loopback(codex.path.clone(), scratch.path().join("token"));
    options.codex_home = Some(codex_home);
    let server = AppServerProcess::spawn(options).await?;
    say(format_args!(
        "app-server listening on {} (process group {})",
        server.url(),
        server.pgid()
    ));

    let outcome = converse(&server, &work).await;
    let pgid = server.pgid();
    server.shutdown().await?;
    model.shutdown().await;
    outcome?;
    say(format_args!(
        "app-server stopped; processes left in group {pgid}: {}",
        crate::appserver::process::live_group_members(pgid).len()
    ));
    Ok(())
}

async fn converse(server: &AppServerProcess, work: &std::path::Path) -> Result<(), DemoError> {
    let (connection, mut events) = AppServerConnection::connect(ConnectOptions::new(
        server.url(),
        Some(server.token().clone()),
    ))
    .await?;
    say(format_args!(
        "connected: {}",
        connection
            .server_info()
            .user_agent
            .as_deref()
            .unwrap_or("?")
    ));
    let thread = connection
        .thread_start(&ThreadStartParams {
            cwd: Some(work.to_string_lossy().into_owned()),
            approval_policy: Some(ApprovalPolicy::Untrusted),
            sandbox: Some(SandboxMode::WorkspaceWrite),
            ..ThreadStartParams::default()
        })
        .await?
        .thread;
    say(format_args!("thread {}", thread.id));

    let words = [
        "Codex ",
        "is ",
        "answering ",
        "from ",
        "a ",
        "scripted ",
        "model.",
    ];
    let greeting = Script::stream(&words, DEMO_DELTA_DELAY_MS);
    say(format_args!("\n> turn 1: a streamed answer"));
    one_turn(
        &connection,
        &mut events,
        &thread.id,
        &format!("Say hello. {}", greeting.marker()),
    )
    .await?;

    let exec = Script::exec("echo hello > hello.txt", "I wrote hello.txt.");
    say(format_args!("\n> turn 2: a command that needs approval"));
    one_turn(
        &connection,
        &mut events,
        &thread.id,
        &format!("Write a file. {}", exec.marker()),
    )
    .await?;
    let written = std::fs::read_to_string(work.join("hello.txt")).unwrap_or_default();
    say(format_args!("hello.txt on disk: {:?}", written.trim_end()));
    Ok(())
}

/// Starts a turn and follows it to `turn/completed`, printing deltas as they
/// stream and accepting command approvals.
async fn one_turn(
    connection: &AppServerConnection,
    events: &mut tokio::sync::mpsc::Receiver<ServerEvent>,
    thread_id: &str,
    prompt: &str,
) -> Result<(), DemoError> {
    let turn = connection
        .turn_start(&TurnStartParams::text(thread_id, prompt))
        .await?
        .turn;
    let mut usage = TokenUsage::default();
    let mut streamed = false;
    let follow = async {
        while let Some(event) = events.recv().await {
            match event {
                ServerEvent::Notification(note) => match note.kind {
                    NotificationKind::AgentMessageDelta(delta) => {
                        print!("{}", delta.delta);
                        let _ = std::io::stdout().flush();
                        streamed = true;
                    }
                    NotificationKind::ItemCompleted(done) => {
                        if let ThreadItem::CommandExecution {
                            command, exit_code, ..
                        } = done.item
                        {
                            say(format_args!("ran `{command}` (exit {exit_code:?})"));
                        }
                    }
                    NotificationKind::TokenUsageUpdated(update) => usage = update.token_usage,
                    NotificationKind::TurnCompleted(done) if done.turn.id == turn.id => {
                        if streamed {
                            say(format_args!(""));
                        }
                        say(format_args!(
                            "turn {:?}: {:?}; tokens so far: {} total, {} output",
                            done.turn.status,
                            done.turn.final_message().unwrap_or_default(),
                            usage.total.total_tokens,
                            usage.total.output_tokens
                        ));
                        return Ok(());
                    }
                    _ => {}
                },
                ServerEvent::Request(request) => {
                    let decision = match &request.kind {
                        ServerRequestKind::CommandApproval(params) => {
                            say(format_args!(
                                "approval asked for `{}`: accepting",
                                params.command.as_deref().unwrap_or("?")
                            ));
                            ApprovalDecision::Accept
                        }
                        _ => ApprovalDecision::Decline,
                    };
                    connection
                        .respond(&request.id, &decision.to_result())
                        .await?;
                }
                ServerEvent::Disconnected { reason } => {
                    return Err(DemoError::Disconnected(reason));
                }
            }
        }
        Err(DemoError::Disconnected("event stream ended".into()))
    };
    tokio::time::timeout(TURN_TIMEOUT, follow)
        .await
        .map_err(|_| DemoError::TurnTimedOut)?
}

/// The demo talks to a person on stdout.
fn say(line: std::fmt::Arguments<'_>) {
    println!("{line}");
}
