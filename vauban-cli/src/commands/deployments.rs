//! `vauban deployments MASTER --server URL`: the master's deployments, the
//! current one first (`--json` for the API's answer).

use anyhow::{Context, Result};

use super::remote::ServerArgs;
use crate::cli::Globals;

/// Arguments of `vauban deployments`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The master.
    pub name: String,

    /// Print the server's JSON.
    #[arg(long)]
    pub json: bool,

    #[command(flatten)]
    pub server: ServerArgs,
}

/// Lists the deployments.
pub fn run(_globals: &Globals, args: Args) -> Result<()> {
    let client = args.server.client()?;
    let reply = super::push::runtime()?
        .block_on(client.deployments(&args.name))
        .with_context(|| format!("the deployments of {}", args.name))?;
    if args.json {
        out!("{}", serde_json::to_string_pretty(&reply)?);
        return Ok(());
    }
    let list = reply["deployments"].as_array().cloned().unwrap_or_default();
    if list.is_empty() {
        out!("{} was never deployed", args.name);
    }
    for (i, d) in list.iter().enumerate() {
        let mark = if i == 0 { "* " } else { "  " };
        out!("{mark}{}", super::deploy::deployment_line(d));
    }
    Ok(())
}
