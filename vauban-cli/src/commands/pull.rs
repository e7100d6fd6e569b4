//! `vauban pull REF [--tag NAME[:TAG]] [--platform OS/ARCH]`.

use std::sync::Arc;

use anyhow::{Context, Result};
use vauban_oci::reference::Reference;
use vauban_oci::registry::{self, Platform, Source};

use super::push::{runtime, RegistryArgs};
use crate::cli::Globals;

/// Arguments of `vauban pull`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// What to pull: [docker://]HOST[:PORT]/REPO[:TAG|@DIGEST], or through skopeo
    /// docker-archive:FILE, oci-archive:FILE, oci:DIR[:REF], containers-storage:REF.
    pub source: String,
    /// Local name, NAME[:TAG] [default: HOST[:PORT]/REPO:TAG].
    #[arg(long, value_name = "NAME[:TAG]")]
    pub tag: Option<String>,
    /// Platform chosen from an image index [default: this machine's, e.g. linux/amd64].
    #[arg(long, value_name = "OS/ARCH[/VARIANT]")]
    pub platform: Option<String>,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// Pulls the image, then prints its local name and manifest digest.
pub fn run(globals: &Globals, args: Args) -> Result<()> {
    let store = globals.open_store()?;
    let source = Source::parse(&args.source)?;
    let local = args.tag.as_deref().map(Reference::parse).transpose()?;
    let mut opts = args.registry.options()?;
    if let Some(p) = &args.platform {
        opts.platform = p.parse::<Platform>()?;
    }
    let (renderer, events) = globals.renderer(false);
    let report = runtime()?
        .block_on(registry::pull_any(
            &store,
            &source,
            local.as_ref(),
            &opts,
            Arc::new(events.registry_progress()),
        ))
        .with_context(|| format!("pulling {}", args.source))?;
    renderer.finish();
    renderer.note(&format!(
        "downloaded {} blob(s) ({} bytes), {} already in the store",
        report.downloaded.len(),
        report.bytes,
        report.cached.len()
    ));
    renderer.result(&format!("{} {}", report.reference, report.manifest_digest));
    Ok(())
}
