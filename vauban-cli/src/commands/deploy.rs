//! `vauban deploy NAME --registry HOST[:PORT]/NAMESPACE [--from TAG]`: tags
//! `NAMESPACE/NAME:TAG` (default `latest`) as `deployed` in the registry, as
//! the original's `set_deployed`; run it again with an older date tag to roll
//! back. A master of `never_upload` (in `--config`, when there is one) is
//! refused without `--force`: the original never moved its `deployed`.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use vauban_core::build::publish::{self, Registry};
use vauban_core::config::Config;

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

    /// The config whose `never_upload` masters are refused [default: config.yml,
    /// when there is one].
    #[arg(long, value_name = "FILE", alias = "config-path")]
    pub config: Option<PathBuf>,

    /// Move `deployed` even for a master of `never_upload`.
    #[arg(long)]
    pub force: bool,

    #[command(flatten)]
    pub registry_args: RegistryArgs,
}

/// Moves the `deployed` tag.
pub fn run(globals: &Globals, args: Args) -> Result<()> {
    let config = args.config.clone().or_else(|| {
        let default = PathBuf::from("config.yml");
        default.exists().then_some(default)
    });
    if let (Some(config), false) = (config, args.force) {
        Config::load(&config)?.check_deployable(&args.name)?;
    }
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
