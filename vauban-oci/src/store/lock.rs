//! Inter-process locks of the store, with `flock(2)`:
//! - `STORE/lock` is held *shared* by every open [`Store`](super::Store) and
//!   *exclusive* by gc, so gc never runs while another process may be writing
//!   blobs it has not referenced yet;
//! - `STORE/index.lock` is held *exclusive* around every read-modify-write of
//!   `index.json` ([`StoreLock`]);
//! - `STORE/locks/<name>.lock` is held *exclusive* around a piece of work two
//!   processes must not do at once (a build step: [`Store::work_lock`]).

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use rustix::fs::{flock, FlockOperation};

use super::Store;
use crate::error::{Error, IoContext, Result};

const IN_USE: &str = "lock";
const INDEX_LOCK: &str = "index.lock";
pub(super) const WORK_LOCKS: &str = "locks";

/// An exclusive lock on the store's index; released on drop.
#[derive(Debug)]
pub struct StoreLock {
    _file: File,
    path: PathBuf,
}

impl StoreLock {
    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn open_lock_file(path: &Path) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .at("open lock file", path)
}

fn flock_at(file: &File, op: FlockOperation, path: &Path) -> Result<()> {
    flock(file, op).map_err(|e| Error::io("lock", path, e.into()))
}

/// Opens `STORE/lock` and takes it shared (waits while a gc runs).
pub(super) fn hold_shared(root: &Path) -> Result<File> {
    let path = root.join(IN_USE);
    let file = open_lock_file(&path)?;
    flock_at(&file, FlockOperation::LockShared, &path)?;
    Ok(file)
}

impl Store {
    /// Takes the exclusive index lock, waiting for other holders. `tag` and
    /// `untag` take it themselves: do not call them while holding it.
    pub fn index_lock(&self) -> Result<StoreLock> {
        let path = self.root.join(INDEX_LOCK);
        let file = open_lock_file(&path)?;
        flock_at(&file, FlockOperation::LockExclusive, &path)?;
        Ok(StoreLock { _file: file, path })
    }

    /// Like [`Store::index_lock`] but returns `None` at once when someone else holds it.
    pub fn try_index_lock(&self) -> Result<Option<StoreLock>> {
        let path = self.root.join(INDEX_LOCK);
        let file = open_lock_file(&path)?;
        match flock(&file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => Ok(Some(StoreLock { _file: file, path })),
            Err(rustix::io::Errno::WOULDBLOCK) => Ok(None),
            Err(e) => Err(Error::io("lock", path, e.into())),
        }
    }

    /// Takes the exclusive lock of a piece of work named `name` (ASCII letters,
    /// digits, `-`, `_`, `.`), `STORE/locks/<name>.lock`, waiting while another
    /// process holds it: builds of one step never run it twice at once. Lock
    /// files stay (unlinking one would let a waiter and a newcomer both in).
    pub fn work_lock(&self, name: &str) -> Result<StoreLock> {
        let valid = !name.is_empty()
            && !name.starts_with('.')
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !valid {
            return Err(Error::BadStore {
                path: self.root.join(WORK_LOCKS),
                reason: format!("invalid work lock name {name:?}"),
            });
        }
        let dir = self.root.join(WORK_LOCKS);
        super::layout::make_private_dir(&dir)?;
        let path = dir.join(format!("{name}.lock"));
        let file = open_lock_file(&path)?;
        flock_at(&file, FlockOperation::LockExclusive, &path)?;
        Ok(StoreLock { _file: file, path })
    }

    /// Turns this handle's shared `STORE/lock` exclusive for the duration of
    /// `f` (gc), failing with [`Error::StoreBusy`] if another handle holds it.
    pub(super) fn with_exclusive<T>(&self, f: impl FnOnce() -> Result<T>) -> Result<T> {
        let path = self.root.join(IN_USE);
        match flock(&self.in_use, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {}
            Err(rustix::io::Errno::WOULDBLOCK) => {
                // A failed conversion drops the shared lock (flock(2)): take it again.
                flock_at(&self.in_use, FlockOperation::LockShared, &path)?;
                return Err(Error::StoreBusy {
                    path: self.root.clone(),
                });
            }
            Err(e) => return Err(Error::io("lock", path, e.into())),
        }
        let result = f();
        let back = flock_at(&self.in_use, FlockOperation::LockShared, &path);
        let value = result?;
        back?;
        Ok(value)
    }
}
