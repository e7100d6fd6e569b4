//! Tests of the key store. One store of two hosts is generated once per test run
//! (RSA keys take seconds) and each test works on its own copy of the file.

mod concurrency;
mod errors;
mod host;
mod secret;
mod ssh_keygen;
mod store;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use age::secrecy::ExposeSecret;
use tempfile::TempDir;

use super::{HostKeys, KeySecret, KeyStore};

/// The hosts of the shared store.
pub(super) const HOSTS: [&str; 2] = ["web-1", "web-2"];

/// A file of `/etc/ssh` as plain data: path, contents, mode.
pub(super) type FileData = (String, Vec<u8>, u32);

/// The shared store: its file's bytes, its secret and the files of each host.
pub(super) struct Fixture {
    /// The identity's text, `AGE-SECRET-KEY-1...`.
    pub(super) identity: String,
    pub(super) secret: KeySecret,
    pub(super) ciphertext: Vec<u8>,
    pub(super) files: Vec<Vec<FileData>>,
}

/// The shared store, generated on first use with [`KeyStore::ensure_hosts`].
pub(super) fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.age");
        let identity = age::x25519::Identity::generate();
        let secret = identity_text(&identity);
        let mut store = KeyStore::open(&path, secret.clone()).unwrap();
        assert_eq!(store.ensure_hosts(HOSTS).unwrap(), HOSTS);
        let files = HOSTS.map(|h| files_of(store.get(h).unwrap())).to_vec();
        assert!(store.save().unwrap());
        drop(store);
        Fixture {
            identity: identity.to_string().expose_secret().to_owned(),
            secret,
            ciphertext: std::fs::read(&path).unwrap(),
            files,
        }
    })
}

/// A fresh copy of the shared store: the temp dir and the store file's path.
pub(super) fn store_copy() -> (TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys.age");
    std::fs::write(&path, &fixture().ciphertext).unwrap();
    (dir, path)
}

/// A new random age identity.
pub(super) fn new_identity() -> KeySecret {
    identity_text(&age::x25519::Identity::generate())
}

/// The secret of an age identity, parsed from its text.
pub(super) fn identity_text(identity: &age::x25519::Identity) -> KeySecret {
    KeySecret::identity(identity.to_string().expose_secret()).unwrap()
}

/// A passphrase with a low scrypt work factor, so that tests stay fast.
pub(super) fn passphrase(text: &str) -> KeySecret {
    KeySecret::passphrase(text).unwrap().with_work_factor(10)
}

/// The files of `keys` as plain data.
pub(super) fn files_of(keys: &HostKeys) -> Vec<FileData> {
    keys.files()
        .iter()
        .map(|f| (f.path.to_owned(), f.contents.to_vec(), f.mode))
        .collect()
}

/// The base64 lines (20 characters or more) of the private keys of the shared
/// store that are secret: the OpenSSH format also holds the public key, so lines
/// found in a `.pub` file are left out.
pub(super) fn private_key_lines() -> Vec<String> {
    let files = || fixture().files.iter().flatten();
    let public: Vec<String> = files()
        .filter(|(_, _, mode)| *mode == super::PUBLIC_MODE)
        .map(|(_, contents, _)| String::from_utf8(contents.clone()).unwrap())
        .collect();
    files()
        .filter(|(_, _, mode)| *mode == super::PRIVATE_MODE)
        .flat_map(|(_, contents, _)| {
            let text = String::from_utf8(contents.clone()).unwrap();
            text.lines().map(str::to_owned).collect::<Vec<_>>()
        })
        .filter(|line| !line.starts_with("-----") && line.len() >= 20)
        .filter(|line| !public.iter().any(|p| p.contains(line.as_str())))
        .collect()
}

/// Runs `ssh-keygen ARGS FILE` and returns its stdout, panicking with the
/// install hint if it is missing.
pub(in crate::keys) fn ssh_keygen(args: &[&str], file: &Path) -> String {
    let out = Command::new("ssh-keygen")
        .args(args)
        .arg(file)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run ssh-keygen ({e}): install it with `apt-get install openssh-client`")
        });
    assert!(
        out.status.success(),
        "ssh-keygen {args:?} {}: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}
