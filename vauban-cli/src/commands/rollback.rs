//! `vauban rollback MASTER --server URL`: the master's hosts boot next what
//! its deployment before the current one named (each rollback goes one
//! further back).

use anyhow::{Context, Result};

use super::remote::ServerArgs;
use crate::cli::Globals;

/// Arguments of `vauban rollback`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The master.
    pub name: String,

    #[command(flatten)]
    pub server: ServerArgs,
}

/// Rolls back on the server.
pub fn run(_globals: &Globals, args: Args) -> Result<()> {
    let client = args.server.client()?;
    let d = super::push::runtime()?
        .block_on(client.rollback(&args.name))
        .with_context(|| format!("rolling {} back", args.name))?;
    super::deploy::print_deployment(&d);
    Ok(())
}
