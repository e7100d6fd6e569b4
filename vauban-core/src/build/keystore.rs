//! Where the sshd host-key store of a build is, and its secret, as vauban
//! finds them when nobody says: the store at
//! `$XDG_DATA_HOME/vauban-keys/hostkeys.age`; the secret from a file given,
//! else `$VAUBAN_KEYSTORE_KEY`, else an age identity at
//! `$XDG_CONFIG_HOME/vauban/keystore-key.txt`, made on first use (back it
//! up: the hosts' keys cannot be read without it). An embedder and the CLI
//! find them the same way.

use std::path::{Path, PathBuf};

use vauban_oci::dirs::UserDir;

use crate::error::{Error, Result};
use crate::keys::KeySecret;

/// The key store's default path: `$XDG_DATA_HOME/vauban-keys/hostkeys.age`
/// (else under `~/.local/share`).
pub fn default_keystore() -> Result<PathBuf> {
    Ok(UserDir::Data
        .path()
        .ok_or(Error::NoUserDir { what: "data" })?
        .join("vauban-keys/hostkeys.age"))
}

/// Where the key store's secret is made when none is given:
/// `$XDG_CONFIG_HOME/vauban/keystore-key.txt` (else under `~/.config`).
pub fn default_key_file() -> Result<PathBuf> {
    Ok(UserDir::Config
        .vauban()
        .ok_or(Error::NoUserDir { what: "config" })?
        .join("keystore-key.txt"))
}

/// The key store's secret as found.
#[derive(Debug)]
pub struct FoundSecret {
    /// The secret.
    pub secret: KeySecret,
    /// The identity file made now, if it was: tell the user to keep it.
    pub made: Option<PathBuf>,
}

/// The key store's secret: the file `key_file` when given, else
/// `$VAUBAN_KEYSTORE_KEY`, else [`default_key_file`], made when missing.
pub fn key_secret(key_file: Option<&Path>) -> Result<FoundSecret> {
    if let Some(file) = key_file {
        return Ok(FoundSecret {
            secret: KeySecret::from_file(file)?,
            made: None,
        });
    }
    if let Some(secret) = KeySecret::from_env()? {
        return Ok(FoundSecret { secret, made: None });
    }
    let path = default_key_file()?;
    let (secret, made) = KeySecret::load_or_create_identity(&path)?;
    Ok(FoundSecret {
        secret,
        made: made.then_some(path),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A given file wins over the environment and the default identity.
    #[test]
    fn a_given_file_is_the_secret() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("key.txt");
        std::fs::write(&file, "a passphrase long enough for the test\n").unwrap();
        let found = key_secret(Some(&file)).unwrap();
        assert!(found.made.is_none());
        assert_eq!(found.secret.kind(), crate::keys::SecretKind::Passphrase);
        assert!(default_keystore()
            .unwrap()
            .ends_with("vauban-keys/hostkeys.age"));
        assert!(default_key_file()
            .unwrap()
            .ends_with("vauban/keystore-key.txt"));
    }
}
