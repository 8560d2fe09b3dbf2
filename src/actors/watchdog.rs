//! `Watchdog`: the owner of the engine's helpers that are not runs, the
//! `WaitBroker` and `Conversations`. Both are spawned linked to it, so when
//! one dies ractor tells the watchdog, which writes the death where the
//! `Engine` reads it ([`Casualties`]): `codex_wrapper_check` turns
//! unhealthy, and calls that need the dead actor fail at once, naming it.
//!
//! Nothing is restarted. A restarted broker would not know the runs that
//! are going (their actors hold the old reference and tell it nothing), so
//! waits on them would be answered "unknown run" while they run; a
//! restarted Conversations would not know which sessions have a request in
//! flight. A death is a bug; restarting the sidecar (its audit is on disk,
//! a shared app-server keeps its threads) is the honest cure, and the check
//! says so.

use std::collections::BTreeMap;

use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, SupervisionEvent};
use tokio::sync::watch;

use crate::actors::broker::BrokerMsg;
use crate::actors::conversations::ConversationMsg;

pub struct Watchdog;

pub type WatchdogRef = ActorRef<WatchdogMsg>;

/// The watchdog takes no messages: it only hears supervision events.
pub enum WatchdogMsg {}

/// The actors the watchdog owns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Watched {
    WaitBroker,
    Conversations,
}

impl Watched {
    /// Which of ours `cell` is, by its message type (the watchdog spawns
    /// nothing else, but a cell of another kind is ignored, not guessed).
    fn of(cell: &ActorCell) -> Option<Watched> {
        if cell.is_message_type_of::<BrokerMsg>() == Some(true) {
            Some(Watched::WaitBroker)
        } else if cell.is_message_type_of::<ConversationMsg>() == Some(true) {
            Some(Watched::Conversations)
        } else {
            None
        }
    }

    /// What the actor is for, as a problem sentence names it.
    pub fn describe(self) -> &'static str {
        match self {
            Watched::WaitBroker => "the wait broker (codex_wait, codex_active_runs, new runs)",
            Watched::Conversations => {
                "the conversations actor (codex_chat, codex_plan, codex_review)"
            }
        }
    }
}

/// The actors that died, each with why: what ractor said (a panic's
/// message, "killed", a stop reason).
pub type Casualties = BTreeMap<Watched, String>;

pub struct WatchdogState {
    casualties: watch::Sender<Casualties>,
}

impl Actor for Watchdog {
    type Msg = WatchdogMsg;
    type State = WatchdogState;
    type Arguments = watch::Sender<Casualties>;

    async fn pre_start(
        &self,
        _myself: WatchdogRef,
        casualties: watch::Sender<Casualties>,
    ) -> Result<WatchdogState, ActorProcessingErr> {
        Ok(WatchdogState { casualties })
    }

    async fn handle(
        &self,
        _myself: WatchdogRef,
        message: WatchdogMsg,
        _state: &mut WatchdogState,
    ) -> Result<(), ActorProcessingErr> {
        match message {}
    }

    /// Records a child's end. ractor's default would stop the watchdog too;
    /// staying up keeps the other child, and the record, alive.
    async fn handle_supervisor_evt(
        &self,
        _myself: WatchdogRef,
        event: SupervisionEvent,
        state: &mut WatchdogState,
    ) -> Result<(), ActorProcessingErr> {
        let (cell, reason) = match event {
            SupervisionEvent::ActorFailed(cell, error) => (cell, format!("it failed: {error}")),
            SupervisionEvent::ActorTerminated(cell, _, reason) => (
                cell,
                format!(
                    "it stopped: {}",
                    reason.as_deref().unwrap_or("no reason given")
                ),
            ),
            _ => return Ok(()),
        };
        let Some(watched) = Watched::of(&cell) else {
            return Ok(());
        };
        tracing::error!(actor = ?watched, %reason, "an engine actor died; it is not restarted");
        state.casualties.send_modify(|casualties| {
            casualties.entry(watched).or_insert(reason);
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::actors::broker::WaitBroker;

    /// Bounds a step that takes microseconds, so a stuck one fails the test.
    const STEP: Duration = Duration::from_secs(10);

    async fn watchdog() -> (WatchdogRef, watch::Receiver<Casualties>) {
        let (sender, receiver) = watch::channel(Casualties::new());
        let (watchdog, _) = Actor::spawn(None, Watchdog, sender).await.unwrap();
        (watchdog, receiver)
    }

    #[tokio::test]
    async fn a_killed_child_is_recorded_by_name_and_the_watchdog_stays_up() {
        let (watchdog, mut casualties) = watchdog().await;
        let (broker, _) = Actor::spawn_linked(None, WaitBroker, (), watchdog.get_cell())
            .await
            .unwrap();
        broker.kill_and_wait(Some(STEP)).await.unwrap();
        let recorded = tokio::time::timeout(
            STEP,
            casualties.wait_for(|casualties| !casualties.is_empty()),
        )
        .await
        .unwrap()
        .unwrap()
        .clone();
        assert_eq!(
            recorded.get(&Watched::WaitBroker).map(String::as_str),
            Some("it stopped: killed")
        );
        assert_eq!(recorded.len(), 1);
        assert_eq!(watchdog.get_status(), ractor::ActorStatus::Running);
        watchdog.stop_and_wait(None, Some(STEP)).await.unwrap();
    }

    #[tokio::test]
    async fn a_child_unlinked_before_it_stops_is_no_casualty() {
        let (watchdog, mut casualties) = watchdog().await;
        let (stopped, _) = Actor::spawn_linked(None, WaitBroker, (), watchdog.get_cell())
            .await
            .unwrap();
        stopped.get_cell().unlink(watchdog.get_cell());
        stopped.stop_and_wait(None, Some(STEP)).await.unwrap();
        // A death after it, on the same supervision port: once that one is
        // recorded, an event from the stop would have been handled first,
        // and kept (the first death of a kind is the one recorded).
        let (killed, _) = Actor::spawn_linked(None, WaitBroker, (), watchdog.get_cell())
            .await
            .unwrap();
        killed.kill_and_wait(Some(STEP)).await.unwrap();
        let recorded = tokio::time::timeout(
            STEP,
            casualties.wait_for(|casualties| !casualties.is_empty()),
        )
        .await
        .unwrap()
        .unwrap()
        .clone();
        assert_eq!(
            recorded.get(&Watched::WaitBroker).map(String::as_str),
            Some("it stopped: killed")
        );
        watchdog.stop_and_wait(None, Some(STEP)).await.unwrap();
    }
}
