//! The three kinds of sshd host key a host gets, their file names under
//! `/etc/ssh`, and how new ones are made: the original's types and sizes
//! (`vauban-backend.sh`, `vault_put_sshd_keys`: `ssh-keygen -t ed25519`,
//! `-t rsa -b 4096`, `-t ecdsa -b 384`), generated with RustCrypto's `ssh-key`
//! from the OS's random source.
//!
//! Keys already kept are read whatever their size or curve (vauban made RSA
//! 3072 and ECDSA P-256 keys before, the original's local engine's `ssh-keygen
//! -A` too): a host keeps its keys, only new ones follow these sizes.

use ssh_key::private::{EcdsaKeypair, Ed25519Keypair, KeypairData, RsaKeypair};
use ssh_key::rand_core::OsRng;
use ssh_key::EcdsaCurve;

/// The size of generated RSA keys, in bits.
pub const RSA_BITS: usize = 4096;

/// The curve of generated ECDSA keys.
pub const ECDSA_CURVE: EcdsaCurve = EcdsaCurve::NistP384;

/// The three key types sshd is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum KeyKind {
    /// `ssh-ed25519`.
    Ed25519,
    /// `ecdsa-sha2-nistp384` when made here; any NIST curve when kept or imported.
    Ecdsa,
    /// `ssh-rsa`, 4096 bits when made here; any size when kept or imported.
    Rsa,
}

impl KeyKind {
    /// Every kind, in the order of [`super::HostKeys::files`].
    pub const ALL: [KeyKind; 3] = [KeyKind::Ed25519, KeyKind::Ecdsa, KeyKind::Rsa];

    /// The name in file names and in the store (`ed25519`, `ecdsa`, `rsa`).
    pub fn name(self) -> &'static str {
        match self {
            KeyKind::Ed25519 => "ed25519",
            KeyKind::Ecdsa => "ecdsa",
            KeyKind::Rsa => "rsa",
        }
    }

    /// The kind named `name` (`ed25519`, `ecdsa`, `rsa`).
    pub fn from_name(name: &str) -> Option<KeyKind> {
        KeyKind::ALL.into_iter().find(|kind| kind.name() == name)
    }

    /// The private key's file name under `/etc/ssh`.
    pub fn private_file(self) -> &'static str {
        match self {
            KeyKind::Ed25519 => "ssh_host_ed25519_key",
            KeyKind::Ecdsa => "ssh_host_ecdsa_key",
            KeyKind::Rsa => "ssh_host_rsa_key",
        }
    }

    /// The public key's file name under `/etc/ssh`.
    pub fn public_file(self) -> &'static str {
        match self {
            KeyKind::Ed25519 => "ssh_host_ed25519_key.pub",
            KeyKind::Ecdsa => "ssh_host_ecdsa_key.pub",
            KeyKind::Rsa => "ssh_host_rsa_key.pub",
        }
    }

    /// A new key of this kind.
    pub(super) fn generate(self) -> std::result::Result<KeypairData, ssh_key::Error> {
        let mut rng = OsRng;
        Ok(match self {
            KeyKind::Ed25519 => Ed25519Keypair::random(&mut rng).into(),
            KeyKind::Ecdsa => EcdsaKeypair::random(&mut rng, ECDSA_CURVE)?.into(),
            KeyKind::Rsa => RsaKeypair::random(&mut rng, RSA_BITS)?.into(),
        })
    }

    /// Whether `key` is of this kind (any size, any curve).
    pub(super) fn matches(self, key: &ssh_key::public::KeyData) -> bool {
        match self {
            KeyKind::Ed25519 => key.is_ed25519(),
            KeyKind::Ecdsa => key.ecdsa().is_some(),
            KeyKind::Rsa => key.is_rsa(),
        }
    }
}

impl std::fmt::Display for KeyKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for KeyKind {
    type Err = String;

    fn from_str(name: &str) -> std::result::Result<Self, String> {
        KeyKind::from_name(name)
            .ok_or_else(|| format!("unknown key type {name:?} (ed25519, ecdsa or rsa)"))
    }
}
