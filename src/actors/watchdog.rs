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
