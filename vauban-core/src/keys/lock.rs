//! The exclusive lock of a key store: an `flock` on a sibling file
//! (`keys.age.lock` beside `keys.age`), held by a [`super::KeyStore`] from its
//! open until it is dropped.
//!
//! The lock is on a file of its own because the store file is replaced by a
//! rename on every save, and a lock on a replaced inode would no longer exclude
//! anyone. The lock file is never deleted: deleting it would let a waiting
//! process and a newcomer lock two different inodes.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rustix::fs::{flock, FlockOperation};
use rustix::io::Errno;

use crate::error::{Error, IoContext, Result};

/// An exclusive `flock` on a lock file, released when dropped (the file closes).
#[derive(Debug)]
pub(super) struct StoreLock {
    _file: File,
}

/// The lock file of the store file `store`: its name with `.lock` appended.
pub(super) fn lock_path(store: &Path) -> PathBuf {
    let mut name = store.file_name().unwrap_or_default().to_owned();
    name.push(".lock");
    store.with_file_name(name)
}

impl StoreLock {
    /// Takes the exclusive lock on `path`, creating the file (mode 0600) if needed;
    /// waits for as long as another holder keeps it.
    pub(super) fn acquire(path: &Path) -> Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .at("open the lock file", path)?;
        match flock(&file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {}
            Err(Errno::WOULDBLOCK) => {
                tracing::info!(
                    lock = %path.display(),
                    "waiting for another vauban to release the key store"
                );
                loop {
                    match flock(&file, FlockOperation::LockExclusive) {
                        Ok(()) => break,
                        Err(Errno::INTR) => continue,
                        Err(e) => return Err(Error::io("lock", path, e.into())),
                    }
                }
            }
            Err(e) => return Err(Error::io("lock", path, e.into())),
        }
        Ok(StoreLock { _file: file })
    }
}
