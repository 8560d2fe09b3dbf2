//! The record of every request the scripted model received, shared between
//! the handlers, the SSE bodies and the tests that wait on it.

use std::sync::Arc;
use std::time::SystemTime;

use serde_json::Value;
use tokio::sync::watch;

use super::Script;

/// How the answer to a request went, updated as its response proceeds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestOutcome {
    /// The SSE body is still being sent.
    Streaming,
    /// The body ended normally, after `response.completed`.
    Completed,
    /// Answered with this HTTP error status.
    HttpError(u16),
    /// The server broke the body off: a scripted cut, or a shutdown under a
    /// still-open stream.
    Cut,
    /// The client dropped the connection before the body ended.
    ClientWentAway,
    /// Not a path the model serves; answered 404.
    NotFound,
}

/// One request, as received.
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    /// Arrival order, from 0.
    pub seq: u64,
    pub received: SystemTime,
    pub method: String,
    pub path: String,
    /// The parsed JSON body; `Null` when there was none or it was not JSON.
    pub body: Value,
    /// The script its marker named, if any.
    pub script: Option<Script>,
    pub outcome: RequestOutcome,
}

/// A watch channel rather than a mutex, so that every change (a new request,
/// an outcome) wakes whoever waits for a condition on the log.
#[derive(Clone)]
pub struct Log {
    requests: Arc<watch::Sender<Vec<RecordedRequest>>>,
}

impl Log {
    pub fn new() -> Log {
        Log {
            requests: Arc::new(watch::Sender::new(Vec::new())),
        }
    }

    /// Records a request and returns its sequence number.
    pub fn push(
        &self,
        method: String,
        path: String,
        body: Value,
        script: Option<Script>,
        outcome: RequestOutcome,
    ) -> u64 {
        let mut seq = 0;
        self.requests.send_modify(|requests| {
            seq = requests.len() as u64;
            requests.push(RecordedRequest {
                seq,
                received: SystemTime::now(),
                method,
                path,
                body,
                script,
                outcome,
            });
        });
        seq
    }

    pub fn set_outcome(&self, seq: u64, outcome: RequestOutcome) {
        self.requests.send_modify(|requests| {
            if let Some(request) = requests.iter_mut().find(|request| request.seq == seq) {
                request.outcome = outcome;
            }
        });
    }

    pub fn snapshot(&self) -> Vec<RecordedRequest> {
        self.requests.borrow().clone()
    }

    pub fn subscribe(&self) -> watch::Receiver<Vec<RecordedRequest>> {
        self.requests.subscribe()
    }
}
