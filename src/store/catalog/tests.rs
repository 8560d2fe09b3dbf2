//! The loaders on run stores built in a temporary directory. One file over
//! 600 lines on purpose: every test builds its store with the helpers at
//! the top, and they read best beside them.

use super::*;
use crate::store::paths::index_path;
use crate::store::{
    IndexEvent, IndexRecord, PointerRecord, RunAudit, append_index, append_pointer,
};
use std::io::Write;

use serde::Serialize;

/// Run ids in start order: `id(1)` began before `id(2)`.
fn id(n: u32) -> RunId {
    RunId::parse(&format!("20261121-0523{:02}-482-{:06x}", n % 60, n)).unwrap()
}

fn index(run: u32, event: IndexEvent, status: RunStatus) -> IndexRecord {
    IndexRecord {
        endpoint: None,
        event,
        run_id: id(run),
        thread_id: Some(format!("thread-{run}")),
        turn_id: None,
        title: format!("run {run}"),
        cwd: "/p".into(),
        status,
        at: format!("2026-11-21T05:23:{:02}.500Z", run % 60),
        duration_ms: None,
        error: None,
        total_tokens: None,
        last_message: None,
    }
}

fn ended(run: u32, status: RunStatus) -> IndexRecord {
    IndexRecord {
        duration_ms: Some(1500),
        total_tokens: Some(1234),
        last_message: Some(format!("finished {run}")),
        ..index(run, IndexEvent::End, status)
    }
}

fn active(run: u32) -> ActiveRecord {
    ActiveRecord {
        endpoint: None,
        run_id: id(run),
        thread_id: format!("thread-{run}"),
        turn_id: Some("turn".into()),
        cwd: "/p".into(),
        title: format!("run {run}"),
        started_at: "2026-11-21T05:23:00.000Z".into(),
        app_server_url: "ws://127.0.0.1:4500".into(),
        app_server_token_file: None,
        pid: 4242,
        total_tokens: Some(77),
        progress: Some("waiting for approval: command".into()),
        last_message: Some("Let me run the tests".into()),
        pending_approval: Some(PendingRow {
            approval_id: "a1".into(),
            kind: "command".into(),
            summary: "cargo test".into(),
        }),
        updated_at: Some("2026-11-21T05:23:05.000Z".into()),
    }
}

fn write_active(run_dir: &Path, record: &ActiveRecord) {
    RunAudit::open(run_dir, &record.run_id)
        .unwrap()
        .write_active(record)
        .unwrap();
}

fn ids(catalog: &Catalog) -> Vec<String> {
    catalog
        .rows
        .iter()
        .map(|row| row.run_id.to_string())
        .collect()
}

#[test]
fn a_project_joins_start_and_end_and_overlays_live_runs() {
    let dir = tempfile::tempdir().unwrap();
    let run_dir = dir.path().join("runs");
    append_index(&run_dir, &index(1, IndexEvent::Start, RunStatus::Running)).unwrap();
    append_index(&run_dir, &index(2, IndexEvent::Start, RunStatus::Running)).unwrap();
    append_index(&run_dir, &index(3, IndexEvent::Start, RunStatus::Running)).unwrap();
    append_index(&run_dir, &ended(1, RunStatus::Completed)).unwrap();
    let mut failed = ended(3, RunStatus::Failed);
    failed.error = Some("the app-server went away".into());
    append_index(&run_dir, &failed).unwrap();
    write_active(&run_dir, &active(2));

    let catalog = load_project(&run_dir);
    assert_eq!(catalog.problems, Vec::<String>::new());
    assert_eq!(
        ids(&catalog),
        [id(3), id(2), id(1)].map(|id| id.to_string())
    );

    let done = &catalog.rows[2];
    assert_eq!(done.status, RunStatus::Completed);
    assert_eq!(done.title, "run 1");
    assert_eq!(done.thread_id.as_deref(), Some("thread-1"));
    assert_eq!(done.started_at.as_deref(), Some("2026-11-21T05:23:01.500Z"));
    assert_eq!(done.ended_at.as_deref(), Some("2026-11-21T05:23:01.500Z"));
    assert_eq!(
        (done.duration_ms, done.total_tokens),
        (Some(1500), Some(1234))
    );
    assert_eq!(done.last_message.as_deref(), Some("finished 1"));
    assert_eq!((&done.progress, &done.app_server_url), (&None, &None));

    let running = &catalog.rows[1];
    assert_eq!(running.status, RunStatus::Running);
    assert_eq!(running.ended_at, None);
    assert_eq!(running.total_tokens, Some(77));
    assert_eq!(
        running.progress.as_deref(),
        Some("waiting for approval: command")
    );
    assert_eq!(
        running.last_message.as_deref(),
        Some("Let me run the tests")
    );
    assert_eq!(
        running.app_server_url.as_deref(),
        Some("ws://127.0.0.1:4500")
    );
    let pending = running.pending_approval.as_ref().unwrap();
    assert_eq!(
        (pending.kind.as_str(), pending.summary.as_str()),
        ("command", "cargo test")
    );

    let failed = &catalog.rows[0];
    assert_eq!(failed.status, RunStatus::Failed);
    assert_eq!(failed.error.as_deref(), Some("the app-server went away"));
}

#[test]
fn the_active_record_of_an_ended_run_is_not_read() {
    let dir = tempfile::tempdir().unwrap();
    append_index(dir.path(), &index(1, IndexEvent::Start, RunStatus::Running)).unwrap();
    append_index(dir.path(), &ended(1, RunStatus::Interrupted)).unwrap();
    // Left behind by a crash between the end record and its removal.
    write_active(dir.path(), &active(1));
    let catalog = load_project(dir.path());
    let row = &catalog.rows[0];
    assert_eq!(row.status, RunStatus::Interrupted);
    assert_eq!(row.total_tokens, Some(1234));
    assert_eq!((&row.progress, &row.pending_approval), (&None, &None));
    assert_eq!(row.app_server_url, None);
    assert!(catalog.problems.is_empty());
}

#[test]
fn corrupt_lines_are_counted_and_the_rest_listed() {
    let dir = tempfile::tempdir().unwrap();
    append_index(dir.path(), &index(1, IndexEvent::Start, RunStatus::Running)).unwrap();
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(dir.path().join("index.jsonl"))
        .unwrap();
    file.write_all(b"not json\n{\"event\":\"start\"}\n{\"runId\":\"../../etc\"}\n\n")
        .unwrap();
    drop(file);
    append_index(dir.path(), &ended(1, RunStatus::Completed)).unwrap();
    append_index(dir.path(), &index(2, IndexEvent::Start, RunStatus::Running)).unwrap();
    // A line being appended as we read: not a problem.
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(dir.path().join("index.jsonl"))
        .unwrap();
    file.write_all(b"{\"event\":\"end\",\"runId\":").unwrap();
    drop(file);
    // A running run whose active record is garbage: a problem, and the
    // row is still there.
    let active_dir = dir.path().join("active");
    std::fs::create_dir_all(&active_dir).unwrap();
    std::fs::write(active_dir.join(format!("{}.json", id(2))), "{\"runId\":").unwrap();

    let catalog = load_project(dir.path());
    assert_eq!(ids(&catalog), [id(2), id(1)].map(|id| id.to_string()));
    assert_eq!(catalog.rows[1].status, RunStatus::Completed);
    assert_eq!(catalog.rows[0].status, RunStatus::Running);
    assert_eq!(catalog.problems.len(), 2, "{:?}", catalog.problems);
    assert!(
        catalog.problems[0].ends_with("index.jsonl: 3 lines could not be read"),
        "{:?}",
        catalog.problems
    );
    assert!(
        catalog.problems[1].contains(&format!("active/{}.json", id(2)))
            && catalog.problems[1].contains("listed from its index"),
        "{:?}",
        catalog.problems
    );
}

/// The active record is not synced: after a power loss it may be there
/// but empty. Such a run is listed from its index, with no problem to
/// report (nothing was lost that the index does not hold), and no other
/// reader takes the empty file for a live run.
#[test]
fn an_empty_active_record_is_as_good_as_none() {
    let dir = tempfile::tempdir().unwrap();
    append_index(dir.path(), &index(1, IndexEvent::Start, RunStatus::Running)).unwrap();
    let active_dir = dir.path().join("active");
    std::fs::create_dir_all(&active_dir).unwrap();
    std::fs::write(active_dir.join(format!("{}.json", id(1))), "").unwrap();

    let catalog = load_project(dir.path());
    assert_eq!(catalog.problems, Vec::<String>::new());
    assert_eq!(ids(&catalog), [id(1).to_string()]);
    assert_eq!(catalog.rows[0].status, RunStatus::Running);
    assert_eq!(catalog.rows[0].app_server_url, None);
    assert_eq!(crate::store::list_active(dir.path()).unwrap(), []);
}

#[test]
fn no_run_here_yet_is_an_empty_catalog_without_problems() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(
        load_project(&dir.path().join("nothing")),
        Catalog::default()
    );
    assert_eq!(
        load_all(&dir.path().join("runs.index.jsonl")),
        Catalog::default()
    );
    std::fs::create_dir(dir.path().join("empty")).unwrap();
    assert_eq!(load_project(&dir.path().join("empty")), Catalog::default());
}

#[test]
fn an_end_without_its_start_is_still_listed() {
    let dir = tempfile::tempdir().unwrap();
    append_index(dir.path(), &ended(5, RunStatus::Completed)).unwrap();
    let catalog = load_project(dir.path());
    let row = &catalog.rows[0];
    assert_eq!(
        (row.status, row.started_at.as_deref()),
        (RunStatus::Completed, None)
    );
    assert_eq!(row.ended_at.as_deref(), Some("2026-11-21T05:23:05.500Z"));
}

fn pointer(run: u32, run_dir: &Path, status: RunStatus, title: &str) -> PointerRecord {
    PointerRecord {
        endpoint: None,
        run_id: id(run),
        project_root: format!("/project-{run}").into(),
        run_dir: run_dir.to_path_buf(),
        thread_id: Some(format!("thread-{run}")),
        title: Some(title.into()),
        status,
        at: format!("2026-11-21T05:24:{:02}.000Z", run % 60),
        total_tokens: status.is_final().then_some(99),
        duration_ms: status.is_final().then_some(2000),
    }
}

#[test]
fn every_project_through_the_pointer_index_latest_record_wins() {
    let dir = tempfile::tempdir().unwrap();
    let pointers = dir.path().join("home/runs.index.jsonl");
    let (one, two) = (dir.path().join("one/runs"), dir.path().join("two/runs"));
    append_pointer(&pointers, &pointer(1, &one, RunStatus::Running, "first")).unwrap();
    append_pointer(&pointers, &pointer(2, &two, RunStatus::Running, "second")).unwrap();
    append_pointer(&pointers, &pointer(3, &one, RunStatus::Running, "third")).unwrap();
    append_pointer(
        &pointers,
        &pointer(1, &one, RunStatus::Completed, "first, renamed"),
    )
    .unwrap();
    std::fs::OpenOptions::new()
        .append(true)
        .open(&pointers)
        .unwrap()
        .write_all(b"{\"runId\": 7}\n")
        .unwrap();
    // Run 2 is live in its own project; run 1's stale active record is
    // not read, since its latest record says it ended.
    write_active(&two, &active(2));
    write_active(&one, &active(1));

    let catalog = load_all(&pointers);
    assert_eq!(
        ids(&catalog),
        [id(3), id(2), id(1)].map(|id| id.to_string())
    );
    assert_eq!(catalog.problems.len(), 1, "{:?}", catalog.problems);
    assert!(catalog.problems[0].ends_with("runs.index.jsonl: 1 line could not be read"));

    let first = &catalog.rows[2];
    assert_eq!(first.status, RunStatus::Completed);
    assert_eq!(first.title, "first, renamed");
    assert_eq!(first.cwd, PathBuf::from("/project-1"));
    assert_eq!(
        first.started_at.as_deref(),
        Some("2026-11-21T05:24:01.000Z")
    );
    assert_eq!(first.ended_at.as_deref(), Some("2026-11-21T05:24:01.000Z"));
    assert_eq!(
        (first.total_tokens, first.duration_ms),
        (Some(99), Some(2000))
    );
    assert_eq!((&first.progress, &first.app_server_url), (&None, &None));

    let live = &catalog.rows[1];
    assert_eq!(live.status, RunStatus::Running);
    assert_eq!(
        live.progress.as_deref(),
        Some("waiting for approval: command")
    );
    assert!(live.pending_approval.is_some());
    let quiet = &catalog.rows[0];
    assert_eq!((quiet.status, &quiet.progress), (RunStatus::Running, &None));
}

#[test]
fn newest_first_whatever_order_the_lines_came_in() {
    let dir = tempfile::tempdir().unwrap();
    let order = [4, 9, 1, 7, 3, 8, 2, 6, 5, 10, 12, 11];
    for run in order {
        append_index(
            dir.path(),
            &index(run, IndexEvent::Start, RunStatus::Running),
        )
        .unwrap();
    }
    let catalog = load_project(dir.path());
    let expected: Vec<String> = (1..=12).rev().map(|run| id(run).to_string()).collect();
    assert_eq!(ids(&catalog), expected);
    // Each row moved whole: its title still matches its id.
    for (row, run) in catalog.rows.iter().zip((1..=12).rev()) {
        assert_eq!(row.title, format!("run {run}"));
    }
}

/// Where the loaders stand on a large store: 100,000 runs (200,000 index
/// lines, each end with a full message excerpt), in one project and
/// through the pointer index. Prints times and peak memory; asserts
/// nothing about them. `cargo test --release --lib catalog::tests::timing
/// -- --ignored --nocapture`.
#[test]
#[ignore = "a measurement: run it in release mode with --nocapture"]
fn timing_of_100k_runs() {
    const RUNS: u32 = 100_000;
    let dir = tempfile::tempdir().unwrap();
    let run_dir = dir.path().join("runs");
    std::fs::create_dir_all(&run_dir).unwrap();
    let pointers = dir.path().join("runs.index.jsonl");
    write_timing_fixture(RUNS, &run_dir, &pointers);
    let size = |path: &Path| std::fs::metadata(path).unwrap().len() / 1_000_000;
    println!(
        "index.jsonl {} MB, pointer index {} MB",
        size(&index_path(&run_dir)),
        size(&pointers)
    );
    for (name, load) in [
        (
            "load_project",
            &(|| load_project(&run_dir)) as &dyn Fn() -> Catalog,
        ),
        (
            "load_all",
            &(|| load_all(&pointers)) as &dyn Fn() -> Catalog,
        ),
    ] {
        for round in 0..3 {
            let before = memory();
            let started = std::time::Instant::now();
            let catalog = load();
            let elapsed = started.elapsed();
            let after = memory();
            assert_eq!(catalog.rows.len(), RUNS as usize);
            assert!(catalog.problems.is_empty());
            println!(
                "{name} round {round}: {} rows in {elapsed:?}; rss {} -> {} MB, peak {} MB",
                catalog.rows.len(),
                before.0 / 1024,
                after.0 / 1024,
                after.1 / 1024
            );
        }
    }
}

/// `runs` runs in one project's index and in the pointer index: a start
/// line each, and an end line with a full message excerpt three starts
/// later, as with runs side by side.
fn write_timing_fixture(runs: u32, run_dir: &Path, pointers: &Path) {
    let mut index_file = io::BufWriter::new(std::fs::File::create(index_path(run_dir)).unwrap());
    let mut pointer_file = io::BufWriter::new(std::fs::File::create(pointers).unwrap());
    let message = format!(
        "I fixed the flaky test in \"store::audit\".\n\n{}",
        "The writer now syncs the directory after the rename. ".repeat(5)
    );
    let run_id = |n: u32| {
        let (day, rest) = (21 + n / 86_400, n % 86_400);
        let id = format!(
            "202611{day:02}-{:02}{:02}{:02}-{:03}-{:06x}",
            rest / 3600,
            rest / 60 % 60,
            rest % 60,
            n % 1000,
            n
        );
        RunId::parse(&id).unwrap()
    };
    for n in 0..runs + 3 {
        if n < runs {
            let mut start = index(0, IndexEvent::Start, RunStatus::Running);
            start.run_id = run_id(n);
            start.title = format!("Fix the flaky audit test, attempt {n}");
            start.cwd = "/home/someone/projects/codex-mcp-sidecar".into();
            start.thread_id = Some("019a7c3e-5f1d-7c20-9f4e-1b2c3d4e5f60".into());
            start.turn_id = Some("019a7c3e-5f1d-7c20-9f4e-1b2c3d4e5f61".into());
            start.at = "2026-11-21T05:23:01.482Z".into();
            let mut pointer = pointer(0, run_dir, RunStatus::Running, &start.title);
            pointer.run_id = start.run_id.clone();
            pointer.project_root = start.cwd.clone();
            line(&mut index_file, &start);
            line(&mut pointer_file, &pointer);
        }
        // Ends come a few starts later, as with runs side by side.
        if let Some(m) = n.checked_sub(3) {
            let mut end = ended(0, RunStatus::Completed);
            end.run_id = run_id(m);
            end.title = format!("Fix the flaky audit test, attempt {m}");
            end.cwd = "/home/someone/projects/codex-mcp-sidecar".into();
            end.thread_id = Some("019a7c3e-5f1d-7c20-9f4e-1b2c3d4e5f60".into());
            end.turn_id = Some("019a7c3e-5f1d-7c20-9f4e-1b2c3d4e5f61".into());
            end.at = "2026-11-21T05:24:00.000Z".into();
            end.duration_ms = Some(58_518);
            end.total_tokens = Some(48_213);
            end.last_message = Some(crate::store::disk_records::message_excerpt(&message));
            let mut pointer = pointer(0, run_dir, RunStatus::Completed, &end.title);
            pointer.run_id = end.run_id.clone();
            pointer.project_root = end.cwd.clone();
            line(&mut index_file, &end);
            line(&mut pointer_file, &pointer);
        }
    }
    index_file.flush().unwrap();
    pointer_file.flush().unwrap();
    drop((index_file, pointer_file));
}

/// (VmRSS, VmHWM) in KiB, after resetting the peak to now, so the peak
/// printed after a load is that load's.
fn memory() -> (u64, u64) {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// One JSONL line of the timing fixture.
fn line(file: &mut io::BufWriter<std::fs::File>, value: &impl Serialize) {
    serde_json::to_writer(&mut *file, value).unwrap();
    file.write_all(b"\n").unwrap();
}

/// Index lines that exercise every rule of the fold: a run without its
/// start, two ends, a start after the end, a thread id only at the end,
/// starts out of order.
fn tricky_index() -> Vec<IndexRecord> {
    let start = |run| index(run, IndexEvent::Start, RunStatus::Running);
    let mut no_thread = start(5);
    no_thread.thread_id = None;
    let mut failed = ended(4, RunStatus::Failed);
    failed.error = Some("boom".into());
    let mut first_end = ended(6, RunStatus::Interrupted);
    first_end.last_message = None;
    vec![
        start(1),
        start(2),
        ended(3, RunStatus::Completed),
        start(4),
        no_thread,
        start(6),
        ended(1, RunStatus::Completed),
        failed,
        start(4),
        first_end,
        start(8),
        ended(5, RunStatus::TimedOut),
        start(7),
        ended(6, RunStatus::Completed),
    ]
}

fn tricky_pointers(one: &Path, two: &Path) -> Vec<PointerRecord> {
    let mut untitled = pointer(2, one, RunStatus::Running, "");
    untitled.title = None;
    let mut renamed = pointer(1, one, RunStatus::Completed, "renamed");
    renamed.thread_id = None;
    let mut moved = pointer(4, two, RunStatus::Running, "moved");
    moved.project_root = "/elsewhere".into();
    let mut no_title_end = pointer(5, one, RunStatus::Failed, "");
    no_title_end.title = None;
    vec![
        pointer(1, one, RunStatus::Running, "first"),
        untitled,
        pointer(3, one, RunStatus::Completed, "third"),
        pointer(4, one, RunStatus::Running, "fourth"),
        pointer(5, one, RunStatus::Running, "fifth"),
        renamed,
        pointer(2, one, RunStatus::Running, "second, named"),
        moved,
        no_title_end,
        pointer(5, one, RunStatus::Running, "fifth again"),
    ]
}

fn lines<T: Serialize>(records: &[T]) -> Vec<Vec<u8>> {
    records
        .iter()
        .map(|record| serde_json::to_vec(record).unwrap())
        .collect()
}

fn fold_index(lines: &[Vec<u8>]) -> rows::IndexRows {
    let mut rows = rows::IndexRows::default();
    for line in lines {
        rows.add_index(serde_json::from_slice(line).unwrap())
            .unwrap();
    }
    rows
}

fn fold_pointers(lines: &[Vec<u8>]) -> rows::PointerRows {
    let mut rows = rows::PointerRows::default();
    for line in lines {
        rows.add_pointer(serde_json::from_slice(line).unwrap())
            .unwrap();
    }
    rows
}

/// Folding a file in parts and joining them gives what one fold of the
/// whole file gives, wherever the file is cut.
#[test]
fn parts_join_to_the_fold_of_the_whole_file() {
    let index = lines(&tricky_index());
    let whole = fold_index(&index).newest_first();
    assert_eq!(whole.len(), 8);
    for cut in 0..=index.len() {
        for second in cut..=index.len() {
            let mut rows = fold_index(&index[..cut]);
            rows.absorb_index(fold_index(&index[cut..second]));
            rows.absorb_index(fold_index(&index[second..]));
            assert_eq!(
                rows.newest_first(),
                whole,
                "index cut at {cut} and {second}"
            );
        }
    }

    let dir = tempfile::tempdir().unwrap();
    let (one, two) = (dir.path().join("one"), dir.path().join("two"));
    let pointers = lines(&tricky_pointers(&one, &two));
    let dirs = |rows: rows::PointerRows| {
        let mut rows = rows.rows;
        let dirs: Vec<(String, PathBuf)> = rows
            .iter_mut()
            .map(|(row, dir)| (row.run_id.to_string(), dir.to_path_buf()))
            .collect();
        (dirs, rows.newest_first())
    };
    let whole = dirs(fold_pointers(&pointers));
    assert_eq!(whole.1.len(), 5);
    for cut in 0..=pointers.len() {
        for second in cut..=pointers.len() {
            let mut rows = fold_pointers(&pointers[..cut]);
            rows.absorb_pointer(fold_pointers(&pointers[cut..second]));
            rows.absorb_pointer(fold_pointers(&pointers[second..]));
            let mut joined = dirs(rows);
            // The first appearance order may differ; the rows may not.
            joined.0.sort();
            let mut expected = whole.clone();
            expected.0.sort();
            assert_eq!(joined, expected, "pointers cut at {cut} and {second}");
        }
    }
}

#[test]
fn the_tricky_files_read_as_a_person_would_expect() {
    let dir = tempfile::tempdir().unwrap();
    for record in tricky_index() {
        append_index(dir.path(), &record).unwrap();
    }
    // The same with every part as small as it gets: the threads' join.
    let catalog = load_project(dir.path());
    assert_eq!(load_project_in_parts(dir.path(), 1), catalog);
    let status = |run: u32| {
        let row = catalog
            .rows
            .iter()
            .find(|row| row.run_id == id(run))
            .unwrap();
        (row.status, row.thread_id.clone())
    };
    assert_eq!(status(3).0, RunStatus::Completed, "an end without a start");
    assert_eq!(
        status(4).0,
        RunStatus::Failed,
        "a later start does not reopen"
    );
    assert_eq!(status(5), (RunStatus::TimedOut, Some("thread-5".into())));
    assert_eq!(status(6).0, RunStatus::Completed, "the later end wins");
    assert_eq!(status(2).0, RunStatus::Running);

    let pointers = dir.path().join("runs.index.jsonl");
    let (one, two) = (dir.path().join("one"), dir.path().join("two"));
    for record in tricky_pointers(&one, &two) {
        append_pointer(&pointers, &record).unwrap();
    }
    let catalog = load_all(&pointers);
    assert_eq!(load_all_in_parts(&pointers, 1), catalog);
    let row = |run: u32| {
        catalog
            .rows
            .iter()
            .find(|row| row.run_id == id(run))
            .unwrap()
    };
    assert_eq!(
        (row(1).status, row(1).title.as_str()),
        (RunStatus::Completed, "renamed")
    );
    assert_eq!(
        row(1).thread_id.as_deref(),
        Some("thread-1"),
        "kept when a line has none"
    );
    assert_eq!(row(2).title, "second, named");
    assert_eq!(row(4).cwd, PathBuf::from("/elsewhere"));
    assert_eq!(
        (row(5).status, row(5).title.as_str()),
        (RunStatus::Running, "fifth again")
    );
}
