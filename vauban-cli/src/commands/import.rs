//! `vauban import PATH --tag NAME[:TAG]`: a rootfs tarball (plain, .gz, .xz,
//! .zst, sniffed) or a directory becomes a one-layer image
//! ([`vauban_oci::image::import`]).

use std::path::PathBuf;

use anyhow::{Context, Result};
use vauban_oci::image::{self, ImportOptions};
use vauban_oci::layer::Compression;
use vauban_oci::Reference;

use super::progress;
use crate::cli::Globals;

/// Arguments of `vauban import`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A rootfs tarball (plain, gzip, xz or zstd) or a directory.
    pub path: PathBuf,
    /// The name of the new image, NAME[:TAG].
    #[arg(long, short)]
    pub tag: String,
    /// Compression of the layer.
    #[arg(long, default_value = "gzip", value_parser = parse_compression)]
    pub compression: Compression,
}

fn parse_compression(s: &str) -> Result<Compression, String> {
    Compression::from_name(s).ok_or_else(|| format!("{s:?} is not one of gzip, zstd, none"))
}

/// Imports, names the image, prints its name and digest.
pub fn run(globals: &Globals, args: Args) -> Result<()> {
    let reference = Reference::parse(&args.tag)?;
    let meta = std::fs::metadata(&args.path)
        .with_context(|| format!("cannot import {}", args.path.display()))?;
    let store = globals.open_store()?;
    let bar = if meta.is_dir() {
        progress::bytes("packing", None)
    } else {
        progress::bytes("importing", Some(meta.len()))
    };
    let opts = ImportOptions {
        compression: args.compression,
    };
    let img = image::import(&store, &args.path, &opts, &|done| bar.set_position(done));
    bar.finish_and_clear();
    let img = img.with_context(|| format!("cannot import {}", args.path.display()))?;
    store.tag(&reference, &img.descriptor())?;
    let (renderer, _) = globals.renderer(false);
    renderer.result(&format!("{reference} {}", img.manifest_digest));
    Ok(())
}
