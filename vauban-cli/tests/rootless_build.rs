//! `vauban build` end to end, rootless, with real Ansible and a real
//! `docker-registry` on 127.0.0.1: a release from the Debian fixture
//! (`tarball:` with its sha256), `master-base` → `master-web`, conffs of
//! `web01` and `web02`. What the registry holds (read with skopeo), what each
//! conffs holds, the cache (a second build runs nothing; a changed host_vars,
//! playbook, template in a dirty checkout, group_vars rebuild exactly what
//! reads them), host keys kept and never logged, the tree, logs and key store
//! private (0700 dirs, 0600 files, tightened again by the next build), two
//! builds at once, a failing host, the size limit, SIGTERM mid-conffs. And
//! what a site moving from the original relies on: a release named by its
//! suite bootstrapped by mmdebstrap (Debian's mirror), `/imginfo` and
//! `/packages` in the original's formats, `never_upload` pushing the images
//! but not the boot files.

#![cfg(feature = "rootless-tests")]

mod build_support;
mod cli_support;

#[path = "../../vauban-core/tests/keys_common/original.rs"]
mod original_keys;

#[path = "../../vauban-oci/tests/registry_common/server.rs"]
#[allow(dead_code)]
mod registry_server;

use std::io::BufRead;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use build_support::{git, pairs, ran, World};
use cli_support::{sandbox_leftovers, unprivileged, vauban_bin};

fn skopeo_tags(image: &str) -> Vec<String> {
    let out = Command::new("skopeo")
        .args([
            "list-tags",
            "--tls-verify=false",
            &format!("docker://{image}"),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "skopeo list-tags {image}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["Tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_string())
        .collect()
}

fn everything_under(dir: &Path) -> String {
    let mut text = String::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                text.push_str(&everything_under(&p));
            } else if let Ok(t) = std::fs::read(&p) {
                text.push_str(&String::from_utf8_lossy(&t));
            }
        }
    }
    text
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

/// Every directory under `dir` (and `dir`) is 0700, every file 0600.
fn assert_all_private(dir: &Path) {
    assert_eq!(mode(dir), 0o700, "{}", dir.display());
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            assert_all_private(&path);
        } else {
            assert_eq!(mode(&path), 0o600, "{}", path.display());
        }
    }
}

/// What holds a host's secrets is the user's only: the boot tree's dirs and
/// conffs, every log (each host's `--diff`), the key store.
fn assert_private(w: &World) {
    for dir in ["out", "out/master-web", "keys"] {
        assert_eq!(mode(&w.path(dir)), 0o700, "{dir}");
    }
    for file in [
        "out/master-web/conffs-web01.tgz",
        "out/master-web/conffs-web02.tgz",
        "keys/hostkeys.age",
    ] {
        assert_eq!(mode(&w.path(file)), 0o600, "{file}");
    }
    assert_all_private(&w.path("logs"));
}

#[test]
fn build_publishes_conffs_per_host_and_caches_exactly() {
    let w = World::new("");
    let registry = registry_server::Registry::open();
    let reg = format!("{}/vauban", registry.host());
    let out = w.build_succeeds(&[
        "--name",
        "master-web",
        "--stage",
        "conffs",
        "--build-parents",
        "-1",
        "--registry",
        &reg,
        "--tls-verify=false",
    ]);
    let first = ran(&out);
    // A conffs gathers each host's facts once, at its first stage (base.yml);
    // web.yml reads them from the build's fact cache.
    let gathered: Vec<String> = build_support::events(&out)
        .iter()
        .filter(|e| e["event"] == "ansible_task" && e["task"] == "Gathering Facts")
        .map(|e| e["stage"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert!(gathered.iter().any(|s| s == "base.yml"), "{gathered:?}");
    assert_eq!(
        gathered.iter().filter(|s| *s == "web.yml").count(),
        1,
        "web.yml gathers for master-web's rootfs only: {gathered:?}"
    );
    assert_eq!(
        first,
        pairs(&[
            ("base.yml", "master-base"),
            ("web.yml", "master-web"),
            ("base.yml", "web01"),
            ("base.yml", "web02"),
            ("web.yml", "web01"),
            ("web.yml", "web02"),
        ])
    );

    // The registry: masters and hosts with latest and the date tag; no release.
    for image in [
        "master-base",
        "master-web",
        "master-web/web01",
        "master-web/web02",
    ] {
        let tags = skopeo_tags(&format!("{reg}/{image}"));
        assert!(tags.contains(&"latest".to_string()), "{image}: {tags:?}");
        assert!(
            tags.iter().any(|t| t.len() == 15 && t.contains('T')),
            "{image}: no date tag in {tags:?}"
        );
    }

    // Each conffs: its hostname, its own value and keys; no log, no rootfs file.
    let a = w.conffs("web01");
    let b = w.conffs("web02");
    assert_eq!(a["etc/hostname"].2, b"web01\n");
    // None of the directories the sandbox's mount points leave in a layer
    // (policy-rc.d's, the init-functions hook's); `/imginfo` and `/packages`
    // with the host's own stages, as the original's conffs carried them.
    for stray in ["usr", "usr/sbin", "usr/lib", "usr/lib/lsb", "dev"] {
        assert!(!a.contains_key(stray), "{stray} in {:?}", a.keys());
    }
    let imginfo = String::from_utf8_lossy(&a["imginfo"].2).into_owned();
    assert!(imginfo.contains("web01"), "{imginfo}");
    assert!(a.contains_key("packages"));
    assert_eq!(a["etc/vauban/host-value"].2, b"value-of-web01\n");
    assert_eq!(
        a["etc/vauban/facts"].2, b"Debian web01\n",
        "facts from the cache"
    );
    assert_eq!(b["etc/vauban/host-value"].2, b"value-of-web02\n");
    for (path, mode) in [
        ("etc/ssh/ssh_host_ed25519_key", 0o600),
        ("etc/ssh/ssh_host_ed25519_key.pub", 0o644),
        ("etc/ssh/ssh_host_rsa_key", 0o600),
        ("etc/ssh/ssh_host_ecdsa_key", 0o600),
    ] {
        assert_eq!(a[path].0 & 0o7777, mode, "{path}");
        assert_eq!(a[path].1, 0, "{path} owner");
    }
    assert_ne!(
        a["etc/ssh/ssh_host_ed25519_key.pub"].2, b["etc/ssh/ssh_host_ed25519_key.pub"].2,
        "two hosts share a key"
    );
    for conffs in [&a, &b] {
        assert!(
            !conffs.keys().any(|p| p.starts_with("var/log")),
            "{:?}",
            conffs.keys()
        );
        for rootfs_file in ["etc/motd", "etc/fleet", "usr/bin/python3", "etc/web.conf"] {
            assert!(
                !conffs.contains_key(rootfs_file),
                "{rootfs_file} in a conffs"
            );
        }
    }
    let unpacked = w.path("unpacked");
    let out = w
        .cmd(&["unpack", "master-web", unpacked.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(unpacked.join("etc/web.conf").is_file());
    assert!(
        !unpacked.join("etc/vauban/host-value").exists(),
        "a host file in the rootfs"
    );
    let _ = Command::new("rm").arg("-rf").arg(&unpacked).status();

    // No private key in any log or event.
    let logs = everything_under(&w.path("logs"));
    assert!(!logs.is_empty());
    assert!(!logs.contains("PRIVATE KEY"), "a private key in the logs");
    assert_private(&w);
    // Opened by hand: the next build tightens what it writes again.
    for (path, mode) in [
        ("out", 0o755),
        ("out/master-web", 0o755),
        ("out/master-web/conffs-web01.tgz", 0o644),
    ] {
        std::fs::set_permissions(w.path(path), std::fs::Permissions::from_mode(mode)).unwrap();
    }

    // A second identical build runs nothing and gives the same images and keys.
    let digests: Vec<String> = ["master-base", "master-web", "master-web/web01"]
        .iter()
        .map(|n| w.digest(n))
        .collect();
    let out = w.build(&[
        "--name",
        "master-web",
        "--stage",
        "conffs",
        "--build-parents",
        "-1",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(ran(&out).is_empty(), "{:?}", ran(&out));
    assert!(!String::from_utf8_lossy(&out.stdout).contains("PRIVATE KEY"));
    assert_private(&w);
    let again: Vec<String> = ["master-base", "master-web", "master-web/web01"]
        .iter()
        .map(|n| w.digest(n))
        .collect();
    assert_eq!(digests, again);
    assert_eq!(
        w.conffs("web01")["etc/ssh/ssh_host_ed25519_key"].2,
        a["etc/ssh/ssh_host_ed25519_key"].2,
        "a rebuilt host lost its key"
    );

    let rebuild = |w: &World| {
        w.build_ok(&[
            "--name",
            "master-web",
            "--stage",
            "conffs",
            "--build-parents",
            "-1",
        ])
    };
    // A host_vars value: that host's steps only.
    w.edit(
        "host_vars/web02.yml",
        "host_value: changed-value-of-web02\n",
    );
    assert_eq!(
        rebuild(&w),
        pairs(&[("base.yml", "web02"), ("web.yml", "web02")])
    );
    assert_eq!(
        w.conffs("web02")["etc/vauban/host-value"].2,
        b"changed-value-of-web02\n"
    );

    // A playbook: its stage and what follows, nothing before (master-base
    // stays; the conffs start from the new master-web, so all their steps run).
    let web = std::fs::read_to_string(w.path("ansible/web.yml")).unwrap();
    w.edit(
        "web.yml",
        &format!("{web}\n# a comment changes the playbook\n"),
    );
    assert_eq!(
        rebuild(&w),
        pairs(&[
            ("web.yml", "master-web"),
            ("base.yml", "web01"),
            ("base.yml", "web02"),
            ("web.yml", "web01"),
            ("web.yml", "web02"),
        ])
    );
    // The same for --stage rootfs of master-base alone: nothing to do.
    let out = w.build(&["--name", "master-base", "--stage", "rootfs"]);
    assert!(ran(&out).is_empty(), "{:?}", ran(&out));

    // A template changed in a git checkout, uncommitted: the stages reading it.
    let git = |args: &[&str]| git(&w.path("ansible"), args);
    git(&["init", "-q"]);
    git(&["add", "-A"]);
    git(&["commit", "-qm", "the tests' repository"]);
    assert!(rebuild(&w).is_empty(), "a commit alone changed the inputs");
    w.edit("templates/fleet.j2", "fleet={{ fleet }}\nedited=yes\n");
    assert_eq!(
        rebuild(&w),
        pairs(&[
            ("base.yml", "master-base"),
            ("web.yml", "master-web"),
            ("base.yml", "web01"),
            ("base.yml", "web02"),
            ("web.yml", "web01"),
            ("web.yml", "web02"),
        ]),
        "fleet.j2 is read by base.yml: everything after it rebuilds"
    );

    // A group_vars value: the steps of the group's hosts (master-base is not in it).
    w.edit("group_vars/web.yml", "web_port: 9090\n");
    assert_eq!(
        rebuild(&w),
        pairs(&[
            ("web.yml", "master-web"),
            ("base.yml", "web01"),
            ("base.yml", "web02"),
            ("web.yml", "web01"),
            ("web.yml", "web02"),
        ])
    );

    // deploy: `deployed` in the registry.
    let out = w.deploy("master-web", &reg);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(skopeo_tags(&format!("{reg}/master-web")).contains(&"deployed".to_string()));
    assert!(sandbox_leftovers(&w.path("store")).is_empty());
}

#[test]
fn build_twice_at_once_agrees_and_names_failures() {
    let w = World::new("  conffs_size_limit: 40KiB\n");
    let spawn = || {
        let args = w.build_args(&[
            "--name",
            "master-web",
            "--stage",
            "rootfs",
            "--build-parents",
            "-1",
        ]);
        w.cmd(&args.iter().map(String::as_str).collect::<Vec<_>>())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    for out in [&a, &b] {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Each stage ran once, in one of them.
    let mut all: Vec<(String, String)> = ran(&a).into_iter().collect();
    all.extend(ran(&b));
    all.sort();
    assert_eq!(
        all,
        pairs(&[("base.yml", "master-base"), ("web.yml", "master-web")])
            .into_iter()
            .collect::<Vec<_>>()
    );

    // A failing host is named with its task; the other host's conffs is kept.
    w.edit("host_vars/web02.yml", "host_value: v2\nfail_here: true\n");
    let out = w.build_fails(&["--name", "master-web", "--stage", "conffs"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("web02") && stderr.contains("Fail where asked"),
        "{stderr}"
    );
    assert!(w.path("out/master-web/conffs-web01.tgz").is_file());
    assert!(!w.path("out/master-web/conffs-web02.tgz").exists());

    // The size limit names the host and its biggest file, and leaves no archive.
    w.edit("host_vars/web02.yml", "host_value: v2\nbig_file: true\n");
    let out = w.build_fails(&["--name", "master-web", "--stage", "conffs"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("web02") && stderr.contains("etc/big"),
        "{stderr}"
    );
    assert!(!w.path("out/master-web/conffs-web02.tgz").exists());
    let leftovers: Vec<_> = std::fs::read_dir(w.path("out/master-web"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // SIGTERM mid-conffs: no mount, no process, nothing half-written.
    w.edit("host_vars/web01.yml", "host_value: v1-again\n");
    w.edit("host_vars/web02.yml", "host_value: v2-again\n");
    let args = w.build_args(&["--name", "master-web", "--stage", "conffs"]);
    let mut child = w
        .cmd(&args.iter().map(String::as_str).collect::<Vec<_>>())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    for line in std::io::BufReader::new(stdout).lines() {
        let line = line.unwrap();
        if line.contains("\"ansible_line\"") {
            break;
        }
    }
    nix_kill(child.id(), 15);
    let status = child.wait().unwrap();
    // The cleaned-up process ends the way the signal asks (a shell sees 143).
    assert!(
        status.code() == Some(143)
            || std::os::unix::process::ExitStatusExt::signal(&status) == Some(15),
        "{status}"
    );
    assert_eq!(sandbox_leftovers(&w.path("store")), Vec::<String>::new());
    let tmp: Vec<_> = std::fs::read_dir(w.path("store/tmp"))
        .unwrap()
        .flatten()
        .collect();
    assert!(tmp.is_empty(), "{tmp:?}");
    // The next build picks up and succeeds.
    w.build_ok(&["--name", "master-web", "--stage", "conffs"]);
}

fn nix_kill(pid: u32, signal: i32) {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn build_config_errors_name_the_file_line_and_key() {
    unprivileged();
    let dir = tempfile::tempdir().unwrap();
    let cases: &[(&str, &[&str])] = &[
        (
            "bookworm:\n  image: 127.0.0.1:1/d:12\n  master-a:\n    stages: a.yml\n",
            &["config.yml:4", "stages", "expected a list"],
        ),
        (
            "bookworm:\n  image: 127.0.0.1:1/d:12\n  master-a: [\n",
            &["config.yml", "YAML"],
        ),
        (
            "bookworm:\n  tarball: /x.tar\n  sha256: abc\n  master-a:\n    stages: [a.yml]\n",
            &["config.yml:3", "sha256"],
        ),
    ];
    for (text, wanted) in cases {
        std::fs::write(dir.path().join("config.yml"), text).unwrap();
        let out = Command::new(vauban_bin())
            .args([
                "--store",
                "store",
                "build",
                "--name",
                "master-a",
                "--ansible",
                ".",
            ])
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        let stderr = String::from_utf8_lossy(&out.stderr);
        for w in *wanted {
            assert!(stderr.contains(w), "{w:?} not in: {stderr}");
        }
    }
    // An unknown --name lists the masters.
    std::fs::write(
        dir.path().join("config.yml"),
        "bookworm:\n  image: 127.0.0.1:1/d:12\n  master-a:\n    stages: [a.yml]\n",
    )
    .unwrap();
    let out = Command::new(vauban_bin())
        .args([
            "--store",
            "store",
            "build",
            "--name",
            "master-z",
            "--ansible",
            ".",
        ])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("master-z") && stderr.contains("master-a"),
        "{stderr}"
    );
    // A missing playbook is named before anything runs.
    let out = Command::new(vauban_bin())
        .args([
            "--store",
            "store",
            "build",
            "--name",
            "master-a",
            "--ansible",
            ".",
            "--stage",
            "rootfs",
            "--check",
        ])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
}

#[test]
fn keys_imported_from_the_originals_vault_are_the_conffs_keys_byte_for_byte() {
    let w = World::new("");
    let hosts = ["web01", "web02"];
    let passphrase = w.path("vaulted-sshd-keys-key");
    std::fs::write(&passphrase, "the VAULTED_SSHD_KEYS_KEY of the site\n").unwrap();
    for host in hosts {
        original_keys::make_host_keys(&w.path("original-keys"), host);
    }
    original_keys::pack_vault(
        &w.path("original-keys"),
        &hosts,
        &w.path("vault"),
        &passphrase,
    );
    let original = |host: &str, file: &str| {
        std::fs::read(w.path(&format!("original-keys/{host}/etc/ssh/{file}"))).unwrap()
    };
    let keys = |args: &[&str]| {
        let mut all = vec![
            "keys",
            "--keystore",
            "keys/hostkeys.age",
            "--keystore-key-file",
            "key.txt",
        ];
        all.extend(args);
        let out = w.cmd(&all).output().unwrap();
        assert!(
            out.status.success(),
            "vauban {all:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };

    let passphrase = passphrase.to_str().unwrap();
    let imported = keys(&["import", "--gpg", "vault", "--passphrase-file", passphrase]);
    assert_eq!(imported, "web01: added\nweb02: added\n");
    let again = keys(&["import", "--gpg", "vault", "--passphrase-file", passphrase]);
    assert_eq!(
        again,
        "web01: skipped, already in the store with these keys\n\
         web02: skipped, already in the store with these keys\n"
    );

    // `keys list` shows ssh-keygen's fingerprints, `show --public` the .pub lines.
    let listed = keys(&["list"]);
    for host in hosts {
        for kind in ["ed25519", "ecdsa", "rsa"] {
            let public = w.path(&format!(
                "original-keys/{host}/etc/ssh/ssh_host_{kind}_key.pub"
            ));
            let by_ssh_keygen = original_keys::run_in(
                &w.path("."),
                "ssh-keygen",
                &["-l", "-f", public.to_str().unwrap()],
            );
            let fingerprint = by_ssh_keygen.split_whitespace().nth(1).unwrap();
            assert!(
                listed
                    .lines()
                    .any(|l| l.starts_with(&format!("{host}  {kind} ")) && l.contains(fingerprint)),
                "{host} {kind} {fingerprint} not in:\n{listed}"
            );
        }
        let shown = keys(&["show", host, "--public"]);
        let pubs: Vec<u8> = ["ed25519", "ecdsa", "rsa"]
            .iter()
            .flat_map(|kind| original(host, &format!("ssh_host_{kind}_key.pub")))
            .collect();
        assert_eq!(shown.as_bytes(), pubs, "{host}");
    }

    // A conffs build of those hosts carries the very files.
    w.build_ok(&[
        "--name",
        "master-web",
        "--stage",
        "conffs",
        "--build-parents",
        "-1",
    ]);
    for host in hosts {
        let conffs = w.conffs(host);
        let mut key_files: Vec<&str> = conffs
            .keys()
            .filter_map(|p| p.strip_prefix("etc/ssh/"))
            .filter(|name| name.starts_with("ssh_host_"))
            .collect();
        key_files.sort();
        assert_eq!(key_files.len(), 6, "{host}: {key_files:?}");
        for file in key_files {
            let (mode, uid, contents) = &conffs[&format!("etc/ssh/{file}")];
            assert_eq!(*contents, original(host, file), "{host}: {file} changed");
            let expected = if file.ends_with(".pub") { 0o644 } else { 0o600 };
            assert_eq!((mode & 0o7777, *uid), (expected, 0), "{host}: {file}");
        }
    }
    assert_private(&w);
}

/// What `cat PATHS` prints in the store's image `name` (a sandbox over it).
fn image_text(w: &World, name: &str, paths: &[&str]) -> String {
    let mut args = vec!["run", name, "--", "cat"];
    args.extend(paths);
    let out = w.cmd(&args).output().unwrap();
    assert!(
        out.status.success(),
        "vauban run {name} cat {paths:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The rootfs of `master-base`, its release first.
const BASE_ROOTFS: &[&str] = &[
    "--name",
    "master-base",
    "--stage",
    "rootfs",
    "--build-parents",
    "-1",
];

#[test]
fn a_release_named_by_its_suite_is_bootstrapped_by_mmdebstrap() {
    // The original's current engine: no source key, the key is the suite.
    let w = World::with_release("", "");
    let out = w
        .cmd(&[&["build", "--check", "--log-dir", "logs"], BASE_ROOTFS].concat())
        .output()
        .unwrap();
    let plan = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{plan}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let release = plan
        .lines()
        .find(|l| l.starts_with("release bookworm"))
        .unwrap_or_else(|| panic!("no release row in:\n{plan}"));
    assert!(
        release.contains("mmdebstrap bookworm (the key's suite")
            && release.contains("runs (never built)"),
        "{release}"
    );

    let ran = w.build_ok(BASE_ROOTFS);
    assert_eq!(ran, pairs(&[("base.yml", "master-base")]));
    // The original's debootstrap set, and the stage on it.
    let text = image_text(&w, "master-base", &["/imginfo", "/packages", "/etc/motd"]);
    for wanted in [
        "\ndebian_release: bookworm\n",
        "\n    - date: ",
        "\n      playbook: base.yml\n      hostname: master-base\n      source: debian-12\n",
        "\n- source: debian-12\n  hostname: master-base\n  packages: |\n",
        "\n          + openssh-server/",
        "\n          + python3/",
        "\n          + sudo/",
        "\n- playbook: base.yml\n  hostname: master-base\n  packages: \"\"\n",
    ] {
        assert!(text.contains(wanted), "{wanted:?} not in:\n{text}");
    }
    assert!(
        !text.contains("+ ifupdown/"),
        "the original left ifupdown out"
    );
    // Made once: a second build finds the release in the cache.
    let out = w.build(BASE_ROOTFS);
    assert!(out.status.success());
    assert!(
        ran_nothing(&out, "bookworm"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// Whether a build ran no stage and found the release `key` in the cache.
fn ran_nothing(out: &Output, key: &str) -> bool {
    let release = format!("release {key}");
    ran(out).is_empty()
        && String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .any(|v| v["event"] == "cache_hit" && v["step"] == release.as_str())
}

#[test]
fn never_upload_pushes_the_images_but_not_the_boot_files() {
    // As the original: never_upload skipped the boot files' upload and
    // `deployed`; every image was pushed all the same (children build on them).
    // `--stage disk` is `all` and each host's disk image, made rootless.
    let w = World::from_fixture("  never_upload: [master-web]\n", "debian-boot.tar");
    let registry = registry_server::Registry::open();
    let reg = format!("{}/vauban", registry.host());
    w.build_ok(&[
        "--name",
        "master-web",
        "--stage",
        "disk",
        "--build-parents",
        "-1",
        "--registry",
        &reg,
        "--tls-verify=false",
    ]);
    assert!(w.path("out/master-web/rootfs.img").is_file());
    check_disks(&w);
    for image in ["master-base", "master-web", "master-web/web01"] {
        let tags = skopeo_tags(&format!("{reg}/{image}"));
        assert!(tags.contains(&"latest".to_string()), "{image}: {tags:?}");
    }
    let boot = Command::new("skopeo")
        .args([
            "list-tags",
            "--tls-verify=false",
            &format!("docker://{reg}/master-web/boot"),
        ])
        .output()
        .unwrap();
    assert!(
        !boot.status.success(),
        "the boot files of a never_upload master were pushed: {}",
        String::from_utf8_lossy(&boot.stdout)
    );
    // Nor is `deployed` moved without --force.
    let out = w.deploy("master-web", &reg);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("never_upload"));
    assert!(!skopeo_tags(&format!("{reg}/master-web")).contains(&"deployed".to_string()));
}

/// Each host's disk image of `--stage disk`: private, out of
/// `SHA256SUMS`, one entry booting its own conffs from the data partition;
/// `vauban disk --update` to the same build writes nothing.
fn check_disks(w: &World) {
    let sums = std::fs::read_to_string(w.path("out/SHA256SUMS")).unwrap();
    assert!(!sums.contains("disks/"), "{sums}");
    for host in ["web01", "web02"] {
        let disk = w.path(&format!("out/disks/master-web/{host}.raw"));
        assert_eq!(mode(&disk), 0o600, "{}", disk.display());
        let list = w
            .cmd(&["disk", "--list", disk.to_str().unwrap(), "--json"])
            .output()
            .unwrap();
        assert!(
            list.status.success(),
            "{}",
            String::from_utf8_lossy(&list.stderr)
        );
        let report: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
        let entries = report["entries"].as_array().unwrap();
        assert_eq!(entries.len(), 1, "{report:#}");
        let options = entries[0]["options"].as_str().unwrap();
        assert!(options.starts_with("root=live:PARTUUID="), "{options}");
        assert!(
            options
                .split(' ')
                .any(|w| w.starts_with("vauban.conffs=")
                    && w.ends_with(&format!("/conffs-{host}.tgz"))),
            "{options}"
        );
        let again = w
            .cmd(&[
                "disk",
                "master-web",
                host,
                "--update",
                disk.to_str().unwrap(),
            ])
            .output()
            .unwrap();
        let printed = String::from_utf8_lossy(&again.stdout);
        assert!(
            again.status.success(),
            "{}",
            String::from_utf8_lossy(&again.stderr)
        );
        assert!(printed.contains("nothing written"), "{printed}");
    }
}
