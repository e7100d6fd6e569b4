//! A layer's index: every path it holds with its [`Node`] (content hashed
//! while the tar stream goes by, nothing kept), the paths its whiteouts
//! delete and the directories its opaque markers empty. Made once per layer
//! from its blob, whose digest and diff_id are checked at the end of the
//! stream, and kept in the store (`STORE/indexes/<blob digest>`) so that
//! the next diff of an image sharing it reads a few lines instead of the
//! layer.
//!
//! The kept form is text, one entry a line: `KIND PATH MODE UID GID SIZE
//! SHA256 TARGET HARDLINK DEVICE XATTRS ENTRY` (ENTRY: the entry's number
//! in the tar stream), `-` for none, every byte outside
//! `!`..`~` (and `%`, `;`, `=`, and a name that is `-` itself) written
//! `%XX`; `w PATH` for a whiteout and `o PATH` for an opaque marker; last,
//! `end N` with the number of lines before it (a cut file is not believed).
//!
//! A name longer than [`NAME_MAX`] is refused: the kernel would refuse it
//! too, and very deep paths make every lookup of their ancestors slow.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;

use vauban_oci::digest::HashingWriter;

use super::node::{Kind, Node};
use crate::error::{Error, Result};
use crate::export::conffs::emit::meta_of;
use crate::export::conffs::names::{classify, Named};
use vauban_oci::tar_writer::Kind as TarKind;

/// The first line of a kept index.
const HEADER: &str = "vauban diff index 3";

/// The longest path an entry may have (the kernel's `PATH_MAX`).
pub(super) const NAME_MAX: usize = 4096;

/// The largest kept index read back.
pub(super) const INDEX_LIMIT: u64 = 512 << 20;

/// What one layer (or one archive, or one tree) holds.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(super) struct LayerIndex {
    /// Its entries by path (relative, no leading `/`).
    pub(super) nodes: BTreeMap<Vec<u8>, Node>,
    /// The paths its whiteouts delete.
    pub(super) whiteouts: BTreeSet<Vec<u8>>,
    /// The directories whose lower content its opaque markers hide.
    pub(super) opaque: BTreeSet<Vec<u8>>,
}

/// Extended attributes overlayfs keeps for itself: not part of what a
/// tree shows.
pub(super) fn overlay_internal(name: &[u8]) -> bool {
    name.starts_with(b"trusted.overlay.") || name.starts_with(b"user.overlay.")
}

impl LayerIndex {
    /// Adds one tar entry (its content read and hashed); `what` names the
    /// stream in errors.
    pub(super) fn add_entry<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        what: &str,
        number: u64,
    ) -> Result<()> {
        let raw = entry.path_bytes().into_owned();
        let bad = |reason: String| Error::Diff {
            what: format!("{what}: entry {}", crate::printable::escape_bytes(&raw)),
            reason,
        };
        let path = match classify(&raw).ok_or_else(|| bad("`..` or NUL in its name".into()))? {
            Named::Root => return Ok(()),
            Named::Whiteout(p) => {
                self.whiteouts.insert(p);
                return Ok(());
            }
            Named::Opaque(p) => {
                self.opaque.insert(p);
                return Ok(());
            }
            Named::Entry(p) => p,
        };
        if path.len() > NAME_MAX {
            return Err(bad(format!("a name longer than {NAME_MAX} bytes")));
        }
        let meta = meta_of(entry, &what)?;
        let xattrs = meta
            .xattrs
            .iter()
            .filter(|(name, _)| !overlay_internal(name))
            .map(|(name, value)| (super::node::quote_name(name), hex::encode(value)))
            .collect();
        let mut node = Node {
            kind: Kind::File,
            mode: meta.mode & 0o7777,
            uid: meta.uid,
            gid: meta.gid,
            size: None,
            sha256: None,
            target: None,
            hardlink: None,
            device: None,
            xattrs,
            entry: Some(number),
        };
        match meta.kind {
            TarKind::File(_) => {
                let (size, digest) =
                    content_digest(entry).map_err(|e| bad(format!("content: {e}")))?;
                node.size = Some(size);
                node.sha256 = Some(digest);
            }
            TarKind::Dir => node.kind = Kind::Dir,
            TarKind::Symlink(target) => {
                node.kind = Kind::Symlink;
                node.target = Some(target);
            }
            TarKind::HardLink(target) => {
                let Some(Named::Entry(target)) = classify(&target) else {
                    return Err(bad("a bad hard link target".into()));
                };
                // Its content is its target's, read before it in the layer.
                if let Some(t) = self.nodes.get(&target).filter(|t| t.kind == Kind::File) {
                    node.size = t.size;
                    node.sha256 = t.sha256.clone();
                }
                node.hardlink = Some(target);
            }
            TarKind::Char(major, minor) => {
                node.kind = Kind::Char;
                node.device = Some((major, minor));
            }
            TarKind::Block(major, minor) => {
                node.kind = Kind::Block;
                node.device = Some((major, minor));
            }
            TarKind::Fifo => node.kind = Kind::Fifo,
        }
        self.nodes.insert(path, node);
        Ok(())
    }

    /// The kept form (see the module doc).
    pub(super) fn to_text(&self) -> Vec<u8> {
        let mut out = format!("{HEADER}\n").into_bytes();
        let opt = |v: Option<String>| v.unwrap_or_else(|| "-".into());
        for (path, n) in &self.nodes {
            let xattrs = if n.xattrs.is_empty() {
                "-".to_string()
            } else {
                n.xattrs
                    .iter()
                    .map(|(k, v)| format!("{}={v}", encode(k.as_bytes())))
                    .collect::<Vec<_>>()
                    .join(";")
            };
            let line = [
                n.kind.code().to_string(),
                encode(path),
                format!("{:o}", n.mode),
                n.uid.to_string(),
                n.gid.to_string(),
                opt(n.size.map(|s| s.to_string())),
                opt(n.sha256.clone()),
                opt(n.target.as_deref().map(encode)),
                opt(n.hardlink.as_deref().map(encode)),
                opt(n.device.map(|(a, b)| format!("{a}:{b}"))),
                xattrs,
                opt(n.entry.map(|e| e.to_string())),
            ]
            .join(" ");
            out.extend_from_slice(line.as_bytes());
            out.push(b'\n');
        }
        for w in &self.whiteouts {
            out.extend_from_slice(format!("w {}\n", encode(w)).as_bytes());
        }
        for o in &self.opaque {
            out.extend_from_slice(format!("o {}\n", encode(o)).as_bytes());
        }
        let lines = self.nodes.len() + self.whiteouts.len() + self.opaque.len();
        out.extend_from_slice(format!("end {lines}\n").as_bytes());
        out
    }

    /// Reads the kept form back; `None` when it is not one (then the layer
    /// is read again).
    pub(super) fn from_text(bytes: &[u8]) -> Option<LayerIndex> {
        let text = std::str::from_utf8(bytes).ok()?;
        let mut lines = text.lines();
        if lines.next()? != HEADER {
            return None;
        }
        let mut index = LayerIndex::default();
        let mut read = 0usize;
        let mut ended = false;
        for line in lines {
            if ended {
                return None;
            }
            let f: Vec<&str> = line.split(' ').collect();
            if let ["end", n] = f.as_slice() {
                ended = n.parse::<usize>().ok()? == read;
                if !ended {
                    return None;
                }
                continue;
            }
            read += 1;
            match f.as_slice() {
                ["w", p] => {
                    index.whiteouts.insert(decode(p)?);
                }
                ["o", p] => {
                    index.opaque.insert(decode(p)?);
                }
                [kind, path, mode, uid, gid, size, sha, target, link, dev, xattrs, entry] => {
                    let opt = |s: &str| (s != "-").then(|| s.to_string());
                    let node = Node {
                        kind: Kind::from_code(kind)?,
                        mode: u32::from_str_radix(mode, 8).ok()?,
                        uid: uid.parse().ok()?,
                        gid: gid.parse().ok()?,
                        size: match opt(size) {
                            Some(s) => Some(s.parse().ok()?),
                            None => None,
                        },
                        sha256: opt(sha),
                        target: match opt(target) {
                            Some(t) => Some(decode(&t)?),
                            None => None,
                        },
                        hardlink: match opt(link) {
                            Some(t) => Some(decode(&t)?),
                            None => None,
                        },
                        device: match opt(dev) {
                            Some(d) => {
                                let (a, b) = d.split_once(':')?;
                                Some((a.parse().ok()?, b.parse().ok()?))
                            }
                            None => None,
                        },
                        xattrs: if *xattrs == "-" {
                            BTreeMap::new()
                        } else {
                            let mut m = BTreeMap::new();
                            for kv in xattrs.split(';') {
                                let (k, v) = kv.split_once('=')?;
                                m.insert(String::from_utf8(decode(k)?).ok()?, v.to_string());
                            }
                            m
                        },
                        entry: match opt(entry) {
                            Some(e) => Some(e.parse().ok()?),
                            None => None,
                        },
                    };
                    index.nodes.insert(decode(path)?, node);
                }
                _ => return None,
            }
        }
        ended.then_some(index)
    }
}

/// The size and hex sha256 of what `input` holds.
pub(super) fn content_digest(mut input: impl Read) -> std::io::Result<(u64, String)> {
    let mut hashing = HashingWriter::new(std::io::sink());
    std::io::copy(&mut input, &mut hashing)?;
    let (_, digest, size) = hashing.finish();
    Ok((size, digest.hex().to_string()))
}

/// `bytes` with every byte outside `!`..`~`, and `%`, `;`, `=`, as `%XX`
/// (and `-` alone, which stands for none).
fn encode(bytes: &[u8]) -> String {
    if bytes == b"-" {
        return "%2D".into();
    }
    let mut s = String::with_capacity(bytes.len());
    for &b in bytes {
        if (b'!'..=b'~').contains(&b) && !b"%;=".contains(&b) {
            s.push(b as char);
        } else {
            s.push_str(&format!("%{b:02X}"));
        }
    }
    s
}

/// The bytes [`encode`] wrote; `None` for a bad escape.
fn decode(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A layer with a file, a hard link to it, a symlink with a space, a
    /// device, a whiteout and an opaque marker.
    fn sample_layer() -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let header = || {
            let mut h = tar::Header::new_gnu();
            h.set_uid(0);
            h.set_gid(0);
            h
        };
        let mut h = header();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o755);
        h.set_size(0);
        b.append_data(&mut h.clone(), "etc/", std::io::empty())
            .unwrap();
        let mut f = header();
        f.set_mode(0o640);
        f.set_uid(0);
        f.set_gid(42);
        f.set_size(6);
        b.append_data(&mut f, "etc/shadow", &b"hello\n"[..])
            .unwrap();
        let mut l = header();
        l.set_entry_type(tar::EntryType::Link);
        l.set_mode(0o640);
        l.set_size(0);
        b.append_link(&mut l, "etc/shadow-", "etc/shadow").unwrap();
        let mut s = header();
        s.set_entry_type(tar::EntryType::Symlink);
        s.set_mode(0o777);
        s.set_size(0);
        b.append_link(&mut s, "etc/my link", "../a b").unwrap();
        let mut c = header();
        c.set_entry_type(tar::EntryType::Char);
        c.set_mode(0o666);
        c.set_size(0);
        c.set_device_major(1).unwrap();
        c.set_device_minor(3).unwrap();
        b.append_data(&mut c, "dev/null", std::io::empty()).unwrap();
        let mut w = header();
        w.set_mode(0o600);
        w.set_size(0);
        b.append_data(&mut w.clone(), "etc/.wh.motd", std::io::empty())
            .unwrap();
        b.append_data(&mut w, "var/.wh..wh..opq", std::io::empty())
            .unwrap();
        b.into_inner().unwrap()
    }

    fn index_of(tar_bytes: &[u8]) -> LayerIndex {
        let mut index = LayerIndex::default();
        let mut a = tar::Archive::new(tar_bytes);
        for (n, e) in a.entries().unwrap().enumerate() {
            index.add_entry(&mut e.unwrap(), "test", n as u64).unwrap();
        }
        index
    }

    #[test]
    fn an_index_holds_what_the_layer_holds_and_reads_back_the_same() {
        let index = index_of(&sample_layer());
        let shadow = &index.nodes[&b"etc/shadow".to_vec()];
        assert_eq!((shadow.mode, shadow.gid, shadow.size), (0o640, 42, Some(6)));
        assert_eq!(
            shadow.sha256.as_deref(),
            Some("5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03")
        );
        let link = &index.nodes[&b"etc/shadow-".to_vec()];
        assert_eq!(link.hardlink.as_deref(), Some(&b"etc/shadow"[..]));
        assert_eq!(
            link.sha256, shadow.sha256,
            "a hard link has its target's content"
        );
        assert_eq!(
            index.nodes[&b"etc/my link".to_vec()].target.as_deref(),
            Some(&b"../a b"[..])
        );
        assert_eq!(index.nodes[&b"dev/null".to_vec()].device, Some((1, 3)));
        assert!(index.whiteouts.contains(b"etc/motd".as_slice()));
        assert!(index.opaque.contains(b"var".as_slice()));
        let text = index.to_text();
        assert_eq!(LayerIndex::from_text(&text), Some(index.clone()));
        // A cut index is not believed.
        let cut = &text[..text.len() - b"end 7\n".len()];
        assert_eq!(LayerIndex::from_text(cut), None);
        // A name that is `-` is not "none".
        let mut dash = index;
        let mut n = dash.nodes[&b"etc/shadow-".to_vec()].clone();
        n.hardlink = Some(b"-".to_vec());
        dash.nodes.insert(b"-".to_vec(), n);
        assert_eq!(LayerIndex::from_text(&dash.to_text()), Some(dash));
        assert_eq!(LayerIndex::from_text(b"something else\n"), None);
    }

    #[test]
    fn an_entry_climbing_out_is_refused() {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(0);
        h.set_mode(0o644);
        // `append_data` refuses `..`: write the name by hand.
        h.as_gnu_mut().unwrap().name[..9].copy_from_slice(b"../escape");
        h.set_cksum();
        b.append(&h, std::io::empty()).unwrap();
        let bytes = b.into_inner().unwrap();
        let mut index = LayerIndex::default();
        let mut a = tar::Archive::new(&bytes[..]);
        let mut e = a.entries().unwrap().next().unwrap().unwrap();
        let err = index
            .add_entry(&mut e, "layer x", 0)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("layer x") && err.contains("../escape"),
            "{err}"
        );
    }
}
