//! `vauban run` as an unprivileged user (run by `cargo xtask test` as `vauban-test`):
//! a change set committed and unpacked, apt inside Debian, the host's files and mount
//! table untouched after success, failure and SIGTERM, a 100-layer image.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use vauban_oci::image::HistoryEntry;
use vauban_oci::layer::{LayerSource, PackOptions};
use vauban_oci::store::Store;
use vauban_oci::Reference;

mod cli_support;

use cli_support::{
    fixture, sandbox_leftovers, stdout_if_ok, tar_listing, unprivileged, vauban_bin,
};

/// A store of its own in a temp dir, removed inside the user namespace (it holds
/// files owned by subordinate ids).
struct TestStore {
    dir: PathBuf,
}

impl TestStore {
    fn new() -> Self {
        unprivileged();
        let dir = tempfile::Builder::new()
            .prefix("vauban-run-")
            .tempdir()
            .unwrap();
        TestStore { dir: dir.keep() }
    }

    /// A store at a fixed path, emptied first (for the shared store, which static
    /// storage never drops: at most one is left behind).
    fn at(dir: PathBuf) -> Self {
        unprivileged();
        if dir.exists() {
            remove_tree(&dir);
        }
        std::fs::create_dir(&dir).unwrap();
        TestStore { dir }
    }

    fn path(&self) -> &Path {
        &self.dir
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(vauban_bin());
        c.args(args).env("VAUBAN_STORE", self.path());
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("cannot start vauban")
    }

    fn ok(&self, args: &[&str]) -> String {
        stdout_if_ok(args, &self.run(args))
    }

    fn import(&self, fixture_name: &str, name: &str) {
        self.ok(&[
            "import",
            "-t",
            name,
            fixture(fixture_name).to_str().unwrap(),
        ]);
    }

    /// Entries of `STORE/tmp` (sandbox dirs, temp blobs).
    fn tmp_entries(&self) -> Vec<String> {
        std::fs::read_dir(self.path().join("tmp"))
            .map(|d| {
                d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    fn assert_clean(&self, when: &str) {
        assert_eq!(
            sandbox_leftovers(self.path()),
            Vec::<String>::new(),
            "a process still holds the sandbox's mounts after {when}"
        );
        assert_eq!(
            self.tmp_entries(),
            Vec::<String>::new(),
            "STORE/tmp not empty after {when}"
        );
    }

    /// The last layer of image `name` as a map path -> (header, pax xattrs, content).
    fn last_layer(&self, name: &str) -> BTreeMap<String, Entry> {
        let store = Store::open(self.path()).unwrap();
        let image = store.image(&Reference::parse(name).unwrap()).unwrap();
        let desc = image.layers().last().unwrap();
        let digest = vauban_oci::image::digest_of(desc).unwrap();
        let blob = store.open_blob(&digest).unwrap();
        let gz = flate2::read::MultiGzDecoder::new(std::io::BufReader::new(blob));
        tar_listing(gz, |entry| {
            let mut xattrs = BTreeMap::new();
            if let Some(exts) = entry.pax_extensions().unwrap() {
                for ext in exts {
                    let ext = ext.unwrap();
                    if let Some(name) = ext.key().unwrap().strip_prefix("SCHILY.xattr.") {
                        xattrs.insert(name.to_string(), ext.value_bytes().to_vec());
                    }
                }
            }
            let h = entry.header();
            let (uid, gid) = (h.uid().unwrap(), h.gid().unwrap());
            let mut content = Vec::new();
            entry.read_to_end(&mut content).unwrap();
            Entry {
                uid,
                gid,
                xattrs,
                content,
            }
        })
    }
}

#[derive(Debug)]
struct Entry {
    uid: u64,
    gid: u64,
    xattrs: BTreeMap<String, Vec<u8>>,
    content: Vec<u8>,
}

impl Drop for TestStore {
    fn drop(&mut self) {
        remove_tree(&self.dir);
    }
}

/// Removes a store (it holds files owned by subordinate ids).
fn remove_tree(dir: &Path) {
    vauban_core::sandbox::remove_dir_all(dir, &vauban_core::sandbox::Helper::at(vauban_bin()))
        .unwrap_or_else(|e| panic!("cannot remove {}: {e}", dir.display()));
}

/// One Debian store shared by the tests that need it (import + extraction are slow).
fn debian() -> &'static TestStore {
    static STORE: OnceLock<TestStore> = OnceLock::new();
    STORE.get_or_init(|| {
        let s = TestStore::at(std::env::temp_dir().join("vauban-run-debian"));
        s.import("debian.tar", "debian");
        s
    })
}

fn host_files() -> Vec<(&'static str, Vec<u8>)> {
    ["/etc/hosts", "/etc/hostname", "/etc/resolv.conf"]
        .into_iter()
        .map(|p| (p, std::fs::read(p).unwrap_or_default()))
        .collect()
}

const CHANGES: &str = r#"set -e
test "$(hostname)" = web01
grep -q web01 /etc/hosts
mkdir -p /srv/new && echo hello > /srv/new/file
echo owned > /srv/owned && chown 2001:2001 /srv/owned
echo cap > /srv/cap && chmod 755 /srv/cap
python3 -c "import os; os.setxattr('/srv/cap', 'security.capability', bytes.fromhex('0100000200040000000000000000000000000000'))"
rm /etc/issue.net
rm -rf /etc/apt/apt.conf.d && mkdir /etc/apt/apt.conf.d && echo new > /etc/apt/apt.conf.d/99new
echo built-host > /etc/hostname
echo junk > /tmp/junk && echo junk > /var/tmp/junk
test -x /usr/sbin/policy-rc.d && ! /usr/sbin/policy-rc.d
"#;

#[test]
fn change_set_is_committed_and_unpacks() {
    let s = debian();
    let before = host_files();
    s.ok(&[
        "run",
        "--hostname",
        "web01",
        "--commit",
        "changed",
        "debian",
        "--",
        "sh",
        "-c",
        CHANGES,
    ]);
    assert_eq!(host_files(), before, "the host's files changed");

    let layer = s.last_layer("changed");
    let names: Vec<&String> = layer.keys().collect();
    assert_eq!(layer["srv/new/file"].content, b"hello\n");
    let owned = &layer["srv/owned"];
    assert_eq!((owned.uid, owned.gid), (2001, 2001));
    let cap = &layer["srv/cap"].xattrs["security.capability"];
    assert_eq!(cap.len(), 20, "capability not packed as v2: {cap:02x?}");
    let magic = u32::from_le_bytes(cap[0..4].try_into().unwrap());
    assert_eq!(
        magic & 0xff00_0000,
        0x0200_0000,
        "not a v2 capability: {cap:02x?}"
    );
    assert_eq!(u32::from_le_bytes(cap[4..8].try_into().unwrap()), 1 << 10);
    assert!(
        layer.contains_key("etc/.wh.issue.net"),
        "no whiteout in {names:?}"
    );
    assert!(
        layer.contains_key("etc/apt/apt.conf.d/.wh..wh..opq"),
        "no opaque marker in {names:?}"
    );
    assert_eq!(layer["etc/hostname"].content, b"built-host\n");
    for left_out in [
        "tmp/junk",
        "var/tmp/junk",
        "usr/sbin/policy-rc.d",
        "etc/resolv.conf",
        "dev/null",
        "dev/pts",
        "proc",
        "sys",
    ] {
        assert!(
            !layer.contains_key(left_out),
            "{left_out} in the layer: {names:?}"
        );
    }
    assert!(!names.iter().any(|n| n.contains("overlay")), "{names:?}");

    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    s.ok(&["unpack", "changed", root.to_str().unwrap()]);
    let read = |p: &str| std::fs::read_to_string(root.join(p)).unwrap();
    assert_eq!(read("srv/new/file"), "hello\n");
    assert_eq!(read("etc/hostname"), "built-host\n");
    assert!(!root.join("etc/issue.net").exists());
    assert!(
        root.join("etc/issue").exists(),
        "a lower file next to the deleted one is gone"
    );
    let conf: Vec<_> = std::fs::read_dir(root.join("etc/apt/apt.conf.d"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(conf, ["99new"]);
    assert!(!root.join("tmp/junk").exists());
    assert!(!root.join("usr/sbin/policy-rc.d").exists());
    assert!(root.join("usr/bin/python3").exists());
}

#[test]
fn apt_get_install_works_rootless() {
    let s = debian();
    s.ok(&[
        "run",
        "--commit",
        "with-sl",
        "debian",
        "--",
        "sh",
        "-c",
        "apt-get update -q && apt-get install -y -q --no-install-recommends sl && test -x /usr/games/sl",
    ]);
    let layer = s.last_layer("with-sl");
    assert!(
        layer.contains_key("usr/games/sl"),
        "the layer lacks the package"
    );
    assert!(layer.keys().any(|k| k.starts_with("var/lib/dpkg/info/sl.")));
}

#[test]
fn host_untouched_and_nothing_left_after_success_and_failure() {
    let s = TestStore::new();
    s.import("busybox.tar", "bb");
    let before = host_files();
    let write_etc = "echo x >> /etc/hosts; echo y > /etc/hostname; echo z >> /etc/resolv.conf";
    s.ok(&["run", "bb", "--", "sh", "-c", write_etc]);
    assert_eq!(host_files(), before);
    s.assert_clean("success");

    let out = s.run(&[
        "run",
        "--commit",
        "failed",
        "bb",
        "--",
        "sh",
        "-c",
        "touch /new; exit 7",
    ]);
    assert_eq!(out.status.code(), Some(7), "exit status not passed through");
    s.assert_clean("failure");
    let images = s.ok(&["images"]);
    assert!(
        !images.contains("failed"),
        "a failed command committed: {images}"
    );

    let out = s.run(&["run", "bb", "--", "sh", "-c", "kill -9 $$"]);
    assert_eq!(out.status.code(), Some(128 + 9));
    s.assert_clean("a killed command");
    assert_eq!(host_files(), before);
}

#[test]
fn sigterm_mid_run_kills_everything_and_leaves_nothing() {
    let s = TestStore::new();
    s.import("busybox.tar", "bb");
    let mut child = s
        .cmd(&[
            "run",
            "--commit",
            "never",
            "bb",
            "--",
            "sh",
            "-c",
            "echo started; busybox sleep 6123; echo survived",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line, "started\n");
    // The command must really be running (its sleep started) when the signal
    // comes, or "it did not survive" would prove nothing.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !sleeper_alive() {
        assert!(Instant::now() < deadline, "the command never started");
        std::thread::sleep(Duration::from_millis(10));
    }
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        assert!(
            Instant::now() < deadline,
            "vauban run did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    // Killed by the re-raised SIGTERM once the sandbox is cleaned up (or 143).
    use std::os::unix::process::ExitStatusExt;
    assert!(
        status.signal() == Some(15) || status.code() == Some(128 + 15),
        "{status}"
    );
    s.assert_clean("SIGTERM");
    assert!(!sleeper_alive(), "the sandboxed command survived SIGTERM");
    assert!(!s.ok(&["images"]).contains("never"));
}

fn sleeper_alive() -> bool {
    std::fs::read_dir("/proc").unwrap().any(|e| {
        let p = e.unwrap().path().join("cmdline");
        std::fs::read(p).is_ok_and(|c| c == b"busybox\0sleep\x006123\0")
    })
}

#[test]
fn hundred_layer_image_mounts_and_runs() {
    let s = TestStore::new();
    s.import("busybox.tar", "bb");
    {
        let store = Store::open(s.path()).unwrap();
        let base = store.image(&Reference::parse("bb").unwrap()).unwrap();
        let mut layers = Vec::new();
        for i in 0..100 {
            let tree = tempfile::tempdir().unwrap();
            std::fs::create_dir(tree.path().join("l")).unwrap();
            std::fs::write(tree.path().join(format!("l/{i:03}")), format!("{i}\n")).unwrap();
            let packed = store
                .pack_layer(LayerSource::Tree(tree.path()), &PackOptions::default())
                .unwrap();
            layers.push(packed);
        }
        let history = HistoryEntry {
            created_by: "test: 100 layers".into(),
            created: vauban_oci::image::created_now(),
            comment: None,
        };
        let name = Reference::parse("hundred").unwrap();
        vauban_oci::image::commit(&store, Some(&base), &layers, &history, &name).unwrap();
    }
    let out = s.ok(&[
        "run",
        "hundred",
        "--",
        "sh",
        "-c",
        "busybox ls /l; busybox cat /l/000 /l/099",
    ]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 102, "{out}");
    assert_eq!(&lines[100..], ["0", "99"]);
    s.assert_clean("a 100-layer run");
}

/// Entries of a store subdirectory (`layers`, `blobs/sha256`).
fn entries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// How many entries under `dir` are owned by another user than ours (walking
/// only into our own directories).
fn foreign_owned(dir: &Path) -> usize {
    use std::os::unix::fs::MetadataExt;
    let me = nix::unistd::getuid().as_raw();
    let mut n = 0;
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let md = e.path().symlink_metadata().unwrap();
            if md.uid() != me {
                n += 1;
            }
            if md.is_dir() && md.uid() == me {
                todo.push(e.path());
            }
        }
    }
    n
}

#[test]
fn gc_after_rm_removes_the_subuid_owned_layer_dirs() {
    let s = TestStore::new();
    s.import("busybox.tar", "bb");
    s.ok(&[
        "run",
        "--commit",
        "bb2",
        "bb",
        "--",
        "sh",
        "-c",
        "mkdir -p /srv/d && echo x > /srv/d/x && chown -R 2001:2001 /srv/d && chmod 755 /srv/d",
    ]);
    let layers = s.path().join("layers");
    // Each layer dir with its record, `<chain>.tree`.
    assert_eq!(entries(&layers).len(), 2, "{:?}", entries(&layers));
    // Extracted as root of the user namespace: /srv/d is owned by a subordinate id,
    // and the host user cannot empty it.
    s.ok(&["run", "bb2", "--", "true"]);
    assert_eq!(entries(&layers).len(), 4);
    assert!(
        foreign_owned(&layers) > 0,
        "no layer dir holds a subuid-owned file: the test proves nothing"
    );

    s.ok(&["rm", "bb2"]);
    let out = s.ok(&["gc"]);
    assert_eq!(entries(&layers).len(), 2, "bb's layer must stay: {out}");
    s.ok(&["rm", "bb"]);
    let out = s.ok(&["gc"]);
    assert_eq!(entries(&layers), Vec::<String>::new(), "{out}");
    assert_eq!(
        entries(&s.path().join("blobs/sha256")),
        Vec::<String>::new()
    );
    s.assert_clean("gc");
}

#[test]
fn sigkill_of_vauban_kills_the_command_and_gc_cleans_up() {
    let s = TestStore::new();
    s.import("busybox.tar", "bb");
    let mut child = s
        .cmd(&[
            "run",
            "bb",
            "--",
            "sh",
            "-c",
            "echo started; busybox sleep 6124; echo survived",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "started\n");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !sleeper_alive_with(b"busybox\0sleep\x006124\0") {
        assert!(Instant::now() < deadline, "the command never started");
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while sleeper_alive_with(b"busybox\0sleep\x006124\0") {
        assert!(
            Instant::now() < deadline,
            "the sandboxed command outlived SIGKILL of vauban"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(sandbox_leftovers(s.path()), Vec::<String>::new());
    // The sandbox dir could not be removed by a killed process: gc does it.
    s.ok(&["gc"]);
    s.assert_clean("SIGKILL and gc");
}

fn sleeper_alive_with(cmdline: &[u8]) -> bool {
    std::fs::read_dir("/proc").unwrap().any(|e| {
        let p = e.unwrap().path().join("cmdline");
        std::fs::read(p).is_ok_and(|c| c == cmdline)
    })
}

#[test]
fn sigterm_during_layer_extraction_leaves_no_partial_layer() {
    let s = TestStore::new();
    s.import("debian.tar", "deb");
    let mut child = s
        .cmd(&["run", "deb", "--", "true"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait for the extraction's temp dir (`STORE/tmp/layer-*`), then interrupt.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !s.tmp_entries().iter().any(|e| e.starts_with("layer-")) {
        assert!(
            child.try_wait().unwrap().is_none(),
            "vauban run ended before its extraction was seen"
        );
        assert!(Instant::now() < deadline, "no extraction started");
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(200));
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let status = child.wait().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert!(
        status.signal() == Some(15) || status.code() == Some(128 + 15),
        "{status}"
    );
    s.assert_clean("SIGTERM during extraction");
    // (A tree record may be left, harmless: it is not a layer dir.)
    let left: Vec<String> = entries(&s.path().join("layers"))
        .into_iter()
        .filter(|n| !n.ends_with(".tree"))
        .collect();
    assert_eq!(
        left,
        Vec::<String>::new(),
        "a layer dir was left by an interrupted extraction"
    );
    // The next run extracts it afresh.
    s.ok(&["run", "deb", "--", "test", "-x", "/usr/bin/python3"]);
}
