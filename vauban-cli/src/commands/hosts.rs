//! `vauban hosts [HOST] --server URL`: each host's last boot (which build,
//! when, complete or where it stalled) and whether it runs its master's
//! deployed build, then the MACs that asked and are nobody's; with a host,
//! its boots and each file it fetched, and the drifts it sent (`--json`
//! for the API's answer).

use anyhow::{Context, Result};

use super::remote::ServerArgs;
use crate::cli::Globals;

/// Arguments of `vauban hosts`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// One host's boots.
    pub host: Option<String>,

    /// Print the server's JSON.
    #[arg(long)]
    pub json: bool,

    #[command(flatten)]
    pub server: ServerArgs,
}

/// Shows the hosts.
pub fn run(_globals: &Globals, args: Args) -> Result<()> {
    let client = args.server.client()?;
    let reply = super::push::runtime()?
        .block_on(client.hosts(args.host.as_deref()))
        .context("the server's hosts")?;
    if args.json {
        out!("{}", serde_json::to_string_pretty(&reply)?);
        return Ok(());
    }
    let s = |v: &serde_json::Value, k: &str| v[k].as_str().unwrap_or("-").to_string();
    if args.host.is_some() {
        if let Some(current) = reply.get("current").filter(|c| !c.is_null()) {
            out!("{}", s(current, "summary"));
        }
        for b in reply["boots"].as_array().into_iter().flatten() {
            out!(
                "{} {} {} from {} ({}): {}",
                s(b, "started"),
                s(b, "master"),
                b["build_id"]
                    .as_str()
                    .map(|x| format!("build {x}"))
                    .unwrap_or_else(|| s(b, "artifact")),
                s(b, "ip"),
                s(b, "mac"),
                s(b, "state")
            );
            for f in b["fetches"].as_array().into_iter().flatten() {
                out!(
                    "    {} {} {} bytes{}",
                    s(f, "at"),
                    s(f, "file"),
                    f["bytes"],
                    if f["complete"].as_bool() == Some(true) {
                        ""
                    } else {
                        " (partial)"
                    }
                );
            }
        }
        for d in reply["drifts"].as_array().into_iter().flatten() {
            out!(
                "drift {} sent {} from {}: {} paths, {} bytes, {} (vauban diff --drift {} --drift-id {})",
                s(d, "id"),
                s(d, "received"),
                s(d, "ip"),
                d["paths"],
                d["bytes"],
                match d["signer"].as_str() {
                    Some(k) => format!("signed by {k}"),
                    None => "unsigned".into(),
                },
                s(d, "host"),
                s(d, "id")
            );
        }
        return Ok(());
    }
    for h in reply["hosts"].as_array().into_iter().flatten() {
        let mark = match h["runs_deployed"].as_bool() {
            Some(true) => "ok  ",
            Some(false) => "OLD ",
            None => "-   ",
        };
        out!("{mark}{}", s(h, "summary"));
    }
    for m in reply["unknown"].as_array().into_iter().flatten() {
        out!(
            "?   unknown MAC {} from {} (asked {}x, last {})",
            s(m, "mac"),
            s(m, "ip"),
            m["asked"],
            s(m, "last_seen")
        );
    }
    Ok(())
}
