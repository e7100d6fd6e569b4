//! The tar side of layer writing: deterministic ustar headers with PAX records
//! for long names, large numbers and xattrs, streamed through the diff_id hash,
//! the compressor and the blob hash in one pass.

use std::io::{self, Read, Write};

use super::encoder::Encoder;
use super::xattr::Xattr;
use super::{Compression, PackedLayer};
use crate::digest::HashingWriter;

const BLOCK: usize = 512;
/// Largest value of an 8-byte octal field (uid, gid, mode).
const MAX_OCTAL_8: u64 = 0o7777777;
/// Largest value of a 12-byte octal field (size, mtime).
const MAX_OCTAL_12: u64 = 0o77777777777;
/// Name of every PAX extended header (fixed, for determinism).
const PAX_NAME: &[u8] = b"././@PaxHeader";

/// The type of an entry and its type-specific data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A directory.
    Dir,
    /// A regular file of `size` bytes.
    File(u64),
    /// A symbolic link to the target.
    Symlink(Vec<u8>),
    /// A hard link to an earlier entry (normalised name).
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
pub(crate) struct Meta {
    /// Name as written (`./` for the root, `dir/` for directories).
    pub(crate) name: Vec<u8>,
    /// Type.
    pub(crate) kind: Kind,
    /// Permission bits incl. setuid/setgid/sticky.
    pub(crate) mode: u32,
    /// Owner.
    pub(crate) uid: u64,
    /// Group.
    pub(crate) gid: u64,
    /// Modification time, seconds since the epoch.
    pub(crate) mtime: i64,
    /// Extended attributes, already filtered and sorted.
    pub(crate) xattrs: Vec<Xattr>,
}

/// Writes a layer: tar -> diff_id hash -> compressor -> blob hash -> `out`.
pub(crate) struct LayerWriter<W: Write> {
    tar: HashingWriter<Encoder<HashingWriter<W>>>,
    compression: Compression,
    epoch: Option<i64>,
    entries: u64,
    buf: Vec<u8>,
}

impl<W: Write> LayerWriter<W> {
    /// A writer of a `compression` layer into `out`; mtimes are clamped to `epoch`.
    pub(crate) fn new(out: W, compression: Compression, epoch: Option<i64>) -> Self {
        LayerWriter {
            tar: HashingWriter::new(Encoder::new(HashingWriter::new(out), compression)),
            compression,
            epoch,
            entries: 0,
            buf: vec![0; 256 * 1024],
        }
    }

    /// Appends one entry; `data` must yield `size` bytes for a regular file.
    pub(crate) fn append(&mut self, meta: &Meta, data: Option<&mut dyn Read>) -> io::Result<()> {
        let mtime = self.epoch.map_or(meta.mtime, |e| meta.mtime.min(e)).max(0) as u64;
        let mut pax = Vec::new();
        let mut h = tar::Header::new_ustar();
        put_bytes(&mut h.as_old_mut().name, &meta.name, &mut pax, b"path");
        h.set_mode(meta.mode & 0o7777);
        put_num(
            &mut h,
            meta.uid,
            MAX_OCTAL_8,
            &mut pax,
            b"uid",
            tar::Header::set_uid,
        );
        put_num(
            &mut h,
            meta.gid,
            MAX_OCTAL_8,
            &mut pax,
            b"gid",
            tar::Header::set_gid,
        );
        put_num(
            &mut h,
            mtime,
            MAX_OCTAL_12,
            &mut pax,
            b"mtime",
            tar::Header::set_mtime,
        );
        let mut size = 0;
        let ty = match &meta.kind {
            Kind::Dir => tar::EntryType::Directory,
            Kind::File(s) => {
                size = *s;
                tar::EntryType::Regular
            }
            Kind::Symlink(t) | Kind::HardLink(t) => {
                put_bytes(&mut h.as_old_mut().linkname, t, &mut pax, b"linkpath");
                if matches!(meta.kind, Kind::Symlink(_)) {
                    tar::EntryType::Symlink
                } else {
                    tar::EntryType::Link
                }
            }
            Kind::Char(ma, mi) | Kind::Block(ma, mi) => {
                h.set_device_major(*ma)?;
                h.set_device_minor(*mi)?;
                if matches!(meta.kind, Kind::Char(..)) {
                    tar::EntryType::Char
                } else {
                    tar::EntryType::Block
                }
            }
            Kind::Fifo => tar::EntryType::Fifo,
        };
        h.set_entry_type(ty);
        put_num(
            &mut h,
            size,
            MAX_OCTAL_12,
            &mut pax,
            b"size",
            tar::Header::set_size,
        );
        for (name, value) in &meta.xattrs {
            let mut key = b"SCHILY.xattr.".to_vec();
            key.extend_from_slice(name);
            pax_record(&mut pax, &key, value);
        }
        if !pax.is_empty() {
            let mut ph = tar::Header::new_ustar();
            ph.as_old_mut().name[..PAX_NAME.len()].copy_from_slice(PAX_NAME);
            ph.set_mode(0o644);
            ph.set_mtime(mtime.min(MAX_OCTAL_12));
            ph.set_entry_type(tar::EntryType::XHeader);
            ph.set_size(pax.len() as u64);
            ph.set_cksum();
            self.tar.write_all(ph.as_bytes())?;
            self.tar.write_all(&pax)?;
            self.pad(pax.len() as u64)?;
        }
        h.set_cksum();
        self.tar.write_all(h.as_bytes())?;
        if size > 0 {
            let data = data.ok_or_else(|| io::Error::other("no data for a regular file"))?;
            self.copy_exact(data, size)?;
            self.pad(size)?;
        }
        self.entries += 1;
        Ok(())
    }

    fn copy_exact(&mut self, data: &mut dyn Read, size: u64) -> io::Result<()> {
        let mut left = size;
        while left > 0 {
            let want = left.min(self.buf.len() as u64) as usize;
            let n = match data.read(&mut self.buf[..want]) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("file shrank while packed: {left} of {size} bytes missing"),
                    ))
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            self.tar.write_all(&self.buf[..n])?;
            left -= n as u64;
        }
        Ok(())
    }

    fn pad(&mut self, len: u64) -> io::Result<()> {
        let rem = (len % BLOCK as u64) as usize;
        if rem != 0 {
            self.tar.write_all(&[0u8; BLOCK][..BLOCK - rem])?;
        }
        Ok(())
    }

    /// Writes the end-of-archive marker, finishes compression and returns the
    /// digests.
    pub(crate) fn finish(mut self) -> io::Result<(W, PackedLayer)> {
        self.tar.write_all(&[0u8; 2 * BLOCK])?;
        let (encoder, diff_id, _) = self.tar.finish();
        let (out, digest, size) = encoder.finish()?.finish();
        Ok((
            out,
            PackedLayer {
                digest,
                size,
                diff_id,
                media_type: self.compression.media_type().to_string(),
                entries: self.entries,
            },
        ))
    }
}

/// Copies `value` into a fixed field when it fits (leaving a NUL), else writes
/// a truncated copy and a PAX record.
fn put_bytes(field: &mut [u8], value: &[u8], pax: &mut Vec<u8>, key: &[u8]) {
    let n = value.len().min(field.len());
    field[..n].copy_from_slice(&value[..n]);
    if value.len() > field.len() {
        pax_record(pax, key, value);
    }
}

fn put_num(
    h: &mut tar::Header,
    value: u64,
    max: u64,
    pax: &mut Vec<u8>,
    key: &[u8],
    set: fn(&mut tar::Header, u64),
) {
    // The tar crate writes large values in base-256; the PAX record is for
    // readers that do not know that GNU extension.
    set(h, value);
    if value > max {
        pax_record(pax, key, value.to_string().as_bytes());
    }
}

/// Appends a PAX record `"<len> <key>=<value>\n"` (len counts itself).
fn pax_record(pax: &mut Vec<u8>, key: &[u8], value: &[u8]) {
    let rest = key.len() + value.len() + 3; // ' ', '=', '\n'
    let mut len = rest + 1;
    while len != rest + len.to_string().len() {
        len = rest + len.to_string().len();
    }
    pax.extend_from_slice(len.to_string().as_bytes());
    pax.push(b' ');
    pax.extend_from_slice(key);
    pax.push(b'=');
    pax.extend_from_slice(value);
    pax.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Digest;

    #[test]
    fn pax_record_lengths() {
        let mut p = Vec::new();
        pax_record(&mut p, b"path", &[b'a'; 95]);
        let s = String::from_utf8(p.clone()).unwrap();
        let (len, _) = s.split_once(' ').unwrap();
        assert_eq!(len.parse::<usize>().unwrap(), p.len());
    }

    #[test]
    fn long_names_and_xattrs_are_read_back() {
        let long: Vec<u8> = format!("{}/file", "d".repeat(150)).into_bytes();
        let mut w = LayerWriter::new(Vec::new(), Compression::None, Some(10));
        let meta = Meta {
            name: long.clone(),
            kind: Kind::File(3),
            mode: 0o4755,
            uid: 5_000_000,
            gid: 7,
            mtime: 99,
            xattrs: vec![(b"user.k".to_vec(), b"v\0\x01".to_vec())],
        };
        w.append(&meta, Some(&mut &b"abc"[..])).unwrap();
        let (tar_bytes, layer) = w.finish().unwrap();
        assert_eq!(layer.entries, 1);
        let mut a = tar::Archive::new(&tar_bytes[..]);
        let mut e = a.entries().unwrap().next().unwrap().unwrap();
        assert_eq!(&*e.path_bytes(), &long[..]);
        assert_eq!(e.header().mode().unwrap(), 0o4755);
        assert_eq!(e.header().mtime().unwrap(), 10);
        let pax: Vec<(String, Vec<u8>)> = e
            .pax_extensions()
            .unwrap()
            .unwrap()
            .map(|x| {
                let x = x.unwrap();
                (x.key().unwrap().to_string(), x.value_bytes().to_vec())
            })
            .collect();
        assert!(pax.contains(&("uid".into(), b"5000000".to_vec())));
        assert!(pax.contains(&("SCHILY.xattr.user.k".into(), b"v\0\x01".to_vec())));
    }

    /// A reader that hands out its bytes in uneven pieces, as a file may.
    struct Uneven(Vec<u8>, usize);

    impl Read for Uneven {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = (self.1 % 7919 + 1)
                .min(buf.len())
                .min(self.0.len() - self.1.min(self.0.len()));
            let start = self.1;
            buf[..n].copy_from_slice(&self.0[start..start + n]);
            self.1 += n;
            Ok(n)
        }
    }

    /// Every kind of entry and every header overflow, as the layers of a
    /// build hold them.
    fn golden_entries() -> Vec<(Meta, Option<Vec<u8>>)> {
        let noise: Vec<u8> = (0u32..600_000)
            .map(|i| {
                (i.wrapping_mul(2_654_435_761) >> 13) as u8 & if i % 3 == 0 { 0xff } else { 0x0f }
            })
            .collect();
        let m = |name: &[u8], kind: Kind| Meta {
            name: name.to_vec(),
            kind,
            mode: 0o755,
            uid: 0,
            gid: 0,
            mtime: 1_700_000_000,
            xattrs: Vec::new(),
        };
        let deep = format!("{}/{}", "d".repeat(120), "f".repeat(90)).into_bytes();
        let mut big_ids = m(b"etc/ids", Kind::File(3));
        big_ids.uid = 5_000_000;
        big_ids.gid = 3_000_000;
        big_ids.mtime = 1 << 34;
        let mut with_xattrs = m(b"usr/bin/ping", Kind::File(4));
        with_xattrs.mode = 0o4755;
        with_xattrs.xattrs = vec![
            (b"security.capability".to_vec(), b"\x01\0\0\x02".to_vec()),
            (b"user.k".to_vec(), b"v".to_vec()),
        ];
        vec![
            (m(b"./", Kind::Dir), None),
            (m(b"etc/", Kind::Dir), None),
            (m(b"etc/file", Kind::File(3)), Some(b"abc".to_vec())),
            (m(&deep, Kind::File(0)), None),
            (m(&[b'x'; 300], Kind::Symlink(vec![b't'; 150])), None),
            (m(b"etc/link", Kind::HardLink(b"etc/file".to_vec())), None),
            (m(b"etc/longlink", Kind::HardLink(deep.clone())), None),
            (m(b"dev/null", Kind::Char(1, 3)), None),
            (m(b"dev/sda", Kind::Block(8, 0)), None),
            (m(b"run/fifo", Kind::Fifo), None),
            (big_ids, Some(b"ids".to_vec())),
            (with_xattrs, Some(b"ping".to_vec())),
            (m(b"var/noise", Kind::File(noise.len() as u64)), Some(noise)),
        ]
    }

    fn golden_layer(compression: Compression, epoch: Option<i64>) -> (Digest, Digest) {
        let mut w = LayerWriter::new(Vec::new(), compression, epoch);
        for (meta, data) in golden_entries() {
            let mut data = data.map(|d| Uneven(d, 0));
            w.append(&meta, data.as_mut().map(|d| d as &mut dyn Read))
                .unwrap();
        }
        let (_, layer) = w.finish().unwrap();
        (layer.digest, layer.diff_id)
    }

    #[test]
    fn layer_bytes_never_change() {
        // Layer digests are cache keys: these bytes are what vauban has
        // always written, whatever the code that writes them.
        let cases = [
            (Compression::None, None),
            (Compression::Gzip, Some(1_000)),
            (Compression::Zstd, None),
        ];
        let got: Vec<(String, String)> = cases
            .into_iter()
            .map(|(compression, epoch)| {
                let (digest, diff_id) = golden_layer(compression, epoch);
                (digest.hex().to_string(), diff_id.hex().to_string())
            })
            .collect();
        let want = [
            (
                "8a12135920f32f485dd485392de71124df58a85cc6db1e3e47324393d2268843",
                "8a12135920f32f485dd485392de71124df58a85cc6db1e3e47324393d2268843",
            ),
            (
                "640e5a1f64b11c6f2569d2afd715a450916dd830d1c936810acefe620cc04da3",
                "e1f03f3c2c1cad1cd21e98ebd0d25f5a90631fb8227cdd0aa632d3f42837a9a9",
            ),
            (
                "1667cee27b525ff0261f580bf7e0cf2c3bdb01c17a4672b6bc5bb750058e1429",
                "8a12135920f32f485dd485392de71124df58a85cc6db1e3e47324393d2268843",
            ),
        ];
        let want: Vec<(String, String)> = want
            .iter()
            .map(|(d, i)| (d.to_string(), i.to_string()))
            .collect();
        assert_eq!(got, want);
    }
}
