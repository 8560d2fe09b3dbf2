//! The server's lifecycle: serving stdio until the client closes it,
//! finding Codex and starting the engine meanwhile, and the last replies'
//! way out.

use std::path::PathBuf;
use std::time::Duration;

use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Shared};
use rmcp::ServiceExt;
use rmcp::model::CallToolResult;
use rmcp::task_manager::TaskManager;

use super::{SidecarServer, catalog, framing, replies};
use crate::actors::Engine;
use crate::codex_bin::{CodexBinary, NoUsableCodex};
use crate::config::Config;

/// How long the last replies may take to reach stdout once the client has
/// closed stdin: a client still reading takes them at once; one that has
/// stopped reading must not keep the process alive.
const FINAL_WRITE_GRACE: Duration = Duration::from_secs(5);

/// Serves MCP on stdio until the client closes it. Codex is looked for (and
/// the engine started) meanwhile, not first: `codex --version` runs the npm
/// launcher, a Node.js process that takes tens of milliseconds, which
/// `initialize` and `tools/list` need not wait for. A tool that needs the
/// engine waits for it.
pub async fn serve_stdio() -> Result<(), String> {
    let config = Config::from_env().map_err(|error| error.to_string())?;
    if let Some(refused) = &config.approvals_refused {
        tracing::warn!("{refused}; using the default: person when the client can show forms");
    }
    let cwd = std::env::current_dir().map_err(|error| error.to_string())?;
    let server = SidecarServer::starting(config.clone(), cwd, start_backend(config));
    let backend = server.backend.clone();
    // Started now, whether or not a tool asks.
    tokio::spawn(backend.clone());
    let (stdin, stdout) = rmcp::transport::stdio();
    let guarded = framing::guard(stdin, stdout);
    let outcome = match server.serve((guarded.to_rmcp, guarded.from_rmcp)).await {
        Ok(service) => service
            .waiting()
            .await
            .map(|_| ())
            .map_err(|error| error.to_string()),
        Err(error) => Err(error.to_string()),
    };
    // rmcp's output is closed now; let the guard write what is left.
    if tokio::time::timeout(FINAL_WRITE_GRACE, guarded.writer)
        .await
        .is_err()
    {
        tracing::warn!("stdout did not take the last replies in time");
    }
    if let Ok(engine) = backend.await.engine {
        engine.shutdown().await;
    }
    outcome
}

/// Finds Codex and starts the engine on it.
async fn start_backend(config: Config) -> Backend {
    let codex = CodexBinary::discover_remembered(&config.pointer_dir)
        .await
        .map_err(NoUsableCodex::from);
    let engine = match &codex {
        Ok(codex) => Engine::start(config, codex.clone()).await.map_err(|error| {
            tracing::error!(%error, "the engine could not start");
            format!("the engine could not start: {error}")
        }),
        // The server still serves, so that codex_wrapper_check can say why.
        Err(error) => {
            tracing::warn!(%error, "no usable Codex CLI; only codex_wrapper_check works");
            Err(error.to_string())
        }
    };
    Backend { codex, engine }
}

/// The Codex CLI found (or why not) and the engine on it (or why not).
#[derive(Clone)]
pub(super) struct Backend {
    pub(super) codex: Result<CodexBinary, NoUsableCodex>,
    pub(super) engine: Result<Engine, String>,
}

/// The backend, once found: every clone resolves to the same one.
pub(super) type SharedBackend = Shared<BoxFuture<'static, Backend>>;

impl SidecarServer {
    pub fn new(
        config: Config,
        codex: Result<CodexBinary, impl Into<NoUsableCodex>>,
        engine: Option<Engine>,
        cwd: PathBuf,
    ) -> SidecarServer {
        let codex = codex.map_err(Into::into);
        let engine = match (engine, &codex) {
            (Some(engine), _) => Ok(engine),
            (None, Err(error)) => Err(error.to_string()),
            (None, Ok(_)) => Err("the engine is not running".to_string()),
        };
        let backend = Backend { codex, engine };
        SidecarServer::starting(config, cwd, std::future::ready(backend))
    }

    /// A server whose backend is still being found.
    pub(super) fn starting(
        config: Config,
        cwd: PathBuf,
        backend: impl std::future::Future<Output = Backend> + Send + 'static,
    ) -> SidecarServer {
        let mut tool_router = Self::tool_router();
        let listed: Vec<String> = tool_router
            .list_all()
            .into_iter()
            .map(|tool| tool.name.to_string())
            .collect();
        for name in listed {
            let enabled =
                catalog::find(&name).is_some_and(|tool| tool.family.enabled(&config.tools));
            if !enabled {
                tool_router.remove_route(&name);
            }
        }
        for route in tool_router.map.values_mut() {
            super::lean::compact(&mut route.attr);
        }
        SidecarServer {
            config,
            backend: backend.boxed().shared(),
            cwd,
            tool_router,
            tasks: TaskManager::new(),
        }
    }

    /// The engine, once started; a tool error saying why when it could not.
    pub(super) async fn engine(&self) -> Result<Engine, CallToolResult> {
        self.backend.clone().await.engine.map_err(replies::failure)
    }
}
