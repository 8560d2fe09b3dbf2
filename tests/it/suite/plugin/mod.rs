//! The repository as a Claude Code plugin marketplace (issue 13, items 1 to
//! 3): the real Claude Code validates it, adds it as a marketplace, installs
//! the `codex-sidecar` plugin from it, reports its always-on token cost, and
//! connects to the plugin's server when `cargo install` put the sidecar on
//! `PATH`. Each Claude Code runs offline in a throwaway `HOME` and config.

mod user;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use codex_mcp_sidecar_test_support::scripted_model::ScriptedModel;
use serde_json::Value;

use crate::common::claude::{
    CHECKOUT, ClaudeUser, MARKETPLACE, PLUGIN_COMMAND_TIMEOUT, PLUGIN_ID, PLUGIN_SERVER_LOG, text,
};
use crate::common::codex_bin;
use codex_mcp_sidecar_test_support::world::{Cleanup, free_port, processes_naming};
use user::line_of;

const PLUGIN_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/plugins/codex-sidecar");
const PLUGIN: &str = "codex-sidecar";

/// The ceiling on what the plugin adds to every session.
const ALWAYS_ON_BUDGET_TOKENS: u32 = 150;

/// `claude mcp list` checks servers in parallel, each bounded by
/// [`crate::common::claude::CLAUDE_CONNECT_TIMEOUT`]; the margin covers its own start-up.
const LIST_TIMEOUT: Duration = Duration::from_secs(90);

/// `cargo install --debug` reusing this test build's dependencies compiles
/// the crate and its three binaries once per build directory (about a
/// minute on a loaded 2-core machine), then only links (under a second).
/// A build directory with nothing in it compiles every dependency: allow
/// that too, on a slow machine.
const CARGO_INSTALL_TIMEOUT: Duration = Duration::from_secs(20 * 60);

/// `app-server stop` signals the keeper and waits for the app-server's
/// process group to go.
const STOP_TIMEOUT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_marketplace_and_the_plugin_validate_without_a_warning() {
    let user = ClaudeUser::new();
    for target in [CHECKOUT, PLUGIN_DIR] {
        let output = user
            .claude(&["plugin", "validate", target], PLUGIN_COMMAND_TIMEOUT)
            .await;
        let (stdout, stderr) = text(&output);
        let shown = format!("claude plugin validate {target}:\n{stdout}\n{stderr}");
        assert!(output.status.success(), "{shown}");
        assert!(stdout.contains("✔ Validation passed"), "{shown}");
        // Errors, warnings and the plugin directory's findings are all
        // printed with one of these; advice and notes are not.
        for sign in ["⚠", "✘"] {
            assert!(!stdout.contains(sign), "{shown}");
        }
        assert!(!stdout.to_lowercase().contains("warning"), "{shown}");

        // The same verdict, field by field, from the machine-readable form.
        let output = user
            .claude(
                &["plugin", "validate", "--json", target],
                PLUGIN_COMMAND_TIMEOUT,
            )
            .await;
        let (stdout, stderr) = text(&output);
        assert!(output.status.success(), "{stdout}\n{stderr}");
        let report: Value = serde_json::from_str(&stdout).unwrap();
        assert_eq!(report["success"], true, "{report:#}");
        let mut checked = vec![&report["manifest"]];
        checked.extend(report["contents"].as_array().unwrap());
        for part in checked {
            for list in ["errors", "warnings"] {
                assert_eq!(part[list], Value::Array(vec![]), "{list}: {report:#}");
            }
        }
        let findings = &report["directory"]["findings"];
        assert!(
            findings.is_null() || findings == &Value::Array(vec![]),
            "the plugin directory's findings: {report:#}"
        );
        // The plugin's own README shows how to install it. The root's
        // advice depends on the repository's README, which is not checked
        // here.
        if target == PLUGIN_DIR {
            assert_eq!(report["advice"], Value::Array(vec![]), "{report:#}");
            assert_provides_the_fixed_names(&report);
        }
    }
}

/// The plugin's server, skill and commands, under the names fixed for
/// issue 13 (its tools are then `mcp__plugin_codex-sidecar_codex__*`).
fn assert_provides_the_fixed_names(report: &Value) {
    let provides = &report["provides"];
    assert_eq!(
        provides["mcpServers"],
        serde_json::json!([{
            "name": "codex",
            "type": "stdio",
            "target": "codex-mcp-sidecar",
            "args": [],
        }]),
        "{report:#}"
    );
    assert_eq!(
        provides["skills"],
        serde_json::json!(["codex-sidecar:codex"]),
        "{report:#}"
    );
    assert_eq!(
        provides["commands"],
        serde_json::json!([
            "codex-sidecar:review",
            "codex-sidecar:runs",
            "codex-sidecar:setup"
        ]),
        "{report:#}"
    );
}

/// The server is found on `PATH` on any machine: no path of this one, and
/// no environment (the sidecar's defaults, `~/.codex`, are the user's).
#[test]
fn the_plugin_registers_the_sidecar_from_path_with_no_settings() {
    let text = std::fs::read_to_string(Path::new(PLUGIN_DIR).join(".mcp.json")).unwrap();
    let config: Value = serde_json::from_str(&text).unwrap();
    let servers = config["mcpServers"].as_object().unwrap();
    assert_eq!(servers.keys().collect::<Vec<_>>(), ["codex"], "{config:#}");
    assert_eq!(
        servers["codex"],
        serde_json::json!({"type": "stdio", "command": "codex-mcp-sidecar"}),
        "{config:#}"
    );
    let marketplace: Value = serde_json::from_str(
        &std::fs::read_to_string(Path::new(CHECKOUT).join(".claude-plugin/marketplace.json"))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(marketplace["name"], MARKETPLACE);
    assert_eq!(marketplace["plugins"][0]["name"], PLUGIN);
    assert_eq!(
        marketplace["plugins"][0]["source"],
        "./plugins/codex-sidecar"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_plugin_installs_from_the_checkout_and_costs_little_in_every_session() {
    let user = ClaudeUser::new();
    user.install_plugin().await;

    let output = user
        .claude(&["plugin", "details", PLUGIN_ID], PLUGIN_COMMAND_TIMEOUT)
        .await;
    let (details, stderr) = text(&output);
    assert!(output.status.success(), "{details}\n{stderr}");
    let inventory = |kind: &str| {
        details
            .lines()
            .map(str::trim)
            .find(|line| line.starts_with(kind))
            .unwrap_or_else(|| panic!("no `{kind}` line in:\n{details}"))
            .split_whitespace()
            .collect::<Vec<_>>()
    };
    // The skill and the three slash commands, all loaded as skills.
    assert_eq!(
        inventory("Skills"),
        ["Skills", "(4)", "codex,", "review,", "runs,", "setup"],
        "{details}"
    );
    assert_eq!(
        inventory("MCP servers")[..4],
        ["MCP", "servers", "(1)", "codex"],
        "{details}"
    );
    let always_on = always_on_tokens(&details);
    eprintln!("{PLUGIN_ID}: always-on cost ~{always_on} tokens");
    assert!(
        always_on <= ALWAYS_ON_BUDGET_TOKENS,
        "the plugin adds ~{always_on} tokens to every session, over the budget of \
         {ALWAYS_ON_BUDGET_TOKENS}:\n{details}"
    );
}

/// Claude Code's one-step form, which the validator suggests for a README:
/// `claude plugin install codex-sidecar --marketplace <checkout>` adds the
/// marketplace first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_one_step_install_adds_the_marketplace_and_enables_the_plugin() {
    let user = ClaudeUser::new();
    let output = user
        .claude(
            &["plugin", "install", PLUGIN, "--marketplace", CHECKOUT],
            PLUGIN_COMMAND_TIMEOUT,
        )
        .await;
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains(&format!("Successfully installed plugin: {PLUGIN_ID}")),
        "{stdout}\n{stderr}"
    );
    let output = user
        .claude(&["plugin", "list"], PLUGIN_COMMAND_TIMEOUT)
        .await;
    let (list, stderr) = text(&output);
    assert!(output.status.success(), "{list}\n{stderr}");
    let entry: Vec<&str> = list
        .lines()
        .map(str::trim)
        .skip_while(|line| *line != format!("❯ {PLUGIN_ID}"))
        .take_while(|line| !line.is_empty())
        .collect();
    assert!(
        entry.contains(&"Status: ✔ enabled"),
        "no enabled {PLUGIN_ID} in:\n{list}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claude_code_connects_to_the_plugins_server_installed_by_cargo() {
    let root = tempfile::tempdir().unwrap();
    cargo_install(root.path()).await;
    let bin = root.path().join("bin");
    for binary in ["codex-mcp-sidecar", "codex-mcp-wrapper", "codex-runs"] {
        assert!(
            bin.join(binary).is_file(),
            "`cargo install` put no {binary} in {}",
            bin.display()
        );
    }

    let model = ScriptedModel::start().await.unwrap();
    let mut user = ClaudeUser::new();
    // The sidecar's defaults: the Codex home is `~/.codex`, and the shared
    // app-server, here on a free port instead of 45123.
    model
        .write_codex_home(&user.home.path().join(".codex"))
        .unwrap();
    let url = format!("ws://127.0.0.1:{}", free_port());
    let _cleanup = Cleanup {
        url: url.clone(),
        pointer_dir: user.home.path().join(".codex/mcp-wrapper"),
    };
    // The installed sidecar first, then Codex as `npm install -g` puts it,
    // then what the test runs with (Node), less any folder with another
    // sidecar in it (a developer's `~/.cargo/bin`, say).
    let codex_dir = codex_bin().parent().unwrap().to_path_buf();
    let inherited = std::env::var_os("PATH").unwrap_or_default();
    let path = std::env::join_paths([bin.clone(), codex_dir].into_iter().chain(
        std::env::split_paths(&inherited).filter(|dir| !dir.join("codex-mcp-sidecar").exists()),
    ))
    .unwrap();
    let sidecars: Vec<PathBuf> = std::env::split_paths(&path)
        .map(|dir| dir.join("codex-mcp-sidecar"))
        .filter(|candidate| candidate.exists())
        .collect();
    assert_eq!(sidecars, [bin.join("codex-mcp-sidecar")]);
    let path = path.to_string_lossy().into_owned();
    user.env = vec![
        ("PATH".into(), path.clone()),
        ("CODEX_MCP_WRAPPER_APP_SERVER_URL".into(), url.clone()),
    ];
    // Codex is found on PATH, like a user's, and the sidecar runs on its
    // defaults: the Makefile's CODEX_BIN and any sidecar setting in the
    // test's environment stay out.
    user.removed = std::env::vars()
        .map(|(name, _)| name)
        .filter(|name| {
            name == "CODEX_BIN" || name == "CODEX_HOME" || name.starts_with("CODEX_MCP_WRAPPER_")
        })
        .collect();
    user.install_plugin().await;

    let output = user.claude(&["mcp", "list"], LIST_TIMEOUT).await;
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert_eq!(
        line_of(&stdout, "plugin:codex-sidecar:codex"),
        "plugin:codex-sidecar:codex: codex-mcp-sidecar  - ✔ Connected",
        "{stdout}\n{stderr}\nClaude Code's log of the server:\n{}",
        user.mcp_log(PLUGIN_SERVER_LOG)
    );

    // The shared app-server the sidecar may have started on our port.
    let mut stop = tokio::process::Command::new(bin.join("codex-mcp-sidecar"));
    stop.args(["app-server", "stop"])
        .env("HOME", user.home.path())
        .kill_on_drop(true);
    for name in &user.removed {
        stop.env_remove(name);
    }
    let stop = stop
        .envs(user.env.iter().map(|(name, value)| (name, value)))
        .output();
    let stop = tokio::time::timeout(STOP_TIMEOUT, stop)
        .await
        .expect("app-server stop finishes in time")
        .unwrap();
    assert!(
        stop.status.success(),
        "app-server stop: {}",
        String::from_utf8_lossy(&stop.stderr)
    );
    let left = processes_naming(&url);
    assert!(left.is_empty(), "processes left: {left:?}");
    model.shutdown().await;
}

/// `cargo install --locked --path <checkout> --root <root>`, the README's
/// command, plus what keeps it cheap and offline in a test: `--debug` and
/// this test build's directory as the build directory, so the dependencies
/// already compiled for the tests are reused; a private target directory,
/// so the binaries the other tests run (`target/debug/`) are not relinked
/// under them; and `--offline`, since every dependency is already there.
async fn cargo_install(root: &Path) {
    let target = tempfile::tempdir().unwrap();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = tokio::process::Command::new(cargo);
    command
        .args(["install", "--locked", "--path", CHECKOUT, "--root"])
        .arg(root)
        .args(["--debug", "--offline", "--target-dir"])
        .arg(target.path())
        .env("CARGO_BUILD_BUILD_DIR", build_dir())
        .kill_on_drop(true);
    let started = Instant::now();
    let output = tokio::time::timeout(CARGO_INSTALL_TIMEOUT, command.output())
        .await
        .expect("cargo install finishes in time")
        .unwrap();
    eprintln!("cargo install took {:?}", started.elapsed());
    let (stdout, stderr) = text(&output);
    assert!(
        output.status.success(),
        "cargo install:\n{stdout}\n{stderr}"
    );
}

/// Where this test binary was built (`<dir>/debug/deps/it-…`): the
/// dependencies `cargo install --debug` can reuse.
fn build_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.ancestors()
        .nth(3)
        .unwrap_or_else(|| panic!("{} is not in <dir>/debug/deps", exe.display()))
        .to_path_buf()
}

/// The figure in `Always-on:   ~96 tok   added to every session`; `< 20`
/// counts as 20, `~1.2k` as 1200.
fn always_on_tokens(details: &str) -> u32 {
    let line = details
        .lines()
        .map(str::trim)
        .find(|line| line.starts_with("Always-on:"))
        .unwrap_or_else(|| panic!("no `Always-on:` line in:\n{details}"));
    let figure = line["Always-on:".len()..]
        .trim()
        .split(" tok")
        .next()
        .unwrap()
        .trim_start_matches(['~', '<', ' ']);
    match figure.strip_suffix('k') {
        Some(thousands) => (thousands.parse::<f64>().unwrap() * 1000.0) as u32,
        None => figure
            .parse()
            .unwrap_or_else(|_| panic!("`{line}`: no token figure")),
    }
}

#[test]
fn the_always_on_figure_is_read_in_each_form() {
    for (line, tokens) in [
        ("  Always-on:   ~96 tok   added to every session", 96),
        ("  Always-on:   < 20 tok   added to every session", 20),
        ("  Always-on:   ~1.2k tok   added to every session", 1200),
    ] {
        assert_eq!(always_on_tokens(line), tokens, "{line}");
    }
}
