//! The Supervisor's look-ups on disk (the project index, the pointer index,
//! audit files), each in a task on the blocking pool, so `handle` never
//! waits on a file. A look-up answers its caller itself, or hands what it
//! found back to the Supervisor when state must change.

use std::path::PathBuf;

use ractor::RpcReplyPort;

use super::messages::{AdoptReply, Adopted, Interrupted, StartReply, SupervisorMsg, SupervisorRef};
use crate::actors::resolve::{self, Located};
use crate::actors::types::{EngineError, ResumeRequest, ResumeTarget};
use crate::config::Config;
use crate::store::{ActiveRecord, RunId};

/// A run's thread and project, from the disk.
async fn find(
    config: Config,
    run_id: RunId,
    cwd_hint: Option<PathBuf>,
) -> Result<Located, EngineError> {
    let id = run_id.clone();
    tokio::task::spawn_blocking(move || resolve::locate(&config, &id, cwd_hint.as_deref()))
        .await
        .map_err(|error| EngineError::Actor(error.to_string()))?
        .ok_or_else(|| EngineError::UnknownRun(run_id.to_string()))
}

/// The active record of a run that is live in another sidecar (its owner
/// alive, no end record): one to follow, never to adopt.
fn live_elsewhere(located: &Located) -> Option<&ActiveRecord> {
    located.active.as_ref().filter(|active| {
        located.ended.is_none()
            && resolve::process_alive(active.pid)
            && active.pid != std::process::id()
    })
}

/// An interrupt of a run not live here: live in another sidecar (stopped
/// from our connection), ended (a no-op), or unknown.
pub fn interrupt_elsewhere(
    supervisor: &SupervisorRef,
    config: Config,
    run_id: RunId,
    reply: RpcReplyPort<Result<Interrupted, EngineError>>,
) {
    let supervisor = supervisor.clone();
    tokio::spawn(async move {
        let located = match find(config, run_id, None).await {
            Ok(located) => located,
            Err(error) => {
                let _ = reply.send(Err(error));
                return;
            }
        };
        if let Some(turn_id) = live_elsewhere(&located).and_then(|active| active.turn_id.clone()) {
            let message = SupervisorMsg::InterruptElsewhere {
                thread_id: located.thread_id,
                turn_id,
                reply,
            };
            if let Err(ractor::MessagingErr::SendErr(SupervisorMsg::InterruptElsewhere {
                reply,
                ..
            })) = supervisor.cast(message)
            {
                let _ = reply.send(Err(EngineError::Actor(
                    "the supervisor stopped".to_string(),
                )));
            }
            return;
        }
        let _ = reply.send(Ok(Interrupted::AlreadyEnded(
            located.ended.map(|end| end.status),
        )));
    });
}

/// A wait on a run no actor has: its result rebuilt from the audit, or the
/// run handed back to the Supervisor to adopt when its sidecar died.
pub fn adopt(supervisor: &SupervisorRef, config: Config, run_id: RunId, reply: AdoptReply) {
    let supervisor = supervisor.clone();
    tokio::spawn(async move {
        let located = match find(config, run_id.clone(), None).await {
            Ok(located) => located,
            Err(error) => {
                let _ = reply.send(Err(error));
                return;
            }
        };
        if let Some(end) = &located.ended {
            let (located, end) = (located.clone(), end.clone());
            let result =
                tokio::task::spawn_blocking(move || resolve::finished_result(&located, &end))
                    .await
                    .map(|result| Adopted::Finished(Box::new(result)))
                    .map_err(|error| EngineError::Actor(error.to_string()));
            let _ = reply.send(result);
            return;
        }
        if live_elsewhere(&located).is_some() {
            let _ = reply.send(Ok(Adopted::Followed(Box::new(located))));
            return;
        }
        let refusal = match &located.active {
            Some(_) => {
                let message = SupervisorMsg::AdoptFound {
                    located: Box::new(located),
                    reply: Some(reply),
                };
                if let Err(ractor::MessagingErr::SendErr(SupervisorMsg::AdoptFound {
                    reply: Some(reply),
                    ..
                })) = supervisor.cast(message)
                {
                    let _ = reply.send(Err(EngineError::Actor(
                        "the supervisor stopped".to_string(),
                    )));
                }
                return;
            }
            None => EngineError::BadRequest(format!(
                "run {run_id} has no end record and is not listed as running; its audit is incomplete"
            )),
        };
        let _ = reply.send(Err(refusal));
    });
}

/// Runs a dead sidecar left running on the shared server at `url`, each
/// handed to the Supervisor to adopt.
pub fn orphans(supervisor: &SupervisorRef, config: Config, url: String) {
    let supervisor = supervisor.clone();
    tokio::spawn(async move {
        let orphans = tokio::task::spawn_blocking(move || resolve::orphans(&config, &url))
            .await
            .unwrap_or_default();
        for located in orphans {
            tracing::info!(run_id = %located.run_id, "adopting a run whose sidecar died");
            let message = SupervisorMsg::AdoptFound {
                located: Box::new(located),
                reply: None,
            };
            if supervisor.cast(message).is_err() {
                break;
            }
        }
    });
}

/// The thread and project of a resume whose target the Supervisor does not
/// hold in memory, handed back to it to start.
pub fn resume_target(
    supervisor: &SupervisorRef,
    config: Config,
    request: ResumeRequest,
    reply: StartReply,
) {
    let supervisor = supervisor.clone();
    tokio::spawn(async move {
        let found = match &request.target {
            ResumeTarget::Run(run_id) => find(config, run_id.clone(), request.cwd.clone())
                .await
                .map(|earlier| {
                    let cwd = request.cwd.clone().unwrap_or(earlier.cwd);
                    (earlier.thread_id, cwd)
                }),
            ResumeTarget::Thread(thread_id) => {
                let id = thread_id.clone();
                tokio::task::spawn_blocking(move || resolve::project_of_thread(&config, &id))
                    .await
                    .map_err(|error| EngineError::Actor(error.to_string()))
                    .and_then(|cwd| {
                        cwd.map(|cwd| (thread_id.clone(), cwd))
                            .ok_or_else(|| EngineError::UnknownSession(thread_id.clone()))
                    })
            }
        };
        match found {
            Ok((thread_id, cwd)) => {
                let message = SupervisorMsg::ResumeFound {
                    request: Box::new(request),
                    thread_id,
                    cwd,
                    reply,
                };
                if let Err(ractor::MessagingErr::SendErr(SupervisorMsg::ResumeFound {
                    reply,
                    ..
                })) = supervisor.cast(message)
                {
                    let _ = reply.send(Err(EngineError::Actor(
                        "the supervisor stopped".to_string(),
                    )));
                }
            }
            Err(error) => {
                let _ = reply.send(Err(error));
            }
        }
    });
}
