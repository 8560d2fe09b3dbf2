//! Who gets what: the connection's notifications and server requests go to
//! the run of their thread, a run's reports keep the routes and the
//! remembered threads current, and a lost connection starts the recovery.

use super::link;
use super::messages::SupervisorRef;
use super::state::SupervisorState;
use crate::actors::run::{RunMsg, RunReport};
use crate::appserver::ServerEvent;
use crate::protocol::jsonrpc::RpcError;
use crate::protocol::{NotificationKind, ServerNotification};

/// JSON-RPC code for a server request no run claims.
const UNROUTED_REQUEST: i64 = -32001;

impl SupervisorState {
    pub(super) async fn on_event(&mut self, myself: &SupervisorRef, event: ServerEvent) {
        match event {
            ServerEvent::Notification(note) => {
                let Some(thread) = note.thread_id() else {
                    self.on_connection_note(&note);
                    return;
                };
                match self.routes.get(thread) {
                    Some(run) => {
                        let _ = run.cast(RunMsg::Notification(note));
                    }
                    // Another client's turn may have changed what sticks.
                    None if note.method == "turn/started" => {
                        self.sticky.remove(thread);
                    }
                    None => {}
                }
            }
            ServerEvent::Request(request) => {
                match request
                    .thread_id()
                    .and_then(|thread| self.routes.get(thread))
                {
                    Some(run) => {
                        let _ = run.cast(RunMsg::Request(request));
                    }
                    None => {
                        // Never leave a request hanging, even one no run claims.
                        let error = RpcError {
                            code: UNROUTED_REQUEST,
                            message: format!("no run of this sidecar owns {}", request.method),
                            data: None,
                        };
                        if let Some(link) = &self.link {
                            let _ = link.connection.respond_error(&request.id, &error).await;
                        }
                    }
                }
            }
            ServerEvent::Disconnected { reason } => {
                tracing::warn!(%reason, "app-server connection lost");
                self.link = None;
                // A login check on the dropped link reports a stale
                // generation; the queue waits for the reconnect instead.
                self.admitting = None;
                // `None`: a connect task is under way already, and its
                // report decides.
                if let Some(backend) = self.backend.take() {
                    link::recover(
                        myself,
                        backend,
                        reason,
                        !self.runs.is_empty(),
                        self.config.remote_reconnect_window,
                    );
                }
            }
        }
    }

    /// A notification about the account or the connection, not one thread:
    /// rate limits are kept and handed to every live run (each result
    /// carries the figures as its turn left them; the run's audit keeps
    /// the notification); warnings are kept for the check.
    fn on_connection_note(&self, note: &ServerNotification) {
        match &note.kind {
            NotificationKind::RateLimitsUpdated(update) => {
                self.news.rate_limits(update.rate_limits);
                for run in self.runs.values() {
                    let copy = ServerNotification::new(note.method.clone(), note.params.clone());
                    let _ = run.cast(RunMsg::Notification(copy));
                }
            }
            NotificationKind::ConfigWarning(warning) => self.news.warning(warning.line()),
            NotificationKind::Warning(warning) => self.news.warning(warning.message.clone()),
            _ => {}
        }
    }

    pub(super) fn fail_runs(&self, reason: &str) {
        for run in self.runs.values() {
            let _ = run.cast(RunMsg::ServerGone(reason.to_string()));
        }
    }

    /// A run's report: its thread's route and defaults, or its end (the
    /// route goes unless another live run holds it; the thread is
    /// remembered for a resume).
    pub(super) fn on_report(&mut self, report: RunReport) {
        match report {
            RunReport::ThreadDefaults {
                thread_id,
                model,
                reasoning_effort,
            } => {
                self.thread_defaults
                    .insert(thread_id, (model, reasoning_effort));
            }
            RunReport::Route { thread_id, run } => {
                self.routes.insert(thread_id, run);
            }
            RunReport::Ended {
                run_id,
                thread_id,
                cwd,
                sticky,
            } => {
                self.runs.remove(&run_id);
                match sticky {
                    // A new thread's turn named no model or effort: it has
                    // the thread's own.
                    Some(mut sticky) => {
                        if let Some((model, effort)) = self.thread_defaults.get(&thread_id) {
                            sticky.model = sticky.model.or_else(|| model.clone());
                            sticky.reasoning_effort =
                                sticky.reasoning_effort.or_else(|| effort.clone());
                        }
                        self.sticky.insert(thread_id.clone(), sticky);
                    }
                    None => {
                        self.sticky.remove(&thread_id);
                    }
                }
                self.ended.remember(run_id, thread_id.clone(), cwd);
                if let Some(run) = self.routes.get(&thread_id)
                    && !self.runs.values().any(|live| live.get_id() == run.get_id())
                {
                    self.routes.remove(&thread_id);
                }
            }
        }
    }
}
