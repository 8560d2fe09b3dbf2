//! B5: how fast the sidecar takes in events: a fake app-server floods
//! 200 000 notifications across 10 runs, and the clock stops when every
//! run's `codex_wait` has answered, which a run does only once its audit
//! holds every event. Then a flood ten times longer, for the memory a
//! flood costs: bounded queues keep the peak near the resting size.

use std::time::Instant;

use codex_mcp_sidecar::store::{self, AuditEvent, RunId};
use futures_util::future::try_join_all;
use serde_json::json;

use crate::fake_server::{FakeAppServer, Flood};
use crate::report::{Check, Section, number};
use crate::support::{BenchResult, Dirs, ProcessUsage, Sidecar, process_usage, structured};

/// Issue 7's size: 200 000 notifications over 10 runs, each run's last
/// one its `turn/completed`.
const RUNS: usize = 10;
const NOTIFICATIONS: usize = 200_000;
const DELTAS_PER_RUN: usize = NOTIFICATIONS / RUNS - 1;
/// Issue 7's target, in events a second.
const TARGET_RATE: f64 = 100_000.0;

/// The long flood: ten times issue 7's, long enough that a sidecar whose
/// queues grow instead of pushing back on the socket shows it in its RSS.
const LONG_FLOOD_FACTOR: usize = 10;
/// Issue 14's target: the long flood's peak RSS within this much of the
/// sidecar's resting size (before the flood, every run started).
const PEAK_OVER_RESTING_MIB: f64 = 20.0;

pub async fn run() -> BenchResult<Section> {
    let ingest = flood_once(DELTAS_PER_RUN).await?;
    let long = flood_once((NOTIFICATIONS * LONG_FLOOD_FACTOR) / RUNS - 1).await?;
    Ok(report(ingest, long))
}

/// What one flood measured.
struct Ingest {
    notifications: usize,
    elapsed: std::time::Duration,
    audited: usize,
    completed: usize,
    before: ProcessUsage,
    after: ProcessUsage,
}

impl Ingest {
    fn rate(&self) -> f64 {
        self.notifications as f64 / self.elapsed.as_secs_f64()
    }

    /// Peak RSS over the resting RSS measured just before the flood.
    fn growth_mib(&self) -> f64 {
        (self.after.peak_rss_kib as f64 - self.before.rss_kib as f64) / 1024.0
    }
}

/// A fresh fake server and sidecar, so each flood's peak RSS is its own.
async fn flood_once(deltas_per_run: usize) -> BenchResult<Ingest> {
    let server = FakeAppServer::start(Flood {
        runs: RUNS,
        deltas_per_run,
    })
    .await?;
    let outcome = run_with(&server, RUNS * (deltas_per_run + 1)).await;
    server.stop();
    outcome
}

async fn run_with(server: &FakeAppServer, notifications: usize) -> BenchResult<Ingest> {
    let dirs = Dirs::new()?;
    let env = dirs.sidecar_env(&[("CODEX_MCP_WRAPPER_APP_SERVER_URL", &server.url)]);
    Sidecar::around(dirs.project.path(), &env, async |sidecar| {
        let starts = (0..RUNS)
            .map(|n| sidecar.start_run("codex_run", json!({ "prompt": format!("flood {n}") })));
        let run_ids = try_join_all(starts).await?;
        let before = process_usage(sidecar.pid)?;
        let waits = run_ids
            .iter()
            .map(|run_id| async move { structured(&sidecar.wait_blocking(run_id).await?) });
        let waiting = try_join_all(waits);
        let started = Instant::now();
        server.flood_now();
        let results = waiting.await?;
        let elapsed = started.elapsed();
        let after = process_usage(sidecar.pid)?;
        let run_dir = dirs.project.path().join(".codex/codex-mcp/runs");
        let mut audited = 0;
        for run_id in &run_ids {
            let events = store::read_events(&run_dir, &RunId::parse(run_id)?)?;
            audited += events
                .iter()
                .filter(|record| matches!(record.event, AuditEvent::Notification { .. }))
                .count();
        }
        let completed = results
            .iter()
            .filter(|done| done["status"] == "completed")
            .count();
        Ok(Ingest {
            notifications,
            elapsed,
            audited,
            completed,
            before,
            after,
        })
    })
    .await
}

/// The text of every delta of a flood of this many notifications (each run's
/// message is its deltas `d{n} ` joined), as its records hold it.
fn streamed_mib(notifications: usize) -> f64 {
    let deltas_per_run = notifications / RUNS - 1;
    let bytes: usize = (0..deltas_per_run).map(|n| format!("d{n} ").len()).sum();
    (bytes * RUNS) as f64 / (1024.0 * 1024.0)
}

fn report(ingest: Ingest, long: Ingest) -> Section {
    let Ingest {
        elapsed,
        audited,
        completed,
        ref before,
        ref after,
        ..
    } = ingest;
    let rate = ingest.rate();
    let mut section = Section::new(
        "B5",
        "event ingest",
        format!(
            "A fake app-server (a WebSocket server in the bench on a Unix socket, \
             the sidecar in `unix://` mode) answers `initialize`, `thread/start` and \
             `turn/start` for {RUNS} `codex_run` calls, then floods {NOTIFICATIONS} \
             notifications: {DELTAS_PER_RUN} `item/agentMessage/delta` per run, \
             round-robin across the runs, and each run's `turn/completed`. Timed from \
             the flood's start until every run's `codex_wait` (sent before the flood) \
             has answered: a run answers only after its audit writer has written \
             everything queued, so this is audited events a second. The fake server \
             shares the two cores with the sidecar. Then the same with a flood \
             {LONG_FLOOD_FACTOR}× longer, on a fresh sidecar: its peak RSS (VmHWM) \
             against its resting RSS (VmRSS once every run has started, before the \
             flood)."
        ),
    );
    section.figure(
        "notifications in the runs' audits",
        format!("{audited} of {NOTIFICATIONS}"),
    );
    section.figure("runs completed", format!("{completed} of {RUNS}"));
    section.figure(
        "flood start → last codex_wait reply",
        number(elapsed.as_secs_f64(), "s"),
    );
    section.figure("audited events a second", format!("{rate:.0}"));
    section.figure(
        "sidecar CPU time during the flood (user + system)",
        number(after.cpu_seconds - before.cpu_seconds, "s"),
    );
    section.figure(
        "sidecar peak RSS (VmHWM)",
        number(after.peak_rss_kib as f64 / 1024.0, "MiB"),
    );
    section.figure(
        "long flood: notifications in the runs' audits",
        format!("{} of {}", long.audited, long.notifications),
    );
    section.figure(
        "long flood: runs completed",
        format!("{} of {RUNS}", long.completed),
    );
    section.figure(
        "long flood: audited events a second",
        format!("{:.0}", long.rate()),
    );
    section.figure(
        "long flood: sidecar resting RSS / peak RSS",
        format!(
            "{} / {}",
            number(long.before.rss_kib as f64 / 1024.0, "MiB"),
            number(long.after.peak_rss_kib as f64 / 1024.0, "MiB")
        ),
    );
    section.figure(
        "long flood: message text streamed (a record holds 16 KiB of it a run)",
        number(streamed_mib(long.notifications), "MiB"),
    );
    section.notes.push(
        "A run's record holds only the end of the message it streams (16 KiB at \
         most; the whole message arrives again with item/completed), so the long \
         flood's growth over resting is the queues, bounded by EVENT_CREDITS (1024) \
         events, and the allocator's slack."
            .to_string(),
    );
    section.notes.push(
        "Every queue between the socket and the disk is bounded by the connection's \
         event credits: the connection reads the next frame only once an earlier \
         event has been written to its run's audit (or dropped, unrouted), so a \
         flood faster than the disk slows the app-server instead of growing memory."
            .to_string(),
    );
    let cpu_per_event_us = (after.cpu_seconds - before.cpu_seconds) * 1e6 / NOTIFICATIONS as f64;
    section.figure("sidecar CPU per event", format!("{cpu_per_event_us:.1} µs"));
    section.why_missed.push(format!(
        "the sidecar spends {cpu_per_event_us:.1} µs of CPU per event (parse, route \
         through two actors, stamp, serialize, append), so 100 000 a second needs \
         about {:.1} of the two cores; the fake server takes its share of them, and \
         other builds on the machine (see the load) the rest.",
        cpu_per_event_us / 10.0
    ));
    section.checks.push(Check::at_least(
        "audited events a second",
        rate,
        TARGET_RATE,
        "/s",
    ));
    section.checks.push(Check::at_least(
        "notifications audited",
        audited as f64,
        NOTIFICATIONS as f64,
        "",
    ));
    section.checks.push(Check::at_least(
        "long flood: notifications audited",
        long.audited as f64,
        long.notifications as f64,
        "",
    ));
    section.checks.push(Check::at_most(
        "long flood: peak RSS over resting",
        long.growth_mib(),
        PEAK_OVER_RESTING_MIB,
        " MiB",
    ));
    section
}
