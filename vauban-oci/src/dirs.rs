//! The user's directories, resolved in one place: `$XDG_DATA_HOME`,
//! `$XDG_CACHE_HOME`, `$XDG_STATE_HOME`, each else its default under `$HOME`.

use std::path::PathBuf;

/// One of the user's base directories.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserDir {
    /// `$XDG_DATA_HOME`, else `~/.local/share` (the store).
    Data,
    /// `$XDG_CACHE_HOME`, else `~/.cache` (git clones, blob locations).
    Cache,
    /// `$XDG_STATE_HOME`, else `~/.local/state` (logs).
    State,
    /// `$XDG_CONFIG_HOME`, else `~/.config` (the key store's default secret).
    Config,
}

impl UserDir {
    /// The directory, `None` when neither its variable nor `$HOME` is set.
    pub fn path(self) -> Option<PathBuf> {
        self.path_from(|k| std::env::var_os(k))
    }

    /// [`UserDir::path`] with the environment given by `var`.
    pub fn path_from(self, var: impl Fn(&str) -> Option<std::ffi::OsString>) -> Option<PathBuf> {
        let get = |k: &str| var(k).filter(|v| !v.is_empty()).map(PathBuf::from);
        let (xdg, under_home) = match self {
            UserDir::Data => ("XDG_DATA_HOME", ".local/share"),
            UserDir::Cache => ("XDG_CACHE_HOME", ".cache"),
            UserDir::State => ("XDG_STATE_HOME", ".local/state"),
            UserDir::Config => ("XDG_CONFIG_HOME", ".config"),
        };
        get(xdg).or_else(|| get("HOME").map(|h| h.join(under_home)))
    }

    /// `DIR/vauban`.
    pub fn vauban(self) -> Option<PathBuf> {
        self.path().map(|d| d.join("vauban"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xdg_first_then_home() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(key, _)| *key == k)
                    .map(|(_, v)| std::ffi::OsString::from(v))
            }
        };
        let both = env(&[("XDG_CACHE_HOME", "/x/cache"), ("HOME", "/home/u")]);
        assert_eq!(UserDir::Cache.path_from(both), Some("/x/cache".into()));
        assert_eq!(
            UserDir::State.path_from(both),
            Some("/home/u/.local/state".into())
        );
        assert_eq!(
            UserDir::Data.path_from(both),
            Some("/home/u/.local/share".into())
        );
        let empty_xdg = env(&[("XDG_DATA_HOME", ""), ("HOME", "/h")]);
        assert_eq!(
            UserDir::Data.path_from(empty_xdg),
            Some("/h/.local/share".into())
        );
        assert_eq!(UserDir::Data.path_from(env(&[])), None);
    }
}
