//! `vauban fsck`: re-verifies every blob and reference of the store.

use anyhow::{bail, Result};

use crate::cli::Globals;

/// Arguments of `vauban fsck`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Prints every problem found; fails when there is one.
pub fn run(globals: &Globals, _args: Args) -> Result<()> {
    let store = globals.open_store()?;
    let report = store.fsck()?;
    for w in &report.warnings {
        eprintln!("warning: {w}");
    }
    for p in &report.problems {
        println!("{p}");
    }
    if !report.is_ok() {
        bail!(
            "store {} has {} problem(s)",
            store.root().display(),
            report.problems.len()
        );
    }
    println!(
        "store {} is sound: {} blobs, {} images verified",
        store.root().display(),
        report.blobs,
        report.images
    );
    Ok(())
}
