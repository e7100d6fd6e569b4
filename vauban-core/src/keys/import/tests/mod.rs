//! Tests of imports. The keys are made by the real `ssh-keygen -A -f HOST`, as
//! the original's local engine made them, once per test run; each test works
//! on its own copy of that tree.

mod dir;
mod gpg;
// Shared with the CLI's rootless test, whose items are `pub`.
#[allow(unreachable_pub)]
#[path = "../../../../tests/keys_common/original.rs"]
mod original;
mod store;
mod tarball;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use tempfile::TempDir;

use crate::keys::{KeyKind, SSH_DIR};

/// The hosts of the source tree.
const HOSTS: [&str; 2] = ["web01", "web02"];

/// The source tree `DIR/HOST/etc/ssh/ssh_host_*`, made once.
fn source() -> &'static Path {
    static SOURCE: OnceLock<TempDir> = OnceLock::new();
    SOURCE
        .get_or_init(|| {
            let dir = tempfile::tempdir().unwrap();
            for host in HOSTS {
                original::make_host_keys(dir.path(), host);
            }
            dir
        })
        .path()
}

/// A fresh copy of the source tree, in `TMP/keys`.
fn source_copy() -> (TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("keys");
    for host in HOSTS {
        let (from, to) = (ssh_dir(source(), host), ssh_dir(&dir, host));
        fs::create_dir_all(&to).unwrap();
        for entry in fs::read_dir(&from).unwrap() {
            let entry = entry.unwrap();
            let target = to.join(entry.file_name());
            fs::copy(entry.path(), &target).unwrap();
        }
    }
    (tmp, dir)
}

/// `DIR/HOST/etc/ssh`.
fn ssh_dir(dir: &Path, host: &str) -> PathBuf {
    dir.join(host).join(SSH_DIR)
}

/// The bytes of a host's key file in the source tree.
fn source_file(host: &str, name: &str) -> Vec<u8> {
    fs::read(ssh_dir(source(), host).join(name)).unwrap()
}

/// The six files of a host in the source tree, in the order of `HostKeys::files`.
fn source_files(host: &str) -> Vec<(String, Vec<u8>, u32)> {
    KeyKind::ALL
        .iter()
        .flat_map(|kind| [(kind.private_file(), 0o600), (kind.public_file(), 0o644)])
        .map(|(name, mode)| (name.to_owned(), source_file(host, name), mode))
        .collect()
}

/// Writes `contents` to `path`, mode 0600.
fn write_private(path: &Path, contents: &[u8]) {
    fs::write(path, contents).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o600)).unwrap();
}
