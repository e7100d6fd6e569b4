//! Commands run as root of a user namespace with our full subordinate id
//! mapping (`unshare --map-auto`), for files owned by subordinate ids. Pure std:
//! `tests/rootless_env.rs` includes this file by path (xtask is a binary crate).

use std::path::Path;
use std::process::Command;

/// `unshare --user --map-root-user --map-auto -- ARGS…`.
pub fn as_root(args: &[&str]) -> Command {
    let mut cmd = Command::new("unshare");
    cmd.args(["--user", "--map-root-user", "--map-auto", "--"])
        .args(args);
    cmd
}

/// `unshare … -- rm -rf -- PATH`: removes a tree that may hold files owned by
/// our subordinate ids.
pub fn remove_command(path: &Path) -> Command {
    let mut cmd = as_root(&["rm", "-rf", "--"]);
    cmd.arg(path);
    cmd
}
