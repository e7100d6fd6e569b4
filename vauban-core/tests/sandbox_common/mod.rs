//! The sandbox scenarios shared by `sandbox_run` (root in CI) and
//! `rootless_sandbox` (the unprivileged test user).

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use vauban_core::sandbox::{exit_code, CommitOptions, Helper, Program, Sandbox, SandboxOptions};
use vauban_oci::image::HistoryEntry;
use vauban_oci::layer::{repack_tar, PackOptions, PackedLayer};
use vauban_oci::store::{BlobWriter, Store};
use vauban_oci::Reference;

pub mod prelude;

use prelude::fixture;

fn import_busybox(store: &Store) -> Reference {
    let tar = std::fs::File::open(fixture("busybox.tar")).unwrap();
    commit_layer(store, None, "bb", "test import", |w| {
        repack_tar(std::io::BufReader::new(tar), &PackOptions::default(), w)
    })
}

/// Writes the layer made by `pack` into the store and commits it as image `name`
/// on top of `base` (or as a first layer).
fn commit_layer(
    store: &Store,
    base: Option<&vauban_oci::Image>,
    name: &str,
    created_by: &str,
    pack: impl FnOnce(&mut BlobWriter) -> vauban_oci::Result<PackedLayer>,
) -> Reference {
    let mut w = store.blob_writer().unwrap();
    let packed = pack(&mut w).unwrap();
    w.commit(Some(&packed.digest)).unwrap();
    let history = HistoryEntry {
        created_by: created_by.into(),
        created: vauban_oci::image::created_now(),
        comment: None,
    };
    let name = Reference::parse(name).unwrap();
    let layer = packed.clone();
    vauban_oci::image::commit(store, base, &[layer], &history, &name).unwrap();
    name
}

pub fn sh(script: &str) -> Program {
    Program::Image(vec!["sh".into(), "-c".into(), script.into()])
}

/// The sandbox helper under test: `$VAUBAN_HELPER` (the staged copy), else the
/// `vauban-sandbox` cargo built.
pub fn helper() -> Helper {
    Helper::at(
        std::env::var_os("VAUBAN_HELPER")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| env!("CARGO_BIN_EXE_vauban-sandbox").into()),
    )
}

/// Sandbox options with the test helper.
pub fn options() -> SandboxOptions {
    SandboxOptions {
        helper: Some(helper()),
        ..SandboxOptions::default()
    }
}

/// A sandbox over the image named `name`.
pub fn sandbox<'s>(store: &'s Store, name: &Reference, opts: SandboxOptions) -> Sandbox<'s> {
    let image = store.image(name).unwrap();
    Sandbox::prepare(store, &image, opts).unwrap()
}

/// Commits `sandbox` and names the image `name`.
pub fn commit_as(store: &Store, sandbox: Sandbox<'_>, name: &str) -> vauban_oci::Image {
    let image = sandbox.commit(&CommitOptions::new("test")).unwrap();
    store
        .tag(&Reference::parse(name).unwrap(), &image.descriptor())
        .unwrap();
    image
}

/// Path -> (uid, gid, content) of the last layer of `image`.
fn last_layer(store: &Store, image: &vauban_oci::Image) -> BTreeMap<String, (u64, u64, Vec<u8>)> {
    let digest = vauban_oci::image::digest_of(image.layers().last().unwrap()).unwrap();
    let blob = std::io::BufReader::new(store.open_blob(&digest).unwrap());
    prelude::tar_listing(flate2::read::MultiGzDecoder::new(blob), |e| {
        let (uid, gid) = (e.header().uid().unwrap(), e.header().gid().unwrap());
        let mut content = Vec::new();
        e.read_to_end(&mut content).unwrap();
        (uid, gid, content)
    })
}

/// Prepare, two runs, a host program, a failing run, commit; checks the layer.
pub fn run_twice_then_commit() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let base = import_busybox(&store);
    let opts = SandboxOptions {
        hostname: "web01".into(),
        env: vec![("MARK".into(), "m1".into())],
        ..options()
    };
    let sandbox = sandbox(&store, &base, opts);

    let first = "set -e; test \"$(hostname)\" = web01; test \"$MARK\" = m1; \
                 echo one > /created; chown 2001:2001 /created; rm /etc/group; \
                 rm -rf /root; mkdir /root; echo x > /root/new; echo built > /etc/hostname";
    let status = sandbox.run(&sh(first)).unwrap();
    assert!(status.success(), "{status}");
    // A second run: fresh namespaces, same upper dir.
    let status = sandbox
        .run(&sh(
            "set -e; test \"$(cat /created)\" = one; echo two >> /created",
        ))
        .unwrap();
    assert!(status.success(), "{status}");
    // A host program sees the overlay at merged_dir().
    let merged = sandbox.merged_dir();
    let check = format!(
        "test -f {0}/bin/busybox && test -f {0}/created",
        merged.display()
    );
    let status = sandbox
        .run(&Program::OnTree(vec!["/bin/sh".into(), "-c".into(), check]))
        .unwrap();
    assert!(
        status.success(),
        "the host program did not see the overlay: {status}"
    );
    let status = sandbox.run(&sh("exit 5")).unwrap();
    assert_eq!(exit_code(status), 5);

    let image = commit_as(&store, sandbox, "bb-changed");
    assert_eq!(image.layers().len(), 2);
    let layer = last_layer(&store, &image);
    let names: Vec<&String> = layer.keys().collect();
    assert_eq!(layer["created"], (2001, 2001, b"one\ntwo\n".to_vec()));
    assert!(layer.contains_key("etc/.wh.group"), "{names:?}");
    assert!(layer.contains_key("root/.wh..wh..opq"), "{names:?}");
    assert_eq!(layer["root/new"].2, b"x\n");
    assert_eq!(layer["etc/hostname"].2, b"built\n");
    for absent in ["dev", "proc", "sys", "run", "etc/hosts", "etc/resolv.conf"] {
        assert!(!layer.contains_key(absent), "{absent} in {names:?}");
    }
    let history = image.config.history().as_ref().unwrap();
    assert_eq!(
        history.last().unwrap().created_by().as_deref(),
        Some("test")
    );
    let tmp: Vec<_> = std::fs::read_dir(store.tmp_dir()).unwrap().collect();
    assert!(tmp.is_empty(), "sandbox dir left in STORE/tmp");
    assert_eq!(
        prelude::sandbox_leftovers(dir.path()),
        Vec::<String>::new(),
        "a process still holds the sandbox's mounts"
    );
    drop(store);
    let path = dir.keep();
    vauban_core::sandbox::remove_dir_all(&path, &helper()).unwrap();
}

/// A missing image is named in the error; a prepare that fails (a layer blob
/// gone from the store) leaves nothing in STORE/tmp.
pub fn failed_prepare_leaves_nothing_and_missing_image_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let err = store
        .image(&Reference::parse("nope").unwrap())
        .unwrap_err()
        .to_string();
    assert!(err.contains("nope"), "{err}");
    let base = import_busybox(&store);
    let image = store.image(&base).unwrap();
    let blob = vauban_oci::image::digest_of(&image.layers()[0]).unwrap();
    std::fs::remove_file(store.blob_path(&blob)).unwrap();
    let err = Sandbox::prepare(&store, &image, options()).unwrap_err();
    assert!(err.to_string().contains("extract"), "{err}");
    assert_eq!(std::fs::read_dir(store.tmp_dir()).unwrap().count(), 0);
}

/// A store with the busybox image, removed (inside the user namespace) on drop.
pub struct BbStore {
    dir: Option<tempfile::TempDir>,
    pub store: Store,
    pub base: Reference,
}

impl BbStore {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let base = import_busybox(&store);
        BbStore {
            dir: Some(dir),
            store,
            base,
        }
    }

    /// Adds a layer holding the symlink `rel -> target` on top of the base image.
    pub fn with_link(&self, rel: &str, target: &str, name: &str) -> Reference {
        self.with_layer(name, &format!("ln -s {target} {rel}"), |tree| {
            let link = tree.join(rel);
            std::fs::create_dir_all(link.parent().unwrap()).unwrap();
            std::os::unix::fs::symlink(target, &link).unwrap();
        })
    }

    /// Adds a layer made by `make` (given the layer's root) on top of the base image.
    pub fn with_layer(&self, name: &str, created_by: &str, make: impl FnOnce(&Path)) -> Reference {
        let tree = tempfile::tempdir().unwrap();
        make(tree.path());
        let base = self.store.image(&self.base).unwrap();
        commit_layer(&self.store, Some(&base), name, created_by, |w| {
            let source = vauban_oci::layer::LayerSource::Tree(tree.path());
            vauban_oci::layer::pack(source, &PackOptions::default(), w)
        })
    }
}

impl Drop for BbStore {
    fn drop(&mut self) {
        let path = self.dir.take().unwrap().keep();
        let _ = vauban_core::sandbox::remove_dir_all(&path, &helper());
    }
}

/// Runs `program` in `sandbox` and returns its exit status and what it wrote
/// on its standard output and error.
pub fn output(sandbox: &Sandbox<'_>, program: &Program) -> (std::process::ExitStatus, String) {
    let file = tempfile::tempfile().unwrap();
    let io = vauban_core::sandbox::RunIo {
        stdin: vauban_core::sandbox::Io::Null,
        stdout: vauban_core::sandbox::Io::File(file.try_clone().unwrap()),
        stderr: vauban_core::sandbox::Io::File(file.try_clone().unwrap()),
    };
    let status = sandbox.run_with(program, io).unwrap();
    let mut text = String::new();
    use std::io::Seek;
    let mut file = file;
    file.rewind().unwrap();
    file.read_to_string(&mut text).unwrap();
    (status, text)
}

/// A directory of the host the caller left open without close-on-exec never
/// reaches any process of the sandbox: every descriptor of every process it
/// can see is tried as a way to the host's marker file.
pub fn inherited_fds_do_not_reach_the_command() {
    let s = BbStore::new();
    let outside = tempfile::tempdir().unwrap();
    let marker = format!("host-marker-{}", std::process::id());
    std::fs::write(outside.path().join("marker"), &marker).unwrap();
    let fd = nix::fcntl::open(
        outside.path(),
        nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_DIRECTORY,
        nix::sys::stat::Mode::empty(),
    )
    .unwrap();
    use std::os::fd::AsRawFd;
    let n = fd.as_raw_fd();
    let sandbox = sandbox(&s.store, &s.base, options());
    let script = "for f in /proc/[0-9]*/fd/* /proc/[0-9]*/cwd /proc/[0-9]*/root; do \
                  cat \"$f/marker\" 2>/dev/null; done; ls /proc/[0-9]*/fd/ 2>&1; exit 0";
    let (status, out) = output(&sandbox, &sh(script));
    assert!(status.success(), "{status}: {out}");
    assert!(
        !out.contains(&marker),
        "fd {n} (a host dir) reached the image:\n{out}"
    );
    // The walk really ran: it listed its own descriptors.
    assert!(out.contains("/proc/"), "{out}");
    let host = Program::OnTree(vec![
        "/bin/sh".into(),
        "-c".into(),
        format!("test ! -e /proc/self/fd/{n} || ! test -d /proc/self/fd/{n}"),
    ]);
    assert!(
        sandbox.run(&host).unwrap().success(),
        "fd {n} leaked into a host program"
    );
    drop(fd);
}

/// Every mount under `/sys` is read-only in the sandbox, submounts included
/// (cgroup file systems of the host are mounted there).
pub fn sys_is_read_only_with_its_submounts() {
    let s = BbStore::new();
    let sandbox = sandbox(&s.store, &s.base, options());
    let status = sandbox
        .run(&sh(
            "! grep -E '^[^ ]+ [^ ]+ [^ ]+ [^ ]+ /sys(/[^ ]*)? rw' /proc/self/mountinfo",
        ))
        .unwrap();
    assert!(
        status.success(),
        "a mount under /sys is writable in the sandbox"
    );
}

/// An image whose `/etc/resolv.conf` is a link into `/run` (systemd-resolved's
/// stub, relative or absolute) still gets the sandbox's resolver config (the
/// host's, on the host's network); the link is not changed in the layer and
/// nothing lands outside the merged tree.
pub fn resolv_conf_link_into_run_gets_the_private_copy() {
    let s = BbStore::new();
    let host = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let want = host.trim_end_matches('\n').to_string();
    for (i, target) in [
        "../run/systemd/resolve/stub-resolv.conf",
        "/run/systemd/resolve/stub-resolv.conf",
    ]
    .into_iter()
    .enumerate()
    {
        let image = s.with_link("etc/resolv.conf", target, &format!("linked{i}"));
        let names = sees_host_resolv_conf(&s, &image, &want, &format!("after{i}"), target);
        assert!(
            !names
                .iter()
                .any(|n| n.starts_with("etc/") || n.starts_with("run")),
            "{target}: {names:?}"
        );
    }
    // A link to a file of the image: the private copy covers that file, which the
    // layer does not change.
    let image = s.with_layer("linked-file", "resolvconf", |tree| {
        std::fs::create_dir_all(tree.join("etc/resolvconf")).unwrap();
        std::fs::write(
            tree.join("etc/resolvconf/resolv.conf"),
            "nameserver 127.0.0.53\n",
        )
        .unwrap();
        std::os::unix::fs::symlink("resolvconf/resolv.conf", tree.join("etc/resolv.conf")).unwrap();
    });
    let names = sees_host_resolv_conf(&s, &image, &want, "after-file", "a link to an image file");
    assert!(!names.iter().any(|n| n.starts_with("etc/")), "{names:?}");
    assert_eq!(
        std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default(),
        host
    );
}

/// Runs a check in `image` that `/etc/resolv.conf` is still a link and reads as
/// `want` (the host's), commits as `name`, and returns the new layer's entries.
fn sees_host_resolv_conf(
    s: &BbStore,
    image: &Reference,
    want: &str,
    name: &str,
    what: &str,
) -> Vec<String> {
    // On the host's network the private copy is the host's resolv.conf.
    let opts = SandboxOptions {
        env: vec![("WANT".into(), want.to_string())],
        network: vauban_core::sandbox::Network::Host,
        ..options()
    };
    let sandbox = sandbox(&s.store, image, opts);
    let status = sandbox
        .run(&sh(
            "test -L /etc/resolv.conf && test \"$(cat /etc/resolv.conf)\" = \"$WANT\"",
        ))
        .unwrap();
    assert!(
        status.success(),
        "{what}: the build does not see the host's resolv.conf"
    );
    let new = commit_as(&s.store, sandbox, name);
    last_layer(&s.store, &new).into_keys().collect()
}

/// An image without layers still gets a sandbox (an empty lower dir): a host
/// program runs in it and a commit makes its first layer.
pub fn image_without_layers_runs() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let history = HistoryEntry {
        created_by: "scratch".into(),
        created: vauban_oci::image::created_now(),
        comment: None,
    };
    let name = Reference::parse("scratch").unwrap();
    vauban_oci::image::commit(&store, None, &[], &history, &name).unwrap();
    let sandbox = sandbox(&store, &name, options());
    let script = format!("echo made > {}/made", sandbox.merged_dir().display());
    let status = sandbox
        .run(&Program::OnTree(vec![
            "/bin/sh".into(),
            "-c".into(),
            script,
        ]))
        .unwrap();
    assert!(status.success(), "{status}");
    let image = commit_as(&store, sandbox, "first");
    let layer = last_layer(&store, &image);
    assert_eq!(layer["made"].2, b"made\n");
    drop(store);
    let path = dir.keep();
    vauban_core::sandbox::remove_dir_all(&path, &helper()).unwrap();
}

/// A file put before the run is the image's (root's, with its mode); a program
/// on the bare tree sees the image's files and none of the sandbox's mounts
/// (the mount points an earlier run made stay empty placeholders until commit).
pub fn put_files_and_the_bare_tree() {
    let s = BbStore::new();
    let sandbox = sandbox(&s.store, &s.base, options());
    sandbox
        .put_file("/etc/vauban/tool.conf", b"setting=1\n", 0o600)
        .unwrap();
    let (status, out) = output(
        &sandbox,
        &sh("stat -c '%a %u' /etc/vauban/tool.conf; cat /etc/vauban/tool.conf"),
    );
    assert!(status.success(), "{out}");
    assert_eq!(out, "600 0\nsetting=1\n");
    let merged = sandbox.merged_dir();
    let check = format!(
        "test -f {m}/bin/busybox && test -f {m}/etc/vauban/tool.conf && \
         test ! -e {m}/proc/self && test ! -c {m}/dev/null && test ! -s {m}/etc/hostname",
        m = merged.display()
    );
    let bare = Program::OnTree(vec!["/bin/sh".into(), "-c".into(), check]);
    let (status, out) = output(&sandbox, &bare);
    assert!(
        status.success(),
        "the bare tree holds the sandbox's mounts: {out}"
    );
}
