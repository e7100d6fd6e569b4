//! A site moving from the original: its own `config.yml` (`testdata/original`,
//! copied as it is) checks with no warning and plans with `vauban build --check`
//! (its cloud images are named, never fetched: nothing leaves loopback); a
//! site's config in its shape (`testdata/original/site`) gets one warning per
//! thing the original ignored, in file order, and `--strict` refuses it; the
//! original's spelling `--config-path`; a misspelt key is a warning with its
//! file and line, an error with `--strict`; two masters of one name are an error
//! saying what the original did; a release named by its suite is planned as
//! mmdebstrap; `vauban deploy` of a `never_upload` master is refused before any
//! registry is reached.

mod cli_support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use cli_support::{copy_dir, git, stdout_if_ok, testdata, vauban_bin};

/// A working directory with the original's config and its Ansible repository
/// committed to git (branches `master` and `example`).
struct Site {
    dir: tempfile::TempDir,
}

impl Site {
    fn new() -> Site {
        let dir = tempfile::tempdir().unwrap();
        let site = Site { dir };
        let original = testdata().join("original");
        std::fs::copy(original.join("config.yml"), site.path("config.yml")).unwrap();
        copy_dir(&original.join("ansible"), &site.path("ansible"));
        let git = |args: &[&str]| git(&site.path("ansible"), args);
        git(&["init", "-q", "-b", "master"]);
        git(&["add", "-A"]);
        git(&["commit", "-qm", "the example repository"]);
        git(&["branch", "example"]);
        site
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn write(&self, rel: &str, text: &str) -> PathBuf {
        let path = self.path(rel);
        std::fs::write(&path, text).unwrap();
        path
    }

    fn vauban(&self, args: &[&str]) -> Output {
        Command::new(vauban_bin())
            .arg("--store")
            .arg(self.path("store"))
            .args(args)
            .current_dir(self.dir.path())
            .env_remove("RUST_LOG")
            .env_remove("VAUBAN_STORE")
            .env_remove("VAUBAN_ANSIBLE")
            .env("XDG_CONFIG_HOME", self.path("xdg/config"))
            .env("XDG_DATA_HOME", self.path("xdg/data"))
            .env("XDG_STATE_HOME", self.path("xdg/state"))
            .env("XDG_CACHE_HOME", self.path("xdg/cache"))
            .output()
            .unwrap()
    }

    /// `vauban build --check` of `name` and its whole chain, as JSON rows.
    fn check(&self, config: &Path, name: &str) -> Vec<serde_json::Value> {
        let repo = format!("file://{}", self.path("ansible").display());
        let config = config.to_str().unwrap();
        let args = [
            "--events",
            "json",
            "build",
            "--check",
            "--name",
            name,
            "--build-parents",
            "-1",
            "--config-path",
            config,
            "--ansible",
            &repo,
        ];
        let out = self.vauban(&args);
        let stdout = stdout_if_ok(&args, &out);
        // The steps are the last line; the events come before it.
        let last = stdout.lines().last().unwrap_or_default();
        serde_json::from_str::<Vec<serde_json::Value>>(last)
            .unwrap_or_else(|e| panic!("{e}: {stdout}"))
    }
}

fn row<'a>(
    rows: &'a [serde_json::Value],
    step: &str,
    stage: Option<&str>,
) -> &'a serde_json::Value {
    rows.iter()
        .find(|r| r["step"] == step && (stage.is_none() || r["stage"] == stage.unwrap()))
        .unwrap_or_else(|| panic!("no row {step} {stage:?} in {rows:#?}"))
}

#[test]
fn the_originals_config_checks_and_plans_without_a_fetch() {
    let site = Site::new();
    let args = ["config", "check", "--config-path", "config.yml"];
    let out = site.vauban(&args);
    let listing = stdout_if_ok(&args, &out);
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for line in [
        "debian-11/iso  (release: cloud image https://cloud.debian.org/images/cloud/bullseye/latest/debian-11-generic-amd64.raw)",
        "  master-11-example",
        "    master-11-example-2  (conffs backend*)",
        "    master-12-sub-example  (conffs backend*)",
    ] {
        assert!(
            listing.lines().any(|l| l == line),
            "{line:?} not in:\n{listing}"
        );
    }

    let rows = site.check(&site.path("config.yml"), "master-12-sub-example");
    let release = row(&rows, "release debian-12-generic-amd64.raw", None);
    assert_eq!(
        release["stage"],
        "cloud image https://cloud.debian.org/images/cloud/bookworm/latest/debian-12-generic-amd64.raw"
    );
    assert_eq!(release["name"], "debian-12/iso");
    assert_eq!(release["status"]["status"], "run");
    assert_eq!(
        row(&rows, "rootfs master-12-example", Some("playbook.yml"))["name"],
        "master-12-example/playbook.yml:latest"
    );
    row(&rows, "rootfs master-12-sub-example", Some("playbook2.yml"));
    // A row per host of the conffs.
    let conffs_hosts: Vec<&serde_json::Value> = rows
        .iter()
        .filter(|r| r["step"] == "conffs master-12-sub-example")
        .flat_map(|r| r["hosts"].as_array().unwrap())
        .collect();
    assert_eq!(conffs_hosts, ["backend01", "backend02"], "{rows:#?}");
    row(&rows, "initramfs master-12-sub-example", None);
    // Nothing was fetched: no release base in the store, no download anywhere.
    let images = site.vauban(&["images"]);
    assert!(
        !String::from_utf8_lossy(&images.stdout).contains("debian"),
        "{}",
        String::from_utf8_lossy(&images.stdout)
    );
}

#[test]
fn a_sites_config_in_the_originals_shape_gets_a_warning_for_each_thing_ignored() {
    // Read where it is: `config check` writes nothing.
    let dir = testdata().join("original/site");
    let (config, ansible) = (dir.join("config.yml"), dir.join("ansible"));
    let site = Site::new();
    let args = [
        "config",
        "check",
        "--config-path",
        config.to_str().unwrap(),
        "--ansible",
        ansible.to_str().unwrap(),
    ];
    let out = site.vauban(&args);
    let listing = stdout_if_ok(&args, &out);
    assert_eq!(
        listing,
        "debian-11/iso  (release: cloud image \
         https://cloud.debian.org/images/cloud/bullseye/latest/debian-11-generic-amd64.raw)\n\
         \x20 master-11-legacy  (conffs legacy*)\n\
         debian-12/iso  (release: mmdebstrap bookworm (the key's suite, the original's packages))\n\
         \x20 master-12-base\n\
         \x20   master-12-web  (conffs web*)\n\
         \x20   master-12-db  (conffs db*)\n\
         \x20   master-12-lab  (conffs lab01)\n"
    );
    let at =
        |line_column: &str, path: &str| format!("{}:{line_column} at `{path}`", config.display());
    let expected = [
        format!(
            "warning: {}: unknown key `registry` in `configuration`, ignored; valid keys here: \
             ignore_stage_in_conffs, never_upload, always_apply_stage_in_conffs, ansible, \
             ansible_root, conffs_size_limit, dracut_conf, initramfs_release, kernel_args, \
             squashfs_compression, resolv_conf, boot_url, network, network_allow, notify, executor",
            at("16:3", "configuration.registry")
        ),
        format!(
            "warning: {}: unknown key `description` in a master, ignored; valid keys here: name, \
             stages, conffs, branch, schedule, schedule_options, kernel_args, deploy, drift_report",
            at("41:7", "bookworm.master-12-base.master-12-web.description")
        ),
        format!(
            "warning: {}: master `master-12-db` has neither `stages` nor child masters: its image \
             is its parent's",
            at("47:5", "bookworm.master-12-base.master-12-db")
        ),
        format!(
            "warning: {}: unknown key `stage` in a master, ignored (did you mean `stages`?)",
            at("48:7", "bookworm.master-12-base.master-12-db.stage")
        ),
        format!(
            "warning: {}: unknown key `master-12-cache` in a master, ignored (a child master is a \
             mapping: `master-12-cache: {{stages: [...]}}`)",
            at("56:5", "bookworm.master-12-base.master-12-cache")
        ),
    ];
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().collect::<Vec<_>>(), expected);

    let mut strict = args.to_vec();
    strict.push("--strict");
    let out = site.vauban(&strict);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("holds 5 warning(s), errors with --strict"),
        "{stderr}"
    );
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn a_release_named_by_its_suite_is_planned_as_mmdebstrap() {
    let site = Site::new();
    let config = site.write(
        "suite.yml",
        "bookworm:\n  name: debian-12/iso\n  master-12-example:\n    stages: [playbook.yml]\n",
    );
    let rows = site.check(&config, "master-12-example");
    let release = row(&rows, "release bookworm", None);
    assert_eq!(
        release["stage"],
        "mmdebstrap bookworm (the key's suite, the original's packages)"
    );
    assert_eq!(release["status"]["status"], "run");

    // Any other key without a source says which keys name a suite.
    site.write("bad.yml", "lenny-ish:\n  m:\n    stages: [playbook.yml]\n");
    let out = site.vauban(&["config", "check", "--config", "bad.yml"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for wanted in ["bad.yml:1:1", "has no source", "bookworm", "`debian-NN`"] {
        assert!(stderr.contains(wanted), "{wanted:?} not in {stderr}");
    }
}

#[test]
fn a_misspelt_key_warns_with_its_line_and_strict_fails() {
    let site = Site::new();
    site.write(
        "typo.yml",
        "bookworm:\n  master-a:\n    stages: [playbook.yml]\n    master-b:\n      stage: [playbook2.yml]\n      stages: [playbook2.yml]\n",
    );
    let out = site.vauban(&["config", "check", "--config", "typo.yml"]);
    let stdout = stdout_if_ok(&["config", "check"], &out);
    assert!(stdout.contains("    master-b"), "{stdout}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let warning = format!(
        "warning: {}:5:7 at `bookworm.master-a.master-b.stage`: unknown key `stage` in a \
         master, ignored (did you mean `stages`?)",
        site.path("typo.yml").display()
    );
    assert_eq!(stderr.trim_end(), warning);

    let out = site.vauban(&["config", "check", "--config", "typo.yml", "--strict"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.starts_with(&warning), "{stderr}");
    assert!(
        stderr.contains("vauban: error: ")
            && stderr.contains("holds 1 warning(s), errors with --strict"),
        "{stderr}"
    );

    // `vauban build` shows it too, first, and goes on (here to its plan).
    let repo = format!("file://{}", site.path("ansible").display());
    let args = [
        "build",
        "--check",
        "--name",
        "master-b",
        "--build-parents",
        "-1",
        "--config",
        "typo.yml",
        "--ansible",
        &repo,
    ];
    let out = site.vauban(&args);
    stdout_if_ok(&args, &out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("typo.yml:5:7") && stderr.contains("did you mean `stages`?"),
        "{stderr}"
    );
    // Once, as a warning (not also as a log line).
    assert_eq!(
        stderr.matches("did you mean `stages`?").count(),
        1,
        "{stderr}"
    );
    assert!(stderr.contains(&warning), "{stderr}");
}

#[test]
fn two_masters_of_one_name_are_an_error_that_says_what_the_original_did() {
    let site = Site::new();
    site.write(
        "twice.yml",
        "bookworm:\n  web:\n    stages: [playbook.yml]\n  other:\n    name: web\n    stages: [playbook2.yml]\n",
    );
    let out = site.vauban(&["config", "check", "--config", "twice.yml"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Both places, each as file:line:column an editor jumps to.
    let file = site.path("twice.yml");
    let wanted = format!(
        "{0}:5:11 at `bookworm.other.name`: two masters are named `web`, this one and the one \
         at {0}:2:3 at `bookworm.web`: rename one (the original silently built the first)",
        file.display()
    );
    assert!(stderr.contains(&wanted), "{wanted:?} not in {stderr}");
}

#[test]
fn deploy_refuses_a_never_upload_master() {
    let site = Site::new();
    // The original's config.yml: master-11-example is never uploaded. The
    // registry is a closed port: the refusal comes before any connection.
    let args = [
        "deploy",
        "master-11-example",
        "--registry",
        "127.0.0.1:1/vauban",
        "--tls-verify=false",
    ];
    let out = site.vauban(&args);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("config.yml:10:7")
            && stderr.contains("`master-11-example` is in `never_upload`")
            && stderr.contains("--force"),
        "{stderr}"
    );
    // A host's image of it too; another master goes to the registry (and
    // fails there: nothing listens).
    let out = site.vauban(&[
        "deploy",
        "master-11-example/backend01",
        "--registry",
        "127.0.0.1:1/vauban",
    ]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("never_upload"));
    for args in [
        &[
            "deploy",
            "master-12-example",
            "--registry",
            "127.0.0.1:1/vauban",
        ][..],
        &[
            "deploy",
            "master-11-example",
            "--registry",
            "127.0.0.1:1/vauban",
            "--force",
        ],
    ] {
        let out = site.vauban(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_ne!(out.status.code(), Some(0), "{stderr}");
        assert!(!stderr.contains("never_upload"), "{args:?}: {stderr}");
    }
}

#[test]
fn an_mmdebstrap_that_signals_its_process_group_is_reported_not_fatal() {
    // mmdebstrap HUPs its whole process group when its tarball fails; this
    // stand-in does the same. Were vauban (and this test) in its group, the
    // HUP would kill them both instead of vauban saying what failed.
    let site = Site::new();
    let bin = site.path("fake-bin");
    std::fs::create_dir_all(&bin).unwrap();
    let fake = bin.join("mmdebstrap");
    std::fs::write(
        &fake,
        "#!/bin/sh\necho 'creating tarball failed: disk full' >&2\nkill -HUP 0\nexit 1\n",
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    site.write(
        "suite.yml",
        "bookworm:\n  master-a:\n    stages: [playbook.yml]\n",
    );
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new(vauban_bin())
        .arg("--store")
        .arg(site.path("store"))
        .args(["build", "--config", "suite.yml", "--name", "master-a"])
        .args(["--stage", "rootfs", "--ansible", "ansible"])
        .current_dir(site.dir.path())
        .env("PATH", path)
        .env("XDG_CONFIG_HOME", site.path("xdg/config"))
        .env("XDG_STATE_HOME", site.path("xdg/state"))
        .env("XDG_CACHE_HOME", site.path("xdg/cache"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("release bookworm: mmdebstrap")
            && stderr.contains("creating tarball failed: disk full"),
        "{stderr}"
    );
}

#[test]
fn config_check_says_what_it_cannot_read_as_a_directory() {
    let site = Site::new();
    let url = format!("file://{}", site.path("ansible").display());
    for (ansible, says) in [
        (
            url.as_str(),
            "`config check` reads a directory as it is on disk",
        ),
        (
            "no-such-dir",
            "the Ansible directory no-such-dir: no such directory",
        ),
    ] {
        let out = site.vauban(&[
            "config",
            "check",
            "--config",
            "config.yml",
            "--ansible",
            ansible,
        ]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains(says), "{stderr}");
    }
}
