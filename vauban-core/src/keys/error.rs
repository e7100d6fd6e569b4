//! The error type of the host-key store. Variants hold the path or the host at
//! fault and never any key material: neither the user's secret nor a host key
//! appears in a message, so an error can be logged or sent in an event.

use std::path::PathBuf;

use super::kind::KeyKind;

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

/// Why a key file is refused (by an import, or in the store). Says nothing of
/// the key itself.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyProblem {
    /// The private key is in a PEM format older than OpenSSH's own.
    LegacyPem,
    /// The private key does not parse (`ssh-key`'s reason).
    Unreadable(String),
    /// The private key has a passphrase (sshd's host keys have none).
    Encrypted,
    /// The private key is not of the kind its file name says.
    WrongType {
        /// The kind of the file name.
        expected: KeyKind,
        /// The key's algorithm.
        found: String,
    },
    /// The `.pub` file does not parse (`ssh-key`'s reason).
    PublicUnreadable(String),
    /// The `.pub` file is not the private key's public half.
    PublicMismatch,
    /// The file is not UTF-8 text.
    NotText,
    /// The file is larger than any key file.
    TooLarge,
}

impl KeyProblem {
    /// Whether the problem is in the `.pub` file rather than the private key's.
    pub fn in_public_file(&self) -> bool {
        matches!(
            self,
            KeyProblem::PublicUnreadable(_) | KeyProblem::PublicMismatch
        )
    }
}

impl std::fmt::Display for KeyProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyProblem::LegacyPem => f.write_str(
                "the key is in the PEM format of OpenSSH before 7.8, which vauban does not \
                 read: rewrite it in the OpenSSH format with `ssh-keygen -p -N '' -f FILE` \
                 (the key and its fingerprint stay the same)",
            ),
            KeyProblem::Unreadable(why) => write!(f, "not an OpenSSH private key ({why})"),
            KeyProblem::Encrypted => {
                f.write_str("the key has a passphrase (sshd's host keys have none)")
            }
            KeyProblem::WrongType { expected, found } => {
                write!(f, "an {found} key where a {expected} key belongs")
            }
            KeyProblem::PublicUnreadable(why) => write!(f, "not an OpenSSH public key ({why})"),
            KeyProblem::PublicMismatch => {
                f.write_str("not the public half of the private key beside it")
            }
            KeyProblem::NotText => f.write_str("not a text file"),
            KeyProblem::TooLarge => f.write_str("too large for a key file"),
        }
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
    /// A key file of an import is refused.
    #[error("{file}: {problem}")]
    BadKeyFile {
        /// The file, or `TARBALL: ENTRY` for an entry of a tarball.
        file: String,
        /// Why.
        problem: KeyProblem,
    },
    /// One half of a key pair of an import is missing.
    #[error("{file}: missing (found {other} without it)")]
    MissingHalf {
        /// The missing file, or `TARBALL: ENTRY`.
        file: String,
        /// The half that is there.
        other: String,
    },
    /// A host of an import lacks a kind of key.
    #[error(
        "{origin}: host {host} has no {kind} key ({file}); vauban gives sshd an ed25519, an \
         ecdsa and an rsa key: add the missing one (ssh-keygen -t {kind} -N '' -f {file})"
    )]
    MissingKind {
        /// Where the host's keys were read.
        origin: String,
        /// The host.
        host: String,
        /// The missing kind.
        kind: KeyKind,
        /// The private key's file name.
        file: &'static str,
    },
    /// A key file name under `etc/ssh` that is no host key vauban keeps.
    #[error(
        "{file}: not a host key vauban keeps (ssh_host_{{ed25519,ecdsa,rsa}}_key and their \
         .pub; DSA and RSA1 keys are left out)"
    )]
    UnknownKeyFile {
        /// The file, or `TARBALL: ENTRY`.
        file: String,
    },
    /// An entry of a key tarball is refused.
    #[error("{tarball}: entry {entry:?}: {reason}")]
    BadTarEntry {
        /// The encrypted tarball.
        tarball: PathBuf,
        /// The entry's name, as in the tarball.
        entry: String,
        /// Why.
        reason: String,
    },
    /// A decrypted key tarball does not read as a tar archive.
    #[error("{tarball}: the decrypted file is not a tar archive")]
    BadTarball {
        /// The encrypted tarball.
        tarball: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// `gpg` cannot be started.
    #[error("cannot run gpg to decrypt {file} (is gnupg installed? apt-get install gnupg)")]
    RunGpg {
        /// The encrypted file.
        file: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// `gpg` failed to decrypt a file.
    #[error("gpg could not decrypt {file} ({status}){}", said(stderr))]
    Gpg {
        /// The encrypted file.
        file: PathBuf,
        /// gpg's exit status.
        status: String,
        /// The end of what gpg wrote on stderr, escaped.
        stderr: String,
    },
    /// The passphrase file of an import is empty.
    #[error("{path}: the passphrase file is empty (its first line is the passphrase)")]
    EmptyPassphrase {
        /// The file.
        path: PathBuf,
    },
    /// An import found no host.
    #[error("{path}: no host keys found ({expected})")]
    NothingToImport {
        /// The directory or file given.
        path: PathBuf,
        /// What was looked for.
        expected: &'static str,
    },
    /// No secret was given and the default identity file does not exist.
    #[error(
        "no key store secret: set ${var} or give a key file; the default, {identity}, does not \
         exist (a build or `vauban keys import` makes it)"
    )]
    NoSecret {
        /// The environment variable read.
        var: &'static str,
        /// The default identity file.
        identity: PathBuf,
    },
    /// Neither `$XDG_…` nor `$HOME` is set, so there is no default path.
    #[error("neither ${var} nor $HOME is set: give the path")]
    NoUserDir {
        /// The XDG variable.
        var: &'static str,
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
            | KeyStoreError::InvalidHost { .. }
            | KeyStoreError::BadKeyFile { .. }
            | KeyStoreError::MissingHalf { .. }
            | KeyStoreError::MissingKind { .. }
            | KeyStoreError::UnknownKeyFile { .. }
            | KeyStoreError::BadTarEntry { .. }
            | KeyStoreError::BadTarball { .. }
            | KeyStoreError::Gpg { .. }
            | KeyStoreError::EmptyPassphrase { .. }
            | KeyStoreError::NothingToImport { .. }
            | KeyStoreError::NoSecret { .. }
            | KeyStoreError::NoUserDir { .. } => Blame::User,
            KeyStoreError::RunGpg { source, .. } => match source.kind() {
                std::io::ErrorKind::NotFound => Blame::Environment,
                kind => Blame::of_io(kind),
            },
            KeyStoreError::ReadSecret { source, .. } | KeyStoreError::Io { source, .. } => {
                Blame::of_io(source.kind())
            }
            KeyStoreError::Generate { .. } | KeyStoreError::Encrypt { .. } => Blame::Internal,
        }
    }
}

/// `; it said: TEXT` when `stderr` is not empty.
fn said(stderr: &str) -> String {
    if stderr.is_empty() {
        String::new()
    } else {
        format!("; it said: {stderr}")
    }
}
