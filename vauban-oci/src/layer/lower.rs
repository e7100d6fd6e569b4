//! The layer dirs below an overlay-mode apply ([`super::LowerDirs`]), read as
//! overlayfs stacks them: a hard link to a file that only a lower layer holds
//! is written as a copy of that file (overlayfs cannot link across layers, and
//! a copy is what the merged view shows), and a parent directory the layer
//! lacks takes the mode and owner of the lower layers' directory, which it
//! would otherwise hide. Lookups never follow a link: each component is
//! opened with [`open_beneath`], and a whiteout or a non-directory in a layer
//! hides what is below it, as does an opaque directory.

use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use rustix::fs::{AtFlags, FileType, Gid, Mode, OFlags, Stat, Uid};
use rustix::io::Errno;

use super::apply::Applier;
use super::entry::Attrs;
use super::path::{unsafe_entry, EntryPath};
use super::xattr::{self, Xattr};
use super::WhiteoutMode;
use crate::beneath::{open_beneath, type_at, DirId};
use crate::error::{Error, Result};

/// Where a path resolved in a stack of layer dirs.
pub(super) struct Found {
    /// The layer that holds it (0 = the top-most given).
    pub(super) layer: usize,
    /// Its parent directory in that layer.
    pub(super) parent: OwnedFd,
    /// Its own stat (not followed).
    pub(super) stat: Stat,
}

/// Whether `st` is an overlay whiteout (a char device 0/0).
pub(super) fn is_whiteout(st: &Stat) -> bool {
    FileType::from_raw_mode(st.st_mode) == FileType::CharacterDevice && st.st_rdev == 0
}

/// Resolves `comps` (not empty) in the layer dirs `layers`, top-most first, as
/// overlayfs merges them; `None` when it does not exist in the merged view.
pub(super) fn lookup(layers: &[BorrowedFd<'_>], comps: &[Vec<u8>]) -> io::Result<Option<Found>> {
    let Some((name, parents)) = comps.split_last() else {
        return Ok(None);
    };
    // The layers in which the directory walked so far is merged, top-most first.
    let mut merged: Vec<(usize, OwnedFd)> = layers
        .iter()
        .enumerate()
        .map(|(i, fd)| Ok((i, fd.try_clone_to_owned()?)))
        .collect::<io::Result<_>>()?;
    for comp in parents {
        let mut next = Vec::new();
        for (i, dir) in &merged {
            match type_at(dir, comp)? {
                None => continue,
                Some(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {
                    let sub = open_beneath(dir, comp)?;
                    let opaque = xattr::is_opaque_dir(&sub);
                    next.push((*i, sub));
                    if opaque {
                        break;
                    }
                }
                // A whiteout, a file or a link: what is below is hidden.
                Some(_) => break,
            }
        }
        if next.is_empty() {
            return Ok(None);
        }
        merged = next;
    }
    for (layer, parent) in merged {
        match type_at(&parent, name)? {
            None => continue,
            Some(st) if is_whiteout(&st) => return Ok(None),
            Some(stat) => {
                return Ok(Some(Found {
                    layer,
                    parent,
                    stat,
                }))
            }
        }
    }
    Ok(None)
}

/// The xattrs of `name` in `dir` as a layer dir holds them, in the form the
/// applier takes from a tar entry: the overlay names it escaped are unescaped,
/// overlayfs's own are dropped.
fn xattrs_at(dir: impl AsFd, name: &[u8]) -> io::Result<Vec<Xattr>> {
    let mut path = format!("/proc/self/fd/{}/", dir.as_fd().as_raw_fd()).into_bytes();
    path.extend_from_slice(name);
    let all = xattr::read_all(std::path::Path::new(std::ffi::OsStr::from_bytes(&path)))?;
    Ok(all
        .into_iter()
        .filter_map(|(n, v)| Some((xattr::unescape_overlay(&n)?, v)))
        .collect())
}

/// The attributes of a node stat-ed as `st`, with `xattrs`.
fn stat_attrs(st: &Stat, xattrs: Vec<Xattr>) -> Attrs {
    Attrs {
        mode: st.st_mode & 0o7777,
        uid: st.st_uid,
        gid: st.st_gid,
        mtime: st.st_mtime,
        xattrs,
    }
}

impl Applier {
    /// Whether lower layer dirs take part (overlay mode, some given).
    fn with_lowers(&self) -> bool {
        self.opts.whiteouts == WhiteoutMode::Overlay && !self.opts.lowers.dirs.is_empty()
    }

    /// Opens the lower dirs once, after waiting until they are complete.
    fn open_lowers(&mut self, raw: &[u8]) -> Result<()> {
        if self.lowers.is_some() {
            return Ok(());
        }
        if let Some(ready) = &self.opts.lowers.ready {
            ready().map_err(|e| Error::io("wait for the lower layers of", self.root.path(), e))?;
        }
        let mut fds = Vec::new();
        for dir in &self.opts.lowers.dirs {
            match rustix::fs::open(
                dir,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            ) {
                Ok(fd) => fds.push(fd),
                Err(Errno::NOENT) => {
                    tracing::debug!(dir = %dir.display(), "lower layer dir missing, skipped");
                }
                Err(e) => return Err(self.err("open a lower layer dir for", raw, e)),
            }
        }
        self.lowers = Some(fds);
        Ok(())
    }

    /// [`lookup`] of `comps` in this layer's dir (layer 0) and the lower ones.
    fn lookup_merged(&mut self, comps: &[Vec<u8>], own: bool, raw: &[u8]) -> Result<Option<Found>> {
        self.open_lowers(raw)?;
        let mut layers = Vec::new();
        if own {
            layers.push(self.root.fd().as_fd());
        }
        layers.extend(self.lowers.iter().flatten().map(|fd| fd.as_fd()));
        let found =
            lookup(&layers, comps).map_err(|e| self.err("look up in the lower layers", raw, e));
        Ok(found?.map(|f| Found {
            layer: f.layer + usize::from(!own),
            ..f
        }))
    }

    /// A hard link entry `raw` whose target `tpath` this layer's dir does not
    /// hold: in overlay mode, a copy of the target found in a lower layer is
    /// written at `name` in `parent`.
    pub(super) fn link_from_lower(
        &mut self,
        parent: &OwnedFd,
        name: &[u8],
        raw: &[u8],
        tpath: &EntryPath,
    ) -> Result<()> {
        let missing = || unsafe_entry(raw, "hard link target does not exist");
        if !self.with_lowers() {
            return Err(missing());
        }
        // This layer's dir comes first: its whiteouts and opaque directories
        // hide the lower layers' files.
        let found = self.lookup_merged(&tpath.0, true, raw)?;
        let Some(Found {
            layer,
            parent: tdir,
            stat,
        }) = found.filter(|f| f.layer > 0)
        else {
            return Err(missing());
        };
        let Some(tname) = tpath.0.last() else {
            return Err(missing());
        };
        tracing::debug!(entry = %String::from_utf8_lossy(raw), layer, "hard link to a lower layer written as a copy");
        let xattrs = xattrs_at(&tdir, tname).map_err(|e| self.err("read xattrs for", raw, e))?;
        let attrs = stat_attrs(&stat, xattrs);
        match FileType::from_raw_mode(stat.st_mode) {
            FileType::Directory => Err(unsafe_entry(raw, "hard link to a directory")),
            FileType::RegularFile => {
                let fd = rustix::fs::openat(
                    &tdir,
                    tname.as_slice(),
                    OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| self.err("open the hard link target of", raw, e))?;
                let now = rustix::fs::fstat(&fd).map_err(|e| self.err("stat", raw, e))?;
                if (now.st_dev, now.st_ino) != (stat.st_dev, stat.st_ino) {
                    return Err(unsafe_entry(raw, "hard link target changed while read"));
                }
                let mut file = std::fs::File::from(fd);
                self.file(parent, name, raw, &attrs, &mut file as &mut dyn Read)
            }
            FileType::Symlink => {
                let target = rustix::fs::readlinkat(&tdir, tname.as_slice(), Vec::new())
                    .map_err(|e| self.err("read the hard link target of", raw, e))?;
                self.clear(parent, name, raw)?;
                rustix::fs::symlinkat(target.as_bytes(), parent, name)
                    .map_err(|e| self.err("symlink", raw, e))?;
                self.node_attrs(parent, name, raw, &attrs, true)
            }
            ft @ (FileType::CharacterDevice | FileType::BlockDevice | FileType::Fifo) => {
                let (ma, mi) = (
                    rustix::fs::major(stat.st_rdev),
                    rustix::fs::minor(stat.st_rdev),
                );
                self.node(parent, name, raw, &attrs, ft, ma, mi)
            }
            _ => Err(unsafe_entry(raw, "hard link to a socket")),
        }
    }

    /// Gives the directories just made for missing parents (`made`: their
    /// ids and how many components of `comps` name them) the mode, owner
    /// and mtime of the same directory in the lower layers, when one has it.
    pub(super) fn dirs_from_lower(
        &mut self,
        comps: &[Vec<u8>],
        made: &[(DirId, usize)],
        raw: &[u8],
    ) -> Result<()> {
        if made.is_empty() || !self.with_lowers() {
            return Ok(());
        }
        for &(id, depth) in made {
            let Some(prefix) = comps.get(..depth) else {
                continue;
            };
            let Some(found) = self.lookup_merged(prefix, false, raw)? else {
                continue;
            };
            if FileType::from_raw_mode(found.stat.st_mode) != FileType::Directory {
                continue;
            }
            let Some(fd) = self.root.dir(prefix, false, raw)? else {
                continue;
            };
            let st = rustix::fs::fstat(&fd).map_err(|e| self.err("stat", raw, e))?;
            if (st.st_dev, st.st_ino) != id {
                continue;
            }
            let attrs = stat_attrs(&found.stat, Vec::new());
            if (st.st_uid, st.st_gid) != (attrs.uid, attrs.gid) {
                let r = rustix::fs::chownat(
                    &fd,
                    "",
                    Some(Uid::from_raw(attrs.uid)),
                    Some(Gid::from_raw(attrs.gid)),
                    AtFlags::EMPTY_PATH,
                );
                self.owner_result(r, raw)?;
            }
            // Unprivileged it keeps owner rwx until the end (entries are made in it).
            let now = self.dir_mode_now(attrs.mode);
            rustix::fs::chmodat(&fd, ".", Mode::from_raw_mode(now), AtFlags::empty())
                .map_err(|e| self.err("chmod", raw, e))?;
            let fix = self.entry_fix(&st, &attrs);
            self.dirs.insert(prefix.to_vec(), fix);
        }
        Ok(())
    }
}
