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

#[cfg(test)]
mod tests {
    use super::super::WaitBroker;
    use super::*;
    use crate::actors::types::RunResult;
    use crate::protocol::TokenCounts;
    use crate::store::RunStatus;
    use ractor::Actor;

    const CALL: Option<Duration> = Some(Duration::from_secs(10));

    fn started(run_id: &RunId) -> BrokerMsg {
        BrokerMsg::Started {
            run_id: run_id.clone(),
            thread_id: "th".into(),
            title: "t".into(),
            cwd: "/p".into(),
        }
    }

    fn ended(run_id: &RunId) -> BrokerMsg {
        BrokerMsg::Ended(RunResult {
            run_id: run_id.clone(),
            thread_id: "th".into(),
            status: RunStatus::Completed,
            result: Some("done".into()),
            usage: TokenCounts::default(),
            duration_ms: 1,
            error: None,
            audit_error: None,
            rate_limits: Default::default(),
            warnings: Vec::new(),
        })
    }

    /// `any` wakes at the first end, `all` only at the last; a lost run
    /// stands as its error and holds neither; the slice's end shows who is
    /// still running.
    #[tokio::test]
    async fn any_wakes_at_an_end_all_at_the_last_and_a_lost_run_stands_alone() {
        let (broker, handle) = Actor::spawn(None, WaitBroker, ()).await.unwrap();
        let ids: Vec<RunId> = (0..3).map(|_| RunId::generate()).collect();
        for id in &ids {
            broker.cast(started(id)).unwrap();
        }
        let wait = |mode, slice: Duration| {
            let (broker, run_ids) = (broker.clone(), ids.clone());
            tokio::spawn(async move {
                let started = Instant::now();
                let standings = broker
                    .call(
                        |reply| BrokerMsg::WaitMany {
                            run_ids,
                            mode,
                            soft_timeout: Some(slice),
                            reply,
                        },
                        CALL,
                    )
                    .await
                    .unwrap();
                (crate::actors::settle(standings).unwrap(), started.elapsed())
            })
        };
        let (standings, took) = wait(WaitMode::Any, Duration::from_millis(200))
            .await
            .unwrap();
        assert!(took >= Duration::from_millis(200), "held for the slice");
        assert!(
            standings
                .iter()
                .all(|standing| matches!(standing, Ok(WaitOutcome::StillRunning { .. })))
        );

        let long = Duration::from_secs(30);
        let any = wait(WaitMode::Any, long);
        let all = wait(WaitMode::All, long);
        tokio::time::sleep(Duration::from_millis(100)).await;
        broker
            .cast(BrokerMsg::Lost {
                run_id: ids[1].clone(),
                error: "gone".into(),
            })
            .unwrap();
        broker.cast(ended(&ids[0])).unwrap();
        let (standings, took) = any.await.unwrap();
        assert!(took < Duration::from_secs(5), "woken at the end: {took:?}");
        assert!(matches!(standings[0], Ok(WaitOutcome::Finished(_))));
        assert!(!all.is_finished(), "all waits for the last run");
        broker.cast(ended(&ids[2])).unwrap();
        let (standings, took) = all.await.unwrap();
        assert!(took < Duration::from_secs(5), "woken at the last end");
        assert!(matches!(standings[0], Ok(WaitOutcome::Finished(_))));
        assert!(standings[1].is_err(), "the lost run: {:?}", standings[1]);
        assert!(matches!(standings[2], Ok(WaitOutcome::Finished(_))));
        broker.stop(None);
        handle.await.unwrap();
    }
}
