//! Build isolation, attacked for real inside rootless `vauban build`s of a
//! hostile Ansible repository (`testdata/isolation/ansible`) over the Debian
//! fixture: the controller reaching for the user's secrets, home and store;
//! two hosts of one stage looking for each other through `/proc`; a daemon
//! left behind; an image whose `/etc/hostname` leads out of the tree; the
//! build's network against a loopback listener and an abstract socket of the
//! host (with the host's network as the control); two third-party roles that
//! start services. Each attack records what it got inside the image; the test
//! reads the image and the user's own files.

#![cfg(feature = "rootless-tests")]

mod cli_support;

use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use cli_support::{
    copy_dir, fixture, sandbox_leftovers, sha256_of, tar_listing, testdata, unprivileged,
    vauban_bin,
};

/// The secret in the victim's key store identity, credentials and home.
const IDENTITY: &str = "AGE-SECRET-KEY-OF-THE-VICTIM-9c41";
const CREDENTIALS: &str = "registry-token-of-the-victim-77ab";
const HOME_SECRET: &str = "home-secret-of-the-victim-1e0f";
const GIVEN_TOKEN: &str = "galaxy-token-of-the-victim-5d2c";
const DEPLOY_KEY: &str = "deploy-key-of-the-victim-88aa";
const GIT_TOKEN: &str = "ci-token-in-git-config-0b7e";

/// A build's world: the victim's home (with secrets), the repository, the
/// store, a config with one master whose stage is the playbook under test.
struct World {
    dir: tempfile::TempDir,
    /// The vauban executable the world runs (a copy of its own, owned by
    /// the test user, as a `cargo install` is).
    vauban: PathBuf,
}

impl World {
    fn new(playbook: &str, conffs: bool) -> World {
        World::with_base(playbook, conffs, &fixture("debian.tar"))
    }

    /// A world whose release is the tarball `base`.
    fn with_base(playbook: &str, conffs: bool, base: &Path) -> World {
        unprivileged();
        let dir = tempfile::tempdir().unwrap();
        let vauban = dir.path().join("bin/vauban-under-test");
        std::fs::create_dir_all(vauban.parent().unwrap()).unwrap();
        std::fs::copy(vauban_bin(), &vauban).unwrap();
        std::fs::set_permissions(&vauban, std::fs::Permissions::from_mode(0o755)).unwrap();
        let w = World { dir, vauban };
        copy_dir(&testdata().join("isolation/ansible"), &w.path("ansible"));
        // A CI checkout's git config holds the CI's token.
        std::fs::create_dir_all(w.path("ansible/.git")).unwrap();
        std::fs::write(
            w.path("ansible/.git/config"),
            format!("[http]\n\textraheader = AUTHORIZATION: basic {GIT_TOKEN}\n"),
        )
        .unwrap();
        for (rel, content) in [
            (".config/vauban/keystore-key.txt", IDENTITY),
            (".docker/config.json", CREDENTIALS),
            ("secret.txt", HOME_SECRET),
            ("deploy.pem", DEPLOY_KEY),
            // A collection installed for the user, as `ansible-galaxy` does.
            (
                ".ansible/collections/ansible_collections/vauban_test/probe/plugins/filter/shout.py",
                "class FilterModule:\n    def filters(self):\n        return {'shout': lambda s: s.upper() + '!'}\n",
            ),
        ] {
            let p = w.home().join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, content).unwrap();
        }
        let tar = base;
        // A conffs stage under test runs for the hosts only: the master's own
        // stage does nothing.
        let (configuration, stages) = if conffs {
            (
                format!(
                    "  always_apply_stage_in_conffs: [{playbook}]\n  \
                     ignore_stage_in_conffs: [noop.yml]\n"
                ),
                "[noop.yml]\n    conffs: 'web*'".to_string(),
            )
        } else {
            (String::new(), format!("[{playbook}]"))
        };
        std::fs::write(
            w.path("config.yml"),
            format!(
                "configuration:\n  ansible: ansible\n{configuration}bookworm:\n  name: debian-12\n  \
                 tarball: {}\n  sha256: {}\n  master-iso:\n    stages: {stages}\n",
                tar.display(),
                sha256_of(tar)
            ),
        )
        .unwrap();
        std::fs::write(w.path("key.txt"), "a passphrase of the isolation tests\n").unwrap();
        std::fs::set_permissions(w.path("key.txt"), std::fs::Permissions::from_mode(0o600))
            .unwrap();
        w
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// The victim's home: `$HOME` of vauban.
    fn home(&self) -> PathBuf {
        self.path("home")
    }

    fn store(&self) -> PathBuf {
        self.path("store")
    }

    fn cmd(&self) -> Command {
        let mut cmd = Command::new(&self.vauban);
        cmd.arg("--store")
            .arg(self.store())
            // What the user's Ansible is given: a token, a key for ssh.
            .env("ANSIBLE_GALAXY_SERVER_X_TOKEN", GIVEN_TOKEN)
            .env("ANSIBLE_PRIVATE_KEY_FILE", self.home().join("deploy.pem"))
            .current_dir(self.dir.path())
            .env_remove("RUST_LOG")
            .env_remove("VAUBAN_STORE")
            .env_remove("VAUBAN_KEYSTORE_KEY")
            .env_remove("XDG_CONFIG_HOME")
            .env_remove("XDG_DATA_HOME")
            .env("HOME", self.home())
            .stdin(Stdio::null());
        cmd
    }

    /// `vauban build` of master-iso (`stage`), the victim's paths given to
    /// the playbook.
    /// With `-v`: Ansible's own lines (the tests read what tasks printed).
    fn build(&self, stage: &str, extra: &[&str]) -> Output {
        let mut cmd = self.cmd();
        cmd.args([
            "-v",
            "build",
            "--config",
            "config.yml",
            "--name",
            "master-iso",
            "--stage",
            stage,
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
        ])
        .arg(format!(
            "--ansible-arg=-evictim_home={}",
            self.home().display()
        ))
        .arg(format!(
            "--ansible-arg=-evictim_store={}",
            self.store().display()
        ))
        .args(extra);
        cmd.output().unwrap()
    }

    fn build_ok(&self, stage: &str, extra: &[&str]) -> Output {
        let out = self.build(stage, extra);
        assert!(
            out.status.success(),
            "vauban build --stage {stage} {extra:?} failed ({}):\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// The regular files of image `name` (every layer, the top one wins),
    /// and its links (as `-> TARGET`).
    fn files(&self, name: &str) -> BTreeMap<String, Vec<u8>> {
        let out = self.cmd().args(["inspect", name]).output().unwrap();
        assert!(
            out.status.success(),
            "inspect {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let layers = json["manifest"]["layers"]
            .as_array()
            .or_else(|| json["layers"].as_array())
            .unwrap_or_else(|| panic!("no layers in {json}"))
            .clone();
        let mut files = BTreeMap::new();
        for layer in layers {
            let digest = layer["digest"]
                .as_str()
                .unwrap()
                .trim_start_matches("sha256:");
            let blob = std::fs::File::open(self.store().join("blobs/sha256").join(digest)).unwrap();
            let listing = tar_listing(flate2::read::MultiGzDecoder::new(blob), |e| {
                let mut data = Vec::new();
                if e.header().entry_type().is_file() {
                    e.read_to_end(&mut data).unwrap();
                    Some(data)
                } else if e.header().entry_type().is_symlink() {
                    let target = e.link_name().unwrap().unwrap_or_default();
                    Some(format!("-> {}", target.display()).into_bytes())
                } else {
                    None
                }
            });
            for (path, data) in listing {
                if let Some(data) = data {
                    files.insert(path, data);
                }
            }
        }
        files
    }

    fn text(&self, image: &str, path: &str) -> String {
        let files = self.files(image);
        String::from_utf8_lossy(files.get(path).unwrap_or_else(|| {
            panic!(
                "{image} has no {path}: {:?}",
                files.keys().rev().take(40).collect::<Vec<_>>()
            )
        }))
        .into_owned()
    }
}

/// Every file under `dir` (path and content), for "nothing was planted".
fn tree_of(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            match e.file_type() {
                Ok(t) if t.is_dir() => todo.push(p),
                _ => {
                    out.insert(p.clone(), std::fs::read(&p).unwrap_or_default());
                }
            }
        }
    }
    out
}

#[test]
fn the_controller_sees_nothing_of_the_user() {
    let w = World::new("controller.yml", false);
    let home_before = tree_of(&w.home());
    let out = w.build_ok("rootfs", &[]);
    let log = String::from_utf8_lossy(&out.stdout);
    let image = "master-iso";
    // The key store's identity: not by lookup('file'), not by the
    // repository's own plugin.
    assert_eq!(w.text(image, "probe/file-identity"), "");
    let plugin = w.text(image, "probe/plugin-identity");
    assert!(
        plugin.starts_with("DENIED:"),
        "the plugin read it: {plugin}"
    );
    // Credentials, the store, the home: not there to read.
    let pipe = w.text(image, "probe/pipe");
    // (`ls` of the home would list secret.txt: it shows an empty home.)
    for secret in [CREDENTIALS, HOME_SECRET, "secret.txt"] {
        assert!(
            !pipe.contains(secret),
            "the controller saw {secret}:\n{pipe}"
        );
    }
    assert!(pipe.contains("No such file"), "{pipe}");
    // No write reached the home, the store, the repository or the system.
    let writes = w.text(image, "probe/writes");
    assert!(writes.contains("done"), "{writes}");
    assert_eq!(
        tree_of(&w.home()),
        home_before,
        "the controller wrote into the home"
    );
    let planted: Vec<PathBuf> = tree_of(w.dir.path())
        .into_keys()
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("planted-by"))
        })
        .collect();
    assert!(
        planted.is_empty(),
        "planted outside the controller: {planted:?}"
    );
    // Neither what the user's Ansible was given, nor the checkout's git
    // config, nor the machine's secrets of /etc.
    let given = w.text(image, "probe/given");
    for secret in [GIVEN_TOKEN, DEPLOY_KEY, GIT_TOKEN, "shadow", "private\n"] {
        assert!(
            !given.contains(secret),
            "the controller saw {secret}:\n{given}"
        );
    }
    assert!(given.contains("passwd"), "/etc is not listed:\n{given}");
    // No capability, no process but its own, its own home.
    let controller = w.text(image, "probe/controller");
    for cap in ["CapEff", "CapPrm", "CapBnd"] {
        assert!(
            controller.contains(&format!("{cap}:\t0000000000000000")),
            "{cap} is not empty:\n{controller}"
        );
    }
    assert!(
        controller.contains(&format!("HOME={}", w.home().display())),
        "{controller}"
    );
    let pids: usize = controller.lines().nth(4).unwrap().trim().parse().unwrap();
    assert!(
        pids < 30,
        "the controller sees {pids} processes:\n{controller}"
    );
    // What real repositories need still works: the user's collections.
    assert_eq!(w.text(image, "probe/collection"), "HI!");
    // delegate_to: localhost ran in the controller, not in the image.
    let local = w.text(image, "probe/local-task");
    assert!(local.contains("controller"), "{local}");
    assert!(!w.files(image).contains_key("probe/template"));
    assert!(!log.contains(IDENTITY) && !log.contains(HOME_SECRET));
    assert!(sandbox_leftovers(&w.store()).is_empty());
}

#[test]
fn hosts_of_one_stage_cannot_see_each_other_and_leave_nothing_running() {
    let w = World::new("hosts.yml", true);
    w.build_ok(
        "conffs",
        &["--conffs", "web01,web02", "--build-parents", "1"],
    );
    let web01 = "master-iso/web01";
    let web02 = "master-iso/web02";
    // web02 really worked with its secret meanwhile.
    assert_eq!(w.text(web02, "probe/web02-worked"), "worked\n");
    // web01 found nothing of it, saw only its own few processes.
    let scan = w.text(web01, "probe/scan");
    assert_eq!(scan.trim(), "found:", "web01 found web02's secret: {scan}");
    let pids: usize = w.text(web01, "probe/pids").trim().parse().unwrap();
    assert!(
        pids < 12,
        "web01 sees {pids} processes: {}",
        w.text(web01, "probe/comms")
    );
    let comms = w.text(web01, "probe/comms");
    assert!(
        !comms.contains("ansible") && !comms.contains("sleep\n"),
        "web01 sees the controller's or web02's processes:\n{comms}"
    );
    // web02's service on its loopback was not web01's to call.
    let service = w.text(web01, "probe/web02-service");
    assert!(
        !service.contains("connected"),
        "web01 reached web02's loopback:\n{service}"
    );
    assert!(service.contains("refused"), "{service}");
    // Nothing web01 wrote through /proc reached web02's tree.
    assert!(
        !w.files(web02)
            .keys()
            .any(|k| k.contains("planted-by-web01")),
        "web01 wrote into web02's tree"
    );
    // The daemon web01 left died with its stage.
    let ps = Command::new("pgrep")
        .args(["-f", "sleep 86399"])
        .output()
        .unwrap();
    assert!(
        ps.stdout.is_empty(),
        "a process of the build outlived it: {}",
        String::from_utf8_lossy(&ps.stdout)
    );
    assert!(sandbox_leftovers(&w.store()).is_empty());
}

/// A host listener on loopback that counts the connections it accepts.
fn listener() -> (std::net::TcpListener, Arc<AtomicUsize>) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let (c, accept) = (count.clone(), l.try_clone().unwrap());
    std::thread::spawn(move || {
        for conn in accept.incoming().flatten() {
            c.fetch_add(1, Ordering::SeqCst);
            let mut conn = conn;
            let _ = std::io::Write::write_all(
                &mut conn,
                b"HTTP/1.0 200 OK\r\nContent-Length: 4\r\n\r\nhost",
            );
        }
    });
    (l, count)
}

/// An abstract Unix socket of the host (as a session D-Bus or X11 has).
fn abstract_listener(name: &str) -> (std::os::fd::OwnedFd, Arc<AtomicUsize>) {
    use nix::sys::socket::{
        bind, listen, socket, AddressFamily, Backlog, SockFlag, SockType, UnixAddr,
    };
    let fd = socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .unwrap();
    bind(
        std::os::fd::AsRawFd::as_raw_fd(&fd),
        &UnixAddr::new_abstract(name.as_bytes()).unwrap(),
    )
    .unwrap();
    listen(&fd, Backlog::new(4).unwrap()).unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    let raw = std::os::fd::AsRawFd::as_raw_fd(&fd);
    std::thread::spawn(move || {
        while nix::sys::socket::accept(raw).is_ok() {
            c.fetch_add(1, Ordering::SeqCst);
        }
    });
    (fd, count)
}

fn probe_results(w: &World, image: &str) -> serde_json::Map<String, serde_json::Value> {
    let text = w.text(image, "probe/net.json");
    serde_json::from_str::<serde_json::Value>(&text)
        .unwrap_or_else(|e| panic!("{e}: {text}"))
        .as_object()
        .unwrap()
        .clone()
}

#[test]
fn the_build_has_a_network_of_its_own() {
    let (l, tcp_hits) = listener();
    let port = l.local_addr().unwrap().port();
    let name = format!("vauban-isolation-{}", std::process::id());
    let (_abstract, unix_hits) = abstract_listener(&name);
    let w = World::new("network.yml", false);
    let vars = [
        format!("--ansible-arg=-elistener_port={port}"),
        format!("--ansible-arg=-eabstract_name={name}"),
    ];
    let vars: Vec<&str> = vars.iter().map(String::as_str).collect();
    w.build_ok("rootfs", &vars);
    let r = probe_results(&w, "master-iso");
    let get = |k: &str| r[k].as_str().unwrap_or_default().to_owned();
    assert!(get("direct").starts_with("failed:"), "{r:?}");
    assert!(get("proxy_http").contains("403"), "{r:?}");
    assert!(get("proxy_connect").contains("403"), "{r:?}");
    assert!(get("abstract").starts_with("failed:"), "{r:?}");
    assert_eq!(
        tcp_hits.load(Ordering::SeqCst),
        0,
        "the build reached the host's listener"
    );
    assert_eq!(
        unix_hits.load(Ordering::SeqCst),
        0,
        "the build reached the abstract socket"
    );
    // What a build needs still works: a port below 1024, DNS, Debian's mirror.
    assert_eq!(get("bind_80"), "ok:bound", "{r:?}");
    assert!(get("dns").starts_with("ok:"), "{r:?}");
    assert_eq!(get("mirror"), "ok:200", "{r:?}");
    assert_eq!(get("http_proxy"), "http://127.0.0.1:3128");

    // The control: on the host's network the same probes do reach them (the
    // test's listeners work), and the recap says so.
    let w = World::new("network.yml", false);
    let mut host = vars.clone();
    host.extend(["--network", "host"]);
    let out = w.build_ok("rootfs", &host);
    let r = probe_results(&w, "master-iso");
    assert_eq!(r["direct"], "ok:connected", "{r:?}");
    assert_eq!(r["abstract"], "ok:connected", "{r:?}");
    assert!(tcp_hits.load(Ordering::SeqCst) >= 1);
    assert!(unix_hits.load(Ordering::SeqCst) >= 1);
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        said.contains("host's network"),
        "no warning in the recap:\n{said}"
    );
}

#[test]
fn roles_that_start_services_start_nothing() {
    let w = World::new("services.yml", true);
    let out = w.build_ok(
        "conffs",
        &["--conffs", "web01,web02", "--build-parents", "1"],
    );
    let log = String::from_utf8_lossy(&out.stdout);
    for (host, manager) in [("web01", "sysvinit"), ("web02", "systemd")] {
        let image = format!("master-iso/{host}");
        let seen = w.text(&image, "probe-services");
        assert!(
            seen.contains(&format!("service_mgr={manager}")),
            "{host}: {seen}"
        );
        for daemon in ["nginx", "ntpd", "ntpsec"] {
            assert!(
                !seen.lines().any(|l| l.starts_with(daemon)),
                "{daemon} runs in {host}'s build:\n{seen}"
            );
        }
        let files = w.files(&image);
        assert!(
            files.contains_key("etc/nginx/nginx.conf"),
            "{host}: nginx not installed"
        );
    }
    // web02's units are enabled (offline), web01's init scripts linked.
    let web02 = w.files("master-iso/web02");
    assert!(
        web02
            .keys()
            .any(|k| k.starts_with("etc/systemd/system/multi-user.target.wants/nginx")),
        "nginx is not enabled on web02"
    );
    assert!(!log.contains("nginx failed"), "{log}");
    assert!(!log.contains("/run/lock/ntpsec"), "{log}");
}

#[test]
fn vaubans_executable_cannot_be_changed_through_proc_exe() {
    let w = World::new("exe.yml", false);
    let out = w.build_ok("rootfs", &[]);
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // The attack ran: the watcher found vauban's executable in the host.
    assert!(
        log.contains("refused: Read-only file system"),
        "the watcher did not report a refused chmod:\n{log}"
    );
    let mode = std::fs::metadata(&w.vauban).unwrap().permissions().mode() & 0o7777;
    assert_eq!(
        mode, 0o755,
        "vauban's executable was changed from the image"
    );
}

#[test]
fn a_hostile_etc_hostname_is_never_read() {
    unprivileged();
    let scratch = tempfile::tempdir().unwrap();
    let secret = scratch.path().join("secret.txt");
    std::fs::write(&secret, format!("{HOME_SECRET}\n")).unwrap();
    // The Debian base with its /etc/hostname a link out of the tree, a link
    // to a device that never ends, a FIFO that never answers.
    for how in ["link", "zero", "fifo"] {
        let base = scratch.path().join(format!("base-{how}.tar"));
        std::fs::copy(fixture("debian.tar"), &base).unwrap();
        let status = Command::new("tar")
            .args(["--delete", "-f"])
            .arg(&base)
            .arg("./etc/hostname")
            .status()
            .unwrap();
        assert!(status.success(), "the fixture has no ./etc/hostname");
        let tree = scratch.path().join(format!("tree-{how}"));
        std::fs::create_dir_all(tree.join("etc")).unwrap();
        let target = tree.join("etc/hostname");
        match how {
            "link" => std::os::unix::fs::symlink(&secret, &target).unwrap(),
            "zero" => std::os::unix::fs::symlink("/dev/zero", &target).unwrap(),
            _ => nix::unistd::mkfifo(&target, nix::sys::stat::Mode::from_bits_truncate(0o644))
                .unwrap(),
        }
        let status = Command::new("tar")
            .args(["--append", "--owner=0", "--group=0", "-f"])
            .arg(&base)
            .arg("-C")
            .arg(&tree)
            .arg("./etc/hostname")
            .status()
            .unwrap();
        assert!(status.success());
        let w = World::with_base("hostname.yml", false, &base);
        let start = std::time::Instant::now();
        w.build_ok("rootfs", &[]);
        assert!(
            start.elapsed() < std::time::Duration::from_secs(300),
            "{how}: the build hung"
        );
        let name = w.text("master-iso", "probe-hostname");
        assert_eq!(
            name, "master-iso\n",
            "{how}: the build saw another host name"
        );
    }
}
