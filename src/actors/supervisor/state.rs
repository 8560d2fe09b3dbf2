//! What the Supervisor holds between messages: the config, the backend and
//! the live link, the queue, the routes from threads to runs, each thread's
//! defaults, and the runs that ended here.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;

use super::start_queue::StartQueue;
use crate::actors::broker::BrokerRef;
use crate::actors::run::{RunRef, StickySettings};
use crate::appserver::AppServerConnection;
use crate::appserver::account::LoginGate;
use crate::appserver::backend::Backend;
use crate::codex_bin::CodexBinary;
use crate::config::Config;
use crate::protocol::ThreadId;
use crate::store::RunId;

/// Ended runs whose thread and project are kept in memory for a resume:
/// as many as the broker keeps results for, a few hundred, which covers
/// any agent's working set; older ones are looked up on disk.
const ENDED_REMEMBERED: usize = 512;

/// The live connection.
pub(super) struct Link {
    pub(super) connection: AppServerConnection,
    pub(super) url: String,
    /// The server's token file, for a terminal UI that attaches to a run.
    pub(super) token_file: Option<PathBuf>,
    pub(super) generation: u64,
    /// Whether Codex is logged in, asked before a run starts on this link.
    pub(super) login: LoginGate,
}

pub struct SupervisorState {
    pub(super) config: Config,
    pub(super) codex: CodexBinary,
    pub(super) broker: BrokerRef,
    pub(super) link: Option<Link>,
    pub(super) generation: u64,
    /// What keeps the app-server; `None` while a connect task holds it.
    pub(super) backend: Option<Backend>,
    /// A login check is under way on the link of this generation.
    pub(super) admitting: Option<u64>,
    /// Requests waiting for the link (or its login check).
    pub(super) queue: StartQueue,
    pub(super) routes: HashMap<ThreadId, RunRef>,
    pub(super) runs: HashMap<RunId, RunRef>,
    /// Each thread's own model and effort, by thread id. Kept for this
    /// process's life: after a restart a thread keeps whatever its last
    /// turn used.
    pub(super) thread_defaults: HashMap<ThreadId, (Option<String>, Option<String>)>,
    /// What each thread's next turn runs with, as the last run here left
    /// it; forgotten when a turn not ours starts on it (a person in the
    /// Codex terminal UI may change any of it).
    pub(super) sticky: HashMap<ThreadId, StickySettings>,
    /// Codex config every thread we start or resume gets
    /// ([`crate::codex_config`]), read once at start.
    pub(super) thread_config: serde_json::Map<String, serde_json::Value>,
    /// Runs that ended here, so that resuming one reads no index.
    pub(super) ended: EndedRuns,
}

/// The thread and project of the runs that ended here, the most recent
/// [`ENDED_REMEMBERED`]. A resume names an earlier run; without this it
/// reads the pointer index, which holds every run the user ever had.
#[derive(Default)]
pub(super) struct EndedRuns {
    runs: HashMap<RunId, (ThreadId, PathBuf)>,
    /// Oldest first, to forget beyond the limit.
    order: VecDeque<RunId>,
}

impl EndedRuns {
    pub(super) fn remember(&mut self, run_id: RunId, thread_id: ThreadId, cwd: PathBuf) {
        if self.runs.insert(run_id.clone(), (thread_id, cwd)).is_none() {
            self.order.push_back(run_id);
        }
        while self.order.len() > ENDED_REMEMBERED {
            if let Some(oldest) = self.order.pop_front() {
                self.runs.remove(&oldest);
            }
        }
    }

    pub(super) fn get(&self, run_id: &RunId) -> Option<&(ThreadId, PathBuf)> {
        self.runs.get(run_id)
    }
}
