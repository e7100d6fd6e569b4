//! Test tools that Debian does not package, installed once per machine:
//! schemathesis (from PyPI, pinned) in a virtualenv that every user can read,
//! because the rootless tests run it as the test user.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result};

use crate::util;

/// The schemathesis release the API fuzz test runs.
pub const SCHEMATHESIS: &str = "4.32.5";

/// Where shared tools live: `/var/cache/vauban-xtask` as root (readable by
/// the test user), `$XDG_CACHE_HOME/vauban-xtask` otherwise.
fn tools_dir() -> Result<PathBuf> {
    if util::is_root() {
        return Ok(PathBuf::from("/var/cache/vauban-xtask"));
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .context("neither XDG_CACHE_HOME nor HOME is set")?;
    Ok(cache.join("vauban-xtask"))
}

/// Makes sure the pinned schemathesis is installed; returns its `st`.
pub fn schemathesis() -> Result<PathBuf> {
    let venv = tools_dir()?.join(format!("schemathesis-{SCHEMATHESIS}"));
    let st = venv.join("bin/st");
    // Written last: an interrupted install is made again, never used.
    let complete = venv.join(".complete");
    if complete.exists() {
        return Ok(st);
    }
    eprintln!("tools: installing schemathesis {SCHEMATHESIS} from PyPI");
    let _ = std::fs::remove_dir_all(&venv);
    // Debian's Python (python3-venv), not whatever `python3` a user's PATH
    // finds first: the test user must be able to run it.
    util::run(
        Command::new("/usr/bin/python3")
            .args(["-m", "venv"])
            .arg(&venv),
    )?;
    util::run(
        Command::new(venv.join("bin/pip"))
            .args(["install", "--quiet", "--disable-pip-version-check"])
            .arg(format!("schemathesis=={SCHEMATHESIS}")),
    )?;
    util::run(Command::new("chmod").args(["-R", "a+rX"]).arg(&venv))?;
    std::fs::write(&complete, "").with_context(|| format!("write {}", complete.display()))?;
    Ok(st)
}
