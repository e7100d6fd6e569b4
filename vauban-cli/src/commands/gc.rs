//! `vauban gc`: removes unreferenced blobs and cached layer directories.

use anyhow::Result;

use super::images::human_size;
use crate::cli::Globals;

/// Arguments of `vauban gc`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Collects garbage and says what went.
pub fn run(globals: &Globals, _args: Args) -> Result<()> {
    let store = globals.open_store()?;
    // Rootless layer dirs belong to subordinate ids: remove them from inside
    // the user namespace.
    let helper = vauban_core::sandbox::Helper::current_exe()?;
    let report = store.gc_with(&|p| vauban_core::sandbox::remove_dir_all(p, &helper))?;
    println!(
        "removed {} blobs ({}), {} layer directories, {} temporary entries",
        report.blobs.len(),
        human_size(report.bytes),
        report.layer_dirs.len(),
        report.tmp_entries
    );
    Ok(())
}
