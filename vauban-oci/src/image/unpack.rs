//! [`Image::unpack_into`]: every layer applied in order onto an empty (or new)
//! directory, whiteouts applied; what was written is removed on failure.

use std::path::Path;

use super::{digest_of, Image};
use crate::error::{Error, IoContext, Result};
use crate::layer::{
    apply_blob, ApplyOptions, ApplyReport, BlobInfo, LowerDirs, Owners, WhiteoutMode,
};
use crate::store::Store;

impl Image {
    /// Applies every layer onto `dir` (created if missing; it must be empty),
    /// with `owners`; the reports of the layers summed. On failure, what was
    /// written is removed (`dir` too when this made it). `progress` is told
    /// the compressed bytes read so far.
    pub fn unpack_into(
        &self,
        store: &Store,
        dir: &Path,
        owners: Owners,
        progress: &dyn Fn(u64),
    ) -> Result<ApplyReport> {
        let created = prepare_target(dir)?;
        let result = self.apply_layers(store, dir, owners, progress);
        if result.is_err() {
            clean_target(dir, created);
        }
        result
    }

    fn apply_layers(
        &self,
        store: &Store,
        dir: &Path,
        owners: Owners,
        progress: &dyn Fn(u64),
    ) -> Result<ApplyReport> {
        let opts = ApplyOptions {
            whiteouts: WhiteoutMode::Apply,
            owners,
            lowers: LowerDirs::none(),
        };
        let mut sum = ApplyReport::default();
        let mut before = 0;
        for (desc, diff_id) in self.layers_with_diff_ids()? {
            let digest = digest_of(&desc)?;
            let media_type = desc.media_type().to_string();
            let blob = store.open_blob(&digest)?;
            let info = BlobInfo {
                media_type: &media_type,
                digest: &digest,
                size: desc.size(),
                diff_id: &diff_id,
            };
            let reader = Progressing {
                inner: blob,
                done: before,
                progress,
            };
            let r = apply_blob(std::io::BufReader::new(reader), &info, dir, &opts)?;
            before += desc.size();
            sum.entries += r.entries;
            sum.whiteouts += r.whiteouts;
            sum.skipped_owners += r.skipped_owners;
            sum.skipped_devices += r.skipped_devices;
            sum.skipped_xattrs += r.skipped_xattrs;
        }
        Ok(sum)
    }
}

struct Progressing<'a, R> {
    inner: R,
    done: u64,
    progress: &'a dyn Fn(u64),
}

impl<R: std::io::Read> std::io::Read for Progressing<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.done += n as u64;
        (self.progress)(self.done);
        Ok(n)
    }
}

/// Creates `dir` or checks that it is an empty directory; says whether it was
/// created.
fn prepare_target(dir: &Path) -> Result<bool> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(Error::TargetNotEmpty { dir: dir.into() });
            }
            Ok(false)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir).at("create", dir)?;
            Ok(true)
        }
        Err(e) => Err(Error::io("read", dir, e)),
    }
}

/// Removes what a failed unpack wrote (the directory itself when we made it).
fn clean_target(dir: &Path, created: bool) {
    let result = if created {
        std::fs::remove_dir_all(dir)
    } else {
        std::fs::read_dir(dir).and_then(|entries| {
            for e in entries {
                let p = e?.path();
                if p.symlink_metadata()?.is_dir() {
                    std::fs::remove_dir_all(&p)?;
                } else {
                    std::fs::remove_file(&p)?;
                }
            }
            Ok(())
        })
    };
    if let Err(e) = result {
        tracing::warn!("could not clean {} after the failure: {e}", dir.display());
    }
}
