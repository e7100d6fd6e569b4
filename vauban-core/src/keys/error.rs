//! The error type of the host-key store. Variants hold the path or the host at
//! fault and never any key material: neither the user's secret nor a host key
//! appears in a message, so an error can be logged or sent in an event.

use std::path::PathBuf;

/// Result alias of the key store.
pub type Result<T, E = KeyStoreError> = std::result::Result<T, E>;

/// How a key store is encrypted, or what kind of secret was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretKind {
    /// An age X25519 identity (`AGE-SECRET-KEY-1...`).
    Identity,
    /// A passphrase (age's scrypt recipient).
    Passphrase,
}

impl std::fmt::Display for SecretKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SecretKind::Identity => "an age identity",
            SecretKind::Passphrase => "a passphrase",
        })
    }
}

/// Everything that can go wrong with the host-key store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyStoreError {
    /// The secret given is empty.
    #[error("the key store secret from {origin} is empty")]
    EmptySecret {
        /// Where the secret came from (`$VAUBAN_KEYSTORE_KEY`, a file path, ...).
        origin: String,
    },
    /// The secret looks like an age identity but does not parse as one.
    #[error(
        "the key store secret from {origin} is not a valid age identity (AGE-SECRET-KEY-1...)"
    )]
    InvalidIdentity {
        /// Where the secret came from.
        origin: String,
    },
    /// The environment variable holding the secret is not valid UTF-8.
    #[error("${var} is not valid UTF-8")]
    SecretNotUtf8 {
        /// The variable.
        var: String,
    },
    /// The file holding the secret cannot be read.
    #[error("cannot read the key store secret file {path}")]
    ReadSecret {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The secret does not decrypt the store.
    #[error(
        "{path}: the key given does not match this key store (the store is encrypted with \
         {store}, the key given is {given})"
    )]
    WrongKey {
        /// The store file.
        path: PathBuf,
        /// How the store is encrypted.
        store: SecretKind,
        /// What was given.
        given: SecretKind,
    },
    /// The store's passphrase work factor is far above what this machine does in a second.
    #[error(
        "{path}: the passphrase work factor 2^{required} is too high for this machine \
         (at most 2^{max}); re-encrypt the store with a lower one"
    )]
    ExcessiveWork {
        /// The store file.
        path: PathBuf,
        /// The file's work factor (log2).
        required: u8,
        /// The highest accepted here (log2).
        max: u8,
    },
    /// The store file is not a valid age file, or its plaintext is not a key store.
    #[error("{path}: corrupt key store ({what})")]
    Corrupt {
        /// The store file.
        path: PathBuf,
        /// What is wrong (never includes key material).
        what: String,
    },
    /// A stored private key of a host does not parse, or is of the wrong type.
    #[error("{path}: the stored {kind} key of host {host} is invalid")]
    BadStoredKey {
        /// The store file.
        path: PathBuf,
        /// The host.
        host: String,
        /// The key type (`ed25519`, `rsa`, `ecdsa`).
        kind: &'static str,
    },
    /// A host name cannot name keys (empty, or with whitespace or control characters).
    #[error("invalid host name {host:?} for the key store")]
    InvalidHost {
        /// The host name.
        host: String,
    },
    /// Generating or encoding a key failed.
    #[error("cannot generate the {kind} host key of {host}")]
    Generate {
        /// The host.
        host: String,
        /// The key type.
        kind: &'static str,
        /// The underlying error.
        #[source]
        source: ssh_key::Error,
    },
    /// Encrypting the store failed.
    #[error("{path}: cannot encrypt the key store")]
    Encrypt {
        /// The store file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: Box<age::EncryptError>,
    },
    /// An I/O operation on a path failed.
    #[error("{op} {path}")]
    Io {
        /// What was being done ("read", "lock", "rename", ...).
        op: &'static str,
        /// The path at fault.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

impl KeyStoreError {
    /// An I/O error on `path` while doing `op`.
    pub(crate) fn io(
        op: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| KeyStoreError::Io { op, path, source }
    }
}

impl KeyStoreError {
    /// Who has to act on this error.
    pub fn blame(&self) -> crate::error::Blame {
        use crate::error::Blame;
        match self {
            KeyStoreError::EmptySecret { .. }
            | KeyStoreError::InvalidIdentity { .. }
            | KeyStoreError::SecretNotUtf8 { .. }
            | KeyStoreError::WrongKey { .. }
            | KeyStoreError::ExcessiveWork { .. }
            | KeyStoreError::Corrupt { .. }
            | KeyStoreError::BadStoredKey { .. }
            | KeyStoreError::InvalidHost { .. } => Blame::User,
            KeyStoreError::ReadSecret { source, .. } | KeyStoreError::Io { source, .. } => {
                Blame::of_io(source.kind())
            }
            KeyStoreError::Generate { .. } | KeyStoreError::Encrypt { .. } => Blame::Internal,
        }
    }
}
