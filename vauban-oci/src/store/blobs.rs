//! Content-addressed blobs: written through a [`BlobWriter`] (temp file in
//! `STORE/tmp`, hashed while written, fsynced, verified, renamed to its digest),
//! read back whole with a size cap or streamed.

use std::fs::{self, File};
use std::io::{BufWriter, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use serde::de::DeserializeOwned;

use super::layout::sync_parent;
use super::Store;
use crate::digest::{Digest, HashingWriter};
use crate::error::{Error, IoContext, Result};

/// Writes one blob into the store. Nothing appears under `blobs/` until
/// [`BlobWriter::commit`] succeeds; dropped before that, it leaves nothing behind.
pub struct BlobWriter {
    out: HashingWriter<BufWriter<tempfile::NamedTempFile>>,
    blobs_dir: PathBuf,
}

impl std::fmt::Debug for BlobWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobWriter")
            .field("bytes", &self.out.bytes())
            .finish()
    }
}

impl BlobWriter {
    /// Bytes written so far.
    pub fn bytes(&self) -> u64 {
        self.out.bytes()
    }

    /// Finishes the blob: flushes and fsyncs it, checks it against `expected`
    /// (when given), renames it to `blobs/sha256/<hex>` and fsyncs the
    /// directory. Returns its digest and size. On any error the temp file is
    /// removed and `blobs/` is unchanged.
    pub fn commit(self, expected: Option<&Digest>) -> Result<(Digest, u64)> {
        let what = expected.map(|e| format!("blob {e}"));
        self.commit_as(expected, what.as_deref().unwrap_or("blob"))
    }

    /// [`BlobWriter::commit`], naming the blob `what` in a digest mismatch.
    pub fn commit_as(self, expected: Option<&Digest>, what: &str) -> Result<(Digest, u64)> {
        let (buf, digest, size) = self.out.finish();
        let tmp = buf
            .into_inner()
            .map_err(|e| Error::io("write", PathBuf::from("blob temp file"), e.into_error()))?;
        if let Some(expected) = expected {
            expected.verify(&digest, what)?;
        }
        let file = tmp.as_file();
        file.set_permissions(fs::Permissions::from_mode(0o644))
            .at("chmod", tmp.path().to_path_buf())?;
        file.sync_all().at("fsync", tmp.path().to_path_buf())?;
        let target = self.blobs_dir.join(digest.hex());
        if target.exists() {
            // Same content already stored; the temp file goes on drop.
            tracing::trace!(%digest, "blob already present");
            return Ok((digest, size));
        }
        tmp.persist(&target)
            .map_err(|e| Error::io("rename into place", &target, e.error))?;
        sync_parent(&target)?;
        tracing::debug!(%digest, size, "blob stored");
        Ok((digest, size))
    }
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.out.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

impl Store {
    /// Starts a new blob: a temp file in `STORE/tmp` hashed while written.
    pub fn blob_writer(&self) -> Result<BlobWriter> {
        let tmp_dir = self.tmp_dir();
        let tmp = tempfile::Builder::new()
            .prefix(".blob-")
            .tempfile_in(&tmp_dir)
            .at("create a temporary file in", &tmp_dir)?;
        Ok(BlobWriter {
            out: HashingWriter::new(BufWriter::with_capacity(256 << 10, tmp)),
            blobs_dir: self.blobs_dir(),
        })
    }

    /// Stores `bytes` as a blob and returns its digest and size.
    pub fn write_blob(&self, bytes: &[u8]) -> Result<(Digest, u64)> {
        let mut w = self.blob_writer()?;
        w.write_all(bytes).at("write", self.tmp_dir())?;
        w.commit(None)
    }

    /// Serialises `value` as JSON and stores it as a blob; returns the digest,
    /// the size and the bytes.
    pub fn write_json_blob<T: serde::Serialize>(&self, value: &T) -> Result<(Digest, u64)> {
        let bytes = serde_json::to_vec(value).map_err(|e| Error::Json {
            what: "a new blob".into(),
            source: e,
        })?;
        self.write_blob(&bytes)
    }

    /// Stores the file at `path` as a blob without copying it when it can:
    /// hashed, then hard-linked into `blobs/` when it is on the store's file
    /// system and already a blob's mode (0644), copied otherwise (and
    /// checked against the hash). The file must never change afterwards: it
    /// *is* the blob (`vauban fsck` would say so). Returns digest and size.
    pub fn link_blob(&self, path: &std::path::Path) -> Result<(Digest, u64)> {
        let mut file = File::open(path).at("open", path)?;
        let mode = file.metadata().at("stat", path)?.permissions().mode() & 0o7777;
        let mut hashing = HashingWriter::new(std::io::sink());
        std::io::copy(&mut file, &mut hashing).at("read", path)?;
        let (_, digest, size) = hashing.finish();
        let target = self.blob_path(&digest);
        if target.exists() {
            return Ok((digest, size));
        }
        if mode == 0o644 {
            let staged =
                self.tmp_dir()
                    .join(format!(".link-{}-{}", std::process::id(), digest.hex()));
            let _ = fs::remove_file(&staged);
            if fs::hard_link(path, &staged).is_ok() {
                fs::rename(&staged, &target).map_err(|e| {
                    let _ = fs::remove_file(&staged);
                    Error::io("rename into place", &target, e)
                })?;
                sync_parent(&target)?;
                tracing::debug!(%digest, size, path = %path.display(), "blob linked");
                return Ok((digest, size));
            }
        }
        let mut file = File::open(path).at("open", path)?;
        let mut blob = self.blob_writer()?;
        std::io::copy(&mut file, &mut blob).at("read", path)?;
        blob.commit_as(Some(&digest), &path.display().to_string())
    }

    /// Whether the blob is present.
    pub fn has_blob(&self, digest: &Digest) -> bool {
        self.blob_path(digest).is_file()
    }

    /// Opens a blob for streaming (the caller verifies what it reads).
    pub fn open_blob(&self, digest: &Digest) -> Result<File> {
        let path = self.blob_path(digest);
        File::open(&path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::BlobNotFound(digest.clone())
            } else {
                Error::io("open", path, e)
            }
        })
    }

    /// Reads a whole blob of at most `limit` bytes and checks its digest.
    pub fn read_blob(&self, digest: &Digest, limit: u64) -> Result<Vec<u8>> {
        let path = self.blob_path(digest);
        let file = self.open_blob(digest)?;
        let size = file.metadata().at("stat", &path)?.len();
        if size > limit {
            return Err(Error::TooLarge {
                what: format!("blob {digest}"),
                size,
                limit,
            });
        }
        let mut bytes = Vec::with_capacity(size as usize);
        file.take(limit + 1)
            .read_to_end(&mut bytes)
            .at("read", &path)?;
        digest.verify(&Digest::of_bytes(&bytes), format_args!("blob {digest}"))?;
        Ok(bytes)
    }

    /// Reads, verifies and parses a JSON blob of at most `limit` bytes.
    pub fn read_json_blob<T: DeserializeOwned>(&self, digest: &Digest, limit: u64) -> Result<T> {
        let bytes = self.read_blob(digest, limit)?;
        serde_json::from_slice(&bytes).map_err(|e| Error::Json {
            what: format!("blob {digest}"),
            source: e,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use super::*;

    #[test]
    fn a_published_file_is_linked_in_and_a_private_one_copied() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("store")).unwrap();
        let public = dir.path().join("rootfs.img");
        fs::write(&public, b"squashfs").unwrap();
        fs::set_permissions(&public, fs::Permissions::from_mode(0o644)).unwrap();
        let (digest, size) = store.link_blob(&public).unwrap();
        assert_eq!((digest.clone(), size), (Digest::of_bytes(b"squashfs"), 8));
        let blob = store.blob_path(&digest);
        assert_eq!(
            fs::metadata(&blob).unwrap().ino(),
            fs::metadata(&public).unwrap().ino()
        );
        // Again: already there, nothing else happens.
        assert_eq!(store.link_blob(&public).unwrap().0, digest);

        // A 0600 file (a conffs) is copied: the blob must not share its mode.
        let private = dir.path().join("conffs-web01.tgz");
        fs::write(&private, b"keys").unwrap();
        fs::set_permissions(&private, fs::Permissions::from_mode(0o600)).unwrap();
        let (digest, _) = store.link_blob(&private).unwrap();
        let blob = fs::metadata(store.blob_path(&digest)).unwrap();
        assert_ne!(blob.ino(), fs::metadata(&private).unwrap().ino());
        assert_eq!(blob.mode() & 0o777, 0o644);
        assert_eq!(store.read_blob(&digest, 100).unwrap(), b"keys");
        let leftovers = fs::read_dir(store.tmp_dir()).unwrap().count();
        assert_eq!(leftovers, 0, "nothing left in the store's temp dir");
    }
}
