//! Every Claude Code registration README.md shows, copied as written, gives
//! a healthy sidecar (issue 12). Each `claude mcp add-json` / `claude mcp add
//! … --` command is read out of the README and handed to `sh` exactly as a
//! user would paste it, with `claude` replaced by a function that prints its
//! arguments; the server then runs with that registration's command and env
//! (Claude Code passes env values literally, `~` included) and a throwaway
//! `HOME` holding `.codex/`, and must pass `codex_wrapper_check` and finish a
//! run with its audit in the project and no `~` folder anywhere.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use codex_mcp_sidecar_test_support::scripted_model::{Script, ScriptedModel};
use rmcp::service::RunningService;
use rmcp::transport::TokioChildProcess;
use rmcp::{RoleClient, ServiceExt};
use serde_json::{Value, json};

use crate::common::tools::{call, structured};
use codex_mcp_sidecar_test_support::world::{Cleanup, free_port, processes_naming};

type Client = RunningService<RoleClient, ()>;

const SIDECAR: &str = env!("CARGO_BIN_EXE_codex-mcp-sidecar");
const PINNED_CODEX_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/codex-cli/node_modules/.bin");

/// `app-server stop` signals the keeper and waits for the app-server's
/// whole process group (the npm launcher and the native binary) to go.
const STOP_TIMEOUT: Duration = Duration::from_secs(60);

/// The PATH of an app started from the macOS Dock or Finder: no shell
/// profile ran, so neither `~/.cargo/bin` nor Node's folder is on it.
const GUI_PATH: &str = "/usr/bin:/bin";

/// One server registration as Claude Code stores it.
#[derive(Debug)]
struct Registration {
    /// The README's command, for messages.
    source: String,
    command: String,
    args: Vec<String>,
    env: Vec<(String, String)>,
}

#[test]
fn the_readme_shows_registrations_and_every_form_is_read() {
    let registrations = readme_registrations(&base_path());
    assert!(
        !registrations.is_empty(),
        "no `claude mcp add` registration found in README.md"
    );
    let add = registration_from_argv(
        "test",
        &words(&[
            "mcp",
            "add",
            "--scope",
            "user",
            "-e",
            "CODEX_HOME=~/.codex",
            "codex",
            "--",
            "codex-mcp-sidecar",
            "--flag",
        ]),
    )
    .unwrap();
    assert_eq!(add.command, "codex-mcp-sidecar");
    assert_eq!(add.args, ["--flag"]);
    assert_eq!(add.env, [("CODEX_HOME".into(), "~/.codex".into())]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_readme_registration_gives_a_healthy_sidecar() {
    let registrations = readme_registrations(&base_path());
    assert!(!registrations.is_empty(), "no registration in README.md");
    for registration in &registrations {
        eprintln!("registration: {registration:?}");
        run_registration(registration).await;
    }
}

/// The sidecar and the pinned Codex first, as `cargo install` and `npm
/// install -g` would put them, then whatever the test runs with (Node).
fn base_path() -> String {
    let sidecar_dir = Path::new(SIDECAR).parent().unwrap();
    format!(
        "{}:{PINNED_CODEX_DIR}:{}",
        sidecar_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

async fn run_registration(registration: &Registration) {
    let model = ScriptedModel::start().await.unwrap();
    let home = tempfile::tempdir().unwrap();
    model.write_codex_home(&home.path().join(".codex")).unwrap();
    let project = tempfile::tempdir().unwrap();
    let url = format!("ws://127.0.0.1:{}", free_port());
    let pointer_dir = home.path().join(".codex/mcp-wrapper");
    // Kills whatever is left on our URL, even when an assertion fails.
    let _cleanup = Cleanup {
        url: url.clone(),
        pointer_dir: pointer_dir.clone(),
    };
    let source = &registration.source;
    for (name, _) in &registration.env {
        assert!(
            !name.starts_with("CODEX_MCP_WRAPPER_APP_SERVER_"),
            "{source}: sets {name}, which this test replaces to stay off port 45123"
        );
    }
    let env = registration_env(registration, home.path(), &url);
    let command = |args: &[String]| {
        let mut command = tokio::process::Command::new(&registration.command);
        command
            .args(args)
            .env_clear()
            .envs(env.iter().map(|(name, value)| (name, value)))
            .current_dir(project.path())
            .kill_on_drop(true);
        command
    };

    let stderr_path = home.path().join("sidecar.stderr");
    let stderr = std::fs::File::create(&stderr_path).unwrap();
    let (transport, _) = TokioChildProcess::builder(command(&registration.args))
        .stderr(Stdio::from(stderr))
        .spawn()
        .unwrap_or_else(|error| panic!("{source}: the server does not start: {error}"));
    let client: Client = ().serve(transport).await.unwrap();
    let log = || std::fs::read_to_string(&stderr_path).unwrap_or_default();

    let check = call(&client, "codex_wrapper_check", json!({})).await;
    let check = structured(&check);
    assert_eq!(check["ok"], true, "{source}: {check}\n{}", log());

    let prompt = Script::text("registered as the README says").marker();
    let handle = structured(&call(&client, "codex_run", json!({"prompt": prompt})).await);
    let run_id = handle["runId"].as_str().unwrap().to_string();
    let done = structured(
        &call(
            &client,
            "codex_wait",
            json!({"run_id": run_id, "soft_timeout_ms": 0}),
        )
        .await,
    );
    assert_eq!(done["status"], "completed", "{source}: {done}\n{}", log());
    assert_eq!(done["result"], "registered as the README says", "{source}");
    client.cancel().await.unwrap();

    let run_dir = project.path().join(".codex/codex-mcp/runs");
    assert!(
        run_dir.join(format!("{run_id}.jsonl")).is_file(),
        "{source}: no audit under the project"
    );
    assert!(
        pointer_dir.join("runs.index.jsonl").is_file(),
        "{source}: the pointer index is not in $HOME/.codex/mcp-wrapper"
    );
    assert!(
        !Path::new(env!("CARGO_MANIFEST_DIR")).join("~").exists(),
        "{source}: a `~` folder in the test's own directory"
    );
    for root in [project.path(), home.path()] {
        let unexpanded = entries_named_like_a_shell_word(root);
        assert!(
            unexpanded.is_empty(),
            "{source}: folders named after an unexpanded setting: {unexpanded:?}"
        );
    }

    let stop = tokio::time::timeout(
        STOP_TIMEOUT,
        command(&words(&["app-server", "stop"])).output(),
    )
    .await
    .expect("app-server stop finishes in time")
    .unwrap();
    assert!(
        stop.status.success(),
        "{source}: app-server stop: {}",
        String::from_utf8_lossy(&stop.stderr)
    );
    let left = processes_naming(&url);
    assert!(left.is_empty(), "{source}: processes left: {left:?}");
    model.shutdown().await;
}

/// Exactly the registration's env, over what Claude Code would pass on: a
/// PATH and the throwaway HOME. A registration with an absolute command
/// gets the PATH of a GUI app, which is what absolute paths are for.
fn registration_env(registration: &Registration, home: &Path, url: &str) -> Vec<(String, String)> {
    let path = if Path::new(&registration.command).is_absolute() {
        GUI_PATH.to_string()
    } else {
        base_path()
    };
    let mut env = vec![
        ("PATH".to_string(), path),
        ("HOME".to_string(), home.display().to_string()),
    ];
    for (name, value) in &registration.env {
        env.retain(|(existing, _)| existing != name);
        env.push((name.clone(), value.clone()));
    }
    // The README's shared default would be port 45123, which tests never use.
    env.push((
        "CODEX_MCP_WRAPPER_APP_SERVER_URL".to_string(),
        url.to_string(),
    ));
    env
}

/// Every `claude mcp add`/`add-json` command in README.md: in its fenced
/// blocks (with `\` continuations) and its inline code spans, each turned
/// into arguments by `sh` with `path` and a throwaway HOME.
fn readme_registrations(path: &str) -> Vec<Registration> {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let home = tempfile::tempdir().unwrap();
    readme_commands(&readme)
        .into_iter()
        .filter_map(|source| {
            let argv = shell_words(&source, path, home.path());
            registration_from_argv(&source, &argv)
        })
        .collect()
}

fn readme_commands(readme: &str) -> Vec<String> {
    let mut commands = Vec::new();
    let mut in_fence = false;
    let mut pending = String::new();
    for line in readme.lines() {
        if line.trim_start().starts_with("```") {
            in_fence = !in_fence;
            pending.clear();
            continue;
        }
        if in_fence {
            pending.push_str(line);
            if line.ends_with('\\') {
                pending.push('\n');
                continue;
            }
            commands.push(std::mem::take(&mut pending));
        }
    }
    // Inline spans may wrap across lines of prose.
    let prose: String = readme.split("```").step_by(2).collect::<Vec<_>>().join(" ");
    commands.extend(
        prose
            .split('`')
            .skip(1)
            .step_by(2)
            .map(|span| span.split_whitespace().collect::<Vec<_>>().join(" ")),
    );
    commands
        .into_iter()
        .filter(|command| {
            let words: Vec<&str> = command.split_whitespace().take(3).collect();
            words.len() == 3
                && words[0] == "claude"
                && words[1] == "mcp"
                && (words[2] == "add" || words[2] == "add-json")
        })
        .collect()
}

/// The arguments `claude` would receive when `command` is pasted into a
/// POSIX shell with this PATH and HOME.
fn shell_words(command: &str, path: &str, home: &Path) -> Vec<String> {
    let script = format!("claude() {{ printf '%s\\0' \"$@\"; }}\n{command}\n");
    let output = std::process::Command::new("sh")
        .arg("-c")
        .arg(&script)
        .env_clear()
        .env("PATH", path)
        .env("HOME", home)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "`{command}` fails in sh: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
        .stdout
        .split(|byte| *byte == 0)
        .map(|word| String::from_utf8_lossy(word).into_owned())
        .filter(|word| !word.is_empty())
        .collect()
}

/// `mcp add-json NAME JSON [--scope S]` or `mcp add [OPTIONS] NAME -- COMMAND
/// [ARGS]`; `None` for any other `claude` command.
fn registration_from_argv(source: &str, argv: &[String]) -> Option<Registration> {
    match argv.get(1).map(String::as_str) {
        Some("add-json") => {
            let json: Value = serde_json::from_str(argv.get(3)?)
                .unwrap_or_else(|error| panic!("`{source}`: its JSON does not parse: {error}"));
            assert!(
                json["type"].is_null() || json["type"] == "stdio",
                "`{source}`: not a stdio server"
            );
            let strings = |value: &Value| -> Vec<String> {
                value
                    .as_array()
                    .map(|items| {
                        items
                            .iter()
                            .map(|item| item.as_str().unwrap().to_string())
                            .collect()
                    })
                    .unwrap_or_default()
            };
            let env = json["env"]
                .as_object()
                .map(|env| {
                    env.iter()
                        .map(|(name, value)| (name.clone(), value.as_str().unwrap().to_string()))
                        .collect()
                })
                .unwrap_or_default();
            Some(Registration {
                source: source.to_string(),
                command: json["command"].as_str().unwrap().to_string(),
                args: strings(&json["args"]),
                env,
            })
        }
        Some("add") => {
            let mut env = Vec::new();
            let mut positional = Vec::new();
            let mut rest = argv[2..].iter();
            while let Some(word) = rest.next() {
                match word.as_str() {
                    "--" => {
                        positional.extend(rest.by_ref().cloned());
                        break;
                    }
                    "-e" | "--env" => {
                        let pair = rest.next()?;
                        let (name, value) = pair.split_once('=')?;
                        env.push((name.to_string(), value.to_string()));
                    }
                    "-s" | "--scope" | "-t" | "--transport" | "-H" | "--header" => {
                        rest.next();
                    }
                    flag if flag.starts_with("--env=") => {
                        let (name, value) = flag["--env=".len()..].split_once('=')?;
                        env.push((name.to_string(), value.to_string()));
                    }
                    flag if flag.starts_with('-') => {}
                    _ => positional.push(word.clone()),
                }
            }
            // NAME, then the command and its arguments.
            let mut positional = positional.into_iter().skip(1);
            Some(Registration {
                source: source.to_string(),
                command: positional.next()?,
                args: positional.collect(),
                env,
            })
        }
        _ => None,
    }
}

/// Entries under `root` named `~`, `~something` or `$SOMETHING`: what a path
/// setting taken literally would have created.
fn entries_named_like_a_shell_word(root: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.filter_map(Result::ok) {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('~') || name.starts_with('$') {
                found.push(entry.path());
            }
            if entry.file_type().is_ok_and(|kind| kind.is_dir()) {
                pending.push(entry.path());
            }
        }
    }
    found
}

fn words(words: &[&str]) -> Vec<String> {
    words.iter().map(|word| word.to_string()).collect()
}
