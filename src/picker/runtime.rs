//! The picker's event loop: the terminal, the catalog reads, the file
//! watcher and attaching. One synchronous loop rather than async streams:
//! while the Codex terminal UI runs on attach, nothing of ours may read
//! the terminal, and a loop that simply stops polling guarantees that (a
//! background reader thread would steal the person's keystrokes).

use std::io::Stdout;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crossterm::event::{self, Event};
use crossterm::execute;
use crossterm::terminal::{
    EnterAlternateScreen, LeaveAlternateScreen, disable_raw_mode, enable_raw_mode,
};
use notify::Watcher;
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;
use time::OffsetDateTime;

use crate::appserver::remote_auth::bearer_for;
use crate::config::endpoints::Endpoints;
use crate::config::{DEFAULT_ENDPOINT, RemoteEndpoint};
use crate::picker::attach::{self, Plan};
use crate::picker::scope::Scope;
use crate::picker::{Action, App};

/// How long a key wait lasts before the loop looks at file changes and the
/// clock: the picker's reaction time to a run's update.
const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// Changes closer together than this are read once: a run's files change
/// several times a second while it streams.
const RELOAD_DEBOUNCE: Duration = Duration::from_millis(250);

/// The backstop when watching: re-read even without a notification, in case
/// one was missed (network file systems, a full inotify queue).
const BACKSTOP_RELOAD: Duration = Duration::from_secs(5);

/// How often ages and durations on screen move on without any change.
const CLOCK_TICK: Duration = Duration::from_secs(1);

/// Debug builds only: `panic` or `error` makes the loop fail right after
/// its first frame, so a test can see the terminal given back either way.
#[cfg(debug_assertions)]
pub const TEST_FAILURE_ENV: &str = "CODEX_RUNS_TEST_FAILURE";

/// What to watch for `scope`: the run directory (and its `active/`), or
/// the pointer index's directory.
fn watched(scope: &Scope) -> Vec<PathBuf> {
    match scope {
        Scope::Project { run_dir, .. } => vec![run_dir.clone(), run_dir.join("active")],
        Scope::All { pointer_index } => pointer_index
            .parent()
            .map(Path::to_path_buf)
            .into_iter()
            .collect(),
    }
}

/// What the loop needs.
#[derive(Debug, Clone)]
pub struct Options {
    pub scope: Scope,
    pub watch: bool,
    /// The Codex CLI that attaches; `None` makes Enter say why it can't.
    pub codex: Option<PathBuf>,
    /// `CODEX_HOME` for a local `codex resume`, when it is not the default.
    pub codex_home: Option<PathBuf>,
    /// Where the shared app-server's state and token live.
    pub pointer_dir: PathBuf,
    /// The named endpoints a remote run's row can name.
    pub endpoints: Endpoints,
    /// The environment's app-server when it is on another host: where the
    /// default endpoint's runs attach.
    pub default_remote: Option<RemoteEndpoint>,
}

#[derive(Debug, thiserror::Error)]
pub enum PickerError {
    #[error("terminal: {0}")]
    Terminal(#[from] std::io::Error),
    #[error("cannot watch the run directory: {0}")]
    Watch(#[from] notify::Error),
}

/// Runs the picker until the person quits.
pub fn run(options: Options) -> Result<(), PickerError> {
    let mut terminal = TerminalGuard::enter()?;
    let (changes_tx, changes) = mpsc::channel::<()>();
    let _watcher = if options.watch {
        Some(watch(&options.scope, changes_tx)?)
    } else {
        None
    };
    let mut app = App::new(options.scope.load(), now());
    if let Scope::Project { project, .. } = &options.scope {
        app = app.with_project(project.clone());
    }
    let mut dirty = false;
    // Drawn only when something changed: a key, a resize, a reload, the
    // clock's tick; an idle picker costs one poll every interval.
    let mut redraw = true;
    let mut last_load = Instant::now();
    let mut last_tick = Instant::now();
    loop {
        if redraw {
            terminal
                .terminal
                .draw(|frame| frame.render_widget(&app, frame.area()))?;
            redraw = false;
        }
        #[cfg(debug_assertions)]
        match std::env::var(TEST_FAILURE_ENV).as_deref() {
            Ok("panic") => panic!("{TEST_FAILURE_ENV}=panic"),
            Ok("error") => {
                return Err(PickerError::Terminal(std::io::Error::other(format!(
                    "{TEST_FAILURE_ENV}=error"
                ))));
            }
            _ => {}
        }
        if event::poll(POLL_INTERVAL)? {
            redraw = true;
            if let Event::Key(key) = event::read()? {
                match app.handle_key(key) {
                    Some(Action::Quit) => return Ok(()),
                    Some(Action::Refresh) => dirty = true,
                    Some(Action::Attach(run_id)) => {
                        if let Some(row) = app.selected().filter(|row| row.run_id == run_id) {
                            let row = row.clone();
                            if let Some(message) = open(&mut terminal, &options, &row)? {
                                app.set_message(message);
                            }
                            // The run moved on while Codex had the screen.
                            dirty = true;
                        }
                    }
                    None => {}
                }
            }
        }
        while changes.try_recv().is_ok() {
            dirty = true;
        }
        if last_tick.elapsed() >= CLOCK_TICK {
            app.set_now(now());
            last_tick = Instant::now();
            redraw = true;
        }
        if options.watch && last_load.elapsed() >= BACKSTOP_RELOAD {
            dirty = true;
        }
        if dirty && last_load.elapsed() >= RELOAD_DEBOUNCE {
            app.set_catalog(options.scope.load(), now());
            dirty = false;
            last_load = Instant::now();
            redraw = true;
        }
    }
}

/// Opens the run in the Codex terminal UI and comes back; `Some(words)` to
/// show when it could not be opened.
fn open(
    terminal: &mut TerminalGuard,
    options: &Options,
    row: &crate::store::catalog::RunRow,
) -> Result<Option<String>, PickerError> {
    let plan = match remote_endpoint(row, options) {
        Some(Ok(endpoint)) => {
            let bearer = bearer_for(&endpoint).map_err(|error| error.to_string());
            attach::endpoint_plan(row, &endpoint, bearer)
        }
        Some(Err(why)) => Plan::NotYet(why),
        None => attach::plan(row, attach::live_server(row, &options.pointer_dir)),
    };
    let Some(attach::CommandLine { args, env }) = plan.command_line() else {
        return Ok(match plan {
            Plan::NotYet(why) => Some(why),
            _ => None,
        });
    };
    let Some(codex) = &options.codex else {
        return Ok(Some(
            "no Codex CLI found (CODEX_BIN, PATH, or the project's install): cannot attach"
                .to_string(),
        ));
    };
    let mut command = std::process::Command::new(codex);
    command.args(&args).envs(env);
    if let Some(cwd) = plan.cwd() {
        command.current_dir(cwd);
    }
    if let Some(home) = &options.codex_home {
        command.env("CODEX_HOME", home);
    }
    tracing::info!(run = %row.run_id, ?args, "attaching");
    terminal.leave()?;
    let status = command.status();
    terminal.resume()?;
    Ok(match status {
        Ok(status) if status.success() => None,
        Ok(status) => Some(format!("codex resume ended with {status}")),
        Err(error) => Some(format!("could not start {}: {error}", codex.display())),
    })
}

/// The app-server on another host a run went to: its endpoint of
/// `endpoints.toml` by the name its records carry, or the environment's
/// remote server for the default. `None`: a local run.
fn remote_endpoint(
    row: &crate::store::catalog::RunRow,
    options: &Options,
) -> Option<Result<RemoteEndpoint, String>> {
    match row.endpoint.as_deref() {
        None | Some(DEFAULT_ENDPOINT) => options.default_remote.clone().map(Ok),
        Some(name) => Some(options.endpoints.get(name).cloned().ok_or_else(|| {
            format!(
                "run {} went to endpoint {name:?}, which endpoints.toml no longer names: cannot attach",
                row.run_id
            )
        })),
    }
}

/// File notifications for the source, each a `()` on `changes`.
fn watch(
    scope: &Scope,
    changes: mpsc::Sender<()>,
) -> Result<notify::RecommendedWatcher, PickerError> {
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if event.is_ok() {
            let _ = changes.send(());
        }
    })?;
    for path in watched(scope) {
        // A directory that does not exist yet (no run so far) is covered by
        // the backstop reload.
        if path.exists() {
            watcher.watch(&path, notify::RecursiveMode::NonRecursive)?;
        }
    }
    Ok(watcher)
}

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

/// The terminal in raw mode on the alternate screen, given back as it was
/// however the picker ends: on return, on error (drop) and on panic (the
/// hook installed by [`install_panic_hook`]).
struct TerminalGuard {
    terminal: Terminal<CrosstermBackend<Stdout>>,
    active: bool,
}

impl TerminalGuard {
    fn enter() -> Result<TerminalGuard, PickerError> {
        install_panic_hook();
        let mut guard = TerminalGuard {
            terminal: Terminal::new(CrosstermBackend::new(std::io::stdout()))?,
            active: false,
        };
        guard.resume()?;
        Ok(guard)
    }

    fn resume(&mut self) -> Result<(), PickerError> {
        enable_raw_mode()?;
        execute!(std::io::stdout(), EnterAlternateScreen)?;
        self.active = true;
        self.terminal.clear()?;
        Ok(())
    }

    fn leave(&mut self) -> Result<(), PickerError> {
        self.active = false;
        restore_terminal()?;
        self.terminal.show_cursor()?;
        Ok(())
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        if self.active {
            let _ = restore_terminal();
            let _ = self.terminal.show_cursor();
        }
    }
}

fn restore_terminal() -> std::io::Result<()> {
    disable_raw_mode()?;
    execute!(std::io::stdout(), LeaveAlternateScreen)
}

/// A panic prints its message on a usable terminal: restore first, then
/// the default report.
fn install_panic_hook() {
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let _ = restore_terminal();
            default(info);
        }));
    });
}
