//! The Responses-API events of one scripted answer, and the SSE body that
//! sends them while keeping the request's recorded outcome up to date.

use std::time::Duration;

use axum::body::{Body, Bytes};
use futures_util::stream;
use serde_json::{Value, json};
use tokio::sync::watch;

use super::RequestOutcome;
use super::log::Log;

/// Gap between the SSE comments a hanging answer sends. hyper already notices
/// a client that closes its connection (it reads the EOF), but a peer that
/// vanishes without closing is only noticed when a write fails; the comments
/// make sure a hanging request still ends up `ClientWentAway`. They carry no
/// events, so Codex ignores them. A second is quick for tests and costs
/// nothing.
const HANG_KEEPALIVE: Duration = Duration::from_secs(1);

/// Pause before a scripted cut. hyper only flushes what it has buffered when
/// the body has nothing ready; breaking off straight after the events would
/// abort the connection before even the response head is written, and the
/// client would see no response instead of a truncated one. Any pause works;
/// 20 ms is unnoticeable.
pub const CUT_FLUSH_PAUSE: Duration = Duration::from_millis(20);

/// One thing the body does next.
#[derive(Debug)]
pub enum Step {
    /// Sends this SSE event.
    Event(Value),
    Sleep(Duration),
    /// Breaks the body off with an error, so the client sees a truncated
    /// stream.
    Cut,
    /// Keeps the stream open, sending only comments, until the client leaves
    /// or the server shuts down.
    Hang,
}

/// Builds the events of one response, numbering ids after the request.
pub struct Answer {
    response_id: String,
    input_tokens: u64,
}

impl Answer {
    pub fn new(seq: u64, body_bytes: usize) -> Answer {
        Answer {
            response_id: format!("resp_{seq}"),
            input_tokens: body_bytes as u64 / 4,
        }
    }

    pub fn item_id(&self) -> String {
        format!("msg_{}", self.response_id)
    }

    pub fn call_id(&self) -> String {
        format!("call_{}", self.response_id)
    }

    pub fn created(&self) -> Step {
        event(json!({
            "type": "response.created",
            "response": {"id": self.response_id},
        }))
    }

    /// An empty assistant message, which the deltas then fill.
    pub fn message_added(&self) -> Step {
        event(json!({
            "type": "response.output_item.added",
            "output_index": 0,
            "item": {"type": "message", "role": "assistant", "id": self.item_id(), "content": []},
        }))
    }

    pub fn delta(&self, text: &str) -> Step {
        event(json!({
            "type": "response.output_text.delta",
            "delta": text,
            "item_id": self.item_id(),
            "output_index": 0,
            "content_index": 0,
        }))
    }

    pub fn message_done(&self, text: &str) -> Step {
        event(json!({
            "type": "response.output_item.done",
            "output_index": 0,
            "item": {
                "type": "message",
                "role": "assistant",
                "id": self.item_id(),
                "content": [{"type": "output_text", "text": text, "annotations": []}],
            },
        }))
    }

    pub fn function_call_done(
        &self,
        name: &str,
        namespace: Option<&str>,
        arguments: &Value,
    ) -> Step {
        let mut item = json!({
            "type": "function_call",
            "id": format!("fc_{}", self.response_id),
            "name": name,
            "arguments": arguments.to_string(),
            "call_id": self.call_id(),
        });
        if let Some(namespace) = namespace {
            item["namespace"] = json!(namespace);
        }
        event(json!({
            "type": "response.output_item.done",
            "output_index": 0,
            "item": item,
        }))
    }

    /// Usage is deterministic so tests can rely on it: a token per four bytes
    /// of request body, a token per four characters answered (at least one).
    pub fn completed(&self, answered: &str) -> Step {
        let output_tokens = (answered.chars().count() as u64).div_ceil(4).max(1);
        event(json!({
            "type": "response.completed",
            "response": {
                "id": self.response_id,
                "usage": {
                    "input_tokens": self.input_tokens,
                    "input_tokens_details": null,
                    "output_tokens": output_tokens,
                    "output_tokens_details": null,
                    "total_tokens": self.input_tokens + output_tokens,
                },
            },
        }))
    }
}

fn event(data: Value) -> Step {
    Step::Event(data)
}

fn encode(data: &Value) -> Bytes {
    let kind = data
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("message");
    Bytes::from(format!("event: {kind}\ndata: {data}\n\n"))
}

#[derive(Debug, thiserror::Error)]
#[error("the script cuts the stream here")]
struct ScriptedCut;

/// Records how the body ended. Dropped before [`Guard::finish`] means hyper
/// gave up on the body, which only happens when the client went away.
struct Guard {
    log: Log,
    seq: u64,
    finished: bool,
}

impl Guard {
    /// Only the first ending counts: after a cut the body is over, whatever
    /// polls it afterwards.
    fn finish(&mut self, outcome: RequestOutcome) {
        if self.finished {
            return;
        }
        self.finished = true;
        self.log.set_outcome(self.seq, outcome);
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if !self.finished {
            tracing::debug!(seq = self.seq, "client went away mid-stream");
            self.log
                .set_outcome(self.seq, RequestOutcome::ClientWentAway);
        }
    }
}

struct BodyState {
    steps: std::vec::IntoIter<Step>,
    guard: Guard,
    shutdown: watch::Receiver<bool>,
}

/// The SSE body for `steps`. The request is `Streaming` until the body ends:
/// `Completed` after the last step, `Cut` at a [`Step::Cut`] or when the
/// server shuts down under a hanging or sleeping answer, `ClientWentAway` if
/// dropped before either.
pub fn body(log: Log, seq: u64, steps: Vec<Step>, shutdown: watch::Receiver<bool>) -> Body {
    let state = BodyState {
        steps: steps.into_iter(),
        guard: Guard {
            log,
            seq,
            finished: false,
        },
        shutdown,
    };
    let chunks = stream::unfold(state, |mut state| async move {
        if state.guard.finished {
            return None;
        }
        loop {
            let Some(step) = state.steps.next() else {
                state.guard.finish(RequestOutcome::Completed);
                return None;
            };
            match step {
                Step::Event(data) => return Some((Ok(encode(&data)), state)),
                Step::Sleep(pause) => {
                    if !pause_unless_shutdown(&mut state.shutdown, pause).await {
                        state.guard.finish(RequestOutcome::Cut);
                        return Some((Err(ScriptedCut), state));
                    }
                }
                Step::Cut => {
                    state.guard.finish(RequestOutcome::Cut);
                    return Some((Err(ScriptedCut), state));
                }
                Step::Hang => {
                    if pause_unless_shutdown(&mut state.shutdown, HANG_KEEPALIVE).await {
                        // Put the hang back so the next poll hangs again.
                        state.steps = std::iter::once(Step::Hang)
                            .chain(state.steps)
                            .collect::<Vec<_>>()
                            .into_iter();
                        return Some((Ok(Bytes::from_static(b": still here\n\n")), state));
                    }
                    state.guard.finish(RequestOutcome::Cut);
                    return Some((Err(ScriptedCut), state));
                }
            }
        }
    });
    Body::from_stream(chunks)
}

/// Waits `pause`; false when the server started shutting down first.
async fn pause_unless_shutdown(shutdown: &mut watch::Receiver<bool>, pause: Duration) -> bool {
    if *shutdown.borrow() {
        return false;
    }
    tokio::select! {
        () = tokio::time::sleep(pause) => true,
        // An error means the server is gone altogether, which also ends us.
        _ = shutdown.wait_for(|stopping| *stopping) => false,
    }
}
