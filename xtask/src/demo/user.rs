//! Who runs the demo's build: as root, the unprivileged `vauban-test` (made by
//! `cargo xtask test`'s machinery, with subordinate id ranges) through
//! `setpriv`; otherwise ourselves, who are unprivileged already. The build's
//! store, out dir and HOME belong to that user; its environment is cleared, so
//! no `VAUBAN_KEYSTORE_KEY` of ours leaks in (the build makes its key file).

use std::ffi::OsStr;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::rootless::stage::{check_traversable, Runner};
use crate::test::{ensure_test_user, TEST_USER};
use crate::util;

/// The PATH the build gets.
const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The demo user: `vauban-test` when we are root (created if missing), else
/// ourselves.
pub fn runner() -> Result<Runner> {
    if !util::is_root() {
        return Ok(Runner { switch_to: None });
    }
    let (uid, gid) = ensure_test_user()?;
    Ok(Runner {
        switch_to: Some((TEST_USER.to_string(), uid, gid)),
    })
}

/// Fails unless the demo user can reach `path` (every ancestor traversable by
/// others) when it is another user than us.
pub fn check_reachable(runner: &Runner, path: &Path) -> Result<()> {
    if runner.switch_to.is_none() {
        return Ok(());
    }
    check_traversable(path).with_context(|| {
        format!(
            "the demo runs vauban as {TEST_USER}, who must reach {}: put the workspace \
             under a directory other users can traverse",
            path.display()
        )
    })
}

/// Makes `dir` an existing directory owned by the demo user. One owned by
/// somebody else (a store from an older demo run as root) is removed first:
/// it is the demo's own scratch, under `target/`.
pub fn own_dir(runner: &Runner, dir: &Path) -> Result<()> {
    let (uid, gid) = match &runner.switch_to {
        Some((_, uid, gid)) => (*uid, *gid),
        None => (
            nix::unistd::geteuid().as_raw(),
            nix::unistd::getegid().as_raw(),
        ),
    };
    if let Ok(meta) = std::fs::symlink_metadata(dir) {
        if meta.is_dir() && meta.uid() == uid {
            return Ok(());
        }
        if !util::is_root() {
            bail!(
                "{} exists and is not ours (uid {}): remove it",
                dir.display(),
                meta.uid()
            );
        }
        eprintln!(
            "demo: {} belongs to uid {}, not the demo user: removing it",
            dir.display(),
            meta.uid()
        );
        remove(dir)?;
    }
    std::fs::create_dir_all(dir).with_context(|| format!("mkdir {}", dir.display()))?;
    std::os::unix::fs::chown(dir, Some(uid), Some(gid))
        .with_context(|| format!("chown {uid}:{gid} {}", dir.display()))?;
    util::chmod(dir, 0o755)
}

fn remove(path: &Path) -> Result<()> {
    if std::fs::symlink_metadata(path)?.is_dir() {
        std::fs::remove_dir_all(path)
    } else {
        std::fs::remove_file(path)
    }
    .with_context(|| format!("remove {}", path.display()))
}

/// `cmd` run as the demo user, with a clean environment: `PATH`, `HOME`,
/// `USER`, `LOGNAME`, `LANG`, and `RUST_LOG`/`NO_COLOR` when we have them.
pub fn as_user(runner: &Runner, cmd: &Command, home: &Path) -> Command {
    let mut out = match &runner.switch_to {
        Some((_, uid, gid)) => {
            let mut c = Command::new("setpriv");
            c.args([format!("--reuid={uid}"), format!("--regid={gid}")]);
            c.args(["--init-groups", "--"]).arg(cmd.get_program());
            c
        }
        None => Command::new(cmd.get_program()),
    };
    out.args(cmd.get_args()).env_clear();
    if let Some(dir) = cmd.get_current_dir() {
        out.current_dir(dir);
    }
    out.env("PATH", PATH)
        .env("HOME", home)
        .env("LANG", "C.UTF-8");
    let user = match &runner.switch_to {
        Some((name, _, _)) => Some(OsStr::new(name).to_owned()),
        None => std::env::var_os("USER"),
    };
    if let Some(user) = user {
        out.env("USER", &user).env("LOGNAME", &user);
    }
    for var in ["RUST_LOG", "NO_COLOR"] {
        if let Some(v) = std::env::var_os(var) {
            out.env(var, v);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_build_runs_as_the_test_user_without_our_keystore_key() {
        let runner = Runner {
            switch_to: Some(("vauban-test".into(), 1001, 1002)),
        };
        let mut inner = Command::new("/b/vauban");
        inner.args(["--store", "/s", "build"]).env("X", "y");
        let cmd = as_user(&runner, &inner, Path::new("/h"));
        assert_eq!(
            util::display(&cmd),
            "setpriv --reuid=1001 --regid=1002 --init-groups -- /b/vauban --store /s build"
        );
        let env: std::collections::HashMap<_, _> = cmd.get_envs().collect();
        let get = |k: &str| env.get(OsStr::new(k)).copied().flatten();
        assert_eq!(get("HOME"), Some(OsStr::new("/h")));
        assert_eq!(get("USER"), Some(OsStr::new("vauban-test")));
        assert_eq!(get("LOGNAME"), Some(OsStr::new("vauban-test")));
        assert_eq!(get("X"), None);
        assert_eq!(get("VAUBAN_KEYSTORE_KEY"), None);
        assert!(!env.contains_key(OsStr::new("VAUBAN_KEYSTORE_KEY")));
    }

    #[test]
    fn without_root_the_build_runs_as_ourselves() {
        let runner = Runner { switch_to: None };
        let cmd = as_user(&runner, &Command::new("/b/vauban"), Path::new("/h"));
        assert_eq!(util::display(&cmd), "/b/vauban");
    }
}
