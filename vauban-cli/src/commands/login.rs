//! `vauban login HOST -u USER --password-stdin`: checks the credentials against
//! the registry and stores them in the auth file (mode 0600).

use std::io::Read;

use anyhow::{bail, Context, Result};
use vauban_oci::registry::{self, Credentials, RetryPolicy};

use super::push::{runtime, RegistryArgs};
use crate::cli::Globals;

/// Arguments of `vauban login`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The registry, HOST[:PORT].
    pub registry: String,
    /// User name.
    #[arg(short = 'u', long)]
    pub username: String,
    /// Read the password from standard input (the only way: never on the command line).
    #[arg(long)]
    pub password_stdin: bool,
    #[command(flatten)]
    pub registry_args: RegistryArgs,
}

/// Logs in and prints the auth file written.
pub fn run(_globals: &Globals, args: Args) -> Result<()> {
    if !args.password_stdin {
        bail!("pass the password on standard input with --password-stdin");
    }
    if args.registry_args.creds.is_some() {
        bail!("--creds makes no sense with login: use -u USER --password-stdin");
    }
    let host = args
        .registry
        .strip_prefix("docker://")
        .unwrap_or(&args.registry);
    let host = host.trim_end_matches('/');
    let mut password = String::new();
    std::io::stdin()
        .read_to_string(&mut password)
        .context("reading the password from standard input")?;
    let password = password.trim_end_matches(['\n', '\r']).to_string();
    if password.is_empty() {
        bail!("empty password on standard input");
    }
    let creds = Credentials {
        username: args.username,
        password,
    };
    let opts = args.registry_args.options()?;
    let file = runtime()?
        .block_on(registry::login(
            host,
            &creds,
            opts.tls_verify,
            &opts.auth,
            RetryPolicy::default(),
        ))
        .with_context(|| format!("logging in to {host}"))?;
    eprintln!("Login succeeded; credentials stored in {}", file.display());
    Ok(())
}
