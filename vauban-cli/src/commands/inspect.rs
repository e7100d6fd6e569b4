//! `vauban inspect NAME[:TAG]`: the image as JSON (manifest digest, config,
//! layers with sizes and diff_ids).

use anyhow::Result;
use vauban_oci::Reference;

use crate::cli::Globals;

/// Arguments of `vauban inspect`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The image, NAME[:TAG].
    pub image: String,
}

/// Prints the image as pretty JSON on stdout.
pub fn run(globals: &Globals, args: Args) -> Result<()> {
    let reference = Reference::parse(&args.image)?;
    let store = globals.open_store()?;
    let image = store.image(&reference)?;
    let diff_ids = image.config.rootfs().diff_ids();
    let layers: Vec<_> = image
        .layers()
        .iter()
        .enumerate()
        .map(|(i, l)| {
            serde_json::json!({
                "digest": l.digest().to_string(),
                "mediaType": l.media_type().to_string(),
                "size": l.size(),
                "diffId": diff_ids.get(i),
            })
        })
        .collect();
    let out = serde_json::json!({
        "name": reference.to_string(),
        "manifestDigest": image.manifest_digest.to_string(),
        "manifestSize": image.manifest_size,
        "size": image.size(),
        "created": image.config.created(),
        "os": image.config.os().to_string(),
        "architecture": image.config.architecture().to_string(),
        "layers": layers,
        "config": image.config,
    });
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}
