//! Hostile layers, table-driven: each case is one line of
//! `common/hostile.rs` (shared with the unprivileged `rootless_layer`). Every
//! case asserts that nothing outside the target changed (a sentinel directory
//! beside the target, and the host's `/etc/passwd`), then either the expected
//! in-root result or a clean `UnsafeEntry` error naming the entry. The table
//! runs in both whiteout modes (containment is asserted in both, results in
//! Apply mode). Then the pack side: links are never followed out of the tree,
//! overlay xattrs never leave, names that would read back as whiteouts are
//! refused, and trees of any depth neither pack nor apply by recursion.

mod common;

use common::hostile::{read, run_cases, setup};
use common::*;
use vauban_oci::layer::{apply, ApplyOptions, Owners};
use vauban_oci::Error;

#[test]
fn hostile_layers_stay_inside_the_target() {
    // As root (CI) owners are preserved; as anyone else, best effort.
    let owners = if is_root() {
        Owners::Preserve
    } else {
        Owners::BestEffort
    };
    let failures = run_cases(owners);
    assert!(
        failures.is_empty(),
        "{} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// One listed tar entry: name, type, link target, xattr names.
type Listed = (String, tar::EntryType, String, Vec<String>);

/// Packs `root` uncompressed and lists its entries.
fn pack_list(source: vauban_oci::layer::LayerSource<'_>) -> vauban_oci::Result<Vec<Listed>> {
    let opts = vauban_oci::layer::PackOptions {
        compression: vauban_oci::layer::Compression::None,
        ..Default::default()
    };
    let mut out = Vec::new();
    vauban_oci::layer::pack(source, &opts, &mut out)?;
    std::result::Result::Ok(list_tar(&out))
}

#[test]
fn pack_never_follows_links_out_of_the_tree_nor_emits_overlay_xattrs() {
    use std::os::unix::fs::symlink;
    use vauban_oci::layer::LayerSource;
    let tmp = tempfile::tempdir().unwrap();
    let (sentinel, tree) = setup(tmp.path());
    symlink(&sentinel, tree.join("outdir")).unwrap();
    symlink(sentinel.join("passwd"), tree.join("outfile")).unwrap();
    symlink("../sentinel", tree.join("reldir")).unwrap();
    std::fs::create_dir(tree.join("d")).unwrap();
    std::fs::write(tree.join("d/f"), "x").unwrap();
    std::fs::hard_link(tree.join("d/f"), tree.join("h")).unwrap();
    set_xattr(&tree.join("d"), "user.overlay.opaque", b"y");
    set_xattr(&tree.join("d/f"), "user.overlay.origin", b"junk");
    set_xattr(&tree.join("d/f"), "user.overlay.overlay.x", b"escaped");
    set_xattr(&tree.join("d/f"), "user.keep", b"v");
    if is_root() {
        set_xattr(&tree.join("d"), "trusted.overlay.opaque", b"y");
        set_xattr(&tree, "trusted.overlay.origin", b"junk");
    }
    for source in [LayerSource::Tree(&tree), LayerSource::Upper(&tree)] {
        let entries = pack_list(source).unwrap();
        let names: Vec<&str> = entries.iter().map(|e| e.0.as_str()).collect();
        let mut expected = vec!["d/", "d/f", "h", "outdir", "outfile", "reldir"];
        if matches!(source, LayerSource::Tree(_)) {
            expected.insert(0, "./");
        } else {
            // user.overlay.opaque=y on `d` is what an upper dir's opaque dir carries.
            expected.insert(1, "d/.wh..wh..opq");
        }
        assert_eq!(names, expected, "{source:?}");
        for (name, ty, link, xs) in &entries {
            assert!(
                xs.iter().all(|x| !x.contains(".overlay.")),
                "{name} carries {xs:?}"
            );
            if name.starts_with("out") || name == "reldir" {
                assert_eq!(*ty, tar::EntryType::Symlink, "{name}");
                assert!(!link.is_empty());
            }
        }
        let f = entries.iter().find(|e| e.0 == "d/f").unwrap();
        assert_eq!(f.3, vec!["user.keep".to_string()]);
    }
}

#[test]
fn pack_refuses_files_named_like_whiteouts() {
    use vauban_oci::layer::LayerSource;
    for name in [".wh.victim", ".wh..wh..opq"] {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir(tmp.path().join("d")).unwrap();
        std::fs::write(tmp.path().join("d").join(name), "").unwrap();
        for source in [
            LayerSource::Tree(tmp.path()),
            LayerSource::Upper(tmp.path()),
        ] {
            match pack_list(source) {
                Err(Error::UnsafeEntry { entry, .. }) => assert_eq!(entry, format!("d/{name}")),
                r => panic!("{name} in {source:?}: expected UnsafeEntry, got {r:?}"),
            }
        }
    }
}

#[test]
fn deep_trees_pack_and_apply_without_overflowing_the_stack() {
    use vauban_oci::layer::LayerSource;
    // A build step can make a tree as deep as PATH_MAX allows; a test thread
    // has a small stack, so recursion of this depth would abort the process.
    let tmp = tempfile::tempdir().unwrap();
    let tree = tmp.path().join("t");
    let deep = "d/".repeat(1900);
    std::fs::create_dir_all(tree.join(&deep)).unwrap();
    std::fs::write(tree.join(&deep).join("f"), "x").unwrap();
    let opts = vauban_oci::layer::PackOptions {
        compression: vauban_oci::layer::Compression::None,
        ..Default::default()
    };
    let mut layer = Vec::new();
    let packed = vauban_oci::layer::pack(LayerSource::Tree(&tree), &opts, &mut layer).unwrap();
    assert_eq!(packed.entries, 1900 + 2);
    let out = tmp.path().join("out");
    std::fs::create_dir(&out).unwrap();
    apply(&layer[..], &out, &ApplyOptions::default()).unwrap();
    assert_eq!(read(out.join(&deep).join("f")), "x");
    // And a whiteout removes it all again.
    apply(&tar_of(&[wh("d")])[..], &out, &ApplyOptions::default()).unwrap();
    assert!(!out.join("d").exists());
}
