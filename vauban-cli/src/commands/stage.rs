//! `vauban stage IMAGE --ansible DIR|URL --host H --commit NAME[:TAG] PLAYBOOK...`:
//! applies Ansible playbooks to an image, one layer per playbook.

use std::path::PathBuf;

use anyhow::{Context, Result};
use vauban_core::stage::{apply_stages, Stage, StageSpec};
use vauban_oci::Reference;

use super::ansible::AnsibleArgs;
use crate::cli::Globals;

/// Arguments of `vauban stage`.
#[derive(Debug, clap::Args)]
#[command(mut_arg("ansible", |a| a.required(true)))]
pub struct Args {
    /// The image to start from, NAME[:TAG].
    pub image: String,

    /// The playbooks, in order: `playbook.yml` or `branch@playbook.yml`.
    #[arg(required = true, value_name = "PLAYBOOK")]
    pub stages: Vec<String>,

    /// The host being built: `--limit`, `/etc/hostname`, its inventory variables.
    #[arg(long, value_name = "HOST")]
    pub host: String,

    /// The name of the resulting image; each stage's image is `NAME/<playbook>:TAG`.
    #[arg(long, value_name = "NAME[:TAG]")]
    pub commit: String,

    /// The Ansible root inside the repository (where ansible.cfg and the inventory are).
    #[arg(long, value_name = "SUBDIR", env = "ANSIBLE_ROOT_DIR")]
    pub ansible_root: Option<PathBuf>,

    /// An inventory of the repository, relative to the Ansible root (repeatable)
    /// [default: from ansible.cfg, else `inventory` or `hosts`].
    #[arg(long = "inventory", value_name = "PATH")]
    pub inventories: Vec<PathBuf>,

    /// Set the extra var `in_conffs_build` to true.
    #[arg(long)]
    pub conffs: bool,

    #[command(flatten)]
    pub ansible: AnsibleArgs,

    #[command(flatten)]
    pub network: super::network::NetworkArgs,
}

/// Applies the stages and prints the new image's name and digest.
pub fn run(globals: &Globals, args: Args) -> Result<()> {
    let image = Reference::parse(&args.image)?;
    let commit = Reference::parse(&args.commit)?;
    let stages = args
        .stages
        .iter()
        .map(|s| Stage::parse(s))
        .collect::<Result<Vec<_>, _>>()?;
    let source = args
        .ansible
        .source()?
        .context("give the Ansible repository: --ansible DIR|URL")?;
    let mut spec = StageSpec::new(source, commit.name());
    spec.tag = commit.tag().to_owned();
    spec.final_name = Some(commit.clone());
    spec.branch = args.ansible.branch.clone();
    spec.ansible_root = args.ansible_root.unwrap_or_default();
    spec.inventories = args.inventories;
    spec.extra_args = args.ansible.ansible_args.clone();
    spec.hooks = args.ansible.hooks();
    spec.in_conffs_build = args.conffs;

    let (renderer, events) = globals.renderer(args.ansible.quiet);
    let mut env = args.ansible.env(events)?;
    if let Some(network) = args.network.network()? {
        env.network = network;
    }

    let store = globals.open_store()?;
    // Ansible's own lines were streamed only with -v.
    let streamed = globals.ansible_lines(args.ansible.quiet);
    let base = store.image(&image)?;
    let built = apply_stages(&store, &base, &stages, &args.host, &spec, &env);
    renderer.finish();
    let built = built
        .map_err(|err| match err {
            // The error's message is printed on one line: show the output's last
            // lines here, as lines (unless they were just streamed).
            vauban_core::Error::AnsibleFailed(failure) => {
                if !streamed {
                    eprintln!("last lines of Ansible's output:");
                    for line in failure.tail.lines() {
                        eprintln!("  {}", vauban_core::printable::escape(line));
                    }
                }
                anyhow::anyhow!(failure.summary())
            }
            other => other.into(),
        })
        .with_context(|| {
            format!(
                "applying {} stage(s) to {image} for host {}",
                stages.len(),
                args.host
            )
        })?;
    renderer.result(&format!("{commit} {}", built.manifest_digest));
    Ok(())
}
