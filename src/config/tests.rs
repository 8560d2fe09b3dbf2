//! The settings read from a made-up environment: defaults, overrides,
//! and every refusal naming its setting.

use super::*;
use std::collections::HashMap;

fn config(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let env: HashMap<String, String> = pairs
        .iter()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect();
    Config::from_lookup(|name| env.get(name).cloned())
}

#[test]
fn defaults() {
    let config = config(&[("HOME", "/home/u")]).unwrap();
    assert_eq!(config.codex_home, PathBuf::from("/home/u/.codex"));
    assert_eq!(
        config.pointer_index(),
        PathBuf::from("/home/u/.codex/mcp-wrapper/runs.index.jsonl")
    );
    assert_eq!(
        config.app_server,
        AppServerMode::Shared {
            url: DEFAULT_SHARED_URL.into()
        }
    );
    assert_eq!(config.wait_soft_timeout, Some(DEFAULT_WAIT_SOFT_TIMEOUT));
    assert_eq!(config.run_timeout, DEFAULT_RUN_TIMEOUT);
    assert_eq!(config.default_permissions, Permissions::Yolo);
    assert_eq!(
        config.run_dir(Path::new("/p")),
        PathBuf::from("/p/.codex/codex-mcp/runs")
    );
}

/// A bad approvals value does not stop the server: the default applies
/// and the error names the setting.
#[test]
fn approvals_who_is_asked() {
    let unset = config(&[("HOME", "/h")]).unwrap();
    assert_eq!(
        (unset.approvals, &unset.approvals_refused),
        (Approvals::Auto, &None)
    );
    assert!(unset.approvals.asks_person(true) && !unset.approvals.asks_person(false));
    let caller = config(&[("HOME", "/h"), (ENV_APPROVALS, "caller")]).unwrap();
    assert!(!caller.approvals.asks_person(true));
    let person = config(&[("HOME", "/h"), (ENV_APPROVALS, "person")]).unwrap();
    assert!(person.approvals.asks_person(false));
    let bad = config(&[("HOME", "/h"), (ENV_APPROVALS, "nobody")]).unwrap();
    assert_eq!(bad.approvals, Approvals::Auto);
    let refused = bad.approvals_refused.unwrap();
    assert!(
        refused.contains(ENV_APPROVALS) && refused.contains("nobody"),
        "{refused}"
    );
}

#[test]
fn overrides_and_precedence() {
    let config = config(&[
        ("HOME", "/home/u"),
        ("CODEX_HOME", "/ch"),
        (ENV_CODEX_HOME, "/wrapper-home"),
        (ENV_LISTEN, "ws://127.0.0.1:9"),
        (ENV_SOFT_TIMEOUT_MS, "0"),
        (ENV_RUN_DIR, "/runs"),
        (ENV_DEFAULT_PERMISSIONS, "read-only"),
    ])
    .unwrap();
    assert_eq!(config.codex_home, PathBuf::from("/wrapper-home"));
    assert_eq!(
        config.app_server,
        AppServerMode::Shared {
            url: "ws://127.0.0.1:9".into()
        }
    );
    assert_eq!(config.wait_soft_timeout, None);
    assert_eq!(config.run_dir(Path::new("/p")), PathBuf::from("/runs"));
    assert_eq!(config.default_permissions, Permissions::ReadOnly);
    let unix = super::tests::config(&[("HOME", "/h"), (ENV_URL, "unix:///s.sock")]).unwrap();
    assert_eq!(
        unix.app_server,
        AppServerMode::Unix {
            path: "/s.sock".into()
        }
    );
}

#[test]
fn every_path_setting_expands_home_as_a_shell_would() {
    let config = config(&[
        ("HOME", "/home/u"),
        ("CODEX_HOME", "~/.codex"),
        (ENV_POINTER_DIR, "$HOME/pointer"),
        (ENV_RUN_DIR, "${HOME}/runs"),
    ])
    .unwrap();
    assert_eq!(config.codex_home, PathBuf::from("/home/u/.codex"));
    assert_eq!(config.pointer_dir, PathBuf::from("/home/u/pointer"));
    assert_eq!(
        config.run_dir(Path::new("/p")),
        PathBuf::from("/home/u/runs")
    );
    let wrapper = super::tests::config(&[("HOME", "/home/u"), (ENV_CODEX_HOME, "~")]).unwrap();
    assert_eq!(wrapper.codex_home, PathBuf::from("/home/u"));
    assert_eq!(wrapper.pointer_dir, PathBuf::from("/home/u/mcp-wrapper"));
    for url_var in [ENV_URL, ENV_LISTEN] {
        let unix =
            super::tests::config(&[("HOME", "/home/u"), (url_var, "unix://~/s.sock")]).unwrap();
        assert_eq!(
            unix.app_server,
            AppServerMode::Unix {
                path: "/home/u/s.sock".into()
            }
        );
    }
}

#[test]
fn a_path_setting_still_relative_is_refused_by_name() {
    for name in [ENV_CODEX_HOME, "CODEX_HOME", ENV_POINTER_DIR, ENV_RUN_DIR] {
        let error = config(&[("HOME", "/home/u"), (name, "rel/dir")]).unwrap_err();
        assert_eq!(
            error,
            ConfigError::RefusedPath {
                name,
                value: "rel/dir".into(),
                reason: PathRefusal::Relative
            },
            "{name}"
        );
        // A Codex home of its own, unless it is the setting under test.
        let home_pair = if name == "CODEX_HOME" {
            (name, "~/dir")
        } else {
            (ENV_CODEX_HOME, "/ch")
        };
        let error = config(&[home_pair, (name, "~/dir")]).unwrap_err();
        assert!(
            matches!(
                error,
                ConfigError::RefusedPath {
                    reason: PathRefusal::NoHome,
                    ..
                }
            ),
            "{name}: {error}"
        );
    }
    let error = config(&[("HOME", "/h"), (ENV_URL, "unix://run/s.sock")]).unwrap_err();
    assert_eq!(
        error,
        ConfigError::RefusedPath {
            name: ENV_URL,
            value: "unix://run/s.sock".into(),
            reason: PathRefusal::Relative
        }
    );
    let error = config(&[("HOME", "h")]).unwrap_err();
    assert!(
        matches!(error, ConfigError::RefusedPath { name: "HOME", .. }),
        "{error}"
    );
}

#[test]
fn tool_families_parse_any_subset_and_refuse_the_rest() {
    assert_eq!(
        ToolFamilies::parse("sidecar, legacy"),
        Some(ToolFamilies {
            sidecar: true,
            persistent: false,
            legacy: true,
            aliases: false,
        })
    );
    assert_eq!(
        ToolFamilies::parse("persistent"),
        Some(ToolFamilies {
            sidecar: false,
            persistent: true,
            legacy: false,
            aliases: false,
        })
    );
    assert_eq!(
        ToolFamilies::parse("sidecar,persistent,legacy,aliases"),
        Some(ToolFamilies::ALL)
    );
    assert_eq!(ToolFamilies::parse(""), None);
    assert_eq!(ToolFamilies::parse("sidecar,telepathy"), None);
    let error = config(&[("HOME", "/h"), (ENV_TOOLS, "nope")]).unwrap_err();
    assert!(error.to_string().contains(ENV_TOOLS));
}

#[test]
fn the_old_names_are_listed_only_when_asked_for() {
    let default = config(&[("HOME", "/h")]).unwrap().tools;
    assert_eq!(default, ToolFamilies::DEFAULT);
    assert!(default.sidecar && default.persistent);
    assert!(!default.legacy && !default.aliases);
}

#[test]
fn bad_values_are_named() {
    let error = config(&[("HOME", "/h"), (ENV_MODE, "both")]).unwrap_err();
    assert!(error.to_string().contains(ENV_MODE));
    let error = config(&[("HOME", "/h"), (ENV_TIMEOUT_MS, "soon")]).unwrap_err();
    assert_eq!(
        error,
        ConfigError::NotMillis {
            name: ENV_TIMEOUT_MS,
            value: "soon".into()
        }
    );
    assert_eq!(config(&[]).unwrap_err(), ConfigError::NoCodexHome);
}

/// Another host, `wss://`, or an auth setting makes the URL a remote
/// server's; a loopback `ws://` without them stays the shared server.
#[test]
fn a_url_on_another_host_is_a_remote_endpoint_with_its_auth() {
    use remote::{ENV_AUDIENCE, ENV_CA_FILE, ENV_ISSUER, ENV_SHARED_SECRET_FILE, ENV_TOKEN_FILE};
    let signed = config(&[
        ("HOME", "/h"),
        (ENV_URL, "ws://10.1.2.3:4500"),
        (ENV_SHARED_SECRET_FILE, "~/secret"),
        (ENV_ISSUER, "me"),
        (ENV_AUDIENCE, "codex"),
    ])
    .unwrap();
    assert_eq!(
        signed.app_server,
        AppServerMode::Remote(RemoteEndpoint {
            name: DEFAULT_ENDPOINT.into(),
            url: "ws://10.1.2.3:4500".into(),
            auth: RemoteAuth::SignedBearer {
                secret_file: "/h/secret".into(),
                issuer: Some("me".into()),
                audience: Some("codex".into()),
            },
            ca_file: None,
        })
    );
    let tls = config(&[
        ("HOME", "/h"),
        (ENV_URL, "wss://box.example:443"),
        (ENV_TOKEN_FILE, "/t"),
        (ENV_CA_FILE, "/ca.pem"),
    ])
    .unwrap();
    let AppServerMode::Remote(endpoint) = tls.app_server else {
        panic!("wss is remote: {:?}", tls.app_server);
    };
    assert_eq!(
        endpoint.auth,
        RemoteAuth::CapabilityToken { file: "/t".into() }
    );
    assert_eq!(endpoint.ca_file, Some("/ca.pem".into()));
    let tunnel = config(&[
        ("HOME", "/h"),
        (ENV_URL, "ws://127.0.0.1:9"),
        (ENV_TOKEN_FILE, "/t"),
    ])
    .unwrap();
    assert!(matches!(tunnel.app_server, AppServerMode::Remote(_)));
    let shared = config(&[("HOME", "/h"), (ENV_URL, "ws://127.0.0.1:9")]).unwrap();
    assert!(matches!(shared.app_server, AppServerMode::Shared { .. }));
}

#[test]
fn a_remote_url_without_auth_or_with_two_is_refused_naming_the_settings() {
    use remote::{ENV_SHARED_SECRET_FILE, ENV_TOKEN_FILE};
    let error = config(&[("HOME", "/h"), (ENV_URL, "wss://box.example:443")]).unwrap_err();
    assert_eq!(
        error,
        ConfigError::RemoteWithoutAuth {
            name: ENV_URL,
            value: "wss://box.example:443".into()
        }
    );
    let message = error.to_string();
    assert!(message.contains(ENV_TOKEN_FILE) && message.contains(ENV_SHARED_SECRET_FILE));
    let error = config(&[
        ("HOME", "/h"),
        (ENV_URL, "ws://10.0.0.2:1"),
        (ENV_TOKEN_FILE, "/t"),
        (ENV_SHARED_SECRET_FILE, "/s"),
    ])
    .unwrap_err();
    assert!(matches!(error, ConfigError::TwoAuths { .. }), "{error}");
    let error = config(&[("HOME", "/h"), (ENV_URL, "wss://:443")]).unwrap_err();
    assert!(matches!(error, ConfigError::BadUrl { .. }), "{error}");
}
