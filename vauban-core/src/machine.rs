//! [`Env`]: where this machine keeps things and who follows the work. Not part
//! of what is built (a [`crate::stage::StageSpec`], a plan): the same build
//! has another `Env` on another machine.

use std::path::PathBuf;

use vauban_oci::dirs::UserDir;

use crate::error::{Error, Result};
use crate::events::Events;
use crate::sandbox::{Helper, Network};

/// The machine's side of a build.
#[derive(Debug, Clone)]
pub struct Env {
    /// Where git clones of Ansible repositories are cached.
    pub cache_dir: PathBuf,
    /// Where logs are saved (one directory per build; files 0600, directories
    /// 0700: they hold every host's `--diff`).
    pub log_dir: PathBuf,
    /// The sandbox helper; `None`: [`Helper::from_env`].
    pub helper: Option<Helper>,
    /// Who hears about the work.
    pub events: Events,
    /// The network of the sandboxes (their own, through vauban's proxy, by
    /// default).
    pub network: Network,
    /// Paths Ansible's controller is never shown besides the store, the logs
    /// and the usual credentials (a key store given by path, a key file, the
    /// boot tree).
    pub hidden: Vec<PathBuf>,
}

impl Env {
    /// The user's directories (`$XDG_CACHE_HOME/vauban/ansible`,
    /// `$XDG_STATE_HOME/vauban/logs`), no events, the helper from the
    /// process, an isolated network.
    pub fn from_user_dirs() -> Result<Self> {
        let cache = UserDir::Cache
            .vauban()
            .ok_or(Error::NoUserDir { what: "cache" })?;
        let state = UserDir::State
            .vauban()
            .ok_or(Error::NoUserDir { what: "state" })?;
        Ok(Env {
            cache_dir: cache.join("ansible"),
            log_dir: state.join("logs"),
            helper: None,
            events: Events::default(),
            network: Network::isolated(),
            hidden: Vec::new(),
        })
    }

    /// The helper to use.
    pub fn helper(&self) -> Result<Helper> {
        match &self.helper {
            Some(h) => Ok(h.clone()),
            None => Helper::from_env(),
        }
    }
}
