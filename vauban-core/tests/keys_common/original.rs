//! The original's sshd key files and `vault/HOST.tar.gpg`, made with the real
//! tools as its local engine made them (`vauban-backend.sh`,
//! `local_put_sshd_keys`): `ssh-keygen -A -f HOST`, `tar cvf HOST.tar HOST`,
//! `gpg -c` with the passphrase. Shared by the key import tests of vauban-core
//! and the rootless build test of vauban-cli, which include this file by path.
//! Only std and crates every includer has.

#![allow(dead_code)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};

/// Runs `program ARGS` in `dir` and returns its stdout; panics with what it
/// said unless it succeeds.
pub fn run_in(dir: &Path, program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program} ({e}): `cargo xtask deps` installs it"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Makes `DIR/HOST/etc/ssh/ssh_host_{rsa,ecdsa,ed25519}_key{,.pub}` with
/// `ssh-keygen -A -f DIR/HOST`.
pub fn make_host_keys(dir: &Path, host: &str) {
    std::fs::create_dir_all(dir.join(host).join("etc/ssh")).unwrap();
    run_in(dir, "ssh-keygen", &["-A", "-f", host]);
}

/// Packs `DIR/HOST` of each of `hosts` into `VAULT/HOST.tar.gpg` (`tar cvf
/// HOST.tar HOST` in `DIR`, then `gpg --symmetric` with the first line of the
/// file `passphrase`), leaving no agent running.
pub fn pack_vault(dir: &Path, hosts: &[&str], vault: &Path, passphrase: &Path) {
    std::fs::create_dir_all(vault).unwrap();
    let home = tempfile::tempdir().unwrap();
    std::fs::set_permissions(home.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let home = home.path().to_str().unwrap();
    for host in hosts {
        let tar = vault.join(format!("{host}.tar"));
        let tar = tar.to_str().unwrap();
        run_in(dir, "tar", &["cvf", tar, host]);
        let encrypted = format!("{tar}.gpg");
        let args = [
            "--homedir",
            home,
            "--batch",
            "--pinentry-mode",
            "loopback",
            "--passphrase-file",
            passphrase.to_str().unwrap(),
            "--symmetric",
            "--output",
            &encrypted,
            tar,
        ];
        run_in(dir, "gpg", &args);
        std::fs::remove_file(tar).unwrap();
    }
    // gpg started an agent to encrypt: stop it.
    run_in(dir, "gpgconf", &["--homedir", home, "--kill", "gpg-agent"]);
}
