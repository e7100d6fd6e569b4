//! The end-of-apply fix-up of directories: their mtimes (children change
//! them while a layer is applied) and, unprivileged, their modes. Without
//! `CAP_DAC_OVERRIDE` a directory keeps owner rwx while the layer is applied,
//! and a read-only one that something is made or removed in (Fedora's 0555
//! `/usr/bin` from a lower layer) is unlocked for the time being; the exact
//! modes are put back here, deepest first. As root none of this happens.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use rustix::fs::{AtFlags, Mode};
use rustix::io::Errno;

use super::apply::Applier;
use super::entry::Attrs;
use super::set_attrs::times;
use crate::beneath::DirId;
use crate::error::Result;

/// A path inside the root, by components.
pub(super) type Comps = Vec<Vec<u8>>;

/// What is set on a directory at the end of an apply.
#[derive(Debug, Clone, Copy)]
pub(super) struct DirFix {
    /// Its (dev, ino) when recorded: another directory found at its path at
    /// the end is left alone.
    id: DirId,
    /// The mtime of its entry.
    mtime: Option<i64>,
    /// The mode to put back: its entry's (unprivileged, it keeps owner rwx
    /// meanwhile), or the one it had before it was unlocked.
    mode: Option<u32>,
    /// Recorded by its own entry: wins over an unlock recorded through
    /// another path to the same directory (a link in a parent).
    entry: bool,
}

impl Applier {
    /// Unprivileged, gives the owner rwx on the directory `fd` (resolved from
    /// `comps`) if it lacks them, so that entries can be made or removed in
    /// it; its mode is put back at the end.
    pub(super) fn unlock(&mut self, fd: &OwnedFd, comps: &[Vec<u8>], raw: &[u8]) -> Result<()> {
        let r = self.root.unlock(fd, comps);
        self.record_unlocked();
        r.map_err(|e| self.err("unlock the parent directory of", raw, e))
    }

    /// Records the directories the root unlocked: their mode is put back at
    /// the end, unless their own entry set one (kept, already exact).
    pub(super) fn record_unlocked(&mut self) {
        for u in self.root.take_unlocked() {
            let fresh = DirFix {
                id: u.id,
                mtime: None,
                mode: Some(u.mode),
                entry: false,
            };
            match self.dirs.entry(u.comps) {
                Entry::Vacant(v) => {
                    v.insert(fresh);
                }
                Entry::Occupied(mut o) => {
                    let fix = o.get_mut();
                    if fix.id != u.id {
                        *fix = fresh;
                    } else if fix.mode.is_none() {
                        fix.mode = Some(u.mode);
                    }
                }
            }
        }
    }

    /// Whether directories are unlocked before being written (unprivileged).
    pub(super) fn unlocking(&self) -> bool {
        !self.privileged
    }

    /// The mode a directory has while the layer is applied: its own, plus
    /// owner rwx when unprivileged.
    pub(super) fn dir_mode_now(&self, mode: u32) -> u32 {
        if self.privileged {
            mode & 0o7777
        } else {
            mode & 0o7777 | 0o700
        }
    }

    /// The end-of-apply record of a directory entry stat-ed as `st`.
    pub(super) fn entry_fix(&self, st: &rustix::fs::Stat, attrs: &Attrs) -> DirFix {
        DirFix {
            id: (st.st_dev, st.st_ino),
            mtime: Some(attrs.mtime),
            mode: (!self.privileged).then_some(attrs.mode & 0o7777),
            entry: true,
        }
    }

    /// Sets directory mtimes and, unprivileged, puts back their modes;
    /// best effort. Each directory is resolved in the root as during the
    /// apply and must still be the one recorded; the deepest go first (a
    /// parent losing owner search would hide its children); chmod and
    /// utimensat go through the directory's own `O_PATH` fd, following nothing.
    pub(super) fn finish_dirs(&mut self) {
        let dirs = std::mem::take(&mut self.dirs);
        // One fix per directory: its entry's wins over an unlock through a link.
        let mut by_id: HashMap<DirId, (Comps, DirFix)> = HashMap::with_capacity(dirs.len());
        for (comps, fix) in dirs {
            match by_id.entry(fix.id) {
                Entry::Vacant(v) => {
                    v.insert((comps, fix));
                }
                Entry::Occupied(mut o) => {
                    if fix.entry && !o.get().1.entry {
                        o.insert((comps, fix));
                    }
                }
            }
        }
        let mut fixes: Vec<_> = by_id.into_values().collect();
        if !self.privileged {
            fixes.sort_unstable_by_key(|(comps, _)| std::cmp::Reverse(comps.len()));
        }
        for (comps, fix) in fixes {
            if let Err(e) = self.finish_dir(&comps, &fix) {
                let p: PathBuf = comps
                    .iter()
                    .map(|c| std::ffi::OsStr::from_bytes(c))
                    .collect();
                if fix.mode.is_some() {
                    tracing::warn!(dir = %p.display(), error = %e, "directory mode not restored");
                } else {
                    tracing::debug!(dir = %p.display(), error = %e, "directory mtime not set");
                }
            }
        }
    }

    fn finish_dir(&mut self, comps: &[Vec<u8>], fix: &DirFix) -> io::Result<()> {
        let fd = match self.root.dir(comps, false, b"") {
            Ok(Some(fd)) => fd,
            // Gone (or replaced by something else): nothing of ours to fix.
            Ok(None) | Err(_) => return Ok(()),
        };
        let st = rustix::fs::fstat(&fd)?;
        if (st.st_dev, st.st_ino) != fix.id {
            return Ok(());
        }
        if let Some(mode) = fix.mode.filter(|m| st.st_mode & 0o7777 != *m) {
            rustix::fs::chmodat(&fd, ".", Mode::from_raw_mode(mode), AtFlags::empty())?;
        }
        if let Some(mtime) = fix.mtime {
            let r = rustix::fs::utimensat(&fd, ".", &times(mtime), AtFlags::empty());
            match r {
                Ok(()) | Err(Errno::INVAL | Errno::OVERFLOW) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }
}
