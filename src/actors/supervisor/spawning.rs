//! Turning requests into runs: a resume finds its thread (in memory, else
//! on disk), requests queue for the link, and once it is up (and the login
//! passed) each becomes a `RunActor` linked to the Supervisor.

use std::path::PathBuf;
use std::time::Duration;

use ractor::{Actor, RpcReplyPort};

use super::lookup;
use super::messages::{Adopted, StartReply, SupervisorRef};
use super::start_queue::Queued;
use super::state::SupervisorState;
use crate::actors::broker::BrokerMsg;
use crate::actors::follow;
use crate::actors::resolve::Located;
use crate::actors::run::{ResumeStart, RunActor, RunArgs, Start};
use crate::actors::run_state::RunSettings;
use crate::actors::types::ThreadExtras;
use crate::actors::types::{
    EngineError, ResumeRequest, ResumeTarget, RunRequest, RunStarted, TurnSettings,
};
use crate::appserver::AppServerConnection;
use crate::appserver::account::NotLoggedIn;
use crate::codex_config;
use crate::protocol::ThreadId;
use crate::store::{self, RunId};

impl SupervisorState {
    /// A resume: its thread from memory when it can, else from the disk in a
    /// task that hands it back ([`super::SupervisorMsg::ResumeFound`]).
    pub(super) async fn resume(
        &mut self,
        myself: &SupervisorRef,
        request: ResumeRequest,
        reply: StartReply,
    ) {
        let known = match &request.target {
            ResumeTarget::Run(run_id) => self.ended.get(run_id).map(|(thread_id, cwd)| {
                let cwd = request.cwd.clone().unwrap_or_else(|| cwd.clone());
                (thread_id.clone(), cwd)
            }),
            ResumeTarget::Thread(thread_id) => request
                .cwd
                .clone()
                .or_else(|| self.ended.project_of(thread_id).cloned())
                .map(|cwd| (thread_id.clone(), cwd)),
        };
        match known {
            Some((thread_id, cwd)) => {
                self.resume_on(myself, request, thread_id, cwd, reply).await;
            }
            None => lookup::resume_target(myself, self.config.clone(), request, reply),
        }
    }

    /// A resume whose thread is known: refused while the thread has a live
    /// turn, else queued for the link.
    pub(super) async fn resume_on(
        &mut self,
        myself: &SupervisorRef,
        request: ResumeRequest,
        thread_id: ThreadId,
        cwd: PathBuf,
        reply: StartReply,
    ) {
        let Some(reply) = self.refuse_if_busy(&thread_id, &request, reply) else {
            return;
        };
        self.queue.push(Queued::Resume {
            request,
            thread_id,
            cwd,
            reply,
        });
        self.kick(myself).await;
    }

    /// A resume's reply back while its thread has no live turn; else the
    /// caller is told `StillRunning` and `None` comes back.
    fn refuse_if_busy(
        &self,
        thread_id: &ThreadId,
        request: &ResumeRequest,
        reply: StartReply,
    ) -> Option<StartReply> {
        if self.routes.contains_key(thread_id) {
            let target = request.target.to_string();
            let _ = reply.send(Err(EngineError::StillRunning { target }));
            return None;
        }
        Some(reply)
    }

    /// Spawns a run for each queued request on the live link; a refused
    /// login refuses the ones that start a turn.
    pub(super) async fn drain(&mut self, myself: &SupervisorRef, login: Result<(), NotLoggedIn>) {
        let Some(connection) = self.link.as_ref().map(|link| link.connection.clone()) else {
            return;
        };
        for queued in self.queue.take() {
            match (&login, queued) {
                (Err(refusal), queued) if queued.starts_turn() => {
                    queued.fail(refusal.clone().into());
                }
                (_, Queued::New { request, reply }) => {
                    self.start_run(myself, connection.clone(), request, reply)
                        .await;
                }
                (
                    _,
                    Queued::Resume {
                        request,
                        thread_id,
                        cwd,
                        reply,
                    },
                ) => {
                    self.start_resume(myself, connection.clone(), request, thread_id, cwd, reply)
                        .await;
                }
                (
                    _,
                    Queued::Interrupt {
                        thread_id,
                        turn_id,
                        reply,
                    },
                ) => follow::interrupt(connection.clone(), thread_id, turn_id, reply),
                (_, Queued::Adopt { located, reply }) => {
                    let outcome = self
                        .adopt_located(myself, connection.clone(), *located)
                        .await
                        .map(|()| Adopted::Live);
                    match reply {
                        Some(reply) => {
                            let _ = reply.send(outcome);
                        }
                        None => {
                            if let Err(error) = outcome {
                                tracing::warn!(%error, "could not adopt an orphaned run");
                            }
                        }
                    }
                }
            }
        }
    }

    pub(super) async fn start_run(
        &mut self,
        myself: &SupervisorRef,
        connection: AppServerConnection,
        request: RunRequest,
        reply: StartReply,
    ) {
        let extras = ThreadExtras {
            config: codex_config::merged(&self.thread_config, request.extras.config.clone()),
            ..request.extras.clone()
        };
        let settings = self.run_settings(&request.turn, Default::default(), extras);
        let title = store::title_for(request.run_name.as_deref(), &request.prompt);
        let args = self.run_args(
            myself,
            connection,
            Start::New { settings },
            request.prompt,
            title,
            request.cwd,
            request.turn.timeout,
            Some(reply),
        );
        let args = RunArgs {
            slot: request.turn.slot,
            ..args
        };
        self.spawn_run(myself, args).await;
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) async fn start_resume(
        &mut self,
        myself: &SupervisorRef,
        connection: AppServerConnection,
        request: ResumeRequest,
        thread_id: ThreadId,
        cwd: PathBuf,
        reply: StartReply,
    ) {
        // Checked again: a run may have taken the thread while this waited.
        let Some(reply) = self.refuse_if_busy(&thread_id, &request, reply) else {
            return;
        };
        // An override is for this request; without one, go back to the
        // thread's own model and effort.
        let defaults = self
            .thread_defaults
            .get(&thread_id)
            .cloned()
            .unwrap_or_default();
        let extras = ThreadExtras {
            config: codex_config::merged(&self.thread_config, None),
            ..ThreadExtras::default()
        };
        let settings = self.run_settings(&request.turn, defaults, extras);
        let title = store::title_for(None, &request.prompt);
        let start = Start::Resume(ResumeStart {
            known: self.sticky.get(&thread_id).cloned(),
            thread_id,
            settings,
            chosen_access: request.chooses_access(),
        });
        let args = self.run_args(
            myself,
            connection,
            start,
            request.prompt,
            title,
            cwd,
            request.turn.timeout,
            Some(reply),
        );
        let args = RunArgs {
            slot: request.turn.slot,
            ..args
        };
        self.spawn_run(myself, args).await;
    }

    /// What a turn runs with: the caller's choices, gaps in its access
    /// filled from the configured default, in its model and effort from
    /// `defaults` (a resumed thread's own).
    fn run_settings(
        &self,
        turn: &TurnSettings,
        defaults: (Option<String>, Option<String>),
        extras: ThreadExtras,
    ) -> RunSettings {
        let permissions = turn.permissions.unwrap_or(self.config.default_permissions);
        let (default_model, default_effort) = defaults;
        RunSettings {
            permissions,
            sandbox: turn.sandbox.unwrap_or(permissions.sandbox()),
            approval_policy: turn
                .approval_policy
                .unwrap_or(permissions.approval_policy()),
            model: turn.model.clone().or(default_model),
            reasoning_effort: turn.reasoning_effort.clone().or(default_effort),
            extras,
            interactive: turn.interactive,
            person: turn.person.clone(),
        }
    }

    pub(super) async fn adopt_located(
        &mut self,
        myself: &SupervisorRef,
        connection: AppServerConnection,
        located: Located,
    ) -> Result<(), EngineError> {
        let Some(active) = located.active.clone() else {
            return Ok(());
        };
        if self.runs.contains_key(&located.run_id) {
            return Ok(());
        }
        // The broker hears of the run before anyone is told to wait on it.
        self.broker.cast(BrokerMsg::Started {
            run_id: located.run_id.clone(),
            thread_id: located.thread_id.clone(),
            title: active.title.clone(),
            cwd: located.cwd.clone(),
        })?;
        let args = self.run_args(
            myself,
            connection,
            Start::Recover(Box::new(active.clone())),
            String::new(),
            active.title.clone(),
            located.cwd.clone(),
            None,
            None,
        );
        let mut args = args;
        args.run_id = located.run_id.clone();
        args.run_dir = located.run_dir.clone();
        self.spawn_run(myself, args).await;
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn run_args(
        &self,
        myself: &SupervisorRef,
        connection: AppServerConnection,
        start: Start,
        prompt: String,
        title: String,
        cwd: PathBuf,
        timeout: Option<Duration>,
        reply: Option<RpcReplyPort<Result<RunStarted, EngineError>>>,
    ) -> RunArgs {
        RunArgs {
            run_id: RunId::generate(),
            start,
            prompt,
            title,
            run_dir: self.config.run_dir(&cwd),
            cwd,
            connection,
            reports: myself.get_derived(),
            broker: self.broker.clone(),
            pointer_index: self.config.pointer_index(),
            app_server_url: self
                .link
                .as_ref()
                .map(|link| link.url.clone())
                .unwrap_or_default(),
            app_server_token_file: self.link.as_ref().and_then(|link| link.token_file.clone()),
            endpoint: self
                .config
                .is_remote()
                .then(|| self.config.endpoint_name().to_string()),
            timeout: timeout.unwrap_or(self.config.run_timeout),
            reply,
            slot: None,
        }
    }

    pub(super) async fn spawn_run(&mut self, myself: &SupervisorRef, args: RunArgs) {
        let run_id = args.run_id.clone();
        match Actor::spawn_linked(None, RunActor, args, myself.get_cell()).await {
            Ok((run, _)) => {
                self.runs.insert(run_id, run);
            }
            // pre_start only moves its arguments; this means the runtime is
            // shutting down, and the reply port went with the arguments.
            Err(error) => tracing::error!(%error, "could not spawn a run actor"),
        }
    }
}
