//! `vauban fsck`: re-verifies every blob and reference of the store, then walks
//! every cached layer dir against the record of its tree
//! ([`vauban_core::userns_store::fsck_layer_dirs`]), removing the tampered ones.

use anyhow::{bail, Result};
use vauban_core::sandbox::Helper;

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
    let layers = vauban_core::userns_store::fsck_layer_dirs(&store, &Helper::current_exe()?)?;
    for removed in &layers.removed {
        println!("{removed}");
    }
    let tampered = layers.tampered().count();
    match (report.is_ok(), tampered) {
        (true, 0) => {}
        (false, 0) => bail!(
            "store {} has {} problem(s)",
            store.root().display(),
            report.problems.len()
        ),
        (ok, n) => bail!(
            "store {} had {n} tampered layer dir(s), removed{}",
            store.root().display(),
            if ok {
                String::new()
            } else {
                format!("; and {} other problem(s)", report.problems.len())
            }
        ),
    }
    println!(
        "store {} is sound: {} blobs, {} images, {} layer dirs verified",
        store.root().display(),
        report.blobs,
        report.images,
        layers.checked - layers.removed.len()
    );
    Ok(())
}
