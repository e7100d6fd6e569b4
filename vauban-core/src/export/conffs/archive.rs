//! The conffs archive as written: POSIX ustar headers (dracut's `det_archive`
//! recognises a tar by the `ustar\0` magic of its first header, which GNU
//! headers lack), PAX records for long names, large numbers and
//! `SCHILY.xattr.*`, no user or group names (the initramfs has no passwd to
//! map them), gzip-compressed in one stream. Compressed bytes past the size
//! limit are counted but not written, so an oversized archive costs no disk;
//! the largest regular files are remembered for the error message.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::{self, Read, Write};

use flate2::write::GzEncoder;

const BLOCK: usize = 512;
/// Largest value of an 8-byte octal field (uid, gid).
const MAX_OCTAL_8: u64 = 0o7777777;
/// Largest value of a 12-byte octal field (size, mtime).
const MAX_OCTAL_12: u64 = 0o77777777777;
/// Name of every PAX extended header.
const PAX_NAME: &[u8] = b"././@PaxHeader";
/// How many of the largest files are remembered.
pub(super) const BIGGEST: usize = 5;

/// The type of an entry and its type-specific data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Kind {
    /// A directory.
    Dir,
    /// A regular file of this many bytes.
    File(u64),
    /// A symbolic link to this target.
    Symlink(Vec<u8>),
    /// A hard link to an earlier entry of the archive.
    HardLink(Vec<u8>),
    /// A character device (major, minor).
    Char(u32, u32),
    /// A block device (major, minor).
    Block(u32, u32),
    /// A named pipe.
    Fifo,
}

/// One entry to write.
#[derive(Debug, Clone)]
pub(super) struct Meta {
    /// Relative name, without a trailing `/`.
    pub(super) name: Vec<u8>,
    /// Type.
    pub(super) kind: Kind,
    /// Permission bits with setuid, setgid and sticky.
    pub(super) mode: u32,
    /// Owner.
    pub(super) uid: u64,
    /// Group.
    pub(super) gid: u64,
    /// Modification time, seconds since the epoch.
    pub(super) mtime: u64,
    /// Extended attributes (name without the `SCHILY.xattr.` prefix, value).
    pub(super) xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

/// Writes compressed bytes to the file until `limit` is reached, then only
/// counts them.
struct Capped<W> {
    out: W,
    written: u64,
    limit: u64,
}

impl<W: Write> Write for Capped<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.written < self.limit {
            self.out.write_all(buf)?;
        }
        self.written += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// What a finished archive is.
#[derive(Debug)]
pub(super) struct Written<W> {
    /// The output.
    pub(super) out: W,
    /// Compressed size in bytes.
    pub(super) size: u64,
    /// Entries written (PAX headers not counted).
    pub(super) entries: u64,
    /// The largest regular files, largest first.
    pub(super) biggest: Vec<(String, u64)>,
}

/// A conffs archive being written.
pub(super) struct Archive<W: Write> {
    gz: GzEncoder<Capped<W>>,
    entries: u64,
    biggest: BinaryHeap<Reverse<(u64, Vec<u8>)>>,
}

impl<W: Write> Archive<W> {
    /// An archive into `out`, whose bytes past `limit` are not written.
    pub(super) fn new(out: W, limit: u64) -> Self {
        let capped = Capped {
            out,
            written: 0,
            limit,
        };
        Archive {
            gz: GzEncoder::new(capped, flate2::Compression::default()),
            entries: 0,
            biggest: BinaryHeap::new(),
        }
    }

    /// Appends one entry; `data` must yield the size of a regular file.
    pub(super) fn append(&mut self, meta: &Meta, data: Option<&mut dyn Read>) -> io::Result<()> {
        let (header, pax) = header(meta)?;
        if !pax.is_empty() {
            let mut h = tar::Header::new_ustar();
            h.as_ustar_mut().expect("a ustar header").name[..PAX_NAME.len()]
                .copy_from_slice(PAX_NAME);
            h.set_entry_type(tar::EntryType::XHeader);
            h.set_mode(0o644);
            h.set_uid(0);
            h.set_gid(0);
            h.set_mtime(0);
            h.set_size(pax.len() as u64);
            h.set_cksum();
            self.gz.write_all(h.as_bytes())?;
            self.gz.write_all(&pax)?;
            self.pad(pax.len() as u64)?;
        }
        self.gz.write_all(header.as_bytes())?;
        if let Kind::File(size) = meta.kind {
            let data = data.ok_or_else(|| io::Error::other("a regular file without data"))?;
            let copied = io::copy(&mut data.take(size), &mut self.gz)?;
            if copied != size {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "{} bytes of {size} for {}",
                        copied,
                        super::names::show(&meta.name)
                    ),
                ));
            }
            self.pad(size)?;
            self.remember(size, &meta.name);
        }
        self.entries += 1;
        Ok(())
    }

    fn pad(&mut self, size: u64) -> io::Result<()> {
        let rem = (size % BLOCK as u64) as usize;
        if rem != 0 {
            self.gz.write_all(&[0; BLOCK][..BLOCK - rem])?;
        }
        Ok(())
    }

    fn remember(&mut self, size: u64, name: &[u8]) {
        self.biggest.push(Reverse((size, name.to_vec())));
        if self.biggest.len() > BIGGEST {
            self.biggest.pop();
        }
    }

    /// Writes the end of the archive and finishes the gzip stream.
    pub(super) fn finish(mut self) -> io::Result<Written<W>> {
        self.gz.write_all(&[0; 2 * BLOCK])?;
        let mut capped = self.gz.finish()?;
        capped.flush()?;
        let mut biggest: Vec<(String, u64)> = self
            .biggest
            .into_iter()
            .map(|Reverse((size, name))| (super::names::show(&name), size))
            .collect();
        biggest.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        Ok(Written {
            out: capped.out,
            size: capped.written,
            entries: self.entries,
            biggest,
        })
    }
}

/// The ustar header of `meta` and the PAX records it needs (maybe none).
fn header(meta: &Meta) -> io::Result<(tar::Header, Vec<u8>)> {
    let mut pax = Vec::new();
    let mut h = tar::Header::new_ustar();
    let (ty, size) = match &meta.kind {
        Kind::Dir => (tar::EntryType::Directory, 0),
        Kind::File(size) => (tar::EntryType::Regular, *size),
        Kind::Symlink(_) => (tar::EntryType::Symlink, 0),
        Kind::HardLink(_) => (tar::EntryType::Link, 0),
        Kind::Char(..) => (tar::EntryType::Char, 0),
        Kind::Block(..) => (tar::EntryType::Block, 0),
        Kind::Fifo => (tar::EntryType::Fifo, 0),
    };
    h.set_entry_type(ty);
    let mut name = meta.name.clone();
    if meta.kind == Kind::Dir {
        name.push(b'/');
    }
    if !set_ustar_name(&mut h, &name) {
        record(&mut pax, b"path", &name);
        set_ustar_name(&mut h, &name[name.len().saturating_sub(99)..]);
    }
    if let Kind::Symlink(target) | Kind::HardLink(target) = &meta.kind {
        if h.set_link_name_literal(target).is_err() {
            record(&mut pax, b"linkpath", target);
            h.set_link_name_literal(&target[..target.len().min(100)])?;
        }
    }
    if let Kind::Char(major, minor) | Kind::Block(major, minor) = meta.kind {
        h.set_device_major(major)?;
        h.set_device_minor(minor)?;
    }
    h.set_mode(meta.mode & 0o7777);
    for (key, value, max, set) in [
        (
            &b"uid"[..],
            meta.uid,
            MAX_OCTAL_8,
            tar::Header::set_uid as fn(&mut _, u64),
        ),
        (b"gid", meta.gid, MAX_OCTAL_8, tar::Header::set_gid),
        (b"mtime", meta.mtime, MAX_OCTAL_12, tar::Header::set_mtime),
        (b"size", size, MAX_OCTAL_12, tar::Header::set_size),
    ] {
        if value > max {
            record(&mut pax, key, value.to_string().as_bytes());
            set(&mut h, 0);
        } else {
            set(&mut h, value);
        }
    }
    for (xname, value) in &meta.xattrs {
        let mut key = b"SCHILY.xattr.".to_vec();
        key.extend_from_slice(xname);
        record(&mut pax, &key, value);
    }
    h.set_cksum();
    Ok((h, pax))
}

/// Puts `name` in the ustar name and prefix fields; false if it does not fit.
fn set_ustar_name(h: &mut tar::Header, name: &[u8]) -> bool {
    let ustar = h.as_ustar_mut().expect("a ustar header");
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
pub(super) fn record(out: &mut Vec<u8>, key: &[u8], value: &[u8]) {
    let base = key.len() + value.len() + 3;
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

    fn meta(name: &[u8], kind: Kind) -> Meta {
        Meta {
            name: name.to_vec(),
            kind,
            mode: 0o644,
            uid: 0,
            gid: 0,
            mtime: 1_700_000_000,
            xattrs: Vec::new(),
        }
    }

    fn read_back(bytes: &[u8]) -> Vec<(String, Option<String>, u64)> {
        let gz = flate2::read::GzDecoder::new(bytes);
        let mut ar = tar::Archive::new(gz);
        ar.entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let link = e
                    .link_name_bytes()
                    .map(|l| String::from_utf8_lossy(&l).into_owned());
                (
                    String::from_utf8_lossy(&e.path_bytes()).into_owned(),
                    link,
                    e.header().uid().unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn long_names_large_ids_and_the_ustar_magic_of_the_first_header() {
        let long = format!("{}/{}", "d".repeat(120), "f".repeat(90));
        let longer = "x".repeat(300);
        let target = "t".repeat(150);
        let mut a = Archive::new(Vec::new(), u64::MAX);
        let mut m = meta(long.as_bytes(), Kind::File(3));
        m.uid = 5_000_000;
        a.append(&m, Some(&mut &b"abc"[..])).unwrap();
        a.append(
            &meta(
                longer.as_bytes(),
                Kind::Symlink(target.clone().into_bytes()),
            ),
            None,
        )
        .unwrap();
        let w = a.finish().unwrap();
        assert_eq!(w.entries, 2);
        assert_eq!(w.size, w.out.len() as u64);
        assert_eq!(w.biggest, [(long.clone(), 3)]);
        let mut plain = Vec::new();
        flate2::read::GzDecoder::new(&w.out[..])
            .read_to_end(&mut plain)
            .unwrap();
        assert_eq!(
            &plain[257..263],
            b"ustar\0",
            "dracut's det_archive needs it"
        );
        let got = read_back(&w.out);
        assert_eq!(got[0].0, long);
        assert_eq!(got[1], (longer, Some(target), 0));
    }

    #[test]
    fn pax_record_lengths_count_themselves() {
        let mut out = Vec::new();
        record(&mut out, b"path", &[b'a'; 4]);
        assert_eq!(out, b"13 path=aaaa\n");
        out.clear();
        // 98 bytes without the length: 2 digits make 100, which has 3.
        record(&mut out, b"k", &[b'v'; 94]);
        assert_eq!(out.len(), 101);
        assert!(out.starts_with(b"101 k="));
    }

    #[test]
    fn bytes_past_the_limit_are_counted_not_written() {
        let mut a = Archive::new(Vec::new(), 10);
        let data = vec![7u8; 4096];
        a.append(&meta(b"f", Kind::File(4096)), Some(&mut &data[..]))
            .unwrap();
        let w = a.finish().unwrap();
        assert!(w.size > 10);
        assert!((w.out.len() as u64) < w.size);
    }

    #[test]
    fn archive_bytes_never_change() {
        // A rebuild that changes nothing must give the same conffs: these
        // bytes are what vauban has always written.
        let noise: Vec<u8> = (0u32..600_000)
            .map(|i| {
                (i.wrapping_mul(2_654_435_761) >> 13) as u8 & if i % 3 == 0 { 0xff } else { 0x0f }
            })
            .collect();
        let deep = format!("{}/{}", "d".repeat(120), "f".repeat(90)).into_bytes();
        let mut big_ids = meta(b"etc/ids", Kind::File(3));
        big_ids.uid = 5_000_000;
        big_ids.gid = 3_000_000;
        big_ids.mtime = 1 << 34;
        let mut with_xattrs = meta(b"usr/bin/ping", Kind::File(4));
        with_xattrs.mode = 0o4755;
        with_xattrs.xattrs = vec![
            (b"security.capability".to_vec(), b"\x01\0\0\x02".to_vec()),
            (b"user.k".to_vec(), b"v".to_vec()),
        ];
        let entries: Vec<(Meta, Option<Vec<u8>>)> = vec![
            (meta(b"etc", Kind::Dir), None),
            (meta(b"etc/file", Kind::File(3)), Some(b"abc".to_vec())),
            (meta(&deep, Kind::File(0)), Some(Vec::new())),
            (meta(&[b'x'; 300], Kind::Symlink(vec![b't'; 150])), None),
            (meta(&[b'y'; 300], Kind::Dir), None),
            (
                meta(b"etc/link", Kind::HardLink(b"etc/file".to_vec())),
                None,
            ),
            (meta(b"etc/longlink", Kind::HardLink(deep.clone())), None),
            (meta(b"dev/null", Kind::Char(1, 3)), None),
            (meta(b"dev/sda", Kind::Block(8, 0)), None),
            (meta(b"run/fifo", Kind::Fifo), None),
            (big_ids, Some(b"ids".to_vec())),
            (with_xattrs, Some(b"ping".to_vec())),
            (
                meta(b"var/noise", Kind::File(noise.len() as u64)),
                Some(noise),
            ),
        ];
        let mut a = Archive::new(Vec::new(), u64::MAX);
        for (m, data) in entries {
            let mut data = data.as_deref();
            a.append(&m, data.as_mut().map(|d| d as &mut dyn Read))
                .unwrap();
        }
        let w = a.finish().unwrap();
        assert_eq!(
            vauban_oci::Digest::of_bytes(&w.out).hex(),
            "344f357e390d29b0fb7064e29b690cdddcfc00bbaf336567d6a3bb5eae2245c7"
        );
    }
}
