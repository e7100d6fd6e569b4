//! Overlay-mode layers applied over their lower layer dirs: a hard link to a
//! file that only a lower layer holds becomes a copy of it, a parent directory
//! the layer lacks takes the lower layer's mode, and a link to a path a lower
//! layer whited out is refused.

mod common;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::*;
use vauban_oci::layer::{apply, ApplyOptions, LowerDirs, Owners, WhiteoutMode};
use vauban_oci::Error;

/// Overlay mode over `lowers` (top-most first), owners best effort.
fn over(lowers: &[&Path]) -> ApplyOptions {
    ApplyOptions {
        whiteouts: WhiteoutMode::Overlay,
        owners: Owners::BestEffort,
        lowers: LowerDirs {
            dirs: lowers.iter().map(|p| p.to_path_buf()).collect(),
            ready: None,
        },
    }
}

/// Applies `entries` into a new dir `name` under `base` over `lowers`.
fn layer(base: &Path, name: &str, entries: &[E], lowers: &[&Path]) -> vauban_oci::Result<PathBuf> {
    let d = base.join(name);
    fs::create_dir(&d).unwrap();
    apply(&tar_of(entries)[..], &d, &over(lowers))?;
    Ok(d)
}

fn base_layer() -> Vec<E> {
    vec![
        dir("usr"),
        dir("usr/bin"),
        file("usr/bin/tool", "X").mode(0o755),
        dir("opt").mode(0o700),
        dir("srv").mode(0o750),
        file("srv/gone", "g"),
    ]
}

#[test]
fn hard_link_to_a_lower_file_is_a_copy_and_missing_parents_take_lower_modes() {
    let tmp = tempfile::tempdir().unwrap();
    let lower = layer(tmp.path(), "lower", &base_layer(), &[]).unwrap();
    let upper = layer(
        tmp.path(),
        "upper",
        &[
            hard("usr/bin/tool2", "usr/bin/tool"),
            file("opt/x", "y"),
            // A link to a link of this layer's own: linked, not copied.
            hard("usr/bin/tool3", "usr/bin/tool2"),
        ],
        &[&lower],
    )
    .unwrap();

    let tool2 = upper.join("usr/bin/tool2");
    let md = fs::symlink_metadata(&tool2).unwrap();
    assert!(md.file_type().is_file(), "a regular file, not {md:?}");
    assert_eq!(fs::read_to_string(&tool2).unwrap(), "X");
    assert_eq!(md.mode() & 0o7777, 0o755);
    assert_eq!(md.mtime(), 1_600_000_000, "the lower file's mtime");
    // A copy: the lower layer's file is not shared.
    let orig = fs::metadata(lower.join("usr/bin/tool")).unwrap();
    assert_ne!((md.dev(), md.ino()), (orig.dev(), orig.ino()));
    assert_eq!(orig.nlink(), 1);
    let tool3 = fs::metadata(upper.join("usr/bin/tool3")).unwrap();
    assert_eq!((tool3.dev(), tool3.ino()), (md.dev(), md.ino()));

    let opt = fs::metadata(upper.join("opt")).unwrap();
    assert_eq!(opt.mode() & 0o7777, 0o700, "the lower `opt/` mode");
    assert_eq!(fs::read_to_string(upper.join("opt/x")).unwrap(), "y");
    // Parents no lower layer has keep the default.
    let usr = fs::metadata(upper.join("usr")).unwrap();
    assert_eq!(usr.mode() & 0o7777, 0o755);
}

#[test]
fn lookups_follow_overlay_order_whiteouts_and_opaque_dirs() {
    let tmp = tempfile::tempdir().unwrap();
    let l1 = layer(tmp.path(), "l1", &base_layer(), &[]).unwrap();
    // The middle layer changes `tool`, whites out `srv/gone` and makes `opt`
    // opaque with its own mode.
    let l2 = layer(
        tmp.path(),
        "l2",
        &[
            file("usr/bin/tool", "newer").mode(0o750),
            wh("srv/gone"),
            dir("opt").mode(0o711),
            file("opt/.wh..wh..opq", ""),
        ],
        &[&l1],
    )
    .unwrap();
    assert_eq!(
        fs::metadata(l2.join("srv")).unwrap().mode() & 0o7777,
        0o750,
        "a parent made for a whiteout takes the lower mode too"
    );
    let l3 = layer(
        tmp.path(),
        "l3",
        &[hard("usr/bin/t", "usr/bin/tool"), file("opt/y", "")],
        &[&l2, &l1],
    )
    .unwrap();
    assert_eq!(fs::read_to_string(l3.join("usr/bin/t")).unwrap(), "newer");
    assert_eq!(
        fs::metadata(l3.join("usr/bin/t")).unwrap().mode() & 0o7777,
        0o750
    );
    assert_eq!(fs::metadata(l3.join("opt")).unwrap().mode() & 0o7777, 0o711);

    // Under a directory a higher lower layer made opaque: hidden.
    let opaque = layer(
        tmp.path(),
        "opaque",
        &[dir("usr"), file("usr/.wh..wh..opq", "")],
        &[&l2, &l1],
    )
    .unwrap();
    let err = layer(
        tmp.path(),
        "l7",
        &[hard("t", "usr/bin/tool")],
        &[&opaque, &l2, &l1],
    )
    .unwrap_err();
    assert!(err.to_string().contains("does not exist"), "{err}");
    // Whited out in a lower layer: it does not exist.
    let err = layer(
        tmp.path(),
        "l4",
        &[hard("srv/again", "srv/gone")],
        &[&l2, &l1],
    )
    .unwrap_err();
    assert!(
        matches!(&err, Error::UnsafeEntry { .. }) && err.to_string().contains("does not exist"),
        "{err}"
    );
    // Found nowhere: the same error.
    let err = layer(tmp.path(), "l5", &[hard("a", "usr/bin/none")], &[&l2, &l1]).unwrap_err();
    assert!(err.to_string().contains("does not exist"), "{err}");
    // Whited out by this layer itself, before the link.
    let err = layer(
        tmp.path(),
        "l6",
        &[wh("usr/bin/tool"), hard("usr/bin/t", "usr/bin/tool")],
        &[&l2, &l1],
    )
    .unwrap_err();
    assert!(err.to_string().contains("does not exist"), "{err}");
}

#[test]
fn lower_files_are_never_followed_out_of() {
    let tmp = tempfile::tempdir().unwrap();
    let outside = tmp.path().join("outside");
    fs::create_dir(&outside).unwrap();
    fs::write(outside.join("secret"), "s").unwrap();
    // A lower layer whose `etc` is a link out of it: not followed.
    let lower = layer(
        tmp.path(),
        "lower",
        &[
            sym("etc", outside.to_str().unwrap()),
            sym("rel", "../outside"),
        ],
        &[],
    )
    .unwrap();
    for target in ["etc/secret", "rel/secret"] {
        let name = target.replace('/', "-");
        let err = layer(tmp.path(), &name, &[hard("x", target)], &[&lower]).unwrap_err();
        assert!(
            err.to_string().contains("does not exist"),
            "{target}: {err}"
        );
    }
    // A link to a lower symlink is a copy of the symlink, not of its target.
    let up = layer(tmp.path(), "up", &[hard("etc2", "etc")], &[&lower]).unwrap();
    let md = fs::symlink_metadata(up.join("etc2")).unwrap();
    assert!(md.file_type().is_symlink());
    assert_eq!(fs::read_link(up.join("etc2")).unwrap(), outside);
}

#[test]
fn lowers_are_waited_for_only_when_needed_and_apply_mode_ignores_them() {
    let tmp = tempfile::tempdir().unwrap();
    let lower = layer(tmp.path(), "lower", &base_layer(), &[]).unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = |calls: &Arc<AtomicUsize>| {
        let calls = Arc::clone(calls);
        let mut o = over(&[&lower]);
        o.lowers.ready = Some(Arc::new(move || {
            calls.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }));
        o
    };
    // Every parent present: never waited for.
    let d = tmp.path().join("plain");
    fs::create_dir(&d).unwrap();
    apply(
        &tar_of(&[dir("a"), file("a/b", "")])[..],
        &d,
        &counted(&calls),
    )
    .unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    // Needed twice: waited for once.
    let d = tmp.path().join("needs");
    fs::create_dir(&d).unwrap();
    let entries = [hard("t1", "usr/bin/tool"), hard("t2", "usr/bin/tool")];
    apply(&tar_of(&entries)[..], &d, &counted(&calls)).unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    // A wait that fails fails the apply.
    let d = tmp.path().join("failed");
    fs::create_dir(&d).unwrap();
    let mut o = over(&[&lower]);
    o.lowers.ready = Some(Arc::new(|| {
        Err(std::io::Error::other("lower layer failed"))
    }));
    let err = apply(&tar_of(&entries)[..], &d, &o).unwrap_err();
    assert!(
        format!("{err:#}").contains("wait for the lower layers"),
        "{err:#}"
    );
    // Apply mode: the lowers play no part.
    let d = tmp.path().join("apply");
    fs::create_dir(&d).unwrap();
    let o = ApplyOptions {
        whiteouts: WhiteoutMode::Apply,
        ..over(&[&lower])
    };
    let err = apply(&tar_of(&entries)[..], &d, &o).unwrap_err();
    assert!(err.to_string().contains("does not exist"), "{err}");
}
