//! B4: 64 runs at once through one sidecar, each streaming deltas: do all
//! complete, does every run's audit hold every delta, and what does the
//! sidecar process cost in memory and CPU.

use std::time::Instant;

use codex_mcp_sidecar::store::{self, AuditEvent, RunId};
use codex_mcp_sidecar_test_support::scripted_model::Script;
use futures_util::future::try_join_all;
use serde_json::json;

use crate::report::{Check, Section, number};
use crate::support::{BenchResult, Sidecar, World, process_usage, structured};

/// Issue 7's size.
const RUNS: usize = 64;
/// Deltas each run streams, this far apart: a turn of about a second and a
/// half, so that all 64 are under way together.
const DELTAS: usize = 40;
const DELTA_DELAY_MS: u64 = 40;
/// Issue 7's target, in MiB.
const TARGET_RSS_MIB: f64 = 40.0;

pub async fn run() -> BenchResult<Section> {
    World::around_sidecar(run_with).await
}

async fn run_with(world: &World, sidecar: &Sidecar) -> BenchResult<Section> {
    let parts: Vec<String> = (0..DELTAS).map(|n| format!("d{n} ")).collect();
    let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
    let message = parts.concat();
    let started = Instant::now();
    let starts = (0..RUNS).map(|n| {
        let prompt = format!(
            "run {n}: {}",
            Script::stream(&parts, DELTA_DELAY_MS).marker()
        );
        async move {
            sidecar
                .start_run("codex_run", json!({ "prompt": prompt }))
                .await
        }
    });
    let run_ids = try_join_all(starts).await?;
    let all_started = started.elapsed();
    let waits = run_ids
        .iter()
        .map(|run_id| async move { structured(&sidecar.wait_blocking(run_id).await?) });
    let results = try_join_all(waits).await?;
    let all_ended = started.elapsed();
    let usage = process_usage(sidecar.pid)?;

    let completed = results
        .iter()
        .filter(|done| done["status"] == "completed" && done["result"] == message.as_str())
        .count();
    let mut lost = 0;
    for run_id in &run_ids {
        let events = store::read_events(&world.run_dir(), &RunId::parse(run_id)?)?;
        let deltas = events
            .iter()
            .filter(|record| {
                matches!(&record.event, AuditEvent::Notification { method, .. }
                    if method == "item/agentMessage/delta")
            })
            .count();
        lost += DELTAS.saturating_sub(deltas);
    }
    let rss_mib = usage.peak_rss_kib as f64 / 1024.0;
    let mut section = Section::new(
        "B4",
        "64 concurrent runs",
        format!(
            "{RUNS} `codex_run` calls at once to one sidecar (shared app-server, \
             scripted model), each run streaming {DELTAS} deltas {DELTA_DELAY_MS} ms \
             apart, then a blocking `codex_wait` on each, all at once. Afterwards \
             each run's `<runId>.jsonl` is read for its `item/agentMessage/delta` \
             events. Memory and CPU are the sidecar process's own, from \
             `/proc/PID/status` (VmHWM) and `/proc/PID/stat` (utime + stime, from \
             its start, the MCP handshake included)."
        ),
    );
    section.figure(
        "completed with the whole message",
        format!("{completed} of {RUNS}"),
    );
    section.figure(
        "deltas lost (streamed but not in the audit)",
        format!("{lost} of {}", RUNS * DELTAS),
    );
    section.figure(
        "all started / all ended (wall)",
        format!(
            "{} / {}",
            number(all_started.as_secs_f64(), "s"),
            number(all_ended.as_secs_f64(), "s")
        ),
    );
    section.figure("sidecar peak RSS (VmHWM)", number(rss_mib, "MiB"));
    section.figure(
        "sidecar CPU time (user + system)",
        number(usage.cpu_seconds, "s"),
    );
    section.checks.push(Check::at_least(
        "runs completed",
        completed as f64,
        RUNS as f64,
        "",
    ));
    section
        .checks
        .push(Check::at_most("deltas lost", lost as f64, 0.0, ""));
    section.checks.push(Check::at_most(
        "sidecar peak RSS",
        rss_mib,
        TARGET_RSS_MIB,
        "MiB",
    ));
    Ok(section)
}
