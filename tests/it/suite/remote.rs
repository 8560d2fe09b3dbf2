//! A remote app-server (issue 17): the real `codex app-server` with
//! `--ws-auth`, reached over `ws://` with a signed bearer or a capability
//! token, and over `wss://` through a TLS terminator with a test CA. On
//! loopback; `tests/it/common/remote_server.rs` also runs it in a network
//! namespace.

use std::path::Path;
use std::time::{Duration, Instant};

use codex_mcp_sidecar::actors::{Engine, RunRequest, RunStatus, WaitOutcome};
use codex_mcp_sidecar::appserver::account::LoginStatus;
use codex_mcp_sidecar::appserver::process::live_group_members;
use codex_mcp_sidecar::health;
use codex_mcp_sidecar::store::{self, AuditEvent, RunId};
use codex_mcp_sidecar_test_support::scripted_model::Script;
use codex_mcp_sidecar_test_support::tls_proxy::TlsProxy;
use tempfile::TempDir;

use crate::common::engine::config;
use crate::common::remote_server::{
    RemoteServer, RemoteServerOptions, ServerAuth, random_secret, secret_file,
};
use crate::common::{EVENT_TIMEOUT, codex_binary};

/// A wrong secret is refused at the upgrade (HTTP 401): no retrying for
/// long, so the error must come well within this.
const REFUSED_WITHIN: Duration = Duration::from_secs(8);

async fn engine_with(scratch: &TempDir, settings: &[(&str, String)]) -> Engine {
    // The helper's private mode would leave the URL to a server of ours;
    // the default mode (shared) reads a remote URL as a remote endpoint.
    let mut settings: Vec<(&str, &str)> = settings
        .iter()
        .map(|(name, value)| (*name, value.as_str()))
        .collect();
    settings.push(("CODEX_MCP_WRAPPER_APP_SERVER_MODE", "shared"));
    // A remote run's audit goes to the sidecar's own run directory, never
    // under its cwd (a path on the remote host).
    let run_dir = scratch.path().join("runs").display().to_string();
    settings.push(("CODEX_MCP_WRAPPER_RUN_DIR", &run_dir));
    let config = config(
        &scratch.path().join("home"),
        &scratch.path().join("pointer"),
        &settings,
    );
    Engine::start(config, codex_binary()).await.unwrap()
}

async fn completes(engine: &Engine, project: &Path, text: &str) -> RunId {
    let request = RunRequest::new(Script::text(text).marker(), project);
    let started = engine.run(request).await.unwrap();
    let result = match tokio::time::timeout(EVENT_TIMEOUT, engine.wait(&started.run_id, None))
        .await
        .expect("the run ends in time")
        .unwrap()
    {
        WaitOutcome::Finished(result) => result,
        other => panic!("expected the end, got {other:?}"),
    };
    assert_eq!(result.status, RunStatus::Completed);
    assert_eq!(result.result.as_deref(), Some(text));
    started.run_id
}

/// The audit of the run is on this machine, in the sidecar's run directory
/// (not under the run's cwd, a path on the remote host), and holds the
/// turn's end.
fn assert_audited_here(scratch: &TempDir, project: &Path, run_id: &RunId) {
    assert!(
        !project.join(".codex").exists(),
        "nothing under the remote cwd"
    );
    let run_dir = scratch.path().join("runs");
    let events = store::read_events(&run_dir, run_id).unwrap();
    assert!(
        events.iter().any(|record| matches!(&record.event,
            AuditEvent::Notification { method, .. } if method == "turn/completed")),
        "no turn/completed in the local audit"
    );
}

/// The error of a run asked of an engine whose connect is refused, and how
/// long it took.
async fn refused(engine: &Engine, project: &Path) -> (String, Duration) {
    let started = Instant::now();
    let request = RunRequest::new(Script::text("never").marker(), project);
    let error = match engine.run(request).await {
        Err(error) => error.to_string(),
        Ok(started) => {
            match tokio::time::timeout(EVENT_TIMEOUT, engine.wait(&started.run_id, None))
                .await
                .expect("the run ends in time")
                .unwrap()
            {
                WaitOutcome::Finished(result) => {
                    assert_ne!(result.status, RunStatus::Completed);
                    result.error.unwrap_or_default()
                }
                other => panic!("expected the end, got {other:?}"),
            }
        }
    };
    let took = started.elapsed();
    eprintln!("refused after {took:?}: {error}");
    (error, took)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_completes_through_a_signed_bearer_with_issuer_and_audience() {
    let server = RemoteServer::start(RemoteServerOptions::loopback(ServerAuth::SignedBearer {
        issuer: Some("sidecar-tests".into()),
        audience: Some("remote-box".into()),
    }))
    .await;
    let scratch = tempfile::tempdir().unwrap();
    let project = tempfile::tempdir().unwrap();
    let engine = engine_with(
        &scratch,
        &[
            ("CODEX_MCP_WRAPPER_APP_SERVER_URL", server.url.clone()),
            (
                "CODEX_MCP_WRAPPER_APP_SERVER_SHARED_SECRET_FILE",
                server.secret_file.display().to_string(),
            ),
            (
                "CODEX_MCP_WRAPPER_APP_SERVER_ISSUER",
                "sidecar-tests".into(),
            ),
            ("CODEX_MCP_WRAPPER_APP_SERVER_AUDIENCE", "remote-box".into()),
        ],
    )
    .await;
    let run_id = completes(&engine, project.path(), "signed and delivered").await;
    assert_audited_here(&scratch, project.path(), &run_id);
    // The turn ran on the remote server's model, not on one of ours.
    assert!(!server.model.requests().is_empty());
    engine.shutdown().await;
    // Never stopped: someone else's server.
    assert!(!live_group_members(server.pgid()).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_completes_on_a_capability_token_server() {
    let server =
        RemoteServer::start(RemoteServerOptions::loopback(ServerAuth::CapabilityToken)).await;
    let scratch = tempfile::tempdir().unwrap();
    let project = tempfile::tempdir().unwrap();
    let engine = engine_with(
        &scratch,
        &[
            ("CODEX_MCP_WRAPPER_APP_SERVER_URL", server.url.clone()),
            (
                "CODEX_MCP_WRAPPER_APP_SERVER_TOKEN_FILE",
                server.secret_file.display().to_string(),
            ),
        ],
    )
    .await;
    let run_id = completes(&engine, project.path(), "by capability").await;
    assert_audited_here(&scratch, project.path(), &run_id);
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_secret_fails_within_seconds_naming_the_setting_and_no_path() {
    let server = RemoteServer::start(RemoteServerOptions::loopback(ServerAuth::SignedBearer {
        issuer: None,
        audience: None,
    }))
    .await;
    let scratch = tempfile::tempdir().unwrap();
    let project = tempfile::tempdir().unwrap();
    let wrong = secret_file(scratch.path(), "wrong-secret", &random_secret());
    let engine = engine_with(
        &scratch,
        &[
            ("CODEX_MCP_WRAPPER_APP_SERVER_URL", server.url.clone()),
            (
                "CODEX_MCP_WRAPPER_APP_SERVER_SHARED_SECRET_FILE",
                wrong.display().to_string(),
            ),
        ],
    )
    .await;
    let (error, took) = refused(&engine, project.path()).await;
    assert!(
        took < REFUSED_WITHIN,
        "refused only after {took:?}: {error}"
    );
    assert!(
        error.contains("CODEX_MCP_WRAPPER_APP_SERVER_SHARED_SECRET_FILE"),
        "{error}"
    );
    assert!(error.contains("401"), "{error}");
    for path in [scratch.path(), server.secret_file.parent().unwrap()] {
        assert!(!error.contains(path.to_str().unwrap()), "{error}");
    }
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wss_through_a_tls_terminator_needs_the_test_ca_and_names_the_setting_without_it() {
    let server = RemoteServer::start(RemoteServerOptions::loopback(ServerAuth::SignedBearer {
        issuer: None,
        audience: None,
    }))
    .await;
    let upstream = server.url.trim_start_matches("ws://").parse().unwrap();
    let proxy = TlsProxy::start(upstream).await.unwrap();
    let secret = (
        "CODEX_MCP_WRAPPER_APP_SERVER_SHARED_SECRET_FILE",
        server.secret_file.display().to_string(),
    );

    // Trusting the test CA: the run completes over TLS.
    let scratch = tempfile::tempdir().unwrap();
    let project = tempfile::tempdir().unwrap();
    let engine = engine_with(
        &scratch,
        &[
            ("CODEX_MCP_WRAPPER_APP_SERVER_URL", proxy.url()),
            secret.clone(),
            (
                "CODEX_MCP_WRAPPER_APP_SERVER_CA_FILE",
                proxy.ca_file().display().to_string(),
            ),
        ],
    )
    .await;
    let run_id = completes(&engine, project.path(), "sealed in transit").await;
    assert_audited_here(&scratch, project.path(), &run_id);
    engine.shutdown().await;

    // Without it, the certificate is not trusted, and the error says which
    // setting adds the CA.
    let scratch = tempfile::tempdir().unwrap();
    let engine = engine_with(
        &scratch,
        &[("CODEX_MCP_WRAPPER_APP_SERVER_URL", proxy.url()), secret],
    )
    .await;
    let (error, took) = refused(&engine, project.path()).await;
    assert!(
        took < REFUSED_WITHIN,
        "refused only after {took:?}: {error}"
    );
    assert!(
        error.contains("CODEX_MCP_WRAPPER_APP_SERVER_CA_FILE"),
        "{error}"
    );
    assert!(error.contains("TLS"), "{error}");
    assert!(
        !error.contains(server.secret_file.to_str().unwrap()),
        "{error}"
    );
    engine.shutdown().await;
}

/// `codex_wrapper_check`'s findings for a remote URL and secret file.
async fn check_remote(scratch: &Path, url: &str, secret_file: &Path) -> health::Health {
    let secret_file = secret_file.display().to_string();
    let config = config(
        &scratch.join("home"),
        &scratch.join("pointer"),
        &[
            ("CODEX_MCP_WRAPPER_APP_SERVER_MODE", "shared"),
            ("CODEX_MCP_WRAPPER_APP_SERVER_URL", url),
            (
                "CODEX_MCP_WRAPPER_APP_SERVER_SHARED_SECRET_FILE",
                secret_file.as_str(),
            ),
        ],
    );
    health::check(&config, &Ok(codex_binary()), scratch).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_check_connects_to_the_remote_server_and_shows_its_endpoint_without_secrets() {
    let server = RemoteServer::start(RemoteServerOptions::loopback(ServerAuth::SignedBearer {
        issuer: None,
        audience: None,
    }))
    .await;
    let scratch = tempfile::tempdir().unwrap();
    let secret = std::fs::read_to_string(&server.secret_file).unwrap();
    let health = check_remote(scratch.path(), &server.url, &server.secret_file).await;
    let app_server = &health.app_server;
    assert_eq!(app_server.mode, "remote");
    assert!(app_server.reachable, "{:?}", health.problems);
    // The version comes from the server's own `initialize`.
    let expected = codex_binary().version.to_string();
    assert_eq!(app_server.version.as_deref(), Some(expected.as_str()));
    let remote = app_server.remote.as_ref().unwrap();
    assert_eq!(
        (remote.name.as_str(), remote.url.as_str()),
        ("default", server.url.as_str())
    );
    // The login was asked of the remote server, over its connection.
    assert_ne!(health.login.status, LoginStatus::NotChecked);
    assert_ne!(
        health.login.status,
        LoginStatus::Unknown,
        "{:?}",
        health.login
    );
    let json = serde_json::to_string(&health).unwrap();
    assert!(!json.contains(secret.trim()));
    assert!(!json.contains(server.secret_file.to_str().unwrap()));

    // A wrong secret: unreachable, and the problem names the setting.
    let wrong = secret_file(scratch.path(), "wrong", &random_secret());
    let health = check_remote(scratch.path(), &server.url, &wrong).await;
    assert!(!health.app_server.reachable);
    assert!(
        health
            .problems
            .iter()
            .any(|problem| problem.contains("CODEX_MCP_WRAPPER_APP_SERVER_SHARED_SECRET_FILE")),
        "{:?}",
        health.problems
    );
}
