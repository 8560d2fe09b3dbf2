//! A run live in one sidecar, waited for and stopped from another: two MCP
//! server processes on one shared app-server, one CODEX_HOME, one project.
//! The second follows the first's audit; it never adopts the run (the first
//! lives), and the run ends once, in its own sidecar.

use std::process::Stdio;
use std::time::{Duration, Instant};

use codex_mcp_sidecar::store::{self, IndexEvent, RunId, RunStatus};
use codex_mcp_sidecar_test_support::scripted_model::{RequestOutcome, Script};
use codex_mcp_sidecar_test_support::world::SidecarWorld;
use serde_json::{Value, json};

use codex_mcp_sidecar::protocol::{ApprovalPolicy, SandboxMode, TurnStatus};

use crate::common::raw_mcp::RawMcp;
use crate::common::{EVENT_TIMEOUT, Rig, start_turn};

const SIDECAR: &str = env!("CARGO_BIN_EXE_codex-mcp-sidecar");

/// Each part of the first sidecar's streamed answer: the run lasts parts ×
/// this, long enough for the second sidecar's slices to see it move.
const PART_MS: u64 = 250;

/// The second sidecar's wait slices: several fit in the run.
const SLICE_MS: u64 = 400;

/// How long the slices may go on before the test calls the run stuck: the
/// run itself lasts a few seconds; a loaded machine may slow it down.
const FOLLOW_TIMEOUT: Duration = Duration::from_secs(120);

suite_world!();

impl World {
    async fn new() -> World {
        World(SidecarWorld::new().await)
    }

    /// An MCP server process on this world's shared app-server.
    async fn sidecar(&self) -> RawMcp {
        let mut command = self.command(SIDECAR);
        command
            .env("CODEX_MCP_WRAPPER_APP_SERVER_MODE", "shared")
            .current_dir(self.project.path())
            .stderr(Stdio::inherit());
        RawMcp::spawn(command).await
    }

    /// Starts a streamed run of `parts` parts in `sidecar`: its id and the
    /// whole text it will answer, once the model is streaming it.
    async fn start_streaming(&self, sidecar: &mut RawMcp, parts: usize) -> (RunId, String) {
        let parts: Vec<String> = (0..parts).map(|n| format!("f{n} ")).collect();
        let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
        let prompt = Script::stream(&refs, PART_MS).marker();
        let handle = sidecar
            .call_ok("codex_run", json!({"prompt": prompt}))
            .await;
        let run_id = RunId::parse(handle["runId"].as_str().unwrap()).unwrap();
        self.model
            .wait_for_outcome(RequestOutcome::Streaming, EVENT_TIMEOUT)
            .await
            .unwrap();
        (run_id, parts.concat())
    }

    /// The project index's (start, end) records of `run_id`.
    fn index_records(&self, run_id: &RunId) -> (usize, usize) {
        let index = store::read_index(&self.run_dir()).unwrap();
        let of_run: Vec<_> = index.iter().filter(|r| &r.run_id == run_id).collect();
        let starts = of_run
            .iter()
            .filter(|r| r.event == IndexEvent::Start)
            .count();
        (starts, of_run.len() - starts)
    }

    /// The pid the run's active record names as its owner, while it runs.
    fn owner(&self, run_id: &RunId) -> Option<u32> {
        store::list_active(&self.run_dir())
            .unwrap()
            .into_iter()
            .find(|active| &active.run_id == run_id)
            .map(|active| active.pid)
    }

    async fn stop(self, sidecars: Vec<RawMcp>) {
        for sidecar in sidecars {
            sidecar.finish().await;
        }
        let mut stop = self.command(SIDECAR);
        stop.args(["app-server", "stop"]).kill_on_drop(true);
        let _ = stop.output().await;
        self.0.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_sidecar_follows_a_live_run_to_its_result() {
    let world = World::new().await;
    let mut first = world.sidecar().await;
    let mut second = world.sidecar().await;
    let first_pid = first.child.id().unwrap();
    let (run_id, text) = world.start_streaming(&mut first, 16).await;

    let deadline = Instant::now() + FOLLOW_TIMEOUT;
    let mut slices: Vec<Value> = Vec::new();
    let result = loop {
        assert!(Instant::now() < deadline, "still running: {slices:#?}");
        let reply = second
            .call_ok(
                "codex_wait",
                json!({"run_id": run_id.as_str(), "soft_timeout_ms": SLICE_MS}),
            )
            .await;
        if reply["status"] != "still_running" {
            break reply;
        }
        // The first sidecar owns it still: the second never adopted it.
        if let Some(owner) = world.owner(&run_id) {
            assert_eq!(owner, first_pid, "{reply}");
        }
        slices.push(reply);
    };

    assert!(slices.len() >= 2, "too few slices: {slices:#?}\n{result}");
    for slice in &slices {
        assert_eq!(slice["runId"], run_id.as_str(), "{slice}");
        assert!(slice["threadId"].is_string(), "{slice}");
        assert!(slice["progress"]["totalTokens"].is_u64(), "{slice}");
    }
    let events: Vec<u64> = slices
        .iter()
        .map(|slice| slice["progress"]["events"].as_u64().unwrap())
        .collect();
    assert!(
        events.windows(2).all(|pair| pair[0] <= pair[1]) && events.last() > events.first(),
        "the progress did not move: {events:?}"
    );

    assert_eq!(result["status"], "completed", "{result}");
    assert_eq!(result["result"], text.as_str(), "{result}");
    // What the owner's own wait returns.
    let owners = first
        .call_ok("codex_wait", json!({"run_id": run_id.as_str()}))
        .await;
    assert_eq!(result, owners);

    assert_eq!(world.index_records(&run_id), (1, 1));
    assert_eq!(world.owner(&run_id), None);
    world.stop(vec![first, second]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_sidecar_interrupts_a_live_run_of_the_first() {
    let world = World::new().await;
    let mut first = world.sidecar().await;
    let mut second = world.sidecar().await;
    let (run_id, _) = world.start_streaming(&mut first, 400).await;

    let stopped = second
        .call_ok("codex_interrupt", json!({"run_id": run_id.as_str()}))
        .await;
    assert_eq!(stopped["status"], "interrupted", "{stopped}");

    // The owner saw its turn end that way, and recorded it once.
    let owners = first
        .call_ok("codex_wait", json!({"run_id": run_id.as_str()}))
        .await;
    assert_eq!(owners["status"], "interrupted", "{owners}");
    assert_eq!(world.index_records(&run_id), (1, 1));
    let index = store::read_index(&world.run_dir()).unwrap();
    let end = index
        .iter()
        .find(|record| record.run_id == run_id && record.event == IndexEvent::End)
        .unwrap();
    assert_eq!(end.status, RunStatus::Interrupted);
    world.stop(vec![first, second]).await;
}

/// The owner of a followed run dies mid-run: the follower hands the run to
/// the adoption path, and the second sidecar completes it as it would any
/// run whose sidecar died.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_followed_run_whose_owner_dies_is_adopted_and_completed() {
    let world = World::new().await;
    let mut first = world.sidecar().await;
    let mut second = world.sidecar().await;
    let (run_id, text) = world.start_streaming(&mut first, 24).await;
    let slice = second
        .call_ok(
            "codex_wait",
            json!({"run_id": run_id.as_str(), "soft_timeout_ms": SLICE_MS}),
        )
        .await;
    assert_eq!(slice["status"], "still_running", "{slice}");

    first.child.kill().await.unwrap();
    let deadline = Instant::now() + FOLLOW_TIMEOUT;
    let result = loop {
        assert!(Instant::now() < deadline, "still running");
        let reply = second
            .call_ok(
                "codex_wait",
                json!({"run_id": run_id.as_str(), "soft_timeout_ms": SLICE_MS}),
            )
            .await;
        if reply["status"] != "still_running" {
            break reply;
        }
    };
    assert_eq!(result["status"], "completed", "{result}");
    assert_eq!(result["result"], text.as_str(), "{result}");
    assert_eq!(world.index_records(&run_id), (1, 1));
    assert_eq!(world.owner(&run_id), None);
    world.stop(vec![second]).await;
}

/// The Codex fact the interrupt from a second sidecar rests on: a
/// connection that never started or resumed a thread (so it is not
/// subscribed to it, and gets none of its requests) may still stop its turn.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codex_takes_an_interrupt_from_a_connection_not_subscribed_to_the_thread() {
    let rig = Rig::start().await;
    let (owner, mut owner_events) = rig.connect().await;
    let thread = rig
        .thread(&owner, ApprovalPolicy::Never, SandboxMode::ReadOnly)
        .await;
    let parts: Vec<String> = (0..400).map(|n| format!("i{n} ")).collect();
    let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
    let turn = start_turn(&owner, &thread.id, Script::stream(&refs, PART_MS).marker()).await;
    rig.model
        .wait_for_outcome(RequestOutcome::Streaming, EVENT_TIMEOUT)
        .await
        .unwrap();

    let (other, _other_events) = rig.connect().await;
    assert!(!other.is_subscribed(&thread.id));
    let params = json!({"threadId": thread.id, "turnId": turn.id});
    let answer: Result<Value, _> = other.request("turn/interrupt", &params).await;
    assert!(answer.is_ok(), "Codex refused: {answer:?}");

    let (completed, _) = owner_events.turn_completed(&turn.id).await;
    assert_eq!(completed.turn.status, TurnStatus::Interrupted, "{answer:?}");
    rig.finish().await;
}

/// `codex_wait` on several runs works across sidecars as a single wait
/// does: the second sidecar waits on its own run and on one the first owns
/// in one `any` wait, and gets each result whole, the first's followed
/// through its audit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wait_on_several_runs_follows_those_of_another_sidecar() {
    let world = World::new().await;
    let mut first = world.sidecar().await;
    let mut second = world.sidecar().await;
    let (theirs, their_text) = world.start_streaming(&mut first, 12).await;
    let (ours, our_text) = world.start_streaming(&mut second, 4).await;
    let mut left = vec![theirs.to_string(), ours.to_string()];
    let deadline = Instant::now() + FOLLOW_TIMEOUT;
    while !left.is_empty() {
        assert!(Instant::now() < deadline, "still running: {left:?}");
        let reply = second
            .call_ok(
                "codex_wait",
                json!({"run_ids": left, "soft_timeout_ms": SLICE_MS}),
            )
            .await;
        if reply["status"] == "still_running" {
            continue;
        }
        let run_id = reply["runId"].as_str().unwrap().to_string();
        let text = if run_id == theirs.as_str() {
            &their_text
        } else {
            &our_text
        };
        assert_eq!(reply["status"], "completed", "{reply}");
        assert_eq!(reply["result"], text.as_str(), "{reply}");
        left.retain(|id| *id != run_id);
        assert_eq!(
            reply["others"].as_array().map_or(0, Vec::len),
            left.len(),
            "{reply}"
        );
    }
    // The first still owned its run to the end: followed, not adopted.
    assert_eq!(world.index_records(&theirs), (1, 1));
    world.stop(vec![first, second]).await;
}
