//! Issue 18's budget and warnings, on the real Codex app-server and the
//! scripted model: the rate-limit figures Codex reads from the model's
//! headers reach a run's result and the check, warnings come back, and
//! the cap on concurrent runs refuses a run over it.

use codex_mcp_sidecar::actors::{EngineError, RunStatus, WaitOutcome};
use codex_mcp_sidecar::mcp::replies::{self, Page};
use codex_mcp_sidecar_test_support::scripted_model::{
    RateLimitHeaders, RateLimitWindowHeaders, Script,
};
use pretty_assertions::assert_eq;

use crate::common::engine::EngineRig;

/// 2027-01-15T08:00:00Z and 2027-01-20T00:00:00Z.
const PRIMARY_RESET: i64 = 1_800_000_000;
const SECONDARY_RESET: i64 = 1_800_403_200;

fn figures() -> RateLimitHeaders {
    RateLimitHeaders {
        primary: RateLimitWindowHeaders {
            used_percent: 37.0,
            window_minutes: 300,
            reset_at: PRIMARY_RESET,
        },
        secondary: Some(RateLimitWindowHeaders {
            used_percent: 64.0,
            window_minutes: 10_080,
            reset_at: SECONDARY_RESET,
        }),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_from_the_model_headers_reach_the_result_and_the_check() {
    let rig = EngineRig::start(&[]).await;
    rig.model.set_rate_limits(Some(figures()));
    let started = rig
        .run(format!("Say hi. {}", Script::text("hi").marker()))
        .await;
    let result = rig.finish(&started).await;
    assert_eq!(result.status, RunStatus::Completed);
    let compact = result.rate_limits.compact();
    assert_eq!(
        compact.primary.as_deref(),
        Some("37%/300m until 2027-01-15T08:00Z")
    );
    assert_eq!(
        compact.secondary.as_deref(),
        Some("64%/10080m until 2027-01-20T00:00Z")
    );
    // The reply carries them compact: the figures cost under 100 bytes.
    let reply = replies::finished(
        &result,
        Page {
            offset: 0,
            max_chars: 20_000,
        },
    );
    let value = reply.structured_content.clone().unwrap();
    let limits = serde_json::to_string(&value["rateLimits"]).unwrap();
    assert_eq!(
        limits,
        r#"{"primary":"37%/300m until 2027-01-15T08:00Z","secondary":"64%/10080m until 2027-01-20T00:00Z"}"#
    );
    assert!(limits.len() < 100, "{limits}");
    // The engine keeps the last figures for `codex_wrapper_check`.
    assert_eq!(rig.engine.news().rate_limits, result.rate_limits);
    rig.stop().await;
}

/// A run that streams for about `seconds` seconds.
fn slow(seconds: u64) -> String {
    let parts: Vec<String> = (0..seconds * 4).map(|n| format!("part {n} ")).collect();
    let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
    format!("Stream. {}", Script::stream(&parts, 250).marker())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cap_refuses_a_run_over_it_across_two_engines_and_frees_as_runs_end() {
    let rig = EngineRig::start(&[("CODEX_MCP_WRAPPER_MAX_RUNS", "2")]).await;
    // A second engine (a second sidecar) on the same pointer directory.
    let other_home = tempfile::tempdir().unwrap();
    rig.model.write_codex_home(other_home.path()).unwrap();
    let other = codex_mcp_sidecar::actors::Engine::start(
        crate::common::engine::config(
            other_home.path(),
            rig.pointer_dir.path(),
            &[("CODEX_MCP_WRAPPER_MAX_RUNS", "2")],
        ),
        crate::common::codex_binary(),
    )
    .await
    .unwrap();

    let first = rig.run(slow(1)).await;
    let second = other.run(rig.request(slow(6))).await.unwrap();
    // Either sidecar refuses a third, at once, naming the count and setting.
    for engine in [&rig.engine, &other] {
        let asked = std::time::Instant::now();
        let refused = engine.run(rig.request(slow(1))).await.unwrap_err();
        assert!(asked.elapsed() < std::time::Duration::from_secs(2));
        let message = refused.to_string();
        assert!(matches!(refused, EngineError::Busy(_)), "{refused:?}");
        assert_eq!(
            message,
            "busy: 2 runs are going (the cap, 2, is CODEX_MCP_WRAPPER_MAX_RUNS); wait for one of them to end (codex_wait), or raise the cap"
        );
    }
    // Once the first ends, the other sidecar's next run takes its place.
    // The ended run's sidecar rewrites its slot file just after the run's
    // end is told (off the actor, on the blocking pool), so another
    // sidecar sees the slot free within moments, not at the same instant.
    assert_eq!(rig.finish(&first).await.status, RunStatus::Completed);
    let freed_within = std::time::Instant::now() + std::time::Duration::from_secs(2);
    let third = loop {
        match other.run(rig.request(slow(1))).await {
            Ok(started) => break started,
            Err(EngineError::Busy(_)) if std::time::Instant::now() < freed_within => {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            Err(error) => panic!("the freed slot was not taken: {error}"),
        }
    };
    assert!(matches!(
        rig.engine.run(rig.request(slow(1))).await,
        Err(EngineError::Busy(_))
    ));
    for started in [&second, &third] {
        let outcome = tokio::time::timeout(
            crate::common::EVENT_TIMEOUT,
            other.wait(&started.run_id, None),
        )
        .await
        .unwrap()
        .unwrap();
        assert!(matches!(outcome, WaitOutcome::Finished(_)), "{outcome:?}");
    }
    other.shutdown().await;
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thread_warning_reaches_the_result_cut_to_the_reply_budget() {
    let rig = EngineRig::start(&[]).await;
    let started = rig
        .run(format!("Say hi. {}", Script::text("hi").marker()))
        .await;
    let result = rig.finish(&started).await;
    // Codex warns on the thread about a model its catalog does not know
    // (the scripted `mock-model`); the turn completes all the same.
    assert_eq!(result.status, RunStatus::Completed);
    let warning = result
        .warnings
        .iter()
        .find(|warning| warning.starts_with("Model metadata for `mock-model` not found"))
        .unwrap_or_else(|| panic!("{:?}", result.warnings));
    assert!(warning.chars().count() > 100, "{warning}");
    // The reply: at most 3, each cut to 160 characters.
    let reply = replies::finished(
        &result,
        Page {
            offset: 0,
            max_chars: 20_000,
        },
    );
    let value = reply.structured_content.clone().unwrap();
    let shown = value["warnings"].as_array().unwrap();
    assert!(!shown.is_empty() && shown.len() <= replies::REPLY_WARNINGS);
    for line in shown {
        assert!(line.as_str().unwrap().chars().count() <= replies::REPLY_WARNING_CHARS);
    }
    assert!(serde_json::to_string(&value["warnings"]).unwrap().len() <= 3 * 170);
    rig.stop().await;
}

/// A warning about the whole connection goes to `codex_wrapper_check`, not
/// to a run: an exec-policy rules file Codex cannot parse makes the real
/// app-server send `configWarning` ("Error parsing rules; custom rules not
/// applied.") right after `initialize`, while the rest of the config holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_warning_reaches_the_check_and_not_the_result() {
    let rig = EngineRig::start(&[]).await;
    let rules = rig.codex_home.path().join("rules");
    std::fs::create_dir_all(&rules).unwrap();
    std::fs::write(rules.join("broken.rules"), "prefix_rule(pattern = [\n").unwrap();
    let started = rig
        .run(format!("Say hi. {}", Script::text("hi").marker()))
        .await;
    let result = rig.finish(&started).await;
    assert_eq!(result.status, RunStatus::Completed);
    assert!(
        !result.warnings.iter().any(|w| w.contains("rules")),
        "a connection's warning is not the run's: {:?}",
        result.warnings
    );
    // What the MCP tool answers: the check, with the engine's news.
    let config = rig.engine.config().clone();
    let codex = crate::common::codex_binary();
    let mut health =
        codex_mcp_sidecar::health::check(&config, &Ok(codex), rig.project.path()).await;
    health.add_news(rig.engine.news());
    let value = serde_json::to_value(&health).unwrap();
    let warnings = value["codexWarnings"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        warnings.iter().any(|w| w
            .as_str()
            .unwrap_or_default()
            .contains("Error parsing rules")),
        "the check shows the config warning: {value}"
    );
    assert!(
        warnings
            .iter()
            .all(|w| w.as_str().unwrap_or_default().chars().count() <= 160),
        "{warnings:?}"
    );
    rig.stop().await;
}

/// The model and sandbox the real `thread/start` reports are held against
/// what each run asked: the real Codex gives every run here what it asked
/// (a model by name, and each sandbox), so no "Codex runs this thread …"
/// line is added; a thread that got something else would carry one
/// (`run_state::the_thread_gets_a_line_only_where_it_differs_from_the_ask`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thread_that_got_what_it_asked_adds_no_line() {
    use codex_mcp_sidecar::config::Permissions;
    let rig = EngineRig::start(&[]).await;
    for permissions in [
        Permissions::ReadOnly,
        Permissions::WorkspaceWrite,
        Permissions::Yolo,
    ] {
        let mut request = rig.request(format!("Say hi. {}", Script::text("hi").marker()));
        request.turn.permissions = Some(permissions);
        request.turn.model = Some("gpt-5.1-codex-mini".into());
        let started = rig.engine.run(request).await.unwrap();
        let result = rig.finish(&started).await;
        assert_eq!(result.status, RunStatus::Completed);
        assert!(
            !result
                .warnings
                .iter()
                .any(|line| line.starts_with("Codex runs this thread")),
            "{permissions:?}: {:?}",
            result.warnings
        );
    }
    rig.stop().await;
}
