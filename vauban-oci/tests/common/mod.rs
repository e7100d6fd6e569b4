//! Helpers shared by the layer codec tests: tree snapshots and comparisons,
//! a raw tar builder that writes any name (hostile ones too), privilege checks,
//! fixtures, and the hostile-layer table ([`hostile`]).

#![allow(dead_code)]

pub mod hostile;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

/// One file as seen by a snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub kind: &'static str,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: i64,
    pub size: u64,
    pub content: Option<String>,
    pub link: Option<Vec<u8>>,
    pub rdev: u64,
    pub xattrs: BTreeMap<Vec<u8>, Vec<u8>>,
}

/// A snapshot of a tree: every path (relative) and the hard-link groups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub nodes: BTreeMap<PathBuf, Node>,
    pub link_groups: BTreeSet<Vec<PathBuf>>,
}

/// Options of [`snapshot_with`].
#[derive(Clone, Copy)]
pub struct SnapOpts {
    /// Include the mtime of directories (some tools cannot keep them).
    pub dir_mtimes: bool,
    /// Include the root's own node.
    pub root: bool,
}

/// Snapshot of everything under `root`, the root included.
pub fn snapshot(root: &Path) -> Snapshot {
    snapshot_with(
        root,
        SnapOpts {
            dir_mtimes: true,
            root: true,
        },
    )
}

/// Snapshot of everything under `root`.
pub fn snapshot_with(root: &Path, opts: SnapOpts) -> Snapshot {
    let mut nodes = BTreeMap::new();
    let mut inodes: BTreeMap<(u64, u64), Vec<PathBuf>> = BTreeMap::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let full = root.join(&rel);
        let md = std::fs::symlink_metadata(&full)
            .unwrap_or_else(|e| panic!("stat {}: {e}", full.display()));
        let ft = md.file_type();
        let kind = if ft.is_dir() {
            "dir"
        } else if ft.is_symlink() {
            "symlink"
        } else if ft.is_file() {
            "file"
        } else if ft.is_char_device() {
            "char"
        } else if ft.is_block_device() {
            "block"
        } else if ft.is_fifo() {
            "fifo"
        } else {
            "socket"
        };
        let content = ft.is_file().then(|| {
            let mut h = Sha256::new();
            let mut f = std::fs::File::open(&full).unwrap();
            let mut buf = vec![0; 1 << 16];
            loop {
                let n = f.read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                h.update(&buf[..n]);
            }
            hex::encode(h.finalize())
        });
        let link = ft.is_symlink().then(|| {
            std::fs::read_link(&full)
                .unwrap()
                .as_os_str()
                .as_bytes()
                .to_vec()
        });
        if !ft.is_dir() && md.nlink() > 1 {
            inodes
                .entry((md.dev(), md.ino()))
                .or_default()
                .push(rel.clone());
        }
        let node = Node {
            kind,
            mode: md.mode() & 0o7777,
            uid: md.uid(),
            gid: md.gid(),
            mtime: if ft.is_dir() && !opts.dir_mtimes {
                0
            } else {
                md.mtime()
            },
            size: if ft.is_file() { md.len() } else { 0 },
            content,
            link,
            rdev: if ft.is_char_device() || ft.is_block_device() {
                md.rdev()
            } else {
                0
            },
            xattrs: xattrs(&full),
        };
        if !rel.as_os_str().is_empty() || opts.root {
            nodes.insert(rel.clone(), node);
        }
        if ft.is_dir() {
            for e in std::fs::read_dir(&full).unwrap() {
                stack.push(rel.join(e.unwrap().file_name()));
            }
        }
    }
    let link_groups = inodes
        .into_values()
        .filter(|g| g.len() > 1)
        .map(|mut g| {
            g.sort();
            g
        })
        .collect();
    Snapshot { nodes, link_groups }
}

/// All xattrs of a path, not following it.
pub fn xattrs(path: &Path) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut names = vec![0u8; 65536];
    let n = match rustix::fs::llistxattr(path, &mut names[..]) {
        Ok(n) => n,
        Err(_) => return out,
    };
    for name in names[..n].split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let mut v = vec![0u8; 65536];
        if let Ok(len) = rustix::fs::lgetxattr(path, name, &mut v[..]) {
            v.truncate(len);
            out.insert(name.to_vec(), v);
        }
    }
    out
}

/// Sets an xattr on a path (not following it).
pub fn set_xattr(path: &Path, name: &str, value: &[u8]) {
    rustix::fs::lsetxattr(path, name, value, rustix::fs::XattrFlags::empty())
        .unwrap_or_else(|e| panic!("setxattr {name} on {}: {e}", path.display()));
}

/// Makes a FIFO at `path`.
pub fn mkfifo(path: &Path, mode: u32) {
    rustix::fs::mknodat(
        rustix::fs::CWD,
        path,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(mode),
        0,
    )
    .unwrap_or_else(|e| panic!("mkfifo {}: {e}", path.display()));
}

/// A layer blob of the store holding `content` (not a tar: for the tests of
/// images and the store, which never open it), with a diff_id of its own.
pub fn fake_layer(
    store: &vauban_oci::store::Store,
    content: &[u8],
) -> vauban_oci::layer::PackedLayer {
    let (digest, size) = store.write_blob(content).unwrap();
    vauban_oci::layer::PackedLayer {
        entries: 0,
        digest,
        size,
        diff_id: vauban_oci::Digest::of_bytes(&[content, b"-plain"].concat()),
        media_type: "application/vnd.oci.image.layer.v1.tar+gzip".into(),
    }
}

/// A history entry by `by`, at a fixed time.
pub fn history(by: &str) -> vauban_oci::image::HistoryEntry {
    vauban_oci::image::HistoryEntry {
        created_by: by.into(),
        created: chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
        comment: None,
    }
}

/// Asserts two snapshots are equal, listing the differences.
pub fn assert_same(expected: &Snapshot, found: &Snapshot, what: &str) {
    let mut diffs = Vec::new();
    for (p, n) in &expected.nodes {
        match found.nodes.get(p) {
            None => diffs.push(format!("missing {}", p.display())),
            Some(m) if m != n => diffs.push(format!(
                "differs {}:\n  expected {n:?}\n  found    {m:?}",
                p.display()
            )),
            _ => {}
        }
    }
    for p in found.nodes.keys() {
        if !expected.nodes.contains_key(p) {
            diffs.push(format!("unexpected {}", p.display()));
        }
    }
    if expected.link_groups != found.link_groups {
        diffs.push(format!(
            "hard-link groups differ:\n  expected {:?}\n  found    {:?}",
            expected.link_groups, found.link_groups
        ));
    }
    assert!(
        diffs.is_empty(),
        "{what}: {} differences:\n{}",
        diffs.len(),
        diffs.join("\n")
    );
}

/// True when running as root.
pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Panics unless root: the part of a test that needs it says why.
pub fn require_root(why: &str) {
    assert!(
        is_root(),
        "this test needs root ({why}); CI runs `cargo test --workspace` as root"
    );
}

/// The fixtures directory.
pub fn fixtures() -> PathBuf {
    std::env::var_os("VAUBAN_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/fixtures"))
}

/// A fixture file, or a panic naming `cargo xtask fixtures`.
pub fn fixture(name: &str) -> PathBuf {
    let p = fixtures().join(name);
    assert!(
        p.is_file(),
        "fixture {} is missing: run `cargo xtask fixtures`",
        p.display()
    );
    p
}

/// One entry of a hand-made tar stream.
#[derive(Clone, Debug)]
pub struct E {
    pub name: Vec<u8>,
    pub ty: tar::EntryType,
    pub link: Vec<u8>,
    pub data: Vec<u8>,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub mtime: u64,
    pub xattrs: Vec<(String, Vec<u8>)>,
    /// Put the name in a PAX `path` record and `innocent` in the header.
    pub pax_path: bool,
    /// Extra raw PAX records.
    pub pax_extra: Vec<(String, Vec<u8>)>,
    /// Device major and minor numbers (char and block devices).
    pub dev: (u32, u32),
}

fn e(name: &str, ty: tar::EntryType) -> E {
    E {
        name: name.as_bytes().to_vec(),
        ty,
        link: Vec::new(),
        data: Vec::new(),
        mode: if ty == tar::EntryType::Directory {
            0o755
        } else {
            0o644
        },
        uid: 0,
        gid: 0,
        mtime: 1_600_000_000,
        xattrs: Vec::new(),
        pax_path: false,
        pax_extra: Vec::new(),
        dev: (0, 0),
    }
}

/// A directory entry.
pub fn dir(name: &str) -> E {
    e(name, tar::EntryType::Directory)
}
/// A regular file with content.
pub fn file(name: &str, data: &str) -> E {
    E {
        data: data.as_bytes().to_vec(),
        ..e(name, tar::EntryType::Regular)
    }
}
/// A symlink.
pub fn sym(name: &str, target: &str) -> E {
    E {
        link: target.as_bytes().to_vec(),
        mode: 0o777,
        ..e(name, tar::EntryType::Symlink)
    }
}
/// A hard link.
pub fn hard(name: &str, target: &str) -> E {
    E {
        link: target.as_bytes().to_vec(),
        ..e(name, tar::EntryType::Link)
    }
}
/// A character device node.
pub fn chardev(name: &str, major: u32, minor: u32) -> E {
    E {
        dev: (major, minor),
        ..e(name, tar::EntryType::Char)
    }
}
/// A block device node.
pub fn blockdev(name: &str, major: u32, minor: u32) -> E {
    E {
        dev: (major, minor),
        ..e(name, tar::EntryType::Block)
    }
}
/// A FIFO.
pub fn fifo(name: &str) -> E {
    e(name, tar::EntryType::Fifo)
}
/// A whiteout of `name` (in its directory).
pub fn wh(name: &str) -> E {
    let (d, b) = name
        .rsplit_once('/')
        .map(|(d, b)| (format!("{d}/"), b))
        .unwrap_or((String::new(), name));
    file(&format!("{d}.wh.{b}"), "")
}

/// A bare PAX extended header (type `x`) holding `records`, applying to the next entry.
pub fn pax_hdr(records: &[(&str, &str)]) -> E {
    meta_hdr(b"././@PaxHeader", tar::EntryType::XHeader, records)
}
/// A PAX global header (type `g`) holding `records`.
pub fn global_hdr(records: &[(&str, &str)]) -> E {
    meta_hdr(b"././@GlobalHead", tar::EntryType::XGlobalHeader, records)
}
/// A GNU long-name entry (type `L`) naming the next entry.
pub fn gnu_long_name(name: &str) -> E {
    let mut data = name.as_bytes().to_vec();
    data.push(0);
    E {
        name: b"././@LongLink".to_vec(),
        data,
        ..e("", tar::EntryType::GNULongName)
    }
}
fn meta_hdr(name: &[u8], ty: tar::EntryType, records: &[(&str, &str)]) -> E {
    let mut data = Vec::new();
    for (k, v) in records {
        pax_record(&mut data, k.as_bytes(), v.as_bytes());
    }
    E {
        name: name.to_vec(),
        data,
        ..e("", ty)
    }
}

impl E {
    /// With an xattr.
    pub fn xattr(mut self, name: &str, value: &[u8]) -> E {
        self.xattrs.push((name.to_string(), value.to_vec()));
        self
    }
    /// With a mode.
    pub fn mode(mut self, mode: u32) -> E {
        self.mode = mode;
        self
    }
    /// With an mtime.
    pub fn mtime(mut self, mtime: u64) -> E {
        self.mtime = mtime;
        self
    }
    /// With an owner.
    pub fn owner(mut self, uid: u64, gid: u64) -> E {
        self.uid = uid;
        self.gid = gid;
        self
    }
    /// With a raw PAX record.
    pub fn pax_rec(mut self, key: &str, value: &str) -> E {
        self.pax_extra
            .push((key.to_string(), value.as_bytes().to_vec()));
        self
    }
    /// Name carried in a PAX record only.
    pub fn pax(mut self) -> E {
        self.pax_path = true;
        self
    }
    /// Replaces `$OUT` in the name and link by `out`.
    pub fn subst(mut self, out: &str) -> E {
        let r = |v: &[u8]| String::from_utf8_lossy(v).replace("$OUT", out).into_bytes();
        self.name = r(&self.name);
        self.link = r(&self.link);
        self
    }
}

fn pax_record(out: &mut Vec<u8>, key: &[u8], value: &[u8]) {
    let rest = key.len() + value.len() + 3;
    let mut len = rest + 1;
    while len != rest + len.to_string().len() {
        len = rest + len.to_string().len();
    }
    out.extend_from_slice(format!("{len} ").as_bytes());
    out.extend_from_slice(key);
    out.push(b'=');
    out.extend_from_slice(value);
    out.push(b'\n');
}

fn raw_header(name: &[u8], ty: tar::EntryType, size: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    let n = name.len().min(100);
    h.as_old_mut().name[..n].copy_from_slice(&name[..n]);
    h.set_entry_type(ty);
    h.set_size(size);
    h
}

fn pad(out: &mut Vec<u8>) {
    let rem = out.len() % 512;
    if rem != 0 {
        out.resize(out.len() + 512 - rem, 0);
    }
}

/// Writes entries as a tar stream, any name allowed (no validation at all).
pub fn tar_of(entries: &[E]) -> Vec<u8> {
    let mut out = Vec::new();
    for en in entries {
        let mut pax = Vec::new();
        if en.pax_path || en.name.len() > 100 {
            pax_record(&mut pax, b"path", &en.name);
        }
        if en.link.len() > 100 {
            pax_record(&mut pax, b"linkpath", &en.link);
        }
        for (k, v) in &en.xattrs {
            pax_record(&mut pax, format!("SCHILY.xattr.{k}").as_bytes(), v);
        }
        for (k, v) in &en.pax_extra {
            pax_record(&mut pax, k.as_bytes(), v);
        }
        if !pax.is_empty() {
            let mut h = raw_header(b"././@PaxHeader", tar::EntryType::XHeader, pax.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            out.extend_from_slice(h.as_bytes());
            out.extend_from_slice(&pax);
            pad(&mut out);
        }
        let name: &[u8] = if en.pax_path { b"innocent" } else { &en.name };
        let mut h = raw_header(name, en.ty, en.data.len() as u64);
        let n = en.link.len().min(100);
        h.as_old_mut().linkname[..n].copy_from_slice(&en.link[..n]);
        h.set_mode(en.mode);
        h.set_uid(en.uid);
        h.set_gid(en.gid);
        h.set_mtime(en.mtime);
        if matches!(en.ty, tar::EntryType::Char | tar::EntryType::Block) {
            h.set_device_major(en.dev.0).unwrap();
            h.set_device_minor(en.dev.1).unwrap();
        }
        h.set_cksum();
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(&en.data);
        pad(&mut out);
    }
    out.extend_from_slice(&[0u8; 1024]);
    out
}

/// Lists (name, type, link, xattr names) of an uncompressed tar stream (our
/// own reader is not used, to check the output independently).
pub fn list_tar(tar_bytes: &[u8]) -> Vec<(String, tar::EntryType, String, Vec<String>)> {
    let mut a = tar::Archive::new(tar_bytes);
    let mut out = Vec::new();
    for en in a.entries().unwrap() {
        let mut en = en.unwrap();
        let name = String::from_utf8_lossy(&en.path_bytes()).into_owned();
        let ty = en.header().entry_type();
        let link = en
            .link_name_bytes()
            .map(|l| String::from_utf8_lossy(&l).into_owned())
            .unwrap_or_default();
        let mut xs = Vec::new();
        if let Some(p) = en.pax_extensions().unwrap() {
            for x in p.flatten() {
                if let Some(k) = x.key().ok().and_then(|k| k.strip_prefix("SCHILY.xattr.")) {
                    xs.push(k.to_string());
                }
            }
        }
        out.push((name, ty, link, xs));
    }
    out
}

/// Decompresses a blob of a media type with the codec's decompressor.
pub fn decompress(media_type: &str, blob: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    vauban_oci::layer::decompressor(media_type, blob)
        .unwrap()
        .read_to_end(&mut out)
        .unwrap();
    out
}
