//! Supported Codex versions, through the real app-server: where the Codex
//! found sits against the verified range, and a shared app-server that runs
//! another Codex than the CLI (reported, and restarted once idle when older).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use codex_mcp_sidecar::appserver::process::live_group_members;
use codex_mcp_sidecar::appserver::shared::{SharedPaths, SharedState};
use codex_mcp_sidecar::appserver::version::user_agent_version;
use codex_mcp_sidecar::appserver::{AppServerConnection, CapabilityToken, ConnectOptions};
use codex_mcp_sidecar::codex_bin::SUPPORTED_VERSIONS;
use codex_mcp_sidecar::config::{ENV_IDLE_EXIT_MS, ENV_MODE, ENV_URL};
use codex_mcp_sidecar::protocol::{ApprovalPolicy, SandboxMode, ThreadStartParams, TurnStatus};
use codex_mcp_sidecar_test_support::scripted_model::{RequestOutcome, Script};
use semver::Version;
use serde_json::{Value, json};

use crate::common::codex_setup::{spawn_foreign_server, wait_until_listening};
use crate::common::raw_mcp::RawMcp;
use crate::common::{Events, codex_bin, codex_version, path_string, start_turn};
use codex_mcp_sidecar_test_support::world::SidecarWorld;

const SIDECAR: &str = env!("CARGO_BIN_EXE_codex-mcp-sidecar");

/// The shared server must not leave on its own while a test looks at it:
/// far longer than any test, and the world's guard stops it afterwards.
const LONG_IDLE: Duration = Duration::from_secs(600);

/// `app-server ensure` or `stop` from the CLI: `codex --version` through the
/// npm launcher, and at most a keeper's start-up (or a stop, then a start)
/// on a busy 2-core machine. Only a hung CLI trips it.
const CLI_TIMEOUT: Duration = Duration::from_secs(120);

/// The scripted model streams a never-ending answer once Codex asks for it;
/// a few seconds on a loaded machine, this only trips when Codex is stuck.
const STREAMING_TIMEOUT: Duration = Duration::from_secs(60);

/// A SIGKILLed process group is gone in milliseconds; a loaded machine's
/// init may take a while to reap it. Only a survivor trips this.
const GONE_WITHIN: Duration = Duration::from_secs(10);

/// The pinned oldest verified Codex (`codex-cli/`), whatever `CODEX_BIN`
/// says: the mismatch test needs both ends at once.
fn oldest_codex() -> PathBuf {
    codex_mcp_sidecar_test_support::pinned_codex_bin()
}

/// The pinned newest verified Codex (`codex-cli-newest/`, by `make setup`).
fn newest_codex() -> PathBuf {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("codex-cli-newest/node_modules/.bin/codex");
    assert!(
        path.exists(),
        "{} is missing: run `make setup`",
        path.display()
    );
    path
}

/// `codex-mcp-sidecar ARGS` in `world`, on `codex`, in shared mode.
fn cli(world: &SidecarWorld, codex: &Path, args: &[&str]) -> tokio::process::Command {
    let mut command = world.command(SIDECAR);
    command
        .args(args)
        .env("CODEX_BIN", codex)
        .env(ENV_IDLE_EXIT_MS, LONG_IDLE.as_millis().to_string())
        .env_remove(ENV_MODE)
        .env_remove("CODEX_MCP_WRAPPER_CODEX_HOME")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    command
}

/// Runs the CLI; its stdout, after checking it succeeded.
async fn cli_ok(world: &SidecarWorld, codex: &Path, args: &[&str]) -> String {
    let output = tokio::time::timeout(CLI_TIMEOUT, cli(world, codex, args).output())
        .await
        .expect("the CLI finished in time")
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    );
    assert!(output.status.success(), "{args:?}: {stdout}{stderr}");
    stdout
}

/// `app-server ensure` on `codex`: the keeper's pid it prints.
async fn ensure(world: &SidecarWorld, codex: &Path) -> u32 {
    let line = cli_ok(world, codex, &["app-server", "ensure"]).await;
    let prefix = format!("shared app-server {} keeper pid ", world.url);
    line.trim()
        .strip_prefix(&prefix)
        .and_then(|pid| pid.parse().ok())
        .unwrap_or_else(|| panic!("unexpected line {line:?}"))
}

/// The MCP server of `world` on `codex` (`extra` overrides the environment),
/// asked `codex_wrapper_check`.
async fn wrapper_check(world: &SidecarWorld, codex: &Path, extra: &[(&str, &str)]) -> Value {
    let mut command = cli(world, codex, &[]);
    command
        .current_dir(world.project.path())
        .stderr(Stdio::null());
    for (name, value) in extra {
        command.env(name, value);
    }
    let mut client = RawMcp::spawn(command).await;
    let check = client.call_ok("codex_wrapper_check", json!({})).await;
    client.finish().await;
    check
}

/// The Codex version the shared server of `world` runs, from `initialize`.
async fn server_version(world: &SidecarWorld) -> Version {
    let (connection, _events) = AppServerConnection::connect(connect_options(world))
        .await
        .unwrap();
    let agent = connection
        .server_info()
        .user_agent
        .clone()
        .unwrap_or_default();
    connection.close().await;
    user_agent_version(&agent).unwrap_or_else(|| panic!("no version in {agent:?}"))
}

fn connect_options(world: &SidecarWorld) -> ConnectOptions {
    let token = std::fs::read_to_string(SharedPaths::new(&world.pointer_dir).token()).unwrap();
    ConnectOptions::new(&world.url, Some(CapabilityToken::from_secret(token)))
}

fn warnings(check: &Value) -> Vec<String> {
    check["warnings"]
        .as_array()
        .unwrap_or_else(|| panic!("no warnings list: {check}"))
        .iter()
        .map(|warning| warning.as_str().unwrap_or_default().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_check_places_the_codex_under_test_inside_the_verified_range() {
    let world = SidecarWorld::new().await;
    let version = codex_version();
    ensure(&world, &codex_bin()).await;

    let check = wrapper_check(&world, &codex_bin(), &[]).await;
    assert_eq!(check["ok"], true, "{check}");
    assert_eq!(check["codexVersion"], version.to_string(), "{check}");
    let support = &check["codexSupport"];
    assert_eq!(support["standing"], "inRange", "{check}");
    assert_eq!(
        support["oldestVerified"],
        SUPPORTED_VERSIONS.oldest.to_string()
    );
    assert_eq!(
        support["newestVerified"],
        SUPPORTED_VERSIONS.newest.to_string()
    );
    let summary = support["summary"].as_str().unwrap_or_default();
    assert!(
        summary.contains(&format!("Codex CLI {version} is inside the verified range")),
        "{check}"
    );
    // The shared server runs the same Codex: nothing to warn about.
    assert_eq!(
        check["appServer"]["version"],
        version.to_string(),
        "{check}"
    );
    assert_eq!(check["appServer"]["versionMatches"], true, "{check}");
    assert_eq!(warnings(&check), Vec::<String>::new());

    cli_ok(&world, &codex_bin(), &["app-server", "stop"]).await;
    world.shutdown().await;
}

/// The real Codex under test, saying it is a release we never verified.
fn newer_stand_in(dir: &Path) -> PathBuf {
    let newer = dir.join("codex");
    std::fs::write(
        &newer,
        format!(
            "#!/bin/sh\nif [ \"$1\" = --version ]; then echo 'codex-cli 0.999.0'; exit 0; fi\nexec '{}' \"$@\"\n",
            codex_bin().display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&newer, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    newer
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_codex_newer_than_verified_is_used_and_the_check_says_so() {
    let world = SidecarWorld::new().await;
    let dir = tempfile::tempdir().unwrap();
    let newer = newer_stand_in(dir.path());
    let stdout = cli_ok(&world, &newer, &["check"]).await;
    let newest = &SUPPORTED_VERSIONS.newest;
    assert!(
        stdout.contains(&format!(
            "Codex CLI 0.999.0 is newer than {newest}, the newest verified"
        )),
        "{stdout}"
    );

    // Private mode: its own app-server, started from the stand-in.
    let private = [(ENV_MODE, "private")];
    let mut command = cli(&world, &newer, &[]);
    command
        .current_dir(world.project.path())
        .stderr(Stdio::null());
    command.envs(private);
    let mut client = RawMcp::spawn(command).await;
    let check = client.call_ok("codex_wrapper_check", json!({})).await;
    assert_eq!(check["ok"], true, "{check}");
    assert_eq!(check["codexVersion"], "0.999.0", "{check}");
    assert_eq!(
        check["codexSupport"]["standing"], "newerThanVerified",
        "{check}"
    );
    assert!(
        warnings(&check)
            .iter()
            .any(|warning| warning.contains(&format!("0.999.0 is newer than {newest}"))),
        "{check}"
    );
    // And it works.
    let done = client
        .call_ok(
            "codex_run",
            json!({"prompt": Script::text("still works").marker(), "async": false}),
        )
        .await;
    assert_eq!(done["result"], "still works", "{done}");
    client.finish().await;
    world.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_server_on_an_older_codex_is_reported_then_restarted_once_no_turn_runs() {
    let world = SidecarWorld::new().await;
    let (old, new) = (oldest_codex(), newest_codex());
    let old_version = codex_mcp_sidecar::codex_bin::probe_version(&old)
        .await
        .unwrap();
    let new_version = codex_mcp_sidecar::codex_bin::probe_version(&new)
        .await
        .unwrap();
    assert!(old_version < new_version, "{old_version} vs {new_version}");

    // A server started by a sidecar on the old Codex, before the update.
    let old_keeper = ensure(&world, &old).await;
    assert_eq!(server_version(&world).await, old_version);

    // The check, on the new CLI, says so.
    let check = wrapper_check(&world, &new, &[]).await;
    assert_eq!(check["codexVersion"], new_version.to_string(), "{check}");
    assert_eq!(
        check["appServer"]["version"],
        old_version.to_string(),
        "{check}"
    );
    assert_eq!(check["appServer"]["versionMatches"], false, "{check}");
    let expected = format!(
        "the app-server at {} runs Codex {old_version}, older than the Codex CLI found ({new_version})",
        world.url
    );
    assert!(
        warnings(&check)
            .iter()
            .any(|warning| warning.contains(&expected)),
        "{check}"
    );
    // A check writes nothing and stops nothing.
    assert_eq!(state(&world).keeper_pid, old_keeper);

    // A turn runs on it: a sidecar on the new CLI uses it as it is.
    let (connection, events) = AppServerConnection::connect(connect_options(&world))
        .await
        .unwrap();
    let mut events = Events(events);
    let thread = connection
        .thread_start(&ThreadStartParams {
            cwd: Some(path_string(world.project.path())),
            approval_policy: Some(ApprovalPolicy::Never),
            sandbox: Some(SandboxMode::ReadOnly),
            ..ThreadStartParams::default()
        })
        .await
        .unwrap()
        .thread;
    let turn = start_turn(&connection, &thread.id, Script::hang().marker()).await;
    world
        .model
        .wait_for_outcome(RequestOutcome::Streaming, STREAMING_TIMEOUT)
        .await
        .unwrap();
    assert_eq!(
        ensure(&world, &new).await,
        old_keeper,
        "restarted under a running turn"
    );
    assert_eq!(server_version(&world).await, old_version);
    assert!(!connection.is_closed(), "the turn's connection was cut");

    // The turn ends; the next ensure replaces the server with one on the CLI.
    connection
        .turn_interrupt(&thread.id, &turn.id)
        .await
        .unwrap();
    let (done, _) = events.turn_completed(&turn.id).await;
    assert_eq!(done.turn.status, TurnStatus::Interrupted);
    connection.close().await;
    let new_keeper = ensure(&world, &new).await;
    assert_ne!(new_keeper, old_keeper, "an idle outdated server was kept");
    assert_eq!(server_version(&world).await, new_version);
    let check = wrapper_check(&world, &new, &[]).await;
    assert_eq!(check["appServer"]["versionMatches"], true, "{check}");
    assert_eq!(warnings(&check), Vec::<String>::new());

    cli_ok(&world, &new, &["app-server", "stop"]).await;
    world.shutdown().await;
}

fn state(world: &SidecarWorld) -> SharedState {
    SharedState::read(&SharedPaths::new(&world.pointer_dir).state())
        .unwrap()
        .expect("the keeper's state file")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_unix_server_on_another_codex_is_reported_and_left_alone() {
    let world = SidecarWorld::new().await;
    let (old, new) = (oldest_codex(), newest_codex());
    let old_version = codex_mcp_sidecar::codex_bin::probe_version(&old)
        .await
        .unwrap();
    let new_version = codex_mcp_sidecar::codex_bin::probe_version(&new)
        .await
        .unwrap();
    // Someone else's server (Codex's own daemon, say), on the old Codex.
    let sockets = tempfile::tempdir().unwrap();
    let socket = sockets.path().join("app-server.sock");
    let url = format!("unix://{}", socket.display());
    let mut command = tokio::process::Command::new(&old);
    command.args(["app-server", "--listen", &url]);
    let mut server = spawn_foreign_server(command, world.codex_home.path());
    let pgid = server.id().unwrap() as i32;
    wait_until_listening("the old Codex's server", STREAMING_TIMEOUT, || async {
        tokio::net::UnixStream::connect(&socket).await.is_ok()
    })
    .await;

    let check = wrapper_check(&world, &new, &[(ENV_URL, &url)]).await;
    assert_eq!(check["appServer"]["mode"], "unix", "{check}");
    assert_eq!(
        check["appServer"]["version"],
        old_version.to_string(),
        "{check}"
    );
    assert_eq!(check["appServer"]["versionMatches"], false, "{check}");
    let expected = format!(
        "the app-server at {url} runs Codex {old_version}, older than the Codex CLI found ({new_version}); restart that app-server"
    );
    assert!(
        warnings(&check)
            .iter()
            .any(|warning| warning.contains(&expected)),
        "{check}"
    );
    // Not ours: the check neither stopped it nor started another.
    assert!(
        server.try_wait().unwrap().is_none(),
        "the unix server was stopped"
    );
    assert!(state_file(&world).is_none());

    let _ = nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(pgid),
        nix::sys::signal::Signal::SIGKILL,
    );
    let _ = server.wait().await;
    // The native child the npm launcher started dies with it, but is reaped
    // by init, not by us: give that a moment.
    let deadline = tokio::time::Instant::now() + GONE_WITHIN;
    while !live_group_members(pgid).is_empty() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    crate::common::assert_no_process_left(pgid);
    world.shutdown().await;
}

fn state_file(world: &SidecarWorld) -> Option<SharedState> {
    SharedState::read(&SharedPaths::new(&world.pointer_dir).state()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_stays_older_than_the_cli_is_restarted_once_not_on_every_ensure() {
    let world = SidecarWorld::new().await;
    // Its `--version` says 0.999.0; the servers it starts say the real one.
    let dir = tempfile::tempdir().unwrap();
    let lying = newer_stand_in(dir.path());
    let first = ensure(&world, &lying).await;
    let second = ensure(&world, &lying).await;
    assert_ne!(second, first, "the older server was not restarted");
    assert_eq!(server_version(&world).await, codex_version());
    let third = ensure(&world, &lying).await;
    assert_eq!(
        third, second,
        "restarted again for the same pair of versions"
    );

    cli_ok(&world, &lying, &["app-server", "stop"]).await;
    world.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_codex_older_than_supported_is_a_problem_the_check_places_too() {
    let world = SidecarWorld::new().await;
    let dir = tempfile::tempdir().unwrap();
    let old = dir.path().join("codex");
    std::fs::write(&old, "#!/bin/sh\necho 'codex-cli 0.100.0'\n").unwrap();
    std::fs::set_permissions(&old, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();

    let check = wrapper_check(&world, &old, &[(ENV_MODE, "private")]).await;
    assert_eq!(check["ok"], false, "{check}");
    assert_eq!(check["codexSupport"]["standing"], "tooOld", "{check}");
    let oldest = &SUPPORTED_VERSIONS.oldest;
    let summary = check["codexSupport"]["summary"]
        .as_str()
        .unwrap_or_default();
    assert!(
        summary.contains(&format!(
            "Codex CLI 0.100.0 is older than {oldest}, the oldest supported"
        )),
        "{check}"
    );
    assert!(
        check["problems"]
            .to_string()
            .contains(&format!("older than {oldest}")),
        "{check}"
    );
    world.shutdown().await;
}
