//! `vauban unpack NAME[:TAG] DIR`: every layer applied, in order, onto DIR
//! (created if missing, must be empty), whiteouts applied. As non-root, owners
//! and device nodes are best effort and counted in a warning.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use vauban_oci::layer::{self, ApplyOptions, ApplyReport, BlobInfo, Owners, WhiteoutMode};
use vauban_oci::Reference;

use super::progress;
use crate::cli::Globals;

/// Arguments of `vauban unpack`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The image, NAME[:TAG].
    pub image: String,
    /// The directory to fill (created if missing; must be empty).
    pub dir: PathBuf,
}

/// Applies the image's layers onto DIR; removes what it wrote on failure.
pub fn run(globals: &Globals, args: Args) -> Result<()> {
    let reference = Reference::parse(&args.image)?;
    let store = globals.open_store()?;
    let image = store.image(&reference)?;
    let layers = image.layers_with_diff_ids()?;
    let created = prepare_target(&args.dir)?;

    let root = rustix::process::geteuid().is_root();
    let opts = ApplyOptions {
        whiteouts: WhiteoutMode::Apply,
        owners: if root {
            Owners::Preserve
        } else {
            Owners::BestEffort
        },
    };
    let total: u64 = layers.iter().map(|(d, _)| d.size()).sum();
    let bar = progress::bytes("unpacking", Some(total));
    let mut sum = ApplyReport::default();
    let result = (|| -> Result<()> {
        for (desc, diff_id) in &layers {
            let digest = vauban_oci::image::digest_of(desc)?;
            let media_type = desc.media_type().to_string();
            let blob = store.open_blob(&digest)?;
            let info = BlobInfo {
                media_type: &media_type,
                digest: &digest,
                size: desc.size(),
                diff_id,
            };
            let r = layer::apply_blob(bar.wrap_read(blob), &info, &args.dir, &opts)
                .with_context(|| format!("cannot apply layer {digest}"))?;
            sum.entries += r.entries;
            sum.skipped_owners += r.skipped_owners;
            sum.skipped_devices += r.skipped_devices;
            sum.skipped_xattrs += r.skipped_xattrs;
        }
        Ok(())
    })();
    bar.finish_and_clear();
    if let Err(e) = result {
        clean_target(&args.dir, created);
        return Err(e.context(format!(
            "cannot unpack {reference} into {}",
            args.dir.display()
        )));
    }
    if sum.skipped_owners + sum.skipped_devices + sum.skipped_xattrs > 0 {
        eprintln!(
            "warning: not everything could be set as non-root: {} owners, {} device nodes, {} xattrs skipped",
            sum.skipped_owners, sum.skipped_devices, sum.skipped_xattrs
        );
    }
    tracing::info!(entries = sum.entries, "unpacked");
    Ok(())
}

/// Creates DIR or checks that it is an empty directory; says whether it was created.
fn prepare_target(dir: &Path) -> Result<bool> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                bail!(
                    "{} is not empty: unpack needs an empty or new directory",
                    dir.display()
                );
            }
            Ok(false)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            Ok(true)
        }
        Err(e) => Err(e).with_context(|| format!("cannot use {} as a target", dir.display())),
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
