//! `vauban gc`: removes unreferenced blobs and cached layer directories
//! ([`vauban_core::userns_store::gc`]).

use anyhow::Result;
use vauban_core::sandbox::Helper;

use super::images::human_size;
use crate::cli::Globals;

/// Arguments of `vauban gc`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only empty the store's temp space (what interrupted builds left);
    /// keep every blob and layer directory.
    #[arg(long)]
    pub temp_only: bool,
}

/// Collects garbage and says what went.
pub fn run(globals: &Globals, args: Args) -> Result<()> {
    let store = globals.open_store()?;
    if args.temp_only {
        let n = vauban_core::userns_store::clean_tmp(&store, &Helper::current_exe()?)?;
        let (renderer, _) = globals.renderer(false);
        renderer.result(&format!("removed {n} temporary entries"));
        return Ok(());
    }
    let report = vauban_core::userns_store::gc(&store, &Helper::current_exe()?)?;
    let (renderer, _) = globals.renderer(false);
    renderer.result(&format!(
        "removed {} blobs ({}), {} layer directories, {} temporary entries",
        report.blobs.len(),
        human_size(report.bytes),
        report.layer_dirs.len(),
        report.tmp_entries
    ));
    Ok(())
}
