//! `codex-runs` apart from its screen: the flags, which runs they name, and
//! `--json`, which prints the catalog (`store::catalog`) for scripts. The
//! interactive picker reads the same [`Scope`] through the same loaders.
//!
//! # `codex-runs --json`
//!
//! Prints one compact JSON object on one line (pipe it to `jq .` to read
//! it) and exits 0:
//!
//! ```json
//! {"runs": [{"runId": "20261121-052301-482-7f3a9c", "title": "Fix the tests",
//!            "status": "completed", "cwd": "/home/me/project", "threadId": "…",
//!            "startedAt": "…", "endedAt": "…", "durationMs": 58518,
//!            "totalTokens": 48213, "lastMessage": "All tests pass…"}],
//!  "problems": ["/home/me/project/.codex/codex-mcp/runs/index.jsonl: 1 line could not be read"]}
//! ```
//!
//! - `runs`: newest first, each a [`RunRow`]: camelCase, fields without a
//!   value left out. A running run adds `progress`, `pendingApproval`
//!   (`approvalId`, `kind`, `summary`) and `appServerUrl`.
//! - `problems`: what could not be read, one sentence each; empty when
//!   everything was. The runs that could be read are still listed.
//!
//! The shape is stable: fields are only ever added, never renamed or
//! removed. A project with no runs yet is `{"runs":[],"problems":[]}`.
//!
//! Anything that stops the listing (a `--project` that is not a directory,
//! no `CODEX_HOME` or `HOME`) is one line on stderr and exit status 1.

use std::io::{self, Write};
use std::path::PathBuf;

use clap::Parser;
use serde::Serialize;

use super::scope::Scope;
use crate::config::{Config, ConfigError};
use crate::store::catalog::{Catalog, RunRow};

/// `codex-runs`' command line.
#[derive(Debug, Parser)]
#[command(
    name = "codex-runs",
    version,
    about = "Pick a Codex run and attach the Codex terminal UI to it, or list runs as JSON."
)]
pub struct RunsArgs {
    /// List every project's runs (through the per-user pointer index).
    #[arg(long, conflicts_with = "project")]
    pub all: bool,
    /// The project whose runs to list (default: the current directory).
    #[arg(long, value_name = "DIR")]
    pub project: Option<PathBuf>,
    /// Print the runs as one JSON object, {"runs":[…],"problems":[…]}, newest
    /// first, and exit.
    #[arg(long)]
    pub json: bool,
    /// Show the runs as they are now, without following later changes.
    #[arg(long)]
    pub no_watch: bool,
}

/// Why `codex-runs` could not list anything; said in one line.
#[derive(Debug, thiserror::Error)]
pub enum RunsCliError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("--project {}: {reason}", path.display())]
    Project { path: PathBuf, reason: String },
    #[error("cannot tell the current directory: {0}")]
    CurrentDir(#[source] io::Error),
    #[error("cannot write the listing: {0}")]
    Output(#[source] io::Error),
    #[error(transparent)]
    Picker(#[from] super::runtime::PickerError),
}

impl RunsArgs {
    /// The runs these flags name: `--all`, else `--project` (which must be
    /// a directory), else the current directory's project.
    pub fn scope(&self, config: &Config) -> Result<Scope, RunsCliError> {
        if self.all {
            return Ok(Scope::All {
                pointer_index: config.pointer_index(),
            });
        }
        let project = match &self.project {
            Some(path) => {
                let bad = |reason: String| RunsCliError::Project {
                    path: path.clone(),
                    reason,
                };
                match std::fs::metadata(path) {
                    Ok(metadata) if metadata.is_dir() => {}
                    Ok(_) => return Err(bad("not a directory".into())),
                    Err(error) if error.kind() == io::ErrorKind::NotFound => {
                        return Err(bad("no such directory".into()));
                    }
                    Err(error) => return Err(bad(error.to_string())),
                }
                std::path::absolute(path).map_err(|error| bad(error.to_string()))?
            }
            None => std::env::current_dir().map_err(RunsCliError::CurrentDir)?,
        };
        Ok(Scope::Project {
            run_dir: config.run_dir(&project),
            project,
        })
    }
}

/// `codex-runs`: the listing as JSON with `--json`; the picker otherwise.
pub fn run(args: &RunsArgs) -> Result<(), RunsCliError> {
    let config = Config::from_env()?;
    let scope = args.scope(&config)?;
    if !args.json {
        // Codex is only needed to attach, so a missing one is no error; a
        // CODEX_BIN refused as a path is, and before the log file is made.
        let codex = match crate::codex_bin::locate_from_env() {
            Ok((path, _)) => Some(path),
            Err(crate::codex_bin::CodexBinError::EnvPathRefused(error)) => {
                return Err(RunsCliError::Config(error));
            }
            Err(_) => None,
        };
        log_to_file(&config.pointer_dir.join(LOG_FILE));
        return Ok(super::runtime::run(super::runtime::Options {
            scope,
            watch: !args.no_watch,
            codex,
            codex_home: Some(config.codex_home.clone()),
            pointer_dir: config.pointer_dir.clone(),
            endpoints: config.endpoints.clone(),
            default_remote: match &config.app_server {
                crate::config::AppServerMode::Remote(endpoint) => Some(endpoint.clone()),
                _ => None,
            },
        })?);
    }
    let catalog = scope.load();
    let stdout = io::stdout().lock();
    match write_json(&catalog, io::BufWriter::new(stdout)) {
        // A reader that stopped early (`| head`) is not a failure.
        Err(error) if error.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        other => other.map_err(RunsCliError::Output),
    }
}

/// The picker's log, in the pointer dir: the screen is the terminal, so
/// nothing may go to stdout or stderr while it shows.
const LOG_FILE: &str = "codex-runs.log";

/// `RUST_LOG` (default `info`) into `path`; without a writable file, no log.
fn log_to_file(path: &std::path::Path) {
    let Ok(file) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    else {
        return;
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_writer(std::sync::Mutex::new(file))
        .try_init();
}

/// The `--json` object; see the module docs.
#[derive(Serialize)]
struct JsonListing<'a> {
    runs: &'a [RunRow],
    problems: &'a [String],
}

/// Writes `catalog` as the `--json` object, on one line.
pub fn write_json(catalog: &Catalog, mut out: impl Write) -> io::Result<()> {
    let listing = JsonListing {
        runs: &catalog.rows,
        problems: &catalog.problems,
    };
    serde_json::to_writer(&mut out, &listing).map_err(io::Error::from)?;
    out.write_all(b"\n")?;
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{RunId, RunStatus};
    use serde_json::json;

    fn config(run_dir: Option<&str>) -> Config {
        Config::from_lookup(|name| match name {
            "HOME" => Some("/home/me".into()),
            "CODEX_MCP_WRAPPER_RUN_DIR" => run_dir.map(str::to_string),
            _ => None,
        })
        .unwrap()
    }

    fn args(line: &[&str]) -> RunsArgs {
        RunsArgs::try_parse_from(std::iter::once("codex-runs").chain(line.iter().copied())).unwrap()
    }

    #[test]
    fn the_flags_name_the_runs() {
        let dir = tempfile::tempdir().unwrap();
        let project = dir.path().to_str().unwrap();
        assert_eq!(
            args(&["--all", "--json"]).scope(&config(None)).unwrap(),
            Scope::All {
                pointer_index: "/home/me/.codex/mcp-wrapper/runs.index.jsonl".into()
            }
        );
        assert_eq!(
            args(&["--project", project]).scope(&config(None)).unwrap(),
            Scope::Project {
                project: dir.path().to_path_buf(),
                run_dir: dir.path().join(".codex/codex-mcp/runs")
            }
        );
        assert_eq!(
            args(&["--project", project])
                .scope(&config(Some("/runs")))
                .unwrap(),
            Scope::Project {
                project: dir.path().to_path_buf(),
                run_dir: "/runs".into()
            }
        );
        assert!(RunsArgs::try_parse_from(["codex-runs", "--all", "--project", "/"]).is_err());
        assert!(args(&["--no-watch"]).no_watch);
    }

    #[test]
    fn a_project_that_is_not_a_directory_is_one_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("file");
        std::fs::write(&file, "").unwrap();
        for (path, reason) in [
            (file, "not a directory"),
            (dir.path().join("gone"), "no such directory"),
        ] {
            let error = args(&["--project", path.to_str().unwrap()])
                .scope(&config(None))
                .unwrap_err()
                .to_string();
            assert_eq!(error, format!("--project {}: {reason}", path.display()));
        }
    }

    #[test]
    fn the_json_listing_has_the_documented_shape() {
        let mut out = Vec::new();
        write_json(&Catalog::default(), &mut out).unwrap();
        assert_eq!(out, b"{\"runs\":[],\"problems\":[]}\n");

        let catalog = Catalog {
            rows: vec![RunRow {
                endpoint: None,
                run_id: RunId::parse("20261121-052301-482-7f3a9c").unwrap(),
                title: "Fix it".into(),
                status: RunStatus::Completed,
                cwd: "/p".into(),
                thread_id: Some("th".into()),
                started_at: None,
                ended_at: None,
                duration_ms: Some(5),
                total_tokens: Some(7),
                progress: None,
                last_message: Some("Done.".into()),
                pending_approval: None,
                app_server_url: None,
                app_server_token_file: None,
                error: None,
            }],
            problems: vec!["index.jsonl: 1 line could not be read".into()],
        };
        let mut out = Vec::new();
        write_json(&catalog, &mut out).unwrap();
        assert_eq!(out.iter().filter(|&&byte| byte == b'\n').count(), 1);
        let value: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            value,
            json!({"runs": [{"runId": "20261121-052301-482-7f3a9c", "title": "Fix it",
                             "status": "completed", "cwd": "/p", "threadId": "th",
                             "durationMs": 5, "totalTokens": 7, "lastMessage": "Done."}],
                   "problems": ["index.jsonl: 1 line could not be read"]})
        );
    }
}
