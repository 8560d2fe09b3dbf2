//! The keeper: a detached process (`codex-mcp-sidecar __app-server-keeper`)
//! that owns the shared `codex app-server`. It starts the server in a session
//! of its own, reports `ready URL` or `error MESSAGE` on stdout to the sidecar
//! that launched it, records [`SharedState`], and stops the server once no
//! sidecar holds a lease and no turn runs for `idle_exit`, or on SIGTERM.
//! [`stop_keeper`] is the other end of that SIGTERM (`app-server stop`).

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::Duration;

use nix::fcntl::FlockArg;
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use serde_json::{Value, json};
use tokio::signal::unix::{Signal as UnixSignal, SignalKind, signal};
use tokio::time::Instant;

use super::connection::{AppServerConnection, ConnectOptions, ConnectionError};
use super::keeper_identity::{KeeperLiveness, hold_keeper_lock, keeper_liveness_on, own_identity};
use super::process::{AppServerError, AppServerProcess, SHUTDOWN_GRACE, SpawnOptions};
use super::shared_files::{
    LAUNCH_LOCK_TIMEOUT, SharedError, SharedPaths, SharedState, lock_within, try_lock,
};
use crate::process_table::Backend;

pub use super::keeper_identity::{KEEPER_SUBCOMMAND, is_keeper};

/// Bounds of the idle-check interval, which is `idle_exit / 4`: at least a
/// quarter second so a test's short idle period does not turn into a busy
/// loop of RPCs, at most five seconds so the server exits close to its
/// deadline when `idle_exit` is minutes long.
const MIN_IDLE_CHECK: Duration = Duration::from_millis(250);
const MAX_IDLE_CHECK: Duration = Duration::from_secs(5);

/// One `thread/loaded/list` or `thread/read` of the idle check. These answer
/// from memory in milliseconds; a server that takes longer counts as busy
/// this round (never stop a server we cannot see into).
const IDLE_CHECK_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// `app-server stop`: the keeper needs up to `SHUTDOWN_GRACE` to stop the
/// group, plus a moment to notice the signal and remove its state file.
const STOP_TIMEOUT: Duration = SHUTDOWN_GRACE.saturating_add(Duration::from_secs(5));

/// How often `app-server stop` looks whether the keeper and group are gone.
const STOP_POLL: Duration = Duration::from_millis(50);

/// What the keeper was asked to do (the hidden subcommand's flags).
#[derive(Debug, Clone)]
pub struct KeeperArgs {
    pub url: String,
    pub pointer_dir: PathBuf,
    pub codex_bin: PathBuf,
    pub codex_home: Option<PathBuf>,
    pub idle_exit: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum KeeperError {
    #[error("setsid failed: {0}")]
    Setsid(#[source] nix::Error),
    #[error("the port of {url} is busy: another program listens there; free it or set another URL")]
    PortBusy { url: String },
    #[error("{0}")]
    AppServer(#[from] AppServerError),
    #[error("stopped by {0} before the app-server was ready")]
    StoppedEarly(&'static str),
    /// The signal handlers, the state file, our stdout.
    #[error("could not {what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Lock(#[from] SharedError),
    #[error("the shared app-server exited on its own ({0})")]
    AppServerDied(ExitStatus),
    #[error("could not signal the keeper (pid {pid}): {source}")]
    Signal {
        pid: i32,
        #[source]
        source: nix::Error,
    },
    #[error(
        "the keeper (pid {pid}) did not stop within {STOP_TIMEOUT:?}; it and its group were killed"
    )]
    StopTimedOut { pid: i32 },
    #[error(
        "the state file names keeper pid {pid}, written by an older sidecar that left no mark this system can check; if pid {pid} is that keeper, stop it yourself (kill {pid}), then run this again"
    )]
    Unidentified { pid: u32 },
}

fn io(what: &str, source: std::io::Error) -> KeeperError {
    KeeperError::Io {
        what: what.to_string(),
        source,
    }
}

/// Why the watch ended.
enum Exit {
    /// Idle for `idle_exit`; the launch lock is held so that no sidecar
    /// picks the server up while it goes down.
    Idle(nix::fcntl::Flock<File>),
    Signal(&'static str),
    Died(ExitStatus),
}

/// Runs the keeper until the server is stopped. Exits 0 on idle or signal.
pub async fn run_keeper(args: KeeperArgs) -> Result<(), KeeperError> {
    // First thing: a session of our own, so that a hang-up of the sidecar's
    // terminal or a signal to its process group does not reach us.
    if let Err(error) = nix::unistd::setsid() {
        return Err(report_error(KeeperError::Setsid(error)));
    }
    let mut signals = match Signals::install() {
        Ok(signals) => signals,
        Err(error) => return Err(report_error(io("install signal handlers", error))),
    };
    let paths = SharedPaths::new(&args.pointer_dir);
    // Before anything else that could be mistaken for us: from here until we
    // exit, the lock tells a reader of our state file that we still run.
    let keeper_lock = match hold_keeper_lock(&paths).await {
        Ok(lock) => lock,
        Err(error) => return Err(report_error(KeeperError::Lock(error))),
    };
    let spawn = AppServerProcess::spawn(SpawnOptions {
        codex_bin: args.codex_bin.clone(),
        codex_home: args.codex_home.clone(),
        listen: args.url.clone(),
        token_file: paths.token(),
        // The keeper's own environment (RUST_LOG included) carries over.
        log_filter: None,
    });
    // A signal while starting drops the spawn, whose process kills its group.
    let spawned = tokio::select! {
        spawned = spawn => spawned,
        name = signals.recv() => return Err(report_error(KeeperError::StoppedEarly(name))),
    };
    let mut process = match spawned {
        Ok(process) => process,
        Err(error) => return Err(report_error(classify_spawn_error(&args.url, error))),
    };
    forward_stderr(&process);
    let (keeper_pid, keeper_started) = own_identity();
    let state = SharedState {
        url: process.url().to_string(),
        keeper_pid,
        app_server_pgid: process.pgid(),
        started_at: crate::timestamp::now_rfc3339(),
        keeper_started,
        keeper_lock: true,
    };
    if let Err(source) = state.write(&paths.state()) {
        let _ = process.shutdown().await;
        let what = format!("write {}", paths.state().display());
        return Err(report_error(io(&what, source)));
    }
    report(&format!("ready {}", process.url())).map_err(|error| io("report on stdout", error))?;
    tracing::info!(url = %process.url(), pgid = process.pgid(), idle_exit = ?args.idle_exit, "shared app-server ready");

    let exit = watch(&mut process, &args, &paths, &mut signals).await;
    let pgid = process.pgid();
    let stopped = process.shutdown().await.map(|_| ());
    remove_state_if_ours(&paths);
    // Before the launch lock (held on idle exit): the next keeper, launched
    // once that is free, finds this one free too.
    drop(keeper_lock);
    match exit? {
        // The launch lock is released only here, once the port is free and
        // the state file gone, so the next sidecar starts afresh.
        Exit::Idle(_launch_lock) => {
            tracing::info!(pgid, "no client and no turn: the shared app-server stopped");
        }
        Exit::Signal(name) => tracing::info!(pgid, "stopped by {name}"),
        Exit::Died(status) => return Err(KeeperError::AppServerDied(status)),
    }
    Ok(stopped?)
}

/// The idle clock: every tick, a client or a running turn resets it.
async fn watch(
    process: &mut AppServerProcess,
    args: &KeeperArgs,
    paths: &SharedPaths,
    signals: &mut Signals,
) -> Result<Exit, KeeperError> {
    let mut ticker = tokio::time::interval(idle_check_interval(args.idle_exit));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut probe = TurnProbe::new(process.url(), paths);
    let mut idle_since: Option<Instant> = None;
    loop {
        tokio::select! {
            _ = ticker.tick() => {
                if has_clients(paths)? || probe.any_turn_running().await {
                    idle_since = None;
                    continue;
                }
                let since = *idle_since.get_or_insert_with(Instant::now);
                if since.elapsed() < args.idle_exit {
                    continue;
                }
                // A sidecar that holds the launch lock may be about to take
                // a lease on this very server: let it, and look again later.
                if let Some(lock) = try_lock(&paths.launch_lock(), FlockArg::LockExclusiveNonblock)?
                    && !has_clients(paths)?
                {
                    probe.close().await;
                    return Ok(Exit::Idle(lock));
                }
            }
            name = signals.recv() => return Ok(Exit::Signal(name)),
            status = process.wait() => return Ok(Exit::Died(status?)),
        }
    }
}

/// `idle_exit / 4`, within [`MIN_IDLE_CHECK`, `MAX_IDLE_CHECK`].
pub fn idle_check_interval(idle_exit: Duration) -> Duration {
    (idle_exit / 4).clamp(MIN_IDLE_CHECK, MAX_IDLE_CHECK)
}

/// Whether any sidecar holds a lease: they hold the clients lock shared, so
/// an exclusive try fails exactly while one does.
fn has_clients(paths: &SharedPaths) -> Result<bool, KeeperError> {
    Ok(try_lock(&paths.clients_lock(), FlockArg::LockExclusiveNonblock)?.is_none())
}

/// The keeper's own connection, used only to ask whether a turn runs (also
/// by the version check, before it replaces an outdated server).
pub(crate) struct TurnProbe {
    options: ConnectOptions,
    connection: Option<AppServerConnection>,
}

impl TurnProbe {
    fn new(url: &str, paths: &SharedPaths) -> TurnProbe {
        let token = std::fs::read_to_string(paths.token())
            .ok()
            .map(super::token::CapabilityToken::from_secret);
        TurnProbe::with_options(ConnectOptions::new(url, token))
    }

    pub(crate) fn with_options(options: ConnectOptions) -> TurnProbe {
        TurnProbe {
            options,
            connection: None,
        }
    }

    /// True when a loaded thread is `active`, or when we cannot tell.
    pub(crate) async fn any_turn_running(&mut self) -> bool {
        match self.active_threads().await {
            Ok(active) => active,
            Err(error) => {
                tracing::warn!(%error, "idle check failed; counting the server as busy");
                // Reconnect on the next tick.
                self.close().await;
                true
            }
        }
    }

    async fn active_threads(&mut self) -> Result<bool, ConnectionError> {
        let connection = match &self.connection {
            Some(connection) if !connection.is_closed() => connection.clone(),
            _ => {
                let (connection, mut events) =
                    AppServerConnection::connect(self.options.clone()).await?;
                // Nothing to do with them, but the worker waits for room in
                // the channel, so they must be drained.
                tokio::spawn(async move { while events.recv().await.is_some() {} });
                self.connection = Some(connection.clone());
                connection
            }
        };
        let mut cursor: Option<String> = None;
        loop {
            let page: Value = connection
                .request_with_timeout(
                    "thread/loaded/list",
                    &json!({ "cursor": cursor }),
                    IDLE_CHECK_REQUEST_TIMEOUT,
                )
                .await?;
            for id in page["data"].as_array().into_iter().flatten() {
                let Some(id) = id.as_str() else { continue };
                let read: Result<Value, _> = connection
                    .request_with_timeout(
                        "thread/read",
                        &json!({ "threadId": id, "includeTurns": false }),
                        IDLE_CHECK_REQUEST_TIMEOUT,
                    )
                    .await;
                match read {
                    Ok(read) if read["thread"]["status"]["type"] == "active" => return Ok(true),
                    Ok(_) => {}
                    // Unloaded between the list and the read: not running.
                    Err(ConnectionError::Rpc { .. }) => {}
                    Err(error) => return Err(error),
                }
            }
            cursor = page["nextCursor"].as_str().map(str::to_string);
            if cursor.is_none() {
                return Ok(false);
            }
        }
    }

    pub(crate) async fn close(&mut self) {
        if let Some(connection) = self.connection.take() {
            connection.close().await;
        }
    }
}

/// SIGTERM, SIGINT and SIGHUP all mean "stop the server and exit".
struct Signals(UnixSignal, UnixSignal, UnixSignal);

impl Signals {
    fn install() -> std::io::Result<Signals> {
        let term = signal(SignalKind::terminate())?;
        Ok(Signals(
            term,
            signal(SignalKind::interrupt())?,
            signal(SignalKind::hangup())?,
        ))
    }

    async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.0.recv() => "SIGTERM",
            _ = self.1.recv() => "SIGINT",
            _ = self.2.recv() => "SIGHUP",
        }
    }
}

/// Codex says `Address in use (os error 98)` when the port is taken.
fn classify_spawn_error(url: &str, error: AppServerError) -> KeeperError {
    match &error {
        AppServerError::ExitedEarly { stderr, .. }
            if stderr.contains("os error 98")
                || stderr.to_lowercase().contains("address in use") =>
        {
            KeeperError::PortBusy {
                url: url.to_string(),
            }
        }
        _ => KeeperError::AppServer(error),
    }
}

/// Logs the error, tells the launcher on stdout (one line), and returns it.
fn report_error(error: KeeperError) -> KeeperError {
    let message = error.to_string().replace('\n', " | ");
    if let Err(stdout) = report(&format!("error {message}")) {
        tracing::warn!(%stdout, "could not report the error to the launcher");
    }
    error
}

/// Prints the one line, then points stdout at /dev/null: that closes the
/// pipe, so the launcher sees the end of it and stops waiting.
fn report(line: &str) -> std::io::Result<()> {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{line}")?;
    stdout.flush()?;
    let null = File::options().write(true).open("/dev/null")?;
    nix::unistd::dup2_stdout(&null).map_err(std::io::Error::from)
}

/// The app-server's stderr goes to ours, which is the log file.
fn forward_stderr(process: &AppServerProcess) {
    let mut live = process.stderr().subscribe();
    for line in process.stderr().lines() {
        eprintln!("app-server: {line}");
    }
    tokio::spawn(async move {
        use tokio::sync::broadcast::error::RecvError;
        loop {
            match live.recv().await {
                Ok(line) => eprintln!("app-server: {line}"),
                Err(RecvError::Lagged(lost)) => eprintln!("app-server: ({lost} lines lost)"),
                Err(RecvError::Closed) => break,
            }
        }
    });
}

/// Removes the state file unless a newer keeper has replaced it.
fn remove_state_if_ours(paths: &SharedPaths) {
    if let Ok(Some(state)) = SharedState::read(&paths.state())
        && state.keeper_pid == std::process::id()
    {
        let _ = std::fs::remove_file(paths.state());
    }
}

/// What `app-server stop` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopOutcome {
    /// No state file: no shared server runs from this pointer dir.
    NotRunning,
    /// The state file named a keeper (this pid) that is gone; its group was
    /// cleaned up.
    Stale(u32),
    /// The keeper (this pid) stopped the server and exited.
    Stopped(u32),
}

/// SIGTERMs the keeper recorded in the pointer dir and waits until it and the
/// app-server group are gone. Under the launch lock: no keeper starts while
/// we decide who the state file's keeper is, and no sidecar picks up the
/// server while it goes down.
pub async fn stop_keeper(pointer_dir: &Path) -> Result<StopOutcome, KeeperError> {
    stop_keeper_on(Backend::current(), pointer_dir).await
}

/// [`stop_keeper`] on a given process table: tests run each one.
pub(super) async fn stop_keeper_on(
    table: Backend,
    pointer_dir: &Path,
) -> Result<StopOutcome, KeeperError> {
    let paths = SharedPaths::new(pointer_dir);
    // No state file, no keeper: nothing to queue for (and perhaps no dir to
    // take a lock in).
    if matches!(SharedState::read(&paths.state()), Ok(None)) {
        return Ok(StopOutcome::NotRunning);
    }
    let _launch = lock_within(
        &paths.launch_lock(),
        FlockArg::LockExclusive,
        LAUNCH_LOCK_TIMEOUT,
    )
    .await?;
    // A keeper may have gone, or come, while we queued.
    stop_keeper_locked(table, &paths).await
}

/// [`stop_keeper`] for a caller that holds the launch lock already
/// (`ensure_shared` replacing an outdated server): flock locks belong to the
/// open file, so taking it again here would wait on ourselves.
pub(super) async fn stop_keeper_locked(
    table: Backend,
    paths: &SharedPaths,
) -> Result<StopOutcome, KeeperError> {
    let state = match SharedState::read(&paths.state()) {
        Ok(Some(state)) => state,
        Ok(None) => return Ok(StopOutcome::NotRunning),
        Err(error) => return Err(io(&format!("read {}", paths.state().display()), error)),
    };
    let pid = state.keeper_pid as i32;
    let group = state.app_server_pgid;
    let liveness = keeper_liveness_on(table, &state, paths);
    if liveness == KeeperLiveness::Unknown {
        return Err(KeeperError::Unidentified {
            pid: state.keeper_pid,
        });
    }
    if liveness == KeeperLiveness::Gone {
        // Killed without a chance to clean up: its server may be orphaned.
        if !table.live_group_members(group).is_empty() {
            let _ = killpg(Pid::from_raw(group), Signal::SIGTERM);
            wait_gone(table, None, group, paths, STOP_TIMEOUT).await;
            let _ = killpg(Pid::from_raw(group), Signal::SIGKILL);
        }
        let _ = std::fs::remove_file(paths.state());
        return Ok(StopOutcome::Stale(state.keeper_pid));
    }
    kill(Pid::from_raw(pid), Signal::SIGTERM)
        .map_err(|source| KeeperError::Signal { pid, source })?;
    if wait_gone(table, Some(&state), group, paths, STOP_TIMEOUT).await {
        return Ok(StopOutcome::Stopped(state.keeper_pid));
    }
    let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    let _ = killpg(Pid::from_raw(group), Signal::SIGKILL);
    let _ = std::fs::remove_file(paths.state());
    Err(KeeperError::StopTimedOut { pid })
}

/// True once the keeper (if any) and every member of the group are gone.
async fn wait_gone(
    table: Backend,
    keeper: Option<&SharedState>,
    group: i32,
    paths: &SharedPaths,
    timeout: Duration,
) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        let keeper_runs = keeper.is_some_and(|state| {
            keeper_liveness_on(table, state, paths) == KeeperLiveness::Running
        });
        if !keeper_runs && table.live_group_members(group).is_empty() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(STOP_POLL).await;
    }
}

#[cfg(test)]
mod tests;
