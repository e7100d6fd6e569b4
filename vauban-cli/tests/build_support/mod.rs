//! The world of a `vauban build` test: a config over the Debian fixture
//! (`master-base` → `master-web`, conffs of `web*`), a copy of the build
//! tests' Ansible repository, store, out, keys and logs in a temp dir; and
//! what a build's JSON events say.

#![allow(dead_code)]

use std::collections::BTreeSet;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use crate::cli_support::{self, copy_dir, fixture, sha256_of, testdata, unprivileged, vauban_bin};

/// A build's world: config, Ansible copy, store, out, keys, logs.
pub struct World {
    pub dir: tempfile::TempDir,
}

impl World {
    /// A world whose `configuration:` holds `configuration` too; the
    /// release is the Debian fixture (`tarball:` with its sha256).
    pub fn new(configuration: &str) -> World {
        World::from_fixture(configuration, "debian.tar")
    }

    /// The release is the fixture `name` (`tarball:` with its sha256).
    pub fn from_fixture(configuration: &str, name: &str) -> World {
        let tar = fixture(name);
        let sha = sha256_of(&tar);
        World::with_release(
            configuration,
            &format!("  tarball: {}\n  sha256: {sha}\n", tar.display()),
        )
    }

    /// `bookworm:` (named `debian-12`) with the source keys `source`, then
    /// `master-base` → `master-web` (conffs `web*`).
    pub fn with_release(configuration: &str, source: &str) -> World {
        unprivileged();
        let dir = tempfile::tempdir().unwrap();
        let w = World { dir };
        copy_dir(&testdata().join("build/ansible"), &w.path("ansible"));
        std::fs::write(
            w.path("config.yml"),
            format!(
                "configuration:\n  ansible: ansible\n{configuration}\
                 bookworm:\n  name: debian-12\n{source}  \
                 master-base:\n    stages: [base.yml]\n    \
                 master-web:\n      stages: [web.yml]\n      conffs: 'web*'\n"
            ),
        )
        .unwrap();
        std::fs::write(
            w.path("key.txt"),
            "a passphrase of the build tests, long enough\n",
        )
        .unwrap();
        std::fs::set_permissions(w.path("key.txt"), std::fs::Permissions::from_mode(0o600))
            .unwrap();
        w
    }

    /// `rel` in the world.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// `vauban --store STORE ARGS` in the world, its environment cleared of
    /// what changes vauban's behaviour.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(vauban_bin());
        cmd.arg("--store")
            .arg(self.path("store"))
            .args(args)
            .current_dir(self.dir.path())
            .env_remove("RUST_LOG")
            .env_remove("VAUBAN_STORE")
            .env_remove("VAUBAN_KEYSTORE_KEY")
            .env("XDG_CONFIG_HOME", self.path("xdg-config"))
            .stdin(Stdio::null());
        cmd
    }

    /// The arguments of a JSON-events build of the world with `extra`.
    /// `vauban deploy NAME` to the plain-HTTP registry `reg`.
    pub fn deploy(&self, name: &str, reg: &str) -> Output {
        self.cmd(&["deploy", name, "--registry", reg, "--tls-verify=false"])
            .output()
            .unwrap()
    }

    pub fn build_args(&self, extra: &[&str]) -> Vec<String> {
        let mut args: Vec<String> = [
            "--events",
            "json",
            "build",
            "--config",
            "config.yml",
            "--keystore",
            "keys/hostkeys.age",
            "--keystore-key-file",
            "key.txt",
            "--log-dir",
            "logs",
            "--cache-dir",
            "git-cache",
            "--jobs",
            "2",
        ]
        .map(String::from)
        .to_vec();
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    }

    /// Runs a build with `extra`.
    pub fn build(&self, extra: &[&str]) -> Output {
        let args = self.build_args(extra);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.cmd(&args).output().unwrap()
    }

    /// Builds, panics unless it succeeds; its output.
    pub fn build_succeeds(&self, extra: &[&str]) -> Output {
        let out = self.build(extra);
        assert!(
            out.status.success(),
            "vauban build {extra:?} failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// Builds, panics unless it fails as a user error does (exit code 1);
    /// its output.
    pub fn build_fails(&self, extra: &[&str]) -> Output {
        let out = self.build(extra);
        assert_eq!(
            out.status.code(),
            Some(1),
            "vauban build {extra:?}:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// Builds, panics unless it succeeds; the (stage, host) pairs Ansible ran.
    pub fn build_ok(&self, extra: &[&str]) -> BTreeSet<(String, String)> {
        ran(&self.build_succeeds(extra))
    }

    /// The manifest digest of the store's image `name`.
    pub fn digest(&self, name: &str) -> String {
        let out = self.cmd(&["inspect", name]).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v["manifestDigest"]
            .as_str()
            .unwrap_or_else(|| panic!("no digest in {v}"))
            .to_string()
    }

    /// The entries of `out/master-web/conffs-HOST.tgz`: mode, uid, content.
    pub fn conffs(&self, host: &str) -> std::collections::BTreeMap<String, (u32, u32, Vec<u8>)> {
        let file =
            std::fs::File::open(self.path(&format!("out/master-web/conffs-{host}.tgz"))).unwrap();
        cli_support::tar_listing(flate2::read::GzDecoder::new(file), |e| {
            let mode = e.header().mode().unwrap();
            let uid = e.header().uid().unwrap() as u32;
            let mut data = Vec::new();
            e.read_to_end(&mut data).unwrap();
            (mode, uid, data)
        })
    }

    /// Writes `text` to the Ansible repository's `rel`.
    pub fn edit(&self, rel: &str, text: &str) {
        std::fs::write(self.path(&format!("ansible/{rel}")), text).unwrap();
    }
}

/// The (stage, host) pairs of the `stage_started` events of a build.
pub fn ran(out: &Output) -> BTreeSet<(String, String)> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["event"] == "stage_started")
        .map(|v| {
            (
                v["stage"].as_str().unwrap().to_string(),
                v["host"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

pub fn pairs(list: &[(&str, &str)]) -> BTreeSet<(String, String)> {
    list.iter()
        .map(|(s, h)| (s.to_string(), h.to_string()))
        .collect()
}

/// The JSON events of a build's stdout.
pub fn events(out: &Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .collect()
}

/// The messages of a build's `warning` events.
pub fn warnings(out: &Output) -> Vec<String> {
    events(out)
        .iter()
        .filter(|v| v["event"] == "warning")
        .map(|v| v["message"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[allow(unused_imports)]
pub use crate::cli_support::git;
