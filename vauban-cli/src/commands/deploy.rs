//! `vauban deploy NAME --registry HOST[:PORT]/NAMESPACE [--from TAG]`: tags
//! `NAMESPACE/NAME:TAG` (default `latest`) as `deployed` in the registry, as
//! the original's `set_deployed`; run it again with an older date tag to roll
//! back.

use std::sync::Arc;

use anyhow::{Context, Result};
use vauban_core::build::publish::{self, Registry};

use super::push::RegistryArgs;
use crate::cli::Globals;

/// Arguments of `vauban deploy`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The image name in the registry, under the namespace (`master-web`, `master-web/web01`).
    pub name: String,

    /// The registry and namespace the build pushed to.
    #[arg(long, value_name = "HOST[:PORT]/NAMESPACE")]
    pub registry: String,

    /// The tag to deploy (`latest`, or a date tag such as `2026-12-01T1305`).
    #[arg(long, value_name = "TAG", default_value = "latest")]
    pub from: String,

    #[command(flatten)]
    pub registry_args: RegistryArgs,
}

/// Moves the `deployed` tag.
pub fn run(globals: &Globals, args: Args) -> Result<()> {
    let registry = Registry::parse(&args.registry, args.registry_args.options()?)?;
    let store = globals.open_store()?;
    let (renderer, events) = globals.renderer(false);
    let pushed = publish::deploy(
        &store,
        &registry,
        &args.name,
        &args.from,
        Arc::new(events.registry_progress()),
    )
    .with_context(|| format!("deploying {}:{}", args.name, args.from))?;
    renderer.finish();
    for p in pushed {
        renderer.result(&p);
    }
    Ok(())
}
