//! Applying a layer blob as downloaded: the digest and size of the whole blob
//! (trailing bytes included) and the diff_id of the uncompressed stream are
//! checked in the same pass as the application, decompression and hashing
//! running on a thread of their own.

use std::io::{self, Read};
use std::path::Path;

use super::{apply, decompressor, pipe, ApplyOptions, ApplyReport};
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
    // Two threads: this one reads, hashes and decompresses the blob; a second
    // one parses and applies the tar, so decompression overlaps the syscalls
    // of file creation. A bounded pipe between them keeps memory flat.
    let (pipe_in, pipe_out) = pipe::pipe();
    let (applied, plain) = std::thread::scope(|s| {
        let applier = std::thread::Builder::new()
            .name("layer-apply".into())
            .spawn_scoped(s, move || apply(pipe_out, target, opts))
            .map_err(|e| Error::io("start a thread to apply", target, e));
        let plain = (|| {
            let mut plain = HashingReader::new(decompressor(info.media_type, &mut hashed)?);
            // A read error reaches the applier through the pipe, which reports
            // it with the entry being read: the result here only says how far
            // the stream went.
            let complete = pipe_in.pump(&mut plain).unwrap_or(false);
            Ok::<_, Error>((plain.finish().0, complete))
        })();
        drop(pipe_in);
        let applied = match applier {
            Ok(h) => h
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
            Err(e) => Err(e),
        };
        (applied, plain)
    });
    let applied = plain.and_then(|(diff_id, complete)| {
        let report = applied?;
        if !complete {
            // Unreachable in practice: apply reads its input to the end.
            return Err(Error::Tar {
                what: format!("layer blob {}", info.digest),
                source: io::Error::other("layer applied before the end of its stream"),
            });
        }
        Ok((report, diff_id))
    });
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
