//! Setting an applied entry's owner, mode, xattrs and times, through its
//! descriptor or `*at` calls that never follow it. An owner the user
//! namespace cannot map (with [`super::Owners::BestEffort`]) or an xattr it
//! may not set is counted in the report, not an error.

use std::io::{self};
use std::os::fd::OwnedFd;

use rustix::fs::{AtFlags, FileType, Gid, Mode, Timespec, Timestamps, Uid};
use rustix::io::Errno;

use super::apply::Applier;
use super::entry::Attrs;
use super::xattr;
use super::Owners;
use crate::beneath::type_at;
use crate::error::{Error, Result};

impl Applier {
    pub(super) fn root_attrs(&mut self, raw: &[u8], attrs: &Attrs) -> Result<()> {
        let fd = self
            .root
            .fd()
            .try_clone()
            .map_err(|e| self.err("open", raw, e))?;
        let st = rustix::fs::fstat(&fd).map_err(|e| self.err("stat", raw, e))?;
        self.fd_attrs(&fd, &st, raw, attrs, self.dir_mode_now(attrs.mode))?;
        let fix = self.entry_fix(&st, attrs);
        self.dirs.insert(Vec::new(), fix);
        Ok(())
    }

    /// Owner, `mode` (the entry's, or for a directory while applying
    /// [`Applier::dir_mode_now`]), xattrs through an open file or directory
    /// whose current state is `st` (in that order: chown clears setuid bits
    /// and capabilities). An owner or mode already right is left alone.
    pub(super) fn fd_attrs(
        &mut self,
        fd: &OwnedFd,
        st: &rustix::fs::Stat,
        raw: &[u8],
        attrs: &Attrs,
        mode: u32,
    ) -> Result<()> {
        let chown = (st.st_uid, st.st_gid) != (attrs.uid, attrs.gid);
        if chown {
            let r = rustix::fs::fchown(
                fd,
                Some(Uid::from_raw(attrs.uid)),
                Some(Gid::from_raw(attrs.gid)),
            );
            self.owner_result(r, raw)?;
        }
        if chown || st.st_mode & 0o7777 != mode {
            rustix::fs::fchmod(fd, Mode::from_raw_mode(mode))
                .map_err(|e| self.err("chmod", raw, e))?;
        }
        for (n, v) in &attrs.xattrs {
            let r = xattr::set_fd(fd, &xattr::escape_overlay(n), v);
            self.xattr_result(r, raw)?;
        }
        Ok(())
    }

    /// Owner, mode (not for links), xattrs and times of `name` in `parent`,
    /// never following it.
    pub(super) fn node_attrs(
        &mut self,
        parent: &OwnedFd,
        name: &[u8],
        raw: &[u8],
        attrs: &Attrs,
        link: bool,
    ) -> Result<()> {
        let st = type_at(parent, name).map_err(|e| self.err("stat", raw, e))?;
        let chown = st.is_none_or(|st| (st.st_uid, st.st_gid) != (attrs.uid, attrs.gid));
        if chown {
            let r = rustix::fs::chownat(
                parent,
                name,
                Some(Uid::from_raw(attrs.uid)),
                Some(Gid::from_raw(attrs.gid)),
                AtFlags::SYMLINK_NOFOLLOW,
            );
            self.owner_result(r, raw)?;
        }
        if !link {
            // fchmodat cannot refuse to follow: check it is the node we just
            // made (the name is never replaced by a link in between: the
            // target is ours while a layer is applied).
            if st.is_some_and(|st| FileType::from_raw_mode(st.st_mode) != FileType::Symlink) {
                rustix::fs::chmodat(
                    parent,
                    name,
                    Mode::from_raw_mode(attrs.mode & 0o7777),
                    AtFlags::empty(),
                )
                .map_err(|e| self.err("chmod", raw, e))?;
            }
        }
        for (n, v) in &attrs.xattrs {
            let r = xattr::set_at(parent, name, &xattr::escape_overlay(n), v);
            self.xattr_result(r, raw)?;
        }
        let r = rustix::fs::utimensat(parent, name, &times(attrs.mtime), AtFlags::SYMLINK_NOFOLLOW);
        set_times(r, || self.err("set times of", raw, Errno::INVAL))?;
        if let Some(st) = st {
            self.created.insert((st.st_dev, st.st_ino));
        }
        Ok(())
    }

    pub(super) fn owner_result(&mut self, r: rustix::io::Result<()>, raw: &[u8]) -> Result<()> {
        match r {
            Ok(()) => Ok(()),
            Err(Errno::PERM | Errno::INVAL) if self.opts.owners == Owners::BestEffort => {
                self.report.skipped_owners += 1;
                Ok(())
            }
            Err(e) => Err(self.err("chown", raw, e)),
        }
    }

    pub(super) fn xattr_result(&mut self, r: io::Result<()>, raw: &[u8]) -> Result<()> {
        match r {
            Ok(()) => Ok(()),
            Err(e)
                if matches!(
                    Errno::from_io_error(&e),
                    Some(Errno::PERM | Errno::NOTSUP | Errno::ACCESS)
                ) =>
            {
                self.report.skipped_xattrs += 1;
                tracing::debug!(entry = %String::from_utf8_lossy(raw), error = %e, "xattr not set");
                Ok(())
            }
            Err(e) => Err(self.err("set xattr on", raw, e)),
        }
    }
}

pub(super) fn times(mtime: i64) -> Timestamps {
    let t = Timespec {
        tv_sec: mtime,
        tv_nsec: 0,
    };
    Timestamps {
        last_access: t,
        last_modification: t,
    }
}

pub(super) fn set_times(r: rustix::io::Result<()>, err: impl FnOnce() -> Error) -> Result<()> {
    match r {
        Ok(()) => Ok(()),
        // Times outside what the filesystem stores are not worth failing for.
        Err(Errno::INVAL | Errno::OVERFLOW) => Ok(()),
        Err(_) => Err(err()),
    }
}
