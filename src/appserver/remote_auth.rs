//! The bearer we show a remote app-server on each WebSocket upgrade: the
//! capability token read from its file, or an HS256 JWT minted afresh from
//! the shared secret (`codex app-server --ws-auth signed-bearer-token`).
//!
//! Codex reads both files as UTF-8 and trims surrounding whitespace, takes a
//! shared secret only from 32 bytes on, and requires `exp` in the JWT (`iss`
//! and `aud` only when the server was given `--ws-issuer`/`--ws-audience`).
//! We read them the same way, so a file that works for the server works for
//! us. Errors name the *setting* to fix, never the file's path: error replies
//! go to an MCP client, which has no business learning local paths.

use std::path::Path;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;

use crate::config::remote::{ENV_CA_FILE, ENV_SHARED_SECRET_FILE, ENV_TOKEN_FILE};
use crate::config::{DEFAULT_ENDPOINT, RemoteAuth, RemoteEndpoint};

/// How long a minted JWT is good for. The server checks it only at the
/// upgrade, so it need only outlive the handshake; five minutes leaves room
/// for a remote clock that runs a little ahead of ours (Codex adds 30 s of
/// skew on top), while a token copied off the wire is soon worthless. Each
/// connection (every reconnect too) mints its own.
pub const JWT_LIFETIME_SECS: i64 = 300;

/// Codex refuses to start with a shorter shared secret; a shorter one here
/// cannot be the server's, so we say so before a 401 would.
pub const MIN_SHARED_SECRET_BYTES: usize = 32;

/// The auth settings an error can point at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthSetting {
    TokenFile,
    SharedSecretFile,
    CaFile,
}

/// The name a person fixes: the environment variable for the endpoint the
/// environment describes, else the key of the named endpoint in
/// `endpoints.toml`.
pub fn setting_name(endpoint: &RemoteEndpoint, setting: AuthSetting) -> String {
    let (env, key) = match setting {
        AuthSetting::TokenFile => (ENV_TOKEN_FILE, "token_file"),
        AuthSetting::SharedSecretFile => (ENV_SHARED_SECRET_FILE, "shared_secret_file"),
        AuthSetting::CaFile => (ENV_CA_FILE, "ca_file"),
    };
    if endpoint.name == DEFAULT_ENDPOINT {
        env.to_string()
    } else {
        format!("{key} of endpoint \"{}\" in endpoints.toml", endpoint.name)
    }
}

/// Why no bearer could be had. Each names the setting, not the path.
#[derive(Debug, thiserror::Error)]
pub enum RemoteAuthError {
    #[error("the file {setting} names cannot be read ({reason})")]
    Unreadable { setting: String, reason: String },
    #[error("the file {setting} names is empty")]
    Empty { setting: String },
    #[error("the file {setting} names is not UTF-8 text, as Codex requires")]
    NotText { setting: String },
    #[error(
        "the shared secret in the file {setting} names is {len} bytes; Codex requires at least {MIN_SHARED_SECRET_BYTES}"
    )]
    SecretTooShort { setting: String, len: usize },
    #[error("could not sign a token with the secret {setting} names: {reason}")]
    Mint { setting: String, reason: String },
}

/// The claims Codex's signed-bearer check reads.
#[derive(Debug, Serialize)]
struct Claims<'a> {
    iat: i64,
    exp: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    iss: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    aud: Option<&'a str>,
}

/// The `Authorization: Bearer` value for one connection to `endpoint`, or
/// `None` when it takes none. Reads the file each time (a rotated secret is
/// picked up by the next connection); blocking, but a few hundred bytes.
pub fn bearer_for(endpoint: &RemoteEndpoint) -> Result<Option<String>, RemoteAuthError> {
    match &endpoint.auth {
        RemoteAuth::None => Ok(None),
        RemoteAuth::CapabilityToken { file } => {
            read_trimmed(file, setting_name(endpoint, AuthSetting::TokenFile)).map(Some)
        }
        RemoteAuth::SignedBearer {
            secret_file,
            issuer,
            audience,
        } => {
            let setting = setting_name(endpoint, AuthSetting::SharedSecretFile);
            let secret = read_trimmed(secret_file, setting.clone())?;
            if secret.len() < MIN_SHARED_SECRET_BYTES {
                return Err(RemoteAuthError::SecretTooShort {
                    setting,
                    len: secret.len(),
                });
            }
            let now = time::OffsetDateTime::now_utc().unix_timestamp();
            mint(
                secret.as_bytes(),
                now,
                issuer.as_deref(),
                audience.as_deref(),
            )
            .map(Some)
            .map_err(|error| RemoteAuthError::Mint {
                setting,
                reason: error.to_string(),
            })
        }
    }
}

fn mint(
    secret: &[u8],
    now: i64,
    issuer: Option<&str>,
    audience: Option<&str>,
) -> Result<String, jsonwebtoken::errors::Error> {
    let claims = Claims {
        iat: now,
        exp: now + JWT_LIFETIME_SECS,
        iss: issuer,
        aud: audience,
    };
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret),
    )
}

/// The file's text without surrounding whitespace, as Codex reads it. The
/// io error's kind is kept (it says "not found" or "permission denied");
/// its message would not carry the path anyway, but the kind is enough.
fn read_trimmed(path: &Path, setting: String) -> Result<String, RemoteAuthError> {
    let bytes = std::fs::read(path).map_err(|error| RemoteAuthError::Unreadable {
        setting: setting.clone(),
        reason: error.kind().to_string(),
    })?;
    let text = String::from_utf8(bytes).map_err(|_| RemoteAuthError::NotText {
        setting: setting.clone(),
    })?;
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(RemoteAuthError::Empty { setting });
    }
    Ok(trimmed.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{DecodingKey, Validation};

    const SECRET: &str = "0123456789abcdef0123456789abcdef-shared";

    fn endpoint(name: &str, auth: RemoteAuth) -> RemoteEndpoint {
        RemoteEndpoint {
            name: name.to_string(),
            url: "ws://10.0.0.2:4500".to_string(),
            auth,
            ca_file: None,
        }
    }

    #[derive(Debug, serde::Deserialize)]
    struct Decoded {
        iat: i64,
        exp: i64,
        iss: Option<String>,
        aud: Option<String>,
    }

    #[test]
    fn a_minted_token_decodes_with_the_trimmed_secret_and_carries_the_claims() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("secret");
        // Codex trims the file; a trailing newline (echo > file) must not
        // change the key.
        std::fs::write(&file, format!("  {SECRET}\n")).unwrap();
        let auth = RemoteAuth::SignedBearer {
            secret_file: file,
            issuer: Some("sidecar".into()),
            audience: Some("box".into()),
        };
        let before = time::OffsetDateTime::now_utc().unix_timestamp();
        let token = bearer_for(&endpoint(DEFAULT_ENDPOINT, auth.clone()))
            .unwrap()
            .unwrap();
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&["sidecar"]);
        validation.set_audience(&["box"]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        let decoded = jsonwebtoken::decode::<Decoded>(
            &token,
            &DecodingKey::from_secret(SECRET.as_bytes()),
            &validation,
        )
        .unwrap()
        .claims;
        assert_eq!(decoded.iss.as_deref(), Some("sidecar"));
        assert_eq!(decoded.aud.as_deref(), Some("box"));
        assert!(decoded.iat >= before && decoded.iat <= before + 5);
        assert_eq!(decoded.exp - decoded.iat, JWT_LIFETIME_SECS);

        // A wrong key does not verify it.
        let wrong = jsonwebtoken::decode::<Decoded>(
            &token,
            &DecodingKey::from_secret(b"another-secret-another-secret-xx"),
            &validation,
        );
        assert!(wrong.is_err());
    }

    #[test]
    fn without_issuer_or_audience_the_claims_are_left_out() {
        let token = mint(SECRET.as_bytes(), 1_000, None, None).unwrap();
        let mut validation = Validation::new(Algorithm::HS256);
        validation.validate_exp = false;
        validation.validate_aud = false;
        let decoded = jsonwebtoken::decode::<Decoded>(
            &token,
            &DecodingKey::from_secret(SECRET.as_bytes()),
            &validation,
        )
        .unwrap()
        .claims;
        assert_eq!((decoded.iss, decoded.aud), (None, None));
        assert_eq!(decoded.exp, 1_000 + JWT_LIFETIME_SECS);
    }

    #[test]
    fn a_capability_token_is_read_trimmed_and_none_sends_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "abc123\n").unwrap();
        let auth = RemoteAuth::CapabilityToken { file };
        assert_eq!(
            bearer_for(&endpoint(DEFAULT_ENDPOINT, auth)).unwrap(),
            Some("abc123".to_string())
        );
        assert_eq!(
            bearer_for(&endpoint(DEFAULT_ENDPOINT, RemoteAuth::None)).unwrap(),
            None
        );
    }

    #[test]
    fn errors_name_the_setting_and_never_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nowhere-secret");
        let short = dir.path().join("short-secret");
        std::fs::write(&short, "too short\n").unwrap();
        let empty = dir.path().join("empty-token");
        std::fs::write(&empty, " \n").unwrap();
        let signed = |secret_file| RemoteAuth::SignedBearer {
            secret_file,
            issuer: None,
            audience: None,
        };
        let cases = [
            (DEFAULT_ENDPOINT, signed(missing), ENV_SHARED_SECRET_FILE),
            (DEFAULT_ENDPOINT, signed(short), ENV_SHARED_SECRET_FILE),
            (
                DEFAULT_ENDPOINT,
                RemoteAuth::CapabilityToken {
                    file: empty.clone(),
                },
                ENV_TOKEN_FILE,
            ),
            (
                "buildbox",
                RemoteAuth::CapabilityToken { file: empty },
                "token_file of endpoint \"buildbox\" in endpoints.toml",
            ),
        ];
        for (name, auth, setting) in cases {
            let message = bearer_for(&endpoint(name, auth)).unwrap_err().to_string();
            assert!(message.contains(setting), "{message}");
            assert!(!message.contains(dir.path().to_str().unwrap()), "{message}");
        }
    }
}
