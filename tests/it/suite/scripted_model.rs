//! The scripted model against the real Codex CLI (`codex exec --json`), and,
//! for the answers Codex cannot show us directly, against a plain HTTP client.

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use codex_mcp_sidecar_test_support::scripted_model::{RequestOutcome, Script, ScriptedModel};
use serde_json::Value;
use tempfile::TempDir;
use tokio::process::Command;

/// Hard cap on one `codex exec` run. A scripted run takes a second or two;
/// this only trips when something is stuck, and fails the test instead of
/// hanging it.
const CODEX_RUN_TIMEOUT: Duration = Duration::from_secs(90);

/// Longest a plain-HTTP test waits for one step (a response head, a chunk, an
/// outcome). Loopback answers in milliseconds; the never-ending answer notices
/// a vanished client at its next keep-alive comment, about a second later.
const HTTP_STEP_TIMEOUT: Duration = Duration::from_secs(10);

/// A finished `codex exec --json` run: its exit, the JSONL events, stderr.
struct ExecRun {
    output: Output,
    events: Vec<Value>,
}

impl ExecRun {
    fn agent_messages(&self) -> Vec<String> {
        self.events
            .iter()
            .filter(|event| event["type"] == "item.completed")
            .filter(|event| event["item"]["type"] == "agent_message")
            .filter_map(|event| event["item"]["text"].as_str().map(str::to_owned))
            .collect()
    }

    fn last_agent_message(&self) -> String {
        self.agent_messages()
            .pop()
            .unwrap_or_else(|| panic!("no agent message; {}", self.describe()))
    }

    fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }

    fn describe(&self) -> String {
        format!(
            "exit {:?}\nevents: {:#?}\nstderr: {}",
            self.output.status.code(),
            self.events,
            self.stderr()
        )
    }
}

/// One model plus a throwaway `CODEX_HOME` and work directory.
struct ExecRig {
    model: ScriptedModel,
    codex_home: TempDir,
    work: TempDir,
}

impl ExecRig {
    async fn start() -> ExecRig {
        let model = ScriptedModel::start().await.expect("scripted model starts");
        let codex_home = tempfile::tempdir().expect("codex home");
        model
            .write_codex_home(codex_home.path())
            .expect("config.toml");
        let work = tempfile::tempdir().expect("work dir");
        ExecRig {
            model,
            codex_home,
            work,
        }
    }

    async fn exec(&self, extra_args: &[&str], prompt: &str) -> ExecRun {
        run_codex_exec(self.codex_home.path(), self.work.path(), extra_args, prompt).await
    }
}

async fn run_codex_exec(
    codex_home: &Path,
    cwd: &Path,
    extra_args: &[&str],
    prompt: &str,
) -> ExecRun {
    let mut command = Command::new(crate::common::codex_bin());
    command
        .args(["exec", "--skip-git-repo-check", "--json"])
        .args(extra_args)
        .arg(prompt)
        .env("CODEX_HOME", codex_home)
        .current_dir(cwd)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let output = tokio::time::timeout(CODEX_RUN_TIMEOUT, command.output())
        .await
        .expect("codex exec finishes within CODEX_RUN_TIMEOUT")
        .expect("codex exec runs");
    let events = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect();
    ExecRun { output, events }
}

fn responses_requests(
    model: &ScriptedModel,
) -> Vec<codex_mcp_sidecar_test_support::scripted_model::RecordedRequest> {
    model
        .requests()
        .into_iter()
        .filter(|request| request.method == "POST" && request.path == "/v1/responses")
        .collect()
}

fn turn_usage(run: &ExecRun) -> Value {
    run.events
        .iter()
        .find(|event| event["type"] == "turn.completed")
        .map(|event| event["usage"].clone())
        .unwrap_or_else(|| panic!("no turn.completed; {}", run.describe()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codex_shows_the_scripted_text_and_its_usage() {
    let rig = ExecRig::start().await;
    // Two runs at once on one server, each answered by its own marker.
    let first = "The first scripted answer.";
    let second = "And a second, different one.";
    let other_work = tempfile::tempdir().expect("second work dir");
    let prompt_a = format!("Say something. {}", Script::text(first).marker());
    let prompt_b = format!("Say more. {}", Script::text(second).marker());
    let (run_a, run_b) = tokio::join!(
        rig.exec(&[], &prompt_a),
        run_codex_exec(rig.codex_home.path(), other_work.path(), &[], &prompt_b),
    );
    assert!(run_a.output.status.success(), "{}", run_a.describe());
    assert!(run_b.output.status.success(), "{}", run_b.describe());
    assert_eq!(run_a.last_agent_message(), first);
    assert_eq!(run_b.last_agent_message(), second);

    let usage = turn_usage(&run_a);
    let expected_output = (first.chars().count() as u64).div_ceil(4);
    assert_eq!(
        usage["output_tokens"].as_u64(),
        Some(expected_output),
        "{usage}"
    );
    assert!(usage["input_tokens"].as_u64().unwrap_or(0) > 0, "{usage}");

    let requests = responses_requests(&rig.model);
    assert_eq!(requests.len(), 2, "{requests:#?}");
    assert!(
        requests
            .iter()
            .all(|request| request.outcome == RequestOutcome::Completed)
    );
    let mut scripts: Vec<_> = requests.iter().filter_map(|r| r.script.clone()).collect();
    scripts.sort_by_key(|script| script.marker());
    let mut expected = vec![Script::text(first), Script::text(second)];
    expected.sort_by_key(|script| script.marker());
    assert_eq!(scripts, expected);
    rig.model.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codex_assembles_streamed_deltas_sent_over_time() {
    // Long enough that four of them are clearly measurable over Codex's own
    // start-up noise, short enough to keep the test quick.
    const DELAY_MS: u64 = 200;
    let rig = ExecRig::start().await;
    let parts = ["Streamed ", "in ", "four ", "parts."];
    let started = std::time::Instant::now();
    let run = rig
        .exec(
            &[],
            &format!("Stream it. {}", Script::stream(&parts, DELAY_MS).marker()),
        )
        .await;
    assert!(run.output.status.success(), "{}", run.describe());
    assert_eq!(run.last_agent_message(), parts.concat());
    // The delays really happened, so a long stream keeps a turn running.
    assert!(
        started.elapsed() >= Duration::from_millis(DELAY_MS * parts.len() as u64),
        "finished after only {:?}",
        started.elapsed()
    );
    let requests = responses_requests(&rig.model);
    assert_eq!(requests.len(), 1, "{requests:#?}");
    assert_eq!(requests[0].outcome, RequestOutcome::Completed);
    rig.model.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codex_runs_the_scripted_command_then_gives_the_final_answer() {
    let rig = ExecRig::start().await;
    let script = Script::exec("echo scripted > made.txt", "The file is written.");
    // The default sandbox is read-only; the command must be able to write.
    let run = rig
        .exec(
            &["-s", "workspace-write"],
            &format!("Write a file. {}", script.marker()),
        )
        .await;
    assert!(run.output.status.success(), "{}", run.describe());
    assert_eq!(run.last_agent_message(), "The file is written.");
    let written = std::fs::read_to_string(rig.work.path().join("made.txt"))
        .unwrap_or_else(|error| panic!("made.txt: {error}; {}", run.describe()));
    assert_eq!(written.trim_end(), "scripted");
    assert!(
        run.events
            .iter()
            .any(|event| event["item"]["type"] == "command_execution"
                && event["item"]["exit_code"] == 0),
        "{}",
        run.describe()
    );

    let requests = responses_requests(&rig.model);
    assert_eq!(requests.len(), 2, "{requests:#?}");
    let follow_up = requests[1].body["input"]
        .as_array()
        .and_then(|items| items.last())
        .cloned()
        .unwrap_or_default();
    assert_eq!(follow_up["type"], "function_call_output", "{follow_up}");
    assert_eq!(follow_up["call_id"], "call_resp_0", "{follow_up}");
    assert_eq!(requests[1].script, Some(script));
    rig.model.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codex_reports_a_scripted_http_500_as_a_failure() {
    let rig = ExecRig::start().await;
    let run = rig
        .exec(&[], &format!("Fail. {}", Script::http_error(500).marker()))
        .await;
    assert!(!run.output.status.success(), "{}", run.describe());
    assert!(
        run.events
            .iter()
            .any(|event| event["type"] == "turn.failed"),
        "{}",
        run.describe()
    );
    assert!(run.agent_messages().is_empty(), "{}", run.describe());
    let requests = responses_requests(&rig.model);
    // No retries are configured, so one failed request is the whole story.
    assert_eq!(requests.len(), 1, "{requests:#?}");
    assert_eq!(requests[0].outcome, RequestOutcome::HttpError(500));
    rig.model.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumed_turn_sees_the_earlier_turn_through_echo_history() {
    let rig = ExecRig::start().await;
    let first_prompt = "Remember the word pineapple.";
    let first = rig.exec(&[], first_prompt).await;
    assert!(first.output.status.success(), "{}", first.describe());
    // An unmarked prompt still gets an answer.
    assert_eq!(first.last_agent_message(), "scripted reply");
    let thread_id = first
        .events
        .iter()
        .find(|event| event["type"] == "thread.started")
        .and_then(|event| event["thread_id"].as_str())
        .unwrap_or_else(|| panic!("no thread.started; {}", first.describe()))
        .to_owned();

    let second_prompt = format!("What did I say? {}", Script::echo_history().marker());
    let second = rig.exec(&["resume", &thread_id], &second_prompt).await;
    assert!(second.output.status.success(), "{}", second.describe());
    let echoed = second.last_agent_message();
    let lines: Vec<&str> = echoed.lines().collect();
    let first_at = lines.iter().position(|line| *line == first_prompt);
    let second_at = lines.iter().position(|line| *line == second_prompt);
    assert!(
        matches!((first_at, second_at), (Some(a), Some(b)) if a < b),
        "both prompts, in order, in: {echoed}"
    );
    rig.model.shutdown().await;
}

// ---- plain HTTP, for what Codex does not show ------------------------------

/// A request body shaped like Codex's: the prompt as the last user message.
fn responses_body(prompt: &str) -> Value {
    serde_json::json!({
        "model": "mock-model",
        "stream": true,
        "input": [
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": prompt}]}
        ],
    })
}

/// One HTTP/1 exchange; dropping it closes the connection.
struct Exchange {
    response: hyper::Response<hyper::body::Incoming>,
    connection: tokio::task::JoinHandle<()>,
}

impl Drop for Exchange {
    fn drop(&mut self) {
        self.connection.abort();
    }
}

impl Exchange {
    async fn send(
        model: &ScriptedModel,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Exchange {
        use http_body_util::Full;
        use hyper::body::Bytes;
        let stream = tokio::net::TcpStream::connect(model.addr())
            .await
            .expect("connects");
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .expect("http handshake");
        let connection = tokio::spawn(async move {
            let _ = connection.await;
        });
        let request = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", model.addr().to_string())
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(
                body.map(|body| body.to_string()).unwrap_or_default(),
            )))
            .expect("request");
        let response = tokio::time::timeout(HTTP_STEP_TIMEOUT, sender.send_request(request))
            .await
            .expect("response head within HTTP_STEP_TIMEOUT")
            .expect("response head");
        Exchange {
            response,
            connection,
        }
    }

    /// The next chunk of the body: `Ok(None)` at its end, `Err` if it broke.
    async fn chunk(&mut self) -> Result<Option<String>, hyper::Error> {
        use http_body_util::BodyExt;
        loop {
            let frame = tokio::time::timeout(HTTP_STEP_TIMEOUT, self.response.body_mut().frame())
                .await
                .expect("a body frame within HTTP_STEP_TIMEOUT");
            match frame {
                None => return Ok(None),
                Some(Err(error)) => return Err(error),
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        return Ok(Some(String::from_utf8_lossy(&data).into_owned()));
                    }
                }
            }
        }
    }

    /// The whole body, and whether it ended cleanly.
    async fn rest(&mut self) -> (String, bool) {
        let mut text = String::new();
        loop {
            match self.chunk().await {
                Ok(Some(chunk)) => text.push_str(&chunk),
                Ok(None) => return (text, true),
                Err(_) => return (text, false),
            }
        }
    }
}

/// The SSE events in `text`: each `event:` name must match its data's `type`.
fn sse_events(text: &str) -> Vec<Value> {
    text.split("\n\n")
        .filter(|block| block.lines().any(|line| line.starts_with("data: ")))
        .map(|block| {
            let name = block.lines().find_map(|line| line.strip_prefix("event: "));
            let data: Value = block
                .lines()
                .find_map(|line| line.strip_prefix("data: "))
                .and_then(|data| serde_json::from_str(data).ok())
                .expect("JSON data");
            assert_eq!(name, data["type"].as_str(), "event name vs type: {block}");
            data
        })
        .collect()
}

fn event_types(events: &[Value]) -> Vec<&str> {
    events
        .iter()
        .filter_map(|event| event["type"].as_str())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unmarked_request_gets_the_default_text_with_usage() {
    let model = ScriptedModel::start().await.expect("starts");
    let mut exchange =
        Exchange::send(&model, "POST", "/v1/responses", Some(responses_body("hi"))).await;
    assert_eq!(exchange.response.status(), 200);
    assert_eq!(
        exchange.response.headers()["content-type"],
        "text/event-stream"
    );
    let (text, clean) = exchange.rest().await;
    assert!(clean);
    let events = sse_events(&text);
    assert_eq!(
        event_types(&events),
        [
            "response.created",
            "response.output_item.done",
            "response.completed"
        ]
    );
    assert_eq!(events[1]["item"]["content"][0]["text"], "scripted reply");
    let usage = &events[2]["response"]["usage"];
    assert_eq!(usage["output_tokens"], 4);
    assert_eq!(
        usage["total_tokens"].as_u64(),
        Some(usage["input_tokens"].as_u64().unwrap() + 4)
    );
    let requests = model
        .wait_for(HTTP_STEP_TIMEOUT, |requests| {
            requests.first().map(|request| request.outcome) == Some(RequestOutcome::Completed)
        })
        .await
        .expect("completed");
    assert_eq!(requests[0].script, None);
    model.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deltas_arrive_one_by_one_after_their_delay() {
    // Well above loopback latency, so the gaps between deltas are the
    // script's and not the network's.
    const DELAY_MS: u64 = 150;
    // Timer slack only ever makes a gap longer; this allows for the client
    // task being scheduled late for one delta and on time for the next.
    const CLIENT_SLACK_MS: u64 = 50;
    let model = ScriptedModel::start().await.expect("starts");
    let prompt = Script::stream(&["a", "b", "c"], DELAY_MS).marker();
    let mut exchange = Exchange::send(
        &model,
        "POST",
        "/v1/responses",
        Some(responses_body(&prompt)),
    )
    .await;
    let mut text = String::new();
    let mut delta_times = Vec::new();
    while let Some(chunk) = exchange.chunk().await.expect("clean body") {
        if chunk.contains("response.output_text.delta") {
            delta_times.push(std::time::Instant::now());
        }
        text.push_str(&chunk);
    }
    let events = sse_events(&text);
    assert_eq!(
        event_types(&events),
        [
            "response.created",
            "response.output_item.added",
            "response.output_text.delta",
            "response.output_text.delta",
            "response.output_text.delta",
            "response.output_item.done",
            "response.completed"
        ]
    );
    let deltas: Vec<&str> = events[2..5]
        .iter()
        .filter_map(|e| e["delta"].as_str())
        .collect();
    assert_eq!(deltas, ["a", "b", "c"]);
    assert_eq!(events[5]["item"]["content"][0]["text"], "abc");
    assert_eq!(delta_times.len(), 3, "each delta in its own chunk");
    for pair in delta_times.windows(2) {
        assert!(pair[1] - pair[0] >= Duration::from_millis(DELAY_MS - CLIENT_SLACK_MS));
    }
    model.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_never_ending_answer_notices_the_client_leaving() {
    let model = ScriptedModel::start().await.expect("starts");
    let prompt = Script::hang().marker();
    let mut exchange = Exchange::send(
        &model,
        "POST",
        "/v1/responses",
        Some(responses_body(&prompt)),
    )
    .await;
    let first = exchange
        .chunk()
        .await
        .expect("clean")
        .expect("a first chunk");
    assert_eq!(event_types(&sse_events(&first)), ["response.created"]);
    let streaming = model
        .wait_for(HTTP_STEP_TIMEOUT, |requests| {
            requests.first().map(|request| request.outcome) == Some(RequestOutcome::Streaming)
        })
        .await;
    assert!(streaming.is_ok(), "{streaming:?}");
    // Nothing more comes: only keep-alive comments, no events.
    let later = exchange
        .chunk()
        .await
        .expect("clean")
        .expect("a keep-alive");
    assert!(sse_events(&later).is_empty(), "{later}");

    drop(exchange);
    let requests = model
        .wait_for(HTTP_STEP_TIMEOUT, |requests| {
            requests.first().map(|request| request.outcome) == Some(RequestOutcome::ClientWentAway)
        })
        .await;
    assert!(requests.is_ok(), "{:#?}", model.requests());
    model.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_stream_breaks_off_without_completion() {
    let model = ScriptedModel::start().await.expect("starts");
    let prompt = Script::cut("half an ans").marker();
    let mut exchange = Exchange::send(
        &model,
        "POST",
        "/v1/responses",
        Some(responses_body(&prompt)),
    )
    .await;
    let (text, clean) = exchange.rest().await;
    assert!(!clean, "the body should break off, not end: {text}");
    let events = sse_events(&text);
    assert_eq!(
        event_types(&events),
        [
            "response.created",
            "response.output_item.added",
            "response.output_text.delta"
        ]
    );
    assert_eq!(events[2]["delta"], "half an ans");
    let requests = model
        .wait_for(HTTP_STEP_TIMEOUT, |requests| {
            requests.first().map(|request| request.outcome) == Some(RequestOutcome::Cut)
        })
        .await;
    assert!(requests.is_ok(), "{:#?}", model.requests());
    model.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_error_has_a_json_body() {
    let model = ScriptedModel::start().await.expect("starts");
    let prompt = Script::http_error(503).marker();
    let mut exchange = Exchange::send(
        &model,
        "POST",
        "/v1/responses",
        Some(responses_body(&prompt)),
    )
    .await;
    assert_eq!(exchange.response.status(), 503);
    let (text, _) = exchange.rest().await;
    let body: Value = serde_json::from_str(&text).expect("JSON error body");
    assert!(body["error"]["message"].is_string(), "{body}");
    assert_eq!(model.requests()[0].outcome, RequestOutcome::HttpError(503));
    model.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_paths_are_recorded_and_answered_404() {
    let model = ScriptedModel::start().await.expect("starts");
    let exchange = Exchange::send(&model, "GET", "/v1/models?client_version=1", None).await;
    assert_eq!(exchange.response.status(), 404);
    let requests = model.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(
        (requests[0].method.as_str(), requests[0].path.as_str()),
        ("GET", "/v1/models")
    );
    assert_eq!(requests[0].outcome, RequestOutcome::NotFound);
    assert_eq!(requests[0].body, Value::Null);
    // A condition that never holds times out instead of hanging; a tenth of
    // a second shows that without slowing the suite.
    const NEVER_WAIT: Duration = Duration::from_millis(100);
    let never = model
        .wait_for(NEVER_WAIT, |requests| requests.len() > 5)
        .await;
    assert!(never.is_err());
    model.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_ends_a_never_ending_answer() {
    let model = ScriptedModel::start().await.expect("starts");
    let prompt = Script::hang().marker();
    let mut exchange = Exchange::send(
        &model,
        "POST",
        "/v1/responses",
        Some(responses_body(&prompt)),
    )
    .await;
    exchange
        .chunk()
        .await
        .expect("clean")
        .expect("response.created");
    // Half the model's two-second grace period: faster than this means the
    // stream ended on the shutdown signal, not by the fallback abort.
    const PROMPT_SHUTDOWN: Duration = Duration::from_secs(1);
    let started = std::time::Instant::now();
    model.shutdown().await;
    assert!(
        started.elapsed() < PROMPT_SHUTDOWN,
        "{:?}",
        started.elapsed()
    );
    let (_, clean) = exchange.rest().await;
    assert!(!clean, "a stream ended by shutdown is broken off");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codex_reports_a_cut_stream_as_disconnected() {
    let rig = ExecRig::start().await;
    let run = rig
        .exec(&[], &format!("Break. {}", Script::cut("partial").marker()))
        .await;
    assert!(!run.output.status.success(), "{}", run.describe());
    let failure = run
        .events
        .iter()
        .find(|event| event["type"] == "turn.failed")
        .unwrap_or_else(|| panic!("no turn.failed; {}", run.describe()));
    assert!(
        failure["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("stream disconnected before completion"),
        "{failure}"
    );
    let requests = responses_requests(&rig.model);
    assert_eq!(requests.len(), 1, "{requests:#?}");
    assert_eq!(requests[0].outcome, RequestOutcome::Cut);
    rig.model.shutdown().await;
}
