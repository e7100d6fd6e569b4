//! Ansible stages for real, rootless, on the Debian fixture with the test Ansible
//! repository of `testdata/ansible`: the layer of a stage holds exactly the
//! playbook's change (owners, modes, whiteouts) plus `/imginfo` and `/packages`
//! (the original's formats);
//! stages stack; `branch@playbook.yml` takes that branch; a failed play commits
//! nothing; a host the inventory sends over ssh to 127.0.0.99 is still built in the
//! chroot; Ansible's lines reach the events with their control characters
//! escaped, and the logs are private. Needs the network to Debian's mirror (apt
//! inside the image).

use std::collections::BTreeMap;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard, OnceLock};

#[path = "sandbox_common/prelude.rs"]
mod prelude;

use prelude::{fixture, testdata, unprivileged};

use vauban_core::stage::{apply_stages, AnsibleSource, Hooks, Stage, StageSpec};
use vauban_core::Env;
use vauban_core::Error;
use vauban_oci::image::{self, HistoryEntry};
use vauban_oci::layer::{self, Compression, PackOptions};
use vauban_oci::store::Store;
use vauban_oci::{Image, Reference};

/// One build at a time: a shared store, two cores.
static SERIAL: Mutex<()> = Mutex::new(());
/// The store holding the imported fixtures, made once.
static STORE: OnceLock<PathBuf> = OnceLock::new();

fn serial() -> MutexGuard<'static, ()> {
    unprivileged();
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn import(store: &Store, tarball: &Path, name: &str) {
    let opts = PackOptions {
        compression: Compression::Zstd,
        source_date_epoch: None,
        exclude: Vec::new(),
    };
    let mut blob = store.blob_writer().unwrap();
    let file = std::fs::File::open(tarball).unwrap();
    let input = layer::sniff_decompressor(BufReader::new(file)).unwrap();
    let packed = layer::repack_tar(input, &opts, &mut blob).unwrap();
    blob.commit(Some(&packed.digest)).unwrap();
    let layer = packed.clone();
    let history = HistoryEntry {
        created_by: format!("test import {}", tarball.display()),
        created: image::created_now(),
        comment: None,
    };
    image::commit(
        store,
        None,
        &[layer],
        &history,
        &Reference::parse(name).unwrap(),
    )
    .unwrap();
}

/// The shared store, with `debian:test` and `busybox:test` imported.
fn store() -> Store {
    let root = STORE.get_or_init(|| {
        let dir = tempfile::Builder::new()
            .prefix("vauban-stage-test-")
            .tempdir()
            .unwrap()
            .keep();
        let store = Store::open(dir.join("store")).unwrap();
        import(&store, &fixture("debian.tar"), "debian:test");
        import(&store, &fixture("busybox.tar"), "busybox:test");
        dir.join("store")
    });
    Store::open(root).unwrap()
}

/// A private copy of the test Ansible repository (optionally a git repository).
fn ansible_copy(tmp: &Path) -> PathBuf {
    let dest = tmp.join("ansible");
    let st = Command::new("cp")
        .arg("-r")
        .arg(testdata().join("ansible"))
        .arg(&dest)
        .status()
        .unwrap();
    assert!(st.success());
    dest
}

/// A stage spec, and an environment of the test's own (its cache and logs,
/// Ansible's lines printed, the test helper).
fn options(tmp: &Path, source: AnsibleSource, prefix: &str) -> (StageSpec, Env) {
    let env = Env {
        cache_dir: tmp.join("cache"),
        log_dir: tmp.join("logs"),
        helper: Some(vauban_core::sandbox::Helper::at(
            std::env::var_os("VAUBAN_HELPER")
                .map(PathBuf::from)
                .unwrap_or_else(|| env!("CARGO_BIN_EXE_vauban-sandbox").into()),
        )),
        events: vauban_core::Events::to(std::sync::Arc::new(PrintLines)),
        network: vauban_core::sandbox::Network::isolated(),
        hidden: Vec::new(),
    };
    (StageSpec::new(source, prefix), env)
}

/// Prints Ansible's lines, as `vauban stage` does.
struct PrintLines;

impl vauban_core::EventSink for PrintLines {
    fn emit(&self, event: &vauban_core::Event) {
        if let vauban_core::Event::AnsibleLine { stage, line, .. } = event {
            println!("[stage {stage}] {line}");
        }
    }
}

fn stages(specs: &[&str]) -> Vec<Stage> {
    specs.iter().map(|s| Stage::parse(s).unwrap()).collect()
}

/// One entry of a layer tarball.
#[derive(Debug)]
struct Entry {
    kind: tar::EntryType,
    uid: u64,
    gid: u64,
    mode: u32,
    content: Vec<u8>,
}

impl Entry {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.content).into_owned()
    }
}

/// The entries of layer `index` of `image` (negative: from the top), by path.
fn layer_entries(store: &Store, image: &Image, index: isize) -> BTreeMap<String, Entry> {
    let layers = image.layers();
    let i = if index < 0 {
        layers.len() as isize + index
    } else {
        index
    } as usize;
    let desc = &layers[i];
    let digest = image::digest_of(desc).unwrap();
    let blob = store.open_blob(&digest).unwrap();
    let reader = layer::decompressor(desc.media_type().as_ref(), blob).unwrap();
    prelude::tar_listing(reader, |entry| {
        let h = entry.header();
        let (kind, uid, gid, mode) = (
            h.entry_type(),
            h.uid().unwrap(),
            h.gid().unwrap(),
            h.mode().unwrap(),
        );
        let mut content = Vec::new();
        if kind.is_file() && entry.size() < 1 << 20 {
            entry.read_to_end(&mut content).unwrap();
        }
        Entry {
            kind,
            uid,
            gid,
            mode,
            content,
        }
    })
}

/// The log files of the runs the build wrote under `tmp/logs` (each host's
/// own copy, in a directory per host, left out).
fn logs(tmp: &Path) -> String {
    let mut text = String::new();
    for build in std::fs::read_dir(tmp.join("logs")).unwrap() {
        for log in std::fs::read_dir(build.unwrap().path()).unwrap() {
            let path = log.unwrap().path();
            if path.is_file() {
                text.push_str(&std::fs::read_to_string(path).unwrap());
            }
        }
    }
    text
}

fn assert_no_sandbox_left(store: &Store) {
    let left: Vec<_> = std::fs::read_dir(store.tmp_dir())
        .map(|d| d.map(|e| e.unwrap().file_name()).collect())
        .unwrap_or_default();
    assert!(
        !left
            .iter()
            .any(|n| n.to_string_lossy().starts_with("sandbox-")),
        "sandbox dirs left: {left:?}"
    );
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let root = store.root().to_string_lossy().into_owned();
    assert!(
        !mounts.contains(&root),
        "mounts left under {root}:\n{mounts}"
    );
}

#[test]
fn base_then_second_stage_two_layers_with_exactly_the_change() {
    let _guard = serial();
    let store = store();
    let tmp = tempfile::tempdir().unwrap();
    let repo = ansible_copy(tmp.path());
    let (mut opts, env) = options(tmp.path(), AnsibleSource::Dir(repo), "web");
    opts.final_name = Some(Reference::parse("web:final").unwrap());
    let base = store
        .image(&Reference::parse("debian:test").unwrap())
        .unwrap();

    let built = apply_stages(
        &store,
        &store
            .image(&Reference::parse("debian:test").unwrap())
            .unwrap(),
        &stages(&["base.yml", "second.yml"]),
        "web01",
        &opts,
        &env,
    )
    .unwrap();

    // Two stages, two layers; each stage has its image; the final name too.
    assert_eq!(built.layers().len(), base.layers().len() + 2);
    let first = store
        .image(&Reference::parse("web/base.yml").unwrap())
        .unwrap();
    assert_eq!(first.layers().len(), base.layers().len() + 1);
    assert_eq!(
        store
            .resolve(&Reference::parse("web/second.yml").unwrap())
            .unwrap()
            .digest(),
        store
            .resolve(&Reference::parse("web:final").unwrap())
            .unwrap()
            .digest()
    );

    // Layer of base.yml: exactly the playbook's change.
    let l1 = layer_entries(&store, &built, -2);
    let greeting = &l1["etc/vauban-greeting"];
    assert_eq!(
        (greeting.uid, greeting.gid, greeting.mode & 0o7777),
        (0, 0, 0o640)
    );
    let text = greeting.text();
    assert!(
        text.contains("greeting=hello from web01\n"),
        "host_vars value: {text}"
    );
    assert!(
        text.contains("site=vauban-testsite\n"),
        "group_vars value: {text}"
    );
    assert!(
        text.contains("in_vauban=True\nin_conffs_build=False\n"),
        "{text}"
    );
    let note = &l1["home/deploy/note"];
    assert_eq!(
        (note.uid, note.gid, note.mode & 0o7777),
        (2001, 2001, 0o600)
    );
    assert_eq!(note.text(), "owned by deploy\n");
    let home = &l1["home/deploy"];
    assert_eq!(
        (home.uid, home.gid, home.kind),
        (2001, 2001, tar::EntryType::Directory)
    );
    assert!(l1["etc/passwd"]
        .text()
        .contains("\ndeploy:x:2001:2001::/home/deploy:/bin/bash\n"));
    assert!(l1.contains_key("usr/bin/hello"), "apt installed hello");
    assert!(
        l1.contains_key("etc/.wh.update-motd.d"),
        "the removed directory is a whiteout"
    );
    assert!(!l1.keys().any(|p| p.starts_with("etc/update-motd.d/")));
    // The original's formats: a head (the base had none), the stage under `stages:`.
    let imginfo = l1["imginfo"].text();
    assert!(
        imginfo.starts_with("---\n\ndebian_release: null\nvauban_branch: "),
        "{imginfo}"
    );
    assert!(
        imginfo.contains("\nstages:\n\n    - date: ")
            && imginfo.contains("\n      playbook: base.yml\n      hostname: web01\n"),
        "{imginfo}"
    );
    assert!(
        imginfo.contains(&format!("source-digest: \"{}\"", base.manifest_digest)),
        "{imginfo}"
    );
    assert!(
        imginfo.contains("\n      build-engine: vauban\n"),
        "{imginfo}"
    );
    assert_eq!((l1["imginfo"].uid, l1["imginfo"].mode & 0o777), (0, 0o644));
    // The base's whole list (apt list --installed), then what the stage changed.
    let packages = l1["packages"].text();
    assert!(
        packages.starts_with("---\npackages:\n\n- source: "),
        "{packages}"
    );
    assert!(packages.contains("\n          + apt/"), "{packages}");
    let (_, stage) = packages
        .split_once("\n- playbook: base.yml\n  hostname: web01\n  packages: |\n")
        .unwrap_or_else(|| panic!("no entry of base.yml in {packages}"));
    assert!(stage.contains("          + hello/"), "{packages}");
    assert!(
        !stage.contains("          - "),
        "nothing removed: {packages}"
    );
    if let Some(hostname) = l1.get("etc/hostname") {
        assert_eq!(hostname.text(), "web01\n");
    }
    // Nothing else: no build leftovers, no sandbox mount points or private files.
    let allowed_etc = [
        "etc",
        "etc/vauban-greeting",
        "etc/passwd",
        "etc/passwd-",
        "etc/group",
        "etc/group-",
        "etc/shadow",
        "etc/shadow-",
        "etc/gshadow",
        "etc/gshadow-",
        "etc/subuid",
        "etc/subuid-",
        "etc/subgid",
        "etc/subgid-",
        "etc/.pwd.lock",
        "etc/hostname",
        "etc/.wh.update-motd.d",
        "etc/ld.so.cache",
    ];
    for path in l1.keys() {
        let ok = match path.split('/').next().unwrap() {
            "etc" => allowed_etc.contains(&path.as_str()) || path.starts_with("etc/python3"),
            "home" | "usr" | "var" => true,
            "imginfo" | "packages" => true,
            "tmp" => path == "tmp",
            _ => false,
        };
        assert!(ok, "unexpected entry in the layer of base.yml: {path}");
    }
    for leftover in [
        "tmp/",
        "root/.ansible",
        "toslash",
        "dev/null",
        "etc/resolv.conf",
        "etc/hosts",
        "usr/sbin/policy-rc.d",
        "var/tmp/",
    ] {
        assert!(
            !l1.keys().any(|p| p.starts_with(leftover)),
            "{leftover} in the layer"
        );
    }

    // Layer of second.yml: it saw the first stage.
    let l2 = layer_entries(&store, &built, -1);
    let second = l2["etc/vauban-second"].text();
    assert!(second.contains("first_stage_seen=True"), "{second}");
    let imginfo = l2["imginfo"].text();
    assert_eq!(imginfo.matches("\n    - date: ").count(), 2, "{imginfo}");
    assert_eq!(imginfo.matches("\nstages:\n").count(), 1, "{imginfo}");
    assert!(
        imginfo.contains(&format!("source-digest: \"{}\"", first.manifest_digest)),
        "{imginfo}"
    );
    let packages = l2["packages"].text();
    assert_eq!(packages.matches("- source: ").count(), 1, "{packages}");
    assert!(
        packages.ends_with("\n- playbook: second.yml\n  hostname: web01\n  packages: \"\"\n"),
        "{packages}"
    );
    assert!(!l2.contains_key("usr/bin/hello"));

    // The systemd task was skipped, the log is saved, Ansible ran as asked.
    let log = logs(tmp.path());
    assert!(
        log.contains("TASK [Start a service on real machines only]"),
        "{log}"
    );
    assert!(log.contains("skipping: [web01]"), "{log}");
    assert!(log.contains("--limit web01 --forks 1 --diff -v"), "{log}");
    assert_no_sandbox_left(&store);
}

fn git(dir: &Path, script: &str) {
    let st = Command::new("sh")
        .arg("-ec")
        .arg(script)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "vauban test")
        .env("GIT_AUTHOR_EMAIL", "test@example.invalid")
        .env("GIT_COMMITTER_NAME", "vauban test")
        .env("GIT_COMMITTER_EMAIL", "test@example.invalid")
        .status()
        .unwrap();
    assert!(st.success(), "{script}");
}

fn git_out(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// `/imginfo`'s lines of a stage's commit and branch. A commit YAML would
/// read as a number (all digits, `1e5`, a `0x`/`0o`/`0b` prefix: this test's
/// commits are new each run, so one in a hundred or so is) is quoted.
fn commit_lines(commit: &str, branch: &str) -> String {
    let numeric = !commit.chars().any(|c| c.is_ascii_alphabetic())
        || ["0x", "0o", "0b"].iter().any(|p| commit.starts_with(p))
        || commit.split_once('e').is_some_and(|(a, b)| {
            !a.is_empty()
                && !b.is_empty()
                && a.chars().all(|c| c.is_ascii_digit())
                && b.chars().all(|c| c.is_ascii_digit())
        });
    let commit = if numeric {
        format!("\"{commit}\"")
    } else {
        commit.to_owned()
    };
    format!("      ansible-sha1: {commit}\n      ansible-branch: {branch}\n")
}

#[test]
fn branch_at_playbook_takes_that_branch_and_unknown_hosts_are_added() {
    let _guard = serial();
    let store = store();
    let tmp = tempfile::tempdir().unwrap();
    let repo = ansible_copy(tmp.path());
    git(
        &repo,
        "git init -q -b main . && git add -A && git commit -qm main \
                && git checkout -qb feature && sed -i 's/branch=main/branch=feature/' second.yml \
                && git commit -qam feature && git checkout -q main",
    );
    let main_commit = git_out(&repo, &["rev-parse", "main"]);
    let feature_commit = git_out(&repo, &["rev-parse", "feature"]);
    let url = format!("file://{}", repo.display());
    let (opts, env) = options(tmp.path(), AnsibleSource::Git(url), "newhost");

    // `newhost` is in no inventory: the generated one adds it.
    let built = apply_stages(
        &store,
        &store
            .image(&Reference::parse("debian:test").unwrap())
            .unwrap(),
        &stages(&["second.yml", "feature@second.yml"]),
        "newhost",
        &opts,
        &env,
    )
    .unwrap();

    let l1 = layer_entries(&store, &built, -2);
    assert!(l1["etc/vauban-second"].text().contains("branch=main\n"));
    assert!(l1["etc/vauban-second"].text().contains("greeting=none\n"));
    let imginfo = &l1["imginfo"].text();
    assert!(
        imginfo.contains(&commit_lines(&main_commit, "main")),
        "{imginfo}"
    );
    assert_eq!(l1["etc/hostname"].text(), "newhost\n");
    let l2 = layer_entries(&store, &built, -1);
    assert!(
        l2["etc/vauban-second"].text().contains("branch=feature\n"),
        "{}",
        l2["etc/vauban-second"].text()
    );
    let imginfo = &l2["imginfo"].text();
    assert!(
        imginfo.contains(&commit_lines(&feature_commit, "feature")),
        "{imginfo}"
    );
    assert!(
        !l2.contains_key("etc/hostname"),
        "already newhost in the image below"
    );
    assert_no_sandbox_left(&store);
}

#[test]
fn failing_task_commits_nothing_and_names_the_task() {
    let _guard = serial();
    let store = store();
    let tmp = tempfile::tempdir().unwrap();
    let repo = ansible_copy(tmp.path());
    let (opts, env) = options(tmp.path(), AnsibleSource::Dir(repo), "failing");
    let before = store.list().unwrap();

    let err = apply_stages(
        &store,
        &store
            .image(&Reference::parse("debian:test").unwrap())
            .unwrap(),
        &stages(&["failing.yml"]),
        "web01",
        &opts,
        &env,
    )
    .unwrap_err();

    assert!(matches!(err, Error::AnsibleFailed(_)), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("task \"This task always fails\" failed on host web01"),
        "{msg}"
    );
    assert!(msg.contains("non-zero return code"), "{msg}");
    assert!(
        msg.contains("PLAY RECAP"),
        "the last lines of output: {msg}"
    );
    assert_eq!(store.list().unwrap(), before, "nothing committed");
    assert_no_sandbox_left(&store);
}

#[test]
fn ssh_host_of_the_inventory_is_built_in_the_chroot() {
    let _guard = serial();
    let store = store();
    let tmp = tempfile::tempdir().unwrap();
    let repo = ansible_copy(tmp.path());
    let inventory = std::fs::read_to_string(repo.join("inventory")).unwrap();
    assert!(inventory.contains("db01 ansible_host=127.0.0.99 ansible_connection=ssh"));
    let (mut opts, env) = options(tmp.path(), AnsibleSource::Dir(repo), "db");
    // The hooks run around ansible-playbook in the Ansible root; what the pre hook
    // exports reaches Ansible.
    opts.hooks = Hooks {
        pre: Some(
            "echo \"pre hook in $(basename \"$PWD\")\"; export ANSIBLE_DISPLAY_SKIPPED_HOSTS=False"
                .into(),
        ),
        post: Some("echo post hook ran".into()),
    };

    let built = apply_stages(
        &store,
        &store
            .image(&Reference::parse("debian:test").unwrap())
            .unwrap(),
        &stages(&["second.yml"]),
        "db01",
        &opts,
        &env,
    )
    .unwrap();

    let l = layer_entries(&store, &built, -1);
    assert!(l["etc/vauban-second"]
        .text()
        .contains("greeting=hello from db01\n"));
    let log = logs(tmp.path());
    assert!(!log.contains("UNREACHABLE"), "{log}");
    assert!(!log.contains("127.0.0.99"), "{log}");
    let (pre, play, post) = (
        log.find("pre hook in ansible").expect("pre hook output"),
        log.find("PLAY [Second stage]").unwrap(),
        log.find("post hook ran").expect("post hook output"),
    );
    assert!(pre < play && play < post, "{log}");
}

/// Every directory under `dir` (and `dir`) is 0700, every file 0600.
fn assert_private(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o700, "{}", dir.display());
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            assert_private(&path);
        } else {
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o7777;
            assert_eq!(mode, 0o600, "{}", path.display());
        }
    }
}

/// A file of the tree holding terminal escape sequences, replaced by a
/// template: Ansible's `--diff` prints its old text raw; the events carry it
/// escaped. The logs keep it as it was, private to the user.
#[test]
fn hostile_output_reaches_the_events_escaped_and_the_logs_are_private() {
    let _guard = serial();
    let store = store();
    let tmp = tempfile::tempdir().unwrap();
    let repo = ansible_copy(tmp.path());
    let (opts, mut env) = options(tmp.path(), AnsibleSource::Dir(repo), "hostile");
    let sink = std::sync::Arc::new(vauban_core::events::Collect::default());
    env.events = vauban_core::Events::to(sink.clone());

    apply_stages(
        &store,
        &store
            .image(&Reference::parse("debian:test").unwrap())
            .unwrap(),
        &stages(&["hostile-output.yml"]),
        "web01",
        &opts,
        &env,
    )
    .unwrap();

    let lines: Vec<String> = sink
        .events()
        .into_iter()
        .filter_map(|e| match e {
            vauban_core::Event::AnsibleLine { line, .. } => Some(line),
            _ => None,
        })
        .collect();
    let before = lines
        .iter()
        .find(|l| l.starts_with("-title"))
        .unwrap_or_else(|| panic!("no --diff line of the old text: {lines:#?}"));
    assert_eq!(before, "-title\\x1b]0;pwned\\x07\\x1b[2J\\x9b2J");
    for line in &lines {
        assert!(
            !line.chars().any(|c| c.is_control() && c != '\t'),
            "a control character in {line:?}"
        );
    }
    let log = logs(tmp.path());
    assert!(
        log.contains("-title\x1b]0;pwned\x07\x1b[2J\u{9b}2J\n"),
        "{log:?}"
    );
    assert_private(&tmp.path().join("logs"));
    assert_no_sandbox_left(&store);
}

#[test]
fn image_without_python_is_a_clear_error() {
    let _guard = serial();
    let store = store();
    let tmp = tempfile::tempdir().unwrap();
    let repo = ansible_copy(tmp.path());
    let (opts, env) = options(tmp.path(), AnsibleSource::Dir(repo), "nopython");
    let err = apply_stages(
        &store,
        &store
            .image(&Reference::parse("busybox:test").unwrap())
            .unwrap(),
        &stages(&["second.yml"]),
        "web01",
        &opts,
        &env,
    )
    .unwrap_err();
    assert!(matches!(err, Error::NoPython { .. }), "{err}");
    assert!(err.to_string().contains("/usr/bin/python3"), "{err}");
    assert_no_sandbox_left(&store);
}
