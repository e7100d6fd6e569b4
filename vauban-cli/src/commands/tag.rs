//! `vauban tag SRC DST`: another name for an image.

use anyhow::Result;
use vauban_oci::Reference;

use crate::cli::Globals;

/// Arguments of `vauban tag`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The existing image, NAME[:TAG].
    pub source: String,
    /// The new name, NAME[:TAG].
    pub target: String,
}

/// Names the manifest of SRC also DST.
pub fn run(globals: &Globals, args: Args) -> Result<()> {
    let source = Reference::parse(&args.source)?;
    let target = Reference::parse(&args.target)?;
    let store = globals.open_store()?;
    let desc = store.resolve(&source)?;
    store.tag(&target, &desc)?;
    Ok(())
}
