//! A path setting that is still relative after `~` and `$HOME` are expanded
//! is refused by every entry point, by name, before anything touches the
//! disk (issue 12): the MCP server, the CLI's `run` and `check`, and
//! `codex-runs` exit with the error on stderr and create no folder, neither
//! in the directory they were started in nor in HOME.

use std::process::Stdio;
use std::time::Duration;

use rmcp::transport::TokioChildProcess;
use rmcp::{RoleClient, ServiceExt};
use serde_json::json;

use crate::common::codex_bin;
use crate::common::tools::call;
use codex_mcp_sidecar_test_support::world::{Cleanup, free_port};

const SIDECAR: &str = env!("CARGO_BIN_EXE_codex-mcp-sidecar");
const RUNS: &str = env!("CARGO_BIN_EXE_codex-runs");

/// A refused setting stops the process before it starts Codex or anything
/// else; even on a loaded machine that is well under this.
const EXIT_TIMEOUT: Duration = Duration::from_secs(30);

/// Each entry point, as the arguments it is started with.
const ENTRY_POINTS: &[(&str, &[&str])] = &[
    ("the MCP server", &[]),
    ("run", &["run", "--no-wait", "hello"]),
    ("check", &["check"]),
    ("app-server ensure", &["app-server", "ensure"]),
    ("codex-runs --json", &["--json"]),
    ("codex-runs", &[]),
];

/// A setting, a value that must be refused, and what the error must show.
const REFUSED: &[(&str, &str, &str)] = &[
    ("CODEX_HOME", "codex-home", "absolute"),
    ("CODEX_MCP_WRAPPER_CODEX_HOME", "./codex-home", "absolute"),
    ("CODEX_MCP_WRAPPER_RUN_DIR", "audit/runs", "absolute"),
    ("CODEX_MCP_WRAPPER_POINTER_DIR", "~bob/pointer", "~USER"),
    (
        "CODEX_MCP_WRAPPER_APP_SERVER_URL",
        "unix://sock/s",
        "absolute",
    ),
];

struct Dirs {
    cwd: tempfile::TempDir,
    home: tempfile::TempDir,
    codex_home: tempfile::TempDir,
    pointer_dir: tempfile::TempDir,
    url: String,
}

impl Dirs {
    fn new() -> Dirs {
        Dirs {
            cwd: tempfile::tempdir().unwrap(),
            home: tempfile::tempdir().unwrap(),
            codex_home: tempfile::tempdir().unwrap(),
            pointer_dir: tempfile::tempdir().unwrap(),
            url: format!("ws://127.0.0.1:{}", free_port()),
        }
    }

    /// `program args` with valid settings, then `overrides` on top.
    fn command(
        &self,
        program: &str,
        args: &[&str],
        overrides: &[(&str, &str)],
    ) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(program);
        command
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", self.home.path())
            .env("CODEX_BIN", codex_bin())
            .env("CODEX_HOME", self.codex_home.path())
            .env("CODEX_MCP_WRAPPER_POINTER_DIR", self.pointer_dir.path())
            .env("CODEX_MCP_WRAPPER_APP_SERVER_URL", &self.url)
            .current_dir(self.cwd.path())
            .stdin(Stdio::null())
            .kill_on_drop(true);
        for (name, value) in overrides {
            if value.is_empty() {
                command.env_remove(name);
            } else {
                command.env(name, value);
            }
        }
        command
    }

    /// Nothing was created in the start directory or HOME, nor in the valid
    /// Codex home and pointer dir.
    fn assert_untouched(&self, what: &str) {
        let created = self.created();
        assert!(created.is_empty(), "{what} created {created:?}");
    }

    fn created(&self) -> Vec<std::path::PathBuf> {
        [
            self.cwd.path(),
            self.home.path(),
            self.codex_home.path(),
            self.pointer_dir.path(),
        ]
        .iter()
        .flat_map(|dir| std::fs::read_dir(dir).unwrap())
        .map(|entry| entry.unwrap().path())
        .collect()
    }
}

async fn refused_exit(what: &str, mut command: tokio::process::Command) -> String {
    let output = tokio::time::timeout(EXIT_TIMEOUT, command.output())
        .await
        .unwrap_or_else(|_| panic!("{what} did not exit on a refused setting"))
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(!output.status.success(), "{what} succeeded: {stderr}");
    assert!(output.stdout.is_empty(), "{what} wrote to stdout");
    stderr
}

/// The binary behind an entry point of [`ENTRY_POINTS`].
fn program(entry: &str) -> &'static str {
    if entry.starts_with("codex-runs") {
        RUNS
    } else {
        SIDECAR
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relative_path_setting_is_refused_by_name_and_creates_nothing() {
    let mut failures = Vec::new();
    for (entry, args) in ENTRY_POINTS {
        for (setting, value, says) in REFUSED {
            let dirs = Dirs::new();
            // Whatever a wrongly started shared app-server would leave.
            let _cleanup = Cleanup {
                url: dirs.url.clone(),
                pointer_dir: dirs.pointer_dir.path().to_path_buf(),
            };
            let what = format!("{entry} with {setting}={value}");
            let mut command = dirs.command(program(entry), args, &[(setting, value)]);
            let output = tokio::time::timeout(EXIT_TIMEOUT, command.output())
                .await
                .unwrap_or_else(|_| panic!("{what} did not exit on a refused setting"))
                .unwrap();
            let stderr = String::from_utf8_lossy(&output.stderr);
            // Every case is tried and every failure listed, so that a
            // regression shows all it breaks at once.
            if output.status.success() || !output.stdout.is_empty() {
                failures.push(format!("{what}: exited {}: {stderr}", output.status));
            }
            let named = stderr.contains(setting) && stderr.contains(&format!("{value:?}"));
            if !(named && stderr.contains(says)) {
                failures.push(format!("{what}: stderr does not say why: {stderr}"));
            }
            let created = dirs.created();
            if !created.is_empty() {
                failures.push(format!("{what}: created {created:?}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leading_tilde_without_home_is_refused_by_name() {
    for (entry, args) in ENTRY_POINTS {
        let dirs = Dirs::new();
        let what = format!("{entry} with CODEX_HOME=~/.codex and no HOME");
        let binary = program(entry);
        let command = dirs.command(binary, args, &[("CODEX_HOME", "~/.codex"), ("HOME", "")]);
        let stderr = refused_exit(&what, command).await;
        assert!(
            stderr.contains("CODEX_HOME") && stderr.contains("HOME is not set"),
            "{what}: {stderr}"
        );
        dirs.assert_untouched(&what);
    }
}

/// A refused CODEX_BIN is reported like a missing Codex: the CLI and the
/// picker stop, and the MCP server still serves so that
/// `codex_wrapper_check` can say why, while `codex_run` fails with the same
/// words and writes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relative_codex_bin_is_refused_by_name_and_creates_nothing() {
    let value = "node_modules/.bin/codex";
    for (entry, args) in ENTRY_POINTS
        .iter()
        .filter(|(entry, _)| *entry != "the MCP server")
    {
        if *entry == "codex-runs --json" {
            continue; // The listing never runs Codex.
        }
        let dirs = Dirs::new();
        let what = format!("{entry} with CODEX_BIN={value}");
        let binary = program(entry);
        let stderr = refused_exit(&what, dirs.command(binary, args, &[("CODEX_BIN", value)])).await;
        assert!(
            stderr.contains("CODEX_BIN") && stderr.contains(value),
            "{what}: {stderr}"
        );
        dirs.assert_untouched(&what);
    }

    let dirs = Dirs::new();
    let mut command = dirs.command(SIDECAR, &[], &[("CODEX_BIN", value)]);
    command.env("CODEX_MCP_WRAPPER_APP_SERVER_MODE", "private");
    let (transport, _) = TokioChildProcess::builder(command)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let client: rmcp::service::RunningService<RoleClient, ()> = ().serve(transport).await.unwrap();
    let check = call(&client, "codex_wrapper_check", json!({})).await;
    let check = check.structured_content.unwrap();
    assert_eq!(check["ok"], false, "{check}");
    let problems = check["problems"].to_string();
    assert!(
        problems.contains("CODEX_BIN") && problems.contains(value) && problems.contains("absolute"),
        "{problems}"
    );
    let run = call(&client, "codex_run", json!({"prompt": "hi"})).await;
    assert_eq!(run.is_error, Some(true), "{run:?}");
    assert!(format!("{run:?}").contains("CODEX_BIN"), "{run:?}");
    client.cancel().await.unwrap();
    dirs.assert_untouched("the MCP server with a relative CODEX_BIN");
}
