//! Fan out: start several Codex runs at once through the sidecar, wait for
//! them with `codex_wait` on all their ids (`run_ids`, mode `any`: each call
//! returns the next run to finish), give one of them a second turn with
//! `codex_resume`, and print what each did.
//!
//! ```sh
//! cargo build && cargo run --example fanout               # offline, 4 runs
//! cargo run --example fanout -- --runs 8 --seconds 30
//! cargo run --example fanout -- --real                    # your Codex, this directory
//! ```

mod common;

use clap::Parser;
use codex_mcp_sidecar_test_support::scripted_model::Script;
use common::{Result, Session, WAIT_SLICE_MS, first_line, seconds};
use futures_util::future::try_join_all;
use serde_json::{Value, json};
use std::collections::HashMap;

/// Offline, a run streams one word this often, so its result and the
/// progress of `still_running` grow while you watch.
const WORD_INTERVAL_MS: u64 = 250;

/// With `--real`: small read-only questions about the current directory.
const REAL_TASKS: [&str; 4] = [
    "In one sentence: what is this project for?",
    "Which language is most of this project written in? One line.",
    "Name the file a newcomer should read first, and why, in one line.",
    "How are this project's tests run? One line.",
];

#[derive(Parser)]
struct Args {
    #[command(flatten)]
    common: common::Options,
    /// How many runs to start at once.
    #[arg(long, default_value_t = 4)]
    runs: usize,
    /// Offline: the last run streams for this many seconds, the others for
    /// a share of it (run 1 of 4 a quarter), so they end one after another.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    common::run(&args.common, async |session| fanout(session, &args).await).await
}

async fn fanout(session: &Session, args: &Args) -> Result<()> {
    if args.runs == 0 {
        return Err("--runs must be at least 1".into());
    }
    // codex_run answers at once with a run id; the runs go on in Codex.
    let starts = (1..=args.runs).map(|n| {
        let prompt = session.prompt(&task(n, args), streamed_answer(n, args));
        session.call(
            "codex_run",
            json!({"prompt": prompt, "permissions": "read-only"}),
        )
    });
    let handles = try_join_all(starts).await?;
    let run_ids: Vec<String> = handles
        .iter()
        .map(|handle| handle["runId"].as_str().unwrap_or_default().to_string())
        .collect();
    for (n, run_id) in run_ids.iter().enumerate() {
        println!("started run {} of {}: {run_id}", n + 1, args.runs);
    }

    let mut results = wait_any(session, &run_ids).await?;

    // A new turn on run 1's thread: Codex still has its conversation.
    let words = [
        "Run 1, resumed: ",
        "a second ",
        "turn ",
        "on the ",
        "same thread.",
    ];
    let prompt = session.prompt(
        "Now say the same in at most ten words.",
        Script::stream(&words, WORD_INTERVAL_MS),
    );
    let resumed = session
        .call(
            "codex_resume",
            json!({"run_id": run_ids[0], "prompt": prompt}),
        )
        .await?;
    let resumed_id = resumed["runId"].as_str().unwrap_or_default().to_string();
    println!("resumed run 1 as {resumed_id}");
    results.push(wait(session, &resumed_id).await?);

    print_table(&results);
    Ok(())
}

/// Waits on every run at once: each `codex_wait` with the ids still
/// going returns the next run to finish (mode `any`), or `still_running`
/// with each run's progress when the slice is up (shown when it moved).
/// The results come back in the order of `run_ids`.
async fn wait_any(session: &Session, run_ids: &[String]) -> Result<Vec<Value>> {
    let mut left: Vec<String> = run_ids.to_vec();
    let mut finished: HashMap<String, Value> = HashMap::new();
    let mut shown: HashMap<String, Value> = HashMap::new();
    let mut calls = 0;
    while !left.is_empty() {
        calls += 1;
        let reply = session
            .call(
                "codex_wait",
                json!({"run_ids": left, "mode": "any", "soft_timeout_ms": WAIT_SLICE_MS}),
            )
            .await?;
        if reply["status"] == "still_running" {
            for run in reply["runs"].as_array().into_iter().flatten() {
                let run_id = run["runId"].as_str().unwrap_or_default().to_string();
                let events = &run["events"];
                if shown.get(&run_id) != Some(events) {
                    println!("  {run_id} still running: {events} events");
                    shown.insert(run_id, events.clone());
                }
            }
            continue;
        }
        let run_id = reply["runId"].as_str().unwrap_or_default().to_string();
        let n = run_ids
            .iter()
            .position(|id| *id == run_id)
            .map_or(0, |at| at + 1);
        println!(
            "finished run {n} of {}: {run_id} {} in {:.1}s",
            run_ids.len(),
            reply["status"].as_str().unwrap_or("?"),
            seconds(&reply)
        );
        left.retain(|id| *id != run_id);
        finished.insert(run_id, reply);
    }
    // Waiting on each run in turn costs a call per slice of each run's
    // time (at least one): what the old loop, one wait per run, made.
    let per_run: u64 = finished
        .values()
        .map(|reply| {
            let millis = reply["durationMs"].as_u64().unwrap_or(0);
            millis.div_ceil(WAIT_SLICE_MS).max(1)
        })
        .sum();
    println!(
        "waited on {} runs in {calls} codex_wait calls (one wait per run, in the same slices: {per_run})",
        run_ids.len()
    );
    Ok(run_ids
        .iter()
        .map(|run_id| finished.remove(run_id).unwrap_or(Value::Null))
        .collect())
}

/// Waits slice by slice on one run: the result as soon as it ends, or
/// `still_running` with its progress when the slice is up.
async fn wait(session: &Session, run_id: &str) -> Result<Value> {
    loop {
        let reply = session.wait_slice(run_id, WAIT_SLICE_MS).await?;
        if reply["status"] != "still_running" {
            return Ok(reply);
        }
        println!(
            "  {run_id} still running: {} events",
            reply["progress"]["events"]
        );
    }
}

fn task(n: usize, args: &Args) -> String {
    if args.common.real {
        REAL_TASKS[(n - 1) % REAL_TASKS.len()].to_string()
    } else {
        format!("Fanout run {n} of {}: stream some words.", args.runs)
    }
}

/// Offline, run `n` streams for its share of `--seconds`, a summary line
/// first.
fn streamed_answer(n: usize, args: &Args) -> Script {
    let millis = args.seconds * 1000 * n as u64 / args.runs as u64;
    let count = (millis / WORD_INTERVAL_MS).max(1);
    let summary = format!(
        "Run {n} of {}: {count} words in {:.1} s.\n",
        args.runs,
        millis as f64 / 1000.0
    );
    let words: Vec<String> = (1..=count).map(|word| format!("word{word} ")).collect();
    let mut parts = vec![summary.as_str()];
    parts.extend(words.iter().map(String::as_str));
    Script::stream(&parts, WORD_INTERVAL_MS)
}

fn print_table(results: &[Value]) {
    println!();
    println!(
        "{:<3} {:<26} {:<10} {:>8} {:>7}  first line of the result",
        "#", "run id", "status", "duration", "tokens"
    );
    let resumed = results.len().saturating_sub(1);
    for (index, reply) in results.iter().enumerate() {
        let label = if index == resumed {
            "1+".to_string()
        } else {
            (index + 1).to_string()
        };
        println!(
            "{label:<3} {:<26} {:<10} {:>7.1}s {:>7}  {}",
            reply["runId"].as_str().unwrap_or("?"),
            reply["status"].as_str().unwrap_or("?"),
            seconds(reply),
            reply["usage"]["totalTokens"].as_u64().unwrap_or(0),
            first_line(reply),
        );
    }
    println!("(1+ is run 1's second turn, from codex_resume)");
}
