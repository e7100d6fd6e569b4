//! One host's sshd keys: an ed25519, an RSA (3072 bits) and an ECDSA (nistp256)
//! key, generated with RustCrypto's `ssh-key` from the OS's random source, and the
//! files sshd expects under `/etc/ssh`.
//!
//! Private keys are in the OpenSSH format with no passphrase, as `ssh-keygen -A`
//! writes them; each `.pub` file is one `TYPE BASE64 root@HOST` line.

use ssh_key::private::{EcdsaKeypair, Ed25519Keypair, KeypairData, RsaKeypair};
use ssh_key::rand_core::OsRng;
use ssh_key::{EcdsaCurve, LineEnding, PrivateKey};
use zeroize::Zeroizing;

use super::error::{KeyStoreError, Result};

/// The directory of the key files in a root tree, relative to `/`.
pub const SSH_DIR: &str = "etc/ssh";

/// The size of generated RSA keys, in bits.
pub const RSA_BITS: usize = 3072;

/// Mode of a private key file.
pub const PRIVATE_MODE: u32 = 0o600;

/// Mode of a public key file.
pub const PUBLIC_MODE: u32 = 0o644;

/// The three key types sshd is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum KeyKind {
    /// `ssh-ed25519`.
    Ed25519,
    /// `ecdsa-sha2-nistp256`.
    Ecdsa,
    /// `ssh-rsa`, 3072 bits.
    Rsa,
}

impl KeyKind {
    /// Every kind, in the order of [`HostKeys::files`].
    pub const ALL: [KeyKind; 3] = [KeyKind::Ed25519, KeyKind::Ecdsa, KeyKind::Rsa];

    /// The name in file names and in the store (`ed25519`, `ecdsa`, `rsa`).
    pub fn name(self) -> &'static str {
        match self {
            KeyKind::Ed25519 => "ed25519",
            KeyKind::Ecdsa => "ecdsa",
            KeyKind::Rsa => "rsa",
        }
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

    fn generate(self) -> std::result::Result<KeypairData, ssh_key::Error> {
        let mut rng = OsRng;
        Ok(match self {
            KeyKind::Ed25519 => Ed25519Keypair::random(&mut rng).into(),
            KeyKind::Ecdsa => EcdsaKeypair::random(&mut rng, EcdsaCurve::NistP256)?.into(),
            KeyKind::Rsa => RsaKeypair::random(&mut rng, RSA_BITS)?.into(),
        })
    }

    fn matches(self, key: &PrivateKey) -> bool {
        match self {
            KeyKind::Ed25519 => key.key_data().is_ed25519(),
            KeyKind::Ecdsa => matches!(
                key.key_data().ecdsa(),
                Some(k) if k.curve() == EcdsaCurve::NistP256
            ),
            KeyKind::Rsa => key.key_data().is_rsa(),
        }
    }
}

/// One key: the private key in OpenSSH format and its public line.
struct HostKey {
    kind: KeyKind,
    private: Zeroizing<String>,
    public: String,
}

impl HostKey {
    fn from_private(kind: KeyKind, key: &PrivateKey) -> std::result::Result<Self, ssh_key::Error> {
        let private = key.to_openssh(LineEnding::LF)?;
        let public = format!("{}\n", key.public_key().to_openssh()?);
        Ok(HostKey {
            kind,
            private,
            public,
        })
    }
}

/// A file to write under `/etc/ssh` of a conffs tree. Its `Debug` shows the name,
/// the mode and the size, never the contents.
#[derive(Clone, Copy)]
pub struct KeyFile<'a> {
    /// The file name, relative to `/etc/ssh` (see [`SSH_DIR`]).
    pub path: &'static str,
    /// The contents.
    pub contents: &'a [u8],
    /// The permission bits: [`PRIVATE_MODE`] or [`PUBLIC_MODE`].
    pub mode: u32,
}

impl std::fmt::Debug for KeyFile<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyFile")
            .field("path", &self.path)
            .field("mode", &format_args!("{:04o}", self.mode))
            .field("len", &self.contents.len())
            .finish()
    }
}

/// The sshd host keys of one host. Its `Debug` shows the host and the public keys
/// only; it has no serialized form outside the key store.
pub struct HostKeys {
    host: String,
    keys: [HostKey; 3],
}

impl HostKeys {
    /// Generates the three keys of `host`, each commented `root@HOST`.
    pub(super) fn generate(host: &str) -> Result<Self> {
        check_host(host)?;
        let generate = |kind: KeyKind| {
            kind.generate()
                .and_then(|data| PrivateKey::new(data, comment(host)))
                .and_then(|key| HostKey::from_private(kind, &key))
                .map_err(|source| KeyStoreError::Generate {
                    host: host.to_owned(),
                    kind: kind.name(),
                    source,
                })
        };
        Ok(HostKeys {
            host: host.to_owned(),
            keys: [
                generate(KeyKind::Ed25519)?,
                generate(KeyKind::Ecdsa)?,
                generate(KeyKind::Rsa)?,
            ],
        })
    }

    /// Rebuilds the keys of `host` from their stored private keys, given in
    /// [`KeyKind::ALL`] order; `Err(kind)` names the first one that is invalid.
    pub(super) fn from_stored(
        host: &str,
        [ed25519, ecdsa, rsa]: [&str; 3],
    ) -> std::result::Result<Self, KeyKind> {
        let parse = |kind: KeyKind, pem: &str| {
            PrivateKey::from_openssh(pem)
                .ok()
                .filter(|key| kind.matches(key) && !key.is_encrypted())
                .and_then(|key| HostKey::from_private(kind, &key).ok())
                .ok_or(kind)
        };
        Ok(HostKeys {
            host: host.to_owned(),
            keys: [
                parse(KeyKind::Ed25519, ed25519)?,
                parse(KeyKind::Ecdsa, ecdsa)?,
                parse(KeyKind::Rsa, rsa)?,
            ],
        })
    }

    /// The host these keys belong to.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The six files for `/etc/ssh`: each private key (mode 0600) then its `.pub`
    /// (mode 0644), ed25519, ecdsa, rsa.
    pub fn files(&self) -> Vec<KeyFile<'_>> {
        self.keys
            .iter()
            .flat_map(|key| {
                [
                    KeyFile {
                        path: key.kind.private_file(),
                        contents: key.private.as_bytes(),
                        mode: PRIVATE_MODE,
                    },
                    KeyFile {
                        path: key.kind.public_file(),
                        contents: key.public.as_bytes(),
                        mode: PUBLIC_MODE,
                    },
                ]
            })
            .collect()
    }

    /// The public key line (`TYPE BASE64 root@HOST`, no newline) of one kind, e.g.
    /// for a `known_hosts` file.
    pub fn public_key(&self, kind: KeyKind) -> &str {
        self.key(kind).public.trim_end()
    }

    /// The private key of one kind, in OpenSSH format: for the store only.
    pub(super) fn private_key(&self, kind: KeyKind) -> &str {
        &self.key(kind).private
    }

    fn key(&self, kind: KeyKind) -> &HostKey {
        self.keys
            .iter()
            .find(|key| key.kind == kind)
            .expect("a HostKeys holds every kind")
    }
}

impl std::fmt::Debug for HostKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut map = f.debug_struct("HostKeys");
        map.field("host", &self.host);
        for key in &self.keys {
            map.field(key.kind.name(), &key.public.trim_end());
        }
        map.finish_non_exhaustive()
    }
}

/// The comment of a host's keys.
fn comment(host: &str) -> String {
    format!("root@{host}")
}

/// Checks that `host` can name keys: not empty, no whitespace or control characters.
pub(super) fn check_host(host: &str) -> Result<()> {
    if host.is_empty() || host.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(KeyStoreError::InvalidHost {
            host: host.to_owned(),
        });
    }
    Ok(())
}
