//! `vauban rm NAME[:TAG]...`: removes names; blobs go at the next gc.

use anyhow::Result;
use vauban_oci::Reference;

use crate::cli::Globals;

/// Arguments of `vauban rm`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The images to remove, NAME[:TAG].
    #[arg(required = true)]
    pub images: Vec<String>,
}

/// Removes each name; stops at the first unknown one.
pub fn run(globals: &Globals, args: Args) -> Result<()> {
    let references = args
        .images
        .iter()
        .map(|s| Reference::parse(s))
        .collect::<Result<Vec<_>, _>>()?;
    let store = globals.open_store()?;
    for r in references {
        store.untag(&r)?;
        println!("removed {r}");
    }
    Ok(())
}
