//! `vauban run IMAGE [--hostname H] [--commit NAME[:TAG]] [--env K=V]... -- CMD ARGS...`:
//! runs a command chrooted in a sandbox over an image (rootless when not root),
//! optionally commits what it changed as a new image. The command's exit status is
//! vauban's; a failed command commits nothing; SIGINT/SIGTERM kill the command's
//! whole process tree and leave nothing behind (exit 128 + signal). The
//! sandbox has a network of its own unless `--network host`.
//!
//! On a terminal, the command gets a pty of its own that vauban relays raw, on
//! purpose: an interactive program (a shell, an editor) needs its escape
//! sequences, so what the image prints reaches the terminal as it is, unlike
//! a build's output, which is escaped. Otherwise the command writes straight
//! to vauban's stdout and stderr (a file or a pipe), not through vauban.

use std::path::PathBuf;

use anyhow::Context;
use vauban_core::sandbox::{exit_code, CommitOptions, Network, Program, Sandbox, SandboxOptions};
use vauban_oci::Reference;

use crate::cli::Globals;

/// Arguments of `vauban run`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The image to run in (NAME[:TAG]).
    pub image: String,

    /// Host name seen by the command (`hostname`, /etc/hostname, /etc/hosts).
    #[arg(long, default_value = "vauban")]
    pub hostname: String,

    /// Store the changes as a new image of this name when the command succeeds.
    #[arg(long, value_name = "NAME[:TAG]")]
    pub commit: Option<String>,

    /// Set an environment variable for the command (repeatable).
    #[arg(short, long = "env", value_name = "K=V", value_parser = parse_env)]
    pub env: Vec<(String, String)>,

    /// Leave this path out of the committed layer, besides the defaults
    /// (tmp/*, var/tmp/*, run/*, root/.ansible); `dir/*` keeps the dir itself.
    #[arg(long, value_name = "PATH")]
    pub exclude: Vec<PathBuf>,

    #[command(flatten)]
    pub network: super::network::NetworkArgs,

    /// The command and its arguments.
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<String>,
}

fn parse_env(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("{s:?} is not of the form KEY=VALUE")),
    }
}

/// Runs `vauban run`; exits with the command's status when it is not 0.
pub fn run(globals: &Globals, args: Args) -> anyhow::Result<()> {
    match run_sandbox(globals, args)? {
        0 => Ok(()),
        code => std::process::exit(code),
    }
}

fn run_sandbox(globals: &Globals, args: Args) -> anyhow::Result<i32> {
    let store = globals.open_store()?;
    let reference = Reference::parse(&args.image)?;
    let name = args.commit.as_deref().map(Reference::parse).transpose()?;
    let image = store.image(&reference)?;
    let opts = SandboxOptions {
        hostname: args.hostname,
        env: args.env,
        helper: None,
        events: globals.renderer(false).1,
        network: args.network.network()?.unwrap_or_else(Network::isolated),
    };
    let sandbox = Sandbox::prepare(&store, &image, opts)
        .with_context(|| format!("preparing a sandbox over {reference}"))?;
    let status = sandbox.run(&Program::Image(args.command.clone()))?;
    let code = exit_code(status);
    if code != 0 {
        if name.is_some() {
            eprintln!("vauban: command failed ({status}); nothing committed");
        }
        return Ok(code);
    }
    if let Some(name) = name {
        let mut opts = CommitOptions::new(vauban_core::history::run(&args.command));
        opts.exclude.extend(args.exclude);
        let new = sandbox
            .commit(&opts)
            .with_context(|| format!("committing {name}"))?;
        store.tag(&name, &new.descriptor())?;
        println!("{name} {}", new.manifest_digest);
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_pairs() {
        assert_eq!(parse_env("A=b=c").unwrap(), ("A".into(), "b=c".into()));
        assert!(parse_env("=x").is_err());
        assert!(parse_env("nope").is_err());
    }
}
