//! What a RunActor tells whoever routes its thread: the narrow message type
//! it is handed a [`DerivedActorRef`] of. The RunActor names no other actor
//! for these reports, so the run module does not depend on the supervisor
//! (the supervisor converts these into its own message with `From`).

use std::path::PathBuf;

use ractor::DerivedActorRef;

use crate::actors::run::RunRef;
use crate::protocol::ThreadId;
use crate::store::RunId;

/// Where a RunActor sends its reports.
pub type RunReportRef = DerivedActorRef<RunReport>;

pub enum RunReport {
    /// Events of this thread are this run's. Sent before the turn starts,
    /// so none of its events is missed.
    Route { thread_id: ThreadId, run: RunRef },
    /// A new thread's model and effort, which a later turn without
    /// overrides returns to (Codex keeps a turn's overrides for the turns
    /// after it).
    ThreadDefaults {
        thread_id: ThreadId,
        model: Option<String>,
        reasoning_effort: Option<String>,
    },
    /// The run stopped: its thread and project are remembered for a resume.
    /// Sent before the broker hears of the end, so a caller who resumes at
    /// once finds the thread free.
    Ended {
        run_id: RunId,
        thread_id: ThreadId,
        cwd: PathBuf,
    },
}
