//! The record of a layer dir's tree: what an extracted layer dir held when it
//! was made, written beside it (`STORE/layers/<chain>.tree`) so that
//! `vauban fsck` can walk it again and find a planted file, a changed binary
//! or a changed mode.
//!
//! A record is text: a header line, then one line per entry,
//! `PATH TYPE MODE UID GID RDEV SIZE DATA XATTRS`, where `PATH` is relative
//! (`.` for the root), `TYPE` one of `d f l c b p s`, `MODE` the permission
//! and setuid/setgid/sticky bits in octal, `RDEV` `major:minor` of a device
//! (`-` otherwise), `SIZE` a regular file's size, `DATA` the sha256 of a
//! regular file's content or a link's target, and `XATTRS` every extended
//! attribute (overlayfs's `user.overlay.*` included) as `name=hex` sorted by
//! name; `-` stands for none. Modification times and directory sizes are not
//! recorded: they change with no change to what the tree shows. Names and link
//! targets are written with every byte outside `!`..`~` (and `%`, `=`, `;`)
//! as `%XX`, so a line is one entry whatever the names hold.
//!
//! The walk follows no link and crosses no mount point: each directory is
//! opened beneath the root with `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS
//! | RESOLVE_NO_XDEV)` and only one is open at a time, so a tree of any depth
//! neither overflows the stack nor runs out of descriptors. Each directory's
//! entries come sorted by name, then the content of its subdirectories in the
//! same order: two walks of one tree give the same bytes.

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use rustix::fs::{FileType, Mode, OFlags, Stat};
use sha2::{Digest as _, Sha256};

use super::xattr;
use crate::beneath::{list_dir, open_beneath, type_at};
use crate::error::{Error, IoContext, Result};

/// The first line of a record: its format.
const HEADER: &str = "vauban layer tree 1";

/// The largest record read back (a Debian base's is about 2 MB).
pub const RECORD_LIMIT: u64 = 256 << 20;

/// How many differences a check names at most.
const SHOWN: usize = 8;

/// The record of a tree (see the module doc).
#[derive(Clone, PartialEq, Eq)]
pub struct TreeRecord(Vec<u8>);

impl TreeRecord {
    /// The record's bytes, as written to its file.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// What differs between this (fresh) record and `recorded` (the one
    /// written at extraction), at most a few, named by path; empty when they
    /// are the same.
    pub fn differences(&self, recorded: &[u8]) -> Vec<String> {
        if self.0 == recorded {
            return Vec::new();
        }
        let (Some(now), Some(then)) = (entries(&self.0), entries(recorded)) else {
            return vec!["its record is not a tree record".into()];
        };
        let mut all = Vec::new();
        for (path, fields) in &now {
            match then.get(path) {
                None => all.push(format!("{path}: not in the record (added)")),
                Some(old) if old != fields => all.push(format!("{path}: {}", changed(old, fields))),
                Some(_) => {}
            }
        }
        all.extend(
            then.keys()
                .filter(|p| !now.contains_key(*p))
                .map(|p| format!("{p}: gone")),
        );
        if all.is_empty() {
            // Same entries, other bytes: a line moved or the header changed.
            all.push("its record differs".into());
        }
        if all.len() > SHOWN {
            let more = all.len() - SHOWN;
            all.truncate(SHOWN);
            all.push(format!("and {more} more"));
        }
        all
    }
}

impl std::fmt::Debug for TreeRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TreeRecord({} bytes)", self.0.len())
    }
}

/// The fields of a record line, by name, in order.
const FIELDS: [&str; 8] = [
    "type", "mode", "uid", "gid", "device", "size", "content", "xattrs",
];

/// Which fields of an entry changed, in words.
fn changed(old: &[String], new: &[String]) -> String {
    let words: Vec<String> = FIELDS
        .iter()
        .zip(old.iter().zip(new))
        .filter(|(_, (a, b))| a != b)
        .map(|(name, (a, b))| match *name {
            "content" | "xattrs" => format!("{name} changed"),
            _ => format!("{name} {a} -> {b}"),
        })
        .collect();
    if words.is_empty() {
        "changed".into()
    } else {
        words.join(", ")
    }
}

/// The entries of a record by path; `None` when it is not one.
fn entries(bytes: &[u8]) -> Option<BTreeMap<String, Vec<String>>> {
    let text = std::str::from_utf8(bytes).ok()?;
    let mut lines = text.lines();
    if lines.next() != Some(HEADER) {
        return None;
    }
    let mut out = BTreeMap::new();
    for line in lines {
        let mut fields = line.split(' ').map(str::to_owned);
        let path = fields.next()?;
        let rest: Vec<String> = fields.collect();
        if rest.len() != FIELDS.len() {
            return None;
        }
        out.insert(path, rest);
    }
    Some(out)
}

/// What a check of a layer dir against its record found.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum TreeCheck {
    /// The tree is as recorded.
    Intact,
    /// There is no record beside the dir (made by an older vauban, or not by
    /// vauban at all).
    Unrecorded,
    /// The tree is not what was recorded: the first differences, named by path.
    Differs(Vec<String>),
}

/// Walks `dir` again and compares it with the record at `record`.
pub fn check(dir: &Path, record: &Path) -> TreeCheck {
    let recorded = match read_record(record) {
        Ok(Some(r)) => r,
        Ok(None) => return TreeCheck::Unrecorded,
        Err(e) => return TreeCheck::Differs(vec![format!("its record cannot be read: {e}")]),
    };
    match walk(dir) {
        Ok(now) => match now.differences(&recorded) {
            d if d.is_empty() => TreeCheck::Intact,
            d => TreeCheck::Differs(d),
        },
        Err(e) => TreeCheck::Differs(vec![format!("it cannot be walked: {e}")]),
    }
}

/// The record file's bytes, `None` when there is none.
fn read_record(path: &Path) -> Result<Option<Vec<u8>>> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("open", path, e)),
    };
    let mut bytes = Vec::new();
    file.take(RECORD_LIMIT + 1)
        .read_to_end(&mut bytes)
        .at("read", path)?;
    if bytes.len() as u64 > RECORD_LIMIT {
        return Err(Error::TooLarge {
            what: path.display().to_string(),
            size: bytes.len() as u64,
            limit: RECORD_LIMIT,
        });
    }
    Ok(Some(bytes))
}

/// Walks the tree at `dir` (the root may be a link the caller chose; nothing
/// under it is followed) and makes its record.
pub fn walk(dir: &Path) -> Result<TreeRecord> {
    let root = rustix::fs::open(
        dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(io::Error::from)
    .at("open", dir)?;
    let mut out = format!("{HEADER}\n").into_bytes();
    let st = rustix::fs::fstat(&root)
        .map_err(io::Error::from)
        .at("stat", dir)?;
    line(&mut out, b"", &root, b".", &st).at("record", dir)?;
    // Directories still to list, as paths below the root; popped in order.
    let mut todo: Vec<Vec<u8>> = vec![Vec::new()];
    while let Some(rel) = todo.pop() {
        let here = dir.join(std::ffi::OsStr::from_bytes(&rel));
        let fd = if rel.is_empty() {
            root.try_clone().at("dup", &here)?
        } else {
            open_beneath(&root, &rel).at("open", &here)?
        };
        let mut names = list_dir(&fd).at("list", &here)?;
        names.sort();
        let mut subdirs = Vec::new();
        for name in names {
            let path = join(&rel, &name);
            let Some(st) = type_at(&fd, &name).at("stat in", &here)? else {
                continue;
            };
            line(&mut out, &path, &fd, &name, &st)
                .at("record", dir.join(std::ffi::OsStr::from_bytes(&path)))?;
            if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
                subdirs.push(path);
            }
        }
        todo.extend(subdirs.into_iter().rev());
    }
    Ok(TreeRecord(out))
}

fn join(rel: &[u8], name: &[u8]) -> Vec<u8> {
    if rel.is_empty() {
        name.to_vec()
    } else {
        [rel, b"/", name].concat()
    }
}

/// Appends the line of the entry `name` of `dir` (stat-ed as `st`), named
/// `path` in the record (`.` for the root, given as `dir` itself).
fn line(out: &mut Vec<u8>, path: &[u8], dir: &OwnedFd, name: &[u8], st: &Stat) -> io::Result<()> {
    let ft = FileType::from_raw_mode(st.st_mode);
    let kind = match ft {
        FileType::Directory => "d",
        FileType::RegularFile => "f",
        FileType::Symlink => "l",
        FileType::CharacterDevice => "c",
        FileType::BlockDevice => "b",
        FileType::Fifo => "p",
        FileType::Socket => "s",
        FileType::Unknown => "?",
    };
    let device = match ft {
        FileType::CharacterDevice | FileType::BlockDevice => format!(
            "{}:{}",
            rustix::fs::major(st.st_rdev),
            rustix::fs::minor(st.st_rdev)
        ),
        _ => "-".into(),
    };
    let (size, data) = match ft {
        FileType::RegularFile => (st.st_size.to_string(), content_digest(dir, name, st)?),
        FileType::Symlink => {
            let target = rustix::fs::readlinkat(dir, name, Vec::new())?;
            ("-".into(), escape(target.as_bytes()))
        }
        _ => ("-".into(), "-".into()),
    };
    let xattrs = xattrs_of(dir, name)?;
    let path = if path.is_empty() {
        ".".into()
    } else {
        escape(path)
    };
    let text = format!(
        "{path} {kind} {:o} {} {} {device} {size} {data} {xattrs}\n",
        st.st_mode & 0o7777,
        st.st_uid,
        st.st_gid
    );
    out.extend_from_slice(text.as_bytes());
    Ok(())
}

/// The sha256 of the regular file `name` in `dir`, opened without following
/// it and checked to be the inode stat-ed.
fn content_digest(dir: &OwnedFd, name: &[u8], st: &Stat) -> io::Result<String> {
    let fd = rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let now = rustix::fs::fstat(&fd)?;
    if (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino) {
        return Err(io::Error::other("replaced while it was read"));
    }
    let mut file = std::fs::File::from(fd);
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 << 10];
    loop {
        match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => h.update(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(hex::encode(h.finalize()))
}

/// Every xattr of `name` in `dir` (not followed; `.` is `dir` itself) as
/// `name=hex;...` sorted, or `-`.
fn xattrs_of(dir: &OwnedFd, name: &[u8]) -> io::Result<String> {
    let mut path = format!("/proc/self/fd/{}/", dir.as_fd().as_raw_fd()).into_bytes();
    path.extend_from_slice(name);
    let mut all = xattr::read_all(Path::new(std::ffi::OsStr::from_bytes(&path)))?;
    if all.is_empty() {
        return Ok("-".into());
    }
    all.sort();
    Ok(all
        .iter()
        .map(|(n, v)| format!("{}={}", escape(n), hex::encode(v)))
        .collect::<Vec<_>>()
        .join(";"))
}

/// `bytes` with every byte outside `!`..`~`, and `%`, `=`, `;`, as `%XX`.
fn escape(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if (b'!'..=b'~').contains(&b) && !matches!(b, b'%' | b'=' | b';') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_escaped_to_one_field() {
        assert_eq!(escape(b"a b\n%=;c\xff"), "a%20b%0A%25%3D%3Bc%FF");
        assert_eq!(escape(b"usr/bin/curl"), "usr/bin/curl");
    }

    #[test]
    fn differences_name_the_paths() {
        let then = format!(
            "{HEADER}\n. d 755 0 0 - - - -\nbin d 755 0 0 - - - -\nbin/sh f 755 0 0 - 3 aa -\nold f 644 0 0 - 1 bb -\n"
        );
        let now = TreeRecord(
            format!(
                "{HEADER}\n. d 755 0 0 - - - -\nbin d 777 0 0 - - - -\nbin/sh f 4755 0 0 - 3 cc -\nplanted f 644 0 0 - 1 dd -\n"
            )
            .into_bytes(),
        );
        assert_eq!(
            now.differences(then.as_bytes()),
            vec![
                "bin: mode 755 -> 777",
                "bin/sh: mode 755 -> 4755, content changed",
                "planted: not in the record (added)",
                "old: gone",
            ]
        );
        assert!(now.differences(now.as_bytes()).is_empty());
        assert_eq!(
            now.differences(b"garbage"),
            vec!["its record is not a tree record"]
        );
    }
}
