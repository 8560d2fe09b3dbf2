//! `Supervisor`: owns the app-server's [`Backend`] (a private process, a
//! lease on the shared one, or only someone else's socket) and the
//! connection to it; spawns a `RunActor` per turn and routes each
//! notification and server request to the run of its thread; reconnects
//! when the connection drops, and fails the runs in flight when the
//! app-server itself is gone.
//!
//! Its `handle` never waits on a process, a socket or a file: connecting
//! runs in a task (`link.rs`) while the requests that need the link queue
//! (`start_queue.rs`), and disk look-ups run in tasks (`lookup.rs`).
//!
//! This file is the actor and its dispatch; the work is in its parts:
//! `messages.rs` (what it is sent, and what its tasks report; the bottom
//! layer, which the tasks depend on instead of this file), `state.rs` (what
//! it holds), `spawning.rs` (requests become runs), `connecting.rs` (the
//! link's connect and login tasks and their reports), `routing.rs` (events
//! to runs, runs' reports to the routes).

mod connecting;
mod link;
mod lookup;
mod messages;
mod routing;
mod spawning;
mod start_queue;
mod state;

use std::collections::HashMap;

use ractor::{Actor, ActorProcessingErr, SupervisionEvent};

pub use self::messages::{Adopted, Interrupted, SupervisorArgs, SupervisorMsg, SupervisorRef};
use self::start_queue::{Queued, StartQueue};
use self::state::EndedRuns;
pub use self::state::SupervisorState;
use crate::actors::run::RunMsg;
use crate::actors::types::EngineError;
use crate::appserver::backend::Backend;
use crate::codex_config;
use crate::config::AppServerMode;

pub struct Supervisor;

impl Actor for Supervisor {
    type Msg = SupervisorMsg;
    type State = SupervisorState;
    type Arguments = SupervisorArgs;

    async fn pre_start(
        &self,
        myself: SupervisorRef,
        args: SupervisorArgs,
    ) -> Result<SupervisorState, ActorProcessingErr> {
        if matches!(args.config.app_server, AppServerMode::Shared { .. }) {
            myself.cast(SupervisorMsg::RecoverOrphans)?;
        }
        let codex_home = args.config.codex_home.clone();
        let thread_config =
            tokio::task::spawn_blocking(move || codex_config::thread_overrides(&codex_home))
                .await
                .unwrap_or_default();
        Ok(SupervisorState {
            thread_config,
            backend: Some(Backend::new(&args.config, &args.codex)),
            config: args.config,
            codex: args.codex,
            broker: args.broker,
            news: args.news,
            link: None,
            generation: 0,
            admitting: None,
            queue: StartQueue::default(),
            routes: HashMap::new(),
            runs: HashMap::new(),
            thread_defaults: HashMap::new(),
            sticky: HashMap::new(),
            ended: EndedRuns::default(),
        })
    }

    async fn post_stop(
        &self,
        _myself: SupervisorRef,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        // Runs stop with us (linked); then the private server goes. A shared
        // server stays for other sidecars, and our lease is released. A
        // connect task under way lets its backend go itself.
        for queued in state.queue.take() {
            queued.fail(EngineError::Actor("the supervisor stopped".to_string()));
        }
        if let Some(link) = state.link.take() {
            link.connection.close().await;
        }
        if let Some(backend) = state.backend.take() {
            backend.stop().await;
        }
        Ok(())
    }

    async fn handle(
        &self,
        myself: SupervisorRef,
        message: SupervisorMsg,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            SupervisorMsg::StartRun(request, reply) => {
                state.queue.push(Queued::New { request, reply });
                state.kick(&myself).await;
            }
            SupervisorMsg::Resume(request, reply) => state.resume(&myself, request, reply).await,
            SupervisorMsg::ResumeFound {
                request,
                thread_id,
                cwd,
                reply,
            } => {
                state
                    .resume_on(&myself, *request, thread_id, cwd, reply)
                    .await;
            }
            SupervisorMsg::Approve {
                run_id,
                approval_id,
                choice,
                reply,
            } => match state.runs.get(&run_id) {
                // The run answers the caller itself, once it has responded.
                Some(run) => {
                    let _ = run.cast(RunMsg::Approve {
                        approval_id,
                        choice,
                        reply,
                    });
                }
                None => {
                    let _ = reply.send(Err(EngineError::BadRequest(format!(
                        "run {run_id} is not running here, so it has nothing waiting for approval"
                    ))));
                }
            },
            SupervisorMsg::Interrupt(run_id, reply) => match state.runs.get(&run_id) {
                Some(run) => {
                    let outcome = run
                        .cast(RunMsg::Interrupt)
                        .map(|()| Interrupted::Requested)
                        .map_err(EngineError::from);
                    let _ = reply.send(outcome);
                }
                None => lookup::interrupt_elsewhere(&myself, state.config.clone(), run_id, reply),
            },
            SupervisorMsg::Adopt(run_id, reply) => {
                lookup::adopt(&myself, state.config.clone(), run_id, reply);
            }
            SupervisorMsg::InterruptElsewhere {
                thread_id,
                turn_id,
                reply,
            } => {
                let interrupt = Queued::Interrupt {
                    thread_id,
                    turn_id,
                    reply,
                };
                state.queue.push(interrupt);
                state.kick(&myself).await;
            }
            SupervisorMsg::AdoptFound { located, reply } => {
                if state.runs.contains_key(&located.run_id) {
                    if let Some(reply) = reply {
                        let _ = reply.send(Ok(Adopted::Live));
                    }
                } else {
                    state.queue.push(Queued::Adopt { located, reply });
                    state.kick(&myself).await;
                }
            }
            SupervisorMsg::Run(report) => state.on_report(report),
            SupervisorMsg::Event { generation, event } => {
                if state
                    .link
                    .as_ref()
                    .is_some_and(|link| link.generation == generation)
                {
                    state.on_event(&myself, event).await;
                }
            }
            SupervisorMsg::Stderr(line) => {
                for run in state.runs.values() {
                    let _ = run.cast(RunMsg::Stderr(line.clone()));
                }
            }
            SupervisorMsg::Linked(report) => state.on_linked(&myself, *report).await,
            SupervisorMsg::RecoverOrphans => {
                if let AppServerMode::Shared { url } = &state.config.app_server {
                    lookup::orphans(&myself, state.config.clone(), url.clone());
                }
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        _myself: SupervisorRef,
        event: SupervisionEvent,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        // A run actor that panicked is gone; forget it so that its thread
        // can be resumed. Nothing is restarted: a run is one turn.
        if let SupervisionEvent::ActorFailed(cell, error) = event {
            tracing::error!(%error, "a run actor failed");
            state.runs.retain(|_, run| run.get_id() != cell.get_id());
            state.routes.retain(|_, run| run.get_id() != cell.get_id());
        }
        Ok(())
    }
}
