//! B8: this sidecar beside codex-persistent-mcp (issue 15 item 5), in the
//! same run, on the same scripted model and Codex: a new server's cold
//! start to `tools/list`, its first `codex_chat` (a new session), and a
//! turn on an open session. codex-persistent-mcp runs `codex exec` (or
//! `codex exec resume`) per message; this sidecar keeps one app-server.
//!
//! codex-persistent-mcp is not in the npm registry this project installs
//! from (its name answers 404), so it cannot be pinned in `make setup`:
//! the section runs when `BENCH_PERSISTENT_MCP` names its entry script (a
//! local build of its source), and otherwise says why it did not.

use std::path::Path;
use std::time::{Duration, Instant};

use rmcp::ServiceExt;
use rmcp::service::{RoleClient, RunningService};
use rmcp::transport::TokioChildProcess;
use serde_json::{Value, json};

use crate::report::Section;
use crate::support::{
    BenchResult, CALL_TIMEOUT, Samples, World, call, millis, reap, sidecar_command, str_field,
    structured,
};
use codex_mcp_sidecar_test_support::codex_bin;
use codex_mcp_sidecar_test_support::scripted_model::Script;

/// Names the other server's entry script (`bin/codex-persistent-mcp.js`).
const PERSISTENT_ENV: &str = "BENCH_PERSISTENT_MCP";
/// The version the issue compares against; the section names what ran.
const PERSISTENT_VERSION: &str = "0.1.13";
/// New servers timed each way, interleaved: each is a process, and the
/// other one's first call runs `codex exec` (a few hundred ms).
const SERVERS: usize = 8;
/// Turns on one open session each way, interleaved.
const TURNS: usize = 12;
/// Rounds first, not counted: binaries and Node's modules into the page
/// cache, for both.
const WARMUP: usize = 1;

pub async fn run() -> BenchResult<Section> {
    let mut section = Section::new(
        "B8",
        "side by side with codex-persistent-mcp",
        format!(
            "This sidecar (shared app-server already up) and codex-persistent-mcp \
             {PERSISTENT_VERSION} (Node, `codex exec` per message), each a fresh \
             process per sample, on one scripted model and the pinned Codex, \
             alternating A B B A: spawn → `initialize` → `tools/list`; then a first \
             `codex_chat` (new session), timed from `tools/call` to its reply; then \
             {TURNS} `codex_chat` turns on one open session each. Medians \
             (min–max) of {SERVERS} servers each way."
        ),
    );
    let Some(script) = std::env::var_os(PERSISTENT_ENV) else {
        section.figure(
            "not run",
            format!(
                "set {PERSISTENT_ENV} to codex-persistent-mcp's bin/codex-persistent-mcp.js \
                 (a local build of its source): the npm registry answers 404 for \
                 codex-persistent-mcp, so `make setup` cannot install it"
            ),
        );
        return Ok(section);
    };
    World::around(async |world| measure(world, Path::new(&script), section).await).await
}

/// Which server a sample is of.
#[derive(Clone, Copy)]
enum Server {
    Sidecar,
    Persistent,
}

/// One server's samples.
#[derive(Default)]
struct Timings {
    listed: Vec<f64>,
    first_call: Vec<f64>,
    turn: Vec<f64>,
}

async fn measure(world: &World, script: &Path, mut section: Section) -> BenchResult<Section> {
    let prompt = Script::text("ok").marker();
    let (mut ours, mut theirs) = (Timings::default(), Timings::default());
    for round in 0..WARMUP + SERVERS {
        let order = if round % 2 == 0 {
            [Server::Sidecar, Server::Persistent]
        } else {
            [Server::Persistent, Server::Sidecar]
        };
        for server in order {
            let (listed, first_call) = fresh_server(world, script, server, &prompt).await?;
            if round >= WARMUP {
                let timings = match server {
                    Server::Sidecar => &mut ours,
                    Server::Persistent => &mut theirs,
                };
                timings.listed.push(millis(listed));
                timings.first_call.push(millis(first_call));
            }
        }
    }
    let ours_open = spawn(world, script, Server::Sidecar).await?;
    let theirs_open = spawn(world, script, Server::Persistent).await?;
    let ours_session = new_session(&ours_open, world.project.path(), &prompt)
        .await?
        .0;
    let theirs_session = new_session(&theirs_open, world.project.path(), &prompt)
        .await?
        .0;
    for turn in 0..WARMUP + TURNS {
        let sidecar_first = turn % 2 == 0;
        let (a, b) = if sidecar_first {
            let a = chat_turn(&ours_open, &ours_session, &prompt).await?;
            (a, chat_turn(&theirs_open, &theirs_session, &prompt).await?)
        } else {
            let b = chat_turn(&theirs_open, &theirs_session, &prompt).await?;
            (chat_turn(&ours_open, &ours_session, &prompt).await?, b)
        };
        if turn >= WARMUP {
            ours.turn.push(millis(a));
            theirs.turn.push(millis(b));
        }
    }
    stop(ours_open).await?;
    stop(theirs_open).await?;
    for (what, ours, theirs) in [
        ("cold start to tools/list", ours.listed, theirs.listed),
        (
            "first call (new session)",
            ours.first_call,
            theirs.first_call,
        ),
        ("a turn on an open session", ours.turn, theirs.turn),
    ] {
        let (ours, theirs) = (Samples::new(ours), Samples::new(theirs));
        section.figure(
            format!("{what}: this sidecar / codex-persistent-mcp"),
            format!(
                "{} / {} ({:.1}× faster)",
                ours.median_range("ms"),
                theirs.median_range("ms"),
                theirs.median() / ours.median(),
            ),
        );
    }
    Ok(section)
}

type Client = (RunningService<RoleClient, ()>, u32);

/// A server process of `server`'s kind on this world's Codex home, handshake
/// done.
async fn spawn(world: &World, script: &Path, server: Server) -> BenchResult<Client> {
    let command = match server {
        Server::Sidecar => sidecar_command(world.project.path(), &world.sidecar_env()?),
        Server::Persistent => {
            let mut command = tokio::process::Command::new("node");
            command.arg(script).env_clear();
            for name in ["PATH", "HOME"] {
                if let Some(value) = std::env::var_os(name) {
                    command.env(name, value);
                }
            }
            command
                .env("CODEX_BIN", codex_bin())
                .env("CODEX_HOME", world.codex_home.path())
                // Its history file is the user's otherwise.
                .env("CODEX_PERSISTENT_MCP_REGISTER_IN_CODEX_HISTORY", "0")
                .current_dir(world.project.path());
            command
        }
    };
    let transport = TokioChildProcess::builder(command)
        .stderr(std::process::Stdio::null())
        .spawn()?
        .0;
    let pid = transport.id().ok_or("the server has no pid")?;
    let client = tokio::time::timeout(CALL_TIMEOUT, ().serve(transport)).await??;
    Ok((client, pid))
}

/// Spawn → `initialize` → `tools/list`, then the first `codex_chat`.
async fn fresh_server(
    world: &World,
    script: &Path,
    server: Server,
    prompt: &str,
) -> BenchResult<(Duration, Duration)> {
    let started = Instant::now();
    let client = spawn(world, script, server).await?;
    tokio::time::timeout(CALL_TIMEOUT, client.0.list_all_tools()).await??;
    let listed = started.elapsed();
    let (_, first_call) = new_session(&client, world.project.path(), prompt).await?;
    stop(client).await?;
    Ok((listed, first_call))
}

/// A new session in `cwd` (codex-persistent-mcp requires it).
async fn new_session(client: &Client, cwd: &Path, prompt: &str) -> BenchResult<(String, Duration)> {
    let started = Instant::now();
    let reply = chat(client, json!({ "prompt": prompt, "cwd": cwd })).await?;
    let elapsed = started.elapsed();
    Ok((str_field(&reply, "session_id")?.to_string(), elapsed))
}

async fn chat_turn(client: &Client, session: &str, prompt: &str) -> BenchResult<Duration> {
    let started = Instant::now();
    chat(client, json!({ "session_id": session, "prompt": prompt })).await?;
    Ok(started.elapsed())
}

async fn chat(client: &Client, arguments: Value) -> BenchResult<Value> {
    let reply = structured(&call(&client.0, "codex_chat", arguments).await?)?;
    if reply.get("reply").is_none() {
        return Err(format!("codex_chat answered without a reply: {reply}").into());
    }
    Ok(reply)
}

async fn stop((client, pid): Client) -> BenchResult<()> {
    client.cancel().await?;
    reap(pid).await;
    Ok(())
}
