//! `vauban config schema` prints the JSON Schema of `config.yml` (for editors);
//! `vauban config check [--config FILE] [--ansible DIR]` loads a config, checks
//! its playbooks exist, and lists its masters.

use std::path::PathBuf;

use anyhow::Result;
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
        /// The config file.
        #[arg(long, value_name = "FILE", default_value = "config.yml")]
        config: PathBuf,
        /// The Ansible directory [default: `ansible:` of the config, when a directory].
        #[arg(long, value_name = "DIR")]
        ansible: Option<PathBuf>,
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
        Action::Check { config, ansible } => {
            let config = Config::load(&config)?;
            let dir =
                ansible.or_else(
                    || match config.configuration.ansible.as_ref()?.value.clone() {
                        AnsibleSource::Dir(d) => Some(d),
                        _ => None,
                    },
                );
            if let Some(dir) = dir {
                let root = match &config.configuration.ansible_root {
                    Some(r) => dir.join(&r.value),
                    None => dir,
                };
                config.check_playbooks(&root)?;
            }
            for m in config.masters() {
                let depth = config.chain(m).len() - 1;
                println!(
                    "{}{}{}",
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
