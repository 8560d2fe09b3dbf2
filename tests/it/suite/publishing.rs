//! What the crate and the MCP registry get (issue 13): `server.json` says the
//! same version as Cargo.toml and the same `mcp-name` as the README, the
//! README shows that name where the registry reads it, the `OWNER`
//! placeholder is one owner everywhere, and the package holds the sources and
//! none of the Codex or Claude Code installs.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

const CHECKOUT: &str = env!("CARGO_MANIFEST_DIR");

/// The registry's server.json schema the file is written against: its
/// latest at the time, the one its documentation's examples use.
const SERVER_SCHEMA: &str =
    "https://static.modelcontextprotocol.io/schemas/2025-12-11/server.schema.json";

/// The registry refuses a longer description.
const REGISTRY_DESCRIPTION_MAX_CHARS: usize = 100;

/// crates.io takes at most five keywords.
const CRATES_IO_MAX_KEYWORDS: usize = 5;

fn read(path: &str) -> String {
    std::fs::read_to_string(Path::new(CHECKOUT).join(path)).unwrap()
}

fn server_json() -> Value {
    serde_json::from_str(&read("server.json"))
        .unwrap_or_else(|error| panic!("server.json does not parse: {error}"))
}

/// The owner in `https://github.com/OWNER/codex-mcp-sidecar`.
fn repository_owner() -> String {
    let repository = env!("CARGO_PKG_REPOSITORY");
    let rest = repository
        .strip_prefix("https://github.com/")
        .unwrap_or_else(|| panic!("repository {repository} is not on GitHub"));
    let (owner, name) = rest.split_once('/').unwrap();
    assert_eq!(name, env!("CARGO_PKG_NAME"), "{repository}");
    owner.to_string()
}

/// Every `mcp-name: NAME` token in `text`, NAME ending at whitespace or `<`
/// (the boundaries the registry accepts), outside HTML comments: crates.io
/// drops comments when it renders the README, so the registry would never
/// see a hidden one.
fn visible_mcp_names(text: &str) -> Vec<String> {
    let mut visible = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("<!--") {
        visible.push_str(&rest[..start]);
        rest = rest[start..]
            .find("-->")
            .map_or("", |end| &rest[start + end + 3..]);
    }
    visible.push_str(rest);
    visible
        .split("mcp-name:")
        .skip(1)
        .map(|after| {
            after
                .trim_start()
                .split(|c: char| c.is_whitespace() || c == '<' || c == '`')
                .next()
                .unwrap_or_default()
                .to_string()
        })
        .collect()
}

#[test]
fn server_json_names_the_crates_version_and_the_readmes_mcp_name() {
    let server = server_json();
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(server["$schema"], SERVER_SCHEMA);
    assert_eq!(server["version"], version, "server.json's version");
    let description = server["description"].as_str().unwrap();
    assert!(
        description.chars().count() <= REGISTRY_DESCRIPTION_MAX_CHARS,
        "the registry refuses a description over {REGISTRY_DESCRIPTION_MAX_CHARS} characters: {description:?}"
    );
    let packages = server["packages"].as_array().unwrap();
    assert_eq!(packages.len(), 1, "{packages:?}");
    let package = &packages[0];
    assert_eq!(package["registryType"], "cargo");
    assert_eq!(package["identifier"], env!("CARGO_PKG_NAME"));
    assert_eq!(package["version"], version, "the cargo package's version");
    assert_eq!(package["transport"]["type"], "stdio");

    let owner = repository_owner();
    let name = format!("io.github.{owner}/{}", env!("CARGO_PKG_NAME"));
    assert_eq!(server["name"], name.as_str());
    assert_eq!(server["repository"]["url"], env!("CARGO_PKG_REPOSITORY"));
    assert_eq!(server["repository"]["source"], "github");

    let readme = read("README.md");
    assert_eq!(
        visible_mcp_names(&readme),
        [name],
        "README.md must show the registry name once, as visible text"
    );
}

#[test]
fn the_owner_placeholder_is_one_owner_and_the_readme_says_where_it_is_set() {
    let owner = repository_owner();
    let readme = read("README.md");
    let marketplace = format!("/plugin marketplace add {owner}/codex-mcp-sidecar");
    assert!(
        readme.contains(&marketplace),
        "README.md lacks {marketplace}"
    );
    // Beside every command that names the owner, the form that needs none.
    for local in [
        "/plugin marketplace add /path/to/checkout",
        "cargo install --locked --path /path/to/checkout",
    ] {
        assert!(readme.contains(local), "README.md lacks {local}");
    }
    if owner == "OWNER" {
        assert!(
            readme.contains("`OWNER` is a placeholder"),
            "README.md does not say that OWNER is a placeholder"
        );
    }
    for file in ["Cargo.toml", "README.md", "server.json"] {
        let owners = owners_named(&read(file));
        assert!(!owners.is_empty(), "{file} names no owner");
        assert!(
            owners.iter().all(|named| *named == owner),
            "{file} names owners {owners:?}, Cargo.toml {owner}"
        );
    }
}

/// The owner in every `github.com/OWNER/codex-mcp-sidecar`, `marketplace add
/// OWNER/codex-mcp-sidecar` and `io.github.OWNER/codex-mcp-sidecar`.
fn owners_named(text: &str) -> Vec<String> {
    let mut owners = Vec::new();
    for prefix in ["github.com/", "marketplace add ", "io.github."] {
        for (at, _) in text.match_indices(prefix) {
            let rest = &text[at + prefix.len()..];
            let Some((owner, after)) = rest.split_once('/') else {
                continue;
            };
            let names_owner = !owner.is_empty()
                && owner
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            if names_owner && after.starts_with(env!("CARGO_PKG_NAME")) {
                owners.push(owner.to_string());
            }
        }
    }
    owners
}

#[test]
fn the_manifest_is_ready_for_crates_io() {
    let manifest: toml::Table = toml::from_str(&read("Cargo.toml")).unwrap();
    let package = manifest["package"].as_table().unwrap();
    assert!(
        package.get("publish").is_none(),
        "`publish` is set: {:?}",
        package.get("publish")
    );
    for field in [
        "description",
        "license",
        "repository",
        "readme",
        "keywords",
        "categories",
    ] {
        assert!(package.contains_key(field), "Cargo.toml lacks {field}");
    }
    let keywords = package["keywords"].as_array().unwrap();
    assert!(
        !keywords.is_empty() && keywords.len() <= CRATES_IO_MAX_KEYWORDS,
        "{keywords:?}"
    );
    let bins: Vec<&str> = manifest["bin"]
        .as_array()
        .unwrap()
        .iter()
        .map(|bin| bin["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        bins,
        ["codex-mcp-sidecar", "codex-mcp-wrapper", "codex-runs"],
        "`cargo install` installs these three"
    );
}

/// `cargo package --list`: what crates.io would get, from the same include
/// list `make package` builds. Offline and without a build, so it is cheap.
#[test]
fn the_package_holds_the_sources_and_no_installs_or_test_rigs() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .args([
            "package",
            "--list",
            "--locked",
            "--offline",
            "--allow-dirty",
        ])
        .current_dir(CHECKOUT)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let listed = String::from_utf8_lossy(&output.stdout);
    let files: Vec<&str> = listed.lines().collect();
    for needed in [
        "Cargo.toml",
        "Cargo.lock",
        "README.md",
        "src/lib.rs",
        "src/bin/codex-mcp-sidecar.rs",
        "src/bin/codex-mcp-wrapper.rs",
        "src/bin/codex-runs.rs",
    ] {
        assert!(
            files.contains(&needed),
            "{needed} is not packaged: {files:?}"
        );
    }
    let unwanted: Vec<&&str> = files
        .iter()
        .filter(|file| {
            file.contains("node_modules")
                || [
                    "tests/",
                    "benches/",
                    "examples/",
                    "fuzz/",
                    "target/",
                    ".ci/",
                ]
                .iter()
                .any(|dir| file.starts_with(dir))
        })
        .collect();
    assert!(unwanted.is_empty(), "packaged: {unwanted:?}");
}
