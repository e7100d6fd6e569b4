//! The confined Ansible controller: `ansible-playbook` (and every Ansible tool
//! that evaluates a repository: `ansible-inventory`, `--syntax-check`, host
//! listings) runs with nothing of the user's but what it needs, read-only.
//!
//! Its root is a small tmpfs built by the sandbox's init and made read-only:
//! the system's `/usr` with the `/bin`, `/lib`... links or dirs, and of
//! `/etc` only what programs need to run ([`ETC_SHOWN`]: users, name
//! service, certificates, Python's and Ansible's configuration; no key,
//! keytab or credential of the machine), read-only; the Ansible checkout and the paths Ansible is
//! told about (collections, roles, its configuration) read-only at their own
//! place; a private writable `/tmp` and `HOME` (the user's home path, but an
//! empty directory of the session's); a `/proc` of its own pid namespace;
//! `/dev/null`, `zero`, `full`, `random`, `urandom`, a devpts and `/dev/shm`
//! (Python's multiprocessing). Paths that must never show (the store, the key
//! store and its identity, registry credentials, other builds' logs) are
//! covered by an empty read-only mount wherever a bound path would show them.
//!
//! The hosts' trees are not in it: each host is a directory
//! `/vauban/hosts/HOST` holding only the socket of the host's keeper (see
//! `helper::keeper`); `/vauban/bin/vauban-chroot` (the helper
//! executable) is what Ansible's chroot connection runs, and it asks the
//! keeper to run the command in the host's own namespaces.
//!
//! The controller's processes run as root of the user namespace (rootless) or
//! as root (vauban run as root) with **no** capability at all and
//! `no_new_privs`: they cannot undo a mount, write what is read-only, or gain
//! anything by exec.

use std::os::fd::OwnedFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use rustix::mount::MountFlags;
use serde::{Deserialize, Serialize};

use super::mount::{bind, make_read_only_recursive, mount_fs, remount_read_only};
use crate::error::{Error, IoContext, Result};

/// Where the controller finds `vauban-chroot` (its `ANSIBLE_CHROOT_EXE`).
pub const CHROOT_EXE: &str = "/vauban/bin/vauban-chroot";
/// Where each host's (fake) root is, as Ansible's `ansible_host`.
pub const HOSTS_DIR: &str = "/vauban/hosts";
/// Where the files vauban made for the run (a generated inventory) are,
/// read-only.
pub const INPUTS_DIR: &str = "/vauban/in";
/// Where the build's fact cache is, writable: facts a host's first stage
/// gathered, read back by its next stages (`gathering = smart`).
pub const FACTS_DIR: &str = "/vauban/facts";
/// The keeper's socket in a host's directory.
pub(crate) const SOCKET_NAME: &str = ".vauban.sock";

/// The controller's root directory for `host` (its `ansible_host`).
pub fn host_root(host: &str) -> String {
    format!("{HOSTS_DIR}/{host}")
}

/// A host program run as the confined controller.
#[derive(Debug, Clone, Default)]
pub struct Controller {
    /// Program and arguments (paths as the controller sees them).
    pub argv: Vec<String>,
    /// Its whole environment.
    pub env: Vec<(String, String)>,
    /// Its working directory (shown read-only, e.g. the Ansible checkout).
    pub cwd: PathBuf,
    /// Host paths shown read-only at their own place (the checkout,
    /// collections, roles, an `ansible.cfg`, an Ansible installed outside
    /// `/usr`). Missing ones are left out.
    pub read_only: Vec<PathBuf>,
    /// Host paths never shown: covered wherever a read-only path would show
    /// them (the store, the key store, credentials, logs).
    pub hidden: Vec<PathBuf>,
    /// A directory of vauban's files for the run, at [`INPUTS_DIR`].
    pub inputs: Option<PathBuf>,
    /// The build's fact cache, writable, at [`FACTS_DIR`] (a conffs's
    /// hosts: facts gathered once per host and build).
    pub facts: Option<PathBuf>,
}

/// What init builds for the controller (made from a [`Controller`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ControllerRoot {
    /// The empty directory the root's tmpfs is mounted on.
    pub dir: PathBuf,
    /// The private writable `/tmp` (a directory of the session).
    pub tmp: PathBuf,
    /// The private writable home (a directory of the session).
    pub home_dir: PathBuf,
    /// Where it is shown (`$HOME`).
    pub home: PathBuf,
    /// See [`Controller::read_only`]: each where it is shown (absolute,
    /// normalised) and what is shown there (the same path with every link
    /// resolved, on which the rules are checked).
    pub read_only: Vec<Shown>,
    /// See [`Controller::hidden`]; absolute, links resolved where they exist.
    pub hidden: Vec<PathBuf>,
    /// See [`Controller::inputs`].
    pub inputs: Option<PathBuf>,
    /// See [`Controller::facts`].
    #[serde(default)]
    pub facts: Option<PathBuf>,
    /// The helper executable, shown as [`CHROOT_EXE`].
    pub helper: PathBuf,
    /// A `resolv.conf` shown over the system's (the build's own resolver).
    pub resolv_conf: Option<PathBuf>,
    /// The hosts, each with a keeper socket.
    pub hosts: Vec<String>,
}

/// A host path shown read-only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Shown {
    /// Where the controller sees it.
    pub at: PathBuf,
    /// What it sees there (links resolved): what is bound.
    pub source: PathBuf,
}

impl Shown {
    /// `path` as given (normalised) over what it resolves to; `None` when it
    /// does not exist.
    pub(crate) fn of(path: &Path) -> Option<Shown> {
        Some(Shown {
            at: normalise(path)?,
            source: std::fs::canonicalize(path).ok()?,
        })
    }
}

/// System directories shown read-only (links where the host has links).
const SYSTEM: [&str; 7] = ["usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32"];

/// What of `/etc` the controller is shown (a trailing `*`: a prefix), each
/// read-only where it exists. Everything else of `/etc` (shadow files, sshd
/// and TLS private keys, keytabs, cluster and VPN credentials: root reads
/// them even without capabilities) is not there at all.
pub const ETC_SHOWN: [&str; 41] = [
    "alternatives",
    "ansible",
    "bash.bashrc",
    "ca-certificates",
    "ca-certificates.conf",
    "crypto-policies",
    "debian_version",
    "environment",
    "gai.conf",
    "gitconfig",
    "group",
    "host.conf",
    "hostname",
    "hosts",
    "inputrc",
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "locale.alias",
    "locale.conf",
    "localtime",
    "login.defs",
    "lsb-release",
    "machine-id",
    "magic",
    "magic.mime",
    "mime.types",
    "netconfig",
    "networks",
    "nsswitch.conf",
    "os-release",
    "passwd",
    "pip.conf",
    "pki/ca-trust",
    "pki/tls/certs",
    "protocols",
    "python3*",
    "services",
    "shells",
    "ssl/certs",
    "ssl/openssl.cnf",
];

/// Device nodes bound into the controller's `/dev`.
const DEVICES: [&str; 5] = ["null", "zero", "full", "random", "urandom"];

/// Makes a path absolute and lexically clean (`.`/`..` resolved); `None` for a
/// relative path.
pub(crate) fn normalise(path: &Path) -> Option<PathBuf> {
    if !path.is_absolute() {
        return None;
    }
    let mut out = PathBuf::from("/");
    for c in path.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    Some(out)
}

/// Whether `a` is `b` or one of its ancestors.
fn contains(a: &Path, b: &Path) -> bool {
    b.starts_with(a)
}

impl ControllerRoot {
    /// The paths to show read-only, in mount order (parents first), without
    /// those whose content would show a hidden path whole (it or an ancestor
    /// of it is hidden) or the real home (an ancestor of `home`): the rules
    /// hold on what a path resolves to, whatever link leads there.
    pub(crate) fn shown(&self) -> Vec<Shown> {
        let home = std::fs::canonicalize(&self.home).unwrap_or_else(|_| self.home.clone());
        let mut shown: Vec<Shown> = self
            .read_only
            .iter()
            .filter(|s| !self.hidden.iter().any(|h| contains(h, &s.source)))
            .filter(|s| !contains(&s.source, &home) && !contains(&s.at, &self.home))
            .cloned()
            .collect();
        shown.sort_by_key(|s| s.at.components().count());
        shown.dedup();
        shown
    }

    /// Where the controller would see a hidden path inside a shown one (or
    /// the system dirs): each is covered there.
    pub(crate) fn masked(&self, shown: &[Shown]) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for h in &self.hidden {
            if SYSTEM.iter().any(|d| contains(&Path::new("/").join(d), h)) {
                out.push(h.clone());
            }
            for s in shown {
                if let Ok(rest) = h.strip_prefix(&s.source) {
                    if !rest.as_os_str().is_empty() {
                        out.push(s.at.join(rest));
                    }
                }
            }
        }
        out.sort();
        out.dedup();
        out
    }
}

/// In the session's init: builds the controller's root at `root.dir` and
/// returns one listening socket per host (bound at its directory's
/// [`SOCKET_NAME`]), in the order of `root.hosts`.
pub(crate) fn build_root(root: &ControllerRoot) -> Result<Vec<OwnedFd>> {
    let top = &root.dir;
    mount_fs(
        "tmpfs",
        top,
        MountFlags::NOSUID | MountFlags::NODEV,
        "size=16m,mode=0755",
    )?;
    for name in SYSTEM {
        let host = Path::new("/").join(name);
        let Ok(meta) = host.symlink_metadata() else {
            continue;
        };
        show_as_is(&host, &meta, &top.join(name))?;
    }
    make_etc(top)?;
    if let Some(resolv) = &root.resolv_conf {
        let target = top.join("etc/resolv.conf");
        touch(&target)?;
        bind(resolv, &target, false)?;
    }
    make_dev(top)?;
    for dir in ["proc", "tmp", "vauban/bin", "vauban/hosts"] {
        mkdir_p(&top.join(dir))?;
    }
    bind(&root.tmp, &top.join("tmp"), false)?;
    let home = inside(top, &root.home);
    mkdir_p(&home)?;
    bind(&root.home_dir, &home, false)?;
    let shown = root.shown();
    for s in &shown {
        let Ok(meta) = s.source.metadata() else {
            tracing::debug!(path = %s.source.display(), "not shown to the controller: missing");
            continue;
        };
        let target = inside(top, &s.at);
        if meta.is_dir() {
            mkdir_p(&target)?;
        } else {
            if let Some(parent) = target.parent() {
                mkdir_p(parent)?;
            }
            touch(&target)?;
        }
        show_read_only(&s.source, &target)?;
    }
    for hidden in root.masked(&shown) {
        mask(top, &hidden)?;
    }
    if let Some(inputs) = &root.inputs {
        let target = top.join(INPUTS_DIR.trim_start_matches('/'));
        mkdir_p(&target)?;
        show_read_only(inputs, &target)?;
    }
    if let Some(facts) = &root.facts {
        let target = top.join(FACTS_DIR.trim_start_matches('/'));
        mkdir_p(&target)?;
        bind(facts, &target, false)?;
    }
    let exe = top.join(CHROOT_EXE.trim_start_matches('/'));
    touch(&exe)?;
    show_read_only(&root.helper, &exe)?;
    let mut sockets = Vec::with_capacity(root.hosts.len());
    for host in &root.hosts {
        sockets.push(host_dir(top, host)?);
    }
    // Nothing is added to the root from now on.
    remount_read_only(top, top)?;
    Ok(sockets)
}

/// A host's directory: `bin/sh` (a link to the controller's own shell: Ansible's
/// chroot connection only checks that it is executable) and the keeper's
/// socket.
fn host_dir(top: &Path, host: &str) -> Result<OwnedFd> {
    let dir = top.join(host_root(host).trim_start_matches('/'));
    mkdir_p(&dir.join("bin"))?;
    let sh = dir.join("bin/sh");
    std::os::unix::fs::symlink("/bin/sh", &sh).at("symlink", &sh)?;
    let path = dir.join(SOCKET_NAME);
    // Bound by a relative name: a socket's address is at most 108 bytes,
    // which a long host name in a long temp dir would pass. (init is single
    // threaded: nothing else depends on its working directory meanwhile.)
    std::env::set_current_dir(&dir).at("enter", &dir)?;
    let listener = std::os::unix::net::UnixListener::bind(SOCKET_NAME);
    let back = std::env::set_current_dir("/").at("enter", "/");
    let listener = listener.at("listen on", &path)?;
    back?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).at("chmod", &path)?;
    Ok(OwnedFd::from(listener))
}

/// `path` of the host as a path under `top`.
fn inside(top: &Path, path: &Path) -> PathBuf {
    top.join(path.strip_prefix("/").unwrap_or(path))
}

fn mkdir_p(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).at("mkdir", dir)
}

fn touch(file: &Path) -> Result<()> {
    std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(file)
        .map(drop)
        .at("create", file)
}

/// Binds `source` (recursively) on `target`, read-only all the way down.
fn show_read_only(source: &Path, target: &Path) -> Result<()> {
    bind(source, target, true)?;
    make_read_only_recursive(source, target)
}

/// Covers `path` (of the host) under `top`: an empty read-only tmpfs on a
/// directory, `/dev/null` on anything else.
fn mask(top: &Path, path: &Path) -> Result<()> {
    let target = inside(top, path);
    match target.symlink_metadata() {
        Ok(m) if m.is_dir() => mount_fs(
            "tmpfs",
            &target,
            MountFlags::RDONLY | MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC,
            "size=0,mode=0500",
        ),
        Ok(m) if m.file_type().is_symlink() => Ok(()),
        Ok(_) => bind(&top.join("dev/null"), &target, false),
        Err(_) => Ok(()),
    }
}

/// `/etc`: what [`ETC_SHOWN`] names, each as the host has it (a link as a
/// link, a file or directory bound read-only).
fn make_etc(top: &Path) -> Result<()> {
    let etc = top.join("etc");
    mkdir_p(&etc)?;
    let names: Vec<String> = std::fs::read_dir("/etc")
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    let mut shown: Vec<String> = Vec::new();
    for entry in ETC_SHOWN {
        match entry.strip_suffix('*') {
            Some(prefix) => shown.extend(names.iter().filter(|n| n.starts_with(prefix)).cloned()),
            None => shown.push(entry.to_string()),
        }
    }
    for rel in shown {
        let host = Path::new("/etc").join(&rel);
        let Ok(meta) = host.symlink_metadata() else {
            continue;
        };
        let inside = etc.join(&rel);
        if let Some(parent) = inside.parent() {
            mkdir_p(parent)?;
        }
        show_as_is(&host, &meta, &inside)?;
    }
    Ok(())
}

/// Shows the host's `host` (whose metadata is `meta`) at `inside` as it is:
/// a link as the same link, a directory or file bound read-only.
fn show_as_is(host: &Path, meta: &std::fs::Metadata, inside: &Path) -> Result<()> {
    if meta.file_type().is_symlink() {
        let target = std::fs::read_link(host).at("read link", host)?;
        std::os::unix::fs::symlink(&target, inside).at("symlink", inside)?;
    } else if meta.is_dir() {
        mkdir_p(inside)?;
        show_read_only(host, inside)?;
    } else if meta.is_file() {
        touch(inside)?;
        show_read_only(host, inside)?;
    }
    Ok(())
}

/// `/dev`: the harmless nodes, a devpts of its own, `/dev/shm`.
fn make_dev(top: &Path) -> Result<()> {
    let dev = top.join("dev");
    mkdir_p(&dev)?;
    for name in DEVICES {
        let node = dev.join(name);
        touch(&node)?;
        bind(&Path::new("/dev").join(name), &node, false)?;
    }
    let pts = dev.join("pts");
    mkdir_p(&pts)?;
    mount_fs(
        "devpts",
        &pts,
        MountFlags::NOSUID | MountFlags::NOEXEC,
        "newinstance,ptmxmode=0666,mode=0620",
    )?;
    std::os::unix::fs::symlink("pts/ptmx", dev.join("ptmx")).at("symlink", dev.join("ptmx"))?;
    let shm = dev.join("shm");
    mkdir_p(&shm)?;
    mount_fs(
        "tmpfs",
        &shm,
        MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC,
        "mode=1777,size=64m",
    )?;
    for (link, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        let p = dev.join(link);
        std::os::unix::fs::symlink(target, &p).at("symlink", &p)?;
    }
    Ok(())
}

/// In the controller's own init (pid 1 of its pid namespace): its `/proc`
/// (masked as the image's is, `/proc/sys` read-only), then the root moved to
/// `root` with the old one detached.
pub(crate) fn enter_root(root: &Path) -> Result<()> {
    // The root was made read-only whole: `/proc` gets a mount of its own.
    mount_fs(
        "proc",
        &root.join("proc"),
        MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC,
        "",
    )?;
    super::confine::mask_proc(root)?;
    super::confine::pivot_into(root)
}

/// The error when a path given to the controller is not absolute.
pub(crate) fn not_absolute(path: &Path) -> Error {
    Error::io(
        "show to the Ansible controller (not an absolute path)",
        path,
        std::io::Error::from(std::io::ErrorKind::InvalidInput),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown_as_is(p: &str) -> Shown {
        Shown {
            at: p.into(),
            source: p.into(),
        }
    }

    fn root(read_only: &[&str], hidden: &[&str]) -> ControllerRoot {
        ControllerRoot {
            dir: "/s/ctl".into(),
            tmp: "/s/tmp".into(),
            home_dir: "/s/home".into(),
            home: "/home/alice".into(),
            read_only: read_only.iter().map(|p| shown_as_is(p)).collect(),
            hidden: hidden.iter().map(PathBuf::from).collect(),
            inputs: None,
            facts: None,
            helper: "/usr/bin/vauban".into(),
            resolv_conf: None,
            hosts: vec![],
        }
    }

    #[test]
    fn paths_are_normalised() {
        assert_eq!(
            normalise(Path::new("/a/./b/../c")),
            Some(PathBuf::from("/a/c"))
        );
        assert_eq!(normalise(Path::new("/../..")), Some(PathBuf::from("/")));
        assert_eq!(normalise(Path::new("rel")), None);
    }

    #[test]
    fn nothing_that_holds_a_hidden_path_or_the_home_is_shown_whole() {
        let r = root(
            &[
                "/srv/ansible",
                "/home/alice/.ansible/collections",
                "/home",
                "/home/alice",
                "/",
                "/home/alice/.config/vauban/x",
                "/srv",
            ],
            &["/home/alice/.config/vauban", "/srv/store"],
        );
        let shown = r.shown();
        assert_eq!(
            shown,
            [
                shown_as_is("/srv"),
                shown_as_is("/srv/ansible"),
                shown_as_is("/home/alice/.ansible/collections")
            ]
        );
        // The store inside a shown dir is covered.
        assert_eq!(r.masked(&shown), [PathBuf::from("/srv/store")]);
    }

    #[test]
    fn the_rules_hold_on_what_a_link_leads_to() {
        let mut r = root(&[], &["/home/alice/.config/vauban"]);
        // ~/.ansible/collections a link to the home itself, /srv/repo a link
        // to a dir that holds the key store's identity.
        r.read_only = vec![
            Shown {
                at: "/home/alice/.ansible/collections".into(),
                source: "/home/alice".into(),
            },
            Shown {
                at: "/srv/repo".into(),
                source: "/home/alice/.config".into(),
            },
            Shown {
                at: "/opt/x".into(),
                source: "/data/x".into(),
            },
        ];
        r.hidden.push("/data/x/store".into());
        let shown = r.shown();
        assert_eq!(
            shown.iter().map(|s| s.at.clone()).collect::<Vec<_>>(),
            [PathBuf::from("/srv/repo"), "/opt/x".into()]
        );
        // What is hidden is covered where the controller sees it.
        assert_eq!(
            r.masked(&shown),
            [PathBuf::from("/opt/x/store"), "/srv/repo/vauban".into()]
        );
    }

    #[test]
    fn hidden_paths_under_the_system_dirs_are_covered() {
        let r = root(&[], &["/usr/local/vauban-secret", "/var/lib/x"]);
        assert_eq!(
            r.masked(&r.shown()),
            [PathBuf::from("/usr/local/vauban-secret")]
        );
    }

    #[test]
    fn no_secret_of_etc_is_shown() {
        for secret in [
            "shadow",
            "gshadow",
            "ssh",
            "ssl/private",
            "krb5.keytab",
            "kubernetes",
            "wireguard",
            "sudoers",
        ] {
            assert!(
                !ETC_SHOWN
                    .iter()
                    .any(|e| secret.starts_with(e.trim_end_matches('*'))
                        || e.starts_with(&format!("{secret}/"))),
                "{secret}"
            );
        }
    }

    #[test]
    fn hosts_have_their_own_roots() {
        assert_eq!(host_root("web01"), "/vauban/hosts/web01");
    }
}
