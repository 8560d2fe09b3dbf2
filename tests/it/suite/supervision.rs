//! The engine's own actors die: the wait broker, the conversations actor.
//! Each is killed in-process (the engine's test hook, ractor's `kill`) while
//! a real app-server runs, and the MCP server on that engine shows it:
//! `codex_wrapper_check` is unhealthy and names the actor, and the calls
//! that need it fail at once instead of running into their timeouts.

use std::time::{Duration, Instant};

use codex_mcp_sidecar::actors::{EngineError, RunStatus, Watched};
use codex_mcp_sidecar::mcp::SidecarServer;
use codex_mcp_sidecar_test_support::scripted_model::Script;
use rmcp::service::RunningService;
use rmcp::{RoleClient, ServiceExt};
use serde_json::{Value, json};

use crate::common::engine::{EngineRig, config};
use crate::common::tools::call;
use crate::common::{EVENT_TIMEOUT, codex_binary};

type Client = RunningService<RoleClient, ()>;

/// "At once": far below every bound a call to a dead actor could otherwise
/// run into (a chat's call allows its 2 min timeout plus 110 s, a blocking
/// wait none at all), yet roomy for a loaded 2-core machine.
const AT_ONCE: Duration = Duration::from_secs(5);

/// Long enough that the hanging turn is still running when the test is
/// done with it, short enough that nothing outlives a stuck test for long.
const HANGING_RUN_TIMEOUT: Duration = Duration::from_secs(120);

/// How long a blocking waiter is given to reach the broker before the kill.
const WAITER_SETTLE: Duration = Duration::from_millis(500);

/// An MCP client of a server in this process, on the rig's engine.
async fn client_of(rig: &EngineRig) -> Client {
    let config = config(rig.codex_home.path(), rig.pointer_dir.path(), &[]);
    let server = SidecarServer::new(
        config,
        Ok::<_, String>(codex_binary()),
        Some(rig.engine.clone()),
        rig.project.path().to_path_buf(),
    );
    let (server_end, client_end) = tokio::io::duplex(1 << 20);
    tokio::spawn(async move {
        if let Ok(service) = server.serve(server_end).await {
            let _ = service.waiting().await;
        }
    });
    ().serve(client_end).await.unwrap()
}

/// A tool call that must fail at once; its error text.
async fn fails_at_once(client: &Client, tool: &str, arguments: Value) -> String {
    let started = Instant::now();
    let result = call(client, tool, arguments).await;
    let took = started.elapsed();
    let text = serde_json::to_string(&result.content).unwrap();
    assert_eq!(result.is_error, Some(true), "{tool}: {text}");
    assert!(took < AT_ONCE, "{tool} took {took:?}: {text}");
    text
}

async fn check(client: &Client) -> Value {
    let result = call(client, "codex_wrapper_check", json!({})).await;
    result.structured_content.expect("the check's report")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_wait_broker_makes_the_check_unhealthy_and_its_calls_fail_at_once() {
    let rig = EngineRig::start(&[]).await;
    let client = client_of(&rig).await;
    let healthy = check(&client).await;
    assert_eq!(healthy["ok"], true, "{healthy}");

    let mut request = rig.request(Script::hang().marker());
    request.turn.timeout = Some(HANGING_RUN_TIMEOUT);
    let started = rig.engine.run(request).await.unwrap();
    let engine = rig.engine.clone();
    let run_id = started.run_id.clone();
    let waiter = tokio::spawn(async move {
        let since = Instant::now();
        (engine.wait(&run_id, None).await, since.elapsed())
    });
    tokio::time::sleep(WAITER_SETTLE).await;

    let killed = Instant::now();
    rig.engine.kill_for_test(Watched::WaitBroker).await;

    // The wait already inside the broker hears at once, and hears why.
    let (outcome, _) = tokio::time::timeout(EVENT_TIMEOUT, waiter)
        .await
        .expect("the waiter wakes")
        .unwrap();
    let woke = killed.elapsed();
    let error = outcome.expect_err("a wait on a dead broker fails");
    assert!(matches!(error, EngineError::ActorDied { .. }), "{error:?}");
    assert!(error.to_string().contains("wait broker"), "{error}");
    assert!(woke < AT_ONCE, "the waiter woke after {woke:?}");

    let report = check(&client).await;
    assert_eq!(report["ok"], false, "{report}");
    let problems = report["problems"].to_string();
    assert!(problems.contains("wait broker"), "{problems}");

    let run_id = started.run_id.to_string();
    let wait = fails_at_once(&client, "codex_wait", json!({"run_id": run_id})).await;
    assert!(wait.contains("wait broker"), "{wait}");
    let active = fails_at_once(&client, "codex_active_runs", json!({})).await;
    assert!(active.contains("wait broker"), "{active}");
    // A chat is a run and a wait: refused before a turn starts.
    let cwd = rig.project.path().display().to_string();
    let chat = fails_at_once(&client, "codex_chat", json!({"prompt": "hi", "cwd": cwd})).await;
    assert!(chat.contains("wait broker"), "{chat}");
    let before = rig.model.requests().len();
    let run = fails_at_once(&client, "codex_run", json!({"prompt": "hi", "cwd": cwd})).await;
    assert!(run.contains("wait broker"), "{run}");
    assert_eq!(rig.model.requests().len(), before, "no turn reached Codex");

    // The supervisor lives on: the hanging run can still be stopped.
    rig.engine.interrupt(&started.run_id).await.unwrap();
    client.cancel().await.unwrap();
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_conversations_make_the_check_unhealthy_and_chat_fail_at_once_while_runs_go_on() {
    let rig = EngineRig::start(&[]).await;
    let client = client_of(&rig).await;
    let healthy = check(&client).await;
    assert_eq!(healthy["ok"], true, "{healthy}");

    rig.engine.kill_for_test(Watched::Conversations).await;

    let report = check(&client).await;
    assert_eq!(report["ok"], false, "{report}");
    let problems = report["problems"].to_string();
    assert!(problems.contains("conversations"), "{problems}");
    assert!(!problems.contains("wait broker"), "{problems}");

    let cwd = rig.project.path().display().to_string();
    let chat = fails_at_once(&client, "codex_chat", json!({"prompt": "hi", "cwd": cwd})).await;
    assert!(chat.contains("conversations"), "{chat}");
    let plan = fails_at_once(
        &client,
        "codex_plan",
        json!({"requirements": "r", "plan": "p", "cwd": cwd}),
    )
    .await;
    assert!(plan.contains("conversations"), "{plan}");

    // Runs need neither: they start and end as before.
    let started = rig.run(Script::text("still here").marker()).await;
    let result = rig.finish(&started).await;
    assert_eq!(result.status, RunStatus::Completed);
    assert_eq!(result.result.as_deref(), Some("still here"));

    client.cancel().await.unwrap();
    rig.stop().await;
}
