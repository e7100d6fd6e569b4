//! The two things a diff compares, each named on the command line: an image
//! of the store (`NAME[:TAG]`, `NAME@DIGEST`, a conffs host's
//! `MASTER/HOST`), a tree on disk, or a tar archive (a `conffs-HOST.tgz`,
//! gzip, zstd or plain). Each is a stack of sources, top first: an image's
//! layer blobs, or the one tree or archive; every source gives its index
//! (`LayerIndex`) and, on demand, the bytes of a few of its files.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufReader, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use vauban_oci::store::Store;
use vauban_oci::{Image, Reference};

use super::index::{content_digest, overlay_internal, LayerIndex, INDEX_LIMIT};
use super::node::{Kind, Node};
use crate::error::{Error, Result};
use crate::export::conffs::source::{layers_of, read_layer, Flow, LayerBlob};

/// One side of a diff.
#[derive(Debug)]
pub struct Side {
    /// As it was named.
    pub name: String,
    /// What it is.
    pub what: SideKind,
    /// Its sources, top first.
    pub(super) sources: Vec<Source>,
}

/// What a side is.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SideKind {
    /// An image of the store.
    Image {
        /// Its manifest digest.
        digest: String,
    },
    /// A directory on disk.
    Tree {
        /// Its path.
        path: PathBuf,
    },
    /// A tar archive on disk.
    Archive {
        /// Its path.
        path: PathBuf,
    },
    /// Made by `vauban serve` from what its store holds: an image, and the
    /// blobs stacked on it, bottom first (a host's conffs, its drift).
    Served {
        /// The image's manifest digest.
        image: String,
        /// What is stacked on it, in words (`conffs of web01 (sha256:…)`).
        stacked: Vec<String>,
    },
    /// An archive as a layer on top of another side (`A+ARCHIVE`: a host's
    /// drift over the image it booted).
    Stacked {
        /// The side below.
        below: Box<SideKind>,
        /// The archive on top.
        archive: PathBuf,
    },
}

/// Where entries come from.
#[derive(Debug, Clone)]
pub(super) enum Source {
    /// A layer blob of the store.
    Layer(LayerBlob),
    /// A directory on disk.
    Tree(PathBuf),
    /// A tar archive on disk.
    Archive(PathBuf),
}

impl Side {
    /// The side named `spec`: an existing directory or file by that path,
    /// else an image of `store`.
    pub fn open(store: &Store, spec: &str) -> Result<Side> {
        let path = Path::new(spec);
        let on_disk = match std::fs::metadata(path) {
            Ok(m) if m.is_dir() => Some((
                SideKind::Tree { path: path.into() },
                Source::Tree(path.into()),
            )),
            Ok(m) if m.is_file() => Some((
                SideKind::Archive { path: path.into() },
                Source::Archive(path.into()),
            )),
            _ => None,
        };
        if let Some((what, source)) = on_disk {
            let also_image = Reference::parse(spec)
                .ok()
                .is_some_and(|r| store.resolve(&r).is_ok());
            if also_image {
                tracing::warn!(
                    "{spec} is both a path here and an image of the store: the path is \
                     compared (name the image with its tag, {spec}:TAG, to compare it)"
                );
            }
            return Ok(Side {
                name: spec.into(),
                what,
                sources: vec![source],
            });
        }
        let not_found = |reason: String| Error::Diff {
            what: spec.into(),
            reason,
        };
        // `A+ARCHIVE`: the archive as one more layer on top of A.
        if let Some((below, top)) = spec.rsplit_once('+') {
            if Path::new(top).is_file() {
                return Ok(Side::open(store, below)?.stacked(spec, Path::new(top)));
            }
        }
        if let Some((_, digest)) = spec.split_once('@') {
            let digest = vauban_oci::Digest::parse(digest)
                .map_err(|e| not_found(format!("not an image digest ({e})")))?;
            return Side::of_digest(store, spec, &digest);
        }
        let reference = Reference::parse(spec).map_err(|e| {
            not_found(format!(
                "no directory or file by that name, and not an image name ({e})"
            ))
        })?;
        let image = store.image(&reference).map_err(|e| {
            not_found(format!(
                "no directory or file by that name, and no such image in the store {} ({e})",
                store.root().display()
            ))
        })?;
        Side::of_image(spec, &image)
    }

    /// `self` with the archive `top` as one more layer on top, named `name`
    /// (a host's drift over the tree it booted).
    pub fn stacked(mut self, name: &str, top: &Path) -> Side {
        self.sources.insert(0, Source::Archive(top.into()));
        self.name = name.into();
        self.what = SideKind::Stacked {
            below: Box::new(self.what),
            archive: top.into(),
        };
        self
    }

    /// The image whose manifest is the blob `digest` of `store`, named or
    /// not (an earlier build's image stays until `vauban gc`), named `name`.
    pub fn of_digest(store: &Store, name: &str, digest: &vauban_oci::Digest) -> Result<Side> {
        let image = image_by_digest(store, digest).map_err(|e| Error::Diff {
            what: name.into(),
            reason: format!(
                "no image with the manifest digest {digest} in the store {} ({e})",
                store.root().display()
            ),
        })?;
        Side::of_image(name, &image)
    }

    /// The side of `image`, named `name`.
    pub fn of_image(name: &str, image: &Image) -> Result<Side> {
        let mut layers = layers_of(image)?;
        layers.reverse();
        Ok(Side {
            name: name.into(),
            what: SideKind::Image {
                digest: image.manifest_digest.to_string(),
            },
            sources: layers.into_iter().map(Source::Layer).collect(),
        })
    }

    /// How many of the bottom sources `self` and `other` share (the same
    /// layers, by diff_id, in the same order from the bottom).
    pub(super) fn shared_with(&self, other: &Side) -> usize {
        // The same blob with the same diff_id: a config claiming another
        // image's diff_ids over other blobs shares nothing.
        let diff_id = |s: &Source| match s {
            Source::Layer(l) => Some((l.digest.clone(), l.diff_id.clone())),
            _ => None,
        };
        self.sources
            .iter()
            .rev()
            .zip(other.sources.iter().rev())
            .take_while(|(a, b)| diff_id(a).is_some() && diff_id(a) == diff_id(b))
            .count()
    }
}

impl Source {
    /// What this source is, in messages.
    pub(super) fn describe(&self) -> String {
        match self {
            Source::Layer(l) => format!("layer blob {}", l.digest),
            Source::Tree(p) => format!("tree {}", p.display()),
            Source::Archive(p) => format!("archive {}", p.display()),
        }
    }

    /// The index of this source: a layer's kept one when the store has it
    /// (else made from its blob and kept), a tree walked, an archive read.
    pub(super) fn index(&self, store: &Store) -> Result<LayerIndex> {
        match self {
            Source::Layer(layer) => {
                let kept = store.diff_index_path(&layer.digest);
                if let Some(index) = read_bounded(&kept).and_then(|b| LayerIndex::from_text(&b)) {
                    return Ok(index);
                }
                let index = self.index_of_stream(store)?;
                // The blob was read to its end and checked: keep its index.
                if let Err(e) = store.write_diff_index(&layer.digest, &index.to_text()) {
                    tracing::warn!(layer = %layer.diff_id, error = %e, "diff index not kept");
                }
                Ok(index)
            }
            Source::Archive(_) => self.index_of_stream(store),
            Source::Tree(root) => walk_tree(root),
        }
    }

    /// The index of a layer's or an archive's tar stream, read whole.
    fn index_of_stream(&self, store: &Store) -> Result<LayerIndex> {
        let what = self.describe();
        let mut index = LayerIndex::default();
        self.read_entries(store, |entry, n| {
            index.add_entry(entry, &what, n)?;
            Ok(Flow::Continue)
        })?;
        Ok(index)
    }

    /// Reads the tar entries of a layer (checked at the end of its stream)
    /// or an archive in order, with their numbers; a tree has none.
    fn read_entries(
        &self,
        store: &Store,
        visit: impl FnMut(&mut tar::Entry<'_, &mut dyn Read>, u64) -> Result<Flow>,
    ) -> Result<()> {
        match self {
            Source::Layer(layer) => read_layer(store, layer, visit).map(drop),
            Source::Archive(path) => read_archive(path, visit),
            Source::Tree(_) => Ok(()),
        }
    }

    /// The first `limit` bytes of each of `wanted` (regular files) in this
    /// source, each from its last entry; `last`, when known, is the number
    /// of the last entry any of them is at: reading stops there.
    pub(super) fn contents(
        &self,
        store: &Store,
        wanted: &BTreeSet<Vec<u8>>,
        limit: u64,
        last: Option<u64>,
    ) -> Result<BTreeMap<Vec<u8>, Vec<u8>>> {
        let mut found = BTreeMap::new();
        if wanted.is_empty() {
            return Ok(found);
        }
        let mut take = |entry: &mut dyn Read, path: Vec<u8>| -> Result<()> {
            let mut bytes = Vec::new();
            entry
                .take(limit)
                .read_to_end(&mut bytes)
                .map_err(|e| Error::Diff {
                    what: self.describe(),
                    reason: format!("reading {}: {e}", crate::printable::escape_bytes(&path)),
                })?;
            // The last entry of a path is the one that counts (as in the
            // index): a later one replaces it.
            found.insert(path, bytes);
            Ok(())
        };
        let name_of = |raw: &[u8]| match crate::export::conffs::names::classify(raw) {
            Some(crate::export::conffs::names::Named::Entry(p)) => Some(p),
            _ => None,
        };
        if let Source::Tree(root) = self {
            for p in wanted {
                let full = root.join(os(p));
                let file = open_no_follow(&full).map_err(|e| Error::io("open", &full, e))?;
                take(&mut BufReader::new(file), p.clone())?;
            }
        } else {
            self.read_entries(store, |entry, n| {
                let regular = entry.header().entry_type().is_file();
                match name_of(&entry.path_bytes()) {
                    Some(p) if regular && wanted.contains(&p) => take(entry, p)?,
                    _ => {}
                }
                // Past the last entry wanted, nothing more to read.
                Ok(match last {
                    Some(l) if n >= l => Flow::Stop,
                    _ => Flow::Continue,
                })
            })?;
        }
        Ok(found)
    }
}

/// What an archive taken from someone else (a host's drift sent to the
/// server) may hold: its bytes once decompressed, its entries, and the
/// size of one GNU long name or PAX record (the `tar` crate holds each
/// whole in memory before it yields the entry it belongs to).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArchiveLimits {
    /// Bytes of the tar stream, decompressed.
    pub bytes: u64,
    /// Entries.
    pub entries: u64,
    /// Bytes of one long name, long link or PAX record.
    pub record: u64,
}

/// Reads the archive at `path` whole as a diff would (every entry's name
/// checked, contents hashed) within `limits`: how many entries it has, or
/// why it cannot be a side. What a server checks of an archive sent to it.
/// A first pass reads the entries raw (sizes and counts, nothing held), so
/// no long name or PAX record past `limits.record` is ever read whole.
pub fn check_archive(path: &Path, limits: &ArchiveLimits) -> Result<usize> {
    let bad = |reason: String| Error::Diff {
        what: format!("archive {}", path.display()),
        reason,
    };
    let input = Capped::new(open_archive(path)?, limits.bytes);
    let mut archive = tar::Archive::new(input);
    let raw = archive.entries().map_err(|e| bad(e.to_string()))?.raw(true);
    let mut count = 0u64;
    for entry in raw {
        let entry = entry.map_err(|e| bad(format!("a damaged tar entry: {e}")))?;
        let kind = entry.header().entry_type();
        let record = kind.is_gnu_longname()
            || kind.is_gnu_longlink()
            || kind.is_pax_local_extensions()
            || kind.is_pax_global_extensions();
        let size = entry.header().size().unwrap_or(u64::MAX);
        if record && size > limits.record {
            return Err(bad(format!(
                "a long name or PAX record of {size} bytes (at most {})",
                limits.record
            )));
        }
        count += 1;
        if count > limits.entries {
            return Err(bad(format!("more than {} tar entries", limits.entries)));
        }
    }
    let what = format!("archive {}", path.display());
    let mut index = LayerIndex::default();
    let mut entries = 0;
    read_archive_within(path, Some(limits.bytes), |entry, n| {
        index.add_entry(entry, &what, n)?;
        entries += 1;
        Ok(Flow::Continue)
    })?;
    Ok(entries)
}

/// A reader that fails past `limit` bytes (a decompressed stream that
/// would grow without end).
struct Capped<R> {
    inner: R,
    left: u64,
    limit: u64,
}

impl<R> Capped<R> {
    fn new(inner: R, limit: u64) -> Self {
        Capped {
            inner,
            left: limit,
            limit,
        }
    }
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.left == 0 {
            // One byte more tells a stream that ends here from a longer one.
            let mut probe = [0u8; 1];
            return match self.inner.read(&mut probe)? {
                0 => Ok(0),
                _ => Err(std::io::Error::other(format!(
                    "more than {} bytes once decompressed",
                    self.limit
                ))),
            };
        }
        let want = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        self.left -= n as u64;
        Ok(n)
    }
}

/// The image whose manifest is the blob `digest` of `store` (named or not:
/// an earlier build's image stays until `vauban gc`).
fn image_by_digest(store: &Store, digest: &vauban_oci::Digest) -> vauban_oci::Result<Image> {
    use vauban_oci::oci_spec::image::{DescriptorBuilder, MediaType};
    let size = std::fs::metadata(store.blob_path(digest))
        .map_err(|e| vauban_oci::Error::io("stat", store.blob_path(digest), e))?
        .len();
    let desc = DescriptorBuilder::default()
        .media_type(MediaType::ImageManifest)
        .digest(vauban_oci::image::oci_digest(digest))
        .size(size)
        .build()
        .map_err(|e| vauban_oci::Error::UnsupportedMediaType(e.to_string()))?;
    Image::from_descriptor(store, &desc)
}

/// Bytes of a path as a file name.
fn os(b: &[u8]) -> &std::ffi::OsStr {
    std::os::unix::ffi::OsStrExt::from_bytes(b)
}

/// Opens a regular file without following a link at its last component.
fn open_no_follow(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
}

/// A kept index's bytes; `None` when there is none, it cannot be read or
/// it is larger than [`INDEX_LIMIT`].
fn read_bounded(path: &Path) -> Option<Vec<u8>> {
    let file = std::fs::File::open(path).ok()?;
    let mut bytes = Vec::new();
    file.take(INDEX_LIMIT + 1).read_to_end(&mut bytes).ok()?;
    (bytes.len() as u64 <= INDEX_LIMIT).then_some(bytes)
}

/// The decompressed stream of the archive at `path` (plain, gzip, xz or
/// zstd, by its first bytes); refuses what does not start as a tar does.
fn open_archive(path: &Path) -> Result<BufReader<Box<dyn Read>>> {
    use std::io::BufRead;
    let bad = |reason: String| Error::Diff {
        what: format!("archive {}", path.display()),
        reason,
    };
    let plain: Box<dyn Read> = Box::new(vauban_oci::layer::open_tarball(path)?);
    let mut plain = BufReader::with_capacity(512 << 10, plain);
    let head = plain.fill_buf().map_err(|e| bad(e.to_string()))?;
    // POSIX and GNU headers say `ustar` at 257; an empty archive is its end
    // marker alone (zeros).
    let empty = head.len() >= 512 && head[..512].iter().all(|b| *b == 0);
    if !empty && (head.len() < 512 || &head[257..262] != b"ustar") {
        return Err(bad(
            "not a tar archive (plain, gzip, xz or zstd compressed)".into(),
        ));
    }
    Ok(plain)
}

/// Reads the tar entries of the archive at `path` in order, with their
/// numbers.
fn read_archive(
    path: &Path,
    visit: impl FnMut(&mut tar::Entry<'_, &mut dyn Read>, u64) -> Result<Flow>,
) -> Result<()> {
    read_archive_within(path, None, visit)
}

/// [`read_archive`], failing past `limit` bytes decompressed when given.
fn read_archive_within(
    path: &Path,
    limit: Option<u64>,
    mut visit: impl FnMut(&mut tar::Entry<'_, &mut dyn Read>, u64) -> Result<Flow>,
) -> Result<()> {
    let bad = |reason: String| Error::Diff {
        what: format!("archive {}", path.display()),
        reason,
    };
    let mut plain = Capped::new(open_archive(path)?, limit.unwrap_or(u64::MAX));
    let input: &mut dyn Read = &mut plain;
    let mut archive = tar::Archive::new(input);
    for (n, entry) in archive
        .entries()
        .map_err(|e| bad(e.to_string()))?
        .enumerate()
    {
        let mut entry = entry.map_err(|e| bad(format!("a damaged tar entry: {e}")))?;
        if visit(&mut entry, n as u64)? == Flow::Stop {
            break;
        }
    }
    Ok(())
}

/// The index of the tree at `root`: every entry under it, no link
/// followed; a file with several names is a file at its first name (in
/// sorted order) and hard links at the others.
fn walk_tree(root: &Path) -> Result<LayerIndex> {
    let mut index = LayerIndex::default();
    let mut seen: BTreeMap<(u64, u64), Vec<u8>> = BTreeMap::new();
    let mut todo: Vec<Vec<u8>> = vec![Vec::new()];
    while let Some(rel) = todo.pop() {
        let dir = root.join(os(&rel));
        let mut names: Vec<Vec<u8>> = std::fs::read_dir(&dir)
            .map_err(|e| Error::io("list", &dir, e))?
            .map(|e| {
                e.map(|e| {
                    std::os::unix::ffi::OsStrExt::as_bytes(e.file_name().as_os_str()).to_vec()
                })
                .map_err(|err| Error::io("list", &dir, err))
            })
            .collect::<Result<_>>()?;
        names.sort();
        let mut subdirs = Vec::new();
        for name in names {
            let path = if rel.is_empty() {
                name
            } else {
                [&rel[..], b"/", &name].concat()
            };
            let full = root.join(os(&path));
            let meta = std::fs::symlink_metadata(&full).map_err(|e| Error::io("stat", &full, e))?;
            let ft = meta.file_type();
            use std::os::unix::fs::FileTypeExt;
            let kind = if ft.is_dir() {
                Kind::Dir
            } else if ft.is_symlink() {
                Kind::Symlink
            } else if ft.is_file() {
                Kind::File
            } else if ft.is_char_device() {
                Kind::Char
            } else if ft.is_block_device() {
                Kind::Block
            } else if ft.is_fifo() {
                Kind::Fifo
            } else {
                // A socket: nothing an image carries.
                continue;
            };
            let mut node = Node {
                kind,
                mode: meta.mode() & 0o7777,
                uid: meta.uid().into(),
                gid: meta.gid().into(),
                size: None,
                sha256: None,
                target: None,
                hardlink: None,
                device: None,
                xattrs: xattrs_of(&full),
                entry: None,
            };
            match kind {
                Kind::File => {
                    let first = (meta.nlink() > 1)
                        .then(|| seen.get(&(meta.dev(), meta.ino())).cloned())
                        .flatten();
                    if let Some(first) = first {
                        let target = &index.nodes[&first];
                        node.size = target.size;
                        node.sha256 = target.sha256.clone();
                        node.hardlink = Some(first);
                    } else {
                        let file =
                            open_no_follow(&full).map_err(|e| Error::io("open", &full, e))?;
                        let (size, digest) = content_digest(BufReader::new(file))
                            .map_err(|e| Error::io("read", &full, e))?;
                        node.size = Some(size);
                        node.sha256 = Some(digest);
                        if meta.nlink() > 1 {
                            seen.insert((meta.dev(), meta.ino()), path.clone());
                        }
                    }
                }
                Kind::Symlink => {
                    let t =
                        std::fs::read_link(&full).map_err(|e| Error::io("read link", &full, e))?;
                    node.target =
                        Some(std::os::unix::ffi::OsStrExt::as_bytes(t.as_os_str()).to_vec());
                }
                Kind::Char | Kind::Block => {
                    let rdev = meta.rdev();
                    node.device = Some((rustix::fs::major(rdev), rustix::fs::minor(rdev)));
                }
                Kind::Dir => subdirs.push(path.clone()),
                Kind::Fifo => {}
            }
            index.nodes.insert(path, node);
        }
        todo.extend(subdirs.into_iter().rev());
    }
    Ok(index)
}

/// The extended attributes of `path` (not followed), values in hex;
/// overlayfs's own left out; none when they cannot be listed.
fn xattrs_of(path: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    // The kernel's limits: a list of 64 KiB, a value of 64 KiB.
    let mut names = vec![0u8; 65536];
    let Ok(n) = rustix::fs::llistxattr(path, &mut names) else {
        return out;
    };
    for name in names[..n].split(|&b| b == 0).filter(|n| !n.is_empty()) {
        if overlay_internal(name) {
            continue;
        }
        let Ok(cname) = std::ffi::CString::new(name) else {
            continue;
        };
        let mut value = vec![0u8; 65536];
        if let Ok(len) = rustix::fs::lgetxattr(path, cname.as_c_str(), &mut value) {
            out.insert(super::node::quote_name(name), hex::encode(&value[..len]));
        }
    }
    out
}
