//! `vauban push NAME[:TAG] [docker://]HOST[:PORT]/REPO[:TAG] [--tag T]...`, and the
//! registry options shared by push, pull and login.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use vauban_oci::reference::Reference;
use vauban_oci::registry::{
    self, AuthEnv, AuthSource, Credentials, RegistryOptions, RemoteReference,
};

use crate::cli::Globals;

/// Registry options, named as in skopeo, podman and buildah.
#[derive(Debug, Clone, clap::Args)]
pub struct RegistryArgs {
    /// Verify TLS certificates; `--tls-verify=false` also allows plain HTTP.
    #[arg(long, value_name = "BOOL", default_value_t = true, num_args = 0..=1,
          require_equals = true, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub tls_verify: bool,
    /// Credentials USER:PASSWORD (else read from the auth files).
    #[arg(long, value_name = "USER:PASSWORD")]
    pub creds: Option<String>,
    /// Auth file to read (and, for login, write) instead of the default ones
    /// ($REGISTRY_AUTH_FILE, $XDG_RUNTIME_DIR/containers/auth.json, ~/.docker/config.json).
    #[arg(long, value_name = "PATH")]
    pub authfile: Option<PathBuf>,
}

impl RegistryArgs {
    /// The library options for these arguments.
    pub fn options(&self) -> Result<RegistryOptions> {
        let creds = self.creds.as_deref().map(Credentials::parse).transpose()?;
        Ok(RegistryOptions {
            tls_verify: self.tls_verify,
            auth: AuthSource {
                creds,
                authfile: self.authfile.clone(),
                env: AuthEnv::from_process(),
            },
            ..RegistryOptions::default()
        })
    }
}

/// The runtime of a registry command: the process's one (vauban-core's).
pub fn runtime() -> Result<&'static tokio::runtime::Runtime> {
    vauban_core::runtime().context("cannot start the async runtime")
}

/// Arguments of `vauban push`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The image of the store to push, NAME[:TAG].
    pub image: String,
    /// Destination: [docker://]HOST[:PORT]/REPOSITORY[:TAG].
    pub destination: String,
    /// Also push under this tag of the same repository (repeatable).
    #[arg(long = "tag", value_name = "TAG")]
    pub tags: Vec<String>,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// Pushes the image, then prints the manifest digest.
pub fn run(globals: &Globals, args: Args) -> Result<()> {
    let store = globals.open_store()?;
    let local = Reference::parse(&args.image)?;
    let dest = RemoteReference::parse(&args.destination)?;
    let opts = args.registry.options()?;
    let (renderer, events) = globals.renderer(false);
    let report = runtime()?
        .block_on(registry::push(
            &store,
            &local,
            &dest,
            &args.tags,
            &opts,
            Arc::new(events.registry_progress()),
        ))
        .with_context(|| format!("pushing {local} to {dest}"))?;
    renderer.finish();
    renderer.note(&format!(
        "pushed {} blob(s) ({} bytes), mounted {}, already there {}",
        report.uploaded.len(),
        report.bytes,
        report.mounted.len(),
        report.existing.len()
    ));
    for r in &report.pushed {
        renderer.note(&format!("  {r}"));
    }
    if let Some(d) = report.manifest_digest {
        renderer.result(&d.to_string());
    }
    Ok(())
}
