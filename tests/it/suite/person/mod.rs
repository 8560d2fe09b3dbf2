//! Codex's approvals reach the person at the MCP client: the official MCP
//! Python SDK as the client (its elicitation callback stands in for the
//! person), on the real Codex and the scripted model. [`raw`]: the same
//! through a raw client (tasks, a client without forms, the setting).

use std::path::PathBuf;
use std::process::Stdio;

use codex_mcp_sidecar::store::{self, AuditEvent, RunId};
use codex_mcp_sidecar_test_support::scripted_model::Script;
use serde_json::Value;

use crate::common::EVENT_TIMEOUT;
use crate::common::codex_setup::{add_eliciting_mcp_server, turn_on_request_tools};

mod raw;

suite_world!();

/// The pinned Python SDK, installed by `make setup`.
fn venv_python() -> PathBuf {
    let python = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/mcp-clients/python/.venv/bin/python"
    ));
    assert!(
        python.exists(),
        "{} is missing: run `make setup`, which installs the MCP Python SDK pinned in mcp-clients/python/requirements.txt",
        python.display()
    );
    python
}

/// Runs the Python SDK client against the built sidecar in `world` and
/// returns the lines it printed. Its process group (the sidecar and its
/// app-server included) is killed at the end, whatever happened.
async fn python_client(world: &World, scenario: &str, prompt: &str, policy: &str) -> Vec<Value> {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/it/support/person_client.py"
    );
    let mut command = world.command(venv_python().to_str().unwrap());
    command
        .arg(script)
        .arg(env!("CARGO_BIN_EXE_codex-mcp-sidecar"))
        .arg(scenario)
        .arg(prompt)
        .arg(policy)
        .env("CODEX_MCP_WRAPPER_APP_SERVER_MODE", "private")
        .current_dir(world.project.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let child = command.spawn().unwrap();
    let group = nix::unistd::Pid::from_raw(child.id().unwrap() as i32);
    let output = tokio::time::timeout(EVENT_TIMEOUT * 4, child.wait_with_output()).await;
    let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
    let output = output.expect("the Python client finishes in time").unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{scenario}: {}\nstdout:\n{stdout}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}")))
        .collect()
}

fn events<'a>(lines: &'a [Value], event: &str) -> Vec<&'a Value> {
    lines.iter().filter(|line| line["event"] == event).collect()
}

/// The run id of the one run the client started.
fn run_id(lines: &[Value]) -> RunId {
    let ended = events(lines, "ended");
    RunId::parse(ended[0]["reply"]["runId"].as_str().unwrap()).unwrap()
}

/// Our responses to Codex in the run's audit, with who decided each.
fn responses(world: &World, run_id: &RunId) -> Vec<(Value, Option<String>)> {
    store::read_events(&world.run_dir(), run_id)
        .unwrap()
        .into_iter()
        .filter_map(|record| match record.event {
            AuditEvent::Response {
                result,
                answered_by,
                ..
            } => Some((
                result.unwrap_or(Value::Null),
                answered_by.map(|by| format!("{by:?}")),
            )),
            _ => None,
        })
        .collect()
}

/// The run's readable summary.
fn summary(world: &World, run_id: &RunId) -> String {
    std::fs::read_to_string(world.run_dir().join(format!("{run_id}.md"))).unwrap()
}

/// Accept and decline in the form go to Codex at once: the command ran, or
/// did not; the form named the command; the audit says the person decided.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_person_accepts_or_declines_a_command_in_the_form() {
    for (scenario, file, ran) in [
        ("accept", "accepted.txt", true),
        ("decline", "declined.txt", false),
    ] {
        let world = World(codex_mcp_sidecar_test_support::world::SidecarWorld::new().await);
        let command = format!("touch {file}");
        let prompt = Script::exec(command.clone(), "done").marker();
        let lines = python_client(&world, scenario, &prompt, "untrusted").await;
        let elicited = events(&lines, "elicited");
        assert_eq!(elicited.len(), 1, "{scenario}: one form: {lines:?}");
        let message = elicited[0]["message"].as_str().unwrap();
        assert!(message.contains(&command), "{message}");
        assert!(
            message.contains(&world.project.path().display().to_string()),
            "the form says where: {message}"
        );
        let offered = &elicited[0]["schema"]["properties"]["decision"]["enum"];
        assert!(
            offered.as_array().unwrap().iter().any(|o| o == "decline"),
            "{offered}"
        );
        let ended = events(&lines, "ended");
        assert_eq!(ended[0]["reply"]["status"], "completed", "{lines:?}");
        assert_eq!(world.project.path().join(file).exists(), ran, "{scenario}");
        assert!(
            events(&lines, "approve").is_empty(),
            "the caller never answered: {lines:?}"
        );
        let responses = responses(&world, &run_id(&lines));
        assert_eq!(responses.len(), 1, "{responses:?}");
        assert_eq!(responses[0].0["decision"], scenario);
        assert_eq!(responses[0].1.as_deref(), Some("Person"));
        let summary = summary(&world, &run_id(&lines));
        assert!(
            summary.contains(&format!("**{scenario}**, by the person in the MCP client")),
            "{summary}"
        );
        world.0.shutdown().await;
    }
}

/// The person is asked, so the caller's codex_approve is refused; codex_wait
/// says the person was asked. Dismissing the form hands the request back:
/// codex_approve then works, and Codex gets exactly one answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dismissed_form_hands_the_request_back_to_the_caller() {
    let world = World(codex_mcp_sidecar_test_support::world::SidecarWorld::new().await);
    let prompt = Script::exec("touch handed-back.txt", "done").marker();
    let lines = python_client(&world, "refuse-then-cancel", &prompt, "untrusted").await;
    let waits = events(&lines, "wait");
    let asked = waits
        .iter()
        .find(|wait| wait["reply"]["pendingApproval"]["askedPerson"] == true)
        .unwrap_or_else(|| panic!("a wait showed the person asked: {lines:?}"));
    assert!(
        asked["reply"]["note"].as_str().unwrap().contains("person"),
        "{asked}"
    );
    let approves = events(&lines, "approve");
    assert_eq!(approves.len(), 2, "{lines:?}");
    assert_eq!(approves[0]["error"], true, "refused while asked: {lines:?}");
    let refusal = approves[0]["text"].as_str().unwrap();
    assert!(
        refusal.contains("must not answer in their place"),
        "{refusal}"
    );
    assert_eq!(approves[1]["error"], false, "accepted once handed back");
    assert_eq!(approves[1]["reply"]["decision"], "accept");
    assert!(
        waits
            .iter()
            .any(|wait| wait["reply"]["pendingApproval"]["askedPerson"] == false),
        "after the cancel the approval is the caller's: {lines:?}"
    );
    assert_eq!(events(&lines, "ended")[0]["reply"]["status"], "completed");
    assert!(world.project.path().join("handed-back.txt").exists());
    let responses = responses(&world, &run_id(&lines));
    assert_eq!(
        responses,
        vec![(
            serde_json::json!({"decision": "accept"}),
            Some("Caller".to_string())
        )],
        "exactly one answer reached Codex"
    );
    let summary = summary(&world, &run_id(&lines));
    assert!(
        summary.contains("**accept**, by the caller (codex_approve)"),
        "{summary}"
    );
    world.0.shutdown().await;
}

/// The output Codex posted for the last tool call, as the model got it.
fn last_tool_output(world: &World) -> String {
    world
        .model
        .requests()
        .iter()
        .rev()
        .find_map(|request| {
            let last = request.body["input"].as_array()?.last()?.clone();
            (last["type"] == "function_call_output").then(|| last["output"].to_string())
        })
        .unwrap_or_default()
}

/// A file change outside the workspace, a question with options and a
/// permissions request, each answered in the form: the file is written; the
/// option the person chose (not the first, which codex_approve would take)
/// reaches the model; the permission is granted, and the form named it.
/// (`default_mode_request_user_input` ships off in Codex 0.169; /tmp, where
/// the outside directory is, is excluded from the writable roots.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_change_and_a_question_are_answered_in_the_form() {
    let world = World(codex_mcp_sidecar_test_support::world::SidecarWorld::new().await);
    turn_on_request_tools(world.codex_home.path());
    let outside = tempfile::tempdir().unwrap();
    let target = outside.path().join("report.txt");
    let patch = Script::exec(
        format!(
            "apply_patch <<'EOF'\n*** Begin Patch\n*** Add File: {}\n+hello\n*** End Patch\nEOF",
            target.display()
        ),
        "patched",
    );
    let lines = python_client(&world, "accept", &patch.marker(), "on-request").await;
    let elicited = events(&lines, "elicited");
    assert_eq!(elicited.len(), 1, "{lines:?}");
    let message = elicited[0]["message"].as_str().unwrap();
    assert!(
        message.contains("change files") && message.contains(&outside.path().display().to_string()),
        "the form names the change: {message}"
    );
    assert_eq!(events(&lines, "ended")[0]["reply"]["status"], "completed");
    assert!(target.exists(), "accepted in the form, the file is written");
    assert_eq!(
        responses(&world, &run_id(&lines))[0].1.as_deref(),
        Some("Person")
    );

    let question = Script::call(
        "request_user_input",
        serde_json::json!({"questions": [{"id": "colour", "header": "Colour", "question": "Which colour?", "options": [{"label": "Red (Recommended)", "description": "warm"}, {"label": "Blue", "description": "cold"}]}]}),
        "asked",
    );
    let lines = python_client(&world, "choose:Blue", &question.marker(), "on-request").await;
    let elicited = events(&lines, "elicited");
    assert_eq!(elicited.len(), 1, "{lines:?}");
    assert!(
        elicited[0]["message"]
            .as_str()
            .unwrap()
            .contains("Which colour?")
    );
    assert_eq!(
        elicited[0]["schema"]["properties"]["colour"]["enum"],
        serde_json::json!(["Red (Recommended)", "Blue"]),
        "the form carries the options"
    );
    assert_eq!(events(&lines, "ended")[0]["reply"]["status"], "completed");
    let told = last_tool_output(&world);
    assert!(
        told.contains("Blue") && !told.contains("Red"),
        "the person's choice reaches the model: {told}"
    );

    let permissions = Script::call(
        "request_permissions",
        serde_json::json!({"permissions": {"file_system": {"write": [outside.path().display().to_string()]}}, "reason": "write the report outside"}),
        "asked",
    );
    let lines = python_client(&world, "accept", &permissions.marker(), "on-request").await;
    let elicited = events(&lines, "elicited");
    assert_eq!(elicited.len(), 1, "{lines:?}");
    let message = elicited[0]["message"].as_str().unwrap();
    assert!(
        message.contains("write the report outside")
            && message.contains(&outside.path().display().to_string()),
        "the form names the permission and its reason: {message}"
    );
    assert_eq!(events(&lines, "ended")[0]["reply"]["status"], "completed");
    let answered = responses(&world, &run_id(&lines));
    assert_eq!(answered.len(), 1, "{answered:?}");
    assert_eq!(answered[0].1.as_deref(), Some("Person"));
    assert!(
        answered[0].0["permissions"]["fileSystem"]["write"]
            .to_string()
            .contains(&outside.path().display().to_string()),
        "the permission is granted as asked: {answered:?}"
    );
    world.0.shutdown().await;
}

/// Nobody answers the form: the run's hard timeout declines the request, as
/// it does for the caller, and the form is withdrawn from the client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unanswered_form_is_declined_at_the_hard_timeout_and_withdrawn() {
    let world = World(codex_mcp_sidecar_test_support::world::SidecarWorld::new().await);
    let prompt = Script::exec("touch never.txt", "done").marker();
    let lines = python_client(&world, "ignore", &prompt, "untrusted").await;
    assert_eq!(events(&lines, "elicited").len(), 1, "{lines:?}");
    let withdrawn = events(&lines, "withdrawn");
    assert_eq!(withdrawn.len(), 1, "the form was withdrawn: {lines:?}");
    assert_eq!(
        withdrawn[0]["after_end"], false,
        "by the sidecar, before the run's end reached the client: {lines:?}"
    );
    assert_eq!(events(&lines, "ended")[0]["reply"]["status"], "timed_out");
    assert!(!world.project.path().join("never.txt").exists());
    let responses = responses(&world, &run_id(&lines));
    assert_eq!(
        responses,
        vec![(
            serde_json::json!({"decision": "decline"}),
            Some("Sidecar".to_string())
        )]
    );
    world.0.shutdown().await;
}

/// Elicitations of Codex's own MCP servers reach the person with their own
/// schema: Codex's "may the tool run?" and the server's question during the
/// call; what the person filled in goes back to the server as it is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mcp_servers_elicitation_passes_through_to_the_person() {
    let world = World(codex_mcp_sidecar_test_support::world::SidecarWorld::new().await);
    add_eliciting_mcp_server(world.codex_home.path());
    let prompt = Script::mcp_call("eliciting", "ask", serde_json::json!({}), "asked").marker();
    let lines = python_client(&world, "fill:prod", &prompt, "on-request").await;
    let elicited = events(&lines, "elicited");
    assert_eq!(
        elicited.len(),
        2,
        "may it run, then the question: {lines:?}"
    );
    assert!(
        elicited[0]["message"].as_str().unwrap().contains("ask"),
        "{}",
        elicited[0]
    );
    assert!(
        elicited[1]["message"]
            .as_str()
            .unwrap()
            .contains("Which deploy target?"),
        "{}",
        elicited[1]
    );
    assert_eq!(
        elicited[1]["schema"]["properties"]["target"]["type"], "string",
        "the server's own schema: {}",
        elicited[1]
    );
    assert_eq!(events(&lines, "ended")[0]["reply"]["status"], "completed");
    let told = last_tool_output(&world);
    assert!(
        told.contains(r#"ELICITED {\"action\": \"accept\", \"content\": {\"target\": \"prod\"}"#),
        "the person's content reached the server: {told}"
    );
    world.0.shutdown().await;
}
