//! Cached layer dirs as an unprivileged user (run by `cargo xtask test` as
//! `vauban-test`): one layer over two bases is two layer dirs, so an
//! attacker's base never decides what a victim image runs, whichever is
//! extracted first; and `vauban fsck` finds what was planted or changed in a
//! layer dir, removes the dir, and the next run extracts it again.

use std::path::PathBuf;

use vauban_oci::image::HistoryEntry;
use vauban_oci::layer::{PackedLayer, MEDIA_TYPE_TAR};
use vauban_oci::store::Store;
use vauban_oci::{Digest, Image, Reference};

mod cli_support;

use cli_support::{unprivileged, vauban, vauban_bin, vauban_ok};

/// A store of its own in a temp dir, removed inside the user namespace (its
/// layer dirs hold files owned by subordinate ids).
struct TestStore(PathBuf);

impl TestStore {
    fn new() -> Self {
        unprivileged();
        let dir = tempfile::Builder::new()
            .prefix("vauban-layers-")
            .tempdir()
            .unwrap();
        let s = TestStore(dir.keep());
        let busybox = cli_support::fixture("busybox.tar");
        s.ok(&["import", "-t", "bb", busybox.to_str().unwrap()]);
        s
    }

    fn ok(&self, args: &[&str]) -> String {
        vauban_ok(&self.0, args)
    }

    fn layers(&self) -> PathBuf {
        self.0.join("layers")
    }

    /// The layer dirs' names (records left out).
    fn layer_dirs(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.layers())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| !n.ends_with(".tree"))
            .collect();
        names.sort();
        names
    }
}

impl Drop for TestStore {
    fn drop(&mut self) {
        let helper = vauban_core::sandbox::Helper::at(vauban_bin());
        vauban_core::sandbox::remove_dir_all(&self.0, &helper)
            .unwrap_or_else(|e| panic!("cannot remove {}: {e}", self.0.display()));
    }
}

/// One entry of a hand-made layer.
enum E<'a> {
    Dir(&'a str, u32),
    File(&'a str, u32, &'a str),
    HardLink(&'a str, &'a str),
}

/// Stores an uncompressed layer of `entries` (all owned by 0:0).
fn layer(store: &Store, entries: &[E<'_>]) -> PackedLayer {
    let mut b = tar::Builder::new(Vec::new());
    let header = |kind, mode, size| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(size);
        h.set_mtime(1_700_000_000);
        h.set_uid(0);
        h.set_gid(0);
        h
    };
    for e in entries {
        match e {
            E::Dir(p, mode) => {
                let mut h = header(tar::EntryType::Directory, *mode, 0);
                b.append_data(&mut h, p, &[][..]).unwrap();
            }
            E::File(p, mode, content) => {
                let mut h = header(tar::EntryType::Regular, *mode, content.len() as u64);
                b.append_data(&mut h, p, content.as_bytes()).unwrap();
            }
            E::HardLink(p, target) => {
                let mut h = header(tar::EntryType::Link, 0o644, 0);
                b.append_link(&mut h, p, target).unwrap();
            }
        }
    }
    let tar = b.into_inner().unwrap();
    let (digest, size) = store.write_blob(&tar).unwrap();
    PackedLayer {
        digest,
        size,
        diff_id: Digest::of_bytes(&tar),
        media_type: MEDIA_TYPE_TAR.into(),
        entries: entries.len() as u64,
    }
}

/// Names `base + layers` `name`.
fn commit(store: &Store, base: &Image, layers: &[PackedLayer], name: &str) -> Image {
    let history = HistoryEntry {
        created_by: format!("test: {name}"),
        created: vauban_oci::image::created_now(),
        comment: None,
    };
    let name = Reference::parse(name).unwrap();
    vauban_oci::image::commit(store, Some(base), layers, &history, &name).unwrap()
}

/// A base layer of `who`: `/etc/cron.d` with `mode`, and `/usr/local/bin/tool`.
fn base<'a>(cron_mode: u32, tool: &'a str) -> [E<'a>; 6] {
    [
        E::Dir("etc/", 0o755),
        E::Dir("etc/cron.d/", cron_mode),
        E::Dir("usr/", 0o755),
        E::Dir("usr/local/", 0o755),
        E::Dir("usr/local/bin/", 0o755),
        E::File("usr/local/bin/tool", 0o755, tool),
    ]
}

/// What an image sees of the shared layer: the mode of `/etc/cron.d` (a parent
/// dir the shared layer lacks) and what `/usr/local/bin/linked` (a hard link
/// to the base's tool) runs.
const SEE: &str = "stat -c %a /etc/cron.d; /usr/local/bin/linked";

/// An attacker image and a victim image share their top layer (same blob,
/// same diff_id) on different bases. The layer has a hard link to a file of
/// the base and a file in a directory it lacks, so its extracted dir holds a
/// copy of the base's file and that directory with the base's mode: shared by
/// diff_id, whichever image is extracted first decides what the other runs
/// and whether its `/etc/cron.d` is world-writable.
#[test]
fn a_layer_shared_by_two_bases_is_extracted_once_per_base() {
    for attacker_first in [true, false] {
        let s = TestStore::new();
        let shared_diff_id;
        {
            let store = Store::open(&s.0).unwrap();
            let bb = store.image(&Reference::parse("bb").unwrap()).unwrap();
            let evil = "#!/bin/sh\necho attacker tool\n";
            let good = "#!/bin/sh\necho victim tool\n";
            let shared = layer(
                &store,
                &[
                    E::File(
                        "etc/cron.d/job",
                        0o644,
                        "* * * * * root /usr/local/bin/linked\n",
                    ),
                    E::HardLink("usr/local/bin/linked", "usr/local/bin/tool"),
                ],
            );
            shared_diff_id = shared.diff_id.clone();
            let attacker_base = layer(&store, &base(0o777, evil));
            let victim_base = layer(&store, &base(0o755, good));
            commit(&store, &bb, &[attacker_base, shared.clone()], "attacker");
            commit(&store, &bb, &[victim_base, shared], "victim");
        }
        let order = if attacker_first {
            ["attacker", "victim"]
        } else {
            ["victim", "attacker"]
        };
        for image in order {
            let out = s.ok(&["run", image, "--", "sh", "-c", SEE]);
            let expected = match image {
                "attacker" => "777\nattacker tool\n",
                _ => "755\nvictim tool\n",
            };
            assert_eq!(out, expected, "{image} (attacker first: {attacker_first})");
        }
        // busybox, each base, the shared layer over each base.
        let dirs = s.layer_dirs();
        assert_eq!(dirs.len(), 5, "{dirs:?}");
        assert!(!dirs.iter().any(|d| d == shared_diff_id.hex()), "{dirs:?}");
        // Each run again, its dirs now cached: still its own.
        assert_eq!(
            s.ok(&["run", "victim", "--", "sh", "-c", SEE]),
            "755\nvictim tool\n"
        );
    }
}

/// `vauban fsck` as the store's owner would meet a tampered store: a file
/// planted into a layer dir and a binary made setuid (both writable by the
/// user: the layer's root-owned files belong to the user on the host).
#[test]
fn fsck_removes_a_tampered_layer_dir_and_the_next_run_extracts_it_again() {
    let s = TestStore::new();
    // A run that changes files of the image (copied up, whited out) leaves
    // its layer dirs as they were extracted.
    s.ok(&[
        "run",
        "bb",
        "--",
        "sh",
        "-c",
        "echo x >> /etc/passwd; rm /etc/group; touch /bin/busybox; mkdir /bin/new",
    ]);
    let out = s.ok(&["fsck"]);
    assert!(out.contains("1 layer dirs verified"), "{out}");
    let dirs = s.layer_dirs();
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    let dir = s.layers().join(&dirs[0]);
    assert!(s.layers().join(format!("{}.tree", dirs[0])).is_file());

    std::fs::write(dir.join("etc/planted"), "* * * * * root sh -c evil\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        dir.join("bin/busybox"),
        std::fs::Permissions::from_mode(0o4755),
    )
    .unwrap();
    let out = vauban(&s.0, &["fsck"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    for expected in [
        format!("layer dir {} was tampered with (", dirs[0]),
        "etc/planted: not in the record (added)".into(),
        "bin/busybox: mode 755 -> 4755".into(),
        "removed; it is extracted again when next used".into(),
    ] {
        assert!(stdout.contains(&expected), "{expected:?} not in:\n{stdout}");
    }
    assert!(stderr.contains("1 tampered layer dir(s)"), "{stderr}");
    assert!(!dir.exists(), "the tampered dir is still there");

    let out = s.ok(&[
        "run",
        "bb",
        "--",
        "sh",
        "-c",
        "test ! -e /etc/planted && stat -c %a /bin/busybox",
    ]);
    assert_eq!(out, "755\n");
    assert!(dir.join("etc/passwd").is_file(), "not extracted again");
    assert!(s.ok(&["fsck"]).contains("1 layer dirs verified"));

    // A dir without its record (as an older vauban left them) is removed,
    // reported, not counted as tampered; a run extracts it again with one.
    let record = s.layers().join(format!("{}.tree", dirs[0]));
    std::fs::remove_file(&record).unwrap();
    let out = s.ok(&["fsck"]);
    assert!(out.contains("has no tree record"), "{out}");
    assert!(!dir.exists());
    s.ok(&["run", "bb", "--", "true"]);
    assert!(dir.is_dir() && record.is_file());
}
