//! Waits and interrupts on a run that another sidecar owns (same user,
//! shared app-server): two Claude Code windows on one project see each
//! other's runs, and either may wait for or stop one.
//!
//! A follower never subscribes to the run's thread: a subscriber also gets
//! the thread's server requests, and answering one it does not own would
//! break the owner's approvals. It never adopts a live run either. It reads
//! what the owner writes: the run's `active/` record and event log for
//! progress, the project index's end record for the end ([`sight`]), woken
//! by the file watcher (`notify`, as the picker is) with a slow poll behind
//! it, and hands what it sees to the `WaitBroker`, which answers waits on
//! it in slices exactly as it does for the runs of this sidecar. When the
//! owner dies before the end, the adoption path takes the run over.
//!
//! An interrupt goes to Codex from this sidecar's own connection
//! (`turn/interrupt` with the thread and turn from the active record); the
//! owner hears its turn end `interrupted` and records it.

mod sight;

use std::path::Path;
use std::time::Duration;

use ractor::{ActorStatus, RpcReplyPort};
use tokio::sync::mpsc;

use crate::actors::broker::{BrokerMsg, BrokerRef};
use crate::actors::resolve::Located;
use crate::actors::supervisor::{Adopted, Interrupted, SupervisorMsg, SupervisorRef};
use crate::actors::types::EngineError;
use crate::appserver::AppServerConnection;
use crate::protocol::ThreadId;
use sight::{Reader, Sight};

/// The look the watcher does not prompt: a missed notification (a network
/// file system, a full inotify queue, FSEvents coalescing) costs at most
/// this much delay, and an owner that died, which touches no file, is
/// noticed within it. Each look reads only what was appended, so two
/// seconds costs next to nothing while the run goes.
const FOLLOW_POLL: Duration = Duration::from_secs(2);

/// Changes closer together than this are read in one look: a streaming run
/// appends to its log many times a second, and a wait slice is far longer.
const LOOK_DEBOUNCE: Duration = Duration::from_millis(100);

/// Pending wake-ups from the watcher: one is enough, since a look reads
/// everything appended since the last one; more would only repeat it.
const WAKE_CAPACITY: usize = 1;

/// Registering a followed run with the broker only touches its state.
const REGISTER_TIMEOUT: Duration = Duration::from_secs(10);

/// Starts following `located` (found live in another sidecar) for waits:
/// the broker learns of it, with its progress so far, before this returns,
/// so a wait sent next is answered like any other. A run followed already
/// is left to its follower.
pub async fn follow(
    broker: &BrokerRef,
    supervisor: &SupervisorRef,
    located: Located,
) -> Result<(), EngineError> {
    let title = located
        .active
        .as_ref()
        .map(|active| active.title.clone())
        .unwrap_or_default();
    let (run_id, thread_id, cwd) = (
        located.run_id.clone(),
        located.thread_id.clone(),
        located.cwd.clone(),
    );
    let new = broker
        .call(
            |reply| BrokerMsg::Follow {
                run_id,
                thread_id,
                title,
                cwd,
                reply,
            },
            Some(REGISTER_TIMEOUT),
        )
        .await?;
    if !super::settle(new)? {
        return Ok(());
    }
    // Watching before the first look, so no change falls between the two.
    let (wakes, woken) = mpsc::channel(WAKE_CAPACITY);
    let run_dir = located.run_dir.clone();
    let watcher = tokio::task::spawn_blocking(move || watch(&run_dir, wakes))
        .await
        .ok()
        .flatten();
    let id = located.run_id.clone();
    let (reader, first) = match look(Reader::new(located)).await {
        Ok(looked) => looked,
        Err(error) => {
            lost(broker, id, error);
            return Ok(());
        }
    };
    let mut follower = Follower {
        reader,
        broker: broker.clone(),
        supervisor: supervisor.clone(),
        reported: None,
    };
    // Before returning: a wait sent after this finds the progress in place.
    let done = follower.report(first).await;
    if !done {
        tokio::spawn(follower.run(watcher, woken));
    }
    Ok(())
}

/// Asks Codex, from our own connection, to stop the turn of a run another
/// sidecar owns; answers once Codex has taken the request.
pub fn interrupt(
    connection: AppServerConnection,
    thread_id: ThreadId,
    turn_id: String,
    reply: RpcReplyPort<Result<Interrupted, EngineError>>,
) {
    tokio::spawn(async move {
        let outcome = connection
            .turn_interrupt(&thread_id, &turn_id)
            .await
            .map(|()| Interrupted::Requested)
            .map_err(EngineError::from);
        if let Err(error) = &outcome {
            tracing::warn!(%error, %thread_id, "turn/interrupt of another sidecar's run failed");
        }
        let _ = reply.send(outcome);
    });
}

/// One look on the blocking pool; the reader comes back with what it saw.
async fn look(mut reader: Reader) -> Result<(Reader, Sight), EngineError> {
    tokio::task::spawn_blocking(move || {
        let sight = reader.look();
        (reader, sight)
    })
    .await
    .map_err(|error| EngineError::Actor(error.to_string()))
}

struct Follower {
    reader: Reader,
    broker: BrokerRef,
    supervisor: SupervisorRef,
    /// The progress the broker has, so an unchanged look sends nothing.
    reported: Option<crate::actors::types::Progress>,
}

impl Follower {
    /// Looks whenever the run's files change (`woken`, from `_watcher`,
    /// kept for the loop's life: dropping it stops the notifications), or
    /// every [`FOLLOW_POLL`], until the run is over, adopted or the broker
    /// is gone.
    async fn run(
        mut self,
        _watcher: Option<notify::RecommendedWatcher>,
        mut woken: mpsc::Receiver<()>,
    ) {
        // False once the watcher is gone (or never came): the poll alone.
        let mut watching = true;
        loop {
            tokio::select! {
                woke = woken.recv(), if watching => match woke {
                    Some(()) => {
                        tokio::time::sleep(LOOK_DEBOUNCE).await;
                        while woken.try_recv().is_ok() {}
                    }
                    None => {
                        watching = false;
                        continue;
                    }
                },
                () = tokio::time::sleep(FOLLOW_POLL) => {}
            }
            if self.broker.get_status() >= ActorStatus::Stopping {
                return;
            }
            let run_id = self.reader.located().run_id.clone();
            let sight = match look(self.reader).await {
                Ok((reader, sight)) => {
                    self.reader = reader;
                    sight
                }
                Err(error) => {
                    lost(&self.broker, run_id, error);
                    return;
                }
            };
            if self.report(sight).await {
                return;
            }
        }
    }

    /// Tells the broker what the look saw; whether following is over.
    async fn report(&mut self, sight: Sight) -> bool {
        let run_id = self.reader.located().run_id.clone();
        match sight {
            // Adopted by this sidecar meanwhile: its run actor reports now.
            Sight::Running { pid, .. } if pid == std::process::id() => true,
            Sight::Running { progress, .. } => {
                if self.reported.as_ref() == Some(&progress) {
                    return false;
                }
                self.reported = Some(progress.clone());
                self.broker
                    .cast(BrokerMsg::Progress { run_id, progress })
                    .is_err()
            }
            Sight::Ended(result) => {
                let _ = self.broker.cast(BrokerMsg::Ended(*result));
                true
            }
            Sight::Orphaned | Sight::Vanished => self.hand_over(run_id).await,
        }
    }

    /// The owner died (or its records went) before the end: the look-up a
    /// wait on an unknown run makes decides, adopting the run when its
    /// owner is gone. Whether following is over.
    async fn hand_over(&mut self, run_id: crate::store::RunId) -> bool {
        let id = run_id.clone();
        let adopted = self
            .supervisor
            .call(
                |reply| SupervisorMsg::Adopt(id, reply),
                Some(super::START_CALL_TIMEOUT),
            )
            .await
            .map_err(EngineError::from)
            .and_then(super::settle)
            .and_then(|adopted| adopted);
        match adopted {
            Ok(Adopted::Finished(result)) => {
                let _ = self.broker.cast(BrokerMsg::Ended(*result));
                true
            }
            // A run actor of ours took it over and tells the broker itself.
            Ok(Adopted::Live) => true,
            // Its owner lives after all: go on following.
            Ok(Adopted::Followed(_)) => false,
            Err(error) => {
                lost(&self.broker, run_id, error);
                true
            }
        }
    }
}

/// Following failed: the waiters hear why, and the broker forgets the run,
/// so the next wait looks it up afresh.
fn lost(broker: &BrokerRef, run_id: crate::store::RunId, error: EngineError) {
    tracing::warn!(%error, %run_id, "stopped following a run of another sidecar");
    let _ = broker.cast(BrokerMsg::Lost {
        run_id,
        error: error.to_string(),
    });
}

/// File notifications for the run directory and its `active/`, each a
/// wake-up on `wakes`. Any change prompts a whole look, so nothing depends
/// on which kinds of event a platform reports or how it coalesces them.
/// `None` when nothing could be watched: the poll alone follows then.
fn watch(run_dir: &Path, wakes: mpsc::Sender<()>) -> Option<notify::RecommendedWatcher> {
    use notify::Watcher;
    let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if event.is_ok() {
            // Full: a wake-up is pending already, which covers this change.
            let _ = wakes.try_send(());
        }
    });
    let mut watcher = match watcher {
        Ok(watcher) => watcher,
        Err(error) => {
            tracing::warn!(%error, "cannot watch a followed run's files; polling them");
            return None;
        }
    };
    for dir in [run_dir.to_path_buf(), run_dir.join("active")] {
        if let Err(error) = watcher.watch(&dir, notify::RecursiveMode::NonRecursive) {
            tracing::warn!(%error, dir = %dir.display(), "cannot watch; polling it");
        }
    }
    Some(watcher)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actors::broker::WaitBroker;
    use crate::actors::types::{Progress, WaitOutcome};
    use crate::store::RunId;
    use ractor::Actor;

    const CALL: Option<Duration> = Some(Duration::from_secs(10));

    async fn register(broker: &BrokerRef, run_id: &RunId) -> bool {
        let run_id = run_id.clone();
        let new = broker
            .call(
                |reply| BrokerMsg::Follow {
                    run_id,
                    thread_id: "th".into(),
                    title: "t".into(),
                    cwd: "/p".into(),
                    reply,
                },
                CALL,
            )
            .await
            .unwrap();
        crate::actors::settle(new).unwrap()
    }

    async fn wait(
        broker: &BrokerRef,
        run_id: &RunId,
        soft: Option<Duration>,
    ) -> Result<WaitOutcome, EngineError> {
        let run_id = run_id.clone();
        let outcome = broker
            .call(
                |reply| BrokerMsg::Wait {
                    run_id,
                    soft_timeout: soft,
                    reply,
                },
                CALL,
            )
            .await
            .unwrap();
        crate::actors::settle(outcome).unwrap()
    }

    #[tokio::test]
    async fn the_broker_answers_slices_of_a_followed_run_and_forgets_a_lost_one() {
        let (broker, handle) = Actor::spawn(None, WaitBroker, ()).await.unwrap();
        let run_id = RunId::generate();
        assert!(register(&broker, &run_id).await);
        assert!(!register(&broker, &run_id).await, "followed twice");
        // Another sidecar's run is none of this one's active runs.
        let active = broker.call(BrokerMsg::Active, CALL).await.unwrap();
        assert!(crate::actors::settle(active).unwrap().is_empty());

        let progress = Progress {
            events: 7,
            ..Progress::default()
        };
        let run = run_id.clone();
        broker
            .cast(BrokerMsg::Progress {
                run_id: run,
                progress: progress.clone(),
            })
            .unwrap();
        let slice = wait(&broker, &run_id, Some(Duration::from_millis(20))).await;
        assert!(
            matches!(&slice, Ok(WaitOutcome::StillRunning { progress: p, .. }) if *p == progress),
            "{slice:?}"
        );

        // Sent from here, so it is in the mailbox before the loss.
        let (reply, waiting) = tokio::sync::oneshot::channel();
        let run = run_id.clone();
        broker
            .cast(BrokerMsg::Wait {
                run_id: run,
                soft_timeout: None,
                reply: reply.into(),
            })
            .unwrap();
        let error = "its audit is incomplete".to_string();
        let run = run_id.clone();
        broker.cast(BrokerMsg::Lost { run_id: run, error }).unwrap();
        let lost = tokio::time::timeout(CALL.unwrap(), waiting)
            .await
            .unwrap()
            .unwrap();
        assert!(
            matches!(&lost, Err(EngineError::BadRequest(said)) if said.contains("incomplete")),
            "{lost:?}"
        );
        let after = wait(&broker, &run_id, None).await;
        assert!(
            matches!(after, Err(EngineError::UnknownRun(_))),
            "{after:?}"
        );
        broker.stop(None);
        handle.await.unwrap();
    }
}
