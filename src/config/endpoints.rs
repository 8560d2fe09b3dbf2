//! Named endpoints: `endpoints.toml` in the pointer dir, one `[[endpoint]]`
//! table per app-server on another host. Each holds the same settings as
//! the environment's remote URL (see `remote.rs`), with every secret as the
//! path of the file that holds it: a secret written in this file would end
//! up in backups, dotfile repositories and screenshots of it.
//!
//! ```toml
//! [[endpoint]]
//! name = "buildbox"
//! url = "wss://buildbox.example:4443"
//! shared_secret_file = "~/.config/codex-remote/buildbox.secret"
//! issuer = "codex-mcp-sidecar"
//! audience = "buildbox"
//! ca_file = "~/.config/codex-remote/ca.pem"
//! ```

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::ConfigError;
use super::remote::{self, DEFAULT_ENDPOINT, RemoteAuth, RemoteEndpoint};
use crate::shell_path::{RefusedPath, absolute_setting};

/// The file's name in the pointer dir.
pub const ENDPOINTS_FILE: &str = "endpoints.toml";

/// Keys that would hold a secret itself: refused with a message that says
/// which key to use instead, rather than as one more unknown key.
const INLINE_SECRET_KEYS: &[&str] = &["token", "secret", "shared_secret", "bearer", "password"];

/// What is wrong with `endpoints.toml`; each names the file, and the
/// endpoint when one is at fault.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum EndpointsError {
    #[error("{file}: cannot read it: {error}")]
    Read { file: String, error: String },
    #[error("{file}: {error}")]
    Syntax { file: String, error: String },
    #[error("{file}: endpoint {endpoint}: {error}")]
    Table {
        file: String,
        endpoint: String,
        error: String,
    },
    #[error(
        "{file}: endpoint {endpoint}: {key:?} would hold a secret in this file; \
         put it in a file of its own and name that file with token_file or shared_secret_file"
    )]
    InlineSecret {
        file: String,
        endpoint: String,
        key: String,
    },
    #[error(
        "{file}: endpoint {endpoint}: url {url:?} is not a ws://HOST:PORT or wss://HOST:PORT URL"
    )]
    BadUrl {
        file: String,
        endpoint: String,
        url: String,
    },
    #[error("{file}: endpoint {name:?} is named twice")]
    Duplicate { file: String, name: String },
    #[error(
        "{file}: {DEFAULT_ENDPOINT:?} is the app-server the environment names \
         (CODEX_MCP_WRAPPER_APP_SERVER_URL and friends); give this endpoint another name"
    )]
    RedefinesDefault { file: String },
    #[error("{file}: endpoint {endpoint}: {error}")]
    Setting {
        file: String,
        endpoint: String,
        error: ConfigError,
    },
}

/// The endpoints `endpoints.toml` names, in its order, and what kept any
/// from being read. A broken file leaves the list empty: a run that names
/// an endpoint is then refused with the file's problem, and the health
/// check reports it, while runs on the default endpoint go on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Endpoints {
    pub list: Vec<RemoteEndpoint>,
    pub problem: Option<EndpointsError>,
}

impl Endpoints {
    /// Reads `pointer_dir/endpoints.toml`; no file is no endpoints.
    pub fn load(pointer_dir: &Path, home: Option<&str>) -> Endpoints {
        let path = pointer_dir.join(ENDPOINTS_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Endpoints::default();
            }
            Err(error) => {
                return Endpoints {
                    list: Vec::new(),
                    problem: Some(EndpointsError::Read {
                        file: path.display().to_string(),
                        error: error.to_string(),
                    }),
                };
            }
        };
        match parse(&path.display().to_string(), &text, home) {
            Ok(list) => Endpoints {
                list,
                problem: None,
            },
            Err(problem) => Endpoints {
                list: Vec::new(),
                problem: Some(problem),
            },
        }
    }

    pub fn get(&self, name: &str) -> Option<&RemoteEndpoint> {
        self.list.iter().find(|endpoint| endpoint.name == name)
    }

    /// Every name a run may give, the default first.
    pub fn names(&self) -> Vec<&str> {
        std::iter::once(DEFAULT_ENDPOINT)
            .chain(self.list.iter().map(|endpoint| endpoint.name.as_str()))
            .collect()
    }
}

/// One `[[endpoint]]` table as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EndpointTable {
    name: String,
    url: String,
    token_file: Option<String>,
    shared_secret_file: Option<String>,
    issuer: Option<String>,
    audience: Option<String>,
    ca_file: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EndpointsToml {
    #[serde(default)]
    endpoint: Vec<toml::Table>,
}

/// `text` as the endpoints it names; `file` is only for the messages.
pub fn parse(
    file: &str,
    text: &str,
    home: Option<&str>,
) -> Result<Vec<RemoteEndpoint>, EndpointsError> {
    let syntax = |error: String| EndpointsError::Syntax {
        file: file.to_string(),
        error,
    };
    let document: EndpointsToml =
        toml::from_str(text).map_err(|error| syntax(error.message().to_string()))?;
    let mut list: Vec<RemoteEndpoint> = Vec::new();
    for (index, table) in document.endpoint.into_iter().enumerate() {
        // Named by its name when it has one, else by its place.
        let label = table
            .get("name")
            .and_then(toml::Value::as_str)
            .map_or_else(|| format!("#{}", index + 1), |name| format!("{name:?}"));
        if let Some(key) = table
            .keys()
            .find(|key| INLINE_SECRET_KEYS.contains(&key.as_str()))
        {
            return Err(EndpointsError::InlineSecret {
                file: file.to_string(),
                endpoint: label,
                key: key.clone(),
            });
        }
        let written: EndpointTable =
            toml::Value::Table(table)
                .try_into()
                .map_err(|error: toml::de::Error| EndpointsError::Table {
                    file: file.to_string(),
                    endpoint: label.clone(),
                    error: error.message().to_string(),
                })?;
        let endpoint = endpoint_of(file, &label, written, home)?;
        if endpoint.name == DEFAULT_ENDPOINT {
            return Err(EndpointsError::RedefinesDefault {
                file: file.to_string(),
            });
        }
        if list.iter().any(|known| known.name == endpoint.name) {
            return Err(EndpointsError::Duplicate {
                file: file.to_string(),
                name: endpoint.name,
            });
        }
        list.push(endpoint);
    }
    Ok(list)
}

fn endpoint_of(
    file: &str,
    label: &str,
    written: EndpointTable,
    home: Option<&str>,
) -> Result<RemoteEndpoint, EndpointsError> {
    let setting = |error: ConfigError| EndpointsError::Setting {
        file: file.to_string(),
        endpoint: label.to_string(),
        error,
    };
    let name_ok = !written.name.is_empty()
        && written
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !name_ok {
        return Err(EndpointsError::Table {
            file: file.to_string(),
            endpoint: label.to_string(),
            error: "name must be letters, digits, '-', '_' or '.'".to_string(),
        });
    }
    if remote::url_host(&written.url).is_none() {
        return Err(EndpointsError::BadUrl {
            file: file.to_string(),
            endpoint: label.to_string(),
            url: written.url,
        });
    }
    let path =
        |key: &'static str, value: Option<String>| -> Result<Option<PathBuf>, EndpointsError> {
            value
                .map(|value| absolute_setting(key, &value, home))
                .transpose()
                .map_err(|refused: RefusedPath| setting(refused.into()))
        };
    let token_file = path("token_file", written.token_file)?;
    let secret_file = path("shared_secret_file", written.shared_secret_file)?;
    let auth = match (token_file, secret_file) {
        (Some(_), Some(_)) => {
            return Err(setting(ConfigError::TwoAuths {
                first: "token_file",
                second: "shared_secret_file",
            }));
        }
        (Some(file), None) => RemoteAuth::CapabilityToken { file },
        (None, Some(secret_file)) => RemoteAuth::SignedBearer {
            secret_file,
            issuer: written.issuer,
            audience: written.audience,
        },
        (None, None) => RemoteAuth::None,
    };
    let endpoint = RemoteEndpoint {
        name: written.name,
        url: written.url,
        auth,
        ca_file: path("ca_file", written.ca_file)?,
    };
    // The environment's rule, in this file's words.
    remote::check_auth(&endpoint, "url").map_err(|error| match error {
        ConfigError::RemoteWithoutAuth { value, .. } => EndpointsError::Table {
            file: file.to_string(),
            endpoint: label.to_string(),
            error: format!(
                "url {value:?} is on another host and has no auth: \
                 set token_file (a capability token) or shared_secret_file (signed bearer tokens)"
            ),
        },
        other => setting(other),
    })?;
    Ok(endpoint)
}

/// The kind of auth, in a word, for listings (never the secret).
pub fn auth_kind(auth: &RemoteAuth) -> &'static str {
    match auth {
        RemoteAuth::None => "none",
        RemoteAuth::CapabilityToken { .. } => "capability-token",
        RemoteAuth::SignedBearer { .. } => "signed-bearer-token",
    }
}

#[cfg(test)]
mod tests;
