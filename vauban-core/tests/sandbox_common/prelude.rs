//! The prelude of the tests of vauban-core and vauban-cli (the CLI tests
//! include this file by path): the unprivileged check of rootless tests and
//! where fixtures and test data are, the entries of a layer by path. Only std
//! and crates every includer has.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Panics unless we run unprivileged (first thing of every rootless test).
pub fn unprivileged() {
    assert!(
        !rustix::process::geteuid().is_root(),
        "rootless tests must run as an unprivileged user: use cargo xtask test"
    );
}

/// The workspace root (every includer's crate is one level below it).
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A fixture file from `$VAUBAN_FIXTURES` (default `<workspace>/target/fixtures`).
pub fn fixture(name: &str) -> PathBuf {
    let dir = std::env::var_os("VAUBAN_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target/fixtures"));
    let path = dir.join(name);
    assert!(
        path.is_file(),
        "fixture {} is missing: run `cargo xtask fixtures`",
        path.display()
    );
    path
}

/// Copies the tree `from` (directories and regular files) to `to`, e.g. a
/// repository of `testdata/` a test then edits.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let dest = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &dest);
        } else {
            std::fs::copy(entry.path(), dest).unwrap();
        }
    }
}

/// Test inputs of the repository: `$VAUBAN_TESTDATA` (default `<workspace>/testdata`).
pub fn testdata() -> PathBuf {
    std::env::var_os("VAUBAN_TESTDATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("testdata"))
}

/// The entries of the uncompressed tar stream `tar` by path (without leading
/// `./` nor trailing `/`), each described by `describe`.
pub fn tar_listing<R: Read, T>(
    tar: R,
    mut describe: impl FnMut(&mut tar::Entry<'_, R>) -> T,
) -> BTreeMap<String, T> {
    let mut archive = tar::Archive::new(tar);
    let mut out = BTreeMap::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry
            .path()
            .unwrap()
            .to_string_lossy()
            .trim_end_matches('/')
            .trim_start_matches("./")
            .to_owned();
        out.insert(path, describe(&mut entry));
    }
    out
}

/// What any process of this machine still holds of `store`: a mount under it
/// (a live mount namespace of a sandbox), or a working directory or root in it.
/// Every process is looked at, not only ours: a sandbox's mounts are only seen
/// from inside its own namespaces.
pub fn sandbox_leftovers(store: &Path) -> Vec<String> {
    let needle = store.to_string_lossy().into_owned();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        let dir = entry.path();
        if let Ok(table) = std::fs::read_to_string(dir.join("mountinfo")) {
            for line in table.lines().filter(|l| l.contains(&needle)) {
                found.push(format!("pid {pid} mounts {line}"));
            }
        }
        for link in ["cwd", "root"] {
            if let Ok(target) = std::fs::read_link(dir.join(link)) {
                if target.starts_with(store) {
                    found.push(format!("pid {pid} {link} {}", target.display()));
                }
            }
        }
    }
    found
}
