//! The Debian fixture: `vauban import` then `vauban unpack` gives the same tree
//! as `tar -x` of the same tarball (owners too when root).

mod cli_support;

use std::process::Command;

use cli_support::{assert_same_tree, fixture, is_root, snapshot, vauban_ok};

#[test]
fn debian_import_unpack_equals_tar_x() {
    let debian = fixture("debian.tar");
    let work = tempfile::tempdir().unwrap();
    let store = work.path().join("store");
    vauban_ok(
        &store,
        &["import", debian.to_str().unwrap(), "--tag", "debian"],
    );
    let ours_dir = work.path().join("ours");
    vauban_ok(&store, &["unpack", "debian", ours_dir.to_str().unwrap()]);

    let tar_dir = work.path().join("tar");
    std::fs::create_dir(&tar_dir).unwrap();
    let status = Command::new("tar")
        .args(["--numeric-owner", "-xpf"])
        .arg(&debian)
        .arg("-C")
        .arg(&tar_dir)
        .status()
        .expect("run tar");
    // As non-root tar cannot make device nodes and says so; as root it must succeed.
    assert!(status.success() || !is_root(), "tar -x failed: {status}");

    let root = is_root();
    let mut ours = snapshot(&ours_dir, root);
    let mut theirs = snapshot(&tar_dir, root);
    if !root {
        ours.retain(|_, n| n.kind != 'c' && n.kind != 'b');
        theirs.retain(|_, n| n.kind != 'c' && n.kind != 'b');
    }
    assert!(
        ours.len() > 5000,
        "the Debian tree has only {} entries",
        ours.len()
    );
    assert_same_tree(&ours, &theirs, "vauban import+unpack vs tar -x");

    let report = vauban_ok(&store, &["fsck"]);
    assert!(report.contains("is sound"), "{report}");
}
