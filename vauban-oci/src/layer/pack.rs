//! Packing a directory tree or an overlayfs upper dir into a layer: sorted
//! entries, hard links by (dev, ino), xattrs, overlay whiteouts and opaque dirs
//! translated to OCI form, excludes, `SOURCE_DATE_EPOCH` clamping.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File, Metadata};
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::Path;

use super::path::{unsafe_entry, EntryPath};
use super::writer::LayerWriter;
use super::xattr::{self, is_opaque, overlay_value, Xattr};
use super::{LayerSource, PackOptions, PackedLayer, OPAQUE_WHITEOUT, WHITEOUT_PREFIX};
use crate::error::{Error, IoContext, Result};
use crate::tar_writer::{Entry, Kind};

impl crate::store::Store {
    /// [`pack`]s `source` into a new layer blob of the store (temp file,
    /// hashed, fsynced, renamed to its digest).
    pub fn pack_layer(&self, source: LayerSource<'_>, opts: &PackOptions) -> Result<PackedLayer> {
        let mut w = self.blob_writer()?;
        let layer = pack(source, opts, &mut w)?;
        w.flush().at("write", self.tmp_dir())?;
        w.commit(Some(&layer.digest))?;
        Ok(layer)
    }
}

/// Writes a layer from `source` into `out` in one streaming pass and returns its
/// digest, size and diff_id.
pub fn pack(source: LayerSource<'_>, opts: &PackOptions, out: impl Write) -> Result<PackedLayer> {
    let (root, upper) = match source {
        LayerSource::Tree(p) => (p, false),
        LayerSource::Upper(p) => (p, true),
    };
    let md = fs::symlink_metadata(root).at("stat", root)?;
    if !md.is_dir() {
        return Err(Error::io(
            "pack",
            root,
            std::io::Error::new(std::io::ErrorKind::NotADirectory, "not a directory"),
        ));
    }
    let mut packer = Packer {
        upper,
        writer: LayerWriter::new(out, opts.compression, opts.source_date_epoch),
        links: HashMap::new(),
        excludes: Excludes::new(&opts.exclude)?,
    };
    let mut comps = Vec::new();
    if !upper {
        let raw = xattr::read_all(root).at("read xattrs of", root)?;
        packer.emit(root, &comps, &md, raw)?;
    }
    packer.walk(root, &mut comps)?;
    let (_, layer) = packer.writer.finish().at("finish layer of", root)?;
    tracing::debug!(root = %root.display(), digest = %layer.digest, entries = layer.entries, "packed layer");
    Ok(layer)
}

/// A directory entry waiting to be packed.
struct Child {
    /// Its name in the layer (`.wh.NAME` for a whiteout).
    key: Vec<u8>,
    path: std::path::PathBuf,
    md: Metadata,
    raw: Vec<Xattr>,
    whiteout: bool,
}

struct Packer<W: Write> {
    upper: bool,
    writer: LayerWriter<W>,
    links: HashMap<(u64, u64), Vec<u8>>,
    excludes: Excludes,
}

impl<W: Write> Packer<W> {
    /// Packs everything under `root` (whose components are `comps`), depth
    /// first in name order. Iterative: a tree of any depth (a build step may
    /// make one) cannot overflow the stack.
    fn walk(&mut self, root: &Path, comps: &mut Vec<Vec<u8>>) -> Result<()> {
        let base = comps.len();
        // One level per open directory: its children still to pack, last first.
        let mut stack = vec![self.children(root, comps)?];
        while let Some(level) = stack.last_mut() {
            let Some(Child {
                key,
                path,
                md,
                raw,
                whiteout,
            }) = level.pop()
            else {
                stack.pop();
                if comps.len() > base {
                    comps.pop();
                }
                continue;
            };
            comps.push(key);
            if whiteout {
                self.marker(&path, comps, &md)?;
                comps.pop();
                continue;
            }
            let opaque = self.upper && md.is_dir() && is_opaque(&raw);
            self.emit(&path, comps, &md, raw)?;
            if !md.is_dir() {
                comps.pop();
                continue;
            }
            if opaque {
                comps.push(OPAQUE_WHITEOUT.as_bytes().to_vec());
                self.marker(&path, comps, &md)?;
                comps.pop();
            }
            // `comps` keeps this directory until its level is done.
            stack.push(self.children(&path, comps)?);
        }
        Ok(())
    }

    /// The children of `dir` (components `comps`) to pack, stat-ed and sorted
    /// by the name they get in the layer (a whiteout `x` sorts as `.wh.x`),
    /// reversed so that popping yields them in order.
    fn children(&self, dir: &Path, comps: &mut Vec<Vec<u8>>) -> Result<Vec<Child>> {
        let mut children = Vec::new();
        if self.excludes.content.contains(comps.as_slice()) {
            return Ok(children);
        }
        for e in fs::read_dir(dir).at("read directory", dir)? {
            let name = e.at("read directory", dir)?.file_name();
            comps.push(name.as_bytes().to_vec());
            let excluded = self.excludes.whole.contains(comps.as_slice());
            comps.pop();
            if excluded {
                continue;
            }
            let path = dir.join(&name);
            let md = fs::symlink_metadata(&path).at("stat", &path)?;
            let raw = xattr::read_all(&path).at("read xattrs of", &path)?;
            let whiteout = self.upper && is_whiteout(&md, &raw);
            if !whiteout && name.as_bytes().starts_with(WHITEOUT_PREFIX.as_bytes()) {
                // It would be read back as a whiteout (or an opaque marker) and
                // delete lower content: a whiteout name cannot be a file.
                return Err(unsafe_entry(
                    path_of(comps, name.as_bytes()).as_slice(),
                    "a file named like a whiteout cannot be packed",
                ));
            }
            let key = if whiteout {
                [WHITEOUT_PREFIX.as_bytes(), name.as_bytes()].concat()
            } else {
                name.as_bytes().to_vec()
            };
            children.push(Child {
                key,
                path,
                md,
                raw,
                whiteout,
            });
        }
        children.sort_by(|a, b| b.key.cmp(&a.key));
        Ok(children)
    }

    /// Writes a whiteout or opaque marker (an empty regular file, mode 0).
    fn marker(&mut self, path: &Path, comps: &[Vec<u8>], md: &Metadata) -> Result<()> {
        let meta = Entry {
            name: EntryPath(comps.to_vec()).tar_name(false),
            kind: Kind::File(0),
            mode: 0,
            uid: 0,
            gid: 0,
            mtime: md.mtime().max(0) as u64,
            xattrs: Vec::new(),
        };
        self.writer
            .append(meta, None)
            .at("write layer entry for", path)
    }

    fn emit(
        &mut self,
        path: &Path,
        comps: &[Vec<u8>],
        md: &Metadata,
        raw: Vec<Xattr>,
    ) -> Result<()> {
        let entry = EntryPath(comps.to_vec());
        let ft = md.file_type();
        let mut file = None;
        let mut kind = if ft.is_dir() {
            Kind::Dir
        } else if ft.is_symlink() {
            Kind::Symlink(
                fs::read_link(path)
                    .at("read link", path)?
                    .as_os_str()
                    .as_bytes()
                    .to_vec(),
            )
        } else if ft.is_file() {
            let f = fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NOFOLLOW)
                .open(path)
                .at("open", path)?;
            let size = f.metadata().at("stat", path)?.len();
            file = Some(f);
            Kind::File(size)
        } else if ft.is_char_device() {
            Kind::Char(rustix::fs::major(md.rdev()), rustix::fs::minor(md.rdev()))
        } else if ft.is_block_device() {
            Kind::Block(rustix::fs::major(md.rdev()), rustix::fs::minor(md.rdev()))
        } else if ft.is_fifo() {
            Kind::Fifo
        } else {
            tracing::warn!(path = %path.display(), "socket not packed");
            return Ok(());
        };
        let whiteout_dev = matches!(kind, Kind::Char(0, 0));
        if !ft.is_dir() && md.nlink() > 1 && !whiteout_dev {
            let key = (md.dev(), md.ino());
            match self.links.get(&key) {
                Some(first) => {
                    kind = Kind::HardLink(first.clone());
                    file = None;
                }
                None => {
                    self.links.insert(key, entry.to_bytes());
                }
            }
        }
        let meta = Entry {
            name: entry.tar_name(ft.is_dir()),
            kind,
            mode: md.mode() & 0o7777,
            uid: md.uid().into(),
            gid: md.gid().into(),
            mtime: md.mtime().max(0) as u64,
            xattrs: xattr::for_layer(raw),
        };
        let data = file
            .as_mut()
            .map(|f: &mut File| f as &mut dyn std::io::Read);
        self.writer
            .append(meta, data)
            .at("write layer entry for", path)
    }
}

/// `comps/name` joined with `/`, for messages.
fn path_of(comps: &[Vec<u8>], name: &[u8]) -> Vec<u8> {
    let mut p = comps.join(&b'/');
    if !p.is_empty() {
        p.push(b'/');
    }
    p.extend_from_slice(name);
    p
}

/// An overlay whiteout: a char device 0/0, or an empty file marked with the
/// `overlay.whiteout` xattr (nested overlays).
fn is_whiteout(md: &Metadata, raw: &[Xattr]) -> bool {
    let ft = md.file_type();
    (ft.is_char_device() && md.rdev() == 0)
        || (ft.is_file() && md.len() == 0 && overlay_value(raw, b".whiteout").is_some())
}

/// Exclusion sets, as normalised component lists.
pub(crate) struct Excludes {
    /// Left out with their subtree.
    whole: HashSet<Vec<Vec<u8>>>,
    /// Directories kept but emptied (`dir/*`).
    content: HashSet<Vec<Vec<u8>>>,
}

impl Excludes {
    /// Parses exclude paths (relative to the root; `dir/*` keeps `dir`).
    pub(crate) fn new(paths: &[std::path::PathBuf]) -> Result<Self> {
        let mut ex = Excludes {
            whole: HashSet::new(),
            content: HashSet::new(),
        };
        for p in paths {
            let bytes = p.as_os_str().as_bytes();
            if let Some(dir) = bytes.strip_suffix(b"/*") {
                ex.content.insert(EntryPath::parse(dir)?.0);
            } else {
                ex.whole.insert(EntryPath::parse(bytes)?.0);
            }
        }
        Ok(ex)
    }

    /// True when `comps` is excluded by itself or through an ancestor.
    pub(crate) fn excludes(&self, comps: &[Vec<u8>]) -> bool {
        (1..=comps.len()).any(|i| self.whole.contains(&comps[..i]))
            || (0..comps.len()).any(|i| self.content.contains(&comps[..i]))
    }
}
