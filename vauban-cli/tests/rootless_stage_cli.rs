//! `vauban stage` with the real binary, as an unprivileged user (run by
//! `cargo xtask test` as `vauban-test`): a playbook of the test Ansible
//! repository gives the image one more layer holding its change; a failing
//! playbook exits 1 naming the task and commits nothing; Ansible's output is
//! shown with its control characters escaped.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::{Mutex, MutexGuard, OnceLock};

mod cli_support;

use cli_support::{fixture, stdout_if_ok, testdata, unprivileged, vauban_bin};

/// One build at a time: one shared store, two cores.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    unprivileged();
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn ansible_repo() -> PathBuf {
    let dir = testdata().join("ansible");
    assert!(
        dir.join("second.yml").is_file(),
        "test Ansible repository {} missing (set VAUBAN_TESTDATA)",
        dir.display()
    );
    dir
}

/// A store with the Debian fixture imported as `debian`, plus a home, cache and
/// log dir, all under one directory emptied first (static storage never drops
/// it: at most one is left behind) and removed inside the user namespace (it
/// holds files owned by subordinate ids).
struct Work {
    dir: PathBuf,
}

impl Work {
    fn shared() -> &'static Work {
        static WORK: OnceLock<Work> = OnceLock::new();
        WORK.get_or_init(|| {
            unprivileged();
            let dir = std::env::temp_dir().join("vauban-stage-cli");
            if dir.exists() {
                vauban_core::sandbox::remove_dir_all(
                    &dir,
                    &vauban_core::sandbox::Helper::at(cli_support::vauban_bin()),
                )
                .unwrap_or_else(|e| panic!("cannot remove {}: {e}", dir.display()));
            }
            for sub in ["home", "cache", "logs"] {
                std::fs::create_dir_all(dir.join(sub)).unwrap();
            }
            let work = Work { dir };
            let debian = fixture("debian.tar");
            work.ok(&["import", debian.to_str().unwrap(), "--tag", "debian"]);
            work
        })
    }

    fn store(&self) -> PathBuf {
        self.dir.join("store")
    }

    /// `vauban ARGS...` on the store, with a private home and none of the
    /// variables that change what `vauban stage` or Ansible do.
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(vauban_bin());
        c.args(args);
        for (k, _) in std::env::vars_os() {
            let k = k.to_string_lossy();
            if k.starts_with("ANSIBLE_") || k.starts_with("HOOK_") || k.starts_with("VAUBAN_") {
                c.env_remove(&*k);
            }
        }
        c.env_remove("RUST_LOG")
            .env("VAUBAN_STORE", self.store())
            .env("HOME", self.dir.join("home"))
            .env("XDG_CACHE_HOME", self.dir.join("cache"))
            .env("XDG_STATE_HOME", self.dir.join("home"));
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("cannot start vauban")
    }

    fn ok(&self, args: &[&str]) -> String {
        stdout_if_ok(args, &self.run(args))
    }

    fn inspect(&self, image: &str) -> serde_json::Value {
        serde_json::from_str(&self.ok(&["inspect", image])).unwrap()
    }

    /// `vauban stage debian --ansible REPO --host web01 --commit COMMIT PLAYBOOK`.
    fn stage(&self, commit: &str, playbook: &str) -> Output {
        let repo = ansible_repo();
        let logs = self.dir.join("logs");
        // `-v`: Ansible's own lines, which these tests read.
        self.run(&[
            "-v",
            "stage",
            "debian",
            "--ansible",
            repo.to_str().unwrap(),
            "--host",
            "web01",
            "--commit",
            commit,
            "--cache-dir",
            self.dir.join("cache").to_str().unwrap(),
            "--log-dir",
            logs.to_str().unwrap(),
            playbook,
        ])
    }

    /// The files of a layer blob, by path, with their content.
    fn layer_files(&self, layer: &serde_json::Value) -> BTreeMap<String, Vec<u8>> {
        let digest = layer["digest"].as_str().unwrap();
        let hex = digest.strip_prefix("sha256:").unwrap();
        let blob = std::fs::File::open(self.store().join("blobs/sha256").join(hex)).unwrap();
        let media_type = layer["mediaType"].as_str().unwrap();
        let tar = vauban_oci::layer::decompressor(media_type, std::io::BufReader::new(blob))
            .unwrap_or_else(|e| panic!("layer {digest}: {e}"));
        let mut archive = tar::Archive::new(tar);
        let mut out = BTreeMap::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let path = entry.path().unwrap().to_string_lossy().into_owned();
            let mut content = Vec::new();
            entry.read_to_end(&mut content).unwrap();
            out.insert(path.trim_end_matches('/').to_string(), content);
        }
        out
    }

    /// Entries of `STORE/tmp` (sandbox dirs, temp blobs).
    fn tmp_entries(&self) -> Vec<String> {
        std::fs::read_dir(self.store().join("tmp"))
            .map(|d| {
                d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }
}

#[test]
fn a_stage_adds_one_layer_with_the_playbook_change() {
    let _serial = serial();
    let work = Work::shared();
    let base = work.inspect("debian");
    let base_layers = base["layers"].as_array().unwrap().clone();

    let out = work.stage("web:1", "second.yml");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "vauban stage failed ({}):\n{stdout}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    // The last line names the image and its digest.
    let last = stdout.lines().last().unwrap_or_default();
    let built = work.inspect("web:1");
    assert_eq!(
        last,
        format!("web:1 {}", built["manifestDigest"].as_str().unwrap())
    );

    // One more layer, on top of the base's unchanged ones.
    let layers = built["layers"].as_array().unwrap();
    assert_eq!(layers.len(), base_layers.len() + 1, "{built:#}");
    assert_eq!(layers[..base_layers.len()], base_layers[..]);

    // That layer holds what the playbook wrote, for this host, and the metadata.
    let files = work.layer_files(layers.last().unwrap());
    let second = files
        .get("etc/vauban-second")
        .unwrap_or_else(|| panic!("etc/vauban-second not in the layer: {:?}", files.keys()));
    let second = String::from_utf8_lossy(second);
    assert!(second.contains("first_stage_seen=False"), "{second}");
    assert!(second.contains("greeting=hello from web01"), "{second}");
    let imginfo = String::from_utf8_lossy(files.get("imginfo").expect("imginfo in the layer"));
    assert!(
        imginfo.contains("second.yml") && imginfo.contains("web01"),
        "{imginfo}"
    );
    assert_eq!(
        work.tmp_entries(),
        Vec::<String>::new(),
        "STORE/tmp not empty"
    );
}

#[test]
fn a_failing_playbook_exits_1_naming_the_task() {
    let _serial = serial();
    let work = Work::shared();
    let images_before = work.ok(&["images"]);

    let out = work.stage("web:failed", "failing.yml");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let error = stderr
        .lines()
        .find(|l| l.starts_with("vauban: error:"))
        .unwrap_or_else(|| panic!("no error line:\n{stderr}"));
    assert!(error.contains("This task always fails"), "{error}");
    assert!(error.contains("web01"), "{error}");

    // Nothing committed, nothing left behind.
    assert_eq!(work.run(&["inspect", "web:failed"]).status.code(), Some(1));
    assert_eq!(work.ok(&["images"]), images_before);
    assert_eq!(
        work.tmp_entries(),
        Vec::<String>::new(),
        "STORE/tmp not empty"
    );
}

/// Ansible's `--diff` prints the old text of a file holding terminal escape
/// sequences: `vauban stage` shows it escaped, and nothing it prints (not a
/// terminal: no colour, no bar) holds a control character.
#[test]
fn hostile_output_is_shown_escaped() {
    let _serial = serial();
    let work = Work::shared();
    let out = work.stage("hostile:1", "hostile-output.yml");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "vauban stage failed ({}):\n{stdout:?}{stderr:?}",
        out.status
    );
    assert!(
        stdout.contains("[stage hostile-output.yml] -title\\x1b]0;pwned\\x07\\x1b[2J\\x9b2J\n"),
        "{stdout:?}"
    );
    for (name, text) in [("stdout", &stdout), ("stderr", &stderr)] {
        assert!(
            !text
                .chars()
                .any(|c| c.is_control() && c != '\n' && c != '\t'),
            "a control character on {name}: {text:?}"
        );
    }
}

impl Work {
    /// `vauban stage` with any arguments after the image (cache and logs set).
    fn stage_with(&self, args: &[&str]) -> Output {
        let logs = self.dir.join("logs");
        let cache = self.dir.join("cache");
        let mut all = vec![
            "stage",
            "debian",
            "--cache-dir",
            cache.to_str().unwrap(),
            "--log-dir",
            logs.to_str().unwrap(),
        ];
        all.extend_from_slice(args);
        self.run(&all)
    }

    /// The names of the store's images (intermediates included).
    fn names(&self) -> Vec<String> {
        self.ok(&["images", "--all"])
            .lines()
            .skip(1)
            .filter_map(|l| l.split_whitespace().next().map(String::from))
            .collect()
    }

    /// The files of the last layer of the image whose manifest is `digest`.
    fn last_layer_of(&self, digest: &str) -> BTreeMap<String, Vec<u8>> {
        let store = vauban_oci::store::Store::open(self.store()).unwrap();
        let d = vauban_oci::Digest::parse(digest).unwrap();
        let desc = vauban_oci::oci_spec::image::Descriptor::new(
            vauban_oci::oci_spec::image::MediaType::ImageManifest,
            0,
            vauban_oci::image::oci_digest(&d),
        );
        let image = vauban_oci::Image::from_descriptor(&store, &desc).unwrap();
        let layer = serde_json::to_value(image.layers().last().unwrap()).unwrap();
        self.layer_files(&layer)
    }
}

/// Exit 1, one error line holding every needle; the error line.
fn user_error(out: &Output, needles: &[&str]) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let error = stderr
        .lines()
        .find(|l| l.starts_with("vauban: error:"))
        .unwrap_or_else(|| panic!("no error line:\n{stderr}"))
        .to_string();
    for n in needles {
        assert!(error.contains(n), "{n:?} not in {error}");
    }
    error
}

/// `--ansible ./ansible` from the repository's parent builds what the
/// absolute path builds (the path is resolved once, where it was typed).
#[test]
fn a_relative_ansible_path_builds_the_same_layer() {
    let _serial = serial();
    let work = Work::shared();
    let repo = ansible_repo();
    let abs = work.stage_with(&[
        "--ansible",
        repo.to_str().unwrap(),
        "--host",
        "web01",
        "--commit",
        "rel:abs",
        "second.yml",
    ]);
    let abs = stdout_if_ok(&["stage"], &abs);
    let mut cmd = work.cmd(&[
        "stage",
        "debian",
        "--ansible",
        "./ansible",
        "--host",
        "web01",
        "--commit",
        "rel:rel",
        "--cache-dir",
        work.dir.join("cache").to_str().unwrap(),
        "--log-dir",
        work.dir.join("logs").to_str().unwrap(),
        "second.yml",
    ]);
    cmd.current_dir(repo.parent().unwrap());
    let rel = stdout_if_ok(&["stage", "./ansible"], &cmd.output().unwrap());
    let digest = |out: &str| {
        out.lines()
            .last()
            .unwrap()
            .split(' ')
            .nth(1)
            .unwrap()
            .to_string()
    };
    let (a, r) = (
        work.last_layer_of(&digest(&abs)),
        work.last_layer_of(&digest(&rel)),
    );
    let names = |m: &BTreeMap<String, Vec<u8>>| m.keys().cloned().collect::<Vec<_>>();
    assert_eq!(names(&a), names(&r));
    assert_eq!(a["etc/vauban-second"], r["etc/vauban-second"]);
    assert!(String::from_utf8_lossy(&r["etc/vauban-second"]).contains("hello from web01"));
}

/// A host that no play matches, a typo'd inventory, a missing playbook (named
/// with a suggestion before any stage runs) and a syntax error: exit 1, nothing
/// named.
#[test]
fn stages_that_cannot_build_anything_fail_before_committing() {
    let _serial = serial();
    let work = Work::shared();
    let repo = ansible_repo();
    let repo = repo.to_str().unwrap();
    let before = work.names();

    let out = work.stage_with(&[
        "--ansible",
        repo,
        "--host",
        "web03",
        "--commit",
        "bad:1",
        "web-only.yml",
    ]);
    user_error(&out, &["ran nothing for host web03", "web", "no group"]);

    let out = work.stage_with(&[
        "--ansible",
        repo,
        "--host",
        "web01",
        "--inventory",
        "inventry",
        "--commit",
        "bad:2",
        "second.yml",
    ]);
    user_error(&out, &["inventry"]);

    let out = work.stage_with(&[
        "--ansible",
        repo,
        "--host",
        "web01",
        "--commit",
        "bad:3",
        "base.yml",
        "secnd.yml",
    ]);
    let error = user_error(&out, &["secnd.yml", "did you mean \"second.yml\""]);
    assert!(!error.contains("base.yml failed"), "{error}");

    let broken = tempfile::tempdir().unwrap();
    let copy = broken.path().join("ansible");
    let st = Command::new("cp")
        .args(["-r", repo, copy.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(st.success());
    std::fs::write(
        copy.join("broken.yml"),
        "- hosts: all\n  tasks:\n    - name: x\n      no_such_module_anywhere: {}\n",
    )
    .unwrap();
    let out = work.stage_with(&[
        "--ansible",
        copy.to_str().unwrap(),
        "--host",
        "web01",
        "--commit",
        "bad:4",
        "second.yml",
        "broken.yml",
    ]);
    user_error(&out, &["syntax-check", "broken.yml"]);

    assert_eq!(work.names(), before, "a failed stage named an image");
    assert_eq!(work.tmp_entries(), Vec::<String>::new());
}

/// Two `vauban stage` processes at once on one store, with the same `--commit`
/// name, for two hosts: each result holds only its own host's files.
#[test]
fn two_hosts_at_once_never_mix() {
    let _serial = serial();
    let work = Work::shared();
    let repo = ansible_repo();
    let spawn = |host: &str| {
        let logs = work.dir.join("logs");
        let cache = work.dir.join("cache");
        work.cmd(&[
            "stage",
            "debian",
            "--ansible",
            repo.to_str().unwrap(),
            "--host",
            host,
            "--commit",
            "same:1",
            "--cache-dir",
            cache.to_str().unwrap(),
            "--log-dir",
            logs.to_str().unwrap(),
            "base.yml",
            "second.yml",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
    };
    let (a, b) = (spawn("web01"), spawn("db01"));
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    for (host, out) in [("web01", a), ("db01", b)] {
        let stdout = stdout_if_ok(&["stage", host], &out);
        let digest = stdout
            .lines()
            .last()
            .unwrap()
            .split(' ')
            .nth(1)
            .unwrap()
            .to_string();
        let files = work.last_layer_of(&digest);
        let second = String::from_utf8_lossy(&files["etc/vauban-second"]).into_owned();
        assert!(
            second.contains(&format!("hello from {host}")),
            "{host}: {second}"
        );
        assert!(second.contains("first_stage_seen=True"), "{host}: {second}");
        let imginfo = String::from_utf8_lossy(&files["imginfo"]).into_owned();
        assert!(
            imginfo.contains(&format!("hostname: {host}\n")),
            "{host}: {imginfo}"
        );
        let other = if host == "web01" { "db01" } else { "web01" };
        assert!(
            !imginfo.contains(other),
            "{host} holds {other}'s build: {imginfo}"
        );
        assert!(
            !second.contains(other),
            "{host} holds {other}'s file: {second}"
        );
    }
}

/// `--events json`: every line of stdout is one event, and a stage run says,
/// in order, that it started, Ansible's lines, the commit and its end.
#[test]
fn events_json_follows_a_stage() {
    let _serial = serial();
    let work = Work::shared();
    let repo = ansible_repo();
    let out = work.run(&[
        "--events",
        "json",
        "stage",
        "debian",
        "--ansible",
        repo.to_str().unwrap(),
        "--host",
        "web01",
        "--commit",
        "ev:1",
        "--cache-dir",
        work.dir.join("cache").to_str().unwrap(),
        "--log-dir",
        work.dir.join("logs").to_str().unwrap(),
        "second.yml",
    ]);
    let stdout = stdout_if_ok(&["--events", "json", "stage"], &out);
    let events: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect();
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    let pos = |k: &str| {
        kinds
            .iter()
            .position(|x| *x == k)
            .unwrap_or_else(|| panic!("no {k}: {kinds:?}"))
    };
    let (started, committed, finished) = (
        pos("stage_started"),
        pos("committed"),
        pos("stage_finished"),
    );
    let first_line = pos("ansible_line");
    assert!(
        started < first_line && first_line < committed && committed < finished,
        "{kinds:?}"
    );
    for e in &events {
        assert!(e["time"].as_str().is_some(), "{e}");
    }
    let line = &events[first_line];
    assert_eq!(line["stage"], "second.yml");
    assert_eq!(line["host"], "web01");
    assert_eq!(events[started]["host"], "web01");
    let image = events[finished]["image"].as_str().unwrap();
    assert_eq!(events[committed]["image"].as_str().unwrap(), image);
    assert!(kinds.iter().filter(|k| **k == "ansible_line").count() > 3);
}
