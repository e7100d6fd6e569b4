//! Path resolution confined to the target root: parents are opened with
//! `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`, so `..` and absolute
//! symlinks stay inside the root as if it were `/`; the last component is then
//! handled with `*at` calls that never follow it.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

use super::path::unsafe_entry;
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
}

impl Root {
    /// Opens the target directory (which the caller chose, so it may be a link).
    pub(crate) fn open(path: &Path) -> Result<Root> {
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
        &self,
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
        // Create the missing components one by one; each mkdirat works on the
        // last component only and never follows it.
        for i in 1..=comps.len() {
            match open_in_root(&self.fd, &comps[..i]) {
                Ok(_) => continue,
                Err(Errno::NOENT) => {
                    let parent = open_in_root(&self.fd, &comps[..i - 1])
                        .map_err(|e| self.resolve_error(raw, &comps[..i - 1], e))?;
                    match rustix::fs::mkdirat(
                        &parent,
                        comps[i - 1].as_slice(),
                        Mode::from_raw_mode(0o755),
                    ) {
                        Ok(()) => {}
                        Err(Errno::EXIST) => {
                            return Err(unsafe_entry(
                                raw,
                                format!(
                                    "parent {:?} is a dangling link",
                                    String::from_utf8_lossy(&comps[..i].join(&b'/'))
                                ),
                            ))
                        }
                        Err(e) => return Err(self.resolve_error(raw, &comps[..i], e)),
                    }
                }
                Err(e) => return Err(self.resolve_error(raw, &comps[..i], e)),
            }
        }
        open_in_root(&self.fd, comps)
            .map(Some)
            .map_err(|e| self.resolve_error(raw, comps, e))
    }

    fn resolve_error(&self, raw: &[u8], comps: &[Vec<u8>], e: Errno) -> Error {
        let at = String::from_utf8_lossy(&comps.join(&b'/')).into_owned();
        match e {
            Errno::NOTDIR => unsafe_entry(raw, format!("parent {at:?} is not a directory")),
            Errno::LOOP => unsafe_entry(raw, format!("too many links resolving {at:?}")),
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

/// The type of `name` in `dir`, not following it; None when absent.
pub(crate) fn type_at(dir: impl AsFd, name: &[u8]) -> io::Result<Option<rustix::fs::Stat>> {
    match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(st)),
        Err(Errno::NOENT) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Removes `name` in `dir` and, for a directory, everything under it; links
/// are removed, never followed.
pub(crate) fn remove_all_at(dir: impl AsFd, name: &[u8]) -> io::Result<()> {
    let dir = dir.as_fd();
    let Some(st) = type_at(dir, name)? else {
        return Ok(());
    };
    if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
        if st.st_dev != rustix::fs::fstat(dir)?.st_dev {
            return Err(io::Error::other(format!(
                "{:?} is a mount point: not removed",
                String::from_utf8_lossy(name)
            )));
        }
        let sub = rustix::fs::openat(
            dir,
            name,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        for child in list_dir(&sub)? {
            remove_all_at(&sub, &child)?;
        }
        rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR)?;
    } else {
        rustix::fs::unlinkat(dir, name, AtFlags::empty())?;
    }
    Ok(())
}

/// Names in a directory (opened readable), without `.` and `..`.
pub(crate) fn list_dir(dir: impl AsFd) -> io::Result<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    let mut d = rustix::fs::Dir::read_from(dir)?;
    while let Some(e) = d.read() {
        let e = e?;
        let n = e.file_name().to_bytes();
        if n != b"." && n != b".." {
            out.push(n.to_vec());
        }
    }
    Ok(out)
}

/// Opens a directory for reading (listing, xattrs, times) relative to `dir`
/// without following `name`; `name` empty opens `dir` itself.
pub(crate) fn open_dir_at(dir: impl AsFd, name: &[u8]) -> io::Result<OwnedFd> {
    let name: &[u8] = if name.is_empty() { b"." } else { name };
    Ok(rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}
