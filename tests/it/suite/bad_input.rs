//! The bad-input corpus (`tests/it/corpus/bad_input.json`) against the
//! built binary over stdio, through a raw client that writes bytes and reads
//! lines, so that broken framing and invalid UTF-8 reach the server as they
//! are. Every case must get a clear error, the server must answer a ping
//! after each, nothing may be written, and a real run must still work at the
//! end.

use std::path::{Path, PathBuf};

use codex_mcp_sidecar::store::RunId;
use serde::Deserialize;
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::common::raw_mcp::RawMcp;
use codex_mcp_sidecar_test_support::world::SidecarWorld;

const SIDECAR: &str = env!("CARGO_BIN_EXE_codex-mcp-sidecar");
const CORPUS: &str = include_str!("../corpus/bad_input.json");

/// The capabilities that let root read what its mode forbids. Tests run as
/// root here, and root reads a mode-000 directory; without these two (taken
/// out of the bounding set, so neither the sidecar nor anything it starts
/// has them) root is held to the modes like anyone else.
const DAC_BYPASS: &str = "--bounding-set=-dac_override,-dac_read_search";

#[derive(Debug, Deserialize)]
struct Corpus {
    cases: Vec<Case>,
}

#[derive(Debug, Deserialize)]
struct Case {
    group: String,
    name: String,
    /// A tool call: the tool and its arguments (placeholders expanded).
    tool: Option<String>,
    arguments: Option<Value>,
    /// Or a raw line (`\xNN` is the byte NN), sent as it is.
    raw: Option<String>,
    /// Text the error must contain (case-insensitive).
    expect: String,
    /// For a raw line: the JSON-RPC error code and the id it must carry.
    expect_code: Option<i64>,
    #[serde(default)]
    expect_id: Option<Value>,
    /// A setup this machine may not have (`unreadable`).
    needs: Option<String>,
}

/// The built binary, as the raw client drives it.
async fn start_sidecar(world: &World, drop_dac: bool) -> RawMcp {
    let mut command = if drop_dac {
        let mut command = world.command("setpriv");
        command.args([DAC_BYPASS, "--", SIDECAR]);
        command
    } else {
        world.command(SIDECAR)
    };
    let stderr = std::fs::File::create(world.stderr_path()).unwrap();
    command
        .env("CODEX_MCP_WRAPPER_APP_SERVER_MODE", "private")
        .env("CODEX_MCP_WRAPPER_WAIT_SOFT_TIMEOUT_MS", "0")
        // The corpus has cases for the legacy tools: ask for them.
        .env("CODEX_MCP_WRAPPER_TOOLS", "sidecar,persistent,legacy")
        .current_dir(world.project.path())
        .stderr(stderr);
    RawMcp::spawn(command).await
}

/// One server's throwaway world.
struct World {
    base: SidecarWorld,
    logs: TempDir,
}

impl std::ops::Deref for World {
    type Target = SidecarWorld;
    fn deref(&self) -> &SidecarWorld {
        &self.base
    }
}

impl World {
    async fn new() -> World {
        World {
            base: SidecarWorld::new().await,
            logs: tempfile::tempdir().unwrap(),
        }
    }

    fn stderr_path(&self) -> PathBuf {
        self.logs.path().join("stderr.log")
    }

    fn file(&self) -> PathBuf {
        self.project.path().join("a-file")
    }

    fn unreadable(&self) -> PathBuf {
        self.project.path().join("unreadable")
    }
}

/// Expands the corpus's placeholders.
fn expand(value: &Value, world: &World, unknown: &str) -> Value {
    match value {
        Value::String(text) => match text.as_str() {
            "$UNKNOWN_RUN" => json!(unknown),
            "$PROJECT" => json!(world.project.path()),
            "$FILE" => json!(world.file()),
            "$MISSING" => json!(world.project.path().join("missing")),
            "$UNREADABLE" => json!(world.unreadable()),
            _ => value.clone(),
        },
        Value::Object(object) => match (object.get("$repeat"), object.get("times")) {
            (Some(Value::String(unit)), Some(times)) => {
                json!(unit.repeat(times.as_u64().unwrap() as usize))
            }
            _ => Value::Object(
                object
                    .iter()
                    .map(|(key, value)| (key.clone(), expand(value, world, unknown)))
                    .collect(),
            ),
        },
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|item| expand(item, world, unknown))
                .collect(),
        ),
        _ => value.clone(),
    }
}

/// A raw line's bytes: `\xNN` is the byte NN, everything else as written.
fn raw_bytes(raw: &str) -> Vec<u8> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while at < bytes.len() {
        if bytes[at..].starts_with(b"\\x") && at + 4 <= bytes.len() {
            let hex = std::str::from_utf8(&bytes[at + 2..at + 4]).unwrap();
            out.push(u8::from_str_radix(hex, 16).unwrap());
            at += 4;
        } else {
            out.push(bytes[at]);
            at += 1;
        }
    }
    out
}

/// Every `.codex` under `dir`: where a run directory would have appeared.
fn run_dirs_under(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if entry.file_name() == ".codex" {
            found.push(path);
        } else if entry.file_type().is_ok_and(|kind| kind.is_dir()) {
            found.extend(run_dirs_under(&path));
        }
    }
    found
}

fn tool_error_text(response: &Value) -> String {
    let result = &response["result"];
    assert_eq!(result["isError"], true, "not a tool error: {response:.500}");
    result["content"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|block| block["text"].as_str())
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bad_input_corpus_gets_clear_errors_and_writes_nothing() {
    let corpus: Corpus = serde_json::from_str(CORPUS).unwrap();
    assert!(corpus.cases.len() >= 30, "the corpus shrank");
    let world = World::new().await;
    std::fs::write(world.file(), "").unwrap();
    std::fs::create_dir(world.unreadable()).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(world.unreadable(), std::fs::Permissions::from_mode(0o000)).unwrap();
    // Root reads a mode-000 directory; run the server without the
    // capabilities that allow it, when that is possible here.
    // /proc/self belongs to the effective user.
    let root = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata("/proc/self").unwrap()) == 0;
    let drop_dac = root && which::which("setpriv").is_ok();
    let unreadable_works = !root || drop_dac;
    if !unreadable_works {
        eprintln!("skipping the unreadable-cwd case: running as root without setpriv");
    }
    let unknown = RunId::generate().to_string();
    let mut sidecar = start_sidecar(&world, drop_dac).await;

    let mut checked = 0;
    for case in &corpus.cases {
        let label = format!("[{}] {}", case.group, case.name);
        if case.needs.as_deref() == Some("unreadable") && !unreadable_works {
            continue;
        }
        match (&case.tool, &case.raw) {
            (Some(tool), None) => {
                let arguments = expand(
                    case.arguments.as_ref().unwrap_or(&json!({})),
                    &world,
                    &unknown,
                );
                let response = sidecar.call(tool, arguments).await;
                let text = tool_error_text(&response);
                assert!(
                    text.to_lowercase().contains(&case.expect.to_lowercase()),
                    "{label}: expected {:?} in {text:.500}",
                    case.expect
                );
                assert!(text.len() < 2000, "{label}: a {} byte error", text.len());
            }
            (None, Some(raw)) => {
                sidecar.send(&raw_bytes(raw)).await;
                let response = sidecar.response().await;
                let error = &response["error"];
                assert_eq!(
                    error["code"].as_i64(),
                    case.expect_code,
                    "{label}: {response}"
                );
                let message = error["message"].as_str().unwrap_or_default();
                assert!(
                    message.to_lowercase().contains(&case.expect.to_lowercase()),
                    "{label}: expected {:?} in {message}",
                    case.expect
                );
                assert_eq!(
                    response["id"],
                    case.expect_id.clone().unwrap_or(Value::Null),
                    "{label}: {response}"
                );
            }
            _ => panic!("{label}: a case is a tool call or a raw line"),
        }
        sidecar.assert_alive(&label).await;
        checked += 1;
    }
    assert!(checked >= 30, "only {checked} cases ran");

    // Nothing was written: no run directory anywhere a case pointed, no
    // pointer index line.
    std::fs::set_permissions(world.unreadable(), std::fs::Permissions::from_mode(0o700)).unwrap();
    assert_eq!(run_dirs_under(world.project.path()), Vec::<PathBuf>::new());
    assert!(
        !world.pointer_dir.join("runs.index.jsonl").exists(),
        "a pointer index line was written"
    );

    // And the server still does real work.
    let done = sidecar
        .call("codex_run", json!({"prompt": "hello", "async": false}))
        .await;
    let result = &done["result"]["structuredContent"];
    assert_eq!(result["status"], "completed", "{done:.500}");
    assert_eq!(result["result"], "scripted reply", "{done:.500}");

    sidecar.finish().await;
    let stderr = std::fs::read_to_string(world.stderr_path()).unwrap();
    assert!(!stderr.contains("panicked"), "{stderr}");
    world.base.shutdown().await;
}
