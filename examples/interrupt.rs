//! Interrupt: start a long run, watch it for a few seconds through
//! `codex_wait` slices, then stop its turn with `codex_interrupt`, which
//! answers with the run's final status: `interrupted`.
//!
//! ```sh
//! cargo build && cargo run --example interrupt            # offline
//! cargo run --example interrupt -- --seconds 10
//! cargo run --example interrupt -- --real                 # your Codex, this directory
//! ```

mod common;

use std::time::{Duration, Instant};

use clap::Parser;
use codex_mcp_sidecar_test_support::scripted_model::Script;
use common::{Result, Session, first_line, seconds};
use serde_json::json;

/// Offline, the run streams a word this often for this many words (two
/// minutes): far longer than anyone waits before interrupting it.
const WORD_INTERVAL_MS: u64 = 500;
const WORDS: u64 = 240;

/// Watch slices of a second: short, so that the run's progress shows
/// several times before the interrupt.
const WATCH_SLICE_MS: u64 = 1_000;

#[derive(Parser)]
struct Args {
    #[command(flatten)]
    common: common::Options,
    /// Let the run go this many seconds, then interrupt it.
    #[arg(long, default_value_t = 3)]
    seconds: u64,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    common::run(&args.common, async |session| {
        interrupt(session, args.seconds).await
    })
    .await
}

async fn interrupt(session: &Session, after_seconds: u64) -> Result<()> {
    let words: Vec<String> = (1..=WORDS).map(|word| format!("word{word} ")).collect();
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    let prompt = session.prompt(
        "Count from 1 to 1000, one number a line, with a fact about each number.",
        Script::stream(&words, WORD_INTERVAL_MS),
    );
    let handle = session
        .call(
            "codex_run",
            json!({"prompt": prompt, "permissions": "read-only"}),
        )
        .await?;
    let run_id = handle["runId"].as_str().unwrap_or_default();
    println!("started {run_id}");

    // Watch it in slices until it is time to interrupt.
    let deadline = Instant::now() + Duration::from_secs(after_seconds);
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        let left_ms = u64::try_from(left.as_millis()).unwrap_or(u64::MAX);
        let slice_ms = left_ms.clamp(1, WATCH_SLICE_MS);
        let reply = session.wait_slice(run_id, slice_ms).await?;
        if reply["status"] != "still_running" {
            return Err(format!("the run ended before the interrupt: {}", reply["status"]).into());
        }
        println!("  still running: {} events", reply["progress"]["events"]);
    }

    println!("interrupting {run_id}");
    let stopped = session
        .call("codex_interrupt", json!({"run_id": run_id}))
        .await?;
    println!(
        "status: {} after {:.1} s",
        stopped["status"].as_str().unwrap_or("?"),
        seconds(&stopped)
    );
    let partial = first_line(&stopped);
    if !partial.is_empty() {
        println!("its message so far: {partial}");
    }
    Ok(())
}
