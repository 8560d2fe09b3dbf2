//! A wait on several runs at once (`codex_wait` with `run_ids`): the rule
//! for when it is over, shared by the broker (which holds such waiters) and
//! the engine (which answers runs the broker does not hold, from their
//! audits, before asking it).

mod engine;

use crate::actors::types::WaitOutcome;
use crate::store::RunId;

/// At most this many runs in one wait: a fan-out larger than that is a
/// batch job, and 32 status lines still fit a small reply.
pub const MAX_RUNS: usize = 32;

/// When a wait on several runs is over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitMode {
    /// As soon as one run has ended (or waits for the caller).
    Any,
    /// When every run has ended (or one waits for the caller, who must
    /// answer it before that run can end).
    All,
}

/// Where one run of such a wait stands: an outcome as a single wait has
/// it, or why the run cannot be waited on (unknown, lost).
pub type RunStanding = Result<WaitOutcome, String>;

/// What a wait on several runs ends with: each run as asked, in the order
/// asked.
#[derive(Debug, Clone)]
pub struct ManyOutcome {
    pub mode: WaitMode,
    pub runs: Vec<(String, RunStanding)>,
}

impl ManyOutcome {
    /// The run an `any` wait answers with: the first in the order asked
    /// that has ended or waits for the caller.
    pub fn first_settled(&self) -> Option<usize> {
        self.runs.iter().position(|(_, standing)| settled(standing))
    }
}

/// Over for the caller: ended, or a request only the caller can answer
/// (one the person at the MCP client is asked about is not: the run goes
/// on once they answer).
pub fn settled(standing: &RunStanding) -> bool {
    match standing {
        Ok(WaitOutcome::Finished(_)) => true,
        Ok(WaitOutcome::NeedsApproval { approval, .. }) => !approval.asked_person,
        Ok(WaitOutcome::StillRunning { .. }) | Err(_) => false,
    }
}

/// Still to be waited on: neither over nor unknown.
pub fn waitable(standing: &RunStanding) -> bool {
    standing.is_ok() && !settled(standing)
}

/// Whether a wait in `mode` on runs standing so is over now (before its
/// slice ends). Unknown runs never hold a wait up; a wait left with no run
/// to wait on is over.
pub fn done<'a>(mode: WaitMode, standings: impl IntoIterator<Item = &'a RunStanding>) -> bool {
    let (mut any_settled, mut any_waitable, mut caller_asked) = (false, false, false);
    for standing in standings {
        any_settled |= settled(standing);
        any_waitable |= waitable(standing);
        caller_asked |=
            matches!(standing, Ok(WaitOutcome::NeedsApproval { .. })) && settled(standing);
    }
    match mode {
        WaitMode::Any => any_settled || !any_waitable,
        WaitMode::All => caller_asked || !any_waitable,
    }
}

/// Each id as given, and its run id or why it is none.
pub type ParsedIds = Vec<(String, Result<RunId, String>)>;

/// The ids of a wait, checked: 1 to [`MAX_RUNS`] of them, none twice. An
/// id that is not a run id stands as an error of its own.
pub fn parse_ids(ids: &[String]) -> Result<ParsedIds, String> {
    if ids.is_empty() || ids.len() > MAX_RUNS {
        return Err(format!(
            "run_ids takes 1 to {MAX_RUNS} run ids, not {}",
            ids.len()
        ));
    }
    let mut seen = std::collections::HashSet::new();
    ids.iter()
        .map(|id| {
            if !seen.insert(id.as_str()) {
                return Err(format!("run_ids names {id} twice"));
            }
            Ok((
                id.clone(),
                RunId::parse(id).map_err(|error| error.to_string()),
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actors::approvals::PendingApproval;
    use crate::actors::types::{Progress, RunResult};
    use crate::protocol::TokenCounts;
    use crate::store::RunStatus;
    use std::time::Duration;

    fn running() -> RunStanding {
        Ok(WaitOutcome::StillRunning {
            run_id: RunId::generate(),
            thread_id: "th".into(),
            progress: Progress::default(),
            waited: Duration::ZERO,
        })
    }

    fn finished() -> RunStanding {
        Ok(WaitOutcome::Finished(RunResult {
            run_id: RunId::generate(),
            thread_id: "th".into(),
            status: RunStatus::Completed,
            result: Some("done".into()),
            usage: TokenCounts::default(),
            duration_ms: 1,
            error: None,
            audit_error: None,
            rate_limits: Default::default(),
            warnings: Vec::new(),
        }))
    }

    fn asking(asked_person: bool) -> RunStanding {
        Ok(WaitOutcome::NeedsApproval {
            run_id: RunId::generate(),
            thread_id: "th".into(),
            approval: PendingApproval {
                approval_id: "a".into(),
                kind: "command",
                summary: "ls".into(),
                asked_person,
            },
        })
    }

    fn unknown() -> RunStanding {
        Err("unknown run".into())
    }

    #[test]
    fn any_is_over_at_the_first_end_and_all_at_the_last() {
        let some_over = [running(), finished(), unknown()];
        assert!(done(WaitMode::Any, &some_over));
        assert!(!done(WaitMode::All, &some_over));
        let all_over = [finished(), unknown(), finished()];
        assert!(done(WaitMode::All, &all_over));
        let none_over = [running(), unknown()];
        assert!(!done(WaitMode::Any, &none_over));
        assert!(!done(WaitMode::All, &none_over));
    }

    #[test]
    fn the_callers_approval_ends_either_wait_and_the_persons_neither() {
        let caller = [running(), asking(false)];
        assert!(done(WaitMode::Any, &caller));
        assert!(done(WaitMode::All, &caller));
        let person = [running(), asking(true)];
        assert!(!done(WaitMode::Any, &person));
        assert!(!done(WaitMode::All, &person));
    }

    #[test]
    fn unknown_runs_alone_end_the_wait_at_once() {
        assert!(done(WaitMode::Any, &[unknown(), unknown()]));
        assert!(done(WaitMode::All, &[unknown()]));
    }

    #[test]
    fn ids_are_checked_for_count_and_repeats_and_bad_ones_stand_alone() {
        assert!(parse_ids(&[]).is_err());
        let many: Vec<String> = (0..=MAX_RUNS)
            .map(|_| RunId::generate().to_string())
            .collect();
        assert!(parse_ids(&many).is_err());
        let id = RunId::generate().to_string();
        assert!(parse_ids(&[id.clone(), id.clone()]).is_err());
        let parsed = parse_ids(&[id.clone(), "../nope".into()]).unwrap();
        assert!(parsed[0].1.is_ok());
        assert!(parsed[1].1.is_err());
    }
}
