//! `vauban rm NAME[:TAG]|GLOB...`: removes names (a glob such as `web/*`
//! removes every name it matches); blobs go at the next gc.

use anyhow::{bail, Result};
use vauban_oci::Reference;

use crate::cli::Globals;

/// Arguments of `vauban rm`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The images to remove: NAME[:TAG], or a glob of names (`web/*`, `t?:1`).
    #[arg(required = true)]
    pub images: Vec<String>,
}

/// Removes each name; stops at the first unknown one (a glob matching
/// nothing is one).
pub fn run(globals: &Globals, args: Args) -> Result<()> {
    let store = globals.open_store()?;
    let mut references = Vec::new();
    for arg in &args.images {
        if arg.contains(['*', '?', '[']) {
            let found = store.names_matching(arg)?;
            if found.is_empty() {
                bail!("no image name matches {arg:?}");
            }
            references.extend(found);
        } else {
            references.push(Reference::parse(arg)?);
        }
    }
    let (renderer, _) = globals.renderer(false);
    for r in references {
        store.untag(&r)?;
        renderer.result(&format!("removed {r}"));
    }
    Ok(())
}
