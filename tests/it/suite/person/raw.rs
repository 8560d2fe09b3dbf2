//! The same through a raw MCP client, which declares exactly the
//! capabilities a test needs and answers (or fails) the sidecar's requests
//! by hand: a task in `input_required`, a client that cannot show forms,
//! and the setting.

use codex_mcp_sidecar::store::{self, AuditEvent, RunId};
use codex_mcp_sidecar_test_support::scripted_model::Script;
use serde_json::json;

use super::World;
use crate::common::raw_mcp::RawMcp;

/// The sidecar in the project of `world`, with a private app-server and
/// `CODEX_MCP_WRAPPER_APPROVALS` set to `approvals` when given.
fn sidecar(world: &World, approvals: Option<&str>) -> tokio::process::Command {
    let mut command = world.command(env!("CARGO_BIN_EXE_codex-mcp-sidecar"));
    command
        .env("CODEX_MCP_WRAPPER_APP_SERVER_MODE", "private")
        .current_dir(world.project.path());
    if let Some(approvals) = approvals {
        command.env("CODEX_MCP_WRAPPER_APPROVALS", approvals);
    }
    command
}

/// A raw client with the tasks extension and the elicitation capability:
/// while the person is asked, `tasks/get` shows `input_required` with the
/// same form. Declined through `tasks/update`, the direct form is withdrawn
/// (`notifications/cancelled`); accepted directly, the task's input request
/// is withdrawn and the task works on while the command runs; either way
/// the task then completes with the run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_shows_input_required_while_the_person_is_asked() {
    let world = World(codex_mcp_sidecar_test_support::world::SidecarWorld::new().await);
    let command = sidecar(&world, None);
    let capabilities = json!({
        "elicitation": {"form": {}},
        "extensions": {"io.modelcontextprotocol/tasks": {}},
    });
    let mut client = RawMcp::spawn_with(command, capabilities).await;
    // (answered through the task or directly, the decision, the command,
    // the file it writes). The accepted command sleeps first, so the task
    // is seen working again while the run goes on.
    let cases = [
        (true, "decline", "touch via-task.txt", "via-task.txt"),
        (false, "accept", "sleep 2 && touch direct.txt", "direct.txt"),
    ];
    for (through_task, decision, shell, file) in cases {
        let since = client.transcript.len();
        let created = client
            .call(
                "codex_run",
                json!({"prompt": Script::exec(shell, "done").marker(),
                       "permissions": "workspace-write", "approval_policy": "untrusted"}),
            )
            .await;
        let task_id = created["result"]["taskId"]
            .as_str()
            .unwrap_or_else(|| panic!("a task: {created}"))
            .to_string();
        let elicitation = client.server_message("elicitation/create", since).await;
        assert!(
            elicitation["params"]["message"]
                .as_str()
                .unwrap()
                .contains(shell),
            "{elicitation}"
        );
        // The same form waits in the task.
        let task = loop {
            let got = client
                .request("tasks/get", json!({"taskId": task_id}))
                .await;
            if got["result"]["status"] == "input_required" {
                break got["result"].clone();
            }
            assert_eq!(got["result"]["status"], "working", "{got}");
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        };
        let requests = task["inputRequests"].as_object().unwrap();
        assert_eq!(requests.len(), 1, "{task}");
        let (key, input) = requests.iter().next().unwrap();
        assert_eq!(input["method"], "elicitation/create", "{input}");
        assert_eq!(
            input["params"]["message"], elicitation["params"]["message"],
            "the same form"
        );
        let since = client.transcript.len();
        if through_task {
            let updated = client
                .request(
                    "tasks/update",
                    json!({"taskId": task_id, "inputResponses": {
                        key: {"action": "accept", "content": {"decision": decision}}}}),
                )
                .await;
            assert!(updated["result"].is_object(), "{updated}");
            let cancelled = client
                .server_message("notifications/cancelled", since)
                .await;
            assert_eq!(
                cancelled["params"]["requestId"], elicitation["id"],
                "the direct form is withdrawn"
            );
        } else {
            let answer = json!({"jsonrpc": "2.0", "id": elicitation["id"],
                "result": {"action": "accept", "content": {"decision": decision}}});
            client.send(answer.to_string().as_bytes()).await;
            // The task's input request is withdrawn while the command runs.
            let after = loop {
                let got = client
                    .request("tasks/get", json!({"taskId": task_id}))
                    .await;
                if got["result"]["status"] != "input_required" {
                    break got["result"].clone();
                }
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            };
            assert_eq!(after["status"], "working", "{after}");
            assert!(after.get("inputRequests").is_none(), "{after}");
        }
        let done = loop {
            let got = client
                .request("tasks/get", json!({"taskId": task_id}))
                .await;
            let status = got["result"]["status"].clone();
            assert_ne!(
                status, "input_required",
                "answered, no longer waiting: {got}"
            );
            if status != "working" {
                break got["result"].clone();
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        };
        assert_eq!(done["status"], "completed", "{done}");
        assert_eq!(
            done["result"]["structuredContent"]["status"], "completed",
            "{done}"
        );
        let written = decision == "accept";
        assert_eq!(world.project.path().join(file).exists(), written, "{file}");
    }
    client.finish().await;
    world.0.shutdown().await;
}

/// `CODEX_MCP_WRAPPER_APPROVALS=person` with a client that cannot show the
/// form (it answers `elicitation/create` with an error, as a headless one
/// may): the request is handed back, and codex_approve answers it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_cannot_show_the_form_hands_the_request_back() {
    let world = World(codex_mcp_sidecar_test_support::world::SidecarWorld::new().await);
    let command = sidecar(&world, Some("person"));
    let mut client = RawMcp::spawn(command).await;
    let started = client
        .call_ok(
            "codex_run",
            json!({"prompt": Script::exec("touch by-the-caller.txt", "done").marker(),
                   "permissions": "workspace-write", "approval_policy": "untrusted"}),
        )
        .await;
    let run_id = started["runId"].as_str().unwrap().to_string();
    let elicitation = client.server_message("elicitation/create", 0).await;
    let refused = json!({"jsonrpc": "2.0", "id": elicitation["id"],
        "error": {"code": -32601, "message": "Method not found"}});
    client.send(refused.to_string().as_bytes()).await;
    let pending = loop {
        let waited = client
            .call_ok(
                "codex_wait",
                json!({"run_id": run_id, "soft_timeout_ms": 300}),
            )
            .await;
        assert_eq!(waited["status"], "waiting_for_approval", "{waited}");
        if waited["pendingApproval"]["askedPerson"] == false {
            break waited["pendingApproval"].clone();
        }
    };
    client
        .call_ok(
            "codex_approve",
            json!({"run_id": run_id, "approval_id": pending["approvalId"], "decision": "accept"}),
        )
        .await;
    let done = client
        .call_ok(
            "codex_wait",
            json!({"run_id": run_id, "soft_timeout_ms": 0}),
        )
        .await;
    assert_eq!(done["status"], "completed", "{done}");
    assert!(world.project.path().join("by-the-caller.txt").exists());
    let events = store::read_events(&world.run_dir(), &RunId::parse(&run_id).unwrap()).unwrap();
    let handed_back = events.iter().any(|record| {
        matches!(&record.event, AuditEvent::Sidecar { message, .. }
            if message.contains("the caller's to answer now") && message.contains("Method not found"))
    });
    assert!(handed_back, "the audit says why it was handed back");
    client.finish().await;
    world.0.shutdown().await;
}

/// A value of CODEX_MCP_WRAPPER_APPROVALS that is not one is a problem
/// codex_wrapper_check names; the server still serves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_approvals_setting_is_reported_by_the_check() {
    let world = World(codex_mcp_sidecar_test_support::world::SidecarWorld::new().await);
    let command = sidecar(&world, Some("nobody"));
    let mut client = RawMcp::spawn(command).await;
    let check = client.call_ok("codex_wrapper_check", json!({})).await;
    assert_eq!(check["ok"], false, "{check}");
    let problems = check["problems"].to_string();
    assert!(
        problems.contains("CODEX_MCP_WRAPPER_APPROVALS") && problems.contains("nobody"),
        "{problems}"
    );
    client.finish().await;
    world.0.shutdown().await;
}
