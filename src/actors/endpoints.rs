//! Which `Supervisor` a request goes to. Each endpoint is its own
//! app-server, so each has its own supervisor (the default one, and one per
//! endpoint of `endpoints.toml`, which connects only when a run needs it).
//! A new run names its endpoint; everything after it (a resume, a wait
//! that adopts, an interrupt, an approval) goes where the run went: known
//! in memory for runs started here, read from the pointer index for runs
//! started by another sidecar.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use ractor::{Actor, ActorRef};

use super::supervisor::{Supervisor, SupervisorArgs, SupervisorMsg};
use super::types::{EngineError, ResumeTarget};
use crate::actors::broker::BrokerRef;
use crate::codex_bin::CodexBinary;
use crate::config::{Config, DEFAULT_ENDPOINT};
use crate::protocol::ThreadId;
use crate::store::{self, RunId};

/// A supervisor and the configuration it runs with (its app-server).
#[derive(Clone)]
pub(super) struct Served {
    pub supervisor: ActorRef<SupervisorMsg>,
    pub config: Config,
}

/// Every endpoint's supervisor, and where each run and thread went.
#[derive(Clone)]
pub(super) struct Endpoints {
    default: Served,
    named: Arc<HashMap<String, Served>>,
    /// Runs and threads started here, by endpoint name (absent: default).
    placed: Arc<Mutex<Placed>>,
    /// What `endpoints.toml` said was wrong, for a run that names one.
    problem: Option<String>,
    pointer_index: PathBuf,
}

#[derive(Default)]
struct Placed {
    runs: HashMap<RunId, String>,
    threads: HashMap<ThreadId, String>,
}

impl Endpoints {
    /// The default supervisor is given; one is spawned per named endpoint.
    /// None of them connects before a run needs it.
    pub async fn start(
        default: ActorRef<SupervisorMsg>,
        config: &Config,
        codex: &CodexBinary,
        broker: &BrokerRef,
    ) -> Result<Endpoints, EngineError> {
        let mut named = HashMap::new();
        for endpoint in &config.endpoints.list {
            let Some(config) = config.for_endpoint(&endpoint.name) else {
                continue;
            };
            let args = SupervisorArgs {
                config: config.clone(),
                codex: codex.clone(),
                broker: broker.clone(),
                // Another server, maybe another account: its figures and
                // warnings are its own (its runs' results carry them).
                news: super::news::AccountNews::default(),
            };
            let (supervisor, _) = Actor::spawn(None, Supervisor, args)
                .await
                .map_err(|error| EngineError::Actor(error.to_string()))?;
            named.insert(endpoint.name.clone(), Served { supervisor, config });
        }
        Ok(Endpoints {
            default: Served {
                supervisor: default,
                config: config.clone(),
            },
            named: Arc::new(named),
            placed: Arc::default(),
            problem: config.endpoints.problem.as_ref().map(ToString::to_string),
            pointer_index: config.pointer_index(),
        })
    }

    /// The endpoint a new run names (`None`: the default); an unknown name
    /// is refused with the names there are.
    pub fn named(&self, name: Option<&str>) -> Result<&Served, EngineError> {
        let name = match name {
            None | Some(DEFAULT_ENDPOINT) => return Ok(&self.default),
            Some(name) => name,
        };
        if let Some(served) = self.named.get(name) {
            return Ok(served);
        }
        let mut known: Vec<&str> = self.named.keys().map(String::as_str).collect();
        known.sort_unstable();
        known.insert(0, DEFAULT_ENDPOINT);
        let file = match &self.problem {
            Some(problem) => format!(" (endpoints.toml could not be used: {problem})"),
            None => String::new(),
        };
        Err(EngineError::BadRequest(format!(
            "unknown endpoint {name:?}: the endpoints are {}{file}",
            known.join(", ")
        )))
    }

    /// Remembers where a run started here went.
    pub fn place(&self, run_id: &RunId, thread_id: &ThreadId, endpoint: &str) {
        if endpoint == DEFAULT_ENDPOINT {
            return;
        }
        if let Ok(mut placed) = self.placed.lock() {
            placed.runs.insert(run_id.clone(), endpoint.to_string());
            placed
                .threads
                .insert(thread_id.clone(), endpoint.to_string());
        }
    }

    /// The supervisor of the endpoint a run went to.
    pub async fn of_run(&self, run_id: &RunId) -> Result<&Served, EngineError> {
        let name = self.recorded(Which::Run(run_id.clone())).await;
        self.of_record(name.as_deref(), &format!("run {run_id}"))
    }

    /// The supervisor a resume goes to: its run's (or thread's) endpoint;
    /// `asked` only when nothing records one.
    pub async fn of_target(
        &self,
        target: &ResumeTarget,
        asked: Option<&str>,
    ) -> Result<&Served, EngineError> {
        let which = match target {
            ResumeTarget::Run(run_id) => Which::Run(run_id.clone()),
            ResumeTarget::Thread(thread_id) => Which::Thread(thread_id.clone()),
        };
        match self.recorded(which).await {
            Some(name) => self.of_record(Some(&name), &target.to_string()),
            None => self.named(asked),
        }
    }

    fn of_record(&self, name: Option<&str>, what: &str) -> Result<&Served, EngineError> {
        match name {
            None | Some(DEFAULT_ENDPOINT) => Ok(&self.default),
            Some(name) => self.named.get(name).ok_or_else(|| {
                EngineError::BadRequest(format!(
                    "{what} went to endpoint {name:?}, which endpoints.toml no longer names"
                ))
            }),
        }
    }

    /// Every supervisor, the default first (for shutdown).
    pub fn all(&self) -> impl Iterator<Item = &Served> {
        std::iter::once(&self.default).chain(self.named.values())
    }

    /// The endpoint name a run or thread went to: from memory, else the
    /// newest pointer row that names it (read on the blocking pool).
    async fn recorded(&self, which: Which) -> Option<String> {
        if self.named.is_empty() {
            return None;
        }
        if let Ok(placed) = self.placed.lock() {
            let known = match &which {
                Which::Run(run_id) => placed.runs.get(run_id),
                Which::Thread(thread_id) => placed.threads.get(thread_id),
            };
            if let Some(name) = known {
                return Some(name.clone());
            }
        }
        let pointer_index = self.pointer_index.clone();
        tokio::task::spawn_blocking(move || {
            store::read_pointer(&pointer_index)
                .unwrap_or_default()
                .into_iter()
                .rev()
                .find(|row| match &which {
                    Which::Run(run_id) => &row.run_id == run_id,
                    Which::Thread(thread_id) => {
                        row.thread_id.as_deref() == Some(thread_id.as_str())
                    }
                })
                .and_then(|row| row.endpoint)
        })
        .await
        .ok()
        .flatten()
    }
}

enum Which {
    Run(RunId),
    Thread(ThreadId),
}
