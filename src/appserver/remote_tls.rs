//! What a connection to a remote app-server needs beyond its URL: the TLS
//! client for `wss://` (graviola's crypto; the system's roots plus the PEM
//! file of the CA setting) and the names of the settings an error points at.
//!
//! Codex has no TLS of its own: `wss://` is a proxy or tunnel in front of it,
//! often with a private CA, hence the extra roots.

use std::sync::Arc;

use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use super::connection::{ConnectOptions, RemoteTransport};
use super::remote_auth::{AuthSetting, RemoteAuthError, bearer_for, setting_name};
use super::token::CapabilityToken;
use crate::config::remote::{ENV_AUDIENCE, ENV_ISSUER};
use crate::config::{DEFAULT_ENDPOINT, RemoteAuth, RemoteEndpoint};

/// A TLS client that could not be set up. Names the setting, not the path.
#[derive(Debug, thiserror::Error)]
pub enum RemoteTlsError {
    #[error("the CA file {setting} names cannot be read ({reason})")]
    CaUnreadable { setting: String, reason: String },
    #[error("the CA file {setting} names holds no PEM certificate")]
    CaEmpty { setting: String },
    #[error("a certificate in the CA file {setting} names is not valid ({reason})")]
    CaInvalid { setting: String, reason: String },
    #[error("no trusted roots for wss://: the system has none and {setting} is not set")]
    NoRoots { setting: String },
    #[error("the TLS client could not be set up: {0}")]
    Provider(String),
}

/// Either half of what a connection to a remote server is built from.
#[derive(Debug, thiserror::Error)]
pub enum RemoteSetupError {
    #[error(transparent)]
    Auth(#[from] RemoteAuthError),
    #[error(transparent)]
    Tls(#[from] RemoteTlsError),
    #[error("reading the remote app-server's settings stopped: {0}")]
    Blocking(String),
}

/// The options of one new connection to `endpoint`: a bearer minted now and
/// the TLS client. Its files are read off the runtime's threads, and again
/// for each connection, so a rotated secret or CA file is picked up.
pub async fn remote_connect_options(
    endpoint: &RemoteEndpoint,
) -> Result<ConnectOptions, RemoteSetupError> {
    let endpoint = endpoint.clone();
    tokio::task::spawn_blocking(move || {
        let bearer = bearer_for(&endpoint)?;
        let transport = RemoteTransport::for_endpoint(&endpoint)?;
        Ok(ConnectOptions::new(
            endpoint.url.clone(),
            bearer.map(CapabilityToken::from_secret),
        )
        .with_remote(Some(transport)))
    })
    .await
    .map_err(|error| RemoteSetupError::Blocking(error.to_string()))?
}

impl RemoteTransport {
    /// Reads the CA file and the system's roots (blocking: a few files).
    pub fn for_endpoint(endpoint: &RemoteEndpoint) -> Result<RemoteTransport, RemoteTlsError> {
        let ca_setting = setting_name(endpoint, AuthSetting::CaFile);
        let tls = if endpoint.is_tls() {
            Some(Arc::new(client_config(endpoint, &ca_setting)?))
        } else {
            None
        };
        Ok(RemoteTransport {
            tls,
            auth_hint: auth_hint(endpoint),
            ca_setting,
        })
    }
}

/// The settings that decide whether the server takes our bearer.
fn auth_hint(endpoint: &RemoteEndpoint) -> String {
    let named = endpoint.name != DEFAULT_ENDPOINT;
    match &endpoint.auth {
        RemoteAuth::None if named => format!(
            "endpoint \"{}\" in endpoints.toml sends no token; give it a token_file or shared_secret_file",
            endpoint.name
        ),
        RemoteAuth::None => format!(
            "we sent no token; set {} or {}",
            crate::config::remote::ENV_TOKEN_FILE,
            crate::config::remote::ENV_SHARED_SECRET_FILE
        ),
        RemoteAuth::CapabilityToken { .. } => {
            format!("check {}", setting_name(endpoint, AuthSetting::TokenFile))
        }
        RemoteAuth::SignedBearer { .. } if named => format!(
            "check {} (and its issuer and audience)",
            setting_name(endpoint, AuthSetting::SharedSecretFile)
        ),
        RemoteAuth::SignedBearer { .. } => format!(
            "check {} (and {ENV_ISSUER} / {ENV_AUDIENCE}, which must match the server's --ws-issuer / --ws-audience)",
            setting_name(endpoint, AuthSetting::SharedSecretFile)
        ),
    }
}

fn client_config(
    endpoint: &RemoteEndpoint,
    ca_setting: &str,
) -> Result<ClientConfig, RemoteTlsError> {
    let mut roots = RootCertStore::empty();
    // A system without a root store (a slim container) still works with a
    // CA file; the certificates it could not parse are skipped.
    let native = rustls_native_certs::load_native_certs();
    let _ = roots.add_parsable_certificates(native.certs);
    if let Some(file) = &endpoint.ca_file {
        let setting = || ca_setting.to_string();
        let bytes = std::fs::read(file).map_err(|error| RemoteTlsError::CaUnreadable {
            setting: setting(),
            reason: error.kind().to_string(),
        })?;
        let mut added = 0;
        for cert in CertificateDer::pem_slice_iter(&bytes) {
            let cert = cert.map_err(|error| RemoteTlsError::CaInvalid {
                setting: setting(),
                reason: error.to_string(),
            })?;
            roots.add(cert).map_err(|error| RemoteTlsError::CaInvalid {
                setting: setting(),
                reason: error.to_string(),
            })?;
            added += 1;
        }
        if added == 0 {
            return Err(RemoteTlsError::CaEmpty { setting: setting() });
        }
    }
    if roots.is_empty() {
        return Err(RemoteTlsError::NoRoots {
            setting: ca_setting.to_string(),
        });
    }
    let config = ClientConfig::builder_with_provider(Arc::new(rustls_graviola::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|error| RemoteTlsError::Provider(error.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ca_file_that_is_not_pem_names_the_setting_not_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("not-a-ca.pem");
        std::fs::write(&file, "hello\n").unwrap();
        let endpoint = RemoteEndpoint {
            name: DEFAULT_ENDPOINT.into(),
            url: "wss://box.example:443".into(),
            auth: RemoteAuth::None,
            ca_file: Some(file),
        };
        let message = RemoteTransport::for_endpoint(&endpoint)
            .unwrap_err()
            .to_string();
        assert!(
            message.contains(crate::config::remote::ENV_CA_FILE),
            "{message}"
        );
        assert!(!message.contains(dir.path().to_str().unwrap()), "{message}");
    }
}
