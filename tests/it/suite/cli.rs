//! The built binaries as a user runs them: finding Codex.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Output;
use std::time::Duration;

use crate::common::codex_bin;

const SIDECAR: &str = env!("CARGO_BIN_EXE_codex-mcp-sidecar");
const WRAPPER: &str = env!("CARGO_BIN_EXE_codex-mcp-wrapper");

/// `check` runs `codex --version`: a second; this only trips when stuck.
const RUN_TIMEOUT: Duration = Duration::from_secs(120);

/// Runs a binary with a controlled environment: `CODEX_BIN` as given (unset
/// when `None`), a throwaway `CODEX_HOME`, and a `PATH` of `path` (if any)
/// plus a folder that holds only `node`, which the npm launcher needs. So no
/// `codex` installed on this machine can stand in for the one under test.
async fn run(bin: &str, args: &[&str], codex_bin: Option<&Path>, path: Option<&Path>) -> Output {
    let home = tempfile::tempdir().unwrap();
    let node_only = tempfile::tempdir().unwrap();
    let node = which::which("node").expect("node is installed");
    std::os::unix::fs::symlink(node, node_only.path().join("node")).unwrap();
    let path_value = match path {
        Some(path) => format!("{}:{}", path.display(), node_only.path().display()),
        None => node_only.path().display().to_string(),
    };
    let mut command = tokio::process::Command::new(bin);
    command
        .args(args)
        .env("CODEX_HOME", home.path())
        .env("PATH", path_value)
        .env_remove("CODEX_BIN")
        .kill_on_drop(true);
    if let Some(codex_bin) = codex_bin {
        command.env("CODEX_BIN", codex_bin);
    }
    tokio::time::timeout(RUN_TIMEOUT, command.output())
        .await
        .expect("the binary finished in time")
        .unwrap()
}

fn text(output: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_finds_codex_through_codex_bin_then_path_then_the_project_install() {
    let real = codex_bin();
    let (stdout, _) = text(&run(SIDECAR, &["check"], Some(&real), None).await);
    let version = crate::common::codex_version();
    assert!(stdout.contains(&format!("codex-cli {version}")), "{stdout}");
    assert!(
        stdout.contains(&format!("Codex CLI {version} is inside the verified range")),
        "{stdout}"
    );
    assert!(stdout.contains("found via CODEX_BIN"), "{stdout}");

    // No CODEX_BIN: a `codex` on PATH wins.
    let bin_dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(&real, bin_dir.path().join("codex")).unwrap();
    let (stdout, _) = text(&run(SIDECAR, &["check"], None, Some(bin_dir.path())).await);
    assert!(stdout.contains("found via PATH"), "{stdout}");

    // Neither: the checkout's pinned install.
    let (stdout, stderr) = text(&run(WRAPPER, &["check"], None, None).await);
    assert!(
        stdout.contains("found via project install") && stdout.contains("codex-cli/node_modules"),
        "{stdout}{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_explains_a_missing_binary() {
    let output = run(
        SIDECAR,
        &["check"],
        Some(Path::new("/nonexistent/codex")),
        None,
    )
    .await;
    let (_, stderr) = text(&output);
    assert!(!output.status.success());
    assert!(
        stderr.contains("CODEX_BIN is set to /nonexistent/codex, which does not exist"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_refuses_a_codex_older_than_the_supported_minimum() {
    // A stand-in for an old release: the real binary cannot be made to report
    // another version.
    let dir = tempfile::tempdir().unwrap();
    let old = dir.path().join("codex");
    std::fs::write(&old, "#!/bin/sh\necho 'codex-cli 0.100.0'\n").unwrap();
    std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o755)).unwrap();
    let output = run(SIDECAR, &["check"], Some(&old), None).await;
    let (_, stderr) = text(&output);
    assert!(!output.status.success());
    assert!(
        stderr.contains("0.100.0")
            && stderr.contains("older than 0.169.0")
            && stderr.contains("upgrade"),
        "{stderr}"
    );

    // Something that is not Codex at all.
    std::fs::write(&old, "#!/bin/sh\necho 'hello'\n").unwrap();
    let (_, stderr) = text(&run(SIDECAR, &["check"], Some(&old), None).await);
    assert!(stderr.contains("not `codex-cli X.Y.Z`"), "{stderr}");
}
