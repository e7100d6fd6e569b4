//! The Ansible options of `vauban stage` and `vauban build`, declared once:
//! the repository and branch, extra arguments, hooks, where clones are
//! cached and logs written, and how much of Ansible's output is shown.

use std::path::PathBuf;

use anyhow::{Context, Result};
use vauban_core::sandbox::Helper;
use vauban_core::stage::{AnsibleSource, Hooks};
use vauban_core::{Env, Events};

/// How a stage runs Ansible.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Ansible")]
pub struct AnsibleArgs {
    /// The Ansible repository: a directory used as it is, or a git URL (cloned
    /// into the cache, fetched once per build, each branch checked out once)
    /// [build's default: `ansible:` of the config's `configuration:`].
    #[arg(long, value_name = "DIR|URL", env = "VAUBAN_ANSIBLE")]
    pub ansible: Option<String>,

    /// Take every stage from this branch of the git repository
    /// (`branch@playbook.yml` overrides it) [default: a master's `branch:`,
    /// else the remote's default branch].
    #[arg(long, value_name = "BRANCH")]
    pub branch: Option<String>,

    /// An extra argument for ansible-playbook (repeatable), e.g. `--ansible-arg=--tags=web`.
    #[arg(long = "ansible-arg", value_name = "ARG", allow_hyphen_values = true)]
    pub ansible_args: Vec<String>,

    /// A shell snippet run before ansible-playbook, in the Ansible root.
    #[arg(long, value_name = "SHELL", env = "HOOK_PRE_ANSIBLE")]
    pub hook_pre: Option<String>,

    /// A shell snippet run after ansible-playbook, in the Ansible root.
    #[arg(long, value_name = "SHELL", env = "HOOK_POST_ANSIBLE")]
    pub hook_post: Option<String>,

    /// Where git clones of Ansible repositories are cached
    /// [default: $XDG_CACHE_HOME/vauban/ansible].
    #[arg(long, value_name = "DIR", env = "VAUBAN_CACHE")]
    pub cache_dir: Option<PathBuf>,

    /// Where the logs are saved, Ansible's full output with them
    /// [default: $XDG_STATE_HOME/vauban/logs].
    #[arg(long, value_name = "DIR")]
    pub log_dir: Option<PathBuf>,

    /// Show no Ansible output (by default: each task and each host's result;
    /// `-v`: Ansible's own lines, with their `--diff`; the logs keep them all).
    #[arg(long, short)]
    pub quiet: bool,
}

impl AnsibleArgs {
    /// `--ansible`: a git URL as it is, a directory made absolute here, once
    /// (the stage runs from inside the Ansible root, where a relative path
    /// means something else).
    pub fn source(&self) -> Result<Option<AnsibleSource>> {
        let Some(arg) = &self.ansible else {
            return Ok(None);
        };
        Ok(Some(match AnsibleSource::parse(arg) {
            AnsibleSource::Dir(dir) => AnsibleSource::Dir(
                std::path::absolute(&dir)
                    .with_context(|| format!("cannot resolve --ansible {}", dir.display()))?,
            ),
            git => git,
        }))
    }

    /// `--hook-pre` and `--hook-post`.
    pub fn hooks(&self) -> Hooks {
        Hooks {
            pre: self.hook_pre.clone(),
            post: self.hook_post.clone(),
        }
    }

    /// The machine's side of a stage or build run by this binary: the user's
    /// directories unless `--cache-dir`/`--log-dir` say otherwise (made
    /// absolute here), this binary as the sandbox helper, `events`.
    pub fn env(&self, events: Events) -> Result<Env> {
        let mut env = Env::from_user_dirs()?;
        if let Some(dir) = &self.cache_dir {
            env.cache_dir = std::path::absolute(dir)?;
        }
        if let Some(dir) = &self.log_dir {
            env.log_dir = std::path::absolute(dir)?;
        }
        env.helper = Some(Helper::current_exe()?);
        env.events = events;
        Ok(env)
    }
}
