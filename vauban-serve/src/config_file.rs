//! config.yml as the server knows it: read at start (a bad file stops the
//! server there), then re-read when it changes (its modification time and
//! size, looked at every few seconds) or on `SIGHUP`. A file broken later
//! keeps the last good config in use; the error is logged and shown in
//! `/masters` and on the page until the file is fixed.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use vauban_core::config::Config;

use crate::error::Result;

/// What identifies a version of the file.
type Stamp = Option<(SystemTime, u64)>;

/// The config in use.
pub struct ConfigFile {
    path: PathBuf,
    state: RwLock<State>,
}

struct State {
    stamp: Stamp,
    config: Arc<Config>,
    error: Option<String>,
}

fn stamp(path: &Path) -> Stamp {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

impl ConfigFile {
    /// Reads `path`.
    pub fn load(path: &Path) -> Result<ConfigFile> {
        let stamp = stamp(path);
        let config = Config::load(path)?;
        Ok(ConfigFile {
            path: path.to_owned(),
            state: RwLock::new(State {
                stamp,
                config: Arc::new(config),
                error: None,
            }),
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The config in use.
    pub fn get(&self) -> Arc<Config> {
        self.state
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .config
            .clone()
    }

    /// Why the file on disk is not the config in use, if it is not.
    pub fn error(&self) -> Option<String> {
        self.state
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .error
            .clone()
    }

    /// Re-reads the file if it changed (always when `force`); whether the
    /// config in use changed.
    pub fn reload(&self, force: bool) -> bool {
        let now = stamp(&self.path);
        if !force && self.state.read().unwrap_or_else(|e| e.into_inner()).stamp == now {
            return false;
        }
        let loaded = Config::load(&self.path);
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        state.stamp = now;
        match loaded {
            Ok(config) => {
                tracing::info!(path = %self.path.display(), "config.yml re-read");
                state.config = Arc::new(config);
                state.error = None;
                true
            }
            Err(e) => {
                let message = format!("{e}");
                tracing::error!(
                    "config.yml changed but cannot be used (the last good one stays): {message}"
                );
                state.error = Some(message);
                false
            }
        }
    }
}
