//! `vauban keys` as a user meets it: an import from plain files made by
//! `ssh-keygen -A`, `show --private` into a pipe (and refused on a terminal),
//! `rm` of all the hosts named or none, the exit codes of what goes wrong.

mod cli_support;

#[path = "../../vauban-core/tests/keys_common/original.rs"]
mod original_keys;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use cli_support::vauban_bin;

/// A user's world: its own XDG directories, so the default key store and the
/// identity made on first use land in the temp dir.
struct World {
    dir: tempfile::TempDir,
}

impl World {
    fn new() -> World {
        let w = World {
            dir: tempfile::tempdir().unwrap(),
        };
        for host in ["web01", "web02"] {
            original_keys::make_host_keys(&w.path("keys"), host);
        }
        w
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(vauban_bin());
        cmd.arg("keys")
            .args(args)
            .current_dir(self.dir.path())
            .env_remove("RUST_LOG")
            .env_remove("VAUBAN_KEYSTORE")
            .env_remove("VAUBAN_KEYSTORE_KEY")
            .env("XDG_DATA_HOME", self.path("data"))
            .env("XDG_CONFIG_HOME", self.path("config"))
            .stdin(Stdio::null());
        cmd
    }

    fn keys(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    fn keys_ok(&self, args: &[&str]) -> String {
        let out = self.keys(args);
        cli_support::stdout_if_ok(args, &out)
    }

    fn original(&self, host: &str, file: &str) -> Vec<u8> {
        std::fs::read(self.path(&format!("keys/{host}/etc/ssh/{file}"))).unwrap()
    }
}

/// The exit code and stderr of a run that must fail.
fn failed(out: Output) -> (Option<i32>, String) {
    assert!(!out.status.success(), "{out:?}");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn import_show_and_remove_through_the_default_store() {
    let w = World::new();
    let (code, said) = failed(w.keys(&["show", "web01", "--public"]));
    assert_eq!(code, Some(1));
    assert!(said.contains("no key store at"), "{said}");

    let out = w.keys(&["import", "--from-dir", "keys"]);
    assert_eq!(
        cli_support::stdout_if_ok(&["import"], &out),
        "web01: added\nweb02: added\n"
    );
    let said = String::from_utf8_lossy(&out.stderr);
    let identity = w.path("config/vauban/keystore-key.txt");
    assert!(said.contains(&identity.display().to_string()), "{said}");
    assert!(w.path("data/vauban-keys/hostkeys.age").is_file());

    // The private keys, into a pipe: the very files, in the order ed25519, ecdsa, rsa.
    let private = w.keys_ok(&["show", "web01", "--private"]);
    let files =
        ["ed25519", "ecdsa", "rsa"].map(|k| w.original("web01", &format!("ssh_host_{k}_key")));
    assert_eq!(private.as_bytes(), files.concat());
    let rsa = w.keys_ok(&["show", "web01", "--private", "--kind", "rsa"]);
    assert_eq!(rsa.as_bytes(), files[2]);
    let known = w.keys_ok(&["show", "web02", "--known-hosts", "--kind", "ed25519"]);
    let public = String::from_utf8(w.original("web02", "ssh_host_ed25519_key.pub")).unwrap();
    let blob = public
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ");
    assert_eq!(known, format!("web02 {blob}\n"));

    // An unknown host among those named: nothing is removed.
    let (code, said) = failed(w.keys(&["rm", "web01", "db01"]));
    assert_eq!(code, Some(1));
    assert!(said.contains("no keys for db01"), "{said}");
    assert_eq!(
        w.keys_ok(&["list"]).lines().count(),
        7,
        "a header, 3 keys a host"
    );
    assert_eq!(w.keys_ok(&["rm", "web01"]), "removed the keys of web01\n");
    let listed = w.keys_ok(&["list"]);
    assert!(
        !listed.contains("web01") && listed.contains("web02"),
        "{listed}"
    );
    let (code, said) = failed(w.keys(&["show", "web01", "--public"]));
    assert_eq!(code, Some(1));
    assert!(said.contains("no keys for host web01"), "{said}");
}

#[test]
fn private_keys_are_not_printed_on_a_terminal() {
    let w = World::new();
    w.keys_ok(&["import", "--from-dir", "keys"]);
    // `script` gives the command a terminal of its own and returns its status.
    let command = format!("{} keys show web02 --private", vauban_bin().display());
    let out = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .current_dir(w.dir.path())
        .env("XDG_DATA_HOME", w.path("data"))
        .env("XDG_CONFIG_HOME", w.path("config"))
        .env_remove("VAUBAN_KEYSTORE")
        .env_remove("VAUBAN_KEYSTORE_KEY")
        .stdin(Stdio::null())
        .output()
        .expect("script (util-linux) runs the command on a terminal");
    let shown = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{shown}");
    assert!(shown.contains("not printed on a terminal"), "{shown}");
    assert!(!shown.contains("PRIVATE KEY"), "{shown}");

    // Without --public, --known-hosts or --private, show says what it needs.
    let (code, said) = failed(w.keys(&["show", "web02"]));
    assert_eq!(code, Some(1));
    assert!(said.contains("--public"), "{said}");
}

#[test]
fn a_bad_key_file_stops_the_import_naming_it_and_the_store_is_untouched() {
    let w = World::new();
    let public = Path::new("keys/web02/etc/ssh/ssh_host_ecdsa_key.pub");
    std::fs::copy(
        w.path("keys/web01/etc/ssh/ssh_host_ecdsa_key.pub"),
        w.path(public.to_str().unwrap()),
    )
    .unwrap();
    let (code, said) = failed(w.keys(&["import", "--from-dir", "keys"]));
    assert_eq!(code, Some(1));
    assert!(
        said.contains(&format!("{}: not the public half", public.display())),
        "{said}"
    );
    assert!(!w.path("data/vauban-keys/hostkeys.age").exists());

    let (code, said) = failed(w.keys(&["import", "--gpg", "keys"]));
    assert_eq!(code, Some(1), "clap: --gpg needs --passphrase-file");
    assert!(said.contains("--passphrase-file"), "{said}");
}
