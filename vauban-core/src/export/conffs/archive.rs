//! The conffs archive as written: the deterministic tar of
//! [`vauban_oci::tar_writer`] in its POSIX [`Dialect`] (dracut's
//! `det_archive` recognises a tar by the `ustar\0` magic of its first header,
//! which GNU headers lack; the initramfs's `tar` knows no GNU extension),
//! gzip-compressed in one stream. Compressed bytes past the size limit are
//! counted but not written, so an oversized archive costs no disk; the
//! largest regular files are remembered for the error message.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::{self, Read, Write};

use flate2::write::GzEncoder;
use vauban_oci::tar_writer::{Dialect, TarWriter};
pub(super) use vauban_oci::tar_writer::{Entry, Kind};

/// How many of the largest files are remembered.
pub(super) const BIGGEST: usize = 5;

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
    tar: TarWriter<GzEncoder<Capped<W>>>,
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
        let gz = GzEncoder::new(capped, flate2::Compression::default());
        Archive {
            tar: TarWriter::new(gz, Dialect::Posix),
            biggest: BinaryHeap::new(),
        }
    }

    /// Appends one entry, named relative and without a trailing `/` (a
    /// directory's is added); `data` must yield the size of a regular file.
    pub(super) fn append(&mut self, entry: &Entry, data: Option<&mut dyn Read>) -> io::Result<()> {
        let written = if entry.kind == Kind::Dir {
            let mut dir = entry.clone();
            dir.name.push(b'/');
            self.tar.append(&dir, data)
        } else {
            self.tar.append(entry, data)
        };
        written.map_err(|e| match e.kind() {
            io::ErrorKind::UnexpectedEof => io::Error::new(
                e.kind(),
                format!("{}: {e}", super::names::show(&entry.name)),
            ),
            _ => e,
        })?;
        if let Kind::File(size) = entry.kind {
            self.remember(size, &entry.name);
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
    pub(super) fn finish(self) -> io::Result<Written<W>> {
        let entries = self.tar.entries();
        let mut capped = self.tar.finish()?.finish()?;
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
            entries,
            biggest,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(name: &[u8], kind: Kind) -> Entry {
        Entry {
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
        let entries: Vec<(Entry, Option<Vec<u8>>)> = vec![
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
