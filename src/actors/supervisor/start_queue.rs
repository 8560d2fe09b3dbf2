//! Requests that need the app-server link, held by the Supervisor while a
//! connect task brings it up, so its `handle` answers everything else
//! meanwhile. Bounded ([`START_QUEUE_CAPACITY`]): a request past it is
//! refused at once.

use std::collections::VecDeque;
use std::path::PathBuf;

use ractor::RpcReplyPort;

use super::messages::{AdoptReply, Interrupted, StartReply};
use crate::actors::resolve::Located;
use crate::actors::types::{EngineError, ResumeRequest, RunRequest};
use crate::protocol::ThreadId;

/// Start, resume and adopt requests held while the link comes up. A cold
/// start takes seconds and an agent sends a handful of runs at once; a few
/// hundred held means something is stuck, and refusing the next one at once
/// says so better than holding it for the start timeout.
pub const START_QUEUE_CAPACITY: usize = 256;

/// One request waiting for the link.
pub enum Queued {
    New {
        request: RunRequest,
        reply: StartReply,
    },
    Resume {
        request: ResumeRequest,
        thread_id: ThreadId,
        cwd: PathBuf,
        reply: StartReply,
    },
    /// A run whose sidecar died, to be watched on; `reply` when a wait asked.
    Adopt {
        located: Box<Located>,
        reply: Option<AdoptReply>,
    },
    /// A turn of a run another sidecar owns, to stop from our connection.
    Interrupt {
        thread_id: ThreadId,
        turn_id: String,
        reply: RpcReplyPort<Result<Interrupted, EngineError>>,
    },
}

impl Queued {
    /// Whether it starts a turn, so a logged-out Codex refuses it.
    pub fn starts_turn(&self) -> bool {
        !matches!(self, Queued::Adopt { .. } | Queued::Interrupt { .. })
    }

    /// Answers it with `error`.
    pub fn fail(self, error: EngineError) {
        match self {
            Queued::New { reply, .. } | Queued::Resume { reply, .. } => {
                let _ = reply.send(Err(error));
            }
            Queued::Interrupt { reply, .. } => {
                let _ = reply.send(Err(error));
            }
            Queued::Adopt { reply, located } => {
                tracing::warn!(%error, run_id = %located.run_id, "could not adopt a run");
                if let Some(reply) = reply {
                    let _ = reply.send(Err(error));
                }
            }
        }
    }
}

#[derive(Default)]
pub struct StartQueue {
    items: VecDeque<Queued>,
}

impl StartQueue {
    /// Holds `item`, or refuses it when the queue is full.
    pub fn push(&mut self, item: Queued) {
        if self.items.len() >= START_QUEUE_CAPACITY {
            item.fail(EngineError::BadRequest(format!(
                "{START_QUEUE_CAPACITY} requests are already waiting for the app-server to come up; \
                 try again once it has"
            )));
            return;
        }
        self.items.push_back(item);
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn any_starts_turn(&self) -> bool {
        self.items.iter().any(Queued::starts_turn)
    }

    /// Everything held, oldest first.
    pub fn take(&mut self) -> VecDeque<Queued> {
        std::mem::take(&mut self.items)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actors::types::RunStarted;

    fn request() -> (
        Queued,
        tokio::sync::oneshot::Receiver<Result<RunStarted, EngineError>>,
    ) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let queued = Queued::New {
            request: RunRequest::new("hi", "/tmp"),
            reply: tx.into(),
        };
        (queued, rx)
    }

    #[test]
    fn a_request_past_the_capacity_is_refused_at_once_and_the_held_ones_stay() {
        let mut queue = StartQueue::default();
        let mut held = Vec::new();
        for _ in 0..START_QUEUE_CAPACITY {
            let (queued, rx) = request();
            queue.push(queued);
            held.push(rx);
        }
        let (queued, mut refused) = request();
        queue.push(queued);
        let error = refused.try_recv().unwrap().unwrap_err().to_string();
        assert!(error.contains("already waiting"), "{error}");
        assert!(held.iter_mut().all(|rx| rx.try_recv().is_err()));
        assert_eq!(queue.take().len(), START_QUEUE_CAPACITY);
        assert!(queue.is_empty());
    }
}
