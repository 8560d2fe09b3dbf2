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
    /// Rate limits and connection warnings, for `codex_wrapper_check`.
    pub(super) news: crate::actors::news::AccountNews,
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
/// [`ENDED_REMEMBERED`]. A resume names an earlier run, or a conversation
/// its thread; without this it reads the pointer index, which holds every
/// run the user ever had.
#[derive(Default)]
pub(super) struct EndedRuns {
    runs: HashMap<RunId, (ThreadId, PathBuf)>,
    /// Each remembered thread's project and the last run on it.
    threads: HashMap<ThreadId, (PathBuf, RunId)>,
    /// Oldest first, to forget beyond the limit.
    order: VecDeque<RunId>,
}

impl EndedRuns {
    pub(super) fn remember(&mut self, run_id: RunId, thread_id: ThreadId, cwd: PathBuf) {
        self.threads
            .insert(thread_id.clone(), (cwd.clone(), run_id.clone()));
        if self.runs.insert(run_id.clone(), (thread_id, cwd)).is_none() {
            self.order.push_back(run_id);
        }
        while self.order.len() > ENDED_REMEMBERED {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            if let Some((thread_id, _)) = self.runs.remove(&oldest)
                && self
                    .threads
                    .get(&thread_id)
                    .is_some_and(|(_, last)| *last == oldest)
            {
                self.threads.remove(&thread_id);
            }
        }
    }

    pub(super) fn get(&self, run_id: &RunId) -> Option<&(ThreadId, PathBuf)> {
        self.runs.get(run_id)
    }

    /// The project of the last run on `thread_id` that ended here.
    pub(super) fn project_of(&self, thread_id: &ThreadId) -> Option<&PathBuf> {
        self.threads.get(thread_id).map(|(cwd, _)| cwd)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_stays_known_while_a_run_on_it_is_remembered() {
        let mut ended = EndedRuns::default();
        let thread = ThreadId::from("thread".to_string());
        let (first, second) = (RunId::generate(), RunId::generate());
        ended.remember(first, thread.clone(), PathBuf::from("/a"));
        ended.remember(second.clone(), thread.clone(), PathBuf::from("/b"));
        assert_eq!(ended.project_of(&thread), Some(&PathBuf::from("/b")));
        // The first run is forgotten; the thread's last run is not.
        for _ in 0..ENDED_REMEMBERED - 1 {
            let other = ThreadId::from(RunId::generate().to_string());
            ended.remember(RunId::generate(), other, PathBuf::from("/c"));
        }
        assert_eq!(ended.project_of(&thread), Some(&PathBuf::from("/b")));
        assert!(ended.get(&second).is_some());
        // One more, and the thread goes with its last run.
        let other = ThreadId::from("other".to_string());
        ended.remember(RunId::generate(), other, PathBuf::from("/c"));
        assert!(ended.get(&second).is_none());
        assert_eq!(ended.project_of(&thread), None);
    }
}
