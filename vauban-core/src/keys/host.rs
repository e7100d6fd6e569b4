//! One host's sshd keys (an ed25519, an ECDSA and an RSA key, see [`KeyKind`])
//! and the files sshd expects under `/etc/ssh`.
//!
//! A key is kept as the text of its two files. Made here: the private key in
//! the OpenSSH format with no passphrase, as `ssh-keygen` writes it, and the
//! `.pub` line derived from it (`TYPE BASE64 root@HOST`). Imported: both files
//! byte for byte as the host had them, once checked ([`check_pair`]), so the
//! host's conffs carries the very files it had and no fingerprint changes.

use ssh_key::public::KeyData;
use ssh_key::{HashAlg, LineEnding, PrivateKey, PublicKey};
use zeroize::Zeroizing;

use super::kind::KeyKind;
use crate::error::{Error, Result};
use crate::keys::KeyProblem;

/// The directory of the key files in a root tree, relative to `/`.
pub const SSH_DIR: &str = "etc/ssh";

/// Mode of a private key file.
pub const PRIVATE_MODE: u32 = 0o600;

/// Mode of a public key file.
pub const PUBLIC_MODE: u32 = 0o644;

/// The first line of private key formats older than OpenSSH's own (PKCS#1,
/// SEC1, PKCS#8), which `ssh-key` does not read.
const LEGACY_PEM: [&str; 4] = [
    "-----BEGIN RSA PRIVATE KEY-----",
    "-----BEGIN EC PRIVATE KEY-----",
    "-----BEGIN PRIVATE KEY-----",
    "-----BEGIN DSA PRIVATE KEY-----",
];

/// One key: the text of its two files and its public key, parsed.
struct HostKey {
    kind: KeyKind,
    private: Zeroizing<String>,
    public: String,
    key: PublicKey,
}

impl HostKey {
    /// A key made here or stored without its `.pub`: the `.pub` line is derived.
    fn from_private(kind: KeyKind, key: &PrivateKey) -> std::result::Result<Self, ssh_key::Error> {
        let private = key.to_openssh(LineEnding::LF)?;
        let public = format!("{}\n", key.public_key().to_openssh()?);
        Ok(HostKey {
            kind,
            private,
            public,
            key: key.public_key().clone(),
        })
    }

    /// A key from the text of its files, kept as it is once [`check_pair`] passes.
    fn from_files(
        kind: KeyKind,
        private: Zeroizing<String>,
        public: String,
    ) -> std::result::Result<Self, KeyProblem> {
        let key = check_pair(kind, &private, &public)?;
        Ok(HostKey {
            kind,
            private,
            public,
            key,
        })
    }
}

/// Checks that `private` is an OpenSSH private key of `kind` with no passphrase
/// and that `public` (a `.pub` line) is its public half; returns the public key
/// with the `.pub` file's comment.
pub(super) fn check_pair(
    kind: KeyKind,
    private: &str,
    public: &str,
) -> std::result::Result<PublicKey, KeyProblem> {
    if LEGACY_PEM
        .iter()
        .any(|pem| private.trim_start().starts_with(pem))
    {
        return Err(KeyProblem::LegacyPem);
    }
    // Kept as it is, but read without the blank lines around it, which OpenSSH
    // ignores and `ssh-key` does not (keys written out of Vault by `jq -r`
    // end with two line feeds).
    let trimmed = Zeroizing::new(format!("{}\n", private.trim()));
    let key = read_private(&trimmed).map_err(|e| KeyProblem::Unreadable(e.to_string()))?;
    if key.is_encrypted() {
        return Err(KeyProblem::Encrypted);
    }
    if !kind.matches(key.public_key().key_data()) {
        return Err(KeyProblem::WrongType {
            expected: kind,
            found: key.algorithm().to_string(),
        });
    }
    let public = PublicKey::from_openssh(public.trim())
        .map_err(|e| KeyProblem::PublicUnreadable(e.to_string()))?;
    if public.key_data() != key.public_key().key_data() {
        return Err(KeyProblem::PublicMismatch);
    }
    Ok(public)
}

/// An OpenSSH private key, an ECDSA one with a short scalar too (see
/// `ecdsa_scalar`).
fn read_private(pem: &str) -> std::result::Result<PrivateKey, ssh_key::Error> {
    PrivateKey::from_openssh(pem).or_else(|e| match super::ecdsa_scalar::padded(pem) {
        Some(padded) => PrivateKey::from_openssh(padded.as_bytes()),
        None => Err(e),
    })
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

/// What `ssh-keygen -l` says of a public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyInfo {
    /// The kind.
    pub kind: KeyKind,
    /// The SSH algorithm (`ssh-ed25519`, `ecdsa-sha2-nistp384`, `ssh-rsa`).
    pub algorithm: String,
    /// The size in bits (256 for ed25519, the curve's for ECDSA, the modulus's for RSA).
    pub bits: u32,
    /// The SHA-256 fingerprint, `SHA256:BASE64` as `ssh-keygen -l` prints it.
    pub fingerprint: String,
    /// The comment of the `.pub` file (may hold any character: escape it to print).
    pub comment: String,
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
                .map_err(|source| Error::Generate {
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

    /// Rebuilds the keys of `host` from private keys alone, given in
    /// [`KeyKind::ALL`] order (the store's first format); `Err(kind)` names the
    /// first one that is invalid.
    pub(super) fn from_private_keys(
        host: &str,
        [ed25519, ecdsa, rsa]: [&str; 3],
    ) -> std::result::Result<Self, KeyKind> {
        let parse = |kind: KeyKind, pem: &str| {
            read_private(pem)
                .ok()
                .filter(|key| kind.matches(key.public_key().key_data()) && !key.is_encrypted())
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

    /// The keys of `host` from the text of their files (private, `.pub`), given in
    /// [`KeyKind::ALL`] order and kept byte for byte; `Err` names the first key
    /// that fails [`check_pair`] and why.
    pub(super) fn from_files(
        host: &str,
        [ed25519, ecdsa, rsa]: [(Zeroizing<String>, String); 3],
    ) -> std::result::Result<Self, (KeyKind, KeyProblem)> {
        let pair = |kind: KeyKind, (private, public): (Zeroizing<String>, String)| {
            HostKey::from_files(kind, private, public).map_err(|problem| (kind, problem))
        };
        Ok(HostKeys {
            host: host.to_owned(),
            keys: [
                pair(KeyKind::Ed25519, ed25519)?,
                pair(KeyKind::Ecdsa, ecdsa)?,
                pair(KeyKind::Rsa, rsa)?,
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

    /// The `.pub` line (`TYPE BASE64 COMMENT`, no newline) of one kind: the
    /// `authorized_keys` form.
    pub fn public_key(&self, kind: KeyKind) -> &str {
        self.key(kind).public.trim_end()
    }

    /// The `known_hosts` line of one kind (`HOST TYPE BASE64`), as
    /// `ssh-keyscan HOST` prints it.
    pub fn known_hosts_line(&self, kind: KeyKind) -> String {
        let bare = PublicKey::new(self.key(kind).key.key_data().clone(), "");
        let line = bare
            .to_openssh()
            .expect("a parsed public key encodes again");
        format!("{} {line}", self.host)
    }

    /// Type, size, fingerprint and comment of each key, in [`KeyKind::ALL`] order.
    pub fn info(&self) -> Vec<KeyInfo> {
        self.keys
            .iter()
            .map(|key| KeyInfo {
                kind: key.kind,
                algorithm: key.key.algorithm().to_string(),
                bits: bits(key.key.key_data()),
                fingerprint: key.key.fingerprint(HashAlg::Sha256).to_string(),
                comment: key.key.comment().to_owned(),
            })
            .collect()
    }

    /// Whether `other` holds the same three keys (comments aside).
    pub fn same_keys(&self, other: &HostKeys) -> bool {
        self.keys
            .iter()
            .zip(&other.keys)
            .all(|(a, b)| a.key.key_data() == b.key.key_data())
    }

    /// The private key file of one kind: for the store only.
    pub(super) fn private_key(&self, kind: KeyKind) -> &str {
        &self.key(kind).private
    }

    /// The `.pub` file of one kind, as it is: for the store only.
    pub(super) fn public_file(&self, kind: KeyKind) -> &str {
        &self.key(kind).public
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

/// The size of a public key in bits, as `ssh-keygen -l` counts it.
fn bits(key: &KeyData) -> u32 {
    if let Some(rsa) = key.rsa() {
        let n = rsa.n.as_positive_bytes().unwrap_or_default();
        let leading = n.first().map_or(0, |b| b.leading_zeros());
        return (n.len() as u32 * 8).saturating_sub(leading);
    }
    match key.ecdsa().map(|k| k.curve()) {
        Some(ssh_key::EcdsaCurve::NistP256) => 256,
        Some(ssh_key::EcdsaCurve::NistP384) => 384,
        Some(ssh_key::EcdsaCurve::NistP521) => 521,
        None if key.is_ed25519() => 256,
        None => 0,
    }
}

/// The comment of a host's keys.
fn comment(host: &str) -> String {
    format!("root@{host}")
}

/// Checks that `host` can name keys and files: not empty, not `.` or `..`, no
/// `/`, whitespace or control characters.
pub(super) fn check_host(host: &str) -> Result<()> {
    if host.is_empty()
        || host == "."
        || host == ".."
        || host
            .chars()
            .any(|c| c == '/' || c.is_whitespace() || c.is_control())
    {
        return Err(Error::InvalidHost {
            host: host.to_owned(),
        });
    }
    Ok(())
}
