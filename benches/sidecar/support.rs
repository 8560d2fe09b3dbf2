//! What every benchmark stands on: a throwaway world (scripted model,
//! `CODEX_HOME`, pointer directory, project) with a real `codex app-server`
//! the bench owns, the release `codex-mcp-sidecar` driven over stdio by an
//! rmcp client, and the statistics and `/proc` readings the numbers come from.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use codex_mcp_sidecar_test_support::app_server::AppServerWorld;
use codex_mcp_sidecar_test_support::codex_bin;
use rmcp::model::{CallToolRequestParams, CallToolResult};
use rmcp::service::RunningService;
use rmcp::transport::TokioChildProcess;
use rmcp::{RoleClient, ServiceExt};
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::report::number;

pub type BenchError = Box<dyn std::error::Error + Send + Sync>;
pub type BenchResult<T> = Result<T, BenchError>;

/// The sidecar the benchmarks measure: the release build of this checkout
/// (`cargo bench` builds the binaries with the bench profile, which is
/// release).
pub const SIDECAR_EXE: &str = env!("CARGO_BIN_EXE_codex-mcp-sidecar");

/// A bound on any one tool call or awaited event: a scripted turn takes well
/// under a second; this only trips when something is stuck, and then the
/// benchmark fails instead of hanging.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(120);

/// How long a sidecar may take to exit once its stdin closes (it stops its
/// actors and releases its lease) before it is killed.
const EXIT_GRACE: Duration = Duration::from_secs(5);

/// A model, a Codex home, a pointer directory and a project, all throwaway,
/// and an app-server on a free loopback port that the bench owns (see
/// [`AppServerWorld`]): a sidecar pointed at its URL uses it as the shared
/// server (and never starts one of its own).
pub struct World(AppServerWorld);

impl std::ops::Deref for World {
    type Target = AppServerWorld;
    fn deref(&self) -> &AppServerWorld {
        &self.0
    }
}

impl World {
    pub async fn start() -> BenchResult<World> {
        Ok(World(AppServerWorld::start().await?))
    }

    /// The environment of a sidecar that uses this world's app-server as
    /// its shared server.
    pub fn sidecar_env(&self) -> BenchResult<Vec<(String, String)>> {
        Ok(sidecar_env(
            self.codex_home.path(),
            self.pointer_dir.path(),
            &[
                ("CODEX_MCP_WRAPPER_APP_SERVER_MODE", "shared"),
                ("CODEX_MCP_WRAPPER_APP_SERVER_URL", self.server.url()),
            ],
        ))
    }

    /// Runs `bench` in a new world, which is stopped after it whatever its
    /// outcome.
    pub async fn around<T>(bench: impl AsyncFnOnce(&World) -> BenchResult<T>) -> BenchResult<T> {
        let world = World::start().await?;
        let outcome = bench(&world).await;
        world.stop().await?;
        outcome
    }

    /// Runs `bench` in a new world, against a sidecar on it (see
    /// [`World::with_sidecar`]).
    pub async fn around_sidecar<T>(
        bench: impl AsyncFnOnce(&World, &Sidecar) -> BenchResult<T>,
    ) -> BenchResult<T> {
        World::around(async move |world| {
            world
                .with_sidecar(async move |sidecar| bench(world, sidecar).await)
                .await
        })
        .await
    }

    /// Runs `bench` against a sidecar that uses this world's app-server as
    /// its shared server (see [`Sidecar::around`]).
    pub async fn with_sidecar<T>(
        &self,
        bench: impl AsyncFnOnce(&Sidecar) -> BenchResult<T>,
    ) -> BenchResult<T> {
        Sidecar::around(self.project.path(), &self.sidecar_env()?, bench).await
    }

    /// Stops the app-server's whole process group and the model.
    pub async fn stop(self) -> BenchResult<()> {
        self.0.stop().await?;
        Ok(())
    }
}

/// The release sidecar as a child process, with an rmcp client on its
/// stdio and its stderr in a file.
pub struct Sidecar {
    pub client: RunningService<RoleClient, ()>,
    pub pid: u32,
    pub stderr_log: PathBuf,
    _log_dir: TempDir,
}

impl Sidecar {
    /// Spawns the sidecar in `cwd` with exactly `env` (plus `PATH` and
    /// `HOME`) and completes the MCP handshake.
    pub async fn spawn(cwd: &Path, env: &[(String, String)]) -> BenchResult<Sidecar> {
        let log_dir = tempfile::tempdir()?;
        let stderr_log = log_dir.path().join("sidecar.stderr.log");
        let command = sidecar_command(cwd, env);
        let (transport, _) = TokioChildProcess::builder(command)
            .stderr(File::create(&stderr_log)?)
            .spawn()?;
        let pid = transport.id().ok_or("the sidecar has no pid")?;
        let client = tokio::time::timeout(CALL_TIMEOUT, ().serve(transport)).await??;
        Ok(Sidecar {
            client,
            pid,
            stderr_log,
            _log_dir: log_dir,
        })
    }

    /// Runs `bench` against a sidecar spawned as [`Sidecar::spawn`] does,
    /// which is stopped after it whatever its outcome.
    pub async fn around<T>(
        cwd: &Path,
        env: &[(String, String)],
        bench: impl AsyncFnOnce(&Sidecar) -> BenchResult<T>,
    ) -> BenchResult<T> {
        let sidecar = Sidecar::spawn(cwd, env).await?;
        let outcome = bench(&sidecar).await;
        sidecar.stop().await?;
        outcome
    }

    pub async fn call(&self, tool: &str, arguments: Value) -> BenchResult<CallToolResult> {
        call(&self.client, tool, arguments).await
    }

    /// Calls a tool that starts a run (`codex_run`, `codex_resume`) and
    /// returns the new run's id.
    pub async fn start_run(&self, tool: &str, arguments: Value) -> BenchResult<String> {
        let handle = structured(&self.call(tool, arguments).await?)?;
        Ok(str_field(&handle, "runId")?.to_string())
    }

    /// `codex_wait` with no soft timeout: it answers once the run has ended
    /// or waits for an approval.
    pub async fn wait_blocking(&self, run_id: &str) -> BenchResult<CallToolResult> {
        self.call(
            "codex_wait",
            json!({ "run_id": run_id, "soft_timeout_ms": 0 }),
        )
        .await
    }

    /// Closes its stdin (the MCP session ends, the sidecar shuts its engine
    /// down) and waits for it to exit; kills it if it does not. Returns what
    /// it wrote to stderr.
    pub async fn stop(self) -> BenchResult<String> {
        let pid = self.pid;
        self.client.cancel().await?;
        reap(pid).await;
        let log = std::fs::read(&self.stderr_log)?;
        Ok(String::from_utf8_lossy(&strip_ansi_escapes::strip(log)).into_owned())
    }
}

/// Throwaway directories for a sidecar with no [`World`] behind it: a Codex
/// home, a pointer directory and a project.
pub struct Dirs {
    pub codex_home: TempDir,
    pub pointer_dir: TempDir,
    pub project: TempDir,
}

impl Dirs {
    pub fn new() -> BenchResult<Dirs> {
        Ok(Dirs {
            codex_home: tempfile::tempdir()?,
            pointer_dir: tempfile::tempdir()?,
            project: tempfile::tempdir()?,
        })
    }

    /// [`sidecar_env`] for these directories.
    pub fn sidecar_env(&self, extra: &[(&str, &str)]) -> Vec<(String, String)> {
        sidecar_env(self.codex_home.path(), self.pointer_dir.path(), extra)
    }
}

/// What every sidecar here is given: the Codex binary, a Codex home and a
/// pointer directory, then `extra`.
pub fn sidecar_env(
    codex_home: &Path,
    pointer_dir: &Path,
    extra: &[(&str, &str)],
) -> Vec<(String, String)> {
    let mut env = vec![
        ("CODEX_BIN".to_string(), codex_bin().display().to_string()),
        ("CODEX_HOME".into(), codex_home.display().to_string()),
        (
            "CODEX_MCP_WRAPPER_POINTER_DIR".into(),
            pointer_dir.display().to_string(),
        ),
        // The benches start more runs at once (64 in B4) than the default
        // cap of 32 lets through; they measure the sidecar, not the cap.
        ("CODEX_MCP_WRAPPER_MAX_RUNS".into(), "0".into()),
    ];
    env.extend(
        extra
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string())),
    );
    env
}

/// The sidecar's command line, environment cleared but for `PATH` and
/// `HOME` so that nothing of the bench's environment leaks in.
pub fn sidecar_command(cwd: &Path, env: &[(String, String)]) -> tokio::process::Command {
    // For a look inside (`strace -f -o … <sidecar>` as a wrapper script, say);
    // the figures that read /proc then describe the wrapper.
    let exe = std::env::var_os("BENCH_SIDECAR_EXE").unwrap_or_else(|| SIDECAR_EXE.into());
    let mut command = tokio::process::Command::new(exe);
    command.env_clear();
    for name in ["PATH", "HOME"] {
        if let Some(value) = std::env::var_os(name) {
            command.env(name, value);
        }
    }
    command.envs(env.iter().map(|(name, value)| (name, value)));
    command.current_dir(cwd).stdin(Stdio::piped());
    command
}

/// Waits for `pid` to be gone (the child's own reaper collects it), then
/// kills it if it outlives [`EXIT_GRACE`].
pub async fn reap(pid: u32) {
    let proc_dir = PathBuf::from(format!("/proc/{pid}"));
    let deadline = Instant::now() + EXIT_GRACE;
    while alive(&proc_dir) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    if alive(&proc_dir) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

/// A process that exists and is not a zombie.
fn alive(proc_dir: &Path) -> bool {
    std::fs::read_to_string(proc_dir.join("stat"))
        .ok()
        .and_then(|stat| {
            let state = stat[stat.rfind(')')? + 1..].split_whitespace().next()?;
            Some(state != "Z" && state != "X")
        })
        .unwrap_or(false)
}

pub async fn call<H: rmcp::ClientHandler>(
    client: &RunningService<RoleClient, H>,
    tool: &str,
    arguments: Value,
) -> BenchResult<CallToolResult> {
    let params = CallToolRequestParams::new(tool.to_string())
        .with_arguments(arguments.as_object().cloned().unwrap_or_default());
    Ok(tokio::time::timeout(CALL_TIMEOUT, client.call_tool(params)).await??)
}

/// The structured content of a reply that is not a tool error.
pub fn structured(result: &CallToolResult) -> BenchResult<Value> {
    if result.is_error == Some(true) {
        return Err(format!("tool error: {}", text(result)).into());
    }
    result
        .structured_content
        .clone()
        .ok_or_else(|| "a reply without structured content".into())
}

pub fn text(result: &CallToolResult) -> String {
    result
        .content
        .iter()
        .filter_map(|block| block.as_text().map(|text| text.text.clone()))
        .collect::<Vec<_>>()
        .join("\n")
}

pub fn str_field<'a>(value: &'a Value, field: &str) -> BenchResult<&'a str> {
    value[field]
        .as_str()
        .ok_or_else(|| format!("no {field} in {value}").into())
}

/// Microseconds since the Unix epoch: a clock every process on the machine
/// shares, so a time taken in the sidecar and one taken here compare.
pub fn epoch_micros(at: SystemTime) -> i64 {
    at.duration_since(UNIX_EPOCH)
        .map(|since| since.as_micros() as i64)
        .unwrap_or(0)
}

/// A process's peak resident memory (`VmHWM`) in KiB and CPU time (user +
/// system) in seconds, from `/proc`.
pub struct ProcessUsage {
    pub peak_rss_kib: u64,
    /// Resident now (`VmRSS`), next to the high-water mark above.
    pub rss_kib: u64,
    pub cpu_seconds: f64,
}

pub fn process_usage(pid: u32) -> BenchResult<ProcessUsage> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib = |field: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(field))
            .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
            .ok_or(format!("no {field} in /proc/PID/status"))
    };
    let peak_rss_kib = kib("VmHWM:")?;
    let rss_kib = kib("VmRSS:")?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let after_name = stat.rfind(')').ok_or("unreadable /proc/PID/stat")? + 1;
    // Fields 14 and 15 of stat(5), counted after the name (field 2).
    let fields: Vec<&str> = stat[after_name..].split_whitespace().collect();
    let ticks = |index: usize| -> BenchResult<f64> {
        Ok(fields
            .get(index)
            .ok_or("short /proc/PID/stat")?
            .parse::<f64>()?)
    };
    Ok(ProcessUsage {
        peak_rss_kib,
        rss_kib,
        cpu_seconds: (ticks(11)? + ticks(12)?) / USER_HZ,
    })
}

/// The unit of `/proc/PID/stat`'s times: the kernel reports them in
/// `USER_HZ`, which is 100 on every Linux architecture this runs on.
const USER_HZ: f64 = 100.0;

/// Sorted samples and the order statistics the report quotes.
pub struct Samples(Vec<f64>);

impl Samples {
    pub fn new(mut values: Vec<f64>) -> Samples {
        values.sort_by(f64::total_cmp);
        Samples(values)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn median(&self) -> f64 {
        self.percentile(50.0)
    }

    /// Nearest-rank percentile: the smallest sample with at least `p`% of
    /// the samples at or below it.
    pub fn percentile(&self, p: f64) -> f64 {
        if self.0.is_empty() {
            return f64::NAN;
        }
        let rank = ((p / 100.0) * self.0.len() as f64).ceil() as usize;
        self.0[rank.clamp(1, self.0.len()) - 1]
    }

    pub fn min(&self) -> f64 {
        self.0.first().copied().unwrap_or(f64::NAN)
    }

    pub fn max(&self) -> f64 {
        self.0.last().copied().unwrap_or(f64::NAN)
    }

    /// `median (min–max)`, each in `unit`.
    pub fn median_range(&self, unit: &str) -> String {
        format!(
            "{} ({}–{})",
            number(self.median(), unit),
            number(self.min(), unit),
            number(self.max(), unit)
        )
    }

    /// `p50 / p99 / max`, each in `unit`.
    pub fn tail(&self, unit: &str) -> String {
        format!(
            "{} / {} / {}",
            number(self.median(), unit),
            number(self.percentile(99.0), unit),
            number(self.max(), unit)
        )
    }
}

pub fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}
