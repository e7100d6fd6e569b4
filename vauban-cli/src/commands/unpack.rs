//! `vauban unpack NAME[:TAG] DIR [--userns]`: every layer applied, in order,
//! onto DIR (created if missing, must be empty), whiteouts applied. As non-root,
//! owners cannot be set: that is said once, with the ways to keep them (as
//! root, or `--userns`: inside the user namespace, owners mapped to the
//! subordinate ids).

use std::path::PathBuf;

use anyhow::{Context, Result};
use vauban_core::sandbox::Helper;
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
    /// Unpack inside the user namespace: the image's owners are kept, as the
    /// subordinate ids of this user (remove the tree the same way).
    #[arg(long)]
    pub userns: bool,
}

/// Applies the image's layers onto DIR; removes what it wrote on failure.
pub fn run(globals: &Globals, args: Args) -> Result<()> {
    let reference = Reference::parse(&args.image)?;
    let store = globals.open_store()?;
    let image = store.image(&reference)?;
    let context = || format!("cannot unpack {reference} into {}", args.dir.display());
    if args.userns {
        let report = vauban_core::userns_store::unpack_in_namespace(
            &store,
            &image,
            &args.dir,
            &Helper::current_exe()?,
        )
        .with_context(context)?;
        tracing::info!(entries = report.entries, "unpacked");
        return Ok(());
    }
    let owners = vauban_core::userns_store::unpack_owners();
    let bar = progress::bytes("unpacking", Some(image.size()));
    let report = image.unpack_into(&store, &args.dir, owners, &|done| bar.set_position(done));
    bar.finish_and_clear();
    let report = report.with_context(context)?;
    if report.skipped_owners + report.skipped_devices + report.skipped_xattrs > 0 {
        eprintln!(
            "warning: not everything could be set as non-root: {} owners, {} device nodes, \
             {} xattrs skipped; unpack as root, or with --userns to keep the owners \
             (as this user's subordinate ids)",
            report.skipped_owners, report.skipped_devices, report.skipped_xattrs
        );
    }
    tracing::info!(
        entries = report.entries,
        skipped_devices = report.skipped_devices,
        skipped_xattrs = report.skipped_xattrs,
        "unpacked"
    );
    Ok(())
}
