//! What the key store's errors say of a secret or a key file, never showing
//! the key itself: [`SecretKind`] and [`KeyProblem`].

use super::kind::KeyKind;

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
