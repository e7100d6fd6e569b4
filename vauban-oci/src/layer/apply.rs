//! Applying an uncompressed layer onto a directory, safely: the `tar` crate is
//! only a parser; parents resolve inside the target (`openat2` IN_ROOT), the
//! last component is created, replaced, chowned, chmod-ed and timed with `*at`
//! calls that never follow it. OCI whiteouts are applied or kept in overlay form.
//!
//! Unprivileged, permissions are not bypassed: directories keep owner rwx
//! while the layer is applied, and a read-only directory something is made or
//! removed in is given them for the time being; their exact modes are put
//! back at the end, with their mtimes. As root none of this happens.

use std::collections::{HashMap, HashSet};
use std::io::{self, Read};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use rustix::fs::{AtFlags, FileType, Gid, Mode, OFlags, Timespec, Timestamps, Uid};
use rustix::io::Errno;

use super::dirfix::{Comps, DirFix};
use super::entry::{Attrs, EntryParser, Parsed};
use super::lower::is_whiteout;
use super::path::{unsafe_entry, EntryPath};
use super::resolve::Root;
use super::writer::Kind;
use super::xattr;
use super::{ApplyOptions, ApplyReport, Owners, WhiteoutMode, WHITEOUT_PREFIX};
use crate::beneath::{open_dir_at, remove_all_at, type_at, unlock_dir};
use crate::error::{Error, Result};

/// Applies the uncompressed layer `tar` onto `target`, reading the stream to
/// its very end. Entries that cannot be applied safely are refused with
/// [`Error::UnsafeEntry`]; nothing outside `target` is ever changed.
pub fn apply(tar: impl Read, target: &Path, opts: &ApplyOptions) -> Result<ApplyReport> {
    let privileged = rustix::process::geteuid().is_root();
    let mut applier = Applier {
        root: Root::open(target, !privileged)?,
        opts: opts.clone(),
        lowers: None,
        report: ApplyReport::default(),
        created: HashSet::new(),
        dirs: HashMap::new(),
        buf: vec![0; 256 * 1024],
        parser: EntryParser::default(),
        parent: None,
        removed: false,
        ids: (
            rustix::process::geteuid().as_raw(),
            rustix::process::getegid().as_raw(),
        ),
        privileged,
    };
    let tar_err = |source: io::Error| Error::Tar {
        what: target.display().to_string(),
        source,
    };
    let mut archive = tar::Archive::new(tar);
    for entry in archive.entries().map_err(tar_err)?.raw(true) {
        let mut entry = entry.map_err(tar_err)?;
        applier.entry(&mut entry)?;
    }
    if applier.parser.dangling() {
        return Err(tar_err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "metadata entry without an entry",
        )));
    }
    applier.finish_dirs();
    // Hash-through-EOF: the caller's diff_id covers the padding after the end marker.
    io::copy(&mut archive.into_inner(), &mut io::sink()).map_err(tar_err)?;
    let r = &applier.report;
    if r.skipped_devices + r.skipped_owners + r.skipped_xattrs > 0 {
        // Expected when unprivileged: the caller says what matters to its user.
        tracing::debug!(
            target = %target.display(),
            devices = r.skipped_devices,
            owners = r.skipped_owners,
            xattrs = r.skipped_xattrs,
            "layer applied without some device nodes, owners or xattrs (not permitted here)"
        );
    }
    Ok(applier.report)
}

pub(super) struct Applier {
    pub(super) root: Root,
    pub(super) opts: ApplyOptions,
    /// The lower layer dirs, once opened (see [`super::lower`]).
    pub(super) lowers: Option<Vec<OwnedFd>>,
    pub(super) report: ApplyReport,
    /// (dev, ino) of everything this layer created or touched: its own whiteouts
    /// never remove them.
    pub(super) created: HashSet<(u64, u64)>,
    /// Directories whose mtime and mode are set at the end (children change
    /// the mtime; unprivileged, they keep owner rwx until then), by path: a
    /// layer repeating one directory entry does not grow memory.
    pub(super) dirs: HashMap<Comps, DirFix>,
    buf: Vec<u8>,
    parser: EntryParser,
    /// The parent directory of the last entry (tar streams list a directory's
    /// files together), reused by the next entry with the same parent. Only a
    /// removal can change what a path resolves to, and an entry removes names
    /// inside its parent only; still, to keep the argument local, the cache is
    /// dropped after any removal and before any whiteout (the hostile table
    /// has parents replaced between two of their files).
    parent: Option<(Vec<Vec<u8>>, OwnedFd)>,
    /// Set when the current entry removed something.
    removed: bool,
    /// Our effective uid and gid (what new files belong to).
    ids: (u32, u32),
    /// Whether we are root (permissions bypassed: no directory is unlocked).
    pub(super) privileged: bool,
}

impl Applier {
    fn entry<R: Read>(&mut self, e: &mut tar::Entry<'_, R>) -> Result<()> {
        let Some(Parsed {
            raw,
            path,
            kind,
            attrs,
        }) = self.parser.parse(e)?
        else {
            return Ok(());
        };
        self.report.entries += 1;
        let Some((parent, name)) = path.split_last() else {
            if kind != Kind::Dir {
                return Err(unsafe_entry(
                    &raw,
                    "the root `.` may only change attributes, not its type",
                ));
            }
            return self.root_attrs(&raw, &attrs);
        };
        if parent
            .iter()
            .any(|c| c.starts_with(WHITEOUT_PREFIX.as_bytes()))
        {
            return Err(unsafe_entry(&raw, "whiteout name as a parent directory"));
        }
        if let Some(target) = name.strip_prefix(WHITEOUT_PREFIX.as_bytes()) {
            self.parent = None;
            return self.whiteout(&raw, parent, name, target);
        }
        let (comps, dir) = self.parent(parent, &raw)?;
        if kind != Kind::Dir {
            // A directory replaced by this entry keeps no pending mtime.
            self.dirs.remove(&path.0);
        }
        self.removed = false;
        let r = match kind {
            Kind::Dir => self.dir(&dir, &path, name, &raw, &attrs),
            Kind::File(_) => self.file(&dir, name, &raw, &attrs, e),
            Kind::Symlink(target) => {
                self.clear(&dir, name, &raw)?;
                rustix::fs::symlinkat(target.as_slice(), &dir, name)
                    .map_err(|err| self.err("symlink", &raw, err))?;
                self.node_attrs(&dir, name, &raw, &attrs, true)
            }
            Kind::HardLink(target) => self.hard_link(&dir, name, &raw, &target),
            Kind::Char(ma, mi) => {
                self.node(&dir, name, &raw, &attrs, FileType::CharacterDevice, ma, mi)
            }
            Kind::Block(ma, mi) => {
                self.node(&dir, name, &raw, &attrs, FileType::BlockDevice, ma, mi)
            }
            Kind::Fifo => self.node(&dir, name, &raw, &attrs, FileType::Fifo, 0, 0),
        };
        if r.is_ok() && !self.removed {
            self.parent = Some((comps, dir));
        }
        r
    }

    /// The parent directory `comps` (created if missing), from the cache when
    /// the previous entry had the same one.
    fn parent(&mut self, comps: &[Vec<u8>], raw: &[u8]) -> Result<(Vec<Vec<u8>>, OwnedFd)> {
        if let Some((cached, fd)) = self.parent.take() {
            if cached == comps {
                return Ok((cached, fd));
            }
        }
        let fd = self
            .dir_in_root(comps, true, raw)?
            .ok_or_else(|| unsafe_entry(raw, "parent directory could not be created"))?;
        self.unlock(&fd, comps, raw)?;
        Ok((comps.to_vec(), fd))
    }

    /// [`Root::dir`], the directories it makes counted as this layer's own
    /// (and those it unlocks recorded).
    pub(super) fn dir_in_root(
        &mut self,
        comps: &[Vec<u8>],
        create: bool,
        raw: &[u8],
    ) -> Result<Option<OwnedFd>> {
        let r = self.root.dir(comps, create, raw);
        let made = self.root.take_made();
        self.created.extend(made.iter().map(|(id, _)| *id));
        self.record_unlocked();
        let r = r?;
        // Made for a missing parent: the lower layers' directory, not a default.
        self.dirs_from_lower(comps, &made, raw)?;
        Ok(r)
    }

    pub(super) fn err(&self, op: &'static str, raw: &[u8], e: impl Into<io::Error>) -> Error {
        let rel = EntryPath::parse(raw)
            .map(|p| p.to_bytes())
            .unwrap_or_default();
        Error::io(
            op,
            self.root.path().join(std::ffi::OsStr::from_bytes(&rel)),
            e.into(),
        )
    }

    fn mark_created(&mut self, dir: impl AsFd, name: &[u8]) {
        if let Ok(Some(st)) = type_at(dir, name) {
            self.created.insert((st.st_dev, st.st_ino));
        }
    }

    pub(super) fn is_created(&self, st: &rustix::fs::Stat) -> bool {
        self.created.contains(&(st.st_dev, st.st_ino))
    }

    /// Removes whatever is at `name` (a link is removed, never written through).
    pub(super) fn clear(&mut self, dir: &OwnedFd, name: &[u8], raw: &[u8]) -> Result<()> {
        let st = type_at(dir, name).map_err(|e| self.err("stat", raw, e))?;
        if st.is_none() {
            return Ok(());
        }
        self.removed = true;
        remove_all_at(dir, name, self.unlocking()).map_err(|e| self.err("remove", raw, e))?;
        // A file whose last link went is forgotten: a layer repeating one
        // entry must not grow memory (some filesystems never reuse inodes).
        if let Some(st) = st.filter(|st| {
            st.st_nlink == 1 && FileType::from_raw_mode(st.st_mode) != FileType::Directory
        }) {
            self.created.remove(&(st.st_dev, st.st_ino));
        }
        Ok(())
    }

    fn root_attrs(&mut self, raw: &[u8], attrs: &Attrs) -> Result<()> {
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

    fn dir(
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
    fn initial_mode(&self, attrs: &Attrs, private: u32) -> Mode {
        if (attrs.uid, attrs.gid) == self.ids {
            Mode::from_raw_mode(attrs.mode & 0o777)
        } else {
            Mode::from_raw_mode(private)
        }
    }

    /// Owner, `mode` (the entry's, or for a directory while applying
    /// [`Applier::dir_mode_now`]), xattrs through an open file or directory
    /// whose current state is `st` (in that order: chown clears setuid bits
    /// and capabilities). An owner or mode already right is left alone.
    fn fd_attrs(
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

    fn hard_link(
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

    fn xattr_result(&mut self, r: io::Result<()>, raw: &[u8]) -> Result<()> {
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

fn set_times(r: rustix::io::Result<()>, err: impl FnOnce() -> Error) -> Result<()> {
    match r {
        Ok(()) => Ok(()),
        // Times outside what the filesystem stores are not worth failing for.
        Err(Errno::INVAL | Errno::OVERFLOW) => Ok(()),
        Err(_) => Err(err()),
    }
}
