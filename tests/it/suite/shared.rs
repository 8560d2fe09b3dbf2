//! The shared app-server against the real Codex CLI: one server for many
//! sidecars, started by a detached keeper, gone when idle. Every test has its
//! own CODEX_HOME, pointer dir and free port (never the default 45123), and a
//! guard that kills whatever it started, even when an assertion fails.

use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use codex_mcp_sidecar::appserver::keeper::{KEEPER_SUBCOMMAND, is_keeper};
use codex_mcp_sidecar::appserver::shared::{
    SharedLease, SharedOptions, SharedPaths, SharedState, ensure_shared_using,
};
use codex_mcp_sidecar::appserver::{
    AppServerConnection, AppServerProcess, CapabilityToken, ConnectOptions, SpawnOptions,
};
use codex_mcp_sidecar::protocol::{
    ApprovalPolicy, SandboxMode, ThreadStartParams, TurnStartParams, TurnStatus,
};
use codex_mcp_sidecar::timestamp;
use codex_mcp_sidecar_test_support::scripted_model::{RequestOutcome, Script};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::{Events, codex_bin, path_string};
use codex_mcp_sidecar_test_support::world::{SidecarWorld, processes_naming};

/// The idle period of the idle-exit tests: short enough for a quick test,
/// several idle-check ticks (250 ms each at this length) long.
const SHORT_IDLE: Duration = Duration::from_millis(1500);

/// For tests that must not see the server exit on its own.
const LONG_IDLE: Duration = Duration::from_secs(600);

/// From "idle" to "gone": the idle period, a check tick, the group's
/// SIGTERM grace and slack for a loaded machine.
const GONE_WITHIN: Duration = Duration::from_secs(10);

const SIDECAR: &str = env!("CARGO_BIN_EXE_codex-mcp-sidecar");

/// One test's world: a scripted model, CODEX_HOME, pointer dir and port.
struct World {
    base: SidecarWorld,
    idle: Duration,
}

impl std::ops::Deref for World {
    type Target = SidecarWorld;
    fn deref(&self) -> &SidecarWorld {
        &self.base
    }
}

impl World {
    async fn new(idle: Duration) -> World {
        World {
            base: SidecarWorld::new().await,
            idle,
        }
    }

    fn options(&self) -> SharedOptions {
        SharedOptions {
            url: self.url.clone(),
            pointer_dir: self.pointer_dir.clone(),
            codex_bin: codex_bin(),
            codex_home: Some(self.codex_home.path().to_path_buf()),
            idle_exit: self.idle,
            // The tests of the version check set it.
            cli_version: None,
        }
    }

    /// `ensure_shared` in this process, the keeper run from the built binary.
    async fn lease(&self) -> Result<SharedLease, String> {
        ensure_shared_using(&self.options(), Path::new(SIDECAR))
            .await
            .map_err(|error| error.to_string())
    }

    /// `codex-mcp-sidecar ARGS` configured for this world.
    fn cli(&self, args: &[&str]) -> tokio::process::Command {
        let mut command = self.command(SIDECAR);
        command
            .args(args)
            .env(
                "CODEX_MCP_WRAPPER_APP_SERVER_IDLE_MS",
                self.idle.as_millis().to_string(),
            )
            .env_remove("CODEX_MCP_WRAPPER_APP_SERVER_MODE")
            .env_remove("CODEX_MCP_WRAPPER_CODEX_HOME")
            .kill_on_drop(true);
        command
    }

    fn state(&self) -> Option<SharedState> {
        SharedState::read(&SharedPaths::new(&self.pointer_dir).state()).unwrap()
    }

    /// Distinct process groups of live app-servers listening on our URL.
    fn app_server_groups(&self) -> Vec<i32> {
        let mut groups: Vec<i32> = processes_naming(&self.url)
            .into_iter()
            .filter(|process| {
                process.args.iter().any(|arg| arg == "app-server")
                    && !process.args.iter().any(|arg| arg == KEEPER_SUBCOMMAND)
            })
            .map(|process| process.pgid)
            .collect();
        groups.sort_unstable();
        groups.dedup();
        groups
    }

    /// Waits until no process names our URL: keeper and app-server gone.
    async fn assert_all_gone_within(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let left = processes_naming(&self.url);
            if left.is_empty() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "still running after {timeout:?}: {left:#?}\nlog:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(SharedPaths::new(&self.pointer_dir).log()).unwrap_or_default()
    }
}

fn stdout_of(output: &Output) -> String {
    assert!(
        output.status.success(),
        "status {}\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_sidecars_at_once_share_one_app_server() {
    let world = World::new(LONG_IDLE).await;
    let mut running = Vec::new();
    for _ in 0..4 {
        let mut command = world.cli(&["app-server", "ensure"]);
        running.push(async move { command.output().await });
    }
    let outputs = futures_join_all(running).await;
    let lines: Vec<String> = outputs.iter().map(stdout_of).collect();
    let pids: Vec<&str> = lines
        .iter()
        .map(|line| {
            let prefix = format!("shared app-server {} keeper pid ", world.url);
            line.strip_prefix(&prefix)
                .unwrap_or_else(|| panic!("unexpected line {line:?}"))
        })
        .collect();
    assert!(pids.iter().all(|pid| *pid == pids[0]), "{pids:?}");
    let keeper: i32 = pids[0].parse().unwrap();
    let state = world.state().unwrap();
    assert!(is_keeper(&state, &SharedPaths::new(&world.pointer_dir)));
    assert_eq!(state.keeper_pid as i32, keeper);
    assert_eq!(world.app_server_groups().len(), 1, "{}", world.log());

    // The dir and the secrets in it are the user's alone.
    use std::os::unix::fs::PermissionsExt;
    let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    let paths = SharedPaths::new(&world.pointer_dir);
    assert_eq!(mode(&paths.dir), 0o700);
    assert_eq!(mode(&paths.token()), 0o600);
    assert_eq!(mode(&paths.state()), 0o600);

    let stopped = stdout_of(&world.cli(&["app-server", "stop"]).output().await.unwrap());
    assert!(stopped.contains(&keeper.to_string()), "{stopped}");
    world.assert_all_gone_within(Duration::from_secs(2)).await;
    assert!(world.state().is_none());
    let again = stdout_of(&world.cli(&["app-server", "stop"]).output().await.unwrap());
    assert!(again.contains("no shared app-server runs"), "{again}");
}

/// `join_all` without a futures dependency in the tests: spawn each.
async fn futures_join_all<F>(futures: Vec<F>) -> Vec<Output>
where
    F: std::future::Future<Output = std::io::Result<Output>> + Send + 'static,
{
    let handles: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
    let mut outputs = Vec::new();
    for handle in handles {
        outputs.push(handle.await.unwrap().unwrap());
    }
    outputs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_server_exits_but_not_while_a_lease_is_held() {
    let world = World::new(SHORT_IDLE).await;
    let lease = world.lease().await.unwrap();
    assert!(lease.launched);
    let keeper = lease.state.clone().unwrap();
    tokio::time::sleep(world.idle * 2).await;
    assert!(
        is_keeper(&keeper, &SharedPaths::new(&world.pointer_dir)),
        "the keeper left while a lease was held"
    );
    assert_eq!(world.app_server_groups().len(), 1);
    drop(lease);
    world.assert_all_gone_within(GONE_WITHIN).await;
    assert!(world.state().is_none());

    // `ensure` from the CLI releases its lease when it exits: the server it
    // starts (a new one, on the same port) goes away by itself too.
    let line = stdout_of(&world.cli(&["app-server", "ensure"]).output().await.unwrap());
    assert!(line.starts_with("shared app-server"), "{line}");
    assert_eq!(world.app_server_groups().len(), 1);
    world.assert_all_gone_within(GONE_WITHIN).await;
    assert!(
        world.log().contains("no client and no turn"),
        "{}",
        world.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_turn_keeps_the_server_alive() {
    let world = World::new(SHORT_IDLE).await;
    let lease = world.lease().await.unwrap();
    let (connection, events) =
        AppServerConnection::connect(ConnectOptions::new(&lease.url, Some(lease.token.clone())))
            .await
            .unwrap();
    let mut events = Events(events);
    let work = tempfile::tempdir().unwrap();
    let thread = connection
        .thread_start(&ThreadStartParams {
            cwd: Some(path_string(work.path())),
            approval_policy: Some(ApprovalPolicy::Never),
            sandbox: Some(SandboxMode::ReadOnly),
            ..ThreadStartParams::default()
        })
        .await
        .unwrap()
        .thread;
    let turn = connection
        .turn_start(&TurnStartParams::text(&thread.id, Script::hang().marker()))
        .await
        .unwrap()
        .turn;
    world
        .model
        .wait_for_outcome(RequestOutcome::Streaming, Duration::from_secs(30))
        .await
        .unwrap();
    // No lease from here on (our connection does not count as a client).
    drop(lease);
    tokio::time::sleep(world.idle * 2).await;
    assert_eq!(
        world.app_server_groups().len(),
        1,
        "the server stopped under a running turn:\n{}",
        world.log()
    );

    connection
        .turn_interrupt(&thread.id, &turn.id)
        .await
        .unwrap();
    let (done, _) = events.turn_completed(&turn.id).await;
    assert_eq!(done.turn.status, TurnStatus::Interrupted);
    world.assert_all_gone_within(GONE_WITHIN).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_port_held_by_something_else_is_named_as_such() {
    let world = World::new(LONG_IDLE).await;
    // Answers 200 to anything: an HTTP server, but no WebSocket upgrade.
    let http = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    // Takes the connection and closes it at once.
    let closer = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let http_url = format!("ws://{}", http.local_addr().unwrap());
    let closer_url = format!("ws://{}", closer.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = http.accept().await {
            let mut buffer = [0u8; 4096];
            let _ = stream.read(&mut buffer).await;
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                .await;
        }
    });
    tokio::spawn(async move {
        while let Ok((stream, _)) = closer.accept().await {
            drop(stream);
        }
    });
    for url in [http_url, closer_url] {
        let options = SharedOptions {
            url: url.clone(),
            ..world.options()
        };
        let error = ensure_shared_using(&options, Path::new(SIDECAR))
            .await
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("held by something that is not a codex app-server"),
            "{url}: {error}"
        );
        assert!(processes_naming(&url).is_empty());
    }
    assert!(world.state().is_none(), "no keeper may have been launched");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_refuses_our_token_is_reported() {
    let world = World::new(LONG_IDLE).await;
    let secrets = tempfile::tempdir().unwrap();
    let server = AppServerProcess::spawn(SpawnOptions {
        codex_bin: codex_bin(),
        codex_home: Some(world.codex_home.path().to_path_buf()),
        listen: world.url.clone(),
        token_file: secrets.path().join("token"),
        log_filter: None,
    })
    .await
    .unwrap();
    // No token file at all: the server is not one of ours either.
    let error = world.lease().await.unwrap_err();
    assert!(error.contains("wants a token"), "{error}");
    let paths = SharedPaths::new(&world.pointer_dir);
    CapabilityToken::generate()
        .unwrap()
        .write_to(&paths.token())
        .unwrap();

    let error = world.lease().await.unwrap_err();
    assert!(error.contains("refused the token"), "{error}");
    assert!(error.contains(&path_string(&paths.token())), "{error}");
    assert!(world.state().is_none(), "no keeper may have been launched");
    server.shutdown().await.unwrap();
    world.assert_all_gone_within(Duration::from_secs(2)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_keeper_reports_a_busy_port() {
    let world = World::new(LONG_IDLE).await;
    // Listening, never accepting: Codex cannot bind the port.
    let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("ws://{}", holder.local_addr().unwrap());
    std::fs::create_dir_all(&world.pointer_dir).unwrap();
    let output = tokio::process::Command::new(SIDECAR)
        .arg(KEEPER_SUBCOMMAND)
        .args(["--url", &url, "--pointer-dir"])
        .arg(&world.pointer_dir)
        .arg("--codex-bin")
        .arg(codex_bin())
        .arg("--codex-home")
        .arg(world.codex_home.path())
        .args(["--idle-exit-ms", "60000"])
        .kill_on_drop(true)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(!output.status.success());
    assert!(
        stdout.starts_with("error ") && stdout.contains("is busy"),
        "stdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(processes_naming(&url).is_empty());
    drop(holder);
}

/// The keeper's record says when it started the way the audit writes every
/// instant (RFC 3339, UTC, to the millisecond, fixed width), so the state
/// file and the run records never spell the same instant two ways.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_keeper_writes_its_start_time_like_the_audit() {
    // The keeper's clock is ours, but its millisecond is cut, not rounded.
    const CLOCK_SLACK: Duration = Duration::from_secs(1);
    let world = World::new(LONG_IDLE).await;
    let before = time::OffsetDateTime::now_utc() - CLOCK_SLACK;
    let lease = world.lease().await.unwrap();
    let after = time::OffsetDateTime::now_utc() + CLOCK_SLACK;
    let started_at = lease.state.clone().unwrap().started_at;
    let parsed = timestamp::parse(&started_at)
        .unwrap_or_else(|| panic!("startedAt {started_at:?} is no RFC 3339 time"));
    assert_eq!(
        started_at,
        timestamp::rfc3339(parsed),
        "not in the audit's form"
    );
    assert!(before <= parsed && parsed <= after, "{started_at}");
    drop(lease);
    let stopped = stdout_of(&world.cli(&["app-server", "stop"]).output().await.unwrap());
    assert!(stopped.contains("stopped"), "{stopped}");
    world.assert_all_gone_within(GONE_WITHIN).await;
}
