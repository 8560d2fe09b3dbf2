//! An interactive Claude Code in a terminal, offline: the throwaway user's
//! config preseeded so nothing asks for onboarding, trust or the internet,
//! the scripted Anthropic API as its model, MCP servers of the test's, and a
//! tmux pane to type into and read. Stopping it ends the whole process group
//! of the pane (Claude Code and the servers it started) and checks that
//! nothing of it is left.

use std::path::Path;
use std::time::{Duration, Instant};

use codex_mcp_sidecar_test_support::scripted_anthropic::ScriptedAnthropic;
use codex_mcp_sidecar_test_support::world::processes_in_group;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use serde_json::{Value, json};

use super::claude::ClaudeUser;
use super::tmux::Tmux;

pub use super::claude::FAKE_API_KEY;
/// Claude Code asks once whether to use a key from the environment, unless
/// the config lists its last this many characters as approved.
const APPROVED_KEY_CHARS: usize = 20;

/// Wide enough that a command line in the dialog is not wrapped, tall enough
/// for the dialog under the conversation.
const WIDTH: u16 = 160;
const HEIGHT: u16 = 50;

/// How often a wait looks at the screen or the logs again.
const POLL: Duration = Duration::from_millis(200);

/// What Claude Code's MCP form dialog says at its top ("MCP server “NAME”
/// requests your input").
pub const DIALOG_TITLE: &str = "requests your input";

/// Each step inside an open form (a key, a redraw): only a stuck Claude Code
/// takes this long.
const FORM_TIMEOUT: Duration = Duration::from_secs(30);

/// How long one Enter on Accept gets to close the dialog (a redraw), and how
/// many are tried.
const SUBMIT_WAIT: Duration = Duration::from_secs(2);
const SUBMIT_TRIES: usize = 3;

/// How long Claude Code gets to leave after SIGTERM (it closes its MCP
/// servers' stdin and waits for them) before the group is killed.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// Writes the user's `.claude.json` (in `HOME` and in `CLAUDE_CONFIG_DIR`,
/// both read depending on the version): onboarding done, a theme chosen, the
/// fake key approved, the project trusted, and `servers` (`mcpServers`, user
/// scope). Without these an offline interactive Claude Code stops at a first
/// screen that wants the internet.
pub fn preseed(user: &ClaudeUser, servers: Value) {
    let key_tail = &FAKE_API_KEY[FAKE_API_KEY.len() - APPROVED_KEY_CHARS..];
    let project = user.project.path().display().to_string();
    let config = json!({
        "hasCompletedOnboarding": true,
        "theme": "dark",
        "customApiKeyResponses": { "approved": [key_tail], "rejected": [] },
        "projects": { project: { "hasTrustDialogAccepted": true, "allowedTools": [] } },
        "mcpServers": servers,
    });
    for dir in [user.home.path(), user.config.path()] {
        std::fs::write(dir.join(".claude.json"), config.to_string()).unwrap();
    }
}

/// Claude Code running in a tmux pane.
pub struct InteractiveClaude {
    tmux: Tmux,
    /// The process group of the pane: its shell, Claude Code, and every MCP
    /// server Claude Code started (none of them starts a group of its own;
    /// the sidecar's shared app-server does, and the test stops it itself).
    group: i32,
}

impl InteractiveClaude {
    /// `claude ARGS` as `user` (with [`ClaudeUser::command`]'s hygiene), on
    /// the scripted `api`, with MCP tools listed directly instead of behind
    /// the tool-search tool.
    pub fn start(user: &ClaudeUser, api: &ScriptedAnthropic, args: &[&str]) -> InteractiveClaude {
        let mut command = user.command(args);
        command
            .env("ANTHROPIC_BASE_URL", api.base_url())
            .env("ANTHROPIC_API_KEY", FAKE_API_KEY)
            .env("ENABLE_TOOL_SEARCH", "false");
        let line = shell_line(command.as_std());
        let tmux = Tmux::start(&line, user.project.path(), &[], WIDTH, HEIGHT);
        let group = tmux.pane_pid();
        InteractiveClaude { tmux, group }
    }

    pub fn screen(&self) -> String {
        self.tmux.screen()
    }

    /// Keys as tmux names them (`Enter`, `Down`, `Escape`) or literal text.
    pub fn keys(&self, keys: &[&str]) {
        self.tmux.keys(keys);
    }

    /// Types `text` into the prompt and sends it.
    pub fn say(&self, text: &str) {
        self.tmux.keys(&[text]);
        self.tmux.keys(&["Enter"]);
    }

    /// Waits until the screen satisfies `test`; fails with the screen and
    /// `context()` (logs, traffic) when it does not within `timeout`.
    pub async fn wait_for_screen(
        &self,
        what: &str,
        timeout: Duration,
        test: impl Fn(&str) -> bool,
        context: impl Fn() -> String,
    ) -> String {
        let screen = wait_until(timeout, || {
            let screen = self.screen();
            test(&screen).then_some(screen)
        })
        .await;
        screen.unwrap_or_else(|| {
            panic!(
                "no {what} on screen within {timeout:?}:\n{}\n{}",
                self.screen(),
                context()
            )
        })
    }

    /// Accepts the MCP form on screen (Claude Code's "requests your input"
    /// dialog): an enum field is opened (Right), its `accept` option picked
    /// (Down to it, Enter), then the Accept button submitted (Enter); a form
    /// without fields has only the buttons.
    pub async fn accept_form(&self, context: impl Fn() -> String) {
        if self.screen().contains("▸") {
            self.keys(&["Right"]);
            let opened = self
                .wait_for_screen(
                    "the field's options",
                    FORM_TIMEOUT,
                    |screen| screen.contains("◯"),
                    &context,
                )
                .await;
            let at = opened
                .lines()
                .filter(|line| line.contains("◯"))
                .position(|line| line.trim_end().ends_with("◯ accept"))
                .unwrap_or_else(|| panic!("no `accept` option in the form:\n{opened}"));
            for _ in 0..at {
                self.keys(&["Down"]);
            }
            self.keys(&["Enter"]);
        }
        self.wait_for_screen(
            "the Accept button chosen",
            FORM_TIMEOUT,
            |screen| screen.contains("❯ Accept"),
            &context,
        )
        .await;
        // An Enter that comes while the form still redraws after the pick
        // can be lost: press it again until the dialog goes.
        for _ in 0..SUBMIT_TRIES {
            self.keys(&["Enter"]);
            let gone = wait_until(SUBMIT_WAIT, || {
                (!self.screen().contains(DIALOG_TITLE)).then_some(())
            })
            .await;
            if gone.is_some() {
                return;
            }
        }
        panic!(
            "the dialog stayed after {SUBMIT_TRIES} Enters on Accept:\n{}\n{}",
            self.screen(),
            context()
        );
    }

    /// Ends Claude Code and everything it started: SIGTERM to the pane's
    /// group, SIGKILL after [`STOP_GRACE`], and the tmux server with it.
    pub async fn stop(self) {
        let group = self.group;
        let _ = killpg(Pid::from_raw(group), Signal::SIGTERM);
        let gone = wait_until(STOP_GRACE, || {
            processes_in_group(group).is_empty().then_some(())
        })
        .await;
        if gone.is_none() {
            let _ = killpg(Pid::from_raw(group), Signal::SIGKILL);
        }
        let left = processes_in_group(group);
        assert!(
            gone.is_some() && left.is_empty(),
            "Claude Code's group {group} did not end on SIGTERM within {STOP_GRACE:?}; left: {left:?}"
        );
    }
}

impl Drop for InteractiveClaude {
    fn drop(&mut self) {
        // A test that failed before `stop`: nothing of the pane may outlive it.
        if !processes_in_group(self.group).is_empty() {
            let _ = killpg(Pid::from_raw(self.group), Signal::SIGKILL);
        }
    }
}

/// Polls `check` until it gives a value or `timeout` passes.
pub async fn wait_until<T>(timeout: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(found) = check() {
            return Some(found);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// `command` as one shell line for the pane: `cd`, then `env` with the
/// variables it removes (`-u`) and sets, the program and its arguments, each
/// quoted.
fn shell_line(command: &std::process::Command) -> String {
    // `env` takes its `-u` options before any assignment.
    let mut removed = Vec::new();
    let mut set = Vec::new();
    for (name, value) in command.get_envs() {
        let name = name.to_string_lossy();
        match value {
            None => removed.push(format!("-u {}", quote(&name))),
            Some(value) => set.push(quote(&format!("{name}={}", value.to_string_lossy()))),
        }
    }
    let mut words = vec!["env".to_owned()];
    words.extend(removed);
    words.extend(set);
    words.push(quote(&command.get_program().to_string_lossy()));
    words.extend(command.get_args().map(|arg| quote(&arg.to_string_lossy())));
    let cd = command
        .get_current_dir()
        .map(|dir| format!("cd {} && ", quote_path(dir)))
        .unwrap_or_default();
    format!("{cd}{}", words.join(" "))
}

fn quote_path(path: &Path) -> String {
    quote(&path.to_string_lossy())
}

/// `text` in single quotes for `sh`.
fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}
