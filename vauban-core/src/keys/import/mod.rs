//! Bringing a site's existing sshd host keys into the key store, so that no
//! host's fingerprint changes when it moves from the original to vauban.
//!
//! The original kept them in two ways (`vauban-backend.sh`):
//! - `vault/HOST.tar.gpg` (its `local` engine): `ssh-keygen -A -f HOST` made
//!   `HOST/etc/ssh/ssh_host_{rsa,ecdsa,ed25519}_key{,.pub}`, `tar cvf HOST.tar
//!   HOST` packed them (entries `HOST/`, `HOST/etc/`, `HOST/etc/ssh/` and the six
//!   files) and `gpg -c` encrypted the tarball with the passphrase
//!   `$VAULTED_SSHD_KEYS_KEY`. Read by [`ImportSource::Gpg`].
//! - Vault KV v2 at `vauban_kv2/sshd/HOST/TYPE` (fields `TYPE` and `TYPE.pub`):
//!   written out as plain files in the layout `HOST/etc/ssh/ssh_host_*`, they
//!   are read by [`ImportSource::Dir`], as is a copy of the hosts' own `/etc/ssh`.
//!
//! Everything is read and checked before the store is touched
//! ([`Imported::read`]): a file that is not a key pair of the kind its name
//! says, a missing half, a tarball entry outside `HOST/etc/ssh/` fail the whole
//! import with an error naming the file. Then [`KeyStore::import`] adds the
//! hosts the store lacks and never changes one it has unless asked to replace
//! it. The files are kept byte for byte: a host's conffs carries what it had.

mod dir;
mod files;
mod gpg;
mod tarball;

#[cfg(test)]
mod tests;

use std::path::Path;

use super::host::HostKeys;
use super::store::KeyStore;
use crate::error::{Error, Result};

/// Where the keys to import are.
#[derive(Debug, Clone, Copy)]
pub enum ImportSource<'a> {
    /// The original's encrypted tarballs: a directory of `HOST.tar.gpg` files (its
    /// `vault/`) or one such file, and the file whose first line is the passphrase
    /// (`$VAULTED_SSHD_KEYS_KEY`). Decrypted by the real `gpg`.
    Gpg {
        /// The directory or file.
        path: &'a Path,
        /// The passphrase file.
        passphrase_file: &'a Path,
    },
    /// Plain key files laid out as `DIR/HOST/etc/ssh/ssh_host_*`.
    Dir(&'a Path),
}

/// A file an import left out, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ignored {
    /// The file, or `TARBALL: ENTRY`.
    pub file: String,
    /// Why it was left out.
    pub reason: &'static str,
}

/// Keys read and checked for an import, not yet in a store. Its `Debug` shows
/// hosts and public keys only.
#[derive(Debug)]
pub struct Imported {
    hosts: Vec<HostKeys>,
    ignored: Vec<Ignored>,
}

impl Imported {
    /// Reads and checks every host's keys from `source`; the first problem fails
    /// it all, with an error naming the file.
    pub fn read(source: ImportSource<'_>) -> Result<Self> {
        let ((found, mut ignored), path, expected) = match source {
            ImportSource::Gpg {
                path,
                passphrase_file,
            } => (
                gpg::read(path, passphrase_file)?,
                path,
                "no HOST.tar.gpg in it",
            ),
            ImportSource::Dir(dir) => (dir::read(dir)?, dir, "no HOST/etc/ssh/ssh_host_* in it"),
        };
        if found.is_empty() {
            return Err(Error::NothingToImport {
                path: path.to_owned(),
                expected,
            });
        }
        let mut hosts = Vec::with_capacity(found.len());
        for files in found {
            let (keys, left_out) = files.finish()?;
            hosts.push(keys);
            ignored.extend(left_out);
        }
        Ok(Imported { hosts, ignored })
    }

    /// The hosts read, sorted.
    pub fn hosts(&self) -> impl Iterator<Item = &str> {
        self.hosts.iter().map(HostKeys::host)
    }
}

/// Why a host of an import was not put in the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    /// The store has these very files for it.
    SameKeys,
    /// The store has other keys for it, which it keeps (the import did not ask
    /// to replace them).
    OtherKeys,
}

impl std::fmt::Display for SkipReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SkipReason::SameKeys => "already in the store with these keys",
            SkipReason::OtherKeys => "already in the store with other keys, which are kept",
        })
    }
}

/// What an import did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ImportReport {
    /// Hosts that had no keys in the store and now have the imported ones.
    pub added: Vec<String>,
    /// Hosts whose keys in the store were replaced by the imported ones.
    pub replaced: Vec<String>,
    /// Hosts left as the store had them.
    pub skipped: Vec<(String, SkipReason)>,
    /// Files of the source that were left out.
    pub ignored: Vec<Ignored>,
}

impl KeyStore {
    /// Puts the keys of `imported` in the store: a host the store lacks is added;
    /// a host it has keeps its keys, unless `replace` and the imported files
    /// differ. Takes effect on [`save`](Self::save).
    pub fn import(&mut self, imported: Imported, replace: bool) -> ImportReport {
        let mut report = ImportReport {
            ignored: imported.ignored,
            ..ImportReport::default()
        };
        for keys in imported.hosts {
            let host = keys.host().to_owned();
            match self.get(&host) {
                None => report.added.push(host),
                Some(kept) if same_files(kept, &keys) => {
                    report.skipped.push((host, SkipReason::SameKeys));
                    continue;
                }
                Some(_) if replace => report.replaced.push(host),
                Some(kept) => {
                    let reason = if kept.same_keys(&keys) {
                        SkipReason::SameKeys
                    } else {
                        SkipReason::OtherKeys
                    };
                    report.skipped.push((host, reason));
                    continue;
                }
            }
            self.insert(keys);
        }
        tracing::info!(
            store = %self.path().display(),
            added = report.added.len(),
            replaced = report.replaced.len(),
            skipped = report.skipped.len(),
            "imported sshd host keys"
        );
        report
    }
}

/// Whether two hosts' keys are the very same files.
fn same_files(a: &HostKeys, b: &HostKeys) -> bool {
    a.files()
        .iter()
        .zip(b.files())
        .all(|(x, y)| x.contents == y.contents)
}
