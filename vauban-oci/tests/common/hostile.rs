//! The hostile-layer table and its runner, shared by `layer_hostile` (as
//! root, owners preserved) and `rootless_layer` (unprivileged, owners best
//! effort) so that both run exactly the same cases. Every case asserts that
//! nothing outside the target changed (a sentinel directory beside the target,
//! and the host's `/etc/passwd`), then either the expected in-root result or a
//! clean `UnsafeEntry` error naming the entry.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use vauban_oci::layer::{apply, ApplyOptions, Owners, WhiteoutMode};
use vauban_oci::Error;

use super::*;

/// What a case expects.
pub enum Expect {
    /// Applied; the function checks the result inside the root (given root, $OUT).
    Ok(fn(&Path, &str)),
    /// Refused with `UnsafeEntry` naming this entry.
    Refused(&'static str),
    /// Refused as a malformed stream (`Error::Tar`).
    Malformed,
}
use Expect::*;

/// The content of a file, or a panic naming it.
pub fn read(p: impl AsRef<Path>) -> String {
    std::fs::read_to_string(p.as_ref())
        .unwrap_or_else(|e| panic!("read {}: {e}", p.as_ref().display()))
}
/// Where the absolute path `out` lands inside `root`.
pub fn in_root(root: &Path, out: &str) -> std::path::PathBuf {
    root.join(out.trim_start_matches('/'))
}
/// Whether `p` is a symlink (not followed).
pub fn is_link(p: &Path) -> bool {
    std::fs::symlink_metadata(p)
        .map(|m| m.file_type().is_symlink())
        .unwrap_or(false)
}

/// The table: (name, layers applied in order, expectation). A new case is one line.
#[rustfmt::skip]
pub fn cases() -> Vec<(&'static str, Vec<Vec<E>>, Expect)> {
    vec![
        ("dotdot name", vec![vec![file("../escape", "x")]], Refused("../escape")),
        ("nested dotdot", vec![vec![dir("a"), file("a/../../escape", "x")]], Refused("a/../../escape")),
        ("dotdot smuggled in PAX path", vec![vec![file("../escape", "x").pax()]], Refused("../escape")),
        ("absolute name is contained", vec![vec![file("/abs/file", "x")]], Ok(|r, _| assert_eq!(read(r.join("abs/file")), "x"))),
        ("absolute dir link then child", vec![vec![dir("usr"), dir("usr/lib"), sym("lib", "/usr/lib")], vec![file("lib/x", "x")]], Ok(|r, _| { assert_eq!(read(r.join("usr/lib/x")), "x"); assert!(is_link(&r.join("lib"))) })),
        ("relative escape link then child", vec![vec![sym("a", "../../.."), file("a/x", "x")]], Ok(|r, _| assert_eq!(read(r.join("x")), "x"))),
        ("link to outside then child (dangling in root)", vec![vec![sym("out", "$OUT"), file("out/passwd", "pwned")]], Refused("out/passwd")),
        ("link to outside then child (exists in root)", vec![vec![dir("$OUT"), sym("out", "$OUT"), file("out/passwd", "pwned")]], Ok(|r, o| assert_eq!(read(in_root(r, o).join("passwd")), "pwned"))),
        ("link to outside then dir", vec![vec![sym("etc", "$OUT"), dir("etc/newdir")]], Refused("etc/newdir")),
        ("dir over a link to outside", vec![vec![sym("d", "$OUT")], vec![dir("d").mode(0o700)]], Ok(|r, _| assert!(r.join("d").is_dir() && !is_link(&r.join("d"))))),
        ("hard link to /etc/passwd", vec![vec![hard("x", "/etc/passwd")]], Refused("x")),
        ("hard link outside relative", vec![vec![hard("x", "../sentinel/passwd")]], Refused("x")),
        ("hard link through link to outside", vec![vec![sym("l", "$OUT"), hard("x", "l/passwd")]], Refused("x")),
        ("hard link through absolute link in root", vec![vec![dir("etc"), file("etc/passwd", "mine"), sym("l", "/etc"), hard("x", "l/passwd")]], Ok(|r, _| { assert_eq!(read(r.join("x")), "mine"); assert_eq!(std::fs::metadata(r.join("x")).unwrap().ino(), std::fs::metadata(r.join("etc/passwd")).unwrap().ino()) })),
        ("hard link to a directory", vec![vec![dir("d"), hard("x", "d")]], Refused("x")),
        ("hard link to a symlink links the symlink", vec![vec![sym("s", "$OUT/passwd"), hard("h", "s")]], Ok(|r, _| assert!(is_link(&r.join("h"))))),
        ("whiteout through link to /", vec![vec![file("victim", "v"), sym("link", "/")], vec![wh("link/victim")]], Ok(|r, _| assert!(!r.join("victim").exists()))),
        ("whiteout through link to outside", vec![vec![sym("link", "$OUT")], vec![wh("link/passwd"), wh("link/dir")]], Ok(|r, _| assert!(is_link(&r.join("link"))))),
        ("opaque through link to outside", vec![vec![sym("link", "$OUT")], vec![file("link/.wh..wh..opq", "")]], Ok(|r, _| assert!(is_link(&r.join("link"))))),
        ("whiteout .wh.", vec![vec![file(".wh.", "")]], Refused(".wh.")),
        ("whiteout .wh..", vec![vec![dir("a"), file("a/.wh..", "")]], Refused("a/.wh..")),
        ("whiteout .wh...", vec![vec![file(".wh...", "")]], Refused(".wh...")),
        ("dot entry that is a symlink", vec![vec![sym(".", "/")]], Refused(".")),
        ("dot entry that is a file", vec![vec![file("./", "x")]], Refused("./")),
        ("dot entry that is a file, no slash", vec![vec![file(".", "x")]], Refused(".")),
        ("dot entry changes attributes only", vec![vec![dir(".").mode(0o750)]], Ok(|r, _| assert_eq!(std::fs::metadata(r).unwrap().mode() & 0o7777, 0o750))),
        ("file over a link to outside", vec![vec![sym("f", "$OUT/passwd")], vec![file("f", "pwned")]], Ok(|r, _| { assert!(!is_link(&r.join("f"))); assert_eq!(read(r.join("f")), "pwned") })),
        ("file over a link, same layer", vec![vec![sym("f", "$OUT/passwd"), file("f", "pwned")]], Ok(|r, _| assert_eq!(read(r.join("f")), "pwned"))),
        ("file over a hard link", vec![vec![file("a", "orig"), hard("b", "a")], vec![file("b", "new")]], Ok(|r, _| { assert_eq!(read(r.join("a")), "orig"); assert_eq!(read(r.join("b")), "new") })),
        ("chmod/chown of a link to outside", vec![vec![sym("s", "$OUT/passwd").mode(0o600).owner(1234, 1234)]], Ok(|r, _| assert!(is_link(&r.join("s"))))),
        ("link to outside, then same name as dir entry", vec![vec![sym("s", "$OUT/dir"), dir("s").mode(0o777)]], Ok(|r, _| assert!(!is_link(&r.join("s"))))),
        ("crafted user.overlay.opaque is escaped", vec![vec![dir("d").xattr("user.overlay.opaque", b"y")]], Ok(|r, _| { let x = xattrs(&r.join("d")); assert!(!x.contains_key(&b"user.overlay.opaque"[..])); assert_eq!(x.get(&b"user.overlay.overlay.opaque"[..]).map(Vec::as_slice), Some(&b"y"[..])) })),
        ("crafted trusted.overlay.opaque is escaped", vec![vec![dir("d").xattr("trusted.overlay.opaque", b"y")]], Ok(|r, _| assert!(!xattrs(&r.join("d")).contains_key(&b"trusted.overlay.opaque"[..])))),
        ("symlink loop in parent", vec![vec![sym("a", "b"), sym("b", "a"), file("a/x", "x")]], Refused("a/x")),
        ("parent is a file", vec![vec![file("f", "x"), file("f/x", "x")]], Refused("f/x")),
        ("dangling link as parent", vec![vec![sym("d", "/nowhere/deep"), file("d/x", "x")]], Refused("d/x")),
        ("fifo through link to outside", vec![vec![dir("$OUT"), sym("l", "$OUT"), E { ty: tar::EntryType::Fifo, ..file("l/fifo", "") }]], Ok(|r, o| assert!(in_root(r, o).join("fifo").exists()))),
        ("PAX size smuggling", vec![vec![file("f", "abc").pax_rec("size", "1024"), file("g", "x")]], Refused("f")),
        ("GNU sparse in PAX", vec![vec![file("f", "abc").pax_rec("GNU.sparse.map", "0,3")]], Refused("f")),
        ("dotdot in PAX linkpath", vec![vec![hard("x", "a").pax_rec("linkpath", "../sentinel/passwd")]], Refused("x")),
        ("PAX path with absolute name is contained", vec![vec![file("/etc/passwd", "mine").pax()]], Ok(|r, _| assert_eq!(read(r.join("etc/passwd")), "mine"))),
        ("relative link with dotdot is kept, not followed", vec![vec![sym("s", "../../../../etc/passwd")], vec![file("s", "replaced")]], Ok(|r, _| assert_eq!(read(r.join("s")), "replaced"))),
        ("whiteout removes a dir through an absolute link, in root", vec![vec![dir("real"), file("real/f", "f"), sym("l", "/real")], vec![wh("l/f")]], Ok(|r, _| assert!(!r.join("real/f").exists()))),
        ("opaque through a link to / clears the root only", vec![vec![file("f", "x"), sym("l", "/")], vec![file("l/.wh..wh..opq", "")]], Ok(|r, _| assert!(!r.join("f").exists()))),
        ("uid -1 refused", vec![vec![file("f", "x").owner(u32::MAX as u64, 0)]], Refused("f")),
        ("whiteout name as a parent", vec![vec![file(".wh.d/x", "x")]], Refused(".wh.d/x")),
        // Added by the security review (each failed before its fix, or documents a safe path).
        ("opaque marker after children hides lower grandchildren", vec![vec![dir("d"), dir("d/sub"), file("d/sub/old", "o")], vec![dir("d"), dir("d/sub"), file("d/sub/new", "n"), file("d/.wh..wh..opq", "")]], Ok(|r, _| { assert!(!r.join("d/sub/old").exists()); assert_eq!(read(r.join("d/sub/new")), "n") })),
        ("two PAX headers for one entry", vec![vec![pax_hdr(&[("path", "../escape")]), pax_hdr(&[("path", "ok")]), file("f", "x")]], Refused("././@PaxHeader")),
        ("two GNU long names for one entry", vec![vec![gnu_long_name("../escape"), gnu_long_name("ok"), file("f", "x")]], Refused("././@LongLink")),
        ("duplicate path records in one PAX header", vec![vec![file("f", "x").pax_rec("path", "a").pax_rec("path", "b")]], Refused("f")),
        ("GNU long name and PAX path disagree", vec![vec![gnu_long_name("a"), file("f", "x").pax_rec("path", "b")]], Refused("a")),
        ("GNU long name and PAX path agree", vec![vec![gnu_long_name("a"), file("f", "x").pax_rec("path", "a")]], Ok(|r, _| assert_eq!(read(r.join("a")), "x"))),
        ("GNU long name with dotdot", vec![vec![gnu_long_name("../escape"), file("f", "x")]], Refused("../escape")),
        ("global PAX header path is ignored", vec![vec![global_hdr(&[("path", "../escape")]), file("f", "x")]], Ok(|r, _| assert_eq!(read(r.join("f")), "x"))),
        ("PAX header before the end marker", vec![vec![file("f", "x"), pax_hdr(&[("path", "g")])]], Malformed),
        ("opaque keeps implicit parents made by the same layer", vec![vec![dir("d"), file("d/old", "o")], vec![file("d/sub/new", "n"), file("d/.wh..wh..opq", "")]], Ok(|r, _| { assert_eq!(read(r.join("d/sub/new")), "n"); assert!(!r.join("d/old").exists()) })),
        ("whiteout keeps an implicit parent made by the same layer", vec![vec![dir("d")], vec![file("x/y", "n"), wh("x")]], Ok(|r, _| assert_eq!(read(r.join("x/y")), "n"))),
        ("negative PAX uid", vec![vec![file("f", "x").pax_rec("uid", "-1")]], Refused("f")),
        ("huge PAX gid", vec![vec![file("f", "x").pax_rec("gid", "99999999999")]], Refused("f")),
        ("huge PAX size", vec![vec![file("f", "x").pax_rec("size", "99999999999999999")]], Refused("f")),
        ("NUL in PAX path", vec![vec![file("f", "x").pax_rec("path", "a\0b")]], Refused("a")),
        ("NUL in PAX linkpath of a hard link", vec![vec![file("a", "x"), hard("h", "a").pax_rec("linkpath", "a\0/../../x")]], Refused("h")),
        ("newline in a name is just a name", vec![vec![file("a\nb", "x")]], Ok(|r, _| assert_eq!(read(r.join("a\nb")), "x"))),
        ("path longer than PATH_MAX", vec![vec![file(&format!("{}f", "d/".repeat(2100)), "x")]], Refused("d/d/")),
        ("deep tree removed by a whiteout", vec![vec![file(&format!("{}f", "d/".repeat(1500)), "x")], vec![wh("d")]], Ok(|r, _| assert!(!r.join("d").exists()))),
        ("xattr on a link to outside", vec![vec![sym("s", "$OUT/passwd").xattr("user.x", b"v").xattr("trusted.x", b"v")]], Ok(|r, _| assert!(is_link(&r.join("s"))))),
        ("escaped overlay xattr is escaped again", vec![vec![dir("d").xattr("user.overlay.overlay.opaque", b"y")]], Ok(|r, _| { let x = xattrs(&r.join("d")); assert!(!x.contains_key(&b"user.overlay.overlay.opaque"[..])); assert!(x.contains_key(&b"user.overlay.overlay.overlay.opaque"[..])) })),
        ("overlay xattr on the root is escaped", vec![vec![dir(".").xattr("user.overlay.opaque", b"y").xattr("trusted.overlay.redirect", b"/x")]], Ok(|r, _| { let x = xattrs(r); assert!(!x.contains_key(&b"user.overlay.opaque"[..]) && !x.contains_key(&b"trusted.overlay.redirect"[..])) })),
        ("overlay whiteout xattr on a file is escaped", vec![vec![file("f", "").xattr("user.overlay.whiteout", b"y")]], Ok(|r, _| assert!(!xattrs(&r.join("f")).contains_key(&b"user.overlay.whiteout"[..])))),
        ("hard link to a link to outside, then file over it", vec![vec![sym("s", "$OUT/passwd"), hard("h", "s"), file("h", "pwned")]], Ok(|r, _| { assert_eq!(read(r.join("h")), "pwned"); assert!(is_link(&r.join("s"))) })),
        ("hard link to a link to outside, then chmod via a dir entry", vec![vec![sym("s", "$OUT"), hard("h", "s"), dir("h").mode(0o777)]], Ok(|r, _| assert!(r.join("h").is_dir() && is_link(&r.join("s"))))),
        ("setuid file then a link over it", vec![vec![file("s", "x").mode(0o4755)], vec![sym("s", "$OUT/passwd")]], Ok(|r, _| assert!(is_link(&r.join("s"))))),
        ("dir over a file with children", vec![vec![file("d", "x")], vec![dir("d"), file("d/f", "y")]], Ok(|r, _| assert_eq!(read(r.join("d/f")), "y"))),
        ("opaque marker as a directory", vec![vec![dir("d"), file("d/old", "o")], vec![dir("d/.wh..wh..opq")]], Ok(|r, _| assert!(!r.join("d/old").exists() && !r.join("d/.wh..wh..opq").exists()))),
        ("opaque through dangling link, same layer", vec![vec![sym("l", "$OUT"), file("l/.wh..wh..opq", "")]], Ok(|r, _| assert!(is_link(&r.join("l"))))),
        ("whiteout of a parent through a link to outside", vec![vec![sym("l", "$OUT")], vec![wh("l/dir/file")]], Ok(|r, _| assert!(is_link(&r.join("l"))))),
        ("same-layer whiteout keeps the layer's file", vec![vec![file("f", "new"), wh("f")]], Ok(|r, _| assert_eq!(read(r.join("f")), "new"))),
        ("fifo over a link to outside", vec![vec![sym("p", "$OUT/passwd")], vec![E { ty: tar::EntryType::Fifo, ..file("p", "") }]], Ok(|r, _| assert!(!is_link(&r.join("p"))))),
        ("dir then file at the same path keeps the file's mtime", vec![vec![dir("d"), E { mtime: 1_234, ..file("d", "x") }]], Ok(|r, _| assert_eq!(std::fs::symlink_metadata(r.join("d")).unwrap().mtime(), 1_234))),
        // The applier reuses the previous entry's parent directory: a parent replaced in between must be resolved again.
        ("parent replaced by a dangling link between two of its files", vec![vec![dir("a"), file("a/x", "x"), sym("a", "$OUT"), file("a/y", "pwned")]], Refused("a/y")),
        ("parent replaced by a link between two of its files", vec![vec![dir("$OUT"), dir("a"), file("a/x", "x"), sym("a", "$OUT"), file("a/y", "y")]], Ok(|r, o| { assert!(is_link(&r.join("a"))); assert_eq!(read(in_root(r, o).join("y")), "y") })),
        ("parent replaced by a file between two of its files", vec![vec![dir("a"), file("a/x", "x"), file("a", "f"), file("a/y", "y")]], Refused("a/y")),
        ("long name with dotdot", vec![vec![file(&format!("{}/../../x", "a".repeat(120)), "x")]], Refused("aaaa")),
    ]
}

/// Makes `base/sentinel` (what must never change: a file, a dir, a link to
/// `/etc`) and the empty target `base/root`; returns both.
pub fn setup(base: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let sentinel = base.join("sentinel");
    std::fs::create_dir_all(sentinel.join("dir")).unwrap();
    std::fs::write(sentinel.join("passwd"), "secret").unwrap();
    std::fs::write(sentinel.join("dir/file"), "keep").unwrap();
    std::os::unix::fs::symlink("/etc", sentinel.join("etc-link")).unwrap();
    let root = base.join("root");
    std::fs::create_dir(&root).unwrap();
    (sentinel, root)
}

/// Runs every case of [`cases`] in both whiteout modes with `owners`, each in
/// a fresh temp dir. Containment (the sentinel beside the target, nothing new
/// beside it, the host's `/etc/passwd`) is asserted at once, in both modes;
/// the expectations, checked in Apply mode, are returned as one message per
/// failed case.
pub fn run_cases(owners: Owners) -> Vec<String> {
    let host_passwd = std::fs::read("/etc/passwd").unwrap();
    let mut failures = Vec::new();
    // Overlay mode (whiteouts kept as char devices and xattrs) takes other
    // paths through the same entries: containment is checked there too.
    let modes = [WhiteoutMode::Apply, WhiteoutMode::Overlay];
    for (whiteouts, (name, layers, expect)) in modes
        .into_iter()
        .flat_map(|m| cases().into_iter().map(move |c| (m, c)))
    {
        let opts = ApplyOptions {
            whiteouts,
            owners,
            lowers: vauban_oci::layer::LowerDirs::none(),
        };
        let name = format!("{name} ({whiteouts:?})");
        let tmp = tempfile::tempdir().unwrap();
        let (sentinel, root) = setup(tmp.path());
        let out = sentinel.to_str().unwrap().to_string();
        let before = snapshot(&sentinel);
        let base_before = std::fs::read_dir(tmp.path()).unwrap().count();
        let mut result = std::result::Result::Ok(());
        for layer in &layers {
            let entries: Vec<E> = layer.iter().cloned().map(|e| e.subst(&out)).collect();
            if let Err(e) = apply(&tar_of(&entries)[..], &root, &opts) {
                result = Err(e);
                break;
            }
        }
        assert_same(
            &before,
            &snapshot(&sentinel),
            &format!("case {name:?}: sentinel changed"),
        );
        assert_eq!(
            std::fs::read_dir(tmp.path()).unwrap().count(),
            base_before,
            "case {name:?}: something appeared beside the target"
        );
        assert_eq!(
            std::fs::read("/etc/passwd").unwrap(),
            host_passwd,
            "case {name:?}: /etc/passwd changed"
        );
        if whiteouts == WhiteoutMode::Overlay {
            // The expectations below describe Apply mode.
            continue;
        }
        match (expect, result) {
            (Ok(check), std::result::Result::Ok(())) => {
                if let Err(p) = std::panic::catch_unwind(|| check(&root, &out)) {
                    let why = p
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| p.downcast_ref::<String>().cloned())
                        .unwrap_or_default();
                    failures.push(format!("{name}: check failed: {why}"));
                }
            }
            (
                Refused(entry),
                Err(Error::UnsafeEntry {
                    entry: found,
                    reason,
                }),
            ) => {
                if !found.starts_with(entry) {
                    failures.push(format!(
                        "{name}: refused {found:?} ({reason}), expected entry {entry:?}"
                    ));
                }
            }
            (Malformed, Err(Error::Tar { .. })) => {}
            (Ok(_), Err(e)) => failures.push(format!("{name}: expected success, got {e}")),
            (Malformed, r) => failures.push(format!("{name}: expected Error::Tar, got {r:?}")),
            (Refused(entry), r) => {
                failures.push(format!("{name}: expected UnsafeEntry {entry:?}, got {r:?}"))
            }
        }
    }
    failures
}
