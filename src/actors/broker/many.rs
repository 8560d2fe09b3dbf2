//! The broker's waits on several runs (`codex_wait` with `run_ids`): held
//! like single waits, answered when the rule of `wait_many` says the wait
//! is over, looked at again whenever one of their runs ends, asks the
//! caller or is lost, and at the end of their slice.

use std::time::{Duration, Instant};

use ractor::RpcReplyPort;

use super::{BrokerMsg, BrokerRef, BrokerState};
use crate::actors::types::{EngineError, WaitOutcome};
use crate::actors::wait_many::{self, RunStanding, WaitMode};
use crate::store::RunId;

/// A wait on several runs.
pub(super) struct ManyWaiter {
    run_ids: Vec<RunId>,
    mode: WaitMode,
    since: Instant,
    reply: RpcReplyPort<Vec<RunStanding>>,
}

impl BrokerState {
    pub(super) fn on_wait_many(
        &mut self,
        myself: &BrokerRef,
        run_ids: Vec<RunId>,
        mode: WaitMode,
        soft_timeout: Option<Duration>,
        reply: RpcReplyPort<Vec<RunStanding>>,
    ) {
        let since = Instant::now();
        let standings = self.standings(&run_ids, since, false);
        if wait_many::done(mode, &standings) {
            let _ = reply.send(standings);
            return;
        }
        let id = self.next_waiter;
        self.next_waiter += 1;
        let waiter = ManyWaiter {
            run_ids,
            mode,
            since,
            reply,
        };
        self.many.insert(id, waiter);
        if let Some(soft_timeout) = soft_timeout {
            myself.send_after(soft_timeout, move || BrokerMsg::SliceOver { waiter: id });
        }
    }

    /// Answers the wait on several runs that is `waiter`, if it is one, with
    /// where its runs stand at the end of its slice.
    pub(super) fn many_slice_over(&mut self, waiter: u64) -> bool {
        let Some(many) = self.many.remove(&waiter) else {
            return false;
        };
        let standings = self.standings(&many.run_ids, many.since, true);
        let _ = many.reply.send(standings);
        true
    }

    /// Where each run stands for a wait begun `since`; at the slice's end a
    /// request the person is asked about shows, as for a single wait.
    fn standings(&self, run_ids: &[RunId], since: Instant, slice_over: bool) -> Vec<RunStanding> {
        run_ids
            .iter()
            .map(|run_id| {
                let entry = self
                    .runs
                    .get(run_id)
                    .ok_or_else(|| EngineError::UnknownRun(run_id.to_string()).to_string())?;
                if let Some(result) = &entry.result {
                    return Ok(WaitOutcome::Finished(result.clone()));
                }
                let shown = entry
                    .pending
                    .iter()
                    .find(|approval| slice_over || !approval.asked_person);
                Ok(match shown {
                    Some(approval) => WaitOutcome::NeedsApproval {
                        run_id: run_id.clone(),
                        thread_id: entry.thread_id.clone(),
                        approval: approval.clone(),
                    },
                    None => WaitOutcome::StillRunning {
                        run_id: run_id.clone(),
                        thread_id: entry.thread_id.clone(),
                        progress: entry.progress.clone(),
                        waited: since.elapsed(),
                    },
                })
            })
            .collect()
    }

    /// Answers the waits on several runs that `run_id` moving (ended, asking
    /// the caller, or `lost` with that error) brings to their end.
    pub(super) fn wake_many(&mut self, run_id: &RunId, lost: Option<&str>) {
        let touched: Vec<u64> = self
            .many
            .iter()
            .filter(|(_, waiter)| waiter.run_ids.contains(run_id))
            .map(|(id, _)| *id)
            .collect();
        for id in touched {
            let Some(waiter) = self.many.get(&id) else {
                continue;
            };
            let mut standings = self.standings(&waiter.run_ids, waiter.since, false);
            if let Some(error) = lost {
                for (asked, standing) in waiter.run_ids.iter().zip(standings.iter_mut()) {
                    if asked == run_id {
                        *standing = Err(error.to_string());
                    }
                }
            }
            if wait_many::done(waiter.mode, &standings)
                && let Some(waiter) = self.many.remove(&id)
            {
                let _ = waiter.reply.send(standings);
            }
        }
    }
}
