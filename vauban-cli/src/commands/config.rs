//! `vauban config schema` prints the JSON Schema of `config.yml` (for editors);
//! `vauban config check [--config FILE] [--ansible DIR] [--strict]` loads a
//! config, shows what it ignores (warnings on stderr; errors with `--strict`),
//! checks its playbooks exist, and lists its releases and masters.

use std::path::PathBuf;

use anyhow::{bail, Result};
use vauban_core::build::describe;
use vauban_core::config::Config;
use vauban_core::stage::AnsibleSource;

use crate::cli::Globals;

/// Arguments of `vauban config`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// What to do.
    #[command(subcommand)]
    pub action: Action,
}

/// `vauban config` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Action {
    /// Print the JSON Schema of config.yml.
    Schema,
    /// Check a config file (and, given the Ansible directory, its playbooks).
    Check {
        /// The config file (`--config-path`, the original's spelling, works too).
        #[arg(
            long,
            value_name = "FILE",
            default_value = "config.yml",
            alias = "config-path"
        )]
        config: PathBuf,
        /// The Ansible directory [default: `ansible:` of the config, when a directory].
        #[arg(long, value_name = "DIR")]
        ansible: Option<PathBuf>,
        /// Fail on warnings: keys vauban does not know (the original ignored them),
        /// masters with nothing to build.
        #[arg(long)]
        strict: bool,
    },
}

/// Runs the subcommand.
pub fn run(_globals: &Globals, args: Args) -> Result<()> {
    match args.action {
        Action::Schema => {
            println!(
                "{}",
                serde_json::to_string_pretty(&vauban_core::config::json_schema())?
            );
        }
        Action::Check {
            config,
            ansible,
            strict,
        } => {
            let config = Config::load(&config)?;
            for warning in &config.warnings {
                eprintln!(
                    "warning: {}",
                    vauban_core::printable::escape(&warning.to_string())
                );
            }
            if strict {
                config.strict()?;
            }
            let dir =
                ansible.or_else(
                    || match config.configuration.ansible.as_ref()?.value.clone() {
                        AnsibleSource::Dir(d) => Some(d),
                        _ => None,
                    },
                );
            match &dir {
                Some(d) if is_git_url(&d.to_string_lossy()) => bail!(
                    "--ansible {}: `config check` reads a directory as it is on disk; a git \
                     source's playbooks are checked by `vauban build --check` in its checkout",
                    d.display()
                ),
                Some(d) if !d.is_dir() => {
                    bail!("the Ansible directory {}: no such directory", d.display())
                }
                _ => {}
            }
            if let Some(dir) = dir {
                let root = match &config.configuration.ansible_root {
                    Some(r) => dir.join(&r.value),
                    None => dir,
                };
                config.check_playbooks(&root)?;
            }
            for m in config.masters() {
                let depth = config.chain(m).len() - 1;
                let release = config
                    .release_of(m)
                    .filter(|_| m.is_release())
                    .map(|r| format!("  (release: {})", describe(r)))
                    .unwrap_or_default();
                println!(
                    "{}{}{release}{}",
                    "  ".repeat(depth),
                    m.name,
                    m.conffs
                        .as_ref()
                        .map(|c| format!("  (conffs {})", c.value))
                        .unwrap_or_default()
                );
            }
        }
    }
    Ok(())
}

/// `https://…`, `file://…`, `ssh://…` or `git@host:path`: a git source, not a
/// directory.
fn is_git_url(text: &str) -> bool {
    text.contains("://") || text.starts_with("git@")
}
