//! The tools the manifest and chart tests run: found in
//! `$VAUBAN_KUBE_TOOLS` (the virtualenv `cargo xtask test` installs), else
//! on `$PATH`; a missing one fails the test, saying how to get it.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// The Kubernetes versions the manifests are checked against: the oldest
/// with every field they use (1.33: user namespaces on by default,
/// `backoffLimitPerIndex` GA) and the newest the validator knows.
pub const VERSIONS: [&str; 2] = ["1.33.0", "1.37.0"];

pub const HOW: &str = "install it with `cargo xtask test` (a virtualenv under \
                   /var/cache/vauban-xtask, named by $VAUBAN_KUBE_TOOLS), or \
                   `pip install kubernetes-validate==1.37.0 helm-python-sdk==0.2.2`";

/// `name` of the tools' virtualenv, else of `$PATH`.
pub fn tool(name: &str) -> PathBuf {
    if let Some(venv) = std::env::var_os("VAUBAN_KUBE_TOOLS") {
        let exe = Path::new(&venv).join("bin").join(name);
        assert!(exe.is_file(), "{} is missing: {HOW}", exe.display());
        return exe;
    }
    let found = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    });
    found.unwrap_or_else(|| {
        panic!("{name} is not on $PATH and $VAUBAN_KUBE_TOOLS is not set: {HOW}")
    })
}

/// Runs kubernetes-validate, strict (an unknown field is an error), on
/// `file` for each of [`VERSIONS`]; panics with its output on a failure.
pub fn validate(file: &Path) {
    let exe = tool("kubernetes-validate");
    for version in VERSIONS {
        let out = Command::new(&exe)
            .args(["--strict", "--no-warn", "-k", version])
            .arg(file)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", exe.display()));
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success(),
            "kubernetes-validate -k {version} refused {}:\n{text}\n--- the file:\n{}",
            file.display(),
            std::fs::read_to_string(file).unwrap_or_default()
        );
        // One "passed" line a document: none would mean nothing was read.
        assert!(
            text.contains("passed"),
            "kubernetes-validate read nothing:\n{text}"
        );
    }
}
