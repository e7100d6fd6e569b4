//! Interop: skopeo and umoci read our store as it is, and umoci's unpacked
//! rootfs equals `vauban unpack` of the same image (the Debian fixture).

mod cli_support;

use std::process::Command;

use cli_support::{assert_same_tree, fixture, require_tool, run_ok, snapshot, vauban_ok};

#[test]
fn skopeo_and_umoci_read_our_image() {
    require_tool("skopeo");
    require_tool("umoci");
    let debian = fixture("debian.tar");
    let work = tempfile::tempdir().unwrap();
    let store = work.path().join("store");
    let out = vauban_ok(
        &store,
        &["import", debian.to_str().unwrap(), "--tag", "debian:12"],
    );
    let manifest_digest = out
        .split_whitespace()
        .nth(1)
        .expect("digest printed")
        .to_string();
    let ours: serde_json::Value =
        serde_json::from_str(&vauban_ok(&store, &["inspect", "debian:12"])).unwrap();
    assert_eq!(ours["manifestDigest"], manifest_digest.as_str());

    // skopeo accepts the layout and sees the same manifest and layers.
    let out = run_ok(
        Command::new("skopeo")
            .arg("inspect")
            .arg(format!("oci:{}:debian:12", store.display())),
    );
    let theirs: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(theirs["Digest"], manifest_digest.as_str());
    assert_eq!(theirs["Os"], "linux");
    assert_eq!(theirs["Layers"][0], ours["layers"][0]["digest"]);

    // umoci unpacks it; its rootfs equals ours.
    let umoci_bundle = work.path().join("umoci");
    run_ok(
        Command::new("umoci")
            .args(["unpack", "--rootless", "--image"])
            .arg(format!("{}:debian:12", store.display()))
            .arg(&umoci_bundle),
    );
    let ours_dir = work.path().join("ours");
    vauban_ok(&store, &["unpack", "debian:12", ours_dir.to_str().unwrap()]);
    let mut theirs = snapshot(&umoci_bundle.join("rootfs"), false);
    let mut ours = snapshot(&ours_dir, false);
    // umoci --rootless writes an empty regular file where a device node is; we
    // create the node when root and skip it otherwise: compare the other entries.
    let devices: Vec<_> = ours
        .iter()
        .filter(|(_, n)| n.kind == 'c' || n.kind == 'b')
        .map(|(p, _)| p.clone())
        .collect();
    for p in &devices {
        let placeholder = theirs
            .remove(p)
            .expect("umoci has a placeholder for each device");
        assert_eq!(
            (placeholder.kind, placeholder.size),
            ('f', 0),
            "{}",
            p.display()
        );
        ours.remove(p);
    }
    if !cli_support::is_root() {
        // Not root: we skipped the nodes, umoci wrote placeholders under dev/.
        theirs.retain(|p, n| {
            ours.contains_key(p) || !(p.starts_with("dev") && n.kind == 'f' && n.size == 0)
        });
    }
    assert!(
        ours.len() > 5000,
        "the Debian tree has only {} entries",
        ours.len()
    );
    assert_same_tree(&ours, &theirs, "vauban unpack vs umoci unpack");
}
