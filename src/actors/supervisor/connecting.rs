//! The link's life as the Supervisor sees it: starting the connect or login
//! task the queue needs, taking in its report, and installing a new
//! connection (its events and the private server's stderr pumped into the
//! mailbox, tagged with the link's generation).

use super::link::{self, LoginCheck};
use super::messages::{LinkOutcome, LinkReport, NewLink, SupervisorMsg, SupervisorRef};
use super::state::{Link, SupervisorState};
use crate::actors::run::RunMsg;
use crate::actors::types::EngineError;
use crate::appserver::{AppServerConnection, ServerEvent};

impl SupervisorState {
    /// Moves the queue along: spawns its runs when the link is up and (for
    /// turns) the login passed; otherwise starts the task that gets there,
    /// unless one is under way (its report kicks again).
    pub(super) async fn kick(&mut self, myself: &SupervisorRef) {
        if self.queue.is_empty() || self.admitting.is_some() {
            return;
        }
        let check = LoginCheck {
            codex_home: self.config.codex_home.clone(),
            codex: self.codex.clone(),
        };
        let wants_login = self.queue.any_starts_turn();
        match &self.link {
            Some(link) if !link.connection.is_closed() => {
                if !wants_login || link.login.passed() {
                    self.drain(myself, Ok(())).await;
                } else {
                    self.admitting = Some(link.generation);
                    link::admit(myself, link.connection.clone(), link.generation, check);
                }
            }
            _ => {
                // `None`: a connect task holds the backend; it kicks again.
                if let Some(backend) = self.backend.take() {
                    self.link = None;
                    link::connect(myself, backend, wants_login.then_some(check));
                }
            }
        }
    }

    /// A connect task's report: the backend comes home, and the queue and
    /// the live runs learn the outcome.
    pub(super) async fn on_linked(&mut self, myself: &SupervisorRef, report: LinkReport) {
        if let Some(backend) = report.backend {
            self.backend = Some(backend);
        }
        match report.outcome {
            LinkOutcome::Connected {
                link,
                login,
                after_drop,
            } => {
                let connection = self.install(myself, link);
                if after_drop {
                    for run in self.runs.values() {
                        let _ = run.cast(RunMsg::Reconnected(connection.clone()));
                    }
                }
                if let Some(login) = login {
                    self.drain(myself, login).await;
                }
            }
            LinkOutcome::Admitted {
                generation,
                gate,
                login,
            } => {
                if self.admitting == Some(generation) {
                    self.admitting = None;
                }
                if let Some(link) = self.link.as_mut()
                    && link.generation == generation
                {
                    link.login = gate;
                    self.drain(myself, login).await;
                }
            }
            LinkOutcome::Failed {
                error,
                after_drop: true,
            } => {
                self.fail_runs(&format!(
                    "lost the app-server connection and could not reconnect: {error}"
                ));
            }
            LinkOutcome::Failed {
                error,
                after_drop: false,
            } => {
                let message = error.to_string();
                let mut first = Some(error);
                for queued in self.queue.take() {
                    let error = first
                        .take()
                        .unwrap_or_else(|| EngineError::Unreachable(message.clone()));
                    queued.fail(error);
                }
            }
            LinkOutcome::Gone { reason } => self.fail_runs(&reason),
            LinkOutcome::Idle => {}
        }
        self.kick(myself).await;
    }

    /// Makes a task's new connection the link.
    pub(super) fn install(&mut self, myself: &SupervisorRef, link: NewLink) -> AppServerConnection {
        self.generation += 1;
        let generation = self.generation;
        pump_events(myself, generation, link.events);
        if let Some(lines) = link.stderr {
            forward_stderr(myself, lines);
        }
        self.link = Some(Link {
            connection: link.connection.clone(),
            url: link.url,
            token_file: link.token_file,
            generation,
            login: link.gate,
        });
        link.connection
    }
}

/// Moves the connection's events into the supervisor's mailbox.
fn pump_events(
    myself: &SupervisorRef,
    generation: u64,
    mut events: tokio::sync::mpsc::Receiver<ServerEvent>,
) {
    let supervisor = myself.clone();
    tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            if supervisor
                .cast(SupervisorMsg::Event { generation, event })
                .is_err()
            {
                break;
            }
        }
    });
}

fn forward_stderr(myself: &SupervisorRef, mut lines: tokio::sync::broadcast::Receiver<String>) {
    let supervisor = myself.clone();
    tokio::spawn(async move {
        loop {
            match lines.recv().await {
                Ok(line) => {
                    if supervisor.cast(SupervisorMsg::Stderr(line)).is_err() {
                        break;
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(missed)) => {
                    let note = format!("[{missed} app-server stderr lines were dropped]");
                    let _ = supervisor.cast(SupervisorMsg::Stderr(note));
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
            }
        }
    });
}
