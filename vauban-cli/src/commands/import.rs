//! `vauban import PATH --tag NAME[:TAG]`: a rootfs tarball (plain, .gz, .xz,
//! .zst, sniffed) or a directory becomes a one-layer image with a proper OCI
//! config (os, architecture, diff_ids, history, created). Honours
//! `SOURCE_DATE_EPOCH` (mtimes clamped, `created` set to it).

use std::fs::File;
use std::io::{BufReader, Write};
use std::path::PathBuf;

use anyhow::{Context, Result};
use vauban_oci::image::{self, HistoryEntry, NewLayer};
use vauban_oci::layer::{self, Compression, LayerSource, PackOptions};
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

/// Packs the layer into the store, writes config and manifest, names the image.
pub fn run(globals: &Globals, args: Args) -> Result<()> {
    let reference = Reference::parse(&args.tag)?;
    let meta = std::fs::metadata(&args.path)
        .with_context(|| format!("cannot import {}", args.path.display()))?;
    let store = globals.open_store()?;
    let opts = PackOptions {
        compression: args.compression,
        source_date_epoch: image::source_date_epoch(),
        exclude: Vec::new(),
    };
    let mut blob = store.blob_writer()?;
    let packed = if meta.is_dir() {
        let bar = progress::bytes("packing", None);
        let packed = layer::pack(
            LayerSource::Tree(&args.path),
            &opts,
            bar.wrap_write(&mut blob),
        );
        bar.finish_and_clear();
        packed
    } else {
        let file = File::open(&args.path)
            .with_context(|| format!("cannot import {}", args.path.display()))?;
        let bar = progress::bytes("importing", Some(meta.len()));
        let input = layer::sniff_decompressor(BufReader::new(bar.wrap_read(file)))
            .with_context(|| format!("cannot read {}", args.path.display()))?;
        let packed = layer::repack_tar(input, &opts, &mut blob);
        bar.finish_and_clear();
        packed
    }
    .with_context(|| format!("cannot import {}", args.path.display()))?;
    blob.flush()
        .with_context(|| format!("cannot write to {}", store.tmp_dir().display()))?;
    blob.commit(Some(&packed.digest))?;

    let name = args
        .path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| args.path.display().to_string());
    let history = HistoryEntry {
        created_by: format!("vauban import {name}"),
        created: image::created_now(),
        comment: None,
    };
    let img = image::commit(
        &store,
        None,
        &[NewLayer::from(&packed)],
        &history,
        &reference,
    )?;
    tracing::info!(entries = packed.entries, size = packed.size, "layer packed");
    println!("{reference} {}", img.manifest_digest);
    Ok(())
}
