//! The host programs a stage needs, found once.

use std::path::PathBuf;

use crate::error::{Error, Result};

/// Host programs a stage needs.
#[derive(Debug, Clone)]
pub(crate) struct Tools {
    /// `ansible-playbook`.
    pub ansible_playbook: PathBuf,
    /// `env`.
    pub env: PathBuf,
    /// `sh`.
    pub sh: PathBuf,
}

impl Tools {
    /// Finds them in `$PATH` (then the system directories).
    pub(crate) fn find() -> Result<Self> {
        let path = std::env::var_os("PATH");
        let find = |tool: &str, hint: &'static str| {
            vauban_oci::program_path::which(tool, path.as_deref()).ok_or_else(|| {
                Error::ToolMissing {
                    tool: tool.to_owned(),
                    hint,
                }
            })
        };
        Ok(Tools {
            ansible_playbook: find(
                "ansible-playbook",
                "install Ansible with the community.general collection (`apt-get install ansible`)",
            )?,
            env: find("env", "install coreutils")?,
            sh: find("sh", "install a POSIX shell")?,
        })
    }
}
