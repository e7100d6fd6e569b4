//! Applying a layer blob as downloaded: the digest and size of the whole blob
//! (trailing bytes included) and the diff_id of the uncompressed stream are
//! checked in the same pass as the application.

use std::io::{self, Read};
use std::path::Path;

use super::{apply, decompressor, ApplyOptions, ApplyReport};
use crate::digest::HashingReader;
use crate::error::{Error, Result};
use crate::Digest;

/// What a manifest and config say about a layer blob.
#[derive(Debug, Clone, Copy)]
pub struct BlobInfo<'a> {
    /// The descriptor's media type.
    pub media_type: &'a str,
    /// The descriptor's digest (of the compressed blob).
    pub digest: &'a Digest,
    /// The descriptor's size in bytes.
    pub size: u64,
    /// The config's `diff_ids` entry (digest of the uncompressed tar).
    pub diff_id: &'a Digest,
}

/// Applies the blob `blob` onto `target` and verifies it. On error the target
/// may hold a partial result: the caller removes it.
pub fn apply_blob(
    blob: impl Read,
    info: &BlobInfo<'_>,
    target: &Path,
    opts: &ApplyOptions,
) -> Result<ApplyReport> {
    // One byte more than announced is enough to know the size is wrong.
    let mut hashed = HashingReader::new(blob.take(info.size.saturating_add(1)));
    let applied = (|| {
        let mut plain = HashingReader::new(decompressor(info.media_type, &mut hashed)?);
        let report = apply(&mut plain, target, opts)?;
        Ok::<_, Error>((report, plain.finish().0))
    })();
    let drained = io::copy(&mut hashed, &mut io::sink());
    let (digest, size) = hashed.finish();
    let what = || format!("layer blob {}", info.digest);
    // A blob that is not the announced one explains any other failure.
    if size != info.size {
        return Err(Error::SizeMismatch {
            what: what(),
            expected: info.size,
            found: size,
        });
    }
    info.digest.verify(&digest, what())?;
    let (report, diff_id) = applied?;
    drained.map_err(|source| Error::Tar {
        what: what(),
        source,
    })?;
    info.diff_id
        .verify(&diff_id, format!("diff_id of layer blob {}", info.digest))?;
    Ok(report)
}
