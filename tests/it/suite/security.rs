//! What the sidecar keeps to itself, checked on the built binary with the
//! real Codex: the shared server's token and the environment's secrets never
//! reach a reply, a log, the audit or a command line; the audit is private
//! and ignored by git; and a run never writes through a symbolic link
//! planted where the audit goes. (That the app-server refuses a connection
//! without the token, or with a wrong one, is
//! `appserver::wrong_or_missing_token_is_refused`.)

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use codex_mcp_sidecar::appserver::CapabilityToken;
use codex_mcp_sidecar::appserver::shared::SharedPaths;
use codex_mcp_sidecar_test_support::scripted_model::Script;
use serde_json::json;
use tempfile::TempDir;
use tokio::process::Command;

use crate::common::raw_mcp::RawMcp;
use codex_mcp_sidecar_test_support::world::{SidecarWorld, processes_naming};

const SIDECAR: &str = env!("CARGO_BIN_EXE_codex-mcp-sidecar");
const CODEX_RUNS: &str = env!("CARGO_BIN_EXE_codex-runs");

/// One test's world; `url` is a free port, never the default 45123.
struct World {
    base: SidecarWorld,
    logs: TempDir,
    /// Stands in for a real API key in the sidecar's environment.
    api_key: String,
}

impl std::ops::Deref for World {
    type Target = SidecarWorld;
    fn deref(&self) -> &SidecarWorld {
        &self.base
    }
}

impl World {
    async fn new() -> World {
        let random = CapabilityToken::generate().unwrap();
        World {
            base: SidecarWorld::new().await,
            logs: tempfile::tempdir().unwrap(),
            api_key: format!("sk-test-{}", &random.secret()[..40]),
        }
    }

    async fn shutdown(self) {
        self.base.shutdown().await;
    }

    /// `bin ARGS` in this world: shared mode on our URL, debug logs, and
    /// the secret in the environment.
    fn command(&self, bin: &str, args: &[&str], mode: &str) -> Command {
        let mut command = self.base.command(bin);
        command
            .args(args)
            .env("CODEX_MCP_WRAPPER_APP_SERVER_MODE", mode)
            .env("CODEX_MCP_WRAPPER_APP_SERVER_LOG", "debug")
            .env("CODEX_MCP_WRAPPER_WAIT_SOFT_TIMEOUT_MS", "0")
            .env("OPENAI_API_KEY", &self.api_key)
            .env("RUST_LOG", "debug")
            .env_remove("CODEX_MCP_WRAPPER_CODEX_HOME")
            .current_dir(self.project.path())
            .kill_on_drop(true);
        command
    }

    async fn mcp(&self, mode: &str, stderr_name: &str) -> RawMcp {
        let mut command = self.command(SIDECAR, &[], mode);
        command.stderr(std::fs::File::create(self.logs.path().join(stderr_name)).unwrap());
        RawMcp::spawn(command).await
    }
}

/// Output of a command that must succeed, stdout and stderr together.
async fn output_of(mut command: Command) -> String {
    let output = command.output().await.unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{text}");
    text
}

/// Every file under `dir`, recursively, except `skip`.
fn files_under(dir: &Path, skip: &[PathBuf]) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return files;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if skip.contains(&path) {
            continue;
        }
        match entry.file_type() {
            Ok(kind) if kind.is_dir() => files.extend(files_under(&path, skip)),
            Ok(_) => files.push(path),
            Err(_) => {}
        }
    }
    files
}

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .unwrap()
        .permissions()
        .mode()
        & 0o777
}

/// Every directory under `dir` (itself included) is 0700 and every file
/// 0600.
fn assert_private(dir: &Path) {
    assert_eq!(mode(dir), 0o700, "{}", dir.display());
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if entry.file_type().unwrap().is_dir() {
            assert_private(&path);
        } else {
            assert_eq!(mode(&path), 0o600, "{}", path.display());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_and_the_api_key_never_reach_replies_logs_audit_or_command_lines() {
    let world = World::new().await;
    let ensure = output_of(world.command(SIDECAR, &["app-server", "ensure"], "shared")).await;
    let paths = SharedPaths::new(&world.pointer_dir);
    let token = std::fs::read_to_string(paths.token()).unwrap();
    assert_eq!(token.trim().len(), 64, "a token was written");
    assert_eq!(mode(&paths.token()), 0o600);

    let mut mcp = world.mcp("shared", "sidecar.stderr.log").await;
    // A command that prints the environment: what Codex lets it see ends up
    // in the audit, so the key must not be among it.
    let printing = Script::exec(
        "printenv OPENAI_API_KEY; env | sort",
        "printed the environment",
    )
    .marker();
    let done = mcp
        .call_ok("codex_run", json!({"prompt": printing, "async": false}))
        .await;
    assert_eq!(done["status"], "completed", "{done}");
    let run_id = done["runId"].as_str().unwrap().to_string();
    mcp.call_ok("codex_wait", json!({"run_id": run_id})).await;
    mcp.call_ok("codex_runs", json!({})).await;
    mcp.call_ok("codex_active_runs", json!({})).await;
    mcp.call_ok("codex_wrapper_check", json!({})).await;
    mcp.call_ok("codex_chat", json!({"prompt": "hello"})).await;
    mcp.call("codex_wait", json!({"run_id": "../token"})).await;
    // While the server runs: no process names the token in its arguments
    // (the picker passes it in an environment variable, the keeper a file).
    let processes = processes_naming(&world.url);
    assert!(!processes.is_empty(), "the shared server runs");
    let transcript = mcp.transcript.join("");
    mcp.finish().await;

    let cli_wait = output_of(world.command(SIDECAR, &["wait", &run_id], "shared")).await;
    let listing = output_of(world.command(CODEX_RUNS, &["--json", "--all"], "shared")).await;
    let stop = output_of(world.command(SIDECAR, &["app-server", "stop"], "shared")).await;

    // The command did run and print its environment into the audit: the
    // check below is about real output, not an empty log.
    let audit = files_under(&world.run_dir(), &[]);
    let events: String = audit
        .iter()
        .filter(|path| path.extension().is_some_and(|ext| ext == "jsonl"))
        .map(|path| std::fs::read_to_string(path).unwrap())
        .collect();
    assert!(events.contains("CODEX_HOME="), "the env output is audited");

    let mut haystacks: Vec<(String, String)> = vec![
        ("app-server ensure".into(), ensure),
        ("app-server stop".into(), stop),
        ("tool replies".into(), transcript),
        ("cli wait".into(), cli_wait),
        ("codex-runs --json".into(), listing),
    ];
    for process in &processes {
        haystacks.push((format!("argv of {}", process.pid), process.args.join(" ")));
    }
    let logs_and_audit = files_under(world.logs.path(), &[])
        .into_iter()
        .chain(audit)
        .chain(files_under(&world.pointer_dir, &[paths.token()]));
    for path in logs_and_audit {
        let text = String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into_owned();
        haystacks.push((path.display().to_string(), text));
    }
    let sidecar_log = &haystacks
        .iter()
        .find(|(name, _)| name.ends_with("sidecar.stderr.log"))
        .unwrap()
        .1;
    assert!(sidecar_log.contains("DEBUG"), "debug logging was on");
    for (name, text) in &haystacks {
        assert!(!text.contains(token.trim()), "the token is in {name}");
        assert!(!text.contains(&world.api_key), "the API key is in {name}");
    }
    world.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_is_owner_only_and_ignored_by_git() {
    let world = World::new().await;
    let mut mcp = world.mcp("private", "sidecar.stderr.log").await;
    let done = mcp
        .call_ok("codex_run", json!({"prompt": "hello", "async": false}))
        .await;
    assert_eq!(done["status"], "completed", "{done}");
    mcp.finish().await;

    // From the project's .codex down, and the pointer dir.
    assert_private(&world.project.path().join(".codex"));
    assert_private(&world.pointer_dir);
    let run_dir = world.run_dir();
    assert_eq!(std::fs::read(run_dir.join(".gitignore")).unwrap(), b"*\n");
    let names: Vec<String> = std::fs::read_dir(&run_dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    for suffix in [".jsonl", ".stderr.log", ".md"] {
        assert!(
            names.iter().any(|name| name.ends_with(suffix)),
            "{suffix}: {names:?}"
        );
    }

    // git agrees: nothing of the audit shows as untracked.
    let git = |args: &[&str]| {
        let output = std::process::Command::new("git")
            .args(args)
            .current_dir(world.project.path())
            .output()
            .unwrap();
        assert!(output.status.success(), "git {args:?}: {output:?}");
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    git(&["init", "-q"]);
    std::fs::write(world.project.path().join("tracked.txt"), "x").unwrap();
    let status = git(&["status", "--porcelain", "--untracked-files=all"]);
    assert_eq!(status.trim(), "?? tracked.txt", "{status}");
    world.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_never_writes_through_a_link_planted_in_its_directory() {
    use std::os::unix::fs::symlink;
    let world = World::new().await;
    let outside = tempfile::tempdir().unwrap();
    let precious = outside.path().join("bashrc");
    std::fs::write(&precious, "precious\n").unwrap();
    let run_dir = world.run_dir();
    let mut mcp = world.mcp("private", "sidecar.stderr.log").await;

    // Where the store writes, and what a link there points at.
    let plants: [(PathBuf, &Path); 4] = [
        (run_dir.clone(), outside.path()),
        (run_dir.join("index.jsonl"), &precious),
        (run_dir.join(".gitignore"), &precious),
        (run_dir.join("active"), outside.path()),
    ];
    for (link, target) in &plants {
        let _ = std::fs::remove_dir_all(world.project.path().join(".codex"));
        std::fs::create_dir_all(link.parent().unwrap()).unwrap();
        symlink(target, link).unwrap();
        let refused = mcp
            .call("codex_run", json!({"prompt": "hello", "async": false}))
            .await;
        let text = refused["result"]["content"][0]["text"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert_eq!(refused["result"]["isError"], true, "{refused}");
        assert!(
            text.contains(&link.display().to_string()) && text.contains("symbolic link"),
            "{}: {text}",
            link.display()
        );
        assert_eq!(std::fs::read_to_string(&precious).unwrap(), "precious\n");
        let outside_names: Vec<_> = std::fs::read_dir(outside.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert_eq!(outside_names, ["bashrc"], "{}", link.display());
        mcp.assert_alive(&link.display().to_string()).await;
    }

    // Without the link, runs go on as before.
    std::fs::remove_dir_all(world.project.path().join(".codex")).unwrap();
    let done = mcp
        .call_ok("codex_run", json!({"prompt": "hello", "async": false}))
        .await;
    assert_eq!(done["status"], "completed", "{done}");
    mcp.finish().await;
    world.shutdown().await;
}

/// What the store's link checks back up: under `workspace-write`, Codex's
/// sandbox lets a turn write in the project but keeps `.codex` (and so the
/// audit) read-only, so the turn can neither forge audit lines nor plant a
/// link there. This is Codex's guarantee, not ours; the test says so if an
/// upgrade drops it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workspace_write_turn_cannot_touch_the_audit() {
    let world = World::new().await;
    let mut mcp = world.mcp("private", "sidecar.stderr.log").await;
    let runs = ".codex/codex-mcp/runs";
    let script = Script::exec(
        format!(
            "echo ok > inside.txt; echo forged > {runs}/forged.jsonl; \
             ln -s /etc/passwd {runs}/planted; echo x >> {runs}/index.jsonl"
        ),
        "done",
    )
    .marker();
    let done = mcp
        .call_ok(
            "codex_run",
            json!({"prompt": script, "async": false, "permissions": "workspace-write"}),
        )
        .await;
    assert_eq!(done["status"], "completed", "{done}");
    mcp.finish().await;
    assert!(
        world.project.path().join("inside.txt").exists(),
        "the sandbox let the turn write in the project"
    );
    let run_dir = world.run_dir();
    assert!(
        !run_dir.join("forged.jsonl").exists(),
        "a forged audit file"
    );
    assert!(
        std::fs::symlink_metadata(run_dir.join("planted")).is_err(),
        "a planted link"
    );
    let index = std::fs::read_to_string(run_dir.join("index.jsonl")).unwrap();
    assert!(index.lines().all(|line| line.starts_with('{')), "{index}");
    world.shutdown().await;
}
