//! Routing: every request is recorded; `POST …/responses` is answered by its
//! script, anything else with 404.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::watch;

use super::log::{Log, RequestOutcome};
use super::script::{Script, is_tool_follow_up, user_message_texts};
use super::sse::{self, Answer, Step};

/// Largest request body read. Codex sends the whole conversation each time,
/// tool schemas and instructions included (tens of KiB); 64 MiB leaves room
/// for long test conversations while still bounding a runaway client.
const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

/// The answer to a request without a marker, so unmarked prompts still work.
pub const DEFAULT_REPLY: &str = "scripted reply";

/// The shell tool of Codex 0.169.0.
const EXEC_TOOL: &str = "exec_command";

/// How long Codex waits for a scripted command before handing the model
/// "still running": the tool's maximum. At the default 10 s a `touch` on a
/// loaded machine was reported as running, the scripted answer ended the
/// turn, and the command was killed before it wrote anything. A command that
/// exits sooner is reported as soon as it exits.
const EXEC_YIELD_MS: u64 = 30_000;

#[derive(Clone)]
struct Server {
    log: Log,
    rate_limits: RateLimitSetting,
    stopping: watch::Receiver<bool>,
}

/// One window's figures, as the `x-codex-{primary,secondary}-*` headers
/// carry them (the names Codex reads: seen in codex-rs and in the strings
/// of the 0.169.0 binary).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimitWindowHeaders {
    pub used_percent: f64,
    pub window_minutes: i64,
    /// Unix seconds.
    pub reset_at: i64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimitHeaders {
    pub primary: RateLimitWindowHeaders,
    pub secondary: Option<RateLimitWindowHeaders>,
}

impl RateLimitHeaders {
    fn pairs(&self) -> Vec<(String, String)> {
        let mut pairs = Vec::new();
        for (name, window) in [
            ("primary", Some(self.primary)),
            ("secondary", self.secondary),
        ] {
            let Some(window) = window else { continue };
            pairs.push((
                format!("x-codex-{name}-used-percent"),
                window.used_percent.to_string(),
            ));
            pairs.push((
                format!("x-codex-{name}-window-minutes"),
                window.window_minutes.to_string(),
            ));
            pairs.push((
                format!("x-codex-{name}-reset-at"),
                window.reset_at.to_string(),
            ));
        }
        pairs
    }
}

/// The figures answers carry, changed while the server runs.
#[derive(Clone, Default)]
pub(super) struct RateLimitSetting(Arc<Mutex<Option<RateLimitHeaders>>>);

impl RateLimitSetting {
    pub(super) fn set(&self, limits: Option<RateLimitHeaders>) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = limits;
    }

    fn get(&self) -> Option<RateLimitHeaders> {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

pub(super) fn router(
    log: Log,
    rate_limits: RateLimitSetting,
    stopping: watch::Receiver<bool>,
) -> Router {
    Router::new().fallback(handle).with_state(Server {
        log,
        rate_limits,
        stopping,
    })
}

async fn handle(State(server): State<Server>, request: Request) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let bytes = match axum::body::to_bytes(request.into_body(), MAX_BODY_BYTES).await {
        Ok(bytes) => bytes,
        Err(error) => {
            tracing::warn!(%error, %path, "could not read a request body");
            Default::default()
        }
    };
    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let is_responses = method == Method::POST && path.ends_with("/responses");
    let script = if is_responses {
        Script::from_request(&body)
    } else {
        None
    };
    let outcome = if is_responses {
        match script {
            Some(Script::HttpError { http_error }) => {
                RequestOutcome::HttpError(error_status(http_error).as_u16())
            }
            _ => RequestOutcome::Streaming,
        }
    } else {
        RequestOutcome::NotFound
    };
    let seq = server.log.push(
        method.to_string(),
        path.clone(),
        body.clone(),
        script.clone(),
        outcome,
    );
    tracing::debug!(seq, %method, %path, ?script, "scripted model request");
    if !is_responses {
        return (StatusCode::NOT_FOUND, "not served by the scripted model").into_response();
    }
    let answer = Answer::new(seq, bytes.len());
    let steps = match script {
        Some(Script::HttpError { http_error }) => return http_error_response(http_error),
        Some(script) => steps_for(&answer, script, &body),
        None => text_steps(&answer, DEFAULT_REPLY),
    };
    let mut builder = Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache");
    for (name, value) in server
        .rate_limits
        .get()
        .map(|limits| limits.pairs())
        .unwrap_or_default()
    {
        builder = builder.header(name, value);
    }
    builder
        .body(sse::body(server.log, seq, steps, server.stopping))
        .unwrap_or_else(|error| {
            tracing::warn!(%error, "could not build an SSE response");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        })
}

/// The status a scripted error is sent with: a code HTTP cannot carry becomes
/// 500, and the record says so.
fn error_status(scripted: u16) -> StatusCode {
    StatusCode::from_u16(scripted).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

fn http_error_response(scripted: u16) -> Response {
    let status = error_status(scripted);
    let body = json!({
        "error": {
            "message": format!("scripted HTTP error {}", status.as_u16()),
            "type": "server_error",
            "code": null,
        }
    });
    let mut response = Response::new(Body::from(body.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    response
}

fn steps_for(answer: &Answer, script: Script, body: &Value) -> Vec<Step> {
    match script {
        Script::Text { text } => text_steps(answer, &text),
        Script::Stream { stream, delay_ms } => {
            let full: String = stream.concat();
            let mut steps = vec![answer.created(), answer.message_added()];
            for part in &stream {
                steps.push(Step::Sleep(Duration::from_millis(delay_ms)));
                steps.push(answer.delta(part));
            }
            steps.push(answer.message_done(&full));
            steps.push(answer.completed(&full));
            steps
        }
        Script::Exec { then, .. } if is_tool_follow_up(body) => text_steps(answer, &then),
        Script::Exec { exec, escalate, .. } => {
            let arguments = exec_arguments(&exec, escalate);
            vec![
                answer.created(),
                answer.function_call_done(EXEC_TOOL, None, &arguments),
                answer.completed(&arguments.to_string()),
            ]
        }
        Script::Call { then, .. } if is_tool_follow_up(body) => text_steps(answer, &then),
        Script::Call {
            call,
            namespace,
            arguments,
            ..
        } => vec![
            answer.created(),
            answer.function_call_done(&call, namespace.as_deref(), &arguments),
            answer.completed(&arguments.to_string()),
        ],
        Script::Cut { cut } => vec![
            answer.created(),
            answer.message_added(),
            answer.delta(&cut),
            Step::Sleep(sse::CUT_FLUSH_PAUSE),
            Step::Cut,
        ],
        Script::Hang { .. } => vec![answer.created(), Step::Hang],
        Script::EchoHistory { .. } => text_steps(answer, &user_message_texts(body).join("\n")),
        // Answered before any body is built; kept total for the compiler.
        Script::HttpError { .. } => text_steps(answer, DEFAULT_REPLY),
    }
}

fn text_steps(answer: &Answer, text: &str) -> Vec<Step> {
    vec![
        answer.created(),
        answer.message_done(text),
        answer.completed(text),
    ]
}

/// The arguments of an `exec_command` call. Escalation uses the fields of the
/// tool's schema in 0.169.0: `sandbox_permissions: "require_escalated"` with a
/// `justification`, which Codex turns into an approval request.
fn exec_arguments(command: &str, escalate: bool) -> Value {
    if escalate {
        json!({
            "cmd": command,
            "yield_time_ms": EXEC_YIELD_MS,
            "sandbox_permissions": "require_escalated",
            "justification": "The scripted model asks to run this outside the sandbox.",
        })
    } else {
        json!({ "cmd": command, "yield_time_ms": EXEC_YIELD_MS })
    }
}
