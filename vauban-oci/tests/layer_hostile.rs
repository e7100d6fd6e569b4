//! Hostile layers, table-driven: each case is one line. Every case asserts that
//! nothing outside the target changed (a sentinel directory beside the target,
//! and the host's `/etc/passwd`), then either the expected in-root result or a
//! clean `UnsafeEntry` error naming the entry.

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use common::*;
use vauban_oci::layer::{apply, ApplyOptions, Owners};
use vauban_oci::Error;

/// What a case expects.
enum Expect {
    /// Applied; the function checks the result inside the root (given root, $OUT).
    Ok(fn(&Path, &str)),
    /// Refused with `UnsafeEntry` naming this entry.
    Refused(&'static str),
}
use Expect::*;

fn read(p: impl AsRef<Path>) -> String {
    std::fs::read_to_string(p.as_ref())
        .unwrap_or_else(|e| panic!("read {}: {e}", p.as_ref().display()))
}
fn in_root(root: &Path, out: &str) -> std::path::PathBuf {
    root.join(out.trim_start_matches('/'))
}
fn is_link(p: &Path) -> bool {
    std::fs::symlink_metadata(p)
        .map(|m| m.file_type().is_symlink())
        .unwrap_or(false)
}

#[rustfmt::skip]
fn cases() -> Vec<(&'static str, Vec<Vec<E>>, Expect)> {
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
        ("long name with dotdot", vec![vec![file(&format!("{}/../../x", "a".repeat(120)), "x")]], Refused("aaaa")),
    ]
}

fn setup(base: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let sentinel = base.join("sentinel");
    std::fs::create_dir_all(sentinel.join("dir")).unwrap();
    std::fs::write(sentinel.join("passwd"), "secret").unwrap();
    std::fs::write(sentinel.join("dir/file"), "keep").unwrap();
    std::os::unix::fs::symlink("/etc", sentinel.join("etc-link")).unwrap();
    let root = base.join("root");
    std::fs::create_dir(&root).unwrap();
    (sentinel, root)
}

#[test]
fn hostile_layers_stay_inside_the_target() {
    let host_passwd = std::fs::read("/etc/passwd").unwrap();
    let opts = ApplyOptions {
        owners: if is_root() {
            Owners::Preserve
        } else {
            Owners::BestEffort
        },
        ..Default::default()
    };
    let mut failures = Vec::new();
    for (name, layers, expect) in cases() {
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
        match (expect, result) {
            (Ok(check), std::result::Result::Ok(())) => check(&root, &out),
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
            (Ok(_), Err(e)) => failures.push(format!("{name}: expected success, got {e}")),
            (Refused(entry), r) => {
                failures.push(format!("{name}: expected UnsafeEntry {entry:?}, got {r:?}"))
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
