//! A scripted Anthropic Messages API on loopback, so the real Claude Code CLI
//! runs offline in `-p` mode (`ANTHROPIC_BASE_URL`) and calls the tools a
//! test names. Test support only: it speaks just enough of the API for
//! Claude Code (streamed and plain `POST /v1/messages`, `count_tokens`),
//! answers by rules the test sets, and records every request it receives,
//! unknown paths included, so a test can assert on what Claude Code sent.
//!
//! Seen from Claude Code 2.1.328 and 2.1.332 in `-p` mode: one streamed
//! `POST /v1/messages?beta=true` per model turn, every tool it offers in that
//! request's `tools` (MCP tools too, with `ENABLE_TOOL_SEARCH=false`), and a
//! `HEAD /api/hello` connectivity probe first unless
//! `CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC` is set. No `count_tokens` and
//! no side request for a title: `-p` names no session.

// Test scaffolding: a step that fails should panic with its reason.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// How long [`ScriptedAnthropic::shutdown`] lets open connections close
/// before it aborts the server. Every answer is sent whole, so only a client
/// that keeps an idle connection open waits this long; a second does not
/// hold up a test.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);

/// What the API answers when no rule applies: plain text, so a request the
/// test did not expect ends Claude Code's turn instead of looping.
pub const FALLBACK_TEXT: &str = "scripted Anthropic API: no rule for this request";

/// How one request is answered.
#[derive(Clone, Debug, PartialEq)]
pub enum Reply {
    /// An assistant message of this text; the turn ends (`end_turn`).
    Text(String),
    /// A call of tool `name` with `input`; Claude Code runs it and comes back
    /// with a `tool_result` (`stop_reason: tool_use`).
    ToolUse {
        id: String,
        name: String,
        input: Value,
    },
    /// `count_tokens`: this many input tokens.
    TokenCount(usize),
    /// An empty 200: the connectivity probe (`/api/hello`).
    Ok,
    /// 404, for a path the API does not serve.
    NotFound,
}

/// Makes a follow-up call's input from the text of the result before it.
pub type InputFromResult = Arc<dyn Fn(&str) -> Value + Send + Sync>;

/// The rules, tried in this order for every request:
/// 1. a request whose last message carries a `tool_result` gets the next
///    follow-up call not made yet ([`AnthropicScript::then_call`]), with an
///    input made from that result; once those are spent, a text answer:
///    [`AnthropicScript::answer_tool_results`]'s prefix, then the result;
/// 2. the first request that offers tool X (in `tools`) gets a `tool_use` of
///    X, once per [`AnthropicScript::call_when_offered`];
/// 3. anything else gets [`FALLBACK_TEXT`].
#[derive(Clone, Default)]
pub struct AnthropicScript {
    calls: Vec<(String, Value)>,
    follow_ups: Vec<(String, InputFromResult)>,
    result_prefix: Option<String>,
}

impl std::fmt::Debug for AnthropicScript {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let follow_ups: Vec<&str> = self
            .follow_ups
            .iter()
            .map(|(tool, _)| tool.as_str())
            .collect();
        f.debug_struct("AnthropicScript")
            .field("calls", &self.calls)
            .field("follow_ups", &follow_ups)
            .field("result_prefix", &self.result_prefix)
            .finish()
    }
}

impl AnthropicScript {
    pub fn new() -> AnthropicScript {
        AnthropicScript::default()
    }

    /// The first request whose `tools` include `tool` gets a call of it with
    /// `input`.
    pub fn call_when_offered(mut self, tool: &str, input: Value) -> AnthropicScript {
        self.calls.push((tool.to_owned(), input));
        self
    }

    /// The next tool result not yet followed up gets a call of `tool` with
    /// `input(result)`: a run's handle, say, turned into a wait for it.
    pub fn then_call(
        mut self,
        tool: &str,
        input: impl Fn(&str) -> Value + Send + Sync + 'static,
    ) -> AnthropicScript {
        self.follow_ups.push((tool.to_owned(), Arc::new(input)));
        self
    }

    /// A request whose last message holds a `tool_result` is answered with
    /// `prefix` followed by the text of that result.
    pub fn answer_tool_results(mut self, prefix: &str) -> AnthropicScript {
        self.result_prefix = Some(prefix.to_owned());
        self
    }
}

/// One request as received, with how it was answered.
#[derive(Clone, Debug)]
pub struct AnthropicRequest {
    pub method: String,
    /// Path and query, as sent (`/v1/messages?beta=true`).
    pub path: String,
    /// The parsed JSON body; `Null` when there was none or it was not JSON.
    pub body: Value,
    pub reply: Reply,
}

impl AnthropicRequest {
    /// The names of the tools this request offers the model.
    pub fn tool_names(&self) -> Vec<String> {
        self.body["tools"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|tool| tool["name"].as_str().map(str::to_owned))
            .collect()
    }

    /// The text of the `tool_result` in the last message, when it has one.
    pub fn tool_result(&self) -> Option<String> {
        last_tool_result(&self.body)
    }

    /// One line for failure messages: whole bodies run to hundreds of
    /// kilobytes (Claude Code's system prompt and tool schemas).
    pub fn summary(&self) -> String {
        format!(
            "{} {} model={} stream={} tools={} messages={} tool_result={:?} -> {:?}",
            self.method,
            self.path,
            self.body["model"],
            self.body["stream"],
            self.tool_names().len(),
            self.body["messages"].as_array().map_or(0, Vec::len),
            self.tool_result(),
            self.reply,
        )
    }
}

struct Shared {
    script: AnthropicScript,
    /// Which of `script.calls` have been made: each is made once.
    calls_made: Vec<bool>,
    /// How many of `script.follow_ups` have been made, in order.
    follow_ups_made: usize,
    requests: Vec<AnthropicRequest>,
}

type SharedState = Arc<Mutex<Shared>>;

/// A running scripted Anthropic API on `127.0.0.1`, on a port of its own.
pub struct ScriptedAnthropic {
    addr: SocketAddr,
    shared: SharedState,
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<()>>,
}

impl ScriptedAnthropic {
    pub async fn start(script: AnthropicScript) -> ScriptedAnthropic {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Mutex::new(Shared {
            calls_made: vec![false; script.calls.len()],
            follow_ups_made: 0,
            script,
            requests: Vec::new(),
        }));
        let app = Router::new().fallback(answer).with_state(shared.clone());
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            let stopped = async move {
                let _ = stopped.await;
            };
            axum::serve(listener, app)
                .with_graceful_shutdown(stopped)
                .await
                .unwrap();
        });
        ScriptedAnthropic {
            addr,
            shared,
            stop: Some(stop),
            server: Some(server),
        }
    }

    /// For `ANTHROPIC_BASE_URL`: Claude Code appends `/v1/messages`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<AnthropicRequest> {
        self.shared.lock().unwrap().requests.clone()
    }

    /// Stops serving: idle connections close, and after [`SHUTDOWN_GRACE`]
    /// whatever is left is aborted.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(mut server) = self.server.take()
            && tokio::time::timeout(SHUTDOWN_GRACE, &mut server)
                .await
                .is_err()
        {
            server.abort();
        }
    }
}

impl Drop for ScriptedAnthropic {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            server.abort();
        }
    }
}

async fn answer(
    State(shared): State<SharedState>,
    method: Method,
    uri: Uri,
    body: Bytes,
) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let path = uri.path().to_owned();
    let reply = if path == "/api/hello" {
        Reply::Ok
    } else if method != Method::POST {
        Reply::NotFound
    } else if path == "/v1/messages/count_tokens" {
        // Claude Code may size a context before sending it; a rough count
        // is enough, nothing here depends on it.
        Reply::TokenCount(body.to_string().len() / 4)
    } else if path == "/v1/messages" {
        choose(&shared, &body)
    } else {
        Reply::NotFound
    };
    let seq = record(&shared, &method, &uri, &body, reply.clone());
    // Claude Code merges streamed messages that share an id into one
    // assistant turn, tool calls and all: each answer needs its own.
    let id = format!("msg_scripted_{seq}");
    let model = body["model"].as_str().unwrap_or("scripted").to_owned();
    match reply {
        Reply::NotFound => StatusCode::NOT_FOUND.into_response(),
        Reply::Ok => StatusCode::OK.into_response(),
        Reply::TokenCount(tokens) => axum::Json(json!({ "input_tokens": tokens })).into_response(),
        reply if body["stream"] == true => sse(&id, &model, &reply),
        reply => axum::Json(message(&id, &model, &reply)).into_response(),
    }
}

/// Records a request; returns its place in arrival order.
fn record(shared: &SharedState, method: &Method, uri: &Uri, body: &Value, reply: Reply) -> usize {
    let requests = &mut shared.lock().unwrap().requests;
    requests.push(AnthropicRequest {
        method: method.to_string(),
        path: uri.to_string(),
        body: body.clone(),
        reply,
    });
    requests.len() - 1
}

fn choose(shared: &SharedState, body: &Value) -> Reply {
    let mut shared = shared.lock().unwrap();
    if let Some(result) = last_tool_result(body) {
        let made = shared.follow_ups_made;
        if let Some((name, input)) = shared.script.follow_ups.get(made) {
            let reply = Reply::ToolUse {
                id: format!("toolu_scripted_then_{made}"),
                name: name.clone(),
                input: input(&result),
            };
            shared.follow_ups_made += 1;
            return reply;
        }
        if let Some(prefix) = &shared.script.result_prefix {
            return Reply::Text(format!("{prefix}{result}"));
        }
    }
    let offered: Vec<&str> = body["tools"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|tool| tool["name"].as_str())
        .collect();
    let next = shared
        .script
        .calls
        .iter()
        .enumerate()
        .find(|(index, (tool, _))| !shared.calls_made[*index] && offered.contains(&tool.as_str()))
        .map(|(index, (tool, input))| (index, tool.clone(), input.clone()));
    match next {
        Some((index, name, input)) => {
            shared.calls_made[index] = true;
            Reply::ToolUse {
                id: format!("toolu_scripted_{index}"),
                name,
                input,
            }
        }
        None => Reply::Text(FALLBACK_TEXT.to_owned()),
    }
}

/// The text of the `tool_result` blocks in the last message: its `content`
/// is a string or a list of blocks, of which the text ones count.
fn last_tool_result(body: &Value) -> Option<String> {
    let last = body["messages"].as_array()?.last()?;
    let results: Vec<String> = last["content"]
        .as_array()?
        .iter()
        .filter(|block| block["type"] == "tool_result")
        .map(|block| match &block["content"] {
            Value::String(text) => text.clone(),
            Value::Array(parts) => parts
                .iter()
                .filter_map(|part| part["text"].as_str())
                .collect::<Vec<_>>()
                .join("\n"),
            _ => String::new(),
        })
        .collect();
    (!results.is_empty()).then(|| results.join("\n"))
}

/// Usage as the API reports it; Claude Code adds these up for its cost line.
fn usage() -> Value {
    json!({
        "input_tokens": 10,
        "output_tokens": 5,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
    })
}

fn stop_reason(reply: &Reply) -> &'static str {
    match reply {
        Reply::ToolUse { .. } => "tool_use",
        _ => "end_turn",
    }
}

fn content_block(reply: &Reply) -> Value {
    match reply {
        Reply::ToolUse { id, name, input } => {
            json!({ "type": "tool_use", "id": id, "name": name, "input": input })
        }
        Reply::Text(text) => json!({ "type": "text", "text": text }),
        Reply::TokenCount(_) | Reply::Ok | Reply::NotFound => Value::Null,
    }
}

/// A whole non-streamed message.
fn message(id: &str, model: &str, reply: &Reply) -> Value {
    json!({
        "id": id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [content_block(reply)],
        "stop_reason": stop_reason(reply),
        "stop_sequence": null,
        "usage": usage(),
    })
}

/// The same message as the Messages API streams it: the block opens empty
/// and its content follows as one delta (text, or the tool input's JSON).
fn sse(id: &str, model: &str, reply: &Reply) -> Response {
    let (start, delta) = match reply {
        Reply::ToolUse { id, name, input } => (
            json!({ "type": "tool_use", "id": id, "name": name, "input": {} }),
            json!({ "type": "input_json_delta", "partial_json": input.to_string() }),
        ),
        Reply::Text(text) => (
            json!({ "type": "text", "text": "" }),
            json!({ "type": "text_delta", "text": text }),
        ),
        Reply::TokenCount(_) | Reply::Ok | Reply::NotFound => (Value::Null, Value::Null),
    };
    let events = [
        json!({
            "type": "message_start",
            "message": {
                "id": id,
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": [],
                "stop_reason": null,
                "stop_sequence": null,
                "usage": usage(),
            },
        }),
        json!({ "type": "content_block_start", "index": 0, "content_block": start }),
        json!({ "type": "content_block_delta", "index": 0, "delta": delta }),
        json!({ "type": "content_block_stop", "index": 0 }),
        json!({
            "type": "message_delta",
            "delta": { "stop_reason": stop_reason(reply), "stop_sequence": null },
            "usage": { "output_tokens": 5 },
        }),
        json!({ "type": "message_stop" }),
    ];
    let body: String = events
        .iter()
        .map(|event| {
            format!(
                "event: {}\ndata: {event}\n\n",
                event["type"].as_str().unwrap()
            )
        })
        .collect();
    ([(header::CONTENT_TYPE, "text/event-stream")], body).into_response()
}
