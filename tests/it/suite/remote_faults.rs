//! Runs on an app-server on a second host (a network namespace joined by a
//! veth pair, see `common::netns`), reached through a TCP proxy on our side,
//! with a signed bearer: a run completes and is audited here, and network
//! faults in the middle of a streaming turn (the link down for 3 s, the
//! proxy restarted) lose nothing, while a server that stays away fails the
//! run with a clear reason after the bounded window. Each test skips, with
//! the reason, where network namespaces cannot be made (not root, no `ip`).

use std::path::Path;
use std::time::{Duration, Instant};

use codex_mcp_sidecar::actors::{
    Engine, RunRequest, RunResult, RunStarted, RunStatus, WaitOutcome,
};
use codex_mcp_sidecar::store::{self, AuditEvent, RunId};
use codex_mcp_sidecar_test_support::scripted_model::{RequestOutcome, Script};
use codex_mcp_sidecar_test_support::tcp_proxy::TcpProxy;
use tempfile::TempDir;

use crate::common::EVENT_TIMEOUT;
use crate::common::engine::config;
use crate::common::netns::RemoteHost;

/// The streamed answer: long enough (20 parts, 300 ms apart, 6 s) that a
/// fault 1 s in and 3 s long ends while the turn still runs.
fn long_stream() -> (Script, String) {
    let parts: Vec<String> = (0..20).map(|n| format!("p{n} ")).collect();
    let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
    (Script::stream(&parts, 300), parts.concat())
}

/// This side: the sidecar's engine, its run directory and project, and the
/// proxy it reaches the second host through.
struct Cross {
    host: RemoteHost,
    proxy: TcpProxy,
    engine: Engine,
    _local: TempDir,
    run_dir: std::path::PathBuf,
    project: TempDir,
}

impl Cross {
    /// `None` when the second host cannot be made here. `secret` picks the
    /// secret file; `extra` adds settings.
    async fn start(wrong_secret: bool, extra: &[(&str, &str)]) -> Option<Cross> {
        let host = RemoteHost::start().await?;
        let proxy = TcpProxy::start(host.server_addr()).await.unwrap();
        let local = tempfile::tempdir().unwrap();
        let run_dir = local.path().join("runs");
        let secret = if wrong_secret {
            host.wrong_secret_file()
        } else {
            host.secret_file()
        };
        let url = format!("ws://{}", proxy.addr());
        let (secret, run_dir_str) = (secret.display().to_string(), run_dir.display().to_string());
        let mut settings = vec![
            // Not the rig's private default: the URL with its auth names
            // the remote server.
            ("CODEX_MCP_WRAPPER_APP_SERVER_MODE", "shared"),
            ("CODEX_MCP_WRAPPER_APP_SERVER_URL", url.as_str()),
            (
                "CODEX_MCP_WRAPPER_APP_SERVER_SHARED_SECRET_FILE",
                secret.as_str(),
            ),
            ("CODEX_MCP_WRAPPER_RUN_DIR", run_dir_str.as_str()),
        ];
        settings.extend_from_slice(extra);
        let config = config(
            &local.path().join("codex-home"),
            &local.path().join("pointer"),
            &settings,
        );
        let engine = Engine::start(config, crate::common::codex_binary())
            .await
            .unwrap();
        Some(Cross {
            host,
            proxy,
            engine,
            _local: local,
            run_dir,
            project: tempfile::tempdir().unwrap(),
        })
    }

    async fn run(&self, script: &Script) -> RunStarted {
        let request = RunRequest::new(script.clone().marker(), self.project.path());
        self.engine.run(request).await.unwrap()
    }

    async fn finish(&self, started: &RunStarted) -> RunResult {
        let outcome = tokio::time::timeout(EVENT_TIMEOUT, self.engine.wait(&started.run_id, None))
            .await
            .expect("the run ends in time")
            .unwrap();
        match outcome {
            WaitOutcome::Finished(result) => result,
            other => panic!("expected the end, got {other:?}"),
        }
    }

    /// Waits until the model streams the answer to a request after the
    /// first `seen` ones: the turn is certainly under way.
    async fn streaming_after(&self, seen: usize) {
        self.host
            .model
            .wait_for(EVENT_TIMEOUT, |requests| {
                requests
                    .iter()
                    .skip(seen)
                    .any(|request| request.outcome == RequestOutcome::Streaming)
            })
            .await
            .unwrap();
    }

    async fn stop(self) {
        self.engine.shutdown().await;
    }
}

/// The types of the items the audit saw completed, in order.
fn completed_items(run_dir: &Path, run_id: &RunId) -> Vec<String> {
    store::read_events(run_dir, run_id)
        .unwrap()
        .iter()
        .filter_map(|record| match &record.event {
            AuditEvent::Notification { method, params } if method == "item/completed" => {
                params["item"]["type"].as_str().map(str::to_string)
            }
            _ => None,
        })
        .collect()
}

fn audit_notes(run_dir: &Path, run_id: &RunId) -> Vec<String> {
    store::read_events(run_dir, run_id)
        .unwrap()
        .iter()
        .filter_map(|record| match &record.event {
            AuditEvent::Sidecar { message, .. } => Some(message.clone()),
            _ => None,
        })
        .collect()
}

/// A run without a fault, then the same run with `fault` 1 s into its
/// stream: the same final message, items and token counts, and the proxy
/// saw a new connection (the sidecar reconnected), which the audit notes.
async fn fault_loses_nothing(cross: &Cross, fault: impl AsyncFnOnce(&Cross)) {
    let (script, expected) = long_stream();
    let clean = cross.run(&script).await;
    let clean_result = cross.finish(&clean).await;
    assert_eq!(
        clean_result.status,
        RunStatus::Completed,
        "{clean_result:?}"
    );
    assert_eq!(clean_result.result.as_deref(), Some(expected.as_str()));
    let connections = cross.proxy.accepted();

    let seen = cross.host.model.requests().len();
    let faulted = cross.run(&script).await;
    cross.streaming_after(seen).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    fault(cross).await;
    let result = cross.finish(&faulted).await;

    assert_eq!(result.status, RunStatus::Completed, "{result:?}");
    assert_eq!(result.result, clean_result.result);
    assert_eq!(result.usage, clean_result.usage);
    assert!(result.usage.total_tokens > 0, "{result:?}");
    let items = completed_items(&cross.run_dir, &faulted.run_id);
    assert_eq!(items, completed_items(&cross.run_dir, &clean.run_id));
    assert!(items.iter().any(|kind| kind == "agentMessage"), "{items:?}");
    assert!(
        cross.proxy.accepted() > connections,
        "the sidecar reconnected through the proxy"
    );
    let notes = audit_notes(&cross.run_dir, &faulted.run_id);
    assert!(
        notes.iter().any(|note| note.starts_with("reconnected")),
        "{notes:?}"
    );
    assert!(
        !audit_notes(&cross.run_dir, &clean.run_id)
            .iter()
            .any(|note| note.starts_with("reconnected"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_on_the_second_host_completes_and_its_audit_is_written_here() {
    let Some(cross) = Cross::start(false, &[]).await else {
        return;
    };
    let started = cross.run(&Script::text("from the other host")).await;
    let result = cross.finish(&started).await;
    assert_eq!(result.status, RunStatus::Completed, "{result:?}");
    assert_eq!(result.result.as_deref(), Some("from the other host"));
    // The model that answered is the second host's own.
    assert_eq!(cross.host.model.requests().len(), 1);
    let completed = store::read_events(&cross.run_dir, &started.run_id)
        .unwrap()
        .iter()
        .any(|record| matches!(&record.event, AuditEvent::Notification { method, .. } if method == "turn/completed"));
    assert!(completed, "the turn's end is audited on this side");
    cross.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_down_for_3_s_mid_stream_loses_nothing() {
    let Some(cross) = Cross::start(false, &[]).await else {
        return;
    };
    fault_loses_nothing(&cross, async |cross: &Cross| {
        cross.host.namespace.link_down();
        tokio::time::sleep(Duration::from_secs(3)).await;
        cross.host.namespace.link_up();
    })
    .await;
    cross.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_reset_mid_stream_loses_nothing() {
    let Some(cross) = Cross::start(false, &[]).await else {
        return;
    };
    fault_loses_nothing(&cross, async |cross: &Cross| {
        let open = cross
            .proxy
            .restart(Duration::from_millis(200))
            .await
            .unwrap();
        assert_eq!(open, 1, "the sidecar's one connection was reset");
    })
    .await;
    cross.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_stays_away_fails_the_run_after_the_window() {
    let window_ms = "3000";
    let Some(mut cross) = Cross::start(
        false,
        &[("CODEX_MCP_WRAPPER_REMOTE_RECONNECT_MS", window_ms)],
    )
    .await
    else {
        return;
    };
    let (script, _) = long_stream();
    let started = cross.run(&script).await;
    cross.streaming_after(0).await;
    cross.host.kill_server().await;
    let killed = Instant::now();
    let result = cross.finish(&started).await;
    let took = killed.elapsed();

    assert_eq!(result.status, RunStatus::Failed, "{result:?}");
    let error = result.error.unwrap_or_default();
    let url = format!("ws://{}", cross.proxy.addr());
    assert!(error.contains("stayed unreachable for 3 s"), "{error}");
    assert!(error.contains(&url), "names the endpoint: {error}");
    assert!(error.contains("`default`"), "names the endpoint: {error}");
    // Tried for the window, and not much longer.
    assert!(took >= Duration::from_millis(2500), "{took:?}");
    assert!(took < Duration::from_secs(10), "{took:?}");
    cross.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_secret_is_a_clear_error_within_seconds() {
    let Some(cross) = Cross::start(true, &[]).await else {
        return;
    };
    let begun = Instant::now();
    let request = RunRequest::new(Script::text("never").marker(), cross.project.path());
    let error = cross
        .engine
        .run(request)
        .await
        .expect_err("the server refuses the bearer");
    assert!(
        begun.elapsed() < Duration::from_secs(10),
        "{:?}",
        begun.elapsed()
    );
    let message = error.to_string();
    assert!(message.contains("401"), "{message}");
    // No model request was made: the server never let us in.
    assert!(cross.host.model.requests().is_empty());
    cross.stop().await;
}

/// Issue 17's first sighting, on one host: a shared-mode sidecar reaches a
/// live app-server through a TCP proxy, and the proxy restarts mid-stream.
/// Its port refuses for a moment, which once read as "the server exited"
/// and failed the run; the run completes, after a reconnect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_restart_in_front_of_a_shared_server_is_not_an_exit() {
    let world = crate::common::Rig::start().await;
    let upstream = world
        .server
        .url()
        .strip_prefix("ws://")
        .and_then(|addr| addr.parse().ok())
        .expect("a ws:// loopback URL");
    let proxy = TcpProxy::start(upstream).await.unwrap();
    let url = format!("ws://{}", proxy.addr());
    let pointer = world.pointer_dir.path().display().to_string();
    let mut settings = config(
        world.codex_home.path(),
        world.pointer_dir.path(),
        &[
            ("CODEX_MCP_WRAPPER_APP_SERVER_MODE", "shared"),
            ("CODEX_MCP_WRAPPER_APP_SERVER_URL", url.as_str()),
            ("CODEX_MCP_WRAPPER_POINTER_DIR", pointer.as_str()),
        ],
    );
    settings.run_dir_override = Some(world.project.path().join("runs"));
    let engine = Engine::start(settings, crate::common::codex_binary())
        .await
        .unwrap();
    let (script, expected) = long_stream();
    let request = RunRequest::new(script.marker(), world.project.path());
    let started = engine.run(request).await.unwrap();
    world
        .model
        .wait_for_outcome(RequestOutcome::Streaming, EVENT_TIMEOUT)
        .await
        .unwrap();
    let before = proxy.accepted();
    let open = proxy.restart(Duration::from_millis(200)).await.unwrap();
    assert!(open >= 1, "the sidecar's connection was reset");

    let outcome = tokio::time::timeout(EVENT_TIMEOUT, engine.wait(&started.run_id, None))
        .await
        .expect("the run ends in time")
        .unwrap();
    let WaitOutcome::Finished(result) = outcome else {
        panic!("expected the end, got {outcome:?}");
    };
    assert_eq!(result.status, RunStatus::Completed, "{result:?}");
    assert_eq!(result.result.as_deref(), Some(expected.as_str()));
    assert!(proxy.accepted() > before, "the sidecar reconnected");
    engine.shutdown().await;
    drop(proxy);
    world.finish().await;
}
