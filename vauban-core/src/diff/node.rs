//! One path of a tree as a diff sees it: its type, mode, owner, content
//! digest, link targets, device numbers and extended attributes. Times are
//! not compared: two builds of the same tree differ in every mtime and in
//! nothing a host sees.

use std::collections::BTreeMap;

use serde::Serialize;

/// What an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link.
    Symlink,
    /// A character device.
    Char,
    /// A block device.
    Block,
    /// A named pipe.
    Fifo,
}

impl Kind {
    /// The one-letter code of the index format.
    pub(super) fn code(self) -> char {
        match self {
            Kind::File => 'f',
            Kind::Dir => 'd',
            Kind::Symlink => 'l',
            Kind::Char => 'c',
            Kind::Block => 'b',
            Kind::Fifo => 'p',
        }
    }

    /// The kind of a one-letter code.
    pub(super) fn from_code(c: &str) -> Option<Kind> {
        Some(match c {
            "f" => Kind::File,
            "d" => Kind::Dir,
            "l" => Kind::Symlink,
            "c" => Kind::Char,
            "b" => Kind::Block,
            "p" => Kind::Fifo,
            _ => return None,
        })
    }

    /// The word printed for it.
    pub fn word(self) -> &'static str {
        match self {
            Kind::File => "file",
            Kind::Dir => "directory",
            Kind::Symlink => "symlink",
            Kind::Char => "character device",
            Kind::Block => "block device",
            Kind::Fifo => "fifo",
        }
    }
}

/// One entry of a tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Node {
    /// What it is.
    pub kind: Kind,
    /// Permission bits with setuid, setgid and sticky.
    pub mode: u32,
    /// Owner.
    pub uid: u64,
    /// Group.
    pub gid: u64,
    /// A regular file's size.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// A regular file's content digest (hex sha256); `None` for a hard link
    /// whose content is in no layer read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// A symlink's target.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "bytes_text")]
    pub target: Option<Vec<u8>>,
    /// The path this one is a hard link to, in its layer.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "bytes_text")]
    pub hardlink: Option<Vec<u8>>,
    /// A device's major and minor numbers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device: Option<(u32, u32)>,
    /// Extended attributes, values in hex (overlayfs's own left out).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub xattrs: BTreeMap<String, String>,
}

/// The fields of a [`Node`] a change names, in this order.
pub const FIELDS: [&str; 8] = [
    "type", "mode", "owner", "content", "target", "hardlink", "device", "xattrs",
];

impl Node {
    /// The fields in which `other` differs from this one ([`FIELDS`]' names).
    pub fn differences(&self, other: &Node) -> Vec<&'static str> {
        let mut out = Vec::new();
        if self.kind != other.kind {
            out.push("type");
        }
        if self.mode != other.mode {
            out.push("mode");
        }
        if (self.uid, self.gid) != (other.uid, other.gid) {
            out.push("owner");
        }
        if self.kind == other.kind && (self.sha256 != other.sha256 || self.size != other.size) {
            out.push("content");
        }
        if self.target != other.target {
            out.push("target");
        }
        if self.hardlink != other.hardlink {
            out.push("hardlink");
        }
        if self.device != other.device {
            out.push("device");
        }
        if self.xattrs != other.xattrs {
            out.push("xattrs");
        }
        out
    }

    /// A one-line description: `file 0644 0:0, 12 B`.
    pub fn describe(&self) -> String {
        let mut s = format!(
            "{} {:04o} {}:{}",
            self.kind.word(),
            self.mode,
            self.uid,
            self.gid
        );
        if let Some(size) = self.size {
            s.push_str(&format!(", {size} B"));
        }
        if let Some(t) = &self.target {
            s.push_str(&format!(" -> {}", crate::printable::escape_bytes(t)));
        }
        if let Some(l) = &self.hardlink {
            s.push_str(&format!(
                ", hard link to /{}",
                crate::printable::escape_bytes(l)
            ));
        }
        if let Some((ma, mi)) = self.device {
            s.push_str(&format!(", {ma}:{mi}"));
        }
        s
    }
}

fn bytes_text<S: serde::Serializer>(v: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(b) => s.serialize_str(&crate::printable::escape_bytes(b)),
        None => s.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(mode: u32, sha: &str) -> Node {
        Node {
            kind: Kind::File,
            mode,
            uid: 0,
            gid: 0,
            size: Some(3),
            sha256: Some(sha.into()),
            target: None,
            hardlink: None,
            device: None,
            xattrs: BTreeMap::new(),
        }
    }

    #[test]
    fn differences_name_each_field_that_changed() {
        let a = file(0o644, "aa");
        assert!(a.differences(&a.clone()).is_empty());
        let mut b = file(0o600, "bb");
        b.uid = 1000;
        b.xattrs.insert("user.x".into(), "01".into());
        assert_eq!(a.differences(&b), ["mode", "owner", "content", "xattrs"]);
        let mut dir = a.clone();
        dir.kind = Kind::Dir;
        assert_eq!(a.differences(&dir), ["type"]);
        for k in [
            Kind::File,
            Kind::Dir,
            Kind::Symlink,
            Kind::Char,
            Kind::Block,
            Kind::Fifo,
        ] {
            assert_eq!(Kind::from_code(&k.code().to_string()), Some(k));
        }
    }
}
