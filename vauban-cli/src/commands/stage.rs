//! `vauban stage IMAGE --ansible DIR|URL --host H --commit NAME[:TAG] PLAYBOOK...`:
//! applies Ansible playbooks to an image, one layer per playbook.

use std::path::PathBuf;

use anyhow::{Context, Result};
use vauban_core::sandbox::Helper;
use vauban_core::stage::{apply_stages, AnsibleSource, Hooks, Stage, StageSpec};
use vauban_core::Env;
use vauban_oci::Reference;

use crate::cli::Globals;

/// Arguments of `vauban stage`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The image to start from, NAME[:TAG].
    pub image: String,

    /// The playbooks, in order: `playbook.yml` or `branch@playbook.yml`.
    #[arg(required = true, value_name = "PLAYBOOK")]
    pub stages: Vec<String>,

    /// The Ansible repository: a directory used as it is, or a git URL (cloned into
    /// the cache and fetched before every build).
    #[arg(long, value_name = "DIR|URL", env = "VAUBAN_ANSIBLE")]
    pub ansible: String,

    /// The branch of the git repository [default: the remote's default branch].
    #[arg(long, value_name = "BRANCH")]
    pub branch: Option<String>,

    /// The Ansible root inside the repository (where ansible.cfg and the inventory are).
    #[arg(long, value_name = "SUBDIR", env = "ANSIBLE_ROOT_DIR")]
    pub ansible_root: Option<PathBuf>,

    /// The host being built: `--limit`, `/etc/hostname`, its inventory variables.
    #[arg(long, value_name = "HOST")]
    pub host: String,

    /// The name of the resulting image; each stage's image is `NAME/<playbook>:TAG`.
    #[arg(long, value_name = "NAME[:TAG]")]
    pub commit: String,

    /// An inventory of the repository, relative to the Ansible root (repeatable)
    /// [default: from ansible.cfg, else `inventory` or `hosts`].
    #[arg(long = "inventory", value_name = "PATH")]
    pub inventories: Vec<PathBuf>,

    /// An extra argument for ansible-playbook (repeatable), e.g. `--ansible-arg=--tags=web`.
    #[arg(long = "ansible-arg", value_name = "ARG", allow_hyphen_values = true)]
    pub ansible_args: Vec<String>,

    /// A shell snippet run before ansible-playbook, in the Ansible root.
    #[arg(long, value_name = "SHELL", env = "HOOK_PRE_ANSIBLE")]
    pub hook_pre: Option<String>,

    /// A shell snippet run after ansible-playbook, in the Ansible root.
    #[arg(long, value_name = "SHELL", env = "HOOK_POST_ANSIBLE")]
    pub hook_post: Option<String>,

    /// Set the extra var `in_conffs_build` to true.
    #[arg(long)]
    pub conffs: bool,

    /// Where git clones of Ansible repositories are cached
    /// [default: $XDG_CACHE_HOME/vauban/ansible].
    #[arg(long, value_name = "DIR", env = "VAUBAN_CACHE")]
    pub cache_dir: Option<PathBuf>,

    /// Where the logs of the stages are saved [default: $XDG_STATE_HOME/vauban/logs].
    #[arg(long, value_name = "DIR")]
    pub log_dir: Option<PathBuf>,

    /// Do not print Ansible's output (the log keeps it).
    #[arg(long, short)]
    pub quiet: bool,

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
    let mut spec = StageSpec::new(ansible_source(&args.ansible)?, commit.name());
    spec.tag = commit.tag().to_owned();
    spec.final_name = Some(commit.clone());
    spec.branch = args.branch;
    spec.ansible_root = args.ansible_root.unwrap_or_default();
    spec.inventories = args.inventories;
    spec.extra_args = args.ansible_args;
    spec.hooks = Hooks {
        pre: args.hook_pre,
        post: args.hook_post,
    };
    spec.in_conffs_build = args.conffs;

    let (renderer, events) = globals.renderer(args.quiet);
    let mut env = env(args.cache_dir.as_deref(), args.log_dir.as_deref(), events)?;
    if let Some(network) = args.network.network()? {
        env.network = network;
    }

    let store = globals.open_store()?;
    let quiet = args.quiet;
    let base = store.image(&image)?;
    let built = apply_stages(&store, &base, &stages, &args.host, &spec, &env);
    renderer.finish();
    let built = built
        .map_err(|err| match err {
            // The error's message is printed on one line: show the output's last
            // lines here, as lines (unless they were just streamed).
            vauban_core::Error::AnsibleFailed(failure) => {
                if quiet {
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

/// The machine's side of a stage or build run by this binary: the user's
/// directories unless `--cache-dir`/`--log-dir` say otherwise (made
/// absolute here), this binary as the sandbox helper, `events`.
pub(crate) fn env(
    cache_dir: Option<&std::path::Path>,
    log_dir: Option<&std::path::Path>,
    events: vauban_core::Events,
) -> Result<Env> {
    let mut env = Env::from_user_dirs()?;
    if let Some(dir) = cache_dir {
        env.cache_dir = std::path::absolute(dir)?;
    }
    if let Some(dir) = log_dir {
        env.log_dir = std::path::absolute(dir)?;
    }
    env.helper = Some(Helper::current_exe()?);
    env.events = events;
    Ok(env)
}

/// `--ansible`: a git URL as it is, a directory made absolute here, once (the
/// stage runs from inside the Ansible root, where a relative path means
/// something else).
pub(crate) fn ansible_source(arg: &str) -> Result<AnsibleSource> {
    Ok(match AnsibleSource::parse(arg) {
        AnsibleSource::Dir(dir) => AnsibleSource::Dir(
            std::path::absolute(&dir)
                .with_context(|| format!("cannot resolve --ansible {}", dir.display()))?,
        ),
        git => git,
    })
}
