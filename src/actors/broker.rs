//! `WaitBroker`: answers waits on runs. A wait either gets the final result
//! the instant its run ends, or, when its soft timeout comes first, the run's
//! progress so far. Nothing polls: run actors tell the broker when a run
//! starts, moves and ends; a slice's end is a message the broker sends
//! itself. Any number of waiters on one run all wake.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

use crate::actors::approvals::PendingApproval;
use crate::actors::types::{ActiveRun, EngineError, Progress, RunResult, WaitOutcome};
use crate::actors::wait_many::{RunStanding, WaitMode};

mod many;
use crate::protocol::ThreadId;
use crate::store::RunId;
use many::ManyWaiter;

/// Finished runs remembered for later waits. Older ones are answered from
/// their audit files instead; a few hundred covers any agent's working set.
const FINISHED_REMEMBERED: usize = 512;

pub struct WaitBroker;

pub type BrokerRef = ActorRef<BrokerMsg>;

pub enum BrokerMsg {
    /// A run began (from its run actor, or from the supervisor on recovery).
    Started {
        run_id: RunId,
        thread_id: ThreadId,
        title: String,
        cwd: PathBuf,
    },
    Progress {
        run_id: RunId,
        progress: Progress,
    },
    Ended(RunResult),
    /// A request of the run waits for the caller: waiters wake with it. One
    /// the person at the MCP client is asked about wakes nobody (a slice
    /// that ends meanwhile shows it); sent again with the same id when the
    /// person hands it back to the caller.
    Pending {
        run_id: RunId,
        approval: PendingApproval,
    },
    /// Someone (the person, the caller, another client, the hard timeout)
    /// answered it.
    Resolved {
        run_id: RunId,
        approval_id: String,
    },
    /// Call: wait on a run for at most `soft_timeout` (`None`: until it ends).
    /// Replies `UnknownRun` when the broker never heard of it.
    Wait {
        run_id: RunId,
        soft_timeout: Option<Duration>,
        reply: RpcReplyPort<Result<WaitOutcome, EngineError>>,
    },
    /// Call: wait on several runs for at most `soft_timeout`, until one
    /// (`Any`) or each (`All`) has ended or waits for the caller. Replies
    /// where each stands, in the order given; one never heard of stands as
    /// unknown without failing the others.
    WaitMany {
        run_ids: Vec<RunId>,
        mode: WaitMode,
        soft_timeout: Option<Duration>,
        reply: RpcReplyPort<Vec<RunStanding>>,
    },
    /// A waiter's slice is over (sent to itself).
    SliceOver {
        waiter: u64,
    },
    /// Call: the runs still going.
    Active(RpcReplyPort<Vec<ActiveRun>>),
    /// Call: a run another sidecar owns, followed from its audit
    /// (`actors/follow`), which then sends its `Progress` and `Ended`.
    /// Replies whether it is new here (else someone follows it already).
    Follow {
        run_id: RunId,
        thread_id: ThreadId,
        title: String,
        cwd: PathBuf,
        reply: RpcReplyPort<bool>,
    },
    /// Following a run failed: its waiters get `error`, and it is forgotten.
    Lost {
        run_id: RunId,
        error: String,
    },
}

struct Entry {
    thread_id: ThreadId,
    title: String,
    cwd: PathBuf,
    started: Instant,
    progress: Progress,
    result: Option<RunResult>,
    /// Requests waiting for the caller, oldest first.
    pending: Vec<PendingApproval>,
    /// Another sidecar runs it: not one of this sidecar's active runs.
    followed: bool,
}

impl Entry {
    /// A run just heard of: started now, nothing shown yet.
    fn new(thread_id: ThreadId, title: String, cwd: PathBuf, followed: bool) -> Entry {
        Entry {
            thread_id,
            title,
            cwd,
            started: Instant::now(),
            progress: Progress::default(),
            result: None,
            pending: Vec::new(),
            followed,
        }
    }
}

struct Waiter {
    run_id: RunId,
    since: Instant,
    reply: RpcReplyPort<Result<WaitOutcome, EngineError>>,
}

#[derive(Default)]
pub struct BrokerState {
    runs: HashMap<RunId, Entry>,
    /// Finished run ids, oldest first, to forget beyond the limit.
    finished: VecDeque<RunId>,
    waiters: HashMap<u64, Waiter>,
    /// Waits on several runs; their ids share `next_waiter`.
    many: HashMap<u64, ManyWaiter>,
    next_waiter: u64,
}

impl Actor for WaitBroker {
    type Msg = BrokerMsg;
    type State = BrokerState;
    type Arguments = ();

    async fn pre_start(
        &self,
        _myself: BrokerRef,
        _args: (),
    ) -> Result<BrokerState, ActorProcessingErr> {
        Ok(BrokerState::default())
    }

    async fn handle(
        &self,
        myself: BrokerRef,
        message: BrokerMsg,
        state: &mut BrokerState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            BrokerMsg::Started {
                run_id,
                thread_id,
                title,
                cwd,
            } => {
                state
                    .runs
                    .entry(run_id)
                    // Adopted after its owner died: ours from now on.
                    .and_modify(|entry| entry.followed = false)
                    .or_insert_with(|| Entry::new(thread_id, title, cwd, false));
            }
            BrokerMsg::Progress { run_id, progress } => {
                if let Some(entry) = state.runs.get_mut(&run_id) {
                    entry.progress = progress;
                }
            }
            BrokerMsg::Ended(result) => state.on_ended(result),
            BrokerMsg::Pending { run_id, approval } => state.on_pending(run_id, approval),
            BrokerMsg::Resolved {
                run_id,
                approval_id,
            } => {
                if let Some(entry) = state.runs.get_mut(&run_id) {
                    entry
                        .pending
                        .retain(|approval| approval.approval_id != approval_id);
                }
            }
            BrokerMsg::Wait {
                run_id,
                soft_timeout,
                reply,
            } => state.on_wait(&myself, run_id, soft_timeout, reply),
            BrokerMsg::WaitMany {
                run_ids,
                mode,
                soft_timeout,
                reply,
            } => state.on_wait_many(&myself, run_ids, mode, soft_timeout, reply),
            BrokerMsg::SliceOver { waiter } => state.on_slice_over(waiter),
            BrokerMsg::Active(reply) => {
                let _ = reply.send(state.active());
            }
            BrokerMsg::Follow {
                run_id,
                thread_id,
                title,
                cwd,
                reply,
            } => {
                let new = !state.runs.contains_key(&run_id);
                if new {
                    let entry = Entry::new(thread_id, title, cwd, true);
                    state.runs.insert(run_id, entry);
                }
                let _ = reply.send(new);
            }
            BrokerMsg::Lost { run_id, error } => state.on_lost(&run_id, &error),
        }
        Ok(())
    }
}

impl BrokerState {
    fn on_lost(&mut self, run_id: &RunId, error: &str) {
        if self
            .runs
            .get(run_id)
            .is_some_and(|entry| entry.result.is_none())
        {
            self.runs.remove(run_id);
        }
        self.answer_all(run_id, || Err(EngineError::BadRequest(error.to_string())));
        self.wake_many(run_id, Some(error));
    }

    fn on_ended(&mut self, result: RunResult) {
        let run_id = result.run_id.clone();
        let entry = self.runs.entry(run_id.clone()).or_insert_with(|| Entry {
            thread_id: result.thread_id.clone(),
            title: String::new(),
            cwd: PathBuf::new(),
            started: Instant::now(),
            progress: Progress::default(),
            result: None,
            pending: Vec::new(),
            followed: false,
        });
        entry.result = Some(result.clone());
        self.wake(&run_id, &WaitOutcome::Finished(result));
        self.wake_many(&run_id, None);
        self.finished.push_back(run_id);
        while self.finished.len() > FINISHED_REMEMBERED {
            if let Some(old) = self.finished.pop_front() {
                self.runs.remove(&old);
            }
        }
    }

    fn on_wait(
        &mut self,
        myself: &BrokerRef,
        run_id: RunId,
        soft_timeout: Option<Duration>,
        reply: RpcReplyPort<Result<WaitOutcome, EngineError>>,
    ) {
        let Some(entry) = self.runs.get(&run_id) else {
            let _ = reply.send(Err(EngineError::UnknownRun(run_id.to_string())));
            return;
        };
        if let Some(result) = &entry.result {
            let _ = reply.send(Ok(WaitOutcome::Finished(result.clone())));
            return;
        }
        // A request waiting for the caller: say so at once. One the person
        // at the MCP client is asked about is shown when the slice ends:
        // the caller has nothing to do meanwhile.
        if let Some(approval) = entry.pending.iter().find(|approval| !approval.asked_person) {
            let _ = reply.send(Ok(WaitOutcome::NeedsApproval {
                run_id,
                thread_id: entry.thread_id.clone(),
                approval: approval.clone(),
            }));
            return;
        }
        let id = self.next_waiter;
        self.next_waiter += 1;
        self.waiters.insert(
            id,
            Waiter {
                run_id,
                since: Instant::now(),
                reply,
            },
        );
        if let Some(soft_timeout) = soft_timeout {
            myself.send_after(soft_timeout, move || BrokerMsg::SliceOver { waiter: id });
        }
    }

    /// A new request, or one the person handed back to the caller (the same
    /// id again, no longer asked).
    fn on_pending(&mut self, run_id: RunId, approval: PendingApproval) {
        let Some(entry) = self.runs.get_mut(&run_id) else {
            return;
        };
        match entry
            .pending
            .iter_mut()
            .find(|held| held.approval_id == approval.approval_id)
        {
            Some(held) => *held = approval.clone(),
            None => entry.pending.push(approval.clone()),
        }
        if approval.asked_person {
            return;
        }
        let outcome = WaitOutcome::NeedsApproval {
            run_id: run_id.clone(),
            thread_id: entry.thread_id.clone(),
            approval,
        };
        self.wake(&run_id, &outcome);
        self.wake_many(&run_id, None);
    }

    /// Answers every waiter on the run with `outcome`.
    fn wake(&mut self, run_id: &RunId, outcome: &WaitOutcome) {
        self.answer_all(run_id, || Ok(outcome.clone()));
    }

    /// Answers every waiter on the run with what `answer` makes (an error
    /// is not `Clone`) and forgets them.
    fn answer_all(
        &mut self,
        run_id: &RunId,
        answer: impl Fn() -> Result<WaitOutcome, EngineError>,
    ) {
        let waiting: Vec<u64> = self
            .waiters
            .iter()
            .filter(|(_, waiter)| &waiter.run_id == run_id)
            .map(|(id, _)| *id)
            .collect();
        for id in waiting {
            if let Some(waiter) = self.waiters.remove(&id) {
                let _ = waiter.reply.send(answer());
            }
        }
    }

    fn on_slice_over(&mut self, waiter: u64) {
        if self.many_slice_over(waiter) {
            return;
        }
        // Gone already when its run ended first.
        let Some(waiter) = self.waiters.remove(&waiter) else {
            return;
        };
        let outcome = match self.runs.get(&waiter.run_id) {
            // The person is still being asked.
            Some(entry) if !entry.pending.is_empty() => WaitOutcome::NeedsApproval {
                run_id: waiter.run_id.clone(),
                thread_id: entry.thread_id.clone(),
                approval: entry.pending[0].clone(),
            },
            Some(entry) => WaitOutcome::StillRunning {
                run_id: waiter.run_id.clone(),
                thread_id: entry.thread_id.clone(),
                progress: entry.progress.clone(),
                waited: waiter.since.elapsed(),
            },
            None => {
                let _ = waiter
                    .reply
                    .send(Err(EngineError::UnknownRun(waiter.run_id.to_string())));
                return;
            }
        };
        let _ = waiter.reply.send(Ok(outcome));
    }

    fn active(&self) -> Vec<ActiveRun> {
        let mut active: Vec<ActiveRun> = self
            .runs
            .iter()
            .filter(|(_, entry)| entry.result.is_none() && !entry.followed)
            .map(|(run_id, entry)| ActiveRun {
                run_id: run_id.clone(),
                thread_id: entry.thread_id.clone(),
                title: entry.title.clone(),
                cwd: entry.cwd.clone(),
                elapsed_ms: u64::try_from(entry.started.elapsed().as_millis()).unwrap_or(u64::MAX),
            })
            .collect();
        active.sort_by(|a, b| a.run_id.as_str().cmp(b.run_id.as_str()));
        active
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ractor::Actor;

    const CALL: Option<Duration> = Some(Duration::from_secs(10));

    fn approval(asked_person: bool) -> PendingApproval {
        PendingApproval {
            approval_id: "a1".into(),
            kind: "command",
            summary: "touch x".into(),
            asked_person,
        }
    }

    /// While the person is asked, a wait holds its slice and then shows the
    /// approval (there is nothing for the caller to do meanwhile); handed
    /// back to the caller, it wakes the waiters at once.
    #[tokio::test]
    async fn an_approval_the_person_is_asked_holds_the_slice_and_a_hand_back_wakes() {
        let (broker, handle) = Actor::spawn(None, WaitBroker, ()).await.unwrap();
        let run_id = RunId::generate();
        broker
            .cast(BrokerMsg::Started {
                run_id: run_id.clone(),
                thread_id: "th".into(),
                title: "t".into(),
                cwd: "/p".into(),
            })
            .unwrap();
        let pending = |asked| BrokerMsg::Pending {
            run_id: run_id.clone(),
            approval: approval(asked),
        };
        broker.cast(pending(true)).unwrap();
        let wait = |slice: Duration| {
            let (broker, run_id) = (broker.clone(), run_id.clone());
            async move {
                let started = Instant::now();
                let outcome = broker
                    .call(
                        |reply| BrokerMsg::Wait {
                            run_id,
                            soft_timeout: Some(slice),
                            reply,
                        },
                        CALL,
                    )
                    .await
                    .unwrap();
                (
                    crate::actors::settle(outcome).unwrap().unwrap(),
                    started.elapsed(),
                )
            }
        };
        let slice = Duration::from_millis(300);
        let (outcome, took) = wait(slice).await;
        assert!(took >= slice, "held for the slice: {took:?}");
        let WaitOutcome::NeedsApproval {
            approval: shown, ..
        } = outcome
        else {
            panic!("{outcome:?}");
        };
        assert!(shown.asked_person);

        let waiting = tokio::spawn(wait(Duration::from_secs(30)));
        tokio::time::sleep(Duration::from_millis(100)).await;
        broker.cast(pending(false)).unwrap();
        let (outcome, took) = waiting.await.unwrap();
        assert!(took < Duration::from_secs(5), "woken at once: {took:?}");
        let WaitOutcome::NeedsApproval {
            approval: shown, ..
        } = outcome
        else {
            panic!("{outcome:?}");
        };
        assert_eq!(shown, approval(false), "replaced, not added");
        let (again, took) = wait(Duration::from_secs(30)).await;
        assert!(
            took < Duration::from_secs(5),
            "the caller's: answered at once"
        );
        assert!(matches!(again, WaitOutcome::NeedsApproval { .. }));
        broker.stop(None);
        handle.await.unwrap();
    }
}
