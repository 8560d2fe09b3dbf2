//! `codex-runs` in a real terminal (tmux): a run of the real Codex on the
//! scripted model, the picker showing it, Enter attaching the Codex terminal
//! UI to the live thread, and the picker back when that UI exits; then the
//! same run, finished, opened from Codex's own files once the app-server
//! has gone.

use std::path::Path;
use std::time::Duration;

use codex_mcp_sidecar_test_support::scripted_model::{Script, ScriptedModel};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::common::codex_bin;
use crate::common::tmux::Tmux;
use codex_mcp_sidecar_test_support::world::{Cleanup, free_port, processes_running_from};

const SIDECAR: &str = env!("CARGO_BIN_EXE_codex-mcp-sidecar");
const CODEX_RUNS: &str = env!("CARGO_BIN_EXE_codex-runs");

/// Long enough to start the picker, attach, and still see the turn run.
const WORDS: usize = 40;
const WORD_DELAY_MS: u64 = 400;

/// Generous for two terminal programs starting on a loaded machine.
const SCREEN_TIMEOUT: Duration = Duration::from_secs(40);

/// The title the picker lists the run under: the prompt's first line.
const TITLE: &str = "Stream forty words for the picker";

fn environment<'a>(
    codex_home: &'a str,
    pointer_dir: &'a str,
    url: &'a str,
    codex: &'a str,
) -> Vec<(&'static str, &'a str)> {
    vec![
        ("CODEX_BIN", codex),
        ("CODEX_HOME", codex_home),
        ("CODEX_MCP_WRAPPER_POINTER_DIR", pointer_dir),
        ("CODEX_MCP_WRAPPER_APP_SERVER_URL", url),
        ("CODEX_MCP_WRAPPER_APP_SERVER_IDLE_MS", "3000"),
    ]
}

/// Leaves the Codex terminal UI: Ctrl-C detaches a remote UI, and quits
/// an idle local one. (A second one would reach the picker and quit it.)
fn quit_codex(terminal: &Tmux) {
    terminal.keys(&["C-c"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enter_attaches_the_codex_ui_to_the_running_turn_and_comes_back() {
    let model = ScriptedModel::start().await.unwrap();
    let codex_home = tempfile::tempdir().unwrap();
    model.write_codex_home(codex_home.path()).unwrap();
    let pointer_parent = tempfile::tempdir().unwrap();
    let pointer_dir = pointer_parent.path().join("pointer");
    let project = tempfile::tempdir().unwrap();
    let url = format!("ws://127.0.0.1:{}", free_port());
    let _cleanup = Cleanup {
        url: url.clone(),
        pointer_dir: pointer_dir.clone(),
    };
    let (home, pointers, codex) = (
        codex_home.path().display().to_string(),
        pointer_dir.display().to_string(),
        codex_bin().display().to_string(),
    );
    let env = environment(&home, &pointers, &url, &codex);

    // The agent's side: a run through the CLI, which waits for it.
    let words: Vec<String> = (0..WORDS).map(|n| format!("w{n:02}zq ")).collect();
    let parts: Vec<&str> = words.iter().map(String::as_str).collect();
    let prompt = format!(
        "{TITLE}\n{}",
        Script::stream(&parts, WORD_DELAY_MS).marker()
    );
    let mut run = tokio::process::Command::new(SIDECAR);
    run.args(["run", &prompt, "--cwd"])
        .arg(project.path())
        .envs(env.iter().copied())
        .env_remove("CODEX_MCP_WRAPPER_APP_SERVER_MODE")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true);
    let mut run = run.spawn().unwrap();
    let mut lines = BufReader::new(run.stdout.take().unwrap()).lines();
    let handle: Value = serde_json::from_str(&lines.next_line().await.unwrap().unwrap()).unwrap();
    let run_id = handle["runId"].as_str().unwrap().to_string();

    // The person's side.
    let picker = Tmux::start(
        &format!("{CODEX_RUNS} --project {}", project.path().display()),
        project.path(),
        &env,
        120,
        40,
    );
    picker.wait_for_text(TITLE, SCREEN_TIMEOUT).await;
    picker.wait_for_text(&run_id, SCREEN_TIMEOUT).await;
    assert!(picker.screen().contains("running"), "{}", picker.screen());

    picker.keys(&["Enter"]);
    picker.wait_for_text("OpenAI Codex", SCREEN_TIMEOUT).await;
    // The run's own text, in the Codex UI: the words side by side (the
    // prompt holds them quoted).
    let side_by_side = format!("{}{}", words[WORDS - 2], words[WORDS - 1].trim());
    picker.wait_for_text(&side_by_side, SCREEN_TIMEOUT).await;
    // The last words are on screen a moment before the turn ends, and Ctrl+C
    // on a running turn interrupts it instead of quitting: quit once the
    // run is over.
    let done = tokio::time::timeout(SCREEN_TIMEOUT, run.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(done.success());
    quit_codex(&picker);

    // Back in the picker, on the same run, which has finished meanwhile.
    picker
        .wait_for("the picker again", SCREEN_TIMEOUT, |screen| {
            screen.contains("codex-runs")
                && screen.contains(&run_id)
                && screen.contains("completed")
        })
        .await;

    // With the app-server gone, Enter opens the finished run from Codex's
    // own session files.
    stop_shared_server(&env).await;
    picker.keys(&["Enter"]);
    picker.wait_for_text("OpenAI Codex", SCREEN_TIMEOUT).await;
    picker.wait_for_text(&side_by_side, SCREEN_TIMEOUT).await;
    quit_codex(&picker);
    picker
        .wait_for("the picker again", SCREEN_TIMEOUT, |screen| {
            screen.contains("codex-runs") && screen.contains(&run_id)
        })
        .await;
    picker.keys(&["q"]);
    picker.wait_for_text("[exited]", SCREEN_TIMEOUT).await;
    // Codex's local UI would start a managed daemon from a copy of itself
    // in CODEX_HOME, and leave it running, unless told not to.
    let left = processes_running_from(codex_home.path());
    assert!(left.is_empty(), "left running: {left:?}");
    model.shutdown().await;
}

async fn stop_shared_server(env: &[(&str, &str)]) {
    let output = tokio::process::Command::new(SIDECAR)
        .args(["app-server", "stop"])
        .envs(env.iter().copied())
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let url = env
        .iter()
        .find(|(name, _)| *name == "CODEX_MCP_WRAPPER_APP_SERVER_URL")
        .map(|(_, url)| *url)
        .unwrap_or_default();
    assert!(
        !codex_mcp_sidecar::picker::attach::probe(url),
        "still listening"
    );
}

/// One index line of a finished run, as the store writes it.
fn finished_line(run_id: &str, title: &str, cwd: &Path) -> String {
    let start = serde_json::json!({
        "event": "start", "runId": run_id, "threadId": format!("thread-{run_id}"),
        "title": title, "cwd": cwd, "status": "running", "at": "2026-11-21T06:00:00.000Z",
    });
    let mut end = start.clone();
    end["event"] = "end".into();
    end["status"] = "completed".into();
    end["at"] = "2026-11-21T06:00:42.000Z".into();
    end["durationMs"] = 42_000.into();
    end["totalTokens"] = 1234.into();
    format!("{start}\n{end}\n")
}

fn append(path: &Path, text: &str) {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    file.write_all(text.as_bytes()).unwrap();
}

/// The list follows the run directory by itself; with `--no-watch` only
/// `r` reads it again. A corrupt line is reported, the rest still listed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_list_follows_the_run_directory_unless_told_not_to() {
    let codex_home = tempfile::tempdir().unwrap();
    let pointer_dir = tempfile::tempdir().unwrap();
    let (home, pointers) = (
        codex_home.path().display().to_string(),
        pointer_dir.path().display().to_string(),
    );
    let env = [
        ("CODEX_HOME", home.as_str()),
        ("CODEX_MCP_WRAPPER_POINTER_DIR", pointers.as_str()),
    ];
    for watch in [true, false] {
        let project = tempfile::tempdir().unwrap();
        let run_dir = project.path().join(".codex/codex-mcp/runs");
        std::fs::create_dir_all(&run_dir).unwrap();
        let index = run_dir.join("index.jsonl");
        append(
            &index,
            &finished_line(
                "20261121-060000-000-aaaaaa",
                "The first run",
                project.path(),
            ),
        );
        append(&index, "{\"event\": \"start\", torn\n");
        let flag = if watch { "" } else { " --no-watch" };
        let picker = Tmux::start(
            &format!("{CODEX_RUNS} --project {}{flag}", project.path().display()),
            project.path(),
            &env,
            120,
            40,
        );
        picker.wait_for_text("The first run", SCREEN_TIMEOUT).await;
        picker
            .wait_for_text("1 line could not be read", SCREEN_TIMEOUT)
            .await;

        append(
            &index,
            &finished_line(
                "20261121-060100-000-bbbbbb",
                "The second run",
                project.path(),
            ),
        );
        if watch {
            // Sooner than the 5 s backstop reload: a file notification did it.
            picker
                .wait_for_text("The second run", Duration::from_secs(3))
                .await;
        } else {
            // Longer than a watching picker's backstop reload.
            tokio::time::sleep(Duration::from_secs(6)).await;
            assert!(
                !picker.screen().contains("The second run"),
                "{}",
                picker.screen()
            );
            picker.keys(&["r"]);
            picker.wait_for_text("The second run", SCREEN_TIMEOUT).await;
        }
        picker.keys(&["q"]);
        picker.wait_for_text("[exited]", SCREEN_TIMEOUT).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn help_and_version_answer_without_a_terminal() {
    for (flag, expect) in [
        ("--help", "--no-watch"),
        ("--version", env!("CARGO_PKG_VERSION")),
    ] {
        let output = tokio::process::Command::new(CODEX_RUNS)
            .arg(flag)
            .output()
            .await
            .unwrap();
        assert!(output.status.success(), "{flag}");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(stdout.contains(expect), "{flag}: {stdout}");
    }
}

/// Whatever ends the picker, the terminal is given back first: out of the
/// alternate screen, out of raw mode (`stty` shows `icanon` again), and the
/// panic or error readable on it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_or_an_error_gives_the_terminal_back_first() {
    let codex_home = tempfile::tempdir().unwrap();
    let pointer_dir = tempfile::tempdir().unwrap();
    let project = tempfile::tempdir().unwrap();
    let (home, pointers) = (
        codex_home.path().display().to_string(),
        pointer_dir.path().display().to_string(),
    );
    for (failure, said) in [
        ("panic", "CODEX_RUNS_TEST_FAILURE=panic"),
        (
            "error",
            "codex-runs: terminal: CODEX_RUNS_TEST_FAILURE=error",
        ),
    ] {
        let env = [
            ("CODEX_HOME", home.as_str()),
            ("CODEX_MCP_WRAPPER_POINTER_DIR", pointers.as_str()),
            ("CODEX_RUNS_TEST_FAILURE", failure),
        ];
        let picker = Tmux::start(
            &format!(
                "{CODEX_RUNS} --project {}; stty -a | tr ' ' '\\n' | grep -x -- '-\\?icanon'",
                project.path().display()
            ),
            project.path(),
            &env,
            100,
            30,
        );
        picker.wait_for_text("[exited]", SCREEN_TIMEOUT).await;
        let screen = picker.screen();
        assert!(screen.contains(said), "{failure}: {screen}");
        assert!(
            screen.lines().any(|line| line.trim() == "icanon"),
            "{failure}: the terminal was left in raw mode:\n{screen}"
        );
        assert!(
            !screen.contains("No runs here yet"),
            "{failure}: still on the picker's screen:\n{screen}"
        );
    }
}
