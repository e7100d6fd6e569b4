//! The layer codec as an unprivileged user outside any user namespace (run by
//! `cargo xtask test` as `vauban-test`): the whole hostile table of
//! `layer_hostile` holds; with `Owners::BestEffort` device nodes are skipped and
//! owners counted while modes, mtimes, contents, links and fifos come out
//! right; with `Owners::Preserve` a chown to another id fails naming the entry;
//! overlay whiteouts (0/0 char devices) and opaque xattrs are made unprivileged;
//! read-only directories (Fedora's 0555 `/usr/bin`) take children, removals
//! and whiteouts, and end with their exact modes.

mod common;

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use common::hostile::{read, run_cases};
use common::*;
use vauban_oci::layer::{apply, ApplyOptions, ApplyReport, Owners, WhiteoutMode};
use vauban_oci::Error;

/// Panics unless unprivileged; returns our (uid, gid).
fn unprivileged() -> (u64, u64) {
    assert!(
        !rustix::process::geteuid().is_root(),
        "rootless tests must run as an unprivileged user: use cargo xtask test"
    );
    (
        rustix::process::geteuid().as_raw().into(),
        rustix::process::getegid().as_raw().into(),
    )
}

/// Applies `layers` in order onto a fresh `root` in a temp dir.
fn apply_all(
    layers: &[Vec<E>],
    opts: &ApplyOptions,
) -> (tempfile::TempDir, vauban_oci::Result<Vec<ApplyReport>>) {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let mut reports = Vec::new();
    for layer in layers {
        match apply(&tar_of(layer)[..], &root, opts) {
            Ok(r) => reports.push(r),
            Err(e) => return (tmp, Err(e)),
        }
    }
    (tmp, Ok(reports))
}

const BEST_EFFORT: ApplyOptions = ApplyOptions {
    whiteouts: WhiteoutMode::Apply,
    owners: Owners::BestEffort,
    lowers: vauban_oci::layer::LowerDirs::none(),
};

#[test]
fn hostile_table_holds_unprivileged() {
    unprivileged();
    let failures = run_cases(Owners::BestEffort);
    assert!(
        failures.is_empty(),
        "{} cases failed unprivileged:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn best_effort_skips_devices_and_owners_and_keeps_the_rest() {
    let me = unprivileged();
    let t = 1_500_000_000;
    let layer = vec![
        dir("d").mode(0o750).mtime(t),
        file("d/root-owned", "r").mode(0o640).mtime(t + 1),
        file("d/other-owned", "o")
            .mode(0o4755)
            .owner(2001, 2001)
            .mtime(t + 2),
        file("d/mine", "m")
            .mode(0o600)
            .owner(me.0, me.1)
            .mtime(t + 3),
        sym("d/link", "root-owned").mtime(t + 4),
        hard("d/hard", "d/root-owned"),
        fifo("d/pipe").mode(0o620).owner(2001, 2001).mtime(t + 5),
        dir("dev").mode(0o755).mtime(t + 6),
        chardev("dev/null", 1, 3).mode(0o666),
        chardev("dev/console", 5, 1).mode(0o600),
        blockdev("dev/sda", 8, 0).mode(0o660).owner(0, 6),
        file("dev/after-devices", "a").mode(0o644).mtime(t + 7),
        dir("sticky").mode(0o1777).mtime(t + 8),
    ];
    let chowned = layer
        .iter()
        .filter(|e| {
            !matches!(
                e.ty,
                tar::EntryType::Link | tar::EntryType::Char | tar::EntryType::Block
            )
        })
        .filter(|e| (e.uid, e.gid) != me)
        .count() as u64;
    let (tmp, reports) = apply_all(std::slice::from_ref(&layer), &BEST_EFFORT);
    let report = reports
        .unwrap_or_else(|e| panic!("best-effort apply failed: {e}"))
        .remove(0);
    assert_eq!(report.entries, layer.len() as u64, "{report:?}");
    assert_eq!(report.skipped_devices, 3, "{report:?}");
    assert_eq!(report.skipped_owners, chowned, "{report:?}");
    assert_eq!(report.whiteouts, 0, "{report:?}");

    let root = tmp.path().join("root");
    let snap = snapshot_with(
        &root,
        SnapOpts {
            dir_mtimes: true,
            root: false,
        },
    );
    let node = |p: &str| {
        snap.nodes
            .get(Path::new(p))
            .unwrap_or_else(|| panic!("{p} missing; tree: {:?}", snap.nodes.keys()))
    };
    for dev in ["dev/null", "dev/console", "dev/sda"] {
        assert!(
            !snap.nodes.contains_key(Path::new(dev)),
            "{dev} was created"
        );
    }
    // (path, kind, mode, mtime)
    let expected = [
        ("d", "dir", 0o750, t),
        ("d/root-owned", "file", 0o640, t + 1),
        ("d/other-owned", "file", 0o4755, t + 2),
        ("d/mine", "file", 0o600, t + 3),
        ("d/link", "symlink", 0o777, t + 4),
        ("d/hard", "file", 0o640, t + 1),
        ("d/pipe", "fifo", 0o620, t + 5),
        ("dev", "dir", 0o755, t + 6),
        ("dev/after-devices", "file", 0o644, t + 7),
        ("sticky", "dir", 0o1777, t + 8),
    ];
    assert_eq!(
        snap.nodes.len(),
        expected.len(),
        "tree: {:?}",
        snap.nodes.keys()
    );
    for (p, kind, mode, mtime) in expected {
        let n = node(p);
        assert_eq!(n.kind, kind, "{p}");
        assert_eq!(n.mode, mode, "{p}: mode {:o}", n.mode);
        assert_eq!(n.mtime, mtime as i64, "{p}: mtime");
        assert_eq!((n.uid as u64, n.gid as u64), me, "{p}: owned by us");
    }
    assert_eq!(read(root.join("d/root-owned")), "r");
    assert_eq!(read(root.join("d/other-owned")), "o");
    assert_eq!(read(root.join("d/mine")), "m");
    assert_eq!(read(root.join("dev/after-devices")), "a");
    assert_eq!(node("d/link").link.as_deref(), Some(&b"root-owned"[..]));
    assert_eq!(
        snap.link_groups.iter().collect::<Vec<_>>(),
        [&vec![
            Path::new("d/hard").to_path_buf(),
            Path::new("d/root-owned").to_path_buf()
        ]]
    );
}

#[test]
fn preserve_refuses_a_chown_to_another_id_naming_the_entry() {
    let me = unprivileged();
    let opts = ApplyOptions {
        whiteouts: WhiteoutMode::Apply,
        owners: Owners::Preserve,
        lowers: vauban_oci::layer::LowerDirs::none(),
    };
    // Our own ids are kept without complaint.
    let mine = vec![
        dir("d").owner(me.0, me.1),
        file("d/mine", "m").owner(me.0, me.1),
    ];
    let (_tmp, r) = apply_all(std::slice::from_ref(&mine), &opts);
    let r = r.unwrap_or_else(|e| panic!("apply of our own files failed: {e}"));
    assert_eq!(r[0].skipped_owners, 0);
    for (name, owner) in [
        ("theirs", (2001, 2001)),
        ("roots", (0, 0)),
        ("group-only", (me.0, 0)),
    ] {
        let mut layer = mine.clone();
        layer.push(file(&format!("d/{name}"), "x").owner(owner.0, owner.1));
        let (_tmp, r) = apply_all(&[layer], &opts);
        match r {
            Err(e @ Error::Io { .. }) => {
                let msg = e.to_string();
                assert!(
                    msg.contains("chown") && msg.contains(&format!("d/{name}")),
                    "{name}: the error does not name the chown of the entry: {msg}"
                );
            }
            other => panic!("{name} owned by {owner:?}: expected a chown error, got {other:?}"),
        }
    }
}

#[test]
fn overlay_whiteouts_are_made_unprivileged() {
    unprivileged();
    let opts = ApplyOptions {
        whiteouts: WhiteoutMode::Overlay,
        owners: Owners::BestEffort,
        lowers: vauban_oci::layer::LowerDirs::none(),
    };
    let layer = vec![
        dir("d"),
        file("d/keep", "k"),
        wh("d/old"),
        wh("gone"),
        dir("o"),
        file("o/.wh..wh..opq", ""),
        file("o/new", "n"),
    ];
    let (tmp, r) = apply_all(&[layer], &opts);
    let r = r
        .unwrap_or_else(|e| panic!("overlay-mode apply failed: {e}"))
        .remove(0);
    assert_eq!(r.whiteouts, 3, "{r:?}");
    assert_eq!(r.skipped_devices, 0, "{r:?}");
    let root = tmp.path().join("root");
    for p in ["gone", "d/old"] {
        let md = std::fs::symlink_metadata(root.join(p))
            .unwrap_or_else(|e| panic!("whiteout {p} missing: {e}"));
        assert!(md.file_type().is_char_device(), "{p} is not a char device");
        assert_eq!(md.rdev(), 0, "{p} is not a 0/0 whiteout device");
    }
    assert!(!root.join(".wh.gone").exists() && !root.join("d/.wh.old").exists());
    assert_eq!(read(root.join("d/keep")), "k");
    assert_eq!(read(root.join("o/new")), "n");
    assert!(!root.join("o/.wh..wh..opq").exists());
    assert_eq!(
        xattrs(&root.join("o"))
            .get(&b"user.overlay.opaque"[..])
            .map(Vec::as_slice),
        Some(&b"y"[..]),
        "opaque dir without user.overlay.opaque=y"
    );
}

#[test]
fn read_only_dirs_still_take_their_children_unprivileged() {
    // Some images (Fedora's /usr/bin, /usr/lib) ship 0555 directories with
    // content; as root DAC is bypassed, unprivileged it is not.
    unprivileged();
    let layers = vec![
        vec![
            dir("ro").mode(0o555),
            file("ro/f", "x"),
            dir("ro/sub").mode(0o555),
        ],
        vec![file("ro/g", "y"), file("ro/sub/h", "z"), wh("ro/f")],
    ];
    let (tmp, r) = apply_all(&layers, &BEST_EFFORT);
    let root = tmp.path().join("root");
    let modes: Vec<_> = ["ro", "ro/sub"]
        .iter()
        .map(|d| std::fs::metadata(root.join(d)).map(|m| m.mode() & 0o7777))
        .collect();
    // Whatever happened, let the temp dir go.
    make_writable(&root);
    r.unwrap_or_else(|e| panic!("layers with read-only dirs failed unprivileged: {e}"));
    assert_eq!(read(root.join("ro/g")), "y");
    assert_eq!(read(root.join("ro/sub/h")), "z");
    assert!(!root.join("ro/f").exists());
    for (d, mode) in ["ro", "ro/sub"].iter().zip(modes) {
        let mode = mode.unwrap_or_else(|e| panic!("{d}: {e}"));
        assert_eq!(mode, 0o555, "{d}: mode {mode:o}");
    }
}

/// Every way an unprivileged apply writes into a read-only directory: a
/// file replaced in it, a new directory made in it, a child reached through a
/// link to it, a dir entry over a lower directory we may not read, a whiteout
/// of a read-only tree, an opaque marker in a read-only directory, a
/// read-only root. Modes come out exact, and the mtimes of the directories
/// the second layer did not touch are kept.
#[test]
fn read_only_dirs_are_written_through_and_their_modes_put_back() {
    unprivileged();
    let t = 1_600_000_000;
    let layers = vec![
        vec![
            dir(".").mode(0o555).mtime(t),
            dir("ro").mode(0o555).mtime(t),
            file("ro/f", "old"),
            file("ro/old", "o"),
            dir("ro/sub").mode(0o555).mtime(t),
            dir("ro/sub/inner").mode(0o500).mtime(t),
            file("ro/sub/inner/z", "z"),
            dir("noread").mode(0o311).mtime(t),
            file("noread/n", "n"),
            dir("gone").mode(0o555),
            dir("gone/sub").mode(0o500),
            file("gone/sub/f", "f"),
            dir("opq").mode(0o555).mtime(t),
            file("opq/old", "o"),
            sym("alias", "/ro/sub"),
        ],
        vec![
            file("ro/f", "new"),
            file("ro/newdir/x", "nx"),
            wh("ro/old"),
            file("alias/via", "v"),
            dir("noread").mode(0o711).mtime(t + 1),
            file("noread/m", "m"),
            wh("gone"),
            file("opq/.wh..wh..opq", ""),
            file("opq/new", "n"),
            file("top", "t"),
        ],
    ];
    let (tmp, r) = apply_all(&layers, &BEST_EFFORT);
    let root = tmp.path().join("root");
    let snap = snapshot_with(
        &root,
        SnapOpts {
            dir_mtimes: true,
            root: true,
        },
    );
    make_writable(&root);
    r.unwrap_or_else(|e| panic!("layers with read-only dirs failed unprivileged: {e}"));
    for (p, content) in [
        ("ro/f", "new"),
        ("ro/newdir/x", "nx"),
        ("ro/sub/via", "v"),
        ("ro/sub/inner/z", "z"),
        ("noread/n", "n"),
        ("noread/m", "m"),
        ("opq/new", "n"),
        ("top", "t"),
    ] {
        assert_eq!(read(root.join(p)), content, "{p}");
    }
    for p in ["ro/old", "gone", "opq/old", "opq/.wh..wh..opq"] {
        assert!(!snap.nodes.contains_key(Path::new(p)), "{p} still there");
    }
    let node = |p: &str| {
        snap.nodes
            .get(Path::new(p))
            .unwrap_or_else(|| panic!("{p} missing; tree: {:?}", snap.nodes.keys()))
    };
    // (dir, mode, mtime when the second layer left it alone)
    for (p, mode, mtime) in [
        ("", 0o555, None),
        ("ro", 0o555, None),
        ("ro/newdir", 0o755, None),
        ("ro/sub", 0o555, None),
        ("ro/sub/inner", 0o500, Some(t)),
        ("noread", 0o711, Some(t + 1)),
        ("opq", 0o555, None),
    ] {
        let n = node(p);
        assert_eq!(n.mode, mode, "{p:?}: mode {:o}", n.mode);
        if let Some(mtime) = mtime {
            assert_eq!(n.mtime, mtime as i64, "{p:?}: mtime");
        }
    }
    assert_eq!(node("alias").link.as_deref(), Some(&b"/ro/sub"[..]));
}

/// The same in overlay form (a single layer's directory): whiteout devices
/// and the opaque xattr are made in read-only directories, which keep their
/// modes.
#[test]
fn read_only_dirs_take_overlay_whiteouts_unprivileged() {
    unprivileged();
    let opts = ApplyOptions {
        whiteouts: WhiteoutMode::Overlay,
        owners: Owners::BestEffort,
        lowers: vauban_oci::layer::LowerDirs::none(),
    };
    let layer = vec![
        dir("ro").mode(0o555),
        file("ro/keep", "k"),
        wh("ro/old"),
        dir("o").mode(0o555),
        file("o/.wh..wh..opq", ""),
        file("o/new", "n"),
        wh("implicit/gone"),
    ];
    let (tmp, r) = apply_all(&[layer], &opts);
    let root = tmp.path().join("root");
    let modes: Vec<_> = ["ro", "o", "implicit"]
        .iter()
        .map(|d| std::fs::metadata(root.join(d)).map(|m| m.mode() & 0o7777))
        .collect();
    let opaque = xattrs(&root.join("o"));
    make_writable(&root);
    let r = r
        .unwrap_or_else(|e| panic!("overlay-mode apply with read-only dirs failed: {e}"))
        .remove(0);
    assert_eq!(r.whiteouts, 3, "{r:?}");
    for p in ["ro/old", "implicit/gone"] {
        let md = std::fs::symlink_metadata(root.join(p))
            .unwrap_or_else(|e| panic!("whiteout {p} missing: {e}"));
        assert!(md.file_type().is_char_device() && md.rdev() == 0, "{p}");
    }
    assert_eq!(read(root.join("ro/keep")), "k");
    assert_eq!(read(root.join("o/new")), "n");
    assert_eq!(
        opaque.get(&b"user.overlay.opaque"[..]).map(Vec::as_slice),
        Some(&b"y"[..]),
        "read-only opaque dir without user.overlay.opaque=y"
    );
    for (d, (mode, want)) in ["ro", "o", "implicit"]
        .iter()
        .zip(modes.into_iter().zip([0o555, 0o555, 0o755]))
    {
        let mode = mode.unwrap_or_else(|e| panic!("{d}: {e}"));
        assert_eq!(mode, want, "{d}: mode {mode:o}");
    }
}

/// Adds u+rwx to every directory under `root` (not following links), so that
/// a temp dir holding read-only directories can be removed.
fn make_writable(root: &Path) {
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(md) = std::fs::symlink_metadata(&d) else {
            continue;
        };
        if !md.is_dir() {
            continue;
        }
        let mode = rustix::fs::Mode::from_raw_mode((md.mode() & 0o7777) | 0o700);
        let _ = rustix::fs::chmod(&d, mode);
        if let Ok(entries) = std::fs::read_dir(&d) {
            stack.extend(entries.flatten().map(|e| e.path()));
        }
    }
}
