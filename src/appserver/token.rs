//! The capability token that `codex app-server --ws-auth capability-token`
//! checks on every WebSocket upgrade.

use std::fmt;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// 32 random bytes: as strong as the key of the session it protects.
const TOKEN_BYTES: usize = 32;

/// Owner-only: anyone who can read the token can drive Codex as this user.
const TOKEN_FILE_MODE: u32 = 0o600;

/// A bearer token. Its `Debug` never prints the secret, so it cannot leak
/// into logs by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct CapabilityToken(String);

impl fmt::Debug for CapabilityToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CapabilityToken(<redacted>)")
    }
}

impl CapabilityToken {
    /// A fresh random token, hex encoded.
    pub fn generate() -> std::io::Result<CapabilityToken> {
        let mut bytes = [0u8; TOKEN_BYTES];
        getrandom::fill(&mut bytes).map_err(std::io::Error::other)?;
        Ok(CapabilityToken(
            bytes.iter().map(|byte| format!("{byte:02x}")).collect(),
        ))
    }

    /// Wraps a token read from elsewhere (a token file, an env variable).
    pub fn from_secret(secret: impl Into<String>) -> CapabilityToken {
        CapabilityToken(secret.into().trim().to_string())
    }

    pub fn secret(&self) -> &str {
        &self.0
    }

    /// Writes the token to `path`, mode 0600, replacing what was there. The
    /// mode is set before any byte of the secret is written. Never through a
    /// symbolic link (`O_NOFOLLOW`): a link planted there would send the
    /// secret, and our chmod, to a file of the planter's choosing.
    pub fn write_to(&self, path: &Path) -> std::io::Result<()> {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(TOKEN_FILE_MODE)
            .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits())
            .open(path)?;
        // `mode` only applies when the file is created; an old file keeps its
        // permissions unless we tighten them.
        file.set_permissions(std::fs::Permissions::from_mode(TOKEN_FILE_MODE))?;
        file.write_all(self.0.as_bytes())?;
        file.sync_all()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_hex_and_written_owner_only() {
        let first = CapabilityToken::generate().unwrap();
        let second = CapabilityToken::generate().unwrap();
        assert_ne!(first, second);
        assert_eq!(first.secret().len(), TOKEN_BYTES * 2);
        assert!(first.secret().chars().all(|c| c.is_ascii_hexdigit()));
        assert!(!format!("{first:?}").contains(first.secret()));

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "old").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        first.write_to(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), first.secret());

        let outside = dir.path().join("outside");
        std::fs::write(&outside, "public").unwrap();
        let link = dir.path().join("linked-token");
        std::os::unix::fs::symlink(&outside, &link).unwrap();
        assert!(first.write_to(&link).is_err());
        assert_eq!(std::fs::read_to_string(&outside).unwrap(), "public");
    }
}
