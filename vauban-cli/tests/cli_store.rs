//! The store commands end to end on the busybox fixture: every tarball
//! compression is sniffed, directory import, zstd layers, reproducible
//! imports with SOURCE_DATE_EPOCH, tag/images/rm/gc/fsck.

mod cli_support;

use std::path::Path;
use std::process::Command;

use cli_support::{
    assert_same_tree, fixture, is_root, require_tool, run_ok, snapshot, vauban, vauban_ok,
};

fn inspect(store: &Path, image: &str) -> serde_json::Value {
    serde_json::from_str(&vauban_ok(store, &["inspect", image])).unwrap()
}

fn import_with_epoch(store: &Path, path: &Path, tag: &str, extra: &[&str]) -> String {
    let mut cmd = Command::new(cli_support::vauban_bin());
    cmd.arg("--store")
        .arg(store)
        .arg("import")
        .arg(path)
        .args(["--tag", tag]);
    cmd.args(extra).env("SOURCE_DATE_EPOCH", "1700000000");
    let out = run_ok(&mut cmd);
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn every_compression_is_sniffed_and_gives_the_same_layer() {
    let busybox = fixture("busybox.tar");
    let work = tempfile::tempdir().unwrap();
    let store = work.path().join("store");
    let mut diff_ids = Vec::new();
    let mut manifests = Vec::new();
    let mut layers = Vec::new();
    for (tool, ext) in [
        ("cat", "tar"),
        ("gzip", "tar.gz"),
        ("xz", "tar.xz"),
        ("zstd", "tar.zst"),
    ] {
        require_tool(tool);
        let path = work.path().join(format!("busybox.{ext}"));
        let file = std::fs::File::create(&path).unwrap();
        let mut cmd = Command::new(tool);
        if tool != "cat" {
            cmd.arg("-c");
        }
        let status = cmd.arg(&busybox).stdout(file).status().unwrap();
        assert!(status.success(), "{tool} failed");
        let out = import_with_epoch(&store, &path, &format!("bb:{}", ext.replace('.', "-")), &[]);
        manifests.push(out.split_whitespace().nth(1).unwrap().to_string());
        let j = inspect(&store, &format!("bb:{}", ext.replace('.', "-")));
        diff_ids.push(j["layers"][0]["diffId"].as_str().unwrap().to_string());
        layers.push(j["layers"][0]["digest"].as_str().unwrap().to_string());
        assert_eq!(j["created"], "2023-11-14T22:13:20Z");
    }
    assert!(diff_ids.iter().all(|d| *d == diff_ids[0]), "{diff_ids:?}");
    // Same content and SOURCE_DATE_EPOCH: the very same layer blob...
    assert!(layers.iter().all(|d| *d == layers[0]), "{layers:?}");
    // ... and the same file imported again is the very same image.
    let again = import_with_epoch(&store, &work.path().join("busybox.tar"), "bb:again", &[]);
    assert_eq!(again.split_whitespace().nth(1).unwrap(), manifests[0]);
}

#[test]
fn directory_import_round_trips_and_zstd_works() {
    let busybox = fixture("busybox.tar");
    let work = tempfile::tempdir().unwrap();
    let store = work.path().join("store");
    let src = work.path().join("src");
    std::fs::create_dir(&src).unwrap();
    let status = Command::new("tar")
        .args(["--numeric-owner", "-xpf"])
        .arg(&busybox)
        .arg("-C")
        .arg(&src)
        .status()
        .unwrap();
    assert!(status.success() || !is_root(), "tar -x failed");
    import_with_epoch(&store, &src, "dir:zstd", &["--compression", "zstd"]);
    let j = inspect(&store, "dir:zstd");
    assert_eq!(
        j["layers"][0]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+zstd"
    );
    assert_eq!(j["config"]["history"][0]["created_by"], "vauban import src");
    assert_eq!(
        j["config"]["rootfs"]["diff_ids"].as_array().unwrap().len(),
        1
    );
    let out = work.path().join("out");
    vauban_ok(&store, &["unpack", "dir:zstd", out.to_str().unwrap()]);
    let root = is_root();
    let mut a = snapshot(&src, root);
    let mut b = snapshot(&out, root);
    if !root {
        a.retain(|_, n| n.kind != 'c' && n.kind != 'b');
        b.retain(|_, n| n.kind != 'c' && n.kind != 'b');
    }
    assert_same_tree(&b, &a, "directory import then unpack");
}

#[test]
fn tag_images_rm_gc_fsck() {
    let busybox = fixture("busybox.tar");
    let work = tempfile::tempdir().unwrap();
    let store = work.path().join("store");
    let bb = busybox.to_str().unwrap();
    vauban_ok(&store, &["import", bb, "--tag", "busybox"]);
    vauban_ok(&store, &["tag", "busybox", "vauban/bb:v1"]);
    let images = vauban_ok(&store, &["images"]);
    let lines: Vec<&str> = images.lines().collect();
    assert_eq!(lines.len(), 3, "{images}");
    assert!(lines[0].starts_with("NAME"));
    assert!(lines[1].starts_with("busybox:latest "), "{images}");
    assert!(lines[2].starts_with("vauban/bb:v1 "), "{images}");
    let a = inspect(&store, "busybox");
    let b = inspect(&store, "vauban/bb:v1");
    assert_eq!(a["manifestDigest"], b["manifestDigest"]);

    // Removing one name keeps the blobs; removing both lets gc take them.
    vauban_ok(&store, &["rm", "busybox"]);
    let gc = vauban_ok(&store, &["gc"]);
    assert!(gc.starts_with("removed 0 blobs"), "{gc}");
    vauban_ok(&store, &["rm", "vauban/bb:v1"]);
    let gc = vauban_ok(&store, &["gc"]);
    assert!(gc.starts_with("removed 3 blobs"), "{gc}");
    assert_eq!(
        std::fs::read_dir(store.join("blobs/sha256"))
            .unwrap()
            .count(),
        0
    );

    // fsck names a corrupted blob and fails with exit code 1.
    vauban_ok(&store, &["import", bb, "--tag", "busybox"]);
    let layer = inspect(&store, "busybox")["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:")
        .to_string();
    let path = store.join("blobs/sha256").join(&layer);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[100] ^= 0xff;
    std::fs::write(&path, bytes).unwrap();
    let out = vauban(&store, &["fsck"]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("blob sha256:{layer}: corrupt")),
        "{stdout}"
    );
    // unpack refuses the corrupt layer and leaves no partial tree.
    let target = work.path().join("t");
    let out = vauban(&store, &["unpack", "busybox", target.to_str().unwrap()]);
    assert_ne!(out.status.code(), Some(0));
    assert!(!target.exists(), "partial unpack left behind");
}
