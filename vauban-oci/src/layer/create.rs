//! Creating each kind of entry of an applied layer in the target: a
//! directory (kept, or replacing what is there), a regular file (written
//! through a new descriptor, never an existing file), a symlink, device or
//! FIFO, and a hard link to an entry of the same layer or of a layer below.

use std::io::{self, Read};
use std::os::fd::OwnedFd;

use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;

use super::apply::Applier;
use super::entry::Attrs;
use super::lower::is_whiteout;
use super::path::{unsafe_entry, EntryPath};
use super::set_attrs::{set_times, times};
use super::WhiteoutMode;
use crate::beneath::{open_dir_at, type_at, unlock_dir};
use crate::error::{Error, Result};

impl Applier {
    pub(super) fn dir(
        &mut self,
        parent: &OwnedFd,
        path: &EntryPath,
        name: &[u8],
        raw: &[u8],
        attrs: &Attrs,
    ) -> Result<()> {
        // Made first (the common case in a fresh target), looked at only when
        // something is in the way; mkdirat never follows the last component.
        // Unprivileged, it keeps owner rwx until the end (its children are
        // made in it).
        let now = self.dir_mode_now(attrs.mode);
        let mode = if (attrs.uid, attrs.gid) == self.ids {
            Mode::from_raw_mode(now & 0o777)
        } else {
            Mode::from_raw_mode(0o700)
        };
        match rustix::fs::mkdirat(parent, name, mode) {
            Ok(()) => {}
            Err(Errno::EXIST) => {
                match type_at(parent, name).map_err(|e| self.err("stat", raw, e))? {
                    Some(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {}
                    _ => {
                        self.clear(parent, name, raw)?;
                        rustix::fs::mkdirat(parent, name, mode)
                            .map_err(|e| self.err("mkdir", raw, e))?;
                    }
                }
            }
            Err(e) => return Err(self.err("mkdir", raw, e)),
        }
        let fd = match open_dir_at(parent, name) {
            // A lower layer's directory we may not read: unlocked through an
            // O_PATH fd of it (the name is not followed), its mode set below.
            Err(e) if !self.privileged && Errno::from_io_error(&e) == Some(Errno::ACCESS) => {
                let p = rustix::fs::openat(
                    parent,
                    name,
                    OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| self.err("open", raw, e))?;
                unlock_dir(&p).map_err(|e| self.err("chmod", raw, e))?;
                open_dir_at(&p, b"")
            }
            r => r,
        }
        .map_err(|e| self.err("open", raw, e))?;
        let st = rustix::fs::fstat(&fd).map_err(|e| self.err("stat", raw, e))?;
        self.fd_attrs(&fd, &st, raw, attrs, now)?;
        self.created.insert((st.st_dev, st.st_ino));
        let fix = self.entry_fix(&st, attrs);
        self.dirs.insert(path.0.clone(), fix);
        Ok(())
    }

    pub(super) fn file(
        &mut self,
        parent: &OwnedFd,
        name: &[u8],
        raw: &[u8],
        attrs: &Attrs,
        data: &mut dyn Read,
    ) -> Result<()> {
        // Created first (the common case in a fresh target); whatever is in
        // the way is removed, never written through (O_EXCL | O_NOFOLLOW).
        let mode = self.initial_mode(attrs, 0o600);
        let create = |parent: &OwnedFd| {
            rustix::fs::openat(
                parent,
                name,
                OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                mode,
            )
        };
        let fd = match create(parent) {
            Err(Errno::EXIST) => {
                self.clear(parent, name, raw)?;
                create(parent)
            }
            r => r,
        }
        .map_err(|e| self.err("create", raw, e))?;
        let mut file = std::fs::File::from(fd);
        loop {
            let n = match data.read(&mut self.buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(Error::Tar {
                        what: String::from_utf8_lossy(raw).into_owned(),
                        source: e,
                    })
                }
            };
            io::Write::write_all(&mut file, &self.buf[..n])
                .map_err(|e| self.err("write", raw, e))?;
        }
        let fd = OwnedFd::from(file);
        let st = rustix::fs::fstat(&fd).map_err(|e| self.err("stat", raw, e))?;
        self.fd_attrs(&fd, &st, raw, attrs, attrs.mode & 0o7777)?;
        set_times(rustix::fs::futimens(&fd, &times(attrs.mtime)), || {
            self.err("set times of", raw, Errno::INVAL)
        })?;
        self.created.insert((st.st_dev, st.st_ino));
        Ok(())
    }

    /// The mode to create a file with: its final permission bits
    /// (no setuid, setgid or sticky bit) when it will belong to whom we create
    /// it as, so that no chown or chmod follows in the common case; else the
    /// owner-only `private`, until the chown.
    pub(super) fn initial_mode(&self, attrs: &Attrs, private: u32) -> Mode {
        if (attrs.uid, attrs.gid) == self.ids {
            Mode::from_raw_mode(attrs.mode & 0o777)
        } else {
            Mode::from_raw_mode(private)
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn node(
        &mut self,
        parent: &OwnedFd,
        name: &[u8],
        raw: &[u8],
        attrs: &Attrs,
        ft: FileType,
        ma: u32,
        mi: u32,
    ) -> Result<()> {
        self.clear(parent, name, raw)?;
        let dev = rustix::fs::makedev(ma, mi);
        match rustix::fs::mknodat(
            parent,
            name,
            ft,
            Mode::from_raw_mode(attrs.mode & 0o777),
            dev,
        ) {
            Ok(()) => {}
            Err(Errno::PERM) if ft != FileType::Fifo => {
                self.report.skipped_devices += 1;
                tracing::debug!(entry = %String::from_utf8_lossy(raw), "device node not permitted, skipped");
                return Ok(());
            }
            Err(e) => return Err(self.err("mknod", raw, e)),
        }
        self.node_attrs(parent, name, raw, attrs, false)
    }

    pub(super) fn hard_link(
        &mut self,
        parent: &OwnedFd,
        name: &[u8],
        raw: &[u8],
        target: &[u8],
    ) -> Result<()> {
        let tpath = EntryPath::parse(target)
            .map_err(|_| unsafe_entry(raw, "hard link target with `..`"))?;
        let Some((tparent, tname)) = tpath.split_last() else {
            return Err(unsafe_entry(raw, "hard link to the root"));
        };
        let own = match self.root.dir(tparent, false, raw)? {
            Some(tdir) => type_at(&tdir, tname)
                .map_err(|e| self.err("stat", raw, e))?
                .map(|st| (tdir, st)),
            None => None,
        };
        let overlay = self.opts.whiteouts == WhiteoutMode::Overlay;
        let (tdir, tst) = match own {
            Some((_, st)) if overlay && is_whiteout(&st) => {
                return Err(unsafe_entry(raw, "hard link target does not exist"))
            }
            Some(found) => found,
            // Not in this layer: a copy of the lower layers' file, if any.
            None => return self.link_from_lower(parent, name, raw, &tpath),
        };
        if FileType::from_raw_mode(tst.st_mode) == FileType::Directory {
            return Err(unsafe_entry(raw, "hard link to a directory"));
        }
        if let Some(st) = type_at(parent, name).map_err(|e| self.err("stat", raw, e))? {
            if (st.st_dev, st.st_ino) == (tst.st_dev, tst.st_ino) {
                return Ok(());
            }
            self.clear(parent, name, raw)?;
        }
        rustix::fs::linkat(&tdir, tname, parent, name, AtFlags::empty())
            .map_err(|e| self.err("link", raw, e))?;
        self.mark_created(parent, name);
        Ok(())
    }
}
