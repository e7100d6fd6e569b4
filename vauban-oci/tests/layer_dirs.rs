//! What names a layer dir and what is known of it: chain IDs as the image-spec
//! computes them, the record of a layer dir's tree (it finds a planted file, a
//! changed binary, a changed mode or xattr, not a changed mtime), and host-side
//! reads of an image's file from its layer dirs (beneath them, never through a
//! link, never a FIFO, bounded).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sha2::{Digest as _, Sha256};
use vauban_oci::image;
use vauban_oci::layer::merged;
use vauban_oci::layer::tree::{self, TreeCheck};
use vauban_oci::store::Store;
use vauban_oci::{ChainId, Digest, Reference};

mod common;

use common::{fake_layer, history, mkfifo, set_xattr};

fn sha(s: &[u8]) -> Digest {
    Digest::of_bytes(s)
}

#[test]
fn chain_ids_follow_the_image_spec() {
    let diff_ids = [sha(b"a"), sha(b"b"), sha(b"c")];
    let chains = ChainId::of_stack(&diff_ids);
    // By hand: ChainID(L0) = DiffID(L0); ChainID(Ln) = sha256(ChainID(Ln-1) + " " + DiffID(Ln)).
    let by_hand = |below: &str, diff_id: &Digest| {
        let text = format!("{below} {diff_id}");
        format!("sha256:{}", hex::encode(Sha256::digest(text.as_bytes())))
    };
    let c1 = by_hand(&diff_ids[0].to_string(), &diff_ids[1]);
    let c2 = by_hand(&c1, &diff_ids[2]);
    assert_eq!(chains[0].to_string(), diff_ids[0].to_string());
    assert_eq!(chains[1].to_string(), c1);
    assert_eq!(chains[2].to_string(), c2);
    // The same, computed elsewhere (Python's hashlib) once.
    assert_eq!(
        c1,
        "sha256:51c0c8ace48498d6f5fee6b0592cc06f2da0f3cbe09c5a34a97dce85c3889676"
    );
    assert_eq!(
        c2,
        "sha256:2fce7f8ce91bcf0a1428b36e1024639fdbd9469eea762dba98aa749631885106"
    );
}

#[test]
fn one_layer_over_two_bases_is_two_layer_dirs() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let shared = fake_layer(&store, b"shared");
    let mut tops = Vec::new();
    for base in [b"base-1".as_slice(), b"base-2"] {
        let base = image::commit(
            &store,
            None,
            &[fake_layer(&store, base)],
            &history("test"),
            &Reference::parse("base").unwrap(),
        )
        .unwrap();
        let img = image::build(
            &store,
            Some(&base),
            std::slice::from_ref(&shared),
            &history("test"),
        )
        .unwrap();
        assert_eq!(img.diff_ids().unwrap()[1], shared.diff_id);
        let chains = img.chain_ids().unwrap();
        assert_eq!(chains[0].digest(), &base.diff_ids().unwrap()[0]);
        tops.push(store.layer_dir(&chains[1]));
    }
    assert_ne!(tops[0], tops[1], "the shared layer has one dir per base");
    assert!(tops.iter().all(|t| !t.ends_with(shared.diff_id.hex())));
}

/// A small tree: a dir, a file, a setuid binary, a link, a FIFO, an xattr.
fn tree_at(root: &Path) {
    std::fs::create_dir_all(root.join("etc/cron.d")).unwrap();
    std::fs::write(root.join("etc/cron.d/job"), "* * * * * root true\n").unwrap();
    std::fs::create_dir_all(root.join("usr/bin")).unwrap();
    std::fs::write(root.join("usr/bin/curl"), "curl 8.0\n").unwrap();
    std::fs::set_permissions(
        root.join("usr/bin/curl"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    std::os::unix::fs::symlink("/usr/bin/curl", root.join("usr/bin/wget")).unwrap();
    mkfifo(&root.join("fifo"), 0o600);
    set_xattr(&root.join("etc/cron.d"), "user.overlay.opaque", b"y");
}

#[test]
fn the_record_finds_a_planted_file_a_changed_binary_and_a_changed_mode() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("layer");
    tree_at(&root);
    let record = tree::walk(&root).unwrap();
    let text = String::from_utf8(record.as_bytes().to_vec()).unwrap();
    assert!(
        text.contains("etc/cron.d d 755 ") && text.contains("user.overlay.opaque=79"),
        "{text}"
    );
    assert!(
        text.contains("usr/bin/wget l ") && text.contains(" /usr/bin/curl -\n"),
        "{text}"
    );
    // A walk is stable, and an mtime is not what a tree shows.
    assert_eq!(tree::walk(&root).unwrap(), record);
    let f = std::fs::File::options()
        .write(true)
        .open(root.join("usr/bin/curl"))
        .unwrap();
    f.set_modified(std::time::SystemTime::UNIX_EPOCH).unwrap();
    drop(f);
    assert_eq!(tree::walk(&root).unwrap(), record);

    let check = |what: &str, change: &dyn Fn(&Path), expected: &str| {
        let copy = dir.path().join(what);
        tree_at(&copy);
        change(&copy);
        let found = tree::walk(&copy).unwrap().differences(record.as_bytes());
        assert!(
            found.iter().any(|d| d == expected),
            "{what}: {found:?} lacks {expected:?}"
        );
    };
    check(
        "planted",
        &|t| std::fs::write(t.join("etc/cron.d/evil"), "* * * * * root sh\n").unwrap(),
        "etc/cron.d/evil: not in the record (added)",
    );
    check(
        "binary",
        &|t| std::fs::write(t.join("usr/bin/curl"), "evil 8.0\n").unwrap(),
        "usr/bin/curl: content changed",
    );
    check(
        "mode",
        &|t| {
            std::fs::set_permissions(t.join("etc/cron.d"), std::fs::Permissions::from_mode(0o777))
                .unwrap()
        },
        "etc/cron.d: mode 755 -> 777",
    );
    check(
        "setuid",
        &|t| {
            std::fs::set_permissions(
                t.join("usr/bin/curl"),
                std::fs::Permissions::from_mode(0o4755),
            )
            .unwrap()
        },
        "usr/bin/curl: mode 755 -> 4755",
    );
    check(
        "xattr",
        &|t| {
            rustix::fs::removexattr(t.join("etc/cron.d"), "user.overlay.opaque").unwrap();
        },
        "etc/cron.d: xattrs changed",
    );
    check(
        "link",
        &|t| {
            std::fs::remove_file(t.join("usr/bin/wget")).unwrap();
            std::os::unix::fs::symlink("/tmp/evil", t.join("usr/bin/wget")).unwrap();
        },
        "usr/bin/wget: content changed",
    );
    check(
        "gone",
        &|t| std::fs::remove_file(t.join("fifo")).unwrap(),
        "fifo: gone",
    );
}

#[test]
fn a_check_needs_a_record_and_the_same_tree() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("layer");
    tree_at(&root);
    let record = dir.path().join("layer.tree");
    assert_eq!(tree::check(&root, &record), TreeCheck::Unrecorded);
    std::fs::write(&record, tree::walk(&root).unwrap().as_bytes()).unwrap();
    assert_eq!(tree::check(&root, &record), TreeCheck::Intact);
    std::fs::write(root.join("planted"), "x").unwrap();
    assert_eq!(
        tree::check(&root, &record),
        TreeCheck::Differs(vec!["planted: not in the record (added)".into()])
    );
}

#[test]
fn a_deep_tree_is_walked_with_few_descriptors() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("deep");
    // Deeper than the usual limit of 1024 open descriptors, within PATH_MAX.
    let mut p = root.clone();
    for _ in 0..1100 {
        p.push("d");
    }
    std::fs::create_dir_all(&p).unwrap();
    std::fs::write(p.join("leaf"), "x").unwrap();
    let record = tree::walk(&root).unwrap();
    let text = String::from_utf8(record.as_bytes().to_vec()).unwrap();
    assert_eq!(text.lines().count(), 1 + 1 + 1100 + 1);
    assert!(
        text.contains("/d/leaf f 644 "),
        "{}",
        &text[text.len() - 200..]
    );
}

/// Two layer dirs, top-most first: `lower` has `etc/hostname`; `upper` is
/// made by `make`; returns both.
fn layers(base: &Path, make: &dyn Fn(&Path)) -> Vec<PathBuf> {
    let (upper, lower) = (base.join("upper"), base.join("lower"));
    std::fs::create_dir_all(lower.join("etc")).unwrap();
    std::fs::write(lower.join("etc/hostname"), "base\n").unwrap();
    std::fs::create_dir_all(&upper).unwrap();
    make(&upper);
    vec![upper, lower]
}

fn hostname(base: &Path, make: &dyn Fn(&Path)) -> vauban_oci::Result<Option<Vec<u8>>> {
    let dirs = layers(base, make);
    let started = Instant::now();
    let r = merged::read_file(&dirs, "etc/hostname", 64 << 10);
    assert!(started.elapsed() < Duration::from_secs(2), "a read blocked");
    r
}

#[test]
fn an_image_file_is_read_beneath_its_layer_dirs() {
    let dir = tempfile::tempdir().unwrap();
    let outside = dir.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("hostname"), "secret of the host\n").unwrap();
    let case = |name: &str| dir.path().join(name);

    // Merged as overlayfs merges: the lower layer's file, the upper's, a
    // whiteout, an opaque directory.
    assert_eq!(
        hostname(&case("plain"), &|_| {}).unwrap().as_deref(),
        Some(&b"base\n"[..])
    );
    assert_eq!(
        hostname(&case("upper"), &|u| {
            std::fs::create_dir(u.join("etc")).unwrap();
            std::fs::write(u.join("etc/hostname"), "web01\n").unwrap();
        })
        .unwrap()
        .as_deref(),
        Some(&b"web01\n"[..])
    );
    let opaque_etc = |u: &Path| {
        std::fs::create_dir(u.join("etc")).unwrap();
        set_xattr(&u.join("etc"), "user.overlay.opaque", b"y");
    };
    assert_eq!(hostname(&case("opaque"), &opaque_etc).unwrap(), None);

    // Hostile: an absolute link out of the tree, a link to /dev/zero, a
    // directory that is a link out of the tree, a FIFO, a big file.
    let outside_link = outside.join("hostname");
    assert_eq!(
        hostname(&case("abs-link"), &|u| {
            std::fs::create_dir(u.join("etc")).unwrap();
            std::os::unix::fs::symlink(&outside_link, u.join("etc/hostname")).unwrap();
        })
        .unwrap(),
        None
    );
    assert_eq!(
        hostname(&case("dev-zero"), &|u| {
            std::fs::create_dir(u.join("etc")).unwrap();
            std::os::unix::fs::symlink("/dev/zero", u.join("etc/hostname")).unwrap();
        })
        .unwrap(),
        None
    );
    assert_eq!(
        hostname(&case("etc-link"), &|u| {
            std::os::unix::fs::symlink(&outside, u.join("etc")).unwrap();
        })
        .unwrap(),
        None,
        "a link in the path hides what is below, as in the merged view; never followed"
    );
    assert_eq!(
        hostname(&case("fifo"), &|u| {
            std::fs::create_dir(u.join("etc")).unwrap();
            mkfifo(&u.join("etc/hostname"), 0o644);
        })
        .unwrap(),
        None
    );
    let big = hostname(&case("big"), &|u| {
        std::fs::create_dir(u.join("etc")).unwrap();
        let f = std::fs::File::create(u.join("etc/hostname")).unwrap();
        f.set_len(1 << 30).unwrap();
    });
    assert!(
        matches!(big, Err(vauban_oci::Error::TooLarge { size, .. }) if size == 1 << 30),
        "{big:?}"
    );
    // Nothing climbs out.
    let dirs = layers(&case("dotdot"), &|_| {});
    assert!(merged::read_file(&dirs, "../outside/hostname", 1024).is_err());
    assert!(merged::exists(&dirs, "etc/hostname").unwrap());
    assert!(!merged::exists(&dirs, "etc/passwd").unwrap());
}
