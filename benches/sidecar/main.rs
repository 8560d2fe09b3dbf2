//! The sidecar's benchmarks (issue 7): cold start, per-turn overhead against
//! a bare app-server client, completion latency, 64 concurrent runs, event
//! ingest from a flooding fake app-server, the size of every tool's
//! reply, and a fresh sidecar's first call. Each prints its numbers;
//! `--doc PATH` also writes them, with the machine, as markdown (`make
//! bench` writes `docs/benchmarks.md`).
//!
//! `cargo bench --bench sidecar [-- B1 B3 …] [-- --doc docs/benchmarks.md]`

mod cold_start;
mod concurrent;
mod fake_server;
mod first_call;
mod ingest;
mod replies;
mod report;
mod side_by_side;
mod support;
mod turns;

use std::process::ExitCode;

use report::{Machine, Section};
use support::BenchResult;

/// Every benchmark, in the order they are reported.
const ALL: [&str; 8] = ["B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8"];

/// The order they run in: B4 (64 Codex turns at once) last, because the
/// machine takes a while to settle after it (the app-server's session
/// files are still being written back), and B5, which needs no Codex and
/// is the most sensitive to a busy machine, first after B1.
const RUN_ORDER: [&str; 8] = ["B1", "B5", "B2", "B3", "B6", "B7", "B8", "B4"];

/// The bench's own runtime: two workers, as many as the machine has cores,
/// so the client side never starves the sidecar of more than its share.
const WORKER_THREADS: usize = 2;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("benchmark failed: {error}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> BenchResult<()> {
    // `cargo bench` adds `--bench`; anything else is ours.
    let mut args = std::env::args().skip(1).filter(|arg| arg != "--bench");
    let mut selected = Vec::new();
    let mut doc = None;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--doc" => doc = Some(args.next().ok_or("--doc needs a path")?),
            name => {
                let id = name.to_ascii_uppercase();
                if !ALL.contains(&id.as_str()) {
                    return Err(format!("unknown benchmark {name}; they are {ALL:?}").into());
                }
                selected.push(id);
            }
        }
    }
    if selected.is_empty() {
        selected = ALL.iter().map(|id| id.to_string()).collect();
    }
    if doc.is_some() && selected.len() != ALL.len() {
        return Err("--doc writes every benchmark: select none or all".into());
    }
    let machine = Machine::describe(&codex_mcp_sidecar_test_support::codex_bin());
    machine.print();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(WORKER_THREADS)
        .enable_all()
        .build()?;
    let mut sections = Vec::new();
    for id in RUN_ORDER
        .iter()
        .filter(|id| selected.iter().any(|chosen| chosen == *id))
    {
        let before = report::load_average();
        let mut section = runtime.block_on(run_one(id))?;
        section.figure(
            "machine load (1-minute average, which lags), before / after",
            format!("{before} / {}", report::load_average()),
        );
        section.print();
        sections.push(section);
    }
    sections.sort_by_key(|section| ALL.iter().position(|id| *id == section.id));
    if let Some(path) = doc {
        std::fs::write(&path, report::markdown(&machine, &sections))?;
        println!("\nwrote {path}");
    }
    Ok(())
}

async fn run_one(id: &str) -> BenchResult<Section> {
    match id {
        "B1" => cold_start::run().await,
        "B2" => turns::overhead().await,
        "B3" => turns::completion_latency().await,
        "B4" => concurrent::run().await,
        "B5" => ingest::run().await,
        "B6" => replies::run().await,
        "B7" => first_call::run().await,
        "B8" => side_by_side::run().await,
        other => Err(format!("no benchmark {other}").into()),
    }
}
