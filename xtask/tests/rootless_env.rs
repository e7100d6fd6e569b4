//! Self-test of the rootless harness of `cargo xtask test`: the binary runs as
//! an unprivileged user with the promised environment (`VAUBAN_BIN`,
//! `VAUBAN_FIXTURES`, `VAUBAN_TESTDATA`, a writable `HOME` and `TMPDIR`), and
//! that user can enter a user namespace with its full subordinate id range.

use std::path::PathBuf;
use std::process::Command;

#[path = "../src/rootless/userns.rs"]
mod userns;

fn env_path(var: &str) -> PathBuf {
    let value = std::env::var_os(var).unwrap_or_else(|| {
        panic!("${var} is not set: run the rootless tests with cargo xtask test")
    });
    PathBuf::from(value)
}

fn assert_not_root() {
    let uid = nix::unistd::geteuid();
    assert!(
        !uid.is_root(),
        "rootless tests must run as an unprivileged user: use cargo xtask test"
    );
}

#[test]
fn runs_unprivileged_with_the_staged_inputs() {
    assert_not_root();
    let vauban = env_path("VAUBAN_BIN");
    let out = Command::new(&vauban)
        .arg("--help")
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", vauban.display()));
    assert!(
        out.status.success(),
        "{} --help: {}",
        vauban.display(),
        out.status
    );

    let fixtures = env_path("VAUBAN_FIXTURES");
    for name in ["debian.tar", "busybox.tar"] {
        let path = fixtures.join(name);
        std::fs::File::open(&path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    }
    let testdata = env_path("VAUBAN_TESTDATA");
    assert!(
        testdata.is_dir(),
        "{} is not a directory",
        testdata.display()
    );
}

#[test]
fn home_and_tmpdir_are_writable() {
    assert_not_root();
    for var in ["HOME", "TMPDIR"] {
        let dir = env_path(var);
        let probe = dir.join(format!("probe-{}", std::process::id()));
        std::fs::write(&probe, b"x").unwrap_or_else(|e| panic!("write {}: {e}", probe.display()));
        std::fs::remove_file(&probe).unwrap();
    }
}

#[test]
fn full_subid_mapping_lets_root_of_the_namespace_chown() {
    assert_not_root();
    let dir = tempfile::tempdir().expect("temp dir in $TMPDIR");
    let file = dir.path().join("owned");
    std::fs::write(&file, b"x").unwrap();
    // With a single-id mapping this chown fails; with the subuid range it works.
    let out = userns::as_root(&["chown", "2001:2001"])
        .arg(&file)
        .output()
        .expect("run unshare (package util-linux)");
    assert!(
        out.status.success(),
        "chown inside a user namespace failed ({}): {}\nthe test user needs /etc/subuid and /etc/subgid ranges and newuidmap (package uidmap)",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    // Cleanup needs the namespace too: the file now belongs to a subordinate id.
    let status = userns::remove_command(dir.path())
        .status()
        .expect("run unshare");
    assert!(status.success());
}
