//! Whiteouts and opaque directories: applied across several layers (Apply
//! mode) or kept in overlay form (Overlay mode, checked against a real overlay
//! mount), and packed from a real overlayfs upper dir.

mod common;

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;
use std::process::Command;

use common::*;
use vauban_oci::layer::{
    apply, pack, ApplyOptions, Compression, LayerSource, Owners, PackOptions, WhiteoutMode,
};

fn lower() -> Vec<E> {
    vec![
        dir("a"),
        file("a/x", "x"),
        file("a/y", "y"),
        dir("b"),
        file("b/z", "z"),
        dir("b/sub"),
        file("b/sub/deep", "d"),
        file("c", "c"),
        dir("e"),
        file("e/f", "f"),
        file("keep", "k"),
    ]
}

fn upper() -> Vec<E> {
    vec![
        wh("a/x"),
        // Opaque after a same-layer entry: that entry stays.
        dir("b"),
        file("b/new", "n"),
        file("b/.wh..wh..opq", ""),
        wh("c"),
        // Same-layer whiteout of this layer's own entry: the entry stays.
        file("d", "mine"),
        wh("d"),
        wh("e"),
        wh("missing/deeper"),
    ]
}

/// Owners preserved as root, best effort otherwise (this part runs as anyone).
fn opts(whiteouts: WhiteoutMode) -> ApplyOptions {
    let owners = if is_root() {
        Owners::Preserve
    } else {
        Owners::BestEffort
    };
    ApplyOptions {
        whiteouts,
        owners,
        lowers: vauban_oci::layer::LowerDirs::none(),
    }
}

fn layer_dir(base: &Path, name: &str, layers: &[Vec<E>], mode: WhiteoutMode) -> std::path::PathBuf {
    let d = base.join(name);
    fs::create_dir(&d).unwrap();
    for l in layers {
        apply(&tar_of(l)[..], &d, &opts(mode)).unwrap();
    }
    d
}

fn names(root: &Path) -> Vec<String> {
    let mut v: Vec<String> = snapshot(root)
        .nodes
        .keys()
        .map(|p| p.display().to_string())
        .collect();
    v.sort();
    v
}

fn is_whiteout(p: &Path) -> bool {
    fs::symlink_metadata(p)
        .map(|m| m.file_type().is_char_device() && m.rdev() == 0)
        .unwrap_or(false)
}

#[test]
fn whiteouts_and_opaque_dirs_across_layers() {
    let tmp = tempfile::tempdir().unwrap();
    let merged = layer_dir(
        tmp.path(),
        "apply",
        &[lower(), upper()],
        WhiteoutMode::Apply,
    );
    assert_eq!(names(&merged), ["", "a", "a/y", "b", "b/new", "d", "keep"]);
    assert_eq!(fs::read_to_string(merged.join("d")).unwrap(), "mine");
    // A third layer brings `c` back and hides `keep`.
    apply(
        &tar_of(&[file("c", "again"), wh("keep")])[..],
        &merged,
        &opts(WhiteoutMode::Apply),
    )
    .unwrap();
    assert_eq!(names(&merged), ["", "a", "a/y", "b", "b/new", "c", "d"]);

    // Overlay form of the upper layer alone.
    let ov = layer_dir(tmp.path(), "overlay", &[upper()], WhiteoutMode::Overlay);
    for w in ["a/x", "c", "e", "missing/deeper"] {
        assert!(is_whiteout(&ov.join(w)), "{w} is not a whiteout device");
    }
    assert!(
        !is_whiteout(&ov.join("d")),
        "same-layer whiteout hid the layer's own file"
    );
    assert_eq!(
        xattrs(&ov.join("b"))
            .get(&b"user.overlay.opaque"[..])
            .map(Vec::as_slice),
        Some(&b"y"[..])
    );
    assert!(!ov.join("b/.wh..wh..opq").exists());
}

#[test]
fn overlay_mode_layers_mount_like_applied_ones() {
    require_root("mounts an overlay in a private mount namespace");
    let tmp = tempfile::tempdir().unwrap();
    let l1 = layer_dir(tmp.path(), "l1", &[lower()], WhiteoutMode::Overlay);
    // A whiteout under a directory the layer does not have would make that
    // directory in overlay form: well-formed layers carry their parents.
    let up: Vec<E> = upper()
        .into_iter()
        .filter(|e| !e.name.starts_with(b"missing"))
        .collect();
    let l2 = layer_dir(
        tmp.path(),
        "l2",
        std::slice::from_ref(&up),
        WhiteoutMode::Overlay,
    );
    let applied = layer_dir(tmp.path(), "applied", &[lower(), up], WhiteoutMode::Apply);
    let (mnt, copy) = (tmp.path().join("mnt"), tmp.path().join("copy"));
    fs::create_dir(&mnt).unwrap();
    fs::create_dir(&copy).unwrap();
    let script = format!(
        "mount -t overlay overlay -o ro,userxattr,lowerdir={}:{} {} && cp -a {}/. {}",
        l2.display(),
        l1.display(),
        mnt.display(),
        mnt.display(),
        copy.display()
    );
    let st = Command::new("unshare")
        .args(["-m", "sh", "-c", &script])
        .status()
        .unwrap();
    assert!(st.success(), "overlay mount failed: {script}");
    let opts = SnapOpts {
        dir_mtimes: false,
        root: false,
    };
    assert_same(
        &snapshot_with(&applied, opts),
        &snapshot_with(&copy, opts),
        "overlay view vs applied layers",
    );
}

#[test]
fn real_upper_dir_packs_to_oci_whiteouts() {
    require_root("mounts an overlay in a private mount namespace");
    let tmp = tempfile::tempdir().unwrap();
    let lower_dir = layer_dir(tmp.path(), "lower", &[lower()], WhiteoutMode::Apply);
    let [up, work, mnt, copy] = ["upper", "work", "mnt", "copy"].map(|n| {
        let d = tmp.path().join(n);
        fs::create_dir(&d).unwrap();
        d
    });
    let script = format!(
        "mount -t overlay overlay -o lowerdir={},upperdir={},workdir={} {m} && cd {m} && \
         rm a/x c keep && rm -r b && mkdir b && echo n > b/new && echo z > newfile && \
         mkdir e/g && chmod 4755 newfile && cd / && cp -a {m}/. {}",
        lower_dir.display(),
        up.display(),
        work.display(),
        copy.display(),
        m = mnt.display()
    );
    let st = Command::new("unshare")
        .args(["-m", "sh", "-c", &script])
        .status()
        .unwrap();
    assert!(st.success(), "overlay session failed: {script}");

    let (blob, layer) = {
        let mut out = Vec::new();
        let opts = PackOptions {
            compression: Compression::None,
            ..Default::default()
        };
        let l = pack(LayerSource::Upper(&up), &opts, &mut out).unwrap();
        (out, l)
    };
    let listed = list_tar(&blob);
    let names: Vec<&str> = listed.iter().map(|e| e.0.as_str()).collect();
    assert_eq!(
        names,
        [
            ".wh.c",
            ".wh.keep",
            "a/",
            "a/.wh.x",
            "b/",
            "b/.wh..wh..opq",
            "b/new",
            "e/",
            "e/g/",
            "newfile"
        ]
    );
    for (name, ty, _, xs) in &listed {
        assert_ne!(*ty, tar::EntryType::Link, "{name} packed as a hard link");
        assert!(
            xs.iter().all(|x| !x.contains(".overlay.")),
            "{name} carries overlay xattrs {xs:?}"
        );
    }
    assert_eq!(layer.entries, listed.len() as u64);

    // Lower + packed upper == what the overlay showed.
    apply(&blob[..], &lower_dir, &ApplyOptions::default()).unwrap();
    let opts = SnapOpts {
        dir_mtimes: false,
        root: false,
    };
    assert_same(
        &snapshot_with(&copy, opts),
        &snapshot_with(&lower_dir, opts),
        "lower + upper layer vs overlay view",
    );
}

#[test]
fn crafted_upper_dir_whiteouts_opaque_and_capabilities() {
    require_root("makes whiteout devices and trusted.* xattrs");
    let tmp = tempfile::tempdir().unwrap();
    let up = tmp.path();
    fs::create_dir_all(up.join("d/sub")).unwrap();
    fs::write(up.join("d/sub/f"), "f").unwrap();
    set_xattr(&up.join("d"), "trusted.overlay.opaque", b"y");
    set_xattr(&up.join("d/sub"), "user.overlay.opaque", b"y");
    set_xattr(&up.join("d/sub"), "user.overlay.origin", b"junk");
    set_xattr(&up.join("d/sub/f"), "user.keep", b"k");
    for n in ["w1", "w2", "d/w3"] {
        let mode = rustix::fs::Mode::empty();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            up.join(n),
            rustix::fs::FileType::CharacterDevice,
            mode,
            0,
        )
        .unwrap();
    }
    // Whiteouts sharing one inode, as overlayfs makes them.
    fs::hard_link(up.join("w1"), up.join("w4")).unwrap();
    // Nested-overlay whiteout form: an empty file with overlay.whiteout.
    fs::write(up.join("w5"), "").unwrap();
    set_xattr(&up.join("w5"), "user.overlay.whiteout", b"");
    // Not opaque: value other than y.
    fs::create_dir(up.join("notopaque")).unwrap();
    set_xattr(&up.join("notopaque"), "user.overlay.opaque", b"x");
    // security.capability v3 with a root id, as setcap writes it in a user namespace.
    fs::write(up.join("ping"), "ping").unwrap();
    let mut v3 = (0x0300_0000u32 | 1).to_le_bytes().to_vec();
    v3.extend_from_slice(&(1u32 << 13).to_le_bytes());
    v3.extend_from_slice(&[0; 12]);
    v3.extend_from_slice(&100_000u32.to_le_bytes());
    let cap_ok = rustix::fs::lsetxattr(
        up.join("ping"),
        "security.capability",
        &v3,
        rustix::fs::XattrFlags::empty(),
    )
    .is_ok();
    assert!(cap_ok, "cannot set a v3 capability here");

    let mut out = Vec::new();
    let opts = PackOptions {
        compression: Compression::None,
        ..Default::default()
    };
    pack(LayerSource::Upper(up), &opts, &mut out).unwrap();
    let listed = list_tar(&out);
    let names: Vec<&str> = listed.iter().map(|e| e.0.as_str()).collect();
    assert_eq!(
        names,
        [
            ".wh.w1",
            ".wh.w2",
            ".wh.w4",
            ".wh.w5",
            "d/",
            "d/.wh..wh..opq",
            "d/.wh.w3",
            "d/sub/",
            "d/sub/.wh..wh..opq",
            "d/sub/f",
            "notopaque/",
            "ping"
        ]
    );
    for (name, ty, _, xs) in &listed {
        assert_ne!(*ty, tar::EntryType::Link, "{name} packed as a hard link");
        assert!(
            xs.iter().all(|x| !x.contains(".overlay.")),
            "{name}: {xs:?}"
        );
    }
    // The capability is packed as v2 (20 bytes, revision 2).
    let mut a = tar::Archive::new(&out[..]);
    for en in a.entries().unwrap() {
        let mut en = en.unwrap();
        if &*en.path_bytes() == b"ping" {
            let exts = en.pax_extensions().unwrap().unwrap();
            let cap: Vec<u8> = exts
                .flatten()
                .find(|x| x.key() == Ok("SCHILY.xattr.security.capability"))
                .unwrap()
                .value_bytes()
                .to_vec();
            assert_eq!(cap.len(), 20, "{cap:?}");
            assert_eq!(cap[3], 2, "revision 2 expected: {cap:?}");
        }
    }
}
