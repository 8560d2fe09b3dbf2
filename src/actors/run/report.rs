//! What a RunActor tells whoever routes its thread: the narrow message type
//! it is handed a [`DerivedActorRef`] of. The RunActor names no other actor
//! for these reports, so the run module does not depend on the supervisor
//! (the supervisor converts these into its own message with `From`).

use std::path::PathBuf;

use ractor::DerivedActorRef;

use crate::actors::run::RunRef;
use crate::protocol::{ThreadId, TurnStartParams};
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
        /// What the thread's next turn runs with unless told otherwise;
        /// `None` when the run cannot tell (its turn never started, or it
        /// was recovered).
        sticky: Option<StickySettings>,
    },
}

/// What a thread's next turn runs with when `turn/start` names none of it:
/// Codex keeps each turn's model, effort and directory for the turns after
/// it. Knowing this, a resume on a thread this connection still has sends
/// only what changes: every override makes Codex rebuild the turn's
/// context, which made a scripted turn 0.5 to 1.3 ms longer (B2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StickySettings {
    pub model: Option<String>,
    pub reasoning_effort: Option<String>,
    pub cwd: String,
}

impl StickySettings {
    /// Puts these settings on `turn`, but for what the thread has `kept`.
    /// `with_cwd`: a thread started for this turn has its directory from
    /// `thread/start`; a loaded thread keeps its own through
    /// `thread/resume` (or that request was skipped), so the resume's
    /// directory goes on the turn, like the permissions do.
    pub fn put_on(
        &self,
        turn: &mut TurnStartParams,
        with_cwd: bool,
        kept: Option<&StickySettings>,
    ) {
        let changed = |ours: &Option<String>, theirs: Option<&Option<String>>| {
            ours.clone().filter(|_| theirs != Some(ours))
        };
        turn.model = changed(&self.model, kept.map(|kept| &kept.model));
        turn.effort = changed(
            &self.reasoning_effort,
            kept.map(|kept| &kept.reasoning_effort),
        );
        turn.cwd = Some(self.cwd.clone())
            .filter(|cwd| with_cwd && kept.is_none_or(|kept| &kept.cwd != cwd));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(model: &str, cwd: &str) -> StickySettings {
        StickySettings {
            model: Some(model.to_string()),
            reasoning_effort: Some("low".to_string()),
            cwd: cwd.to_string(),
        }
    }

    fn turn() -> TurnStartParams {
        TurnStartParams::text(ThreadId::from("t".to_string()), "hi")
    }

    #[test]
    fn a_loaded_thread_is_sent_only_what_changes() {
        let ours = settings("m1", "/a");
        let mut sent = turn();
        ours.put_on(&mut sent, true, Some(&ours));
        assert_eq!((sent.model, sent.effort, sent.cwd), (None, None, None));
        let mut sent = turn();
        ours.put_on(&mut sent, true, Some(&settings("m2", "/a")));
        assert_eq!(sent.model.as_deref(), Some("m1"));
        assert_eq!((sent.effort, sent.cwd), (None, None));
        let mut sent = turn();
        ours.put_on(&mut sent, true, Some(&settings("m1", "/b")));
        assert_eq!(sent.cwd.as_deref(), Some("/a"));
        assert_eq!(sent.model, None);
    }

    #[test]
    fn without_what_the_thread_kept_everything_goes() {
        let ours = settings("m1", "/a");
        let mut sent = turn();
        ours.put_on(&mut sent, true, None);
        assert_eq!(sent.model.as_deref(), Some("m1"));
        assert_eq!(sent.effort.as_deref(), Some("low"));
        assert_eq!(sent.cwd.as_deref(), Some("/a"));
        // A new thread has its directory from `thread/start`.
        let mut sent = turn();
        ours.put_on(&mut sent, false, None);
        assert_eq!(sent.cwd, None);
        assert_eq!(sent.model.as_deref(), Some("m1"));
    }
}
