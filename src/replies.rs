//! The shapes a wait answers with before its run has finished, shared by
//! the MCP tools and the command line, so both speak the same JSON. A
//! finished run is shaped by each caller: MCP within a reply budget, the
//! command line whole.

use std::time::Duration;

use serde_json::{Value, json};

use crate::actors::{RunResult, WaitOutcome};

/// What a wait says while the person at the MCP client decides.
const PERSON_ASKED: &str = "the person at the MCP client was asked to decide; do not answer with codex_approve: call codex_wait again";

/// The JSON of a wait slice that ended before its run did (`still_running`
/// or `waiting_for_approval`); the run's result when it has finished.
/// `next_wait` is the slice to ask for next.
pub fn unfinished(outcome: &WaitOutcome, next_wait: Duration) -> Result<Value, &RunResult> {
    match outcome {
        WaitOutcome::StillRunning {
            run_id,
            thread_id,
            progress,
            waited,
        } => Ok(json!({
            "runId": run_id,
            "status": "still_running",
            "threadId": thread_id,
            "timedOut": false,
            "waitElapsedMs": millis(*waited),
            "nextWaitMs": millis(next_wait),
            "progress": {
                "events": progress.events,
                "totalTokens": progress.total_tokens,
                "outputTokens": progress.output_tokens,
                "reasoningTokens": progress.reasoning_tokens,
            },
        })),
        WaitOutcome::Finished(result) => Err(result),
        WaitOutcome::NeedsApproval {
            run_id,
            thread_id,
            approval,
        } => {
            let mut value = json!({
                "runId": run_id,
                "status": "waiting_for_approval",
                "threadId": thread_id,
                "pendingApproval": approval,
            });
            if approval.asked_person {
                value["note"] = json!(PERSON_ASKED);
            }
            Ok(value)
        }
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
