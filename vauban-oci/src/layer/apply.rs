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

use rustix::fs::FileType;

use super::dirfix::{Comps, DirFix};
use super::entry::{EntryParser, Parsed};
use super::path::{unsafe_entry, EntryPath};
use super::resolve::Root;
use super::{ApplyOptions, ApplyReport, WHITEOUT_PREFIX};
use crate::beneath::{remove_all_at, type_at};
use crate::error::{Error, Result};
use crate::tar_writer::Kind;

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

/// One apply in progress: the target, what the layer made in it, and the
/// directories whose mode and mtime are set at the end. Its entry kinds are
/// made in [`super::create`], their attributes set in [`super::set_attrs`],
/// whiteouts applied in [`super::whiteout`].
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
    pub(super) buf: Vec<u8>,
    pub(super) parser: EntryParser,
    /// The parent directory of the last entry (tar streams list a directory's
    /// files together), reused by the next entry with the same parent. Only a
    /// removal can change what a path resolves to, and an entry removes names
    /// inside its parent only; still, to keep the argument local, the cache is
    /// dropped after any removal and before any whiteout (the hostile table
    /// has parents replaced between two of their files).
    pub(super) parent: Option<(Vec<Vec<u8>>, OwnedFd)>,
    /// Set when the current entry removed something.
    pub(super) removed: bool,
    /// Our effective uid and gid (what new files belong to).
    pub(super) ids: (u32, u32),
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
    pub(super) fn parent(
        &mut self,
        comps: &[Vec<u8>],
        raw: &[u8],
    ) -> Result<(Vec<Vec<u8>>, OwnedFd)> {
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

    pub(super) fn mark_created(&mut self, dir: impl AsFd, name: &[u8]) {
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
}
