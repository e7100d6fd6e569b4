//! Path resolution confined to the target root: parents are opened with
//! `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`, so `..` and absolute
//! symlinks stay inside the root as if it were `/`; the last component is then
//! handled with `*at` calls that never follow it.
//!
//! Unprivileged (no `CAP_DAC_OVERRIDE`), a directory without owner write or
//! search (Fedora's 0555 `/usr/bin`) is "unlocked" (given owner rwx) through
//! its own fd before anything is made or removed in it; the applier puts the
//! recorded mode back at the end.

use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

use super::path::unsafe_entry;
use crate::beneath::{id, unlock_dir, DirId};
use crate::error::{Error, IoContext, Result};

/// Inside the root, no magic links, and never into another mount (a sandbox's
/// `/proc` or bind-mounted `/dev` is not the layer's to write).
const RESOLVE: ResolveFlags = ResolveFlags::IN_ROOT
    .union(ResolveFlags::NO_MAGICLINKS)
    .union(ResolveFlags::NO_XDEV);

/// The target directory of an apply.
pub(crate) struct Root {
    fd: OwnedFd,
    path: PathBuf,
    /// The directories [`Root::dir`] made, until taken: (dev, ino) and the
    /// number of leading components of the path it was given that name it.
    made: Vec<(DirId, usize)>,
    /// Whether directories are unlocked before being written (unprivileged).
    unlock: bool,
    /// The directories unlocked since the last [`Root::take_unlocked`].
    unlocked: Vec<Unlocked>,
}

/// A directory given owner rwx for the time of an apply.
pub(crate) struct Unlocked {
    /// The path it was resolved from (inside the root, links followed in it).
    pub(crate) comps: Vec<Vec<u8>>,
    /// Its (dev, ino).
    pub(crate) id: DirId,
    /// The mode to put back (permission bits and setuid, setgid, sticky).
    pub(crate) mode: u32,
}

impl Root {
    /// Opens the target directory (which the caller chose, so it may be a link).
    /// With `unlock`, directories lacking owner rwx are unlocked before
    /// anything is created in them (see [`Root::unlock`]).
    pub(crate) fn open(path: &Path, unlock: bool) -> Result<Root> {
        let fd = rustix::fs::open(
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(io::Error::from)
        .at("open target", path)?;
        Ok(Root {
            fd,
            path: path.to_path_buf(),
            made: Vec::new(),
            unlock,
            unlocked: Vec::new(),
        })
    }

    /// The root's fd (readable directory).
    pub(crate) fn fd(&self) -> &OwnedFd {
        &self.fd
    }

    /// The root's path, for messages.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Opens the directory `comps` inside the root (an `O_PATH` fd). With
    /// `create`, missing directories are made (mode 0755); else `Ok(None)` when
    /// something is missing. `raw` names the entry in errors.
    pub(crate) fn dir(
        &mut self,
        comps: &[Vec<u8>],
        create: bool,
        raw: &[u8],
    ) -> Result<Option<OwnedFd>> {
        match open_in_root(&self.fd, comps) {
            Ok(fd) => return Ok(Some(fd)),
            Err(Errno::NOENT) if create => {}
            Err(Errno::NOENT) => return Ok(None),
            Err(e) => return Err(self.resolve_error(raw, comps, e)),
        }
        // The longest existing prefix: prefixes that resolve are monotone, so a
        // binary search keeps a deep entry at O(depth log depth) lookups.
        let (mut lo, mut hi) = (0, comps.len());
        let mut fd = open_in_root(&self.fd, &[]).map_err(|e| self.resolve_error(raw, &[], e))?;
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            match open_in_root(&self.fd, &comps[..mid]) {
                Ok(f) => (lo, fd) = (mid, f),
                Err(Errno::NOENT) => hi = mid,
                Err(e) => return Err(self.resolve_error(raw, &comps[..mid], e)),
            }
        }
        // Then create the missing components one by one, each in the directory
        // just made (mkdirat never follows the last component, and a fresh
        // directory holds no link); the existing one may be read-only.
        self.unlock(&fd, &comps[..lo])
            .map_err(|e| self.resolve_error(raw, &comps[..lo], e))?;
        for (i, comp) in comps.iter().enumerate().skip(lo) {
            match rustix::fs::mkdirat(&fd, comp.as_slice(), Mode::from_raw_mode(0o755)) {
                Ok(()) => {}
                Err(Errno::EXIST) => {
                    return Err(unsafe_entry(
                        raw,
                        format!(
                            "parent {:?} is a dangling link",
                            String::from_utf8_lossy(&comps[..=i].join(&b'/'))
                        ),
                    ))
                }
                Err(e) => return Err(self.resolve_error(raw, &comps[..=i], e)),
            }
            fd = rustix::fs::openat(
                &fd,
                comp.as_slice(),
                OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| self.resolve_error(raw, &comps[..=i], e))?;
            if let Ok(st) = rustix::fs::fstat(&fd) {
                self.made.push((id(&st), i + 1));
            }
        }
        Ok(Some(fd))
    }

    /// The directories made by [`Root::dir`] since the last call: (dev, ino)
    /// and how many components of the path it was given name it.
    pub(crate) fn take_made(&mut self) -> Vec<(DirId, usize)> {
        std::mem::take(&mut self.made)
    }

    /// When unlocking (unprivileged), gives the owner rwx on the directory
    /// `fd` (resolved from `comps`) if it lacks them, recording it for
    /// [`Root::take_unlocked`].
    pub(crate) fn unlock(
        &mut self,
        fd: &OwnedFd,
        comps: &[Vec<u8>],
    ) -> std::result::Result<(), Errno> {
        if !self.unlock {
            return Ok(());
        }
        if let Some((id, mode)) = unlock_dir(fd)? {
            self.unlocked.push(Unlocked {
                comps: comps.to_vec(),
                id,
                mode,
            });
        }
        Ok(())
    }

    /// The directories unlocked since the last call.
    pub(crate) fn take_unlocked(&mut self) -> Vec<Unlocked> {
        std::mem::take(&mut self.unlocked)
    }

    fn resolve_error(&self, raw: &[u8], comps: &[Vec<u8>], e: Errno) -> Error {
        let at = String::from_utf8_lossy(&comps.join(&b'/')).into_owned();
        match e {
            Errno::NOTDIR => unsafe_entry(raw, format!("parent {at:?} is not a directory")),
            Errno::LOOP => unsafe_entry(raw, format!("too many links resolving {at:?}")),
            Errno::NAMETOOLONG => unsafe_entry(raw, "path or name too long"),
            Errno::XDEV => unsafe_entry(
                raw,
                format!("{at:?} crosses a mount point or escapes the root"),
            ),
            e => Error::io(
                "resolve",
                self.path.join(std::ffi::OsStr::from_bytes(at.as_bytes())),
                e.into(),
            ),
        }
    }
}

fn open_in_root(root: &OwnedFd, comps: &[Vec<u8>]) -> std::result::Result<OwnedFd, Errno> {
    let path = if comps.is_empty() {
        b".".to_vec()
    } else {
        comps.join(&b'/')
    };
    loop {
        match rustix::fs::openat2(
            root,
            path.as_slice(),
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
            RESOLVE,
        ) {
            // openat2 asks to retry when a rename raced with the lookup.
            Err(Errno::AGAIN) | Err(Errno::INTR) => continue,
            r => return r,
        }
    }
}
