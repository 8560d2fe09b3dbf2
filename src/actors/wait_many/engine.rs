//! The engine's side of a wait on several runs: each run is first looked at
//! as a single wait of no slice looks at it (so a run known only to its
//! audit, or live in another sidecar, is answered, adopted or followed as
//! today), then the broker holds the wait on those still going.

use std::time::Duration;

use futures_util::future::join_all;

use crate::actors::broker::BrokerMsg;
use crate::actors::wait_many::{self, ManyOutcome, RunStanding, WaitMode};
use crate::actors::{Engine, EngineError, WAIT_CALL_MARGIN, Watched};
use crate::store::RunId;

impl Engine {
    /// One slice of a wait on several runs (`ids` as the caller gave them):
    /// over at the first end (`Any`) or the last (`All`), or with where each
    /// run stands when `slice` ends first. An id that is not a run, or not
    /// known anywhere, stands as its own error; the others are waited on.
    pub async fn wait_many(
        &self,
        ids: &[String],
        mode: WaitMode,
        slice: Option<Duration>,
    ) -> Result<ManyOutcome, EngineError> {
        let parsed = wait_many::parse_ids(ids).map_err(EngineError::BadRequest)?;
        self.needs(Watched::WaitBroker)?;
        let looks = join_all(parsed.iter().map(|(_, run_id)| self.look(run_id))).await;
        let mut runs = Vec::with_capacity(parsed.len());
        let mut waiting: Vec<(usize, RunId)> = Vec::new();
        for (index, ((id, run_id), look)) in parsed.into_iter().zip(looks).enumerate() {
            let standing = look?;
            if let (true, Ok(run_id)) = (wait_many::waitable(&standing), run_id) {
                waiting.push((index, run_id));
            }
            runs.push((id, standing));
        }
        if waiting.is_empty() || wait_many::done(mode, runs.iter().map(|(_, standing)| standing)) {
            return Ok(ManyOutcome { mode, runs });
        }
        let run_ids: Vec<RunId> = waiting.iter().map(|(_, run_id)| run_id.clone()).collect();
        let outcome = self
            .broker
            .call(
                |reply| BrokerMsg::WaitMany {
                    run_ids,
                    mode,
                    soft_timeout: slice,
                    reply,
                },
                slice.map(|slice| slice.saturating_add(WAIT_CALL_MARGIN)),
            )
            .await;
        let standings = self.blame(Watched::WaitBroker, outcome)?;
        for ((index, _), standing) in waiting.into_iter().zip(standings) {
            runs[index].1 = standing;
        }
        Ok(ManyOutcome { mode, runs })
    }

    /// Where one run stands now, as a single wait of no slice finds it. A
    /// run that cannot be waited on (unknown, lost, its audit unreadable)
    /// stands as that error; the engine's own actors failing is the whole
    /// wait's error.
    async fn look(&self, run_id: &Result<RunId, String>) -> Result<RunStanding, EngineError> {
        let run_id = match run_id {
            Ok(run_id) => run_id,
            Err(error) => return Ok(Err(error.clone())),
        };
        match self.wait(run_id, Some(Duration::ZERO)).await {
            Ok(outcome) => Ok(Ok(outcome)),
            Err(error @ (EngineError::Actor(_) | EngineError::ActorDied { .. })) => Err(error),
            Err(error) => Ok(Err(error.to_string())),
        }
    }
}
