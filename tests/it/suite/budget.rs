//! Issue 18's budget and warnings, on the real Codex app-server and the
//! scripted model: the rate-limit figures Codex reads from the model's
//! headers reach a run's result and the check, warnings come back, and
//! the cap on concurrent runs refuses a run over it.

use codex_mcp_sidecar::actors::RunStatus;
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
