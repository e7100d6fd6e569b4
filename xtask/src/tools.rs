//! Test tools that Debian does not package, installed once per machine from
//! PyPI, pinned, each in a virtualenv that every user can read (the rootless
//! tests run them as the test user): schemathesis, and the Kubernetes tools
//! of vauban-kube's tests (kubernetes-validate, and Helm's Go SDK through
//! helm-python-sdk to render the chart: Debian 12 has no `helm`).

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result};

use crate::util;

/// The schemathesis release the API fuzz test runs.
pub const SCHEMATHESIS: &str = "4.32.5";

/// The kubernetes-validate release (its schemas go up to Kubernetes 1.37,
/// the API vauban-kube is built against).
pub const KUBERNETES_VALIDATE: &str = "1.37.0";

/// The helm-python-sdk release (Helm 4.2's Go SDK behind a C ABI).
pub const HELM_PYTHON_SDK: &str = "0.2.2";

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
    let venv = venv(
        &format!("schemathesis-{SCHEMATHESIS}"),
        &[format!("schemathesis=={SCHEMATHESIS}")],
    )?;
    Ok(venv.join("bin/st"))
}

/// Makes sure the pinned Kubernetes tools are installed; returns their
/// virtualenv (`bin/kubernetes-validate`, `bin/python` with `helm_python`),
/// which vauban-kube's tests find in `$VAUBAN_KUBE_TOOLS`.
pub fn kube_tools() -> Result<PathBuf> {
    venv(
        &format!("kube-{KUBERNETES_VALIDATE}-{HELM_PYTHON_SDK}"),
        &[
            format!("kubernetes-validate=={KUBERNETES_VALIDATE}"),
            format!("helm-python-sdk=={HELM_PYTHON_SDK}"),
        ],
    )
}

/// Makes sure the virtualenv `name` of the tools dir holds `packages`.
fn venv(name: &str, packages: &[String]) -> Result<PathBuf> {
    let venv = tools_dir()?.join(name);
    // Written last: an interrupted install is made again, never used.
    let complete = venv.join(".complete");
    if complete.exists() {
        return Ok(venv);
    }
    eprintln!("tools: installing {} from PyPI", packages.join(" "));
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
            .args(packages),
    )?;
    util::run(Command::new("chmod").args(["-R", "a+rX"]).arg(&venv))?;
    std::fs::write(&complete, "").with_context(|| format!("write {}", complete.display()))?;
    Ok(venv)
}
