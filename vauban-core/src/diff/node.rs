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
    /// The path this one is a hard link to (the first of its links, by
    /// name), from the root.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "path_text")]
    pub hardlink: Option<Vec<u8>>,
    /// A device's major and minor numbers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device: Option<(u32, u32)>,
    /// Extended attributes, values in hex (overlayfs's own left out).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub xattrs: BTreeMap<String, String>,
    /// Its entry's number in its layer's tar stream (the last one of its
    /// path): where its content is read, and where reading may stop.
    #[serde(skip)]
    pub(super) entry: Option<u64>,
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
            s.push_str(&format!(" -> {}", quote_name(t)));
        }
        if let Some(l) = &self.hardlink {
            s.push_str(&format!(", hard link to /{}", quote_name(l)));
        }
        if let Some((ma, mi)) = self.device {
            s.push_str(&format!(", {ma}:{mi}"));
        }
        s
    }
}

fn bytes_text<S: serde::Serializer>(v: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(b) => s.serialize_str(&quote_name(b)),
        None => s.serialize_none(),
    }
}

fn path_text<S: serde::Serializer>(v: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(b) => s.serialize_str(&format!("/{}", quote_name(b))),
        None => s.serialize_none(),
    }
}

/// A name as a diff prints it (and puts it in JSON): one line, one name.
/// `\` is written `\\`, a newline `\n`, a tab `\t`; every other control
/// character, the bidirectional-text controls (which reorder what a
/// terminal shows) and every byte that is not UTF-8 as `\xNN` or `\u{N}`.
pub fn quote_name(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\t' => out.push_str("\\t"),
                c if (c as u32) < 0x20 || (0x7f..=0x9f).contains(&(c as u32)) => {
                    let _ = write!(out, "\\x{:02x}", c as u32);
                }
                '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' => {
                    let _ = write!(out, "\\u{{{:x}}}", c as u32);
                }
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out
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
            entry: None,
        }
    }

    #[test]
    fn a_quoted_name_is_one_line_and_one_name() {
        assert_eq!(quote_name(b"etc/motd"), "etc/motd");
        assert_eq!(quote_name(b"a\nb\tc"), "a\\nb\\tc");
        assert_eq!(quote_name(b"q\xff\xfe"), "q\\xff\\xfe");
        assert_eq!(
            quote_name(b"q\\xff\\xfe"),
            "q\\\\xff\\\\xfe",
            "a backslash in the name is not an escape"
        );
        assert_eq!(quote_name(b"x\x1b[31m"), "x\\x1b[31m");
        assert_eq!(quote_name("a\u{202e}b".as_bytes()), "a\\u{202e}b");
        assert_eq!(quote_name("caf\u{e9}".as_bytes()), "caf\u{e9}");
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
