//! The examples as a user runs them: the binaries `cargo test` builds (a
//! targeted run, `cargo test --test it examples::`, needs `cargo build
//! --examples` first), each offline on its own scripted model and the real
//! Codex, finding the server next to its own build like `cargo run
//! --example` does. `make demo` is the fanout test's invocation with longer
//! streams.

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::common::codex_bin;

const SIDECAR: &str = env!("CARGO_BIN_EXE_codex-mcp-sidecar");

/// An example here streams for two seconds or so through a private
/// app-server; two minutes means it is stuck.
const EXAMPLE_TIMEOUT: Duration = Duration::from_secs(120);

/// fanout's longest stream in these tests: it outlasts the example's 3 s
/// wait slice, so `still_running` shows, and keeps the suite quick.
const FANOUT_SECONDS: &str = "4";

/// How long interrupt lets its run go: two 1 s watch slices.
const INTERRUPT_SECONDS: &str = "2";

fn example(name: &str) -> PathBuf {
    Path::new(SIDECAR)
        .parent()
        .unwrap()
        .join("examples")
        .join(name)
}

async fn run_example(path: &Path, args: &[&str]) -> (Output, String) {
    assert!(
        path.is_file(),
        "{} is not built: `cargo test` builds the examples; for a targeted run, `cargo build --examples`",
        path.display()
    );
    let mut command = tokio::process::Command::new(path);
    command
        .args(args)
        .env("CODEX_BIN", codex_bin())
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let output = tokio::time::timeout(EXAMPLE_TIMEOUT, command.output())
        .await
        .expect("the example finished in time")
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    (output, stdout)
}

/// The throwaway root an offline example printed (`project: ROOT/project`).
fn offline_root(stdout: &str) -> PathBuf {
    let project = stdout
        .lines()
        .find_map(|line| line.strip_prefix("project: "))
        .unwrap_or_else(|| panic!("no project line: {stdout}"));
    Path::new(project.trim()).parent().unwrap().to_path_buf()
}

/// Live processes whose command line or environment mentions `text`.
fn processes_mentioning(text: &str) -> Vec<String> {
    let needle = text.as_bytes();
    let mentions = |bytes: &[u8]| bytes.windows(needle.len()).any(|window| window == needle);
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(Result::ok)
        .filter(|entry| {
            entry
                .file_name()
                .to_str()
                .is_some_and(|name| name.parse::<u32>().is_ok())
        })
        .filter_map(|entry| {
            let dir = entry.path();
            let stat = std::fs::read_to_string(dir.join("stat")).ok()?;
            let state = stat[stat.rfind(')')? + 1..].split_whitespace().next()?;
            let cmdline = std::fs::read(dir.join("cmdline")).ok()?;
            let environ = std::fs::read(dir.join("environ")).unwrap_or_default();
            let live = state != "Z" && state != "X";
            (live && (mentions(&cmdline) || mentions(&environ)))
                .then(|| String::from_utf8_lossy(&cmdline).replace('\0', " "))
        })
        .collect()
}

fn assert_nothing_left_running(root: &Path) {
    let left = processes_mentioning(&root.display().to_string());
    assert!(left.is_empty(), "processes left behind: {left:?}");
}

/// `make demo`'s flags, read from the Makefile, so that this test follows
/// them.
fn demo_flags() -> Vec<String> {
    include_str!("../../../Makefile")
        .lines()
        .find_map(|line| line.strip_prefix("DEMO_FLAGS :="))
        .expect("the Makefile sets DEMO_FLAGS")
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

/// One row of fanout's table: label, run id, status, duration, tokens, and
/// the first line of the result.
struct Row {
    label: String,
    run_id: String,
    status: String,
    tokens: u64,
    first_line: String,
}

fn table(stdout: &str) -> Vec<Row> {
    stdout
        .lines()
        .skip_while(|line| !line.starts_with("#   run id"))
        .skip(1)
        .take_while(|line| !line.starts_with('('))
        .map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            assert!(fields.len() >= 6, "a short row: {line}");
            Row {
                label: fields[0].to_string(),
                run_id: fields[1].to_string(),
                status: fields[2].to_string(),
                tokens: fields[4].parse().unwrap(),
                first_line: fields[5..].join(" "),
            }
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fanout_as_make_demo_runs_it_completes_every_run_and_the_resume() {
    let flags = demo_flags();
    let runs: usize = flags
        .iter()
        .position(|flag| flag == "--runs")
        .and_then(|at| flags.get(at + 1))
        .expect("the demo names its --runs")
        .parse()
        .unwrap();
    let mut args: Vec<&str> = flags.iter().map(String::as_str).collect();
    args.extend(["--seconds", FANOUT_SECONDS]);
    let (_, stdout) = run_example(&example("fanout"), &args).await;
    let root = offline_root(&stdout);
    assert_nothing_left_running(&root);

    // Every run completed with tokens, then run 1's second turn.
    let rows = table(&stdout);
    assert_eq!(rows.len(), runs + 1, "{stdout}");
    for (index, row) in rows.iter().enumerate() {
        assert_eq!(row.status, "completed", "{stdout}");
        assert!(row.tokens > 0, "{stdout}");
        if index < runs {
            assert_eq!(row.label, (index + 1).to_string());
            let expected = format!("Run {} of {runs}:", index + 1);
            assert!(row.first_line.starts_with(&expected), "{stdout}");
        }
    }
    let resumed = &rows[runs];
    assert_eq!(resumed.label, "1+");
    assert!(resumed.first_line.starts_with("Run 1, resumed"), "{stdout}");
    // One codex_wait on all the ids hands back each run as it finishes
    // (run n streams n shares of the seconds, so they finish in order), in
    // fewer calls than one wait per run would need counting their slices.
    let finished: Vec<usize> = stdout
        .lines()
        .filter_map(|line| line.strip_prefix("finished run "))
        .map(|rest| rest.split_whitespace().next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(finished, (1..=runs).collect::<Vec<_>>(), "{stdout}");
    let calls: usize = stdout
        .lines()
        .find_map(|line| line.strip_prefix(&format!("waited on {runs} runs in ")))
        .and_then(|rest| rest.split_whitespace().next())
        .expect("the example counts its wait calls")
        .parse()
        .unwrap();
    let slices_over = stdout.matches("still running").count();
    assert!(calls >= runs && calls <= runs + slices_over, "{stdout}");

    // The watch command comes first, before any run starts, and it works:
    // the same command with --json lists the runs, the resume on run 1's
    // thread.
    let watch_at = stdout.find("watch the runs live").expect("a watch line");
    assert!(watch_at < stdout.find("started run").unwrap(), "{stdout}");
    let watch = stdout[watch_at..].lines().nth(1).unwrap().trim();
    let words: Vec<&str> = watch.split_whitespace().collect();
    let program_at = words.iter().position(|word| !word.contains('=')).unwrap();
    let mut command = tokio::process::Command::new(words[program_at]);
    for assignment in &words[..program_at] {
        let (name, value) = assignment.split_once('=').unwrap();
        command.env(name, value);
    }
    let listing = command
        .args(&words[program_at + 1..])
        .args(["--json", "--no-watch"])
        .output()
        .await
        .unwrap();
    let listing: Value = serde_json::from_slice(&listing.stdout).unwrap();
    let thread_of = |run_id: &str| {
        listing["runs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|run| run["runId"] == run_id)
            .unwrap_or_else(|| panic!("{run_id} is not listed: {listing}"))["threadId"]
            .clone()
    };
    assert_eq!(thread_of(&resumed.run_id), thread_of(&rows[0].run_id));

    // --keep: the audit is still there, one summary per run, until removed.
    assert!(
        stdout.contains(&format!("kept {}", root.display())),
        "{stdout}"
    );
    let audit = root.join("project/.codex/codex-mcp/runs");
    for row in &rows {
        assert!(
            audit.join(format!("{}.md", row.run_id)).is_file(),
            "{}",
            row.run_id
        );
    }
    std::fs::remove_dir_all(&root).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_review_critiques_then_reviews_on_one_session() {
    let (_, stdout) = run_example(&example("plan_review"), &[]).await;
    let root = offline_root(&stdout);
    let session = |tool: &str| {
        stdout
            .lines()
            .find_map(|line| line.strip_prefix(&format!("{tool}, session ")))
            .unwrap_or_else(|| panic!("no {tool} line: {stdout}"))
            .trim_end_matches(':')
            .to_string()
    };
    let plan = session("codex_plan");
    assert!(!plan.is_empty(), "{stdout}");
    assert_eq!(session("codex_review"), plan, "{stdout}");
    let critique = stdout
        .find("The plan threads a flag")
        .expect("the critique");
    let review = stdout.find("Still missing").expect("the review");
    assert!(critique < review, "{stdout}");
    assert!(!root.exists(), "the throwaway directories are removed");
    assert_nothing_left_running(&root);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interrupt_stops_a_long_run_and_shows_it_interrupted() {
    let (_, stdout) = run_example(&example("interrupt"), &["--seconds", INTERRUPT_SECONDS]).await;
    let root = offline_root(&stdout);
    assert!(stdout.contains("still running"), "{stdout}");
    assert!(stdout.contains("status: interrupted"), "{stdout}");
    assert!(!root.exists(), "the throwaway directories are removed");
    assert_nothing_left_running(&root);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_server_binary_an_example_says_to_build_it() {
    // An explicit --server that is not there.
    let output = tokio::process::Command::new(example("fanout"))
        .args(["--server", "/nonexistent/codex-mcp-sidecar"])
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--server /nonexistent/codex-mcp-sidecar: no such file"),
        "{stderr}"
    );

    // A copy of the example whose build has no server, with none on PATH.
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("examples")).unwrap();
    let copy = dir.path().join("examples/fanout");
    std::fs::copy(example("fanout"), &copy).unwrap();
    let output = tokio::process::Command::new(&copy)
        .env("PATH", dir.path())
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("build it with `cargo build`"), "{stderr}");
}
