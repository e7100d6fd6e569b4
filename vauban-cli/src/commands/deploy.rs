//! `vauban deploy MASTER`: moves what a master's hosts boot next.
//!
//! - On a boot server (`--server URL`, or `$VAUBAN_SERVER`): deploys the boot
//!   files of a build of its history (`--build ID`), or of a tag of its store
//!   (`--from TAG`, pulled from the server's registry when its store lacks
//!   it; `latest` by default), recorded with who and when; `vauban
//!   rollback` goes back, `vauban deployments` lists them.
//! - On a registry (`--registry HOST[:PORT]/NAMESPACE`): tags
//!   `NAMESPACE/NAME:TAG` (default `latest`) as `deployed`, as the original's
//!   `set_deployed`; run it again with an older date tag to roll back. A
//!   master of `never_upload` (in `--config`, when there is one) is refused
//!   without `--force`: the original never moved its `deployed`.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use vauban_core::build::publish::{self, Registry};
use vauban_core::config::Config;

use super::push::RegistryArgs;
use super::remote::ServerArgs;
use crate::cli::Globals;

/// Arguments of `vauban deploy`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The master (on a registry: the image name under the namespace,
    /// `master-web`, `master-web/web01`).
    pub name: String,

    /// The registry and namespace the build pushed to (moves its `deployed` tag).
    #[arg(long, value_name = "HOST[:PORT]/NAMESPACE", conflicts_with = "build")]
    pub registry: Option<String>,

    /// On a server: the build of its history whose boot files to deploy.
    #[arg(long, value_name = "ID", conflicts_with = "from")]
    pub build: Option<String>,

    /// The tag to deploy (`latest`, or a date tag such as `2026-12-01T1305`).
    #[arg(long, value_name = "TAG")]
    pub from: Option<String>,

    /// The config whose `never_upload` masters are refused [default: config.yml,
    /// when there is one].
    #[arg(long, value_name = "FILE", alias = "config-path")]
    pub config: Option<PathBuf>,

    /// Move `deployed` even for a master of `never_upload`.
    #[arg(long)]
    pub force: bool,

    #[command(flatten)]
    pub server: ServerArgs,

    #[command(flatten)]
    pub registry_args: RegistryArgs,
}

/// Deploys on the server, or moves the registry's `deployed` tag.
pub fn run(globals: &Globals, args: Args) -> Result<()> {
    match &args.registry {
        Some(registry) => on_registry(globals, &args, registry),
        None if args.server.server.is_some() => on_server(&args),
        None => bail!(
            "where? give --server URL (a `vauban serve`: what its hosts boot) or --registry \
             HOST[:PORT]/NAMESPACE (its `deployed` tag)"
        ),
    }
}

fn on_server(args: &Args) -> Result<()> {
    let client = args.server.client()?;
    let runtime = super::push::runtime()?;
    let d = runtime
        .block_on(client.deploy(&args.name, args.build.as_deref(), args.from.as_deref()))
        .with_context(|| format!("deploying {}", args.name))?;
    print_deployment(&d);
    Ok(())
}

/// Prints a deployment of the API, and its warnings.
pub fn print_deployment(d: &serde_json::Value) {
    out!("{}", deployment_line(d));
    for w in d["warnings"].as_array().into_iter().flatten() {
        eprintln!("warning: {}", w.as_str().unwrap_or_default());
    }
}

/// One line for a deployment of the API.
pub fn deployment_line(d: &serde_json::Value) -> String {
    let s = |k: &str| d[k].as_str().unwrap_or("-").to_string();
    format!(
        "#{} {} {} ({}) by {} at {}",
        d["id"],
        s("master"),
        d["build_id"]
            .as_str()
            .map(|b| format!("build {b}"))
            .unwrap_or_else(|| s("artifact")),
        s("source"),
        s("by"),
        s("at"),
    )
}

fn on_registry(globals: &Globals, args: &Args, registry: &str) -> Result<()> {
    let config = args.config.clone().or_else(|| {
        let default = PathBuf::from("config.yml");
        default.exists().then_some(default)
    });
    if let (Some(config), false) = (config, args.force) {
        Config::load(&config)?.check_deployable(&args.name)?;
    }
    let from = args.from.clone().unwrap_or_else(|| "latest".into());
    let registry = Registry::parse(registry, args.registry_args.options()?)?;
    let store = globals.open_store()?;
    let (renderer, events) = globals.renderer(false);
    let pushed = publish::deploy(
        &store,
        &registry,
        &args.name,
        &from,
        Arc::new(events.registry_progress()),
    )
    .with_context(|| format!("deploying {}:{from}", args.name))?;
    renderer.finish();
    for p in pushed {
        renderer.result(&p);
    }
    Ok(())
}
