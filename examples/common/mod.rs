//! What the examples share: finding the `codex-mcp-sidecar` binary, starting
//! it over stdio as any MCP client would, calling its tools, and stopping it
//! with everything it started.
//!
//! Offline (the default) the server runs in a throwaway world: a scripted
//! model in this process, a temporary `CODEX_HOME` that points Codex at it,
//! a temporary pointer dir and project dir, and a private app-server on a
//! free loopback port. With `--real` it runs as you would run it yourself:
//! your environment, your Codex home and model, the current directory.

#![allow(dead_code)] // each example uses part of this

use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::time::Duration;

use codex_mcp_sidecar_test_support::scripted_model::{Script, ScriptedModel};
use rmcp::model::CallToolRequestParams;
use rmcp::service::RunningService;
use rmcp::{RoleClient, ServiceExt};
use serde_json::Value;

pub type Error = Box<dyn std::error::Error + Send + Sync>;
pub type Result<T> = std::result::Result<T, Error>;

const SERVER_NAME: &str = "codex-mcp-sidecar";
const PICKER_NAME: &str = "codex-runs";

/// A `codex_wait` slice: the call returns `still_running` after this long,
/// so a client shows progress every few seconds instead of blocking for
/// minutes (the server's default slice is 4 minutes, sized for agents).
pub const WAIT_SLICE_MS: u64 = 3_000;

/// No single tool call here should take longer: a wait slice is seconds, a
/// conversation answers within its own 2-minute default, an interrupt
/// within 15 s. Past this the server is stuck, and the example says so.
const TOOL_CALL_TIMEOUT: Duration = Duration::from_secs(300);

/// How long the server may take to exit once its stdin closes: it interrupts
/// what still runs and stops its app-server, which has 3 s to exit after
/// SIGTERM. Longer means it is stuck, and it is killed.
const SERVER_EXIT_TIMEOUT: Duration = Duration::from_secs(20);

/// The flags every example takes.
#[derive(Debug, clap::Args)]
pub struct Options {
    /// Use your own Codex setup (your environment, Codex home, model and
    /// credentials) in the current directory, with real prompts.
    #[arg(long)]
    pub real: bool,
    /// The codex-mcp-sidecar binary (default: the one next to this example's
    /// build, e.g. target/debug/codex-mcp-sidecar, then PATH).
    #[arg(long, value_name = "PATH")]
    pub server: Option<PathBuf>,
    /// Offline: keep the throwaway directories (Codex home, project, audit)
    /// after the example ends, to look at them.
    #[arg(long, conflicts_with = "real")]
    pub keep: bool,
}

/// A running server and the client connected to it.
pub struct Session {
    client: RunningService<RoleClient, ()>,
    server: tokio::process::Child,
    offline: Option<Offline>,
}

/// The throwaway world of an offline run.
struct Offline {
    model: ScriptedModel,
    root: tempfile::TempDir,
    keep: bool,
}

/// Starts the server, runs `work` with it, then stops the server (on Ctrl-C
/// or SIGTERM too) and reports any error: an example's whole `main`.
pub async fn run(options: &Options, work: impl AsyncFnOnce(&Session) -> Result<()>) -> ExitCode {
    let outcome = async {
        let session = Session::start(options).await?;
        let outcome = tokio::select! {
            outcome = work(&session) => outcome,
            signal = stop_signal() => Err(format!("stopped by {signal}").into()),
        };
        let closed = session.close().await;
        outcome.and(closed)
    };
    match outcome.await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Resolves on Ctrl-C or SIGTERM.
async fn stop_signal() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut terminate) = signal(SignalKind::terminate()) else {
        let _ = tokio::signal::ctrl_c().await;
        return "Ctrl-C";
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => "Ctrl-C",
        _ = terminate.recv() => "SIGTERM",
    }
}

impl Session {
    async fn start(options: &Options) -> Result<Session> {
        let binary = server_binary(options.server.as_deref())?;
        let mut command = tokio::process::Command::new(&binary);
        let offline = if options.real {
            println!(
                "real: your own Codex setup, in {}",
                std::env::current_dir()?.display()
            );
            None
        } else {
            let offline = Offline::start(options.keep).await?;
            offline.configure(&mut command);
            offline.describe(&binary);
            Some(offline)
        };
        // Stdout is the protocol; the server's logs go to our stderr. Its own
        // process group keeps a terminal's Ctrl-C away from it, so that it
        // always gets to stop its app-server when we close its stdin.
        command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .process_group(0)
            .kill_on_drop(true);
        let mut server = command
            .spawn()
            .map_err(|error| format!("cannot start {}: {error}", binary.display()))?;
        let (Some(stdout), Some(stdin)) = (server.stdout.take(), server.stdin.take()) else {
            return Err("the server's stdin and stdout are not pipes".into());
        };
        let client = match ().serve((stdout, stdin)).await {
            Ok(client) => client,
            Err(error) => {
                let _ = server.kill().await;
                return Err(format!("{} did not speak MCP: {error}", binary.display()).into());
            }
        };
        Ok(Session {
            client,
            server,
            offline,
        })
    }

    /// Whether prompts go to the scripted model.
    pub fn offline(&self) -> bool {
        self.offline.is_some()
    }

    /// The prompt to send: `text` as it is with `--real`; offline, the same
    /// text (listings show its first line) and the scripted model's answer.
    pub fn prompt(&self, text: &str, offline_answer: Script) -> String {
        match self.offline {
            Some(_) => format!("{text}\n{}", offline_answer.marker()),
            None => text.to_string(),
        }
    }

    /// Calls a tool; its structured reply, or its error as ours.
    pub async fn call(&self, tool: &str, arguments: Value) -> Result<Value> {
        let Value::Object(arguments) = arguments else {
            return Err(format!("{tool}: arguments must be a JSON object").into());
        };
        let params = CallToolRequestParams::new(tool.to_string()).with_arguments(arguments);
        let result = tokio::time::timeout(TOOL_CALL_TIMEOUT, self.client.call_tool(params))
            .await
            .map_err(|_| format!("{tool} did not answer within {TOOL_CALL_TIMEOUT:?}"))??;
        if result.is_error == Some(true) {
            let text: Vec<String> = result
                .content
                .iter()
                .filter_map(|block| block.as_text().map(|text| text.text.clone()))
                .collect();
            return Err(format!("{tool}: {}", text.join("\n")).into());
        }
        result
            .structured_content
            .ok_or_else(|| format!("{tool} answered without structured content").into())
    }

    /// One `codex_wait` slice: the result, or `still_running` with progress.
    pub async fn wait_slice(&self, run_id: &str, slice_ms: u64) -> Result<Value> {
        self.call(
            "codex_wait",
            serde_json::json!({"run_id": run_id, "soft_timeout_ms": slice_ms}),
        )
        .await
    }

    /// Closes the server's stdin, which stops it and its app-server, and
    /// reaps it; offline, then stops the model and removes (or keeps) the
    /// throwaway directories.
    async fn close(mut self) -> Result<()> {
        let _ = self.client.cancel().await;
        let exited = tokio::time::timeout(SERVER_EXIT_TIMEOUT, self.server.wait()).await;
        let outcome: Result<()> = match exited {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(error)) => Err(format!("waiting for the server: {error}").into()),
            Err(_) => {
                let _ = self.server.kill().await;
                Err(
                    format!("the server did not exit within {SERVER_EXIT_TIMEOUT:?}; killed it")
                        .into(),
                )
            }
        };
        if let Some(offline) = self.offline {
            offline.finish().await;
        }
        outcome
    }
}

impl Offline {
    async fn start(keep: bool) -> Result<Offline> {
        let model = ScriptedModel::start().await?;
        let root = tempfile::Builder::new()
            .prefix("codex-mcp-example-")
            .tempdir()?;
        model.write_codex_home(&root.path().join("codex-home"))?;
        std::fs::create_dir_all(root.path().join("pointer"))?;
        std::fs::create_dir_all(root.path().join("project"))?;
        Ok(Offline { model, root, keep })
    }

    fn codex_home(&self) -> PathBuf {
        self.root.path().join("codex-home")
    }

    fn pointer_dir(&self) -> PathBuf {
        self.root.path().join("pointer")
    }

    fn project(&self) -> PathBuf {
        self.root.path().join("project")
    }

    /// The server's environment: none of the caller's sidecar settings, the
    /// throwaway home and pointer dir, a private app-server (stopped with the
    /// server) on a free port, and the project as its directory.
    fn configure(&self, command: &mut tokio::process::Command) {
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("CODEX_MCP_WRAPPER_") {
                command.env_remove(name);
            }
        }
        command
            .env("CODEX_HOME", self.codex_home())
            .env("CODEX_MCP_WRAPPER_POINTER_DIR", self.pointer_dir())
            .env("CODEX_MCP_WRAPPER_APP_SERVER_MODE", "private")
            .current_dir(self.project());
    }

    /// Where things go, and how to watch the runs live from another terminal.
    fn describe(&self, server: &Path) {
        println!(
            "offline: the scripted model at {}, no credentials, nothing leaves this machine",
            self.model.base_url()
        );
        println!("project: {}", self.project().display());
        println!(
            "audit:   {}",
            self.project().join(".codex/codex-mcp/runs").display()
        );
        let picker = server.with_file_name(PICKER_NAME);
        let picker = if picker.is_file() {
            picker
        } else {
            PathBuf::from(PICKER_NAME)
        };
        let mut watch = vec![
            format!("CODEX_HOME={}", quote(&self.codex_home())),
            format!(
                "CODEX_MCP_WRAPPER_POINTER_DIR={}",
                quote(&self.pointer_dir())
            ),
        ];
        // The picker attaches with the same Codex as the server uses.
        if let Some(codex_bin) = std::env::var_os("CODEX_BIN") {
            watch.push(format!("CODEX_BIN={}", quote(Path::new(&codex_bin))));
        }
        watch.push(quote(&picker));
        watch.push(format!("--project {}", quote(&self.project())));
        println!("watch the runs live from another terminal (Enter attaches Codex):");
        println!("  {}", watch.join(" "));
        println!();
    }

    async fn finish(self) {
        self.model.shutdown().await;
        if self.keep {
            let root = self.root.keep();
            println!();
            println!(
                "kept {} (the audit is in project/.codex/codex-mcp/runs); remove it with: rm -rf {}",
                root.display(),
                quote(&root)
            );
        }
    }
}

/// The server binary: `--server`, else `codex-mcp-sidecar` in the directory
/// above this example's (`target/debug/examples/NAME` →
/// `target/debug/codex-mcp-sidecar`), else on `PATH`.
fn server_binary(explicit: Option<&Path>) -> Result<PathBuf> {
    if let Some(path) = explicit {
        if !path.is_file() {
            return Err(format!("--server {}: no such file", path.display()).into());
        }
        return Ok(path.to_path_buf());
    }
    let beside_build = std::env::current_exe()?
        .parent()
        .and_then(Path::parent)
        .map(|dir| dir.join(SERVER_NAME));
    if let Some(path) = beside_build.filter(|path| path.is_file()) {
        return Ok(path);
    }
    which::which(SERVER_NAME).map_err(|_| {
        format!(
            "no {SERVER_NAME} binary next to this example's build or on PATH: \
             build it with `cargo build` (or pass --server PATH)"
        )
        .into()
    })
}

/// A path as a shell word.
fn quote(path: &Path) -> String {
    let text = path.display().to_string();
    let plain = text
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-+:=@%,".contains(c));
    if plain {
        text
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

/// A result's first line is cut to this many characters, to keep a table
/// row on one line of a terminal.
const FIRST_LINE_CHARS: usize = 60;

/// The first line of a run's final message, cut to fit a table row.
pub fn first_line(reply: &Value) -> String {
    let line = reply["result"]
        .as_str()
        .and_then(|text| text.lines().next())
        .unwrap_or("");
    match line.char_indices().nth(FIRST_LINE_CHARS) {
        Some((end, _)) => format!("{}…", &line[..end]),
        None => line.to_string(),
    }
}

/// Seconds, from a reply's `durationMs`.
pub fn seconds(reply: &Value) -> f64 {
    reply["durationMs"].as_f64().unwrap_or(0.0) / 1000.0
}
