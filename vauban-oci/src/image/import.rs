//! [`import`]: a rootfs tarball (plain, gzip, xz, zstd: sniffed) or a
//! directory becomes a one-layer image with a proper OCI config (os,
//! architecture, diff_ids, history, created), `SOURCE_DATE_EPOCH` honoured.

use std::fs::File;
use std::io::{BufReader, Read, Write};
use std::path::Path;

use super::{build, created_now, source_date_epoch, HistoryEntry, Image};
use crate::error::{IoContext, Result};
use crate::layer::{self, Compression, LayerSource, PackOptions};
use crate::store::Store;

/// How to import.
#[derive(Debug, Clone, Copy, Default)]
pub struct ImportOptions {
    /// Compression of the layer.
    pub compression: Compression,
}

/// Packs `path` (a tarball or a directory) into a layer of `store` and writes a
/// one-layer image (unnamed: see [`Store::tag`]). `progress` is told the bytes
/// read from a tarball, or written into the layer from a directory, so far.
pub fn import(
    store: &Store,
    path: &Path,
    opts: &ImportOptions,
    progress: &dyn Fn(u64),
) -> Result<Image> {
    let meta = std::fs::metadata(path).at("import", path)?;
    let pack = PackOptions {
        compression: opts.compression,
        source_date_epoch: source_date_epoch(),
        exclude: Vec::new(),
    };
    let mut blob = store.blob_writer()?;
    let packed = if meta.is_dir() {
        let mut out = Counting::new(&mut blob, progress);
        layer::pack(LayerSource::Tree(path), &pack, &mut out)?
    } else {
        let file = File::open(path).at("open", path)?;
        let input = layer::sniff_decompressor(BufReader::new(Counting::new(file, progress)))
            .at("read", path)?;
        layer::repack_tar(input, &pack, &mut blob)?
    };
    blob.flush().at("write", store.tmp_dir())?;
    blob.commit(Some(&packed.digest))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string());
    let history = HistoryEntry {
        created_by: format!("vauban import {name}"),
        created: created_now(),
        comment: None,
    };
    tracing::info!(entries = packed.entries, size = packed.size, "layer packed");
    build(store, None, std::slice::from_ref(&packed), &history)
}

/// A reader or writer that reports how many bytes went through.
struct Counting<'a, T> {
    inner: T,
    done: u64,
    progress: &'a dyn Fn(u64),
}

impl<'a, T> Counting<'a, T> {
    fn new(inner: T, progress: &'a dyn Fn(u64)) -> Self {
        Counting {
            inner,
            done: 0,
            progress,
        }
    }
}

impl<T: Read> Read for Counting<'_, T> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.done += n as u64;
        (self.progress)(self.done);
        Ok(n)
    }
}

impl<T: Write> Write for Counting<'_, T> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.done += n as u64;
        (self.progress)(self.done);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}
