//! An app-server on another host (or behind a tunnel): where it is and how
//! we prove who we are to it. Read from the environment here
//! ([`remote_from_env`]), and from `endpoints.toml` for named endpoints.
//! Secrets are never held in a setting: only the path of the file that
//! holds one.

use std::path::PathBuf;

use super::ConfigError;

pub const ENV_TOKEN_FILE: &str = "CODEX_MCP_WRAPPER_APP_SERVER_TOKEN_FILE";
pub const ENV_SHARED_SECRET_FILE: &str = "CODEX_MCP_WRAPPER_APP_SERVER_SHARED_SECRET_FILE";
pub const ENV_ISSUER: &str = "CODEX_MCP_WRAPPER_APP_SERVER_ISSUER";
pub const ENV_AUDIENCE: &str = "CODEX_MCP_WRAPPER_APP_SERVER_AUDIENCE";
pub const ENV_CA_FILE: &str = "CODEX_MCP_WRAPPER_APP_SERVER_CA_FILE";

/// The name of the endpoint the environment describes (and of every local
/// run): what a run record says when no `endpoint` was asked for.
pub const DEFAULT_ENDPOINT: &str = "default";

/// Someone else's app-server reached over the network: we connect, and
/// never start or stop it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteEndpoint {
    /// [`DEFAULT_ENDPOINT`] for the one the environment names, else its
    /// name in `endpoints.toml`.
    pub name: String,
    /// `ws://HOST:PORT` or `wss://HOST:PORT`.
    pub url: String,
    pub auth: RemoteAuth,
    /// PEM certificates trusted beside the system roots, for `wss://`.
    pub ca_file: Option<PathBuf>,
}

/// How the server checks us (`codex app-server --ws-auth …`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoteAuth {
    /// Nothing sent: only for a loopback `ws://` (an SSH tunnel, say).
    None,
    /// `--ws-auth capability-token`: the file's contents, as a bearer.
    CapabilityToken { file: PathBuf },
    /// `--ws-auth signed-bearer-token`: an HS256 JWT minted for each
    /// connection from the file's secret, with `iss`/`aud` when given.
    SignedBearer {
        secret_file: PathBuf,
        issuer: Option<String>,
        audience: Option<String>,
    },
}

impl RemoteEndpoint {
    /// Whether the URL's host is this machine (127.0.0.0/8, `::1`,
    /// `localhost`).
    pub fn is_loopback(&self) -> bool {
        url_is_loopback(&self.url)
    }

    /// Whether the URL is TLS (`wss://`).
    pub fn is_tls(&self) -> bool {
        self.url.starts_with("wss://")
    }
}

/// `ws://HOST:PORT` or `wss://HOST:PORT` (a path after it is kept): the
/// host, without brackets for IPv6. `None` for anything else.
pub fn url_host(url: &str) -> Option<&str> {
    let rest = url
        .strip_prefix("ws://")
        .or_else(|| url.strip_prefix("wss://"))?;
    let authority = rest.split('/').next().unwrap_or(rest);
    if let Some(v6) = authority.strip_prefix('[') {
        let (host, port) = v6.split_once(']')?;
        return (port.is_empty() || port.starts_with(':')).then_some(host);
    }
    let host = authority.split(':').next().unwrap_or(authority);
    (!host.is_empty()).then_some(host)
}

pub fn url_is_loopback(url: &str) -> bool {
    match url_host(url) {
        Some("localhost") => true,
        Some(host) => host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback()),
        None => false,
    }
}

/// The remote endpoint the environment names, if it names one: a `wss://`
/// URL, a `ws://` URL on another host, or any URL with an auth setting.
/// `None` leaves a loopback `ws://` URL to the shared server, as before.
/// A non-loopback URL without auth is refused, naming the settings.
pub fn remote_from_env(
    url_var: &'static str,
    url: &str,
    path: &impl Fn(&'static str) -> Result<Option<PathBuf>, ConfigError>,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<Option<RemoteEndpoint>, ConfigError> {
    if url_host(url).is_none() {
        return Err(ConfigError::BadUrl {
            name: url_var,
            value: url.to_string(),
        });
    }
    let token_file = path(ENV_TOKEN_FILE)?;
    let secret_file = path(ENV_SHARED_SECRET_FILE)?;
    let auth = match (token_file, secret_file) {
        (Some(_), Some(_)) => {
            return Err(ConfigError::TwoAuths {
                first: ENV_TOKEN_FILE,
                second: ENV_SHARED_SECRET_FILE,
            });
        }
        (Some(file), None) => RemoteAuth::CapabilityToken { file },
        (None, Some(secret_file)) => RemoteAuth::SignedBearer {
            secret_file,
            issuer: env(ENV_ISSUER),
            audience: env(ENV_AUDIENCE),
        },
        (None, None) => RemoteAuth::None,
    };
    let endpoint = RemoteEndpoint {
        name: DEFAULT_ENDPOINT.to_string(),
        url: url.to_string(),
        auth,
        ca_file: path(ENV_CA_FILE)?,
    };
    let remote = endpoint.is_tls()
        || !endpoint.is_loopback()
        || endpoint.auth != RemoteAuth::None
        || endpoint.ca_file.is_some();
    if !remote {
        return Ok(None);
    }
    check_auth(&endpoint, url_var)?;
    Ok(Some(endpoint))
}

/// A server on another host without auth is refused: the app-server itself
/// will not listen there without it, and a bridge that sends nothing would
/// only be refused later, less clearly.
pub fn check_auth(endpoint: &RemoteEndpoint, url_setting: &'static str) -> Result<(), ConfigError> {
    if endpoint.auth == RemoteAuth::None && !endpoint.is_loopback() {
        return Err(ConfigError::RemoteWithoutAuth {
            name: url_setting,
            value: endpoint.url.clone(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_read_from_both_schemes_and_ipv6() {
        assert_eq!(url_host("ws://10.0.0.2:4500"), Some("10.0.0.2"));
        assert_eq!(url_host("wss://box.example:443/x"), Some("box.example"));
        assert_eq!(url_host("ws://[::1]:4500"), Some("::1"));
        assert_eq!(url_host("http://h:1"), None);
        assert_eq!(url_host("ws://:1"), None);
        assert!(url_is_loopback("ws://127.0.0.2:1"));
        assert!(url_is_loopback("ws://localhost:1"));
        assert!(url_is_loopback("ws://[::1]:1"));
        assert!(!url_is_loopback("ws://10.0.0.2:1"));
    }
}
