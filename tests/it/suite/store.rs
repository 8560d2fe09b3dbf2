//! The audit store under stress, with no Codex involved: many threads and
//! many processes appending to one index, and writers killed at random
//! instants. The child processes are this test binary run again with
//! `--exact <test>` and an environment variable that makes the test act as a
//! writer and return.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use codex_mcp_sidecar::store::{
    self, ActiveRecord, AuditEvent, AuditRecord, IndexEvent, IndexRecord, RunAudit, RunId,
    RunStatus, RunSummary,
};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde::de::DeserializeOwned;

/// Set in a child: the run directory to write to. The test then writes
/// instead of spawning.
const WRITER_DIR_ENV: &str = "CODEX_MCP_STORE_TEST_WRITER_DIR";
/// Set in a child: which writer it is (the lines carry it).
const WRITER_ID_ENV: &str = "CODEX_MCP_STORE_TEST_WRITER_ID";
/// Set in a crash child: the run id whose files it rewrites until killed.
const CRASH_RUN_ENV: &str = "CODEX_MCP_STORE_TEST_CRASH_RUN";

const THREADS: usize = 16;
const PROCESSES: usize = 4;
const LINES_PER_WRITER: usize = 500;
/// Lines of 1–20 KiB: several pages, so a line takes more than one page
/// copy in the kernel, which is where unlocked writers could interleave.
const MIN_PAD: usize = 1024;
const MAX_PAD: usize = 20 * 1024;

/// Kill rounds, and the range of time a crash child gets before SIGKILL.
const CRASH_ROUNDS: usize = 8;
const CRASH_MIN_MS: u64 = 3;
const CRASH_MAX_MS: u64 = 300;
/// Event lines up to 128 KiB in the crash child, so a kill often lands in the
/// middle of one write and tears it.
const CRASH_MAX_PAD: usize = 128 * 1024;
/// A child that has not started writing after this long is stuck.
const CHILD_TIMEOUT: Duration = Duration::from_secs(60);

/// A deterministic pseudo-random number for (writer, seq), so the verifier
/// knows what each line must hold.
fn mix(writer: usize, seq: usize) -> u64 {
    let mut x = (writer as u64) << 32 | seq as u64;
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn pad(writer: usize, seq: usize, min: usize, max: usize) -> String {
    let value = mix(writer, seq);
    let len = min + (value as usize) % (max - min + 1);
    let letter = char::from(b'a' + (value >> 40) as u8 % 26);
    letter.to_string().repeat(len)
}

fn index_line(writer: usize, seq: usize) -> IndexRecord {
    IndexRecord {
        endpoint: None,
        event: IndexEvent::Start,
        run_id: RunId::generate(),
        thread_id: Some(format!("thread-{writer}")),
        turn_id: None,
        title: format!("{writer}:{seq}"),
        cwd: PathBuf::from("/project"),
        status: RunStatus::Running,
        at: codex_mcp_sidecar::timestamp::now_rfc3339(),
        duration_ms: None,
        error: Some(pad(writer, seq, MIN_PAD, MAX_PAD)),
        total_tokens: None,
        last_message: None,
    }
}

fn write_lines(run_dir: &Path, writer: usize) {
    for seq in 0..LINES_PER_WRITER {
        store::append_index(run_dir, &index_line(writer, seq)).unwrap();
    }
}

/// Every complete line of `path`, each of which must parse, and the
/// unfinished last line if there is one (a writer killed mid-write).
fn strict_lines<T: DeserializeOwned>(path: &Path) -> (Vec<T>, Option<usize>) {
    let bytes = std::fs::read(path).unwrap_or_default();
    let mut records = Vec::new();
    let mut unfinished = None;
    for (number, line) in bytes.split_inclusive(|&byte| byte == b'\n').enumerate() {
        match line.strip_suffix(b"\n") {
            Some(body) => records.push(serde_json::from_slice(body).unwrap_or_else(|error| {
                panic!(
                    "{} line {}: {error}: {:?}",
                    path.display(),
                    number + 1,
                    String::from_utf8_lossy(&body[..body.len().min(200)])
                )
            })),
            None => unfinished = Some(line.len()),
        }
    }
    (records, unfinished)
}

/// Each writer's lines are all there, exactly once, and intact.
fn verify_index(run_dir: &Path, writers: usize) {
    let (records, unfinished) = strict_lines::<IndexRecord>(&run_dir.join("index.jsonl"));
    assert_eq!(unfinished, None);
    assert_eq!(records.len(), writers * LINES_PER_WRITER);
    let mut seen = HashSet::new();
    for record in &records {
        let (writer, seq) = record.title.split_once(':').unwrap();
        let (writer, seq): (usize, usize) = (writer.parse().unwrap(), seq.parse().unwrap());
        assert!(
            writer < writers && seq < LINES_PER_WRITER,
            "{}",
            record.title
        );
        assert_eq!(
            record.error.as_deref(),
            Some(pad(writer, seq, MIN_PAD, MAX_PAD).as_str())
        );
        assert!(seen.insert((writer, seq)), "{} twice", record.title);
    }
    assert_eq!(store::read_index(run_dir).unwrap().len(), records.len());
}

/// This test's name as the harness knows it (`suite::store::<name>`).
fn test_path(name: &str) -> String {
    let module = module_path!()
        .split_once("::")
        .map_or(module_path!(), |(_, rest)| rest);
    format!("{module}::{name}")
}

fn spawn_child(test: &str, envs: &[(&str, String)]) -> Child {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args([
            "--exact",
            &test_path(test),
            "--nocapture",
            "--test-threads=1",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    for (name, value) in envs {
        command.env(name, value);
    }
    command.spawn().unwrap()
}

#[test]
fn many_threads_append_whole_lines() {
    let dir = tempfile::tempdir().unwrap();
    let run_dir = dir.path().join("runs");
    let barrier = std::sync::Barrier::new(THREADS);
    std::thread::scope(|scope| {
        for writer in 0..THREADS {
            let (run_dir, barrier) = (&run_dir, &barrier);
            scope.spawn(move || {
                barrier.wait();
                write_lines(run_dir, writer);
            });
        }
    });
    verify_index(&run_dir, THREADS);
}

#[test]
fn many_processes_append_whole_lines() {
    if let Some(run_dir) = std::env::var_os(WRITER_DIR_ENV) {
        let run_dir = PathBuf::from(run_dir);
        let writer = std::env::var(WRITER_ID_ENV).unwrap().parse().unwrap();
        // Start together, so the writers really overlap.
        let go = run_dir.join("go");
        let deadline = Instant::now() + CHILD_TIMEOUT;
        while !go.exists() {
            assert!(Instant::now() < deadline, "never told to go");
            std::thread::sleep(Duration::from_millis(1));
        }
        write_lines(&run_dir, writer);
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let run_dir = dir.path().join("runs");
    std::fs::create_dir_all(&run_dir).unwrap();
    let children: Vec<Child> = (0..PROCESSES)
        .map(|writer| {
            spawn_child(
                "many_processes_append_whole_lines",
                &[
                    (WRITER_DIR_ENV, run_dir.display().to_string()),
                    (WRITER_ID_ENV, writer.to_string()),
                ],
            )
        })
        .collect();
    std::fs::write(run_dir.join("go"), "").unwrap();
    for mut child in children {
        assert!(child.wait().unwrap().success());
    }
    verify_index(&run_dir, PROCESSES);
}

fn crash_active(run_id: &RunId, round: usize, seq: usize) -> ActiveRecord {
    ActiveRecord {
        endpoint: None,
        run_id: run_id.clone(),
        thread_id: format!("thread-{round}"),
        turn_id: Some(format!("turn-{seq}")),
        cwd: PathBuf::from("/project"),
        title: format!("{round}:{seq}"),
        started_at: "2026-11-21T05:23:01.482Z".into(),
        app_server_url: "ws://127.0.0.1:45123".into(),
        app_server_token_file: None,
        pid: std::process::id(),
        total_tokens: Some(seq as u64),
        progress: Some(format!("running `step {seq}`")),
        last_message: None,
        pending_approval: None,
        updated_at: None,
    }
}

fn crash_summary(run_id: &RunId, round: usize, seq: usize) -> RunSummary {
    let mut summary = RunSummary::new(
        run_id.clone(),
        Some(&format!("{round}:{seq}")),
        "p",
        "/p".into(),
    );
    summary.started_at = "2026-11-21T05:23:01.482Z".into();
    summary.final_message = Some(pad(round, seq, MIN_PAD, MAX_PAD));
    summary
}

/// The crash child: rewrites the run's files as fast as it can until killed.
fn crash_writer(run_dir: &Path, run_id: &RunId, round: usize) -> ! {
    let audit = RunAudit::open(run_dir, run_id).unwrap();
    for seq in 0.. {
        let data = serde_json::json!({"pad": pad(round, seq, 1, CRASH_MAX_PAD)});
        let event = AuditEvent::sidecar(format!("{round}:{seq}"), Some(data));
        audit.append_record(&AuditRecord::now(event)).unwrap();
        store::append_index(run_dir, &index_line(round, seq)).unwrap();
        audit
            .write_active(&crash_active(run_id, round, seq))
            .unwrap();
        audit
            .write_summary(&crash_summary(run_id, round, seq))
            .unwrap();
    }
    unreachable!()
}

/// What a kill may leave: at most one unfinished line at the end of each
/// JSONL file, whole JSON and Markdown files, and temp files nobody reads.
fn verify_after_kill(run_dir: &Path, run_id: &RunId) -> (usize, bool) {
    let audit = RunAudit::open(run_dir, run_id).unwrap();
    let paths = audit.paths();
    let (events, events_torn) = strict_lines::<AuditRecord>(&paths.events);
    let (index, index_torn) = strict_lines::<IndexRecord>(&run_dir.join("index.jsonl"));
    assert_eq!(store::read_events(run_dir, run_id).unwrap(), events);
    assert_eq!(store::read_index(run_dir).unwrap(), index);
    for record in &events {
        let AuditEvent::Sidecar { message, data } = &record.event else {
            panic!("{record:?}")
        };
        let (round, seq) = message.split_once(':').unwrap();
        let expected = pad(
            round.parse().unwrap(),
            seq.parse().unwrap(),
            1,
            CRASH_MAX_PAD,
        );
        assert_eq!(data.as_ref().unwrap()["pad"], expected.as_str());
    }
    let active = store::list_active(run_dir).unwrap();
    assert!(active.len() <= 1, "{active:?}");
    if paths.active.exists() {
        let parsed: ActiveRecord =
            serde_json::from_slice(&std::fs::read(&paths.active).unwrap()).unwrap();
        assert_eq!(active, [parsed]);
    }
    if let Ok(markdown) = std::fs::read_to_string(&paths.summary) {
        let title = markdown.lines().next().unwrap().trim_start_matches("# ");
        let (round, seq) = title.split_once(':').unwrap();
        let (round, seq) = (round.parse().unwrap(), seq.parse().unwrap());
        assert_eq!(
            markdown,
            store::render_markdown(&crash_summary(run_id, round, seq))
        );
    }
    (events.len(), events_torn.is_some() || index_torn.is_some())
}

fn random_millis(min: u64, max: u64) -> u64 {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).unwrap();
    min + u64::from_le_bytes(bytes) % (max - min + 1)
}

#[test]
fn writers_killed_at_any_instant_leave_whole_files() {
    if let Some(run_dir) = std::env::var_os(WRITER_DIR_ENV) {
        let run_id = RunId::parse(&std::env::var(CRASH_RUN_ENV).unwrap()).unwrap();
        let round = std::env::var(WRITER_ID_ENV).unwrap().parse().unwrap();
        crash_writer(Path::new(&run_dir), &run_id, round);
    }
    let dir = tempfile::tempdir().unwrap();
    let run_dir = dir.path().join("runs");
    let run_id = RunId::generate();
    let mut torn_seen = false;
    for round in 0..CRASH_ROUNDS {
        let mut child = spawn_child(
            "writers_killed_at_any_instant_leave_whole_files",
            &[
                (WRITER_DIR_ENV, run_dir.display().to_string()),
                (WRITER_ID_ENV, round.to_string()),
                (CRASH_RUN_ENV, run_id.to_string()),
            ],
        );
        std::thread::sleep(Duration::from_millis(random_millis(
            CRASH_MIN_MS,
            CRASH_MAX_MS,
        )));
        kill(Pid::from_raw(child.id() as i32), Signal::SIGKILL).unwrap();
        let status = child.wait().unwrap();
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(Signal::SIGKILL as i32),
            "the writer died of something else: {status}"
        );
        torn_seen |= verify_after_kill(&run_dir, &run_id).1;
    }
    // The next writer cuts any torn tail, after which every line is whole.
    let audit = RunAudit::open(&run_dir, &run_id).unwrap();
    let event = AuditEvent::sidecar(
        "0:0",
        Some(serde_json::json!({"pad": pad(0, 0, 1, CRASH_MAX_PAD)})),
    );
    audit.append_record(&AuditRecord::now(event)).unwrap();
    store::append_index(&run_dir, &index_line(0, 0)).unwrap();
    let (events, torn) = verify_after_kill(&run_dir, &run_id);
    assert!(!torn);
    assert!(events > 1, "the writers never got going");
    eprintln!("crash test: {events} events; a kill tore a line: {torn_seen}");
}
