//! `vauban import` and `vauban unpack` as an unprivileged user outside any user
//! namespace (run by `cargo xtask test` as `vauban-test`): the busybox fixture
//! unpacks to the tarball's tree (owned by us) with a warning naming the
//! skipped owners, and device nodes in a layer are skipped and counted in that
//! warning instead of failing the unpack.

mod cli_support;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use cli_support::{fixture, snapshot, vauban, vauban_ok, Node};

/// Panics unless unprivileged; returns our (uid, gid).
fn unprivileged() -> (u32, u32) {
    cli_support::unprivileged();
    (
        rustix::process::geteuid().as_raw(),
        rustix::process::getegid().as_raw(),
    )
}

/// A tar entry name without its `./` components (empty for the root).
fn relative(name: &Path) -> PathBuf {
    name.components()
        .filter(|c| !matches!(c, std::path::Component::CurDir))
        .collect()
}

/// The tree a tarball describes, as `snapshot(dir, true)` would see it once
/// extracted by `owner`: every file ours, no device node.
fn expected_tree(tarball: &[u8], owner: (u32, u32)) -> BTreeMap<PathBuf, Node> {
    let mut out: BTreeMap<PathBuf, Node> = BTreeMap::new();
    let mut archive = tar::Archive::new(tarball);
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = relative(&entry.path().unwrap());
        if path.as_os_str().is_empty() {
            continue;
        }
        let h = entry.header().clone();
        let mode = h.mode().unwrap() & 0o7777;
        let node = |kind, size, hash, target| Node {
            kind,
            mode,
            size,
            hash,
            target,
            rdev: 0,
            owner: Some(owner),
        };
        let node = match h.entry_type() {
            tar::EntryType::Directory => node('d', 0, None, None),
            tar::EntryType::Symlink => {
                let target = entry.link_name().unwrap().unwrap().into_owned();
                Node {
                    mode: 0o777,
                    ..node('l', 0, None, Some(target))
                }
            }
            tar::EntryType::Regular => {
                let mut data = Vec::new();
                entry.read_to_end(&mut data).unwrap();
                let (d, _) = vauban_oci::digest::HashingReader::new(&data[..])
                    .drain_and_finish()
                    .unwrap();
                node('f', data.len() as u64, Some(d.to_string()), None)
            }
            tar::EntryType::Link => {
                let target = relative(&entry.link_name().unwrap().unwrap());
                out[&target].clone()
            }
            tar::EntryType::Char | tar::EntryType::Block => continue,
            other => panic!("{}: unexpected entry type {other:?}", path.display()),
        };
        out.insert(path, node);
    }
    out
}

/// The busybox fixture with `dev/` and three device nodes appended.
fn busybox_with_devices() -> Vec<u8> {
    let base = std::fs::read(fixture("busybox.tar")).unwrap();
    let mut b = tar::Builder::new(Vec::new());
    let mut archive = tar::Archive::new(&base[..]);
    let mut has_dev = false;
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = relative(&entry.path().unwrap());
        if path.as_os_str().is_empty() {
            continue;
        }
        has_dev |= path == Path::new("dev");
        let mut h = entry.header().clone();
        if matches!(
            h.entry_type(),
            tar::EntryType::Symlink | tar::EntryType::Link
        ) {
            let target = entry.link_name().unwrap().unwrap().into_owned();
            b.append_link(&mut h, &path, &target).unwrap();
        } else {
            b.append_data(&mut h, &path, &mut entry).unwrap();
        }
    }
    let mut node = |ty, name: &str, mode, major, minor| {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(ty);
        h.set_mode(mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_700_000_000);
        h.set_size(0);
        if ty != tar::EntryType::Directory {
            h.set_device_major(major).unwrap();
            h.set_device_minor(minor).unwrap();
        }
        b.append_data(&mut h, name, std::io::empty()).unwrap();
    };
    if !has_dev {
        node(tar::EntryType::Directory, "dev/", 0o755, 0, 0);
    }
    node(tar::EntryType::Char, "dev/null", 0o666, 1, 3);
    node(tar::EntryType::Char, "dev/console", 0o600, 5, 1);
    node(tar::EntryType::Block, "dev/sda", 0o660, 8, 0);
    b.into_inner().unwrap()
}

/// Imports `tarball` as `name` into `store`, unpacks it into
/// `unpacked-NAME` beside the store, asserts the tree is the tarball's (owned
/// by us, without device nodes) and returns unpack's stderr.
fn import_and_unpack(store: &Path, tarball: &Path, name: &str, me: (u32, u32)) -> String {
    vauban_ok(store, &["import", tarball.to_str().unwrap(), "--tag", name]);
    let out_dir = store.parent().unwrap().join(format!("unpacked-{name}"));
    let out = vauban(store, &["unpack", name, out_dir.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "unprivileged unpack of {name} failed ({}):\n{stderr}",
        out.status
    );
    let expected = expected_tree(&std::fs::read(tarball).unwrap(), me);
    cli_support::assert_same_tree(
        &snapshot(&out_dir, true),
        &expected,
        &format!("unpacked {name} vs the tarball"),
    );
    stderr
}

/// The counts of unpack's non-root warning: (owners, device nodes, xattrs).
fn warning_counts(stderr: &str) -> (u64, u64, u64) {
    let line = stderr
        .lines()
        .find(|l| l.starts_with("warning:") && l.contains("non-root"))
        .unwrap_or_else(|| panic!("no non-root warning on stderr:\n{stderr}"));
    let count = |what: &str| -> u64 {
        let words: Vec<&str> = line.split([' ', ',']).filter(|w| !w.is_empty()).collect();
        let i = words
            .iter()
            .position(|w| *w == what)
            .unwrap_or_else(|| panic!("warning without {what}: {line}"));
        words[i - 1]
            .parse()
            .unwrap_or_else(|_| panic!("no count before {what}: {line}"))
    };
    (count("owners"), count("device"), count("xattrs"))
}

#[test]
fn busybox_unpacks_unprivileged_with_a_warning() {
    let me = unprivileged();
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let stderr = import_and_unpack(&store, &fixture("busybox.tar"), "busybox:1", me);
    let entries = expected_tree(&std::fs::read(fixture("busybox.tar")).unwrap(), me).len();
    let (owners, devices, _) = warning_counts(&stderr);
    // Every entry belongs to 0:0 in the fixture; only hard links take no chown.
    assert!(
        owners > 0 && owners <= entries as u64 + 1,
        "owners {owners} of {entries}: {stderr}"
    );
    assert_eq!(devices, 0, "{stderr}");
}

#[test]
fn device_nodes_are_skipped_and_counted_unprivileged() {
    let me = unprivileged();
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let tarball = tmp.path().join("busybox-dev.tar");
    std::fs::write(&tarball, busybox_with_devices()).unwrap();
    let stderr = import_and_unpack(&store, &tarball, "busybox-dev:1", me);
    let (owners, devices, _) = warning_counts(&stderr);
    assert_eq!(devices, 3, "{stderr}");
    assert!(owners > 0, "{stderr}");
    let out_dir = tmp.path().join("unpacked-busybox-dev:1");
    assert!(out_dir.join("dev").is_dir());
    assert!(!out_dir.join("dev/null").exists());
}
