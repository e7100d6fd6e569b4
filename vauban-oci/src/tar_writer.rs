//! The one deterministic tar writer: the same entries always give the same
//! bytes. No user or group names, no access times, every header built from
//! [`Entry`] alone; PAX records (`path`, `linkpath`, `uid`, `gid`, `mtime`,
//! `size`, `SCHILY.xattr.*`) for what a ustar header cannot hold, under one
//! fixed PAX header name.
//!
//! Two [`Dialect`]s, because two kinds of archive already exist whose bytes
//! must not change: a layer's (its digest is a cache key) and a conffs's (a
//! rebuild that changes nothing must give the same file), down to the size
//! of the writes a file's data goes downstream in. The writer neither
//! compresses nor hashes: it writes into any `Write` (a hashing, compressing
//! pipeline for a layer, a capped gzip stream for a conffs).

use std::io::{self, Read, Write};

/// The size of a tar block.
const BLOCK: usize = 512;
/// Largest value of an 8-byte octal field (uid, gid, mode).
const MAX_OCTAL_8: u64 = 0o7777777;
/// Largest value of a 12-byte octal field (size, mtime).
const MAX_OCTAL_12: u64 = 0o77777777777;
/// Name of every PAX extended header (fixed, for determinism).
const PAX_NAME: &[u8] = b"././@PaxHeader";

/// How headers are laid out where the two kinds of archive differ. Both
/// carry the `ustar\0` magic and PAX records for whatever does not fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// A layer's: a name longer than 100 bytes is cut in the name field (the
    /// prefix field unused); a number beyond its octal field is written in
    /// base-256 (the GNU extension) as well as in PAX; a PAX header has the
    /// entry's mtime and no owner.
    Layer,
    /// Strict POSIX, for readers that know no GNU extension (the initramfs's
    /// `tar` that unpacks a conffs at boot): a long name is split over the
    /// prefix and name fields when it can be, else its last 99 bytes are
    /// kept; a number beyond its field is 0 there and only in PAX; a PAX
    /// header is owned by 0 and dated 0.
    Posix,
}

impl Dialect {
    /// The size of the writes a regular file's data is copied in. A gzip
    /// stream's bytes depend on how its input is cut into writes, so each
    /// dialect keeps the size its archives have always been written with.
    fn copy_chunk(self) -> usize {
        match self {
            Dialect::Layer => 256 * 1024,
            Dialect::Posix => 8 * 1024,
        }
    }
}

/// The type of an entry and its type-specific data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// A directory.
    Dir,
    /// A regular file of this many bytes.
    File(u64),
    /// A symbolic link to this target.
    Symlink(Vec<u8>),
    /// A hard link to an earlier entry of the archive (its name as written).
    HardLink(Vec<u8>),
    /// A character device (major, minor).
    Char(u32, u32),
    /// A block device (major, minor).
    Block(u32, u32),
    /// A named pipe.
    Fifo,
}

/// One entry to write: everything its header says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Name as written (a directory's with its trailing `/`, the root's `./`).
    pub name: Vec<u8>,
    /// Type and type-specific data.
    pub kind: Kind,
    /// Permission bits with setuid, setgid and sticky (others are dropped).
    pub mode: u32,
    /// Owner.
    pub uid: u64,
    /// Group.
    pub gid: u64,
    /// Modification time, seconds since the epoch.
    pub mtime: u64,
    /// Extended attributes (name without the `SCHILY.xattr.` prefix, value),
    /// in the order they are written.
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

/// A tar archive being written into `W`.
pub struct TarWriter<W: Write> {
    out: W,
    dialect: Dialect,
    entries: u64,
    buf: Vec<u8>,
}

impl<W: Write> TarWriter<W> {
    /// A writer of `dialect` headers into `out`.
    pub fn new(out: W, dialect: Dialect) -> Self {
        TarWriter {
            out,
            dialect,
            entries: 0,
            buf: Vec::new(),
        }
    }

    /// Appends one entry; `data` must yield the size of a regular file (an
    /// [`io::ErrorKind::UnexpectedEof`] error when it ends early).
    pub fn append(&mut self, entry: &Entry, data: Option<&mut dyn Read>) -> io::Result<()> {
        let (header, pax) = match self.dialect {
            Dialect::Layer => layer_header(entry)?,
            Dialect::Posix => posix_header(entry)?,
        };
        if !pax.is_empty() {
            self.out
                .write_all(self.pax_header(entry, pax.len()).as_bytes())?;
            self.out.write_all(&pax)?;
            self.pad(pax.len() as u64)?;
        }
        self.out.write_all(header.as_bytes())?;
        if let Kind::File(size) = entry.kind {
            if size > 0 {
                let data = data.ok_or_else(|| io::Error::other("a regular file without data"))?;
                self.copy_exact(data, size)?;
                self.pad(size)?;
            }
        }
        self.entries += 1;
        Ok(())
    }

    /// The entries written so far (PAX headers not counted).
    pub fn entries(&self) -> u64 {
        self.entries
    }

    /// Writes the end-of-archive marker and returns the output, unflushed.
    pub fn finish(mut self) -> io::Result<W> {
        self.out.write_all(&[0; 2 * BLOCK])?;
        Ok(self.out)
    }

    /// The header of the PAX records of `entry`, `len` bytes of them.
    fn pax_header(&self, entry: &Entry, len: usize) -> tar::Header {
        let mut h = tar::Header::new_ustar();
        h.as_old_mut().name[..PAX_NAME.len()].copy_from_slice(PAX_NAME);
        h.set_entry_type(tar::EntryType::XHeader);
        h.set_mode(0o644);
        match self.dialect {
            Dialect::Layer => h.set_mtime(entry.mtime.min(MAX_OCTAL_12)),
            Dialect::Posix => {
                h.set_uid(0);
                h.set_gid(0);
                h.set_mtime(0);
            }
        }
        h.set_size(len as u64);
        h.set_cksum();
        h
    }

    fn copy_exact(&mut self, data: &mut dyn Read, size: u64) -> io::Result<()> {
        if self.buf.is_empty() {
            self.buf = vec![0; self.dialect.copy_chunk()];
        }
        let mut left = size;
        while left > 0 {
            let want = left.min(self.buf.len() as u64) as usize;
            let n = match data.read(&mut self.buf[..want]) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("the data ended early: {left} of {size} bytes missing"),
                    ))
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            self.out.write_all(&self.buf[..n])?;
            left -= n as u64;
        }
        Ok(())
    }

    fn pad(&mut self, len: u64) -> io::Result<()> {
        let rem = (len % BLOCK as u64) as usize;
        if rem != 0 {
            self.out.write_all(&[0; BLOCK][..BLOCK - rem])?;
        }
        Ok(())
    }
}

/// The size and entry type of `kind`.
fn size_and_type(kind: &Kind) -> (u64, tar::EntryType) {
    match kind {
        Kind::Dir => (0, tar::EntryType::Directory),
        Kind::File(size) => (*size, tar::EntryType::Regular),
        Kind::Symlink(_) => (0, tar::EntryType::Symlink),
        Kind::HardLink(_) => (0, tar::EntryType::Link),
        Kind::Char(..) => (0, tar::EntryType::Char),
        Kind::Block(..) => (0, tar::EntryType::Block),
        Kind::Fifo => (0, tar::EntryType::Fifo),
    }
}

/// Sets the device numbers of a device entry.
fn set_device(h: &mut tar::Header, kind: &Kind) -> io::Result<()> {
    if let Kind::Char(major, minor) | Kind::Block(major, minor) = *kind {
        h.set_device_major(major)?;
        h.set_device_minor(minor)?;
    }
    Ok(())
}

/// Appends the `SCHILY.xattr.*` records of `entry`.
fn xattr_records(pax: &mut Vec<u8>, entry: &Entry) {
    for (name, value) in &entry.xattrs {
        let mut key = b"SCHILY.xattr.".to_vec();
        key.extend_from_slice(name);
        pax_record(pax, &key, value);
    }
}

/// A numeric header field: its PAX key, its value, the largest value its
/// octal field holds, and its setter.
type NumberField = (&'static [u8], u64, u64, fn(&mut tar::Header, u64));

/// The `uid`, `gid` and `mtime` fields of `entry`.
fn owner_and_time(entry: &Entry) -> [NumberField; 3] {
    [
        (b"uid", entry.uid, MAX_OCTAL_8, tar::Header::set_uid),
        (b"gid", entry.gid, MAX_OCTAL_8, tar::Header::set_gid),
        (b"mtime", entry.mtime, MAX_OCTAL_12, tar::Header::set_mtime),
    ]
}

/// A [`Dialect::Layer`] header and its PAX records, in the order
/// `path`, `uid`, `gid`, `mtime`, `linkpath`, `size`, xattrs.
fn layer_header(entry: &Entry) -> io::Result<(tar::Header, Vec<u8>)> {
    let mut pax = Vec::new();
    let mut h = tar::Header::new_ustar();
    let (size, ty) = size_and_type(&entry.kind);
    put_bytes(&mut h.as_old_mut().name, &entry.name, &mut pax, b"path");
    h.set_mode(entry.mode & 0o7777);
    for (key, value, max, set) in owner_and_time(entry) {
        set_base256(&mut h, value, max, &mut pax, key, set);
    }
    if let Kind::Symlink(target) | Kind::HardLink(target) = &entry.kind {
        put_bytes(&mut h.as_old_mut().linkname, target, &mut pax, b"linkpath");
    }
    set_device(&mut h, &entry.kind)?;
    h.set_entry_type(ty);
    set_base256(
        &mut h,
        size,
        MAX_OCTAL_12,
        &mut pax,
        b"size",
        tar::Header::set_size,
    );
    xattr_records(&mut pax, entry);
    h.set_cksum();
    Ok((h, pax))
}

/// A [`Dialect::Posix`] header and its PAX records, in the order `path`,
/// `linkpath`, `uid`, `gid`, `mtime`, `size`, xattrs.
fn posix_header(entry: &Entry) -> io::Result<(tar::Header, Vec<u8>)> {
    let mut pax = Vec::new();
    let mut h = tar::Header::new_ustar();
    let (size, ty) = size_and_type(&entry.kind);
    h.set_entry_type(ty);
    let name = &entry.name;
    if !set_ustar_name(&mut h, name) {
        pax_record(&mut pax, b"path", name);
        set_ustar_name(&mut h, &name[name.len().saturating_sub(99)..]);
    }
    if let Kind::Symlink(target) | Kind::HardLink(target) = &entry.kind {
        let field = &mut h.as_old_mut().linkname;
        let kept = &target[..target.len().min(field.len())];
        if kept.contains(&0) {
            return Err(io::Error::other("provided value contains a nul byte"));
        }
        put_bytes(field, target, &mut pax, b"linkpath");
    }
    set_device(&mut h, &entry.kind)?;
    h.set_mode(entry.mode & 0o7777);
    let size_field: NumberField = (b"size", size, MAX_OCTAL_12, tar::Header::set_size);
    for (key, value, max, set) in owner_and_time(entry).into_iter().chain([size_field]) {
        if value > max {
            pax_record(&mut pax, key, value.to_string().as_bytes());
            set(&mut h, 0);
        } else {
            set(&mut h, value);
        }
    }
    xattr_records(&mut pax, entry);
    h.set_cksum();
    Ok((h, pax))
}

/// Copies `value` into a fixed field, cut to its size; a PAX record when it
/// does not fit.
fn put_bytes(field: &mut [u8], value: &[u8], pax: &mut Vec<u8>, key: &[u8]) {
    let n = value.len().min(field.len());
    field[..n].copy_from_slice(&value[..n]);
    if value.len() > field.len() {
        pax_record(pax, key, value);
    }
}

/// Sets a number (the tar crate writes one beyond `max` in base-256) and,
/// beyond `max`, a PAX record for readers that do not know that extension.
fn set_base256(
    h: &mut tar::Header,
    value: u64,
    max: u64,
    pax: &mut Vec<u8>,
    key: &[u8],
    set: fn(&mut tar::Header, u64),
) {
    set(h, value);
    if value > max {
        pax_record(pax, key, value.to_string().as_bytes());
    }
}

/// Puts `name` in the ustar name and prefix fields; false if it does not fit.
fn set_ustar_name(h: &mut tar::Header, name: &[u8]) -> bool {
    let Some(ustar) = h.as_ustar_mut() else {
        return false;
    };
    let (prefix, rest) = if name.len() <= ustar.name.len() {
        (&b""[..], name)
    } else {
        // Split at a `/` so that the prefix fits in 155 bytes and the rest in 100.
        let Some(i) = name
            .iter()
            .enumerate()
            .filter(|&(i, &b)| b == b'/' && i <= ustar.prefix.len())
            .map(|(i, _)| i)
            .find(|&i| name.len() - i - 1 <= ustar.name.len() && i > 0)
        else {
            return false;
        };
        (&name[..i], &name[i + 1..])
    };
    ustar.name = [0; 100];
    ustar.prefix = [0; 155];
    ustar.name[..rest.len()].copy_from_slice(rest);
    ustar.prefix[..prefix.len()].copy_from_slice(prefix);
    true
}

/// Appends the PAX record `LEN key=value\n` (LEN counts the whole record).
pub fn pax_record(out: &mut Vec<u8>, key: &[u8], value: &[u8]) {
    let base = key.len() + value.len() + 3; // ' ', '=', '\n'
    let mut len = base + 1;
    while len != base + len.to_string().len() {
        len = base + len.to_string().len();
    }
    out.extend_from_slice(len.to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(key);
    out.push(b'=');
    out.extend_from_slice(value);
    out.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_record_lengths_count_themselves() {
        let mut out = Vec::new();
        pax_record(&mut out, b"path", &[b'a'; 4]);
        assert_eq!(out, b"13 path=aaaa\n");
        out.clear();
        // 98 bytes without the length: 2 digits make 100, which has 3.
        pax_record(&mut out, b"k", &[b'v'; 94]);
        assert_eq!(out.len(), 101);
        assert!(out.starts_with(b"101 k="));
    }
}
