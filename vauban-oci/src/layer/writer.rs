//! Layer writing: the deterministic tar of [`crate::tar_writer`] (the layer
//! [`Dialect`]) streamed through the diff_id hash, the compressor and the
//! blob hash in one pass, mtimes clamped to `SOURCE_DATE_EPOCH`.

use std::io::{self, Read, Write};

use super::encoder::Encoder;
use super::{Compression, PackedLayer};
use crate::digest::HashingWriter;
use crate::tar_writer::{Dialect, Entry, TarWriter};

/// Writes a layer: tar -> diff_id hash -> compressor -> blob hash -> `out`.
pub(crate) struct LayerWriter<W: Write> {
    tar: TarWriter<HashingWriter<Encoder<HashingWriter<W>>>>,
    compression: Compression,
    /// No mtime is written later than this.
    epoch: Option<u64>,
}

impl<W: Write> LayerWriter<W> {
    /// A writer of a `compression` layer into `out`; mtimes are clamped to
    /// `epoch` (and to 0 from below).
    pub(crate) fn new(out: W, compression: Compression, epoch: Option<i64>) -> Self {
        let stream = HashingWriter::new(Encoder::new(HashingWriter::new(out), compression));
        LayerWriter {
            tar: TarWriter::new(stream, Dialect::Layer),
            compression,
            epoch: epoch.map(|e| e.max(0) as u64),
        }
    }

    /// Appends one entry; `data` must yield its size for a regular file.
    pub(crate) fn append(
        &mut self,
        mut entry: Entry,
        data: Option<&mut dyn Read>,
    ) -> io::Result<()> {
        if let Some(epoch) = self.epoch {
            entry.mtime = entry.mtime.min(epoch);
        }
        self.tar.append(&entry, data)
    }

    /// Writes the end-of-archive marker, finishes compression and returns the
    /// digests.
    pub(crate) fn finish(self) -> io::Result<(W, PackedLayer)> {
        let entries = self.tar.entries();
        let (encoder, diff_id, _) = self.tar.finish()?.finish();
        let (out, digest, size) = encoder.finish()?.finish();
        Ok((
            out,
            PackedLayer {
                digest,
                size,
                diff_id,
                media_type: self.compression.media_type().to_string(),
                entries,
            },
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tar_writer::Kind;
    use crate::Digest;

    #[test]
    fn long_names_and_xattrs_are_read_back() {
        let long: Vec<u8> = format!("{}/file", "d".repeat(150)).into_bytes();
        let mut w = LayerWriter::new(Vec::new(), Compression::None, Some(10));
        let meta = Entry {
            name: long.clone(),
            kind: Kind::File(3),
            mode: 0o4755,
            uid: 5_000_000,
            gid: 7,
            mtime: 99,
            xattrs: vec![(b"user.k".to_vec(), b"v\0\x01".to_vec())],
        };
        w.append(meta, Some(&mut &b"abc"[..])).unwrap();
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
    fn golden_entries() -> Vec<(Entry, Option<Vec<u8>>)> {
        let noise: Vec<u8> = (0u32..600_000)
            .map(|i| {
                (i.wrapping_mul(2_654_435_761) >> 13) as u8 & if i % 3 == 0 { 0xff } else { 0x0f }
            })
            .collect();
        let m = |name: &[u8], kind: Kind| Entry {
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
            w.append(meta, data.as_mut().map(|d| d as &mut dyn Read))
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
