//! The registry commands end to end with the real `vauban` binary against Debian's
//! `docker-registry` on 127.0.0.1: push with several tags, rm + gc, pull back the
//! same manifest; `login --password-stdin` writes an auth file that `push` then
//! uses (through `--authfile` and `$REGISTRY_AUTH_FILE`); a wrong password, an
//! unknown transport and missing images exit 1 with one clear line.

mod cli_support;

// The registry harness of vauban-oci's tests (a real `docker-registry` killed on drop).
#[path = "../../vauban-oci/tests/registry_common/server.rs"]
mod registry_server;

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use cli_support::{fixture, vauban_bin};
use registry_server::{Registry, PASSWORD, USER};

/// A working directory with a store and an empty home: no ambient credentials,
/// no blob-location cache shared with other tests.
struct Work {
    dir: tempfile::TempDir,
}

impl Work {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        for d in ["home", "run", "cache"] {
            std::fs::create_dir(dir.path().join(d)).unwrap();
        }
        Work { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn store(&self) -> PathBuf {
        self.path("store")
    }

    /// `vauban --store STORE ARGS...` with only the environment given here:
    /// every `REGISTRY_*` variable of the test's environment is removed.
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(vauban_bin());
        c.arg("--store").arg(self.store()).args(args);
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("REGISTRY_") {
                c.env_remove(k);
            }
        }
        c.env_remove("RUST_LOG")
            .env_remove("VAUBAN_STORE")
            .env("HOME", self.path("home"))
            .env("XDG_RUNTIME_DIR", self.path("run"))
            .env("XDG_CACHE_HOME", self.path("cache"))
            .stdin(Stdio::null());
        c
    }

    fn run(&self, cmd: &mut Command) -> Output {
        cmd.output().expect("run the vauban binary")
    }

    /// Runs `cmd`, panics with its stderr unless it succeeds; returns stdout.
    fn ok(&self, cmd: &mut Command) -> String {
        let out = self.run(cmd);
        assert!(
            out.status.success(),
            "{cmd:?} failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn vauban_ok(&self, args: &[&str]) -> String {
        self.ok(&mut self.cmd(args))
    }

    /// `vauban import busybox.tar --tag NAME`: the manifest digest.
    fn import_busybox(&self, name: &str) -> String {
        let tar = fixture("busybox.tar");
        let out = self.vauban_ok(&["import", tar.to_str().unwrap(), "--tag", name]);
        second_word(&out)
    }

    fn manifest_digest(&self, name: &str) -> String {
        let j: serde_json::Value =
            serde_json::from_str(&self.vauban_ok(&["inspect", name])).unwrap();
        j["manifestDigest"].as_str().unwrap().to_string()
    }

    /// `vauban login HOST -u USER --password-stdin` with `password` on stdin.
    fn login(&self, host: &str, password: &str, extra: &[&str], env: &[(&str, &Path)]) -> Output {
        let mut args = vec!["login", host, "-u", USER, "--password-stdin"];
        args.push("--tls-verify=false");
        args.extend_from_slice(extra);
        let mut cmd = self.cmd(&args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run the vauban binary");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(format!("{password}\n").as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    }
}

fn second_word(out: &str) -> String {
    out.split_whitespace()
        .nth(1)
        .unwrap_or_else(|| panic!("no digest in {out:?}"))
        .to_string()
}

/// Exit code 1 and exactly one stderr line holding every needle, no panic.
fn assert_user_error(out: &Output, what: &str, needles: &[&str]) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{what}: {stderr}");
    assert!(!stderr.contains("panicked"), "{what} panicked: {stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{what}: not one line:\n{stderr}");
    for n in needles {
        assert!(lines[0].contains(n), "{what}: {n:?} not in {:?}", lines[0]);
    }
}

fn blob_count(store: &Path) -> usize {
    std::fs::read_dir(store.join("blobs/sha256"))
        .map(|d| d.count())
        .unwrap_or(0)
}

#[test]
fn push_with_tags_then_pull_back_the_same_manifest() {
    let reg = Registry::open();
    let work = Work::new();
    let store = work.store();
    let digest = work.import_busybox("bb:1");

    let dest = format!("{}/vauban/bb:1", reg.host());
    let out = work.vauban_ok(&[
        "push",
        "bb:1",
        &dest,
        "--tls-verify=false",
        "--tag",
        "latest",
        "--tag",
        "deployed",
    ]);
    assert_eq!(out.trim(), digest, "push prints the manifest digest");

    // Nothing left locally.
    work.vauban_ok(&["rm", "bb:1"]);
    work.vauban_ok(&["gc"]);
    assert_eq!(blob_count(&store), 0, "gc left blobs");
    assert_eq!(
        work.run(&mut work.cmd(&["inspect", "bb:1"])).status.code(),
        Some(1)
    );

    // Each tag gives the manifest pushed; the first pull downloads, the others reuse.
    let src = format!("{}/vauban/bb:deployed", reg.host());
    let out = work.vauban_ok(&["pull", &src, "--tls-verify=false", "--tag", "bb:1"]);
    assert_eq!(out.trim(), format!("bb:1 {digest}"));
    assert_eq!(work.manifest_digest("bb:1"), digest);
    for tag in ["latest", "1"] {
        let src = format!("{}/vauban/bb:{tag}", reg.host());
        let out = work.run(&mut work.cmd(&["pull", &src, "--tls-verify=false"]));
        assert!(out.status.success(), "{out:?}");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(second_word(&stdout), digest, "tag {tag}");
        let local = stdout.split_whitespace().next().unwrap().to_string();
        assert_eq!(work.manifest_digest(&local), digest, "tag {tag}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("downloaded 0 blob(s)"),
            "tag {tag}: {stderr}"
        );
    }
    work.vauban_ok(&["fsck"]);
}

#[test]
fn login_writes_an_auth_file_that_push_uses() {
    let reg = Registry::with_auth();
    let host = reg.host();
    let work = Work::new();
    work.import_busybox("bb:1");
    let push = |tag: &str| {
        let dest = format!("{host}/vauban/bb:{tag}");
        work.cmd(&["push", "bb:1", &dest, "--tls-verify=false"])
    };

    // Without credentials the registry refuses the push.
    let out = work.run(&mut push("anonymous"));
    assert_user_error(&out, "push without credentials", &[&host]);

    // --authfile: login writes it (mode 0600), push reads it.
    let authfile = work.path("auth.json");
    let out = work.login(
        &host,
        PASSWORD,
        &["--authfile", authfile.to_str().unwrap()],
        &[],
    );
    assert!(out.status.success(), "login: {out:?}");
    let mode = std::fs::metadata(&authfile).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "auth file mode {mode:o}");
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&authfile).unwrap()).unwrap();
    assert!(json["auths"][&host]["auth"].is_string(), "{json}");
    work.ok(push("with-authfile").arg("--authfile").arg(&authfile));

    // $REGISTRY_AUTH_FILE: written by login, read by push.
    let envfile = work.path("env-auth.json");
    let env = [("REGISTRY_AUTH_FILE", envfile.as_path())];
    let out = work.login(&host, PASSWORD, &[], &env);
    assert!(out.status.success(), "login: {out:?}");
    assert!(envfile.is_file(), "login did not write $REGISTRY_AUTH_FILE");
    assert!(!work.path("home/.docker").exists());
    assert!(!work.path("run/containers").exists());
    work.ok(push("with-env").env("REGISTRY_AUTH_FILE", &envfile));

    // A wrong password: exit 1, one line naming the registry, no file written.
    let wrong = work.path("wrong.json");
    let out = work.login(
        &host,
        "not-the-password",
        &["--authfile", wrong.to_str().unwrap()],
        &[],
    );
    assert_user_error(&out, "login with a wrong password", &[&host]);
    assert!(!wrong.exists(), "a refused login wrote {}", wrong.display());
    let out = work.run(push("wrong").arg(format!("--creds={USER}:not-the-password")));
    assert_user_error(&out, "push with a wrong password", &[&host]);
}

#[test]
fn unknown_transport_and_missing_images_are_one_clear_line() {
    let reg = Registry::open();
    let host = reg.host();
    let work = Work::new();

    let missing = format!("{host}/vauban/nope:1");
    let out = work.run(&mut work.cmd(&["pull", &missing, "--tls-verify=false"]));
    assert_user_error(&out, "pull of a missing image", &[&missing]);
    assert_eq!(blob_count(&work.store()), 0);

    let out = work.run(&mut work.cmd(&["push", "nope:1", &missing, "--tls-verify=false"]));
    assert_user_error(&out, "push of a missing image", &["nope:1", "not found"]);

    for source in ["docker-daemon:busybox:latest", "ftp://127.0.0.1/x"] {
        let out = work.run(&mut work.cmd(&["pull", source]));
        assert_user_error(&out, source, &[source]);
    }
    let out = work.run(&mut work.cmd(&["pull", "docker-daemon:busybox:latest"]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("transport"), "{stderr}");
}

#[test]
fn a_plain_http_registry_gets_the_tls_hint_from_push_and_deploy() {
    let reg = Registry::open();
    let host = reg.host();
    let work = Work::new();
    work.import_busybox("bb:1");
    let namespace = format!("{host}/vauban");
    for args in [
        vec!["push", "bb:1", &format!("{namespace}/bb:1")],
        vec!["deploy", "bb", "--registry", &namespace],
    ] {
        let out = work.run(&mut work.cmd(&args));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(
            stderr.contains("--tls-verify=false"),
            "{args:?}: no hint in {stderr}"
        );
    }
}
