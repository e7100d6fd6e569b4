//! The key store: one age-encrypted file holding every host's sshd keys, so a
//! rebuilt host keeps its identity.
//!
//! Inside the age file is a JSON document `{"version":2,"hosts":{HOST:{"ed25519":
//! {"private":TEXT,"public":TEXT},"ecdsa":...,"rsa":...}}}`: the text of each
//! key's two files, as a conffs gets them (an imported key keeps its files byte
//! for byte). Version 1, still read, held the private keys alone
//! (`{"ed25519":PEM,...}`), the `.pub` lines derived from them. That form is
//! private to this module: nothing else can serialize a [`HostKeys`].
//!
//! Concurrency: [`KeyStore::open`] takes an exclusive `flock` on the sibling
//! `NAME.lock` file and the store keeps it until dropped, so a second `vauban
//! build` opening the same store waits for the first to save and drop it, then
//! reads what the first saved: keys made by one process are never lost by the
//! other. Open the store late and drop it right after [`KeyStore::save`].

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::atomic::write_atomically;
use super::cipher;
use super::host::{check_host, HostKeys};
use super::kind::KeyKind;
use super::lock::{lock_path, StoreLock};
use super::parallel::generate_all;
use super::secret::KeySecret;
use crate::error::{Error, IoContext, Result};

/// The version of the plaintext format written.
const FORMAT_VERSION: u32 = 2;

/// The start of the plaintext, to learn its version before reading the rest.
#[derive(Deserialize)]
struct Header {
    version: u32,
}

/// The plaintext of the store file; `H` is the form of a host's keys.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredFile<H> {
    version: u32,
    hosts: BTreeMap<String, H>,
}

/// One host's keys: `K` is a private key's text (version 1) or a [`StoredKey`]
/// (version 2).
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredHost<K> {
    ed25519: K,
    ecdsa: K,
    rsa: K,
}

/// The text of a key's two files; `S` is `&str` to write, a zeroizing `String`
/// to read.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredKey<S> {
    private: S,
    public: S,
}

/// An open key store, locked against other processes until dropped.
///
/// Its `Debug` shows the path and the host names only.
pub struct KeyStore {
    path: PathBuf,
    secret: KeySecret,
    hosts: BTreeMap<String, HostKeys>,
    changed: bool,
    _lock: StoreLock,
}

/// The store's file name under the user's data directory.
const DEFAULT_FILE: &str = "vauban-keys/hostkeys.age";

impl KeyStore {
    /// The store file used when none is given: `$XDG_DATA_HOME/vauban-keys/hostkeys.age`
    /// (else under `~/.local/share`).
    pub fn default_path() -> Result<PathBuf> {
        vauban_oci::dirs::UserDir::Data
            .path()
            .map(|dir| dir.join(DEFAULT_FILE))
            .ok_or(Error::NoDefaultPath {
                var: "XDG_DATA_HOME",
            })
    }

    /// Opens the store file at `path` with the user's `secret`, waiting for any
    /// other process that holds it. A missing file is an empty store (written on
    /// the first [`save`](Self::save)); a missing parent directory is created
    /// private (0700).
    ///
    /// Decrypts once: microseconds with an identity, about a second with a
    /// passphrase. A secret that does not open the file is
    /// [`Error::WrongKey`]; a damaged file is [`Error::CorruptKeyStore`].
    pub fn open(path: impl Into<PathBuf>, secret: KeySecret) -> Result<Self> {
        let path = path.into();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            crate::private::create_dirs(dir).at("create", dir)?;
        }
        let lock = StoreLock::acquire(&lock_path(&path))?;
        let hosts = match fs::read(&path) {
            Ok(ciphertext) => load(&secret, &ciphertext, &path)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(Error::io("read", &path, e)),
        };
        tracing::debug!(path = %path.display(), hosts = hosts.len(), "opened the key store");
        Ok(KeyStore {
            path,
            secret,
            hosts,
            changed: false,
            _lock: lock,
        })
    }

    /// The store file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The keys of `host`, generated now if the store has none (the 4096-bit RSA
    /// key takes seconds; see [`ensure_hosts`](Self::ensure_hosts)). New keys are
    /// kept only once [`save`](Self::save)d.
    pub fn host_keys(&mut self, host: &str) -> Result<&HostKeys> {
        check_host(host)?;
        if !self.hosts.contains_key(host) {
            let keys = HostKeys::generate(host)?;
            tracing::info!(host, store = %self.path.display(), "generated sshd host keys");
            self.hosts.insert(host.to_owned(), keys);
            self.changed = true;
        }
        Ok(&self.hosts[host])
    }

    /// Generates the keys of every host of `hosts` that has none, on all cores;
    /// returns the hosts that got keys. Call it before a build's per-host steps
    /// so that the first build of a fleet does not make its RSA keys one by one.
    /// New keys are kept only once [`save`](Self::save)d, even when one fails.
    pub fn ensure_hosts<'a>(
        &mut self,
        hosts: impl IntoIterator<Item = &'a str>,
    ) -> Result<Vec<String>> {
        let mut missing: Vec<&str> = Vec::new();
        for host in hosts {
            check_host(host)?;
            if !self.hosts.contains_key(host) && !missing.contains(&host) {
                missing.push(host);
            }
        }
        let mut first_error = None;
        let mut generated = Vec::new();
        for (host, keys) in missing.iter().zip(generate_all(&missing)) {
            match keys {
                Ok(keys) => {
                    self.hosts.insert((*host).to_owned(), keys);
                    self.changed = true;
                    generated.push((*host).to_owned());
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        if !generated.is_empty() {
            tracing::info!(hosts = ?generated, store = %self.path.display(), "generated sshd host keys");
        }
        first_error.map_or(Ok(generated), Err)
    }

    /// The keys of `host` if the store has them; never generates.
    pub fn get(&self, host: &str) -> Option<&HostKeys> {
        self.hosts.get(host)
    }

    /// The hosts that have keys, sorted.
    pub fn hosts(&self) -> impl Iterator<Item = &str> {
        self.hosts.keys().map(String::as_str)
    }

    /// Puts `keys` in the store in place of any the host had (returned). Takes
    /// effect on [`save`](Self::save).
    pub(super) fn insert(&mut self, keys: HostKeys) -> Option<HostKeys> {
        self.changed = true;
        self.hosts.insert(keys.host().to_owned(), keys)
    }

    /// Forgets the keys of `host` (a rebuild then gives it new ones); `true` if it
    /// had some. Takes effect on [`save`](Self::save).
    pub fn remove(&mut self, host: &str) -> bool {
        let removed = self.hosts.remove(host).is_some();
        self.changed |= removed;
        removed
    }

    /// Encrypts the store with `secret` from the next [`save`](Self::save) on:
    /// to change its key, or to move from a passphrase to an identity.
    pub fn set_secret(&mut self, secret: KeySecret) {
        self.secret = secret;
        self.changed = true;
    }

    /// Whether keys were generated or removed, or the secret changed, since the
    /// last open or save.
    pub fn is_changed(&self) -> bool {
        self.changed
    }

    /// Encrypts and writes the store if anything changed (temp file, fsync,
    /// rename; mode 0600 whatever the umask); `true` if it wrote. Encrypts once:
    /// about a second with a passphrase. The lock stays held until drop.
    pub fn save(&mut self) -> Result<bool> {
        if !self.changed {
            return Ok(false);
        }
        let stored = StoredFile {
            version: FORMAT_VERSION,
            hosts: self
                .hosts
                .iter()
                .map(|(host, keys)| {
                    let key = |kind| StoredKey {
                        private: keys.private_key(kind),
                        public: keys.public_file(kind),
                    };
                    let stored = StoredHost {
                        ed25519: key(KeyKind::Ed25519),
                        ecdsa: key(KeyKind::Ecdsa),
                        rsa: key(KeyKind::Rsa),
                    };
                    (host.clone(), stored)
                })
                .collect(),
        };
        // Sized up front so that the plaintext is not copied around by reallocation.
        let mut plaintext = Zeroizing::new(Vec::with_capacity(8192 * (self.hosts.len() + 1)));
        serde_json::to_writer(&mut *plaintext, &stored)
            .expect("serializing strings to memory cannot fail");
        let ciphertext = cipher::encrypt(&self.secret, &plaintext, &self.path)?;
        write_atomically(&self.path, &ciphertext)?;
        self.changed = false;
        tracing::debug!(path = %self.path.display(), hosts = self.hosts.len(), "saved the key store");
        Ok(true)
    }
}

impl Drop for KeyStore {
    fn drop(&mut self) {
        if self.changed {
            tracing::warn!(
                path = %self.path.display(),
                "the key store was closed without saving: its new host keys are lost"
            );
        }
    }
}

impl std::fmt::Debug for KeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyStore")
            .field("path", &self.path)
            .field("hosts", &self.hosts.keys().collect::<Vec<_>>())
            .field("changed", &self.changed)
            .finish_non_exhaustive()
    }
}

/// Decrypts and parses the store file read from `path`.
fn load(secret: &KeySecret, ciphertext: &[u8], path: &Path) -> Result<BTreeMap<String, HostKeys>> {
    let corrupt = |what: String| Error::CorruptKeyStore {
        path: path.to_owned(),
        what,
    };
    // serde_json's messages may quote the text at fault: keep only where it is.
    let bad_json = |e: serde_json::Error| {
        corrupt(format!(
            "bad contents at line {}, column {}",
            e.line(),
            e.column()
        ))
    };
    let plaintext = cipher::decrypt(secret, ciphertext, path)?;
    let header: Header = serde_json::from_slice(&plaintext).map_err(bad_json)?;
    let bad_key = |host: &str, kind: KeyKind| Error::BadStoredKey {
        path: path.to_owned(),
        host: host.to_owned(),
        kind: kind.name(),
    };
    let mut hosts = BTreeMap::new();
    match header.version {
        1 => {
            let stored: StoredFile<StoredHost<Zeroizing<String>>> =
                serde_json::from_slice(&plaintext).map_err(bad_json)?;
            for (host, keys) in &stored.hosts {
                check_host(host).map_err(|_| corrupt(format!("invalid host name {host:?}")))?;
                let keys =
                    HostKeys::from_private_keys(host, [&keys.ed25519, &keys.ecdsa, &keys.rsa])
                        .map_err(|kind| bad_key(host, kind))?;
                hosts.insert(host.clone(), keys);
            }
        }
        2 => {
            let stored: StoredFile<StoredHost<StoredKey<Zeroizing<String>>>> =
                serde_json::from_slice(&plaintext).map_err(bad_json)?;
            for (host, keys) in stored.hosts {
                check_host(&host).map_err(|_| corrupt(format!("invalid host name {host:?}")))?;
                let pair = |key: StoredKey<Zeroizing<String>>| {
                    (key.private, key.public.as_str().to_owned())
                };
                let keys = HostKeys::from_files(
                    &host,
                    [pair(keys.ed25519), pair(keys.ecdsa), pair(keys.rsa)],
                )
                .map_err(|(kind, _)| bad_key(&host, kind))?;
                hosts.insert(host, keys);
            }
        }
        version => return Err(corrupt(format!("unknown format version {version}"))),
    }
    Ok(hosts)
}
