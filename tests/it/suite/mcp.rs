//! The MCP server as clients see it: an rmcp client in-process over a pipe,
//! and the built binary over stdio, both on the real Codex.

use std::time::Duration;

use codex_mcp_sidecar::actors::Engine;
use codex_mcp_sidecar::codex_bin::CodexBinary;
use codex_mcp_sidecar::mcp::SidecarServer;
use codex_mcp_sidecar::store::{self, PointerRecord, RunId, RunStatus};
use codex_mcp_sidecar_test_support::scripted_model::{RequestOutcome, Script, ScriptedModel};
use rmcp::model::{CallToolRequestParams, CallToolResult};
use rmcp::service::RunningService;
use rmcp::transport::TokioChildProcess;
use rmcp::{RoleClient, ServiceExt};
use serde_json::{Value, json};

use crate::common::codex_setup::{add_eliciting_mcp_server, turn_on_request_tools};
use crate::common::engine::config;
use crate::common::tmux::Tmux;
use crate::common::tools::{call, structured, text};
use crate::common::{EVENT_TIMEOUT, codex_bin};
use codex_mcp_sidecar_test_support::world::SidecarWorld;

type Client = RunningService<RoleClient, ()>;

/// Every tool a client sees by default (`CODEX_MCP_WRAPPER_TOOLS` unset).
const TOOLS: [&str; 11] = [
    "codex_active_runs",
    "codex_approve",
    "codex_chat",
    "codex_interrupt",
    "codex_plan",
    "codex_resume",
    "codex_review",
    "codex_run",
    "codex_runs",
    "codex_wait",
    "codex_wrapper_check",
];

/// What a client sees with the two old families asked for too.
const WITH_OLD_NAMES: &str = "sidecar,persistent,legacy,aliases";

// A throwaway world for one server: model, CODEX_HOME, pointer dir, project.
suite_world!();

impl World {
    async fn new() -> World {
        World(SidecarWorld::new().await)
    }

    async fn shutdown(self) {
        self.0.shutdown().await;
    }

    /// Short wait slices, so a test sees `still_running` quickly.
    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("CODEX_HOME", self.codex_home.path().display().to_string()),
            (
                "CODEX_MCP_WRAPPER_POINTER_DIR",
                self.pointer_dir.display().to_string(),
            ),
            ("CODEX_MCP_WRAPPER_APP_SERVER_MODE", "private".into()),
            ("CODEX_MCP_WRAPPER_WAIT_SOFT_TIMEOUT_MS", "300".into()),
        ]
    }

    /// The server in this process, behind a duplex pipe.
    async fn in_process(&self, codex: Result<CodexBinary, String>) -> (Client, Option<Engine>) {
        self.in_process_with(codex, &[]).await
    }

    async fn in_process_with(
        &self,
        codex: Result<CodexBinary, String>,
        extra: &[(&'static str, &str)],
    ) -> (Client, Option<Engine>) {
        self.serve_with((), codex, extra).await
    }

    /// The server in this process, its client answering with `handler`
    /// (a client's capabilities and notification handlers live there).
    async fn serve_with<H: rmcp::ClientHandler>(
        &self,
        handler: H,
        codex: Result<CodexBinary, String>,
        extra: &[(&'static str, &str)],
    ) -> (RunningService<RoleClient, H>, Option<Engine>) {
        let mut env: Vec<(&str, String)> = self.env();
        env.extend(extra.iter().map(|(name, value)| (*name, value.to_string())));
        let pairs: Vec<(&str, &str)> = env
            .iter()
            .map(|(name, value)| (*name, value.as_str()))
            .collect();
        let config = config(self.codex_home.path(), &self.pointer_dir, &pairs);
        let engine = match &codex {
            Ok(codex) => Some(Engine::start(config.clone(), codex.clone()).await.unwrap()),
            Err(_) => None,
        };
        let server = SidecarServer::new(
            config,
            codex,
            engine.clone(),
            self.project.path().to_path_buf(),
        );
        let (server_end, client_end) = tokio::io::duplex(1 << 20);
        tokio::spawn(async move {
            if let Ok(service) = server.serve(server_end).await {
                let _ = service.waiting().await;
            }
        });
        (handler.serve(client_end).await.unwrap(), engine)
    }

    /// The built binary over stdio, as Claude Code runs it.
    async fn over_stdio(&self, codex_bin_override: Option<&str>) -> Client {
        let codex_bin = codex_bin_override
            .map(str::to_string)
            .unwrap_or_else(|| codex_bin().display().to_string());
        self.over_stdio_with((), &[("CODEX_BIN", &codex_bin)]).await
    }

    /// [`Self::over_stdio`] with the legacy and alias families listed too,
    /// as a configuration written for the removed built-in server asks.
    async fn over_stdio_with_old_names(&self) -> Client {
        let codex_bin = codex_bin().display().to_string();
        self.over_stdio_with(
            (),
            &[
                ("CODEX_BIN", &codex_bin),
                ("CODEX_MCP_WRAPPER_TOOLS", WITH_OLD_NAMES),
            ],
        )
        .await
    }

    /// The built binary over stdio, its client answering with `handler`;
    /// `extra` adds to or overrides the environment.
    async fn over_stdio_with<H: rmcp::ClientHandler>(
        &self,
        handler: H,
        extra: &[(&str, &str)],
    ) -> RunningService<RoleClient, H> {
        let mut command = self.command(env!("CARGO_BIN_EXE_codex-mcp-sidecar"));
        for (name, value) in self.env() {
            command.env(name, value);
        }
        for (name, value) in extra {
            command.env(name, value);
        }
        command.current_dir(self.project.path());
        handler
            .serve(TokioChildProcess::new(command).unwrap())
            .await
            .unwrap()
    }
}

fn real_codex() -> Result<CodexBinary, String> {
    Ok(crate::common::codex_binary())
}

fn bytes(value: &Value) -> usize {
    value.to_string().len()
}

/// Waits slice by slice until the run ends; returns the final reply and
/// whether a `still_running` slice was seen first.
async fn wait_to_end(client: &Client, run_id: &str) -> (CallToolResult, bool) {
    let mut saw_still_running = false;
    for _ in 0..200 {
        let reply = call(client, "codex_wait", json!({"run_id": run_id})).await;
        let value = structured(&reply);
        if value["status"] == "still_running" {
            assert!(
                bytes(&value) <= 400,
                "still_running is {} bytes: {value}",
                bytes(&value)
            );
            assert!(value["progress"]["events"].as_u64().is_some(), "{value}");
            assert_eq!(value["nextWaitMs"], 300);
            saw_still_running = true;
            continue;
        }
        return (reply, saw_still_running);
    }
    panic!("the run never ended");
}

/// The flow the issue lists, through any client: list tools; run, wait in
/// slices, completed; resume; chat twice on one session; plan and review;
/// the wrapper check. (The aliases, listed only when asked for, are called
/// in `the_tool_family_switch_lists_only_what_it_names`.)
async fn full_flow(client: &Client, world: &World) {
    let mut names: Vec<String> = client
        .list_all_tools()
        .await
        .unwrap()
        .into_iter()
        .map(|tool| tool.name.to_string())
        .collect();
    names.sort();
    assert_eq!(names, TOOLS);

    let parts: Vec<String> = (0..6).map(|n| format!("s{n} ")).collect();
    let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
    let handle = structured(
        &call(
            client,
            "codex_run",
            json!({"prompt": Script::stream(&parts, 200).marker()}),
        )
        .await,
    );
    assert!(
        bytes(&handle) <= 300,
        "the handle is {} bytes: {handle}",
        bytes(&handle)
    );
    assert_eq!(handle["status"], "running");
    let run_id = handle["runId"].as_str().unwrap().to_string();
    let active = structured(&call(client, "codex_active_runs", json!({})).await);
    assert_eq!(active["runs"][0]["runId"], run_id.as_str(), "{active}");
    assert_eq!(active["runs"][0]["status"], "running");
    assert!(active["runs"][0]["elapsedMs"].is_u64());
    let (done, saw_still_running) = wait_to_end(client, &run_id).await;
    assert!(saw_still_running, "a 1.2 s run outlasts a 300 ms slice");
    let value = structured(&done);
    assert_eq!(value["status"], "completed");
    let message = parts.concat();
    assert_eq!(value["result"], message.as_str());
    let rendered = text(&done);
    assert!(rendered.ends_with(&message), "{rendered}");
    // The envelope is 200 bytes beside what Codex itself reported: its
    // warnings (≤ 3 × 160 characters; the scripted model's name is unknown
    // to Codex's catalog) and rate limits, each counted with its key.
    let reported: usize = ["warnings", "rateLimits"]
        .iter()
        .filter(|key| !value[**key].is_null())
        .map(|key| key.len() + 4 + bytes(&value[*key]))
        .sum();
    assert!(reported <= 3 * 170 + 120, "{value}");
    assert!(
        rendered.len() <= message.len() + 200 + reported,
        "{rendered}"
    );
    assert!(bytes(&value) <= message.len() + 200 + reported, "{value}");

    let resumed = structured(
        &call(
            client,
            "codex_resume",
            json!({"run_id": run_id, "prompt": format!("Again. {}", Script::echo_history().marker()), "async": false}),
        )
        .await,
    );
    assert_eq!(resumed["threadId"], value["threadId"]);
    assert!(
        resumed["result"]
            .as_str()
            .unwrap()
            .contains("SCRIPT{\"stream\""),
        "{resumed}"
    );

    let first = structured(
        &call(
            client,
            "codex_chat",
            json!({"prompt": "Remember ALBATROSS."}),
        )
        .await,
    );
    let session = first["session_id"].as_str().unwrap().to_string();
    let second = structured(
        &call(
            client,
            "codex_chat",
            json!({"session_id": session, "prompt": Script::echo_history().marker()}),
        )
        .await,
    );
    assert_eq!(second["session_id"], session.as_str());
    let reply = second["reply"].as_str().unwrap();
    assert!(reply.contains("Remember ALBATROSS."), "{reply}");
    assert!(
        reply.contains("[message from codex-persistent-mcp"),
        "the origin header: {reply}"
    );

    for (tool, field, arguments) in [
        (
            "codex_plan",
            "critique",
            json!({"requirements": "R", "plan": "P", "constraints": "C"}),
        ),
        (
            "codex_review",
            "review",
            json!({"change_summary": "S", "test_results": "T"}),
        ),
    ] {
        let answer = structured(&call(client, tool, arguments).await);
        assert_eq!(answer[field], "scripted reply", "{tool}: {answer}");
        assert!(answer["session_id"].is_string(), "{tool}: {answer}");
    }

    let check = structured(&call(client, "codex_wrapper_check", json!({})).await);
    assert_eq!(check["ok"], true, "{check}");
    assert_eq!(
        check["codexVersion"],
        crate::common::codex_version().to_string()
    );
    assert_eq!(check["appServer"]["mode"], "private");
    assert_eq!(check["defaults"]["softTimeoutMs"], 300);
    assert!(
        world
            .project
            .path()
            .join(".codex/codex-mcp/runs/index.jsonl")
            .exists()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_tool_in_process() {
    let world = World::new().await;
    let (client, engine) = world.in_process(real_codex()).await;
    full_flow(&client, &world).await;

    let active = structured(&call(&client, "codex_active_runs", json!({})).await);
    assert_eq!(active["runs"], json!([]), "nothing runs now");
    let listed = structured(&call(&client, "codex_runs", json!({"limit": 3})).await);
    let listed = listed["runs"].as_array().unwrap().clone();
    assert_eq!(listed.len(), 3);
    let ids: Vec<&str> = listed
        .iter()
        .map(|run| run["runId"].as_str().unwrap())
        .collect();
    let mut newest_first = ids.clone();
    newest_first.sort_by(|a, b| b.cmp(a));
    assert_eq!(ids, newest_first);

    client.cancel().await.unwrap();
    engine.unwrap().shutdown().await;
    world.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_built_binary_over_stdio() {
    let world = World::new().await;
    let client = world.over_stdio(None).await;
    full_flow(&client, &world).await;
    client.cancel().await.unwrap();

    // Unhealthy: no Codex binary. The server still answers, and says why.
    let broken = world.over_stdio(Some("/nonexistent/codex")).await;
    let check = structured(&call(&broken, "codex_wrapper_check", json!({})).await);
    assert_eq!(check["ok"], false, "{check}");
    let problems = check["problems"].to_string();
    assert!(problems.contains("/nonexistent/codex"), "{problems}");
    let run = call(&broken, "codex_run", json!({"prompt": "hi"})).await;
    assert_eq!(run.is_error, Some(true));
    assert!(text(&run).contains("/nonexistent/codex"), "{}", text(&run));
    broken.cancel().await.unwrap();
    world.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_listed_runs_fit_the_budget() {
    let world = World::new().await;
    let (client, engine) = world.in_process(real_codex()).await;
    // Twenty runs with the longest titles a run can have.
    for n in 0..20 {
        store::append_pointer(
            &world.pointer_dir.join("runs.index.jsonl"),
            &PointerRecord {
                endpoint: None,
                run_id: RunId::generate(),
                project_root: world.project.path().into(),
                run_dir: world.project.path().join(".codex/codex-mcp/runs"),
                thread_id: Some(format!("01a1fc9e-17f1-7460-9987-77{n:010}")),
                title: Some(format!(
                    "{n:02} {}",
                    "a long title that goes on and on ".repeat(3)
                )),
                status: RunStatus::Completed,
                at: codex_mcp_sidecar::timestamp::now_rfc3339(),
                total_tokens: None,
                duration_ms: None,
            },
        )
        .unwrap();
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let listed = structured(&call(&client, "codex_runs", json!({})).await);
    assert_eq!(listed["runs"].as_array().unwrap().len(), 20);
    assert!(
        bytes(&listed) <= 2500,
        "20 runs are {} bytes",
        bytes(&listed)
    );
    assert!(
        listed["runs"][0]["title"]
            .as_str()
            .unwrap()
            .starts_with("19 "),
        "newest first"
    );
    client.cancel().await.unwrap();
    engine.unwrap().shutdown().await;
    world.shutdown().await;
}

/// A session id is a Codex thread id: a person continues the conversation
/// in Codex's own CLI (`codex resume <session_id>`, or `codex exec resume`
/// without a terminal), with the same CODEX_HOME and no extra flag.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_continues_in_codex_own_cli() {
    let world = World::new().await;
    let (client, engine) = world.in_process(real_codex()).await;
    let first = structured(
        &call(
            &client,
            "codex_chat",
            json!({"prompt": "The bird is HERON."}),
        )
        .await,
    );
    let session = first["session_id"].as_str().unwrap().to_string();
    client.cancel().await.unwrap();
    engine.unwrap().shutdown().await;

    let output = tokio::process::Command::new(codex_bin())
        .args([
            "exec",
            "--skip-git-repo-check",
            "--json",
            "resume",
            &session,
        ])
        .arg(Script::echo_history().marker())
        .env("CODEX_HOME", world.codex_home.path())
        .current_dir(world.project.path())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(EVENT_TIMEOUT, output)
        .await
        .unwrap()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let last_message = stdout
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|event| event["item"]["type"] == "agent_message")
        .filter_map(|event| event["item"]["text"].as_str().map(str::to_string))
        .next_back()
        .unwrap_or_default();
    assert!(last_message.contains("The bird is HERON."), "{stdout}");
    world.shutdown().await;
}

/// `model` on one conversation request does not stick to the next one,
/// also once the sidecar sends a loaded thread only what changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_override_applies_to_its_request_only() {
    let world = World::new().await;
    let (client, engine) = world.in_process(real_codex()).await;
    let first = structured(&call(&client, "codex_chat", json!({"prompt": "one"})).await);
    let session = first["session_id"].as_str().unwrap().to_string();
    call(
        &client,
        "codex_chat",
        json!({"session_id": session, "prompt": "two", "model": "other-model"}),
    )
    .await;
    // The third goes back to the thread's own model; the fourth, on a
    // thread left with it, is sent no model and keeps it.
    for prompt in ["three", "four"] {
        call(
            &client,
            "codex_chat",
            json!({"session_id": session, "prompt": prompt}),
        )
        .await;
    }
    let models: Vec<String> = world
        .model
        .requests()
        .iter()
        .filter_map(|request| request.body["model"].as_str().map(str::to_string))
        .collect();
    assert_eq!(
        models,
        ["mock-model", "other-model", "mock-model", "mock-model"]
    );
    client.cancel().await.unwrap();
    engine.unwrap().shutdown().await;
    world.shutdown().await;
}

/// Two requests for one session at once: the second waits for the first and
/// then sees it, instead of colliding with a running turn.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_for_one_session_run_one_at_a_time_in_order() {
    let world = World::new().await;
    let (client, engine) = world.in_process(real_codex()).await;
    let first = structured(&call(&client, "codex_chat", json!({"prompt": "start"})).await);
    let session = first["session_id"].as_str().unwrap().to_string();
    let slow = format!(
        "slow one {}",
        Script::stream(&["a", "b", "c"], 200).marker()
    );
    let (slow, after) = tokio::join!(
        call(
            &client,
            "codex_chat",
            json!({"session_id": session, "prompt": slow})
        ),
        async {
            // Sent while the slow one runs.
            tokio::time::sleep(Duration::from_millis(100)).await;
            call(
                &client,
                "codex_chat",
                json!({"session_id": session, "prompt": Script::echo_history().marker()}),
            )
            .await
        }
    );
    assert_eq!(structured(&slow)["reply"], "abc");
    let history = structured(&after)["reply"].as_str().unwrap().to_string();
    let (start, slow_one) = (
        history.find("start").unwrap(),
        history.find("slow one").unwrap(),
    );
    assert!(start < slow_one, "in order: {history}");
    client.cancel().await.unwrap();
    engine.unwrap().shutdown().await;
    world.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interrupt_stops_a_running_turn_and_is_a_no_op_on_a_finished_one() {
    let world = World::new().await;
    let client = world.over_stdio(None).await;
    let handle = structured(
        &call(
            &client,
            "codex_run",
            json!({"prompt": Script::hang().marker()}),
        )
        .await,
    );
    let run_id = handle["runId"].as_str().unwrap().to_string();
    world
        .model
        .wait_for_outcome(RequestOutcome::Streaming, Duration::from_secs(30))
        .await
        .unwrap();
    // A waiter blocked on the run wakes with the interrupted status.
    let waiter = call(
        &client,
        "codex_wait",
        json!({"run_id": run_id, "soft_timeout_ms": 0}),
    );
    let interrupt = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        call(&client, "codex_interrupt", json!({"run_id": run_id})).await
    };
    let (waited, interrupted) = tokio::join!(waiter, interrupt);
    assert_eq!(structured(&interrupted)["status"], "interrupted");
    assert_eq!(structured(&waited)["status"], "interrupted");
    world
        .model
        .wait_for_outcome(RequestOutcome::ClientWentAway, Duration::from_secs(10))
        .await
        .expect("the turn really stopped");

    let again = structured(&call(&client, "codex_interrupt", json!({"run_id": run_id})).await);
    assert_eq!(again["status"], "interrupted");
    assert!(
        again["note"].as_str().unwrap().contains("already ended"),
        "{again}"
    );
    client.cancel().await.unwrap();
    world.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_final_message_reads_back_whole_through_pages() {
    let world = World::new().await;
    let client = world.over_stdio(None).await;
    // 50 000 characters, multibyte ones among them, so pages must cut on
    // character boundaries.
    let message: String = "héllo wörld 🦀 ".chars().cycle().take(50_000).collect();
    let handle = structured(
        &call(
            &client,
            "codex_run",
            json!({"prompt": Script::text(&message).marker()}),
        )
        .await,
    );
    let run_id = handle["runId"].as_str().unwrap().to_string();
    let mut pages = Vec::new();
    let mut offset = 0;
    loop {
        let reply = call(
            &client,
            "codex_wait",
            json!({"run_id": run_id, "soft_timeout_ms": 0, "offset": offset}),
        )
        .await;
        let value = structured(&reply);
        assert_eq!(value["status"], "completed");
        let page = value["result"].as_str().unwrap().to_string();
        assert!(page.chars().count() <= 20_000);
        assert!(
            text(&reply).len() <= page.len() + 200 + 100,
            "a page's text stays small around it"
        );
        pages.push(page);
        match value["nextOffset"].as_u64() {
            Some(next) => {
                assert!(
                    text(&reply).contains(&format!("offset {next}")),
                    "the marker says where to go on"
                );
                offset = next;
            }
            None => break,
        }
    }
    assert_eq!(pages.len(), 3);
    assert_eq!(pages.concat(), message);
    let past = call(
        &client,
        "codex_wait",
        json!({"run_id": run_id, "offset": 50_000}),
    )
    .await;
    assert_eq!(past.is_error, Some(true));
    assert!(text(&past).contains("past the end"), "{}", text(&past));
    client.cancel().await.unwrap();
    world.shutdown().await;
}

/// The two tools of Codex's removed built-in server, with its field names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codex_then_codex_reply_on_one_thread() {
    let world = World::new().await;
    // A profile to select by name, where `codex --profile fast` looks.
    std::fs::write(
        world.codex_home.path().join("fast.config.toml"),
        "model = \"profile-model\"\n",
    )
    .unwrap();
    let client = world.over_stdio_with_old_names().await;

    let tools = client.list_all_tools().await.unwrap();
    let schema = |name: &str| {
        let tool = tools.iter().find(|tool| tool.name == name).unwrap();
        let schema = serde_json::to_value(tool.input_schema.as_ref()).unwrap();
        let mut fields: Vec<String> = schema["properties"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        fields.sort();
        (fields, schema["required"].clone())
    };
    // Codex's own fields, and `endpoint` (issue 17: every tool that starts
    // a turn takes one).
    assert_eq!(
        schema("codex"),
        (
            [
                "approval-policy",
                "base-instructions",
                "compact-prompt",
                "config",
                "cwd",
                "developer-instructions",
                "endpoint",
                "model",
                "profile",
                "prompt",
                "sandbox",
            ]
            .map(String::from)
            .to_vec(),
            json!(["prompt"])
        )
    );
    assert_eq!(
        schema("codex-reply"),
        (
            ["conversationId", "prompt", "threadId"]
                .map(String::from)
                .to_vec(),
            json!(["prompt"])
        )
    );

    let started = call(
        &client,
        "codex",
        json!({
            "prompt": "The fish is TROUT.",
            "approval-policy": "never",
            "sandbox": "read-only",
            "profile": "fast",
            "base-instructions": "BASE-INSTRUCTIONS-MARK",
            "developer-instructions": "DEVELOPER-INSTRUCTIONS-MARK",
            "config": {"model_reasoning_effort": "low"},
        }),
    )
    .await;
    let value = structured(&started);
    assert_eq!(value["content"], "scripted reply");
    assert_eq!(text(&started), "scripted reply");
    let thread_id = value["threadId"].as_str().unwrap().to_string();
    let first = world.model.requests()[0].body.clone();
    assert_eq!(
        first["model"], "profile-model",
        "the profile chose the model"
    );
    let body = first.to_string();
    assert!(
        body.contains("BASE-INSTRUCTIONS-MARK"),
        "base instructions reach the model"
    );
    assert!(
        body.contains("DEVELOPER-INSTRUCTIONS-MARK"),
        "developer instructions reach the model"
    );
    assert_eq!(
        first["reasoning"]["effort"], "low",
        "config overrides apply: {}",
        first["reasoning"]
    );

    for field in ["threadId", "conversationId"] {
        let reply = call(
            &client,
            "codex-reply",
            json!({field: thread_id, "prompt": Script::echo_history().marker()}),
        )
        .await;
        let value = structured(&reply);
        assert_eq!(value["threadId"], thread_id.as_str());
        assert!(
            value["content"]
                .as_str()
                .unwrap()
                .contains("The fish is TROUT."),
            "{value}"
        );
    }
    client.cancel().await.unwrap();
    world.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tool_family_switch_lists_only_what_it_names() {
    let world = World::new().await;
    let old_names = [
        "codex",
        "codex-reply",
        "codex_guard_final",
        "codex_guard_plan",
    ];
    let mut everything: Vec<&str> = TOOLS.iter().copied().chain(old_names).collect();
    everything.sort();
    for (families, expected, hidden) in [
        ("legacy", vec!["codex", "codex-reply"], "codex_run"),
        // Unset: neither old family is listed, nor can be called.
        ("", TOOLS.to_vec(), "codex"),
        ("sidecar,persistent", TOOLS.to_vec(), "codex_guard_plan"),
        (
            "persistent",
            vec!["codex_chat", "codex_plan", "codex_review"],
            "codex_guard_final",
        ),
        (
            "aliases",
            vec!["codex_guard_final", "codex_guard_plan"],
            "codex_plan",
        ),
        (WITH_OLD_NAMES, everything.clone(), "no_such_tool"),
    ] {
        let client = world
            .over_stdio_with((), &[("CODEX_MCP_WRAPPER_TOOLS", families)])
            .await;
        let mut names: Vec<String> = client
            .list_all_tools()
            .await
            .unwrap()
            .into_iter()
            .map(|tool| tool.name.to_string())
            .collect();
        names.sort();
        assert_eq!(names, expected, "{families:?}");
        // A tool that is not listed cannot be called either.
        let reply = call(&client, hidden, json!({"prompt": "x"})).await;
        assert_eq!(reply.is_error, Some(true), "{families:?}: {hidden}");
        client.cancel().await.unwrap();
    }

    // codex-persistent-mcp's names, asked for, answer as the tools they
    // stand for.
    let client = world
        .over_stdio_with((), &[("CODEX_MCP_WRAPPER_TOOLS", "aliases")])
        .await;
    for (tool, field, arguments) in [
        (
            "codex_guard_plan",
            "critique",
            json!({"requirements": "R", "plan": "P"}),
        ),
        (
            "codex_guard_final",
            "review",
            json!({"change_summary": "S"}),
        ),
    ] {
        let answer = structured(&call(&client, tool, arguments).await);
        assert_eq!(answer[field], "scripted reply", "{tool}: {answer}");
        assert!(answer["session_id"].is_string(), "{tool}: {answer}");
    }
    client.cancel().await.unwrap();
    world.shutdown().await;
}

/// Starts a run whose command asks for approval (policy `untrusted` asks
/// before anything that is not known to be read-only) and waits until the
/// run shows it; returns the run id and the pending approval.
async fn run_until_approval(
    client: &Client,
    file: &str,
    timeout_ms: Option<u64>,
) -> (String, Value) {
    let mut arguments = json!({
        "prompt": Script::exec(format!("touch {file}"), "done").marker(),
        "permissions": "workspace-write",
        "approval_policy": "untrusted",
    });
    if let Some(timeout_ms) = timeout_ms {
        arguments["timeout_ms"] = json!(timeout_ms);
    }
    let handle = structured(&call(client, "codex_run", arguments).await);
    let run_id = handle["runId"].as_str().unwrap().to_string();
    let waited = structured(
        &call(
            client,
            "codex_wait",
            json!({"run_id": run_id, "soft_timeout_ms": 0}),
        )
        .await,
    );
    assert_eq!(waited["status"], "waiting_for_approval", "{waited}");
    let pending = waited["pendingApproval"].clone();
    assert_eq!(pending["kind"], "command");
    assert!(
        pending["summary"]
            .as_str()
            .unwrap()
            .contains(&format!("touch {file}")),
        "{pending}"
    );
    // Asked again, it says the same at once.
    let again = structured(&call(client, "codex_wait", json!({"run_id": run_id})).await);
    assert_eq!(again["pendingApproval"], pending);
    (run_id, pending)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approvals_are_the_callers_to_accept_or_decline() {
    let world = World::new().await;
    let client = world.over_stdio(None).await;
    for (decision, file, written) in [
        ("accept", "accepted.txt", true),
        ("decline", "declined.txt", false),
    ] {
        let (run_id, pending) = run_until_approval(&client, file, None).await;
        let answered = structured(
            &call(&client, "codex_approve", json!({"run_id": run_id, "approval_id": pending["approvalId"], "decision": decision}))
                .await,
        );
        assert_eq!(answered["decision"], decision);
        let done = structured(
            &call(
                &client,
                "codex_wait",
                json!({"run_id": run_id, "soft_timeout_ms": 0}),
            )
            .await,
        );
        assert_eq!(done["status"], "completed", "{done}");
        assert_eq!(
            world.project.path().join(file).exists(),
            written,
            "{decision}"
        );
        // The same approval cannot be answered twice.
        let twice = call(
            &client,
            "codex_approve",
            json!({"run_id": run_id, "approval_id": pending["approvalId"], "decision": "accept"}),
        )
        .await;
        assert_eq!(twice.is_error, Some(true));
    }
    client.cancel().await.unwrap();
    world.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unanswered_approval_is_declined_at_the_hard_timeout() {
    let world = World::new().await;
    let client = world.over_stdio(None).await;
    let (run_id, _) = run_until_approval(&client, "never.txt", Some(2000)).await;
    // While the approval waits, codex_wait says so at once; a caller that
    // never answers sees the run end at its hard timeout.
    let done = loop {
        let reply = call(
            &client,
            "codex_wait",
            json!({"run_id": run_id, "soft_timeout_ms": 0}),
        );
        let reply = structured(&reply.await);
        if reply["status"] != "waiting_for_approval" {
            break reply;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(done["status"], "timed_out", "{done}");
    assert!(!world.project.path().join("never.txt").exists());
    let run_dir = world.project.path().join(".codex/codex-mcp/runs");
    let declined = store::read_events(&run_dir, &RunId::parse(&run_id).unwrap())
        .unwrap()
        .iter()
        .any(|record| matches!(&record.event,
            store::AuditEvent::Sidecar { message, .. } if message.contains("declined at the hard timeout")));
    assert!(declined, "the audit records the decline");
    client.cancel().await.unwrap();
    world.shutdown().await;
}

/// A client that notes when each progress notification arrives.
#[derive(Clone, Default)]
struct ProgressRecorder {
    seen: std::sync::Arc<std::sync::Mutex<Vec<std::time::Instant>>>,
}

impl rmcp::ClientHandler for ProgressRecorder {
    async fn on_progress(
        &self,
        _params: rmcp::model::ProgressNotificationParam,
        _context: rmcp::service::NotificationContext<RoleClient>,
    ) {
        self.seen.lock().unwrap().push(std::time::Instant::now());
    }
}

/// Waits on a 3-second run with a progress token; returns when each
/// notification came and when the reply did.
async fn progress_of_a_wait(
    progress: Option<&str>,
) -> (Vec<std::time::Instant>, std::time::Instant) {
    let world = World::new().await;
    let extra: Vec<(&'static str, &str)> = progress
        .map(|progress| vec![("CODEX_MCP_WRAPPER_PROGRESS", progress)])
        .unwrap_or_default();
    let recorder = ProgressRecorder::default();
    let client = world.over_stdio_with(recorder.clone(), &extra).await;

    let parts = ["p1 ", "p2 ", "p3 ", "p4 ", "p5 ", "p6"];
    let run = CallToolRequestParams::new("codex_run").with_arguments(
        json!({"prompt": Script::stream(&parts, 500).marker()})
            .as_object()
            .cloned()
            .unwrap(),
    );
    let handle = client
        .call_tool(run)
        .await
        .unwrap()
        .structured_content
        .unwrap();
    let mut wait = CallToolRequestParams::new("codex_wait").with_arguments(
        json!({"run_id": handle["runId"], "soft_timeout_ms": 0})
            .as_object()
            .cloned()
            .unwrap(),
    );
    use rmcp::model::RequestParamsMeta;
    wait.set_progress_token(rmcp::model::ProgressToken(
        rmcp::model::NumberOrString::Number(7),
    ));
    let reply = client.call_tool(wait).await.unwrap();
    let replied = std::time::Instant::now();
    assert_eq!(reply.structured_content.unwrap()["status"], "completed");
    // Anything sent late would have arrived by now.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let seen = recorder.seen.lock().unwrap().clone();
    client.cancel().await.unwrap();
    world.shutdown().await;
    (seen, replied)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_is_off_by_default_and_on_never_follows_the_reply() {
    let (seen, _) = progress_of_a_wait(None).await;
    assert!(seen.is_empty(), "off by default, got {}", seen.len());

    let (seen, replied) = progress_of_a_wait(Some("1")).await;
    assert!(
        seen.len() >= 2,
        "a 3 s wait reports progress, got {}",
        seen.len()
    );
    assert!(
        seen.iter().all(|at| *at <= replied),
        "a notification came after the reply"
    );
    for pair in seen.windows(2) {
        assert!(
            pair[1] - pair[0] >= Duration::from_millis(900),
            "at most once a second"
        );
    }
}

/// A client that declares the MCP tasks extension.
async fn tasks_client(world: &World) -> RunningService<RoleClient, rmcp::model::ClientConfig> {
    let info = rmcp::model::ClientConfig::new(
        rmcp::model::ClientCapabilities::builder()
            .enable_tasks()
            .build(),
        rmcp::model::Implementation::new("tasks-test", "1"),
    );
    world.over_stdio_with(info, &[]).await
}

/// Starts `prompt` as a task; returns its task id and the run id its status
/// message names.
async fn start_task(
    client: &RunningService<RoleClient, rmcp::model::ClientConfig>,
    prompt: String,
) -> (String, String) {
    let response = client
        .call_tool_once(
            CallToolRequestParams::new("codex_run")
                .with_arguments(json!({"prompt": prompt}).as_object().cloned().unwrap()),
        )
        .await
        .unwrap();
    let rmcp::model::CallToolResponse::Task(created) = response else {
        panic!("expected a task, got {response:?}");
    };
    let message = created.task.status_message.clone().unwrap_or_default();
    let run_id = message
        .strip_prefix("run ")
        .and_then(|rest| rest.split(':').next())
        .unwrap_or_default()
        .to_string();
    assert!(
        RunId::parse(&run_id).is_ok(),
        "the run id is visible: {message}"
    );
    (created.task.task_id.clone(), run_id)
}

/// The structured result of a task that completed.
fn completed(task: rmcp::model::DetailedTask) -> Value {
    let rmcp::model::TaskPayload::Completed { result } = task.payload else {
        panic!("expected completed, got {:?}", task.payload);
    };
    let result: CallToolResult = serde_json::from_value(Value::Object(result)).unwrap();
    structured(&result)
}

async fn task_until_terminal(
    client: &RunningService<RoleClient, rmcp::model::ClientConfig>,
    task_id: &str,
) -> rmcp::model::DetailedTask {
    for _ in 0..300 {
        let info = client
            .peer()
            .get_task(rmcp::model::GetTaskParams::new(task_id.to_string()))
            .await
            .unwrap();
        if info.task.status().is_terminal() {
            return info.task;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the task never ended");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_as_a_task_reports_progress_and_ends_with_the_wait_result() {
    let world = World::new().await;
    let client = tasks_client(&world).await;
    let parts = ["t1 ", "t2 ", "t3 ", "t4 ", "t5 ", "t6"];
    let (task_id, run_id) = start_task(&client, Script::stream(&parts, 400).marker()).await;

    let info = client
        .peer()
        .get_task(rmcp::model::GetTaskParams::new(task_id.clone()))
        .await
        .unwrap();
    assert!(
        !info.task.status().is_terminal(),
        "still working: {:?}",
        info.task.status()
    );
    let task = task_until_terminal(&client, &task_id).await;
    let from_task = completed(task);
    assert_eq!(from_task["status"], "completed");
    assert_eq!(from_task["result"], parts.concat().as_str());
    // One thing: codex_wait on the run id gives the same result.
    let from_wait = structured(&call(&client, "codex_wait", json!({"run_id": run_id})).await);
    assert_eq!(from_wait["result"], from_task["result"]);
    client.cancel().await.unwrap();
    world.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_task_interrupts_the_codex_turn() {
    let world = World::new().await;
    let client = tasks_client(&world).await;
    let (task_id, run_id) = start_task(&client, Script::hang().marker()).await;
    world
        .model
        .wait_for_outcome(RequestOutcome::Streaming, Duration::from_secs(30))
        .await
        .unwrap();
    client
        .peer()
        .cancel_task(rmcp::model::CancelTaskParams::new(task_id.clone()))
        .await
        .unwrap();
    let task = task_until_terminal(&client, &task_id).await;
    assert_eq!(task.status(), rmcp::model::TaskStatus::Cancelled);
    let outcome = structured(
        &call(
            &client,
            "codex_wait",
            json!({"run_id": run_id, "soft_timeout_ms": 0}),
        )
        .await,
    );
    assert_eq!(outcome["status"], "interrupted");
    world
        .model
        .wait_for_outcome(RequestOutcome::ClientWentAway, Duration::from_secs(10))
        .await
        .unwrap();
    client.cancel().await.unwrap();
    world.shutdown().await;
}

/// Calls `tool` as a task; returns the task id.
async fn call_as_task(
    client: &RunningService<RoleClient, rmcp::model::ClientConfig>,
    tool: &str,
    arguments: Value,
) -> String {
    let response = client
        .call_tool_once(
            CallToolRequestParams::new(tool.to_string())
                .with_arguments(arguments.as_object().cloned().unwrap()),
        )
        .await
        .unwrap();
    let rmcp::model::CallToolResponse::Task(created) = response else {
        panic!("{tool}: expected a task, got {response:?}");
    };
    created.task.task_id.clone()
}

/// The run id a task's status message names, once it does.
async fn task_run_id(
    client: &RunningService<RoleClient, rmcp::model::ClientConfig>,
    task_id: &str,
) -> String {
    for _ in 0..300 {
        let info = client
            .peer()
            .get_task(rmcp::model::GetTaskParams::new(task_id.to_string()))
            .await
            .unwrap();
        let message = info.task.task.status_message.clone().unwrap_or_default();
        if let Some(run_id) = message
            .strip_prefix("run ")
            .and_then(|rest| rest.split(':').next())
        {
            return run_id.to_string();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the task never named its run");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conversations_run_as_tasks_and_a_cancel_interrupts_their_turn() {
    let world = World::new().await;
    let client = tasks_client(&world).await;

    let chat = call_as_task(
        &client,
        "codex_chat",
        json!({"prompt": Script::stream(&["ta", "sk"], 300).marker()}),
    )
    .await;
    let run_id = task_run_id(&client, &chat).await;
    assert!(RunId::parse(&run_id).is_ok(), "{run_id}");
    let task = task_until_terminal(&client, &chat).await;
    let reply = completed(task);
    assert_eq!(reply["reply"], "task");
    assert!(reply["session_id"].is_string());

    let plan = call_as_task(
        &client,
        "codex_plan",
        json!({"requirements": "R", "plan": "P"}),
    )
    .await;
    let task = task_until_terminal(&client, &plan).await;
    assert_eq!(completed(task)["critique"], "scripted reply");

    let hanging = call_as_task(
        &client,
        "codex_chat",
        json!({"prompt": Script::hang().marker()}),
    )
    .await;
    let run_id = task_run_id(&client, &hanging).await;
    world
        .model
        .wait_for_outcome(RequestOutcome::Streaming, Duration::from_secs(30))
        .await
        .unwrap();
    client
        .peer()
        .cancel_task(rmcp::model::CancelTaskParams::new(hanging.clone()))
        .await
        .unwrap();
    let task = task_until_terminal(&client, &hanging).await;
    assert_eq!(task.status(), rmcp::model::TaskStatus::Cancelled);
    let outcome = structured(
        &call(
            &client,
            "codex_wait",
            json!({"run_id": run_id, "soft_timeout_ms": 0}),
        )
        .await,
    );
    assert_eq!(outcome["status"], "interrupted");
    client.cancel().await.unwrap();
    world.shutdown().await;
}

/// Words the attach test streams, one every `ATTACH_DELAY_MS`: long enough
/// for a terminal UI to start and attach while the turn still runs.
const ATTACH_WORDS: usize = 30;
const ATTACH_DELAY_MS: u64 = 400;

/// Generous for a terminal UI that starts a Node launcher and a native binary
/// on a loaded machine.
const SCREEN_TIMEOUT: Duration = Duration::from_secs(30);

/// How long an answer key may go unheeded before it is pressed again: the
/// Codex UI takes its answer within milliseconds when it got the key.
const KEY_AGAIN_AFTER: Duration = Duration::from_secs(3);

/// A person runs `codex resume --remote` on the thread of a run the agent
/// started (shared mode: the token is in the pointer dir). They see the
/// turn's text live, and a request the run holds for the caller shows in
/// their UI too; answering it there resolves it for the caller.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_attached_with_the_codex_ui_sees_the_same_turn() {
    let world = World::new().await;
    let url = &world.url;
    let client = world
        .over_stdio_with(
            (),
            &[
                ("CODEX_MCP_WRAPPER_APP_SERVER_MODE", "shared"),
                ("CODEX_MCP_WRAPPER_APP_SERVER_URL", url),
                ("CODEX_MCP_WRAPPER_APP_SERVER_IDLE_MS", "3000"),
            ],
        )
        .await;
    let words: Vec<String> = (0..ATTACH_WORDS).map(|n| format!("w{n:02}zq ")).collect();
    let parts: Vec<&str> = words.iter().map(String::as_str).collect();
    let handle = structured(
        &call(
            &client,
            "codex_run",
            json!({"prompt": Script::stream(&parts, ATTACH_DELAY_MS).marker()}),
        )
        .await,
    );
    let run_id = handle["runId"].as_str().unwrap().to_string();
    let thread_id = handle["threadId"].as_str().unwrap().to_string();
    let token = std::fs::read_to_string(
        codex_mcp_sidecar::appserver::shared::SharedPaths::new(&world.pointer_dir).token(),
    )
    .unwrap();
    let command = format!(
        "{} resume --remote {url} --remote-auth-token-env SIDECAR_TEST_TOKEN {thread_id}",
        codex_bin().display()
    );
    let home = world.codex_home.path().display().to_string();
    let tui = Tmux::start(
        &command,
        world.project.path(),
        &[("CODEX_HOME", &home), ("SIDECAR_TEST_TOKEN", token.trim())],
        120,
        40,
    );

    // Attached mid-turn: the person sees the running turn's prompt at once
    // and its text when the message completes (Codex does not replay the
    // deltas sent before they attached).
    tui.wait_for_text("SCRIPT{\"stream\":[\"w00zq", SCREEN_TIMEOUT)
        .await;
    assert_still_running(&client, &run_id).await;
    let side_by_side =
        |words: &[String], from: usize| format!("{}{}", words[from], words[from + 1].trim());
    tui.wait_for_text(&side_by_side(&words, ATTACH_WORDS - 2), SCREEN_TIMEOUT)
        .await;
    let (done, _) = wait_to_end(&client, &run_id).await;
    assert_eq!(structured(&done)["status"], "completed");

    // Attached before a turn starts: its text arrives live, word by word.
    // (The prompt holds the words too, but quoted: the agent's text is the
    // words side by side.)
    let live: Vec<String> = (0..ATTACH_WORDS).map(|n| format!("v{n:02}zq ")).collect();
    let parts: Vec<&str> = live.iter().map(String::as_str).collect();
    let next = structured(
        &call(
            &client,
            "codex_resume",
            json!({"run_id": run_id, "prompt": Script::stream(&parts, ATTACH_DELAY_MS).marker()}),
        )
        .await,
    );
    let next_id = next["runId"].as_str().unwrap().to_string();
    tui.wait_for_text(&side_by_side(&live, 0), SCREEN_TIMEOUT)
        .await;
    assert_still_running(&client, &next_id).await;
    let end = side_by_side(&live, ATTACH_WORDS - 2);
    assert!(
        !tui.screen().contains(&end),
        "the whole text came at once: not a live view"
    );
    tui.wait_for_text(&end, SCREEN_TIMEOUT).await;
    let (done, _) = wait_to_end(&client, &next_id).await;
    assert_eq!(structured(&done)["status"], "completed");

    // A request held for the caller shows in the person's UI as well...
    let asking = structured(
        &call(
            &client,
            "codex_resume",
            json!({"run_id": run_id, "prompt": Script::exec("touch from-the-ui.txt", "done").marker(), "permissions": "workspace-write", "approval_policy": "untrusted"}),
        )
        .await,
    );
    let asking_id = asking["runId"].as_str().unwrap().to_string();
    let waited = structured(
        &call(
            &client,
            "codex_wait",
            json!({"run_id": asking_id, "soft_timeout_ms": 0}),
        )
        .await,
    );
    assert_eq!(waited["status"], "waiting_for_approval", "{waited}");
    tui.wait_for_text(
        "Would you like to run the following command?",
        SCREEN_TIMEOUT,
    )
    .await;
    assert!(
        tui.screen().contains("touch from-the-ui.txt"),
        "{}",
        tui.screen()
    );
    // ...where the person answers it.
    tui.keys(&["y"]);
    // Until the UI's answer reaches Codex, the run still shows it pending.
    // A key the UI dropped while it redrew (seen under a loaded machine) is
    // pressed again while the question is still on screen.
    let deadline = std::time::Instant::now() + SCREEN_TIMEOUT;
    let mut pressed = std::time::Instant::now();
    let done = loop {
        let (reply, _) = wait_to_end(&client, &asking_id).await;
        let value = structured(&reply);
        if value["status"] != "waiting_for_approval" {
            break value;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never resolved: {value}\n{}",
            tui.screen()
        );
        if pressed.elapsed() > KEY_AGAIN_AFTER && tui.screen().contains("touch from-the-ui.txt") {
            tui.keys(&["y"]);
            pressed = std::time::Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(done["status"], "completed", "{done}");
    assert!(world.project.path().join("from-the-ui.txt").exists());
    tui.wait_for_text("Ran touch from-the-ui.txt", SCREEN_TIMEOUT)
        .await;
    // The caller can no longer answer it, and the audit says who did.
    let late = call(
        &client,
        "codex_approve",
        json!({"run_id": asking_id, "approval_id": waited["pendingApproval"]["approvalId"], "decision": "decline"}),
    )
    .await;
    assert_eq!(late.is_error, Some(true));
    let audit = std::fs::read_to_string(
        world
            .project
            .path()
            .join(".codex/codex-mcp/runs")
            .join(format!("{asking_id}.jsonl")),
    )
    .unwrap();
    assert!(
        audit.contains("was answered in another client of the thread"),
        "{audit}"
    );
    // So does the readable summary.
    let summary = std::fs::read_to_string(
        world
            .project
            .path()
            .join(".codex/codex-mcp/runs")
            .join(format!("{asking_id}.md")),
    )
    .unwrap();
    assert!(
        summary.contains("by another client of the thread"),
        "{summary}"
    );
    client.cancel().await.unwrap();
    world.shutdown().await;
}

async fn assert_still_running(client: &Client, run_id: &str) {
    let slice = structured(
        &call(
            client,
            "codex_wait",
            json!({"run_id": run_id, "soft_timeout_ms": 1}),
        )
        .await,
    );
    assert_eq!(slice["status"], "still_running", "{slice}");
}

/// Codex keeps a loaded thread's approval policy and sandbox through
/// `thread/resume`: each resume must still get the permissions it asked for,
/// narrower or wider than the last turn's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_gets_its_own_permissions_on_a_loaded_thread() {
    let world = World::new().await;
    let client = world.over_stdio(None).await;
    let first = structured(
        &call(
            &client,
            "codex_run",
            json!({"prompt": Script::exec("touch yolo.txt", "done").marker(), "permissions": "yolo"}),
        )
        .await,
    );
    let run_id = first["runId"].as_str().unwrap().to_string();
    let (done, _) = wait_to_end(&client, &run_id).await;
    assert_eq!(structured(&done)["status"], "completed");
    assert!(world.project.path().join("yolo.txt").exists());

    // Narrower: read-only, so the write fails inside the sandbox.
    let narrow = structured(
        &call(
            &client,
            "codex_resume",
            json!({"run_id": run_id, "prompt": Script::exec("touch read-only.txt", "done").marker(), "permissions": "read-only"}),
        )
        .await,
    );
    let (done, _) = wait_to_end(&client, narrow["runId"].as_str().unwrap()).await;
    assert_eq!(structured(&done)["status"], "completed");
    let audit = world
        .project
        .path()
        .join(".codex/codex-mcp/runs")
        .join(format!("{}.jsonl", narrow["runId"].as_str().unwrap()));
    for line in std::fs::read_to_string(audit).unwrap().lines() {
        if !line.contains("delta") {
            eprintln!("AUDIT {}", &line[..line.len().min(900)]);
        }
    }
    assert!(
        !world.project.path().join("read-only.txt").exists(),
        "a read-only resume wrote a file"
    );

    // Asking: untrusted puts the command before the caller first.
    let asking = structured(
        &call(
            &client,
            "codex_resume",
            json!({"run_id": run_id, "prompt": Script::exec("touch asked.txt", "done").marker(), "permissions": "workspace-write", "approval_policy": "untrusted"}),
        )
        .await,
    );
    let waited = structured(
        &call(
            &client,
            "codex_wait",
            json!({"run_id": asking["runId"], "soft_timeout_ms": 0}),
        )
        .await,
    );
    assert_eq!(waited["status"], "waiting_for_approval", "{waited}");
    assert!(!world.project.path().join("asked.txt").exists());
    call(
        &client,
        "codex_approve",
        json!({"run_id": asking["runId"], "approval_id": waited["pendingApproval"]["approvalId"], "decision": "accept"}),
    )
    .await;
    let (done, _) = wait_to_end(&client, asking["runId"].as_str().unwrap()).await;
    assert_eq!(structured(&done)["status"], "completed");
    assert!(world.project.path().join("asked.txt").exists());

    // And its own directory: the command runs where the resume says.
    let elsewhere = tempfile::tempdir().unwrap();
    let moved = structured(
        &call(
            &client,
            "codex_resume",
            json!({"run_id": run_id, "prompt": Script::exec("touch moved.txt", "done").marker(), "permissions": "yolo", "cwd": elsewhere.path()}),
        )
        .await,
    );
    let (done, _) = wait_to_end(&client, moved["runId"].as_str().unwrap()).await;
    assert_eq!(structured(&done)["status"], "completed");
    assert!(
        elsewhere.path().join("moved.txt").exists(),
        "not run in the resume's cwd"
    );
    client.cancel().await.unwrap();
    world.shutdown().await;
}

/// `compact-prompt` is what Codex sends the model when it compacts the
/// conversation: a token limit below one turn's usage makes it compact
/// before the next turn.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_legacy_compact_prompt_is_what_compaction_sends() {
    let world = World::new().await;
    let client = world.over_stdio_with_old_names().await;
    let started = structured(
        &call(
            &client,
            "codex",
            json!({
                "prompt": "The bird is HERON.",
                "compact-prompt": "COMPACT-PROMPT-MARK: summarise the talk so far.",
                "config": {"model_auto_compact_token_limit": 1000},
            }),
        )
        .await,
    );
    let thread_id = started["threadId"].as_str().unwrap().to_string();
    assert!(
        !world
            .model
            .requests()
            .iter()
            .any(|request| request.body.to_string().contains("COMPACT-PROMPT-MARK")),
        "nothing compacted yet"
    );
    let reply = structured(
        &call(
            &client,
            "codex-reply",
            json!({"threadId": thread_id, "prompt": "And the fish?"}),
        )
        .await,
    );
    assert_eq!(reply["threadId"], thread_id.as_str());
    // The compaction request: the conversation so far, then the compact
    // prompt as the last user message.
    let compaction = world
        .model
        .requests()
        .into_iter()
        .find(|request| {
            let input = request.body["input"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            input.last().is_some_and(|last| {
                last["role"] == "user"
                    && last["content"][0]["text"]
                        == "COMPACT-PROMPT-MARK: summarise the talk so far."
            })
        })
        .expect("a request that ends with the compact prompt");
    assert!(
        compaction.body.to_string().contains("The bird is HERON."),
        "it compacts the earlier turn"
    );
    client.cancel().await.unwrap();
    world.shutdown().await;
}

/// The output Codex posted for the last tool call, as the model got it.
fn last_tool_output(model: &ScriptedModel) -> String {
    model
        .requests()
        .iter()
        .rev()
        .find_map(|request| {
            let last = request.body["input"].as_array()?.last()?.clone();
            (last["type"] == "function_call_output").then(|| match &last["output"] {
                Value::String(text) => text.clone(),
                // Content items: their texts.
                Value::Array(items) => items
                    .iter()
                    .filter_map(|item| item["text"].as_str())
                    .collect::<Vec<_>>()
                    .join("\n"),
                other => other.to_string(),
            })
        })
        .unwrap_or_default()
}

/// Beyond commands: a file change outside the workspace, a permissions
/// request and a question each wait for the caller, who accepts or
/// declines; the effect shows on disk or in what the model is told.
/// (`request_permissions` and `request_user_input` in default mode are
/// features Codex 0.169 ships off; the test turns them on. /tmp, where the
/// "outside" directory is, is writable under workspace-write unless
/// excluded.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_change_permission_and_question_requests_wait_for_the_caller() {
    let world = World::new().await;
    turn_on_request_tools(world.codex_home.path());
    let client = world.over_stdio(None).await;
    let outside = tempfile::tempdir().unwrap();
    let patch = |name: &str| {
        let path = outside.path().join(name);
        Script::exec(
            format!(
                "apply_patch <<'EOF'\n*** Begin Patch\n*** Add File: {}\n+hello\n*** End Patch\nEOF",
                path.display()
            ),
            "patched",
        )
    };
    let permissions = Script::call(
        "request_permissions",
        json!({"permissions": {"file_system": {"write": [outside.path().display().to_string()]}}, "reason": "write the report outside"}),
        "asked",
    );
    let question = Script::call(
        "request_user_input",
        json!({"questions": [{"id": "colour", "header": "Colour", "question": "Which colour?", "options": [{"label": "Red (Recommended)", "description": "warm"}, {"label": "Blue", "description": "cold"}]}]}),
        "asked",
    );
    for decision in ["accept", "decline"] {
        let cases = [
            (
                "fileChange",
                patch(&format!("{decision}.txt")),
                outside.path().display().to_string(),
            ),
            (
                "permissions",
                permissions.clone(),
                format!("write {}", outside.path().display()),
            ),
            (
                "userInput",
                question.clone(),
                "Which colour? (Red (Recommended) | Blue)".to_string(),
            ),
        ];
        for (kind, script, summary) in cases {
            let handle = structured(
                &call(
                    &client,
                    "codex_run",
                    json!({"prompt": script.marker(), "permissions": "workspace-write", "approval_policy": "on-request"}),
                )
                .await,
            );
            let run_id = handle["runId"].as_str().unwrap().to_string();
            let waited = structured(
                &call(
                    &client,
                    "codex_wait",
                    json!({"run_id": run_id, "soft_timeout_ms": 0}),
                )
                .await,
            );
            assert_eq!(waited["status"], "waiting_for_approval", "{kind}: {waited}");
            let pending = &waited["pendingApproval"];
            assert_eq!(pending["kind"], kind, "{waited}");
            assert!(
                pending["summary"].as_str().unwrap().contains(&summary),
                "{kind}: {pending}"
            );
            let answered = structured(
                &call(
                    &client,
                    "codex_approve",
                    json!({"run_id": run_id, "approval_id": pending["approvalId"], "decision": decision}),
                )
                .await,
            );
            assert_eq!(answered["decision"], decision);
            let (done, _) = wait_to_end(&client, &run_id).await;
            assert_eq!(
                structured(&done)["status"],
                "completed",
                "{kind} {decision}"
            );
            let told = last_tool_output(&world.model);
            let accepted = decision == "accept";
            match kind {
                "fileChange" => assert_eq!(
                    outside.path().join(format!("{decision}.txt")).exists(),
                    accepted,
                    "{decision}: {told}"
                ),
                "permissions" => assert_eq!(
                    told.contains(&outside.path().display().to_string()),
                    accepted,
                    "{decision}: {told}"
                ),
                _ => assert_eq!(
                    told.contains("Red (Recommended)"),
                    accepted,
                    "{decision}: {told}"
                ),
            }
        }
    }
    client.cancel().await.unwrap();
    world.shutdown().await;
}

/// A request's pending approval, after checking its kind and summary.
async fn pending_of(client: &Client, run_id: &str, kind: &str, summary: &str) -> Value {
    let waited = structured(
        &call(
            client,
            "codex_wait",
            json!({"run_id": run_id, "soft_timeout_ms": 0}),
        )
        .await,
    );
    assert_eq!(waited["status"], "waiting_for_approval", "{waited}");
    let pending = waited["pendingApproval"].clone();
    assert_eq!(pending["kind"], kind, "{pending}");
    assert!(
        pending["summary"].as_str().unwrap().contains(summary),
        "{pending}"
    );
    pending
}

async fn approve(client: &Client, run_id: &str, pending: &Value, decision: &str) {
    let answered = structured(
        &call(
            client,
            "codex_approve",
            json!({"run_id": run_id, "approval_id": pending["approvalId"], "decision": decision}),
        )
        .await,
    );
    assert_eq!(answered["decision"], decision);
}

/// MCP elicitations reach the caller: Codex's own "may this MCP tool run?"
/// and the MCP server's question during the call. The server (a few lines
/// of Python in tests/it/support) tells the model what it got back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_elicitations_wait_for_the_caller() {
    let world = World::new().await;
    add_eliciting_mcp_server(world.codex_home.path());
    let client = world.over_stdio(None).await;
    // (may the tool run, the server's question) -> what the model is told
    let cases = [
        (
            "accept",
            Some("accept"),
            Some(r#"ELICITED {"action": "accept""#),
        ),
        (
            "accept",
            Some("decline"),
            Some(r#"ELICITED {"action": "decline""#),
        ),
        ("decline", None, None),
    ];
    for (run_tool, answer, told) in cases {
        let handle = structured(
            &call(
                &client,
                "codex_run",
                json!({"prompt": Script::mcp_call("eliciting", "ask", json!({}), "asked").marker(), "permissions": "workspace-write", "approval_policy": "on-request"}),
            )
            .await,
        );
        let run_id = handle["runId"].as_str().unwrap().to_string();
        let may_run = pending_of(&client, &run_id, "mcpElicitation", "run tool \"ask\"").await;
        approve(&client, &run_id, &may_run, run_tool).await;
        if let Some(answer) = answer {
            let question =
                pending_of(&client, &run_id, "mcpElicitation", "Which deploy target?").await;
            approve(&client, &run_id, &question, answer).await;
        }
        let (done, _) = wait_to_end(&client, &run_id).await;
        assert_eq!(structured(&done)["status"], "completed");
        let output = last_tool_output(&world.model);
        match told {
            Some(told) => assert!(output.contains(told), "{output}"),
            None => assert!(!output.contains("ELICITED"), "the tool ran: {output}"),
        }
    }
    client.cancel().await.unwrap();
    world.shutdown().await;
}

/// `initialize` and `tools/list` do not wait for `codex --version` (a
/// Node.js process): the server answers while the version check is still
/// held, and the tools work once it is done.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_answers_before_codex_is_found() {
    let world = World::new().await;
    let gate = tempfile::tempdir().unwrap();
    let (asked, go) = (gate.path().join("asked"), gate.path().join("go"));
    let held = gate.path().join("held-codex");
    std::fs::write(
        &held,
        format!(
            "#!/bin/sh\ntouch '{}'\nwhile [ ! -e '{}' ]; do sleep 0.05; done\nexec '{}' \"$@\"\n",
            asked.display(),
            go.display(),
            codex_bin().display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&held, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();

    let held_path = held.display().to_string();
    let client = tokio::time::timeout(
        EVENT_TIMEOUT,
        world.over_stdio_with((), &[("CODEX_BIN", &held_path)]),
    )
    .await
    .expect("initialize answers while Codex is being looked for");
    // The version check is under way, and held.
    let deadline = std::time::Instant::now() + EVENT_TIMEOUT;
    while !asked.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "codex --version never ran"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let tools = tokio::time::timeout(EVENT_TIMEOUT, client.list_all_tools())
        .await
        .expect("tools/list answers while Codex is being looked for")
        .unwrap();
    assert_eq!(tools.len(), TOOLS.len());
    assert!(!go.exists());

    std::fs::write(&go, "").unwrap();
    let check = structured(&call(&client, "codex_wrapper_check", json!({})).await);
    assert_eq!(
        check["codexVersion"],
        crate::common::codex_version().to_string(),
        "{check}"
    );
    let handle = structured(
        &call(
            &client,
            "codex_run",
            json!({"prompt": Script::text("found").marker(), "async": false}),
        )
        .await,
    );
    assert_eq!(handle["result"], "found", "{handle}");
    client.cancel().await.unwrap();
    world.shutdown().await;
}
