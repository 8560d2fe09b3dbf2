//! Is Codex logged in? Asked of the app-server (`account/read`), which knows
//! both whether credentials exist and whether the configured model provider
//! needs them: `codex login status` knows only the first, and would call
//! the scripted model's `mock` provider, or any provider with its own key,
//! logged out.
//!
//! Two users: the supervisor's [`LoginGate`], which refuses a run at once
//! while Codex is logged out (its turn would otherwise retry against OpenAI
//! until the hard timeout), and [`check`], the health check's view.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use super::remote_tls::remote_connect_options;
use super::{
    AppServerConnection, AppServerProcess, CapabilityToken, ConnectOptions, ConnectionError,
    SpawnOptions,
};
use crate::codex_bin::{BinarySource, CodexBinary};
use crate::config::{AppServerMode, Config, RemoteEndpoint};
use crate::protocol::account::{AccountReadParams, AccountReadResponse};

/// `account/read` reads `auth.json` and the config Codex loaded: no network,
/// milliseconds. Ten seconds covers a loaded machine; a server that takes
/// longer is not held against the run (it goes on, see [`LoginGate`]), and a
/// start is not held up for the whole `REQUEST_TIMEOUT`.
pub const ACCOUNT_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// What the app-server says about the login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Login {
    /// Credentials exist; the account's kind as Codex names it (`apiKey`,
    /// `chatgpt`, ...).
    LoggedIn(String),
    /// The model provider brings its own credentials.
    NotRequired,
    /// The provider needs an OpenAI account and there is none.
    LoggedOut,
}

impl From<AccountReadResponse> for Login {
    fn from(response: AccountReadResponse) -> Login {
        match (response.account, response.requires_openai_auth) {
            (Some(account), _) => Login::LoggedIn(account.kind),
            (None, false) => Login::NotRequired,
            (None, true) => Login::LoggedOut,
        }
    }
}

/// Asks the server on `connection`.
pub async fn read(connection: &AppServerConnection) -> Result<Login, ConnectionError> {
    connection
        .request_with_timeout::<_, AccountReadResponse>(
            "account/read",
            &AccountReadParams::default(),
            ACCOUNT_READ_TIMEOUT,
        )
        .await
        .map(Login::from)
}

/// A run refused because Codex is logged out; the message says what to run.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "Codex is not logged in, and its model provider needs an OpenAI account (a run would only \
     retry against OpenAI): run `{login}` (a ChatGPT account; add `--device-auth` on a machine \
     without a browser) or `printenv OPENAI_API_KEY | {login} --with-api-key` (an API key; Codex \
     does not read OPENAI_API_KEY by itself), then try again"
)]
pub struct NotLoggedIn {
    /// `CODEX_HOME=... codex login`, ready to paste.
    login: String,
}

impl NotLoggedIn {
    /// The advice for the Codex home the server reported (the one a login
    /// must write to), else ours; `codex` is the binary runs use, named as
    /// the user would type it.
    pub fn new(codex_home: &Path, codex: Option<&CodexBinary>) -> NotLoggedIn {
        let program = match codex {
            Some(codex) if codex.source != BinarySource::Path => {
                shell_word(&codex.path.display().to_string())
            }
            _ => "codex".to_string(),
        };
        NotLoggedIn {
            login: format!(
                "CODEX_HOME={} {program} login",
                shell_word(&codex_home.display().to_string())
            ),
        }
    }

    /// For the connection's server: the home it reported in `initialize`.
    fn for_server(
        connection: &AppServerConnection,
        codex_home: &Path,
        codex: &CodexBinary,
    ) -> NotLoggedIn {
        let home = connection
            .server_info()
            .codex_home
            .as_ref()
            .map(PathBuf::from)
            .unwrap_or_else(|| codex_home.to_path_buf());
        NotLoggedIn::new(&home, Some(codex))
    }
}

/// Quoted for a POSIX shell only when it needs to be.
fn shell_word(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+~@%:,=".contains(c));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// The login check of one connection. A pass is kept for the connection's
/// life, so a logged-in sidecar asks once; a refusal is not, so a `codex
/// login` made between two runs lets the second one through. A new
/// connection (another server, maybe restarted with another config) asks
/// again.
#[derive(Debug, Default)]
pub struct LoginGate {
    passed: bool,
}

impl LoginGate {
    /// Whether this connection's login check passed already.
    pub fn passed(&self) -> bool {
        self.passed
    }

    /// Whether a run may start on `connection`. A server that cannot answer
    /// (no `account/read`, or slow) lets the run go: the check is there to
    /// catch a logged-out Codex early, not to stand between a run and a
    /// server it would have worked on.
    pub async fn admit(
        &mut self,
        connection: &AppServerConnection,
        codex_home: &Path,
        codex: &CodexBinary,
    ) -> Result<(), NotLoggedIn> {
        if self.passed {
            return Ok(());
        }
        match read(connection).await {
            Ok(Login::LoggedOut) => {
                let refusal = NotLoggedIn::for_server(connection, codex_home, codex);
                tracing::warn!(%refusal, "run refused");
                Err(refusal)
            }
            Ok(login) => {
                tracing::debug!(?login, "Codex login checked");
                self.passed = true;
                Ok(())
            }
            Err(error) => {
                tracing::warn!(%error, "could not ask the app-server about the login; starting the run anyway");
                Ok(())
            }
        }
    }
}

/// The health check's view of the login.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LoginHealth {
    pub status: LoginStatus,
    /// The account's kind (`apiKey`, `chatgpt`, ...) when logged in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// Why the status is `unknown` or `notChecked`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum LoginStatus {
    LoggedIn,
    /// The model provider needs no OpenAI account.
    NotRequired,
    LoggedOut,
    /// The app-server could not say.
    Unknown,
    /// There was nothing to ask: no Codex, or no Codex home.
    NotChecked,
}

impl LoginHealth {
    /// One line for `codex-mcp-sidecar check`.
    pub fn describe(&self) -> String {
        let what = match (self.status, &self.account) {
            (LoginStatus::LoggedIn, Some(account)) => format!("logged in ({account})"),
            (LoginStatus::LoggedIn, None) => "logged in".to_string(),
            (LoginStatus::NotRequired, _) => {
                "no login needed (the model provider brings its own credentials)".to_string()
            }
            (LoginStatus::LoggedOut, _) => "not logged in".to_string(),
            (LoginStatus::Unknown, _) => "could not tell".to_string(),
            (LoginStatus::NotChecked, _) => "not checked".to_string(),
        };
        match &self.detail {
            Some(detail) => format!("Codex login: {what}: {detail}"),
            None => format!("Codex login: {what}"),
        }
    }

    fn not_checked(detail: impl Into<String>) -> LoginHealth {
        LoginHealth {
            status: LoginStatus::NotChecked,
            account: None,
            detail: Some(detail.into()),
        }
    }
}

/// Asks an app-server about the login; a logged-out Codex adds the advice to
/// `problems`. A `unix://` server is asked itself (its home may not be
/// ours). Otherwise a throwaway private app-server on our Codex home is: a
/// shared one runs on the same home and config, and asking a throwaway
/// leaves the shared one, and its idle timer, alone. Codex creates its own
/// state files in its home as it starts, as any run would.
pub async fn check(
    config: &Config,
    codex: Option<&CodexBinary>,
    problems: &mut Vec<String>,
) -> LoginHealth {
    let asked = match &config.app_server {
        AppServerMode::Unix { path } => ask_unix(path).await,
        // The login that counts is the remote host's: ask its server.
        AppServerMode::Remote(endpoint) => ask_remote(endpoint).await,
        AppServerMode::Private | AppServerMode::Shared { .. } => {
            let Some(codex) = codex else {
                return LoginHealth::not_checked("no Codex CLI to ask");
            };
            if !config.codex_home.is_dir() {
                return LoginHealth::not_checked("the Codex home does not exist");
            }
            ask_throwaway(codex, &config.codex_home).await
        }
    };
    match asked {
        Ok((Login::LoggedIn(account), _)) => LoginHealth {
            status: LoginStatus::LoggedIn,
            account: Some(account),
            detail: None,
        },
        Ok((Login::NotRequired, _)) => LoginHealth {
            status: LoginStatus::NotRequired,
            account: None,
            detail: None,
        },
        Ok((Login::LoggedOut, home)) => {
            let home = home.unwrap_or_else(|| config.codex_home.clone());
            problems.push(NotLoggedIn::new(&home, codex).to_string());
            LoginHealth {
                status: LoginStatus::LoggedOut,
                account: None,
                detail: None,
            }
        }
        Err(detail) => LoginHealth {
            status: LoginStatus::Unknown,
            account: None,
            detail: Some(detail),
        },
    }
}

/// The login, and the home the server reported.
type Asked = Result<(Login, Option<PathBuf>), String>;

async fn ask(connection: AppServerConnection) -> Asked {
    let login = read(&connection).await.map_err(|error| error.to_string());
    let home = connection
        .server_info()
        .codex_home
        .clone()
        .map(PathBuf::from);
    connection.close().await;
    Ok((login?, home))
}

async fn ask_unix(path: &Path) -> Asked {
    let url = format!("unix://{}", path.display());
    match AppServerConnection::connect(ConnectOptions::new(url, None::<CapabilityToken>)).await {
        Ok((connection, _events)) => ask(connection).await,
        Err(error) => Err(error.to_string()),
    }
}

async fn ask_remote(endpoint: &RemoteEndpoint) -> Asked {
    let options = remote_connect_options(endpoint)
        .await
        .map_err(|error| error.to_string())?;
    match AppServerConnection::connect(options).await {
        Ok((connection, _events)) => ask(connection).await,
        Err(error) => Err(error.to_string()),
    }
}

async fn ask_throwaway(codex: &CodexBinary, codex_home: &Path) -> Asked {
    let dir = tempfile::tempdir().map_err(|error| format!("no temporary directory: {error}"))?;
    let mut options = SpawnOptions::loopback(codex.path.clone(), dir.path().join("token"));
    options.codex_home = Some(codex_home.to_path_buf());
    let process = AppServerProcess::spawn(options)
        .await
        .map_err(|error| error.to_string())?;
    let connected = AppServerConnection::connect(ConnectOptions::new(
        process.url(),
        Some(process.token().clone()),
    ))
    .await;
    let asked = match connected {
        Ok((connection, _events)) => ask(connection).await,
        Err(error) => Err(error.to_string()),
    };
    if let Err(error) = process.shutdown().await {
        tracing::warn!(%error, "stopping the app-server asked about the login failed");
    }
    asked
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::account::AccountReadResponse;

    fn login(json: &str) -> Login {
        Login::from(serde_json::from_str::<AccountReadResponse>(json).unwrap())
    }

    #[test]
    fn a_provider_without_openai_auth_is_not_logged_out() {
        assert_eq!(
            login(r#"{"account":null,"requiresOpenaiAuth":false}"#),
            Login::NotRequired
        );
        assert_eq!(
            login(r#"{"account":null,"requiresOpenaiAuth":true}"#),
            Login::LoggedOut
        );
        assert_eq!(
            login(
                r#"{"account":{"type":"chatgpt","email":null,"planType":"plus"},"requiresOpenaiAuth":true}"#
            ),
            Login::LoggedIn("chatgpt".into())
        );
    }

    #[test]
    fn the_advice_can_be_pasted_into_a_shell() {
        let codex = CodexBinary {
            path: PathBuf::from("/opt/my codex/bin/codex"),
            source: BinarySource::ProjectInstall,
            version: crate::codex_bin::SUPPORTED_VERSIONS.oldest,
        };
        let advice = NotLoggedIn::new(Path::new("/home/u/.codex"), Some(&codex)).to_string();
        assert!(
            advice.contains("`CODEX_HOME=/home/u/.codex '/opt/my codex/bin/codex' login`"),
            "{advice}"
        );
        assert!(
            advice.contains(
                "`printenv OPENAI_API_KEY | CODEX_HOME=/home/u/.codex '/opt/my codex/bin/codex' login --with-api-key`"
            ),
            "{advice}"
        );
        let on_path = CodexBinary {
            source: BinarySource::Path,
            ..codex
        };
        let advice = NotLoggedIn::new(Path::new("/it's"), Some(&on_path)).to_string();
        assert!(
            advice.contains(r"`CODEX_HOME='/it'\''s' codex login`"),
            "{advice}"
        );
    }
}
