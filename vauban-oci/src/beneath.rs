//! File operations confined below a directory descriptor: nothing is looked up
//! through a symlink, `..` or another mount, and the last component is never
//! followed. The layer applier is built on them; the sandbox's commit uses them
//! on upper dirs a hostile build may have filled with links to the host, the
//! export to read the kernel and initramfs out of an image's tree.

use std::io::{self, Read};
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

use crate::error::{Error, IoContext, Result};

/// A directory's identity: (dev, ino).
pub(crate) type DirId = (u64, u64);

/// Gives the owner rwx on the directory `fd` (any fd, `O_PATH` included) when
/// it lacks them: the chmod is of `.` through the fd, so no name is looked up
/// and nothing is followed. Returns its (dev, ino) and former mode when
/// changed; a directory that is not ours (`EPERM`) is left as it is (what
/// needed it then fails with `EACCES`, naming the entry).
pub(crate) fn unlock_dir(fd: impl AsFd) -> std::result::Result<Option<(DirId, u32)>, Errno> {
    let fd = fd.as_fd();
    let st = rustix::fs::fstat(fd)?;
    if st.st_mode & 0o700 == 0o700 {
        return Ok(None);
    }
    let mode = st.st_mode & 0o7777;
    match rustix::fs::chmodat(fd, ".", Mode::from_raw_mode(mode | 0o700), AtFlags::empty()) {
        Ok(()) => Ok(Some((id(&st), mode))),
        Err(Errno::PERM) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Opens the directory `rel` (components joined by `/`) below `dir` for
/// reading, following no link at all and crossing no mount point.
pub fn open_beneath(dir: impl AsFd, rel: &[u8]) -> io::Result<OwnedFd> {
    let dir = dir.as_fd();
    loop {
        match rustix::fs::openat2(
            dir,
            rel,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_XDEV,
        ) {
            Err(Errno::AGAIN) | Err(Errno::INTR) => continue,
            r => return Ok(r?),
        }
    }
}

/// The type of `name` in `dir`, not following it; None when absent.
pub fn type_at(dir: impl AsFd, name: &[u8]) -> io::Result<Option<rustix::fs::Stat>> {
    match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(st)),
        Err(Errno::NOENT) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Removes `name` in `dir` and, for a directory, everything under it; links
/// are removed, never followed, and mount points are refused. The walk is
/// iterative and holds one directory fd at a time (it climbs back with `..`,
/// checking the inode), so a crafted tree of any depth can neither overflow the
/// stack nor exhaust file descriptors. With `unlock` (unprivileged), the
/// directories emptied are first given owner rwx (they are removed anyway);
/// `dir` itself must already be writable.
pub fn remove_all_at(dir: impl AsFd, name: &[u8], unlock: bool) -> io::Result<()> {
    let dir = dir.as_fd();
    let Some(st) = type_at(dir, name)? else {
        return Ok(());
    };
    if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
        return Ok(rustix::fs::unlinkat(dir, name, AtFlags::empty())?);
    }
    let dev = rustix::fs::fstat(dir)?.st_dev;
    let mut cur = open_subdir(dir, name, &st, dev, unlock)?;
    // One level per directory being emptied: its identity, its name in its
    // parent and the children still to remove.
    let mut stack = vec![(id(&st), name.to_vec(), list_dir(&cur)?)];
    loop {
        let Some((_, _, pending)) = stack.last_mut() else {
            return Ok(());
        };
        if let Some(child) = pending.pop() {
            match type_at(&cur, &child)? {
                None => {}
                Some(cst) if FileType::from_raw_mode(cst.st_mode) == FileType::Directory => {
                    let sub = open_subdir(&cur, &child, &cst, dev, unlock)?;
                    let children = list_dir(&sub)?;
                    stack.push((id(&cst), child, children));
                    cur = sub;
                }
                Some(_) => rustix::fs::unlinkat(&cur, child.as_slice(), AtFlags::empty())?,
            }
            continue;
        }
        let Some((_, done, _)) = stack.pop() else {
            return Ok(());
        };
        let Some((parent_id, _, _)) = stack.last() else {
            drop(cur);
            rustix::fs::unlinkat(dir, done.as_slice(), AtFlags::REMOVEDIR)?;
            return Ok(());
        };
        let parent = rustix::fs::openat(
            &cur,
            "..",
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        if id(&rustix::fs::fstat(&parent)?) != *parent_id {
            return Err(io::Error::other("directory moved while it was removed"));
        }
        rustix::fs::unlinkat(&parent, done.as_slice(), AtFlags::REMOVEDIR)?;
        cur = parent;
    }
}

/// The identity of what `st` describes: (dev, ino).
pub(crate) fn id(st: &rustix::fs::Stat) -> DirId {
    (st.st_dev, st.st_ino)
}

/// Opens the directory `name` (stat-ed as `st`) in `dir` for reading, refusing
/// a mount point (another device than `dev`) or a swapped inode; with
/// `unlock`, one lacking owner rwx is given them first (through an `O_PATH`
/// fd of it, not following `name`).
fn open_subdir(
    dir: impl AsFd,
    name: &[u8],
    st: &rustix::fs::Stat,
    dev: u64,
    unlock: bool,
) -> io::Result<OwnedFd> {
    if st.st_dev != dev {
        return Err(io::Error::other(format!(
            "{:?} is a mount point: not removed",
            String::from_utf8_lossy(name)
        )));
    }
    let fd = if unlock && st.st_mode & 0o700 != 0o700 {
        let p = rustix::fs::openat(
            dir,
            name,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        if id(&rustix::fs::fstat(&p)?) == id(st) {
            unlock_dir(&p)?;
        }
        open_dir_at(&p, b"")?
    } else {
        open_dir_at(dir, name)?
    };
    if id(&rustix::fs::fstat(&fd)?) != id(st) {
        return Err(io::Error::other(format!(
            "{:?} changed while it was removed",
            String::from_utf8_lossy(name)
        )));
    }
    Ok(fd)
}

/// Names in a directory (opened readable), without `.` and `..`.
pub fn list_dir(dir: impl AsFd) -> io::Result<Vec<Vec<u8>>> {
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
pub fn open_dir_at(dir: impl AsFd, name: &[u8]) -> io::Result<OwnedFd> {
    let name: &[u8] = if name.is_empty() { b"." } else { name };
    Ok(rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// Reads the regular file `name` of `dir` (`rustix::fs::CWD` for a path):
/// `None` when it is absent, a link (never followed) or not a regular file
/// (a FIFO is never waited on, a device never read); [`Error::TooLarge`]
/// beyond `limit` bytes. Errors name `shown`.
pub fn read_regular_at(
    dir: impl AsFd,
    name: &Path,
    limit: u64,
    shown: &Path,
) -> Result<Option<Vec<u8>>> {
    let fd = match rustix::fs::openat(
        dir,
        name,
        // Non-blocking: opening a FIFO returns at once (and is refused below).
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(Errno::NOENT | Errno::LOOP | Errno::NOTDIR) => return Ok(None),
        Err(e) => return Err(Error::io("open", shown, e.into())),
    };
    let st = rustix::fs::fstat(&fd)
        .map_err(std::io::Error::from)
        .at("stat", shown)?;
    if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
        return Ok(None);
    }
    let too_large = |size: u64| Error::TooLarge {
        what: shown.display().to_string(),
        size,
        limit,
    };
    if st.st_size as u64 > limit {
        return Err(too_large(st.st_size as u64));
    }
    let mut bytes = Vec::new();
    std::fs::File::from(fd)
        .take(limit + 1)
        .read_to_end(&mut bytes)
        .at("read", shown)?;
    if bytes.len() as u64 > limit {
        return Err(too_large(bytes.len() as u64));
    }
    Ok(Some(bytes))
}
