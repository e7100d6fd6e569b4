//! What a build sees besides the image: `/proc`, a minimal `/dev` (host nodes
//! bind-mounted onto files of the merged tree, a private devpts), `/sys` read-only,
//! tmpfs `/tmp` and `/run`, private `/etc/resolv.conf`, `/etc/hosts`,
//! `/etc/hostname`, and what keeps services from starting: a deny-all
//! `policy-rc.d` (which `invoke-rc.d` and `deb-systemd-invoke` obey) and a
//! hook of `/lib/lsb/init-functions` that makes every init script run
//! directly (`/etc/init.d/nginx start`, `service nginx start`, Ansible's
//! `sysvinit` module) obey it too. (`systemctl start` does nothing: the
//! environment says `SYSTEMD_OFFLINE=1`.)
//!
//! Mount points missing from the image are created in the merged tree, so they land
//! in the upper dir: they are listed here ([`PLACEHOLDER_FILES`], ...) and taken out
//! again at commit. Every path is checked component by component: a symlink in the
//! image never redirects a mount.

use std::path::{Path, PathBuf};

use rustix::mount::MountFlags;

use super::mount::{bind, make_read_only_recursive, mount_fs};
use crate::error::{Error, IoContext, Result};

/// The files of the sandbox's private dir bind-mounted over the image's, with the
/// path they cover.
pub(crate) const PRIVATE_FILES: [(&str, &str); 3] = [
    ("resolv.conf", "etc/resolv.conf"),
    ("hosts", "etc/hosts"),
    ("hostname", "etc/hostname"),
];

/// The private `policy-rc.d` and where it goes.
pub(crate) const POLICY_RC_D: (&str, &str) = ("policy-rc.d", "usr/sbin/policy-rc.d");

/// Its content: deny every service start.
pub(crate) const POLICY_RC_D_SCRIPT: &str =
    "#!/bin/sh\n# vauban: no service starts during a build\nexit 101\n";

/// The init-functions hook: its private file name, the directories it goes
/// into (merged `/usr` first), its content. Sourced by every LSB init script
/// with the script's arguments: a start (or restart, reload...) that
/// `policy-rc.d` refuses ends the script there, successfully, as
/// `invoke-rc.d` would.
pub(crate) const INIT_FUNCTIONS_HOOK: (&str, [&str; 2], &str) = (
    "00-vauban-policy",
    ["usr/lib/lsb/init-functions.d", "lib/lsb/init-functions.d"],
    r#"# vauban: init scripts obey policy-rc.d during a build
case "${1:-}" in
start|restart|reload|force-reload|try-restart)
    vauban_prog=${0##*/}
    if [ -x /usr/sbin/policy-rc.d ]; then
        /usr/sbin/policy-rc.d "${vauban_prog%.sh}" "$1" >/dev/null 2>&1
        if [ $? = 101 ]; then
            echo "vauban: not running '${vauban_prog} $1' during a build (policy-rc.d)" >&2
            exit 0
        fi
    fi
    ;;
esac
"#,
);

/// Host device nodes bind-mounted into `/dev`.
pub(crate) const DEVICES: [&str; 6] = ["null", "zero", "full", "random", "urandom", "tty"];

/// Files the sandbox may create as mount points.
pub(crate) const PLACEHOLDER_FILES: [&str; 13] = [
    "dev/null",
    "dev/zero",
    "dev/full",
    "dev/random",
    "dev/urandom",
    "dev/tty",
    "dev/ptmx",
    "etc/resolv.conf",
    "etc/hosts",
    "etc/hostname",
    "usr/sbin/policy-rc.d",
    "usr/lib/lsb/init-functions.d/00-vauban-policy",
    "lib/lsb/init-functions.d/00-vauban-policy",
];

/// Symlinks the sandbox may create in `/dev`, with their targets.
pub(crate) const PLACEHOLDER_LINKS: [(&str, &str); 4] = [
    ("dev/fd", "/proc/self/fd"),
    ("dev/stdin", "/proc/self/fd/0"),
    ("dev/stdout", "/proc/self/fd/1"),
    ("dev/stderr", "/proc/self/fd/2"),
];

/// Directories the sandbox may create, deepest first.
pub(crate) const PLACEHOLDER_DIRS: [&str; 7] =
    ["dev/pts", "dev/shm", "dev", "proc", "sys", "tmp", "run"];

/// Sets up everything under `merged` (the mounted overlay); `private` holds the
/// sandbox's own copies of [`PRIVATE_FILES`] and [`POLICY_RC_D`].
pub(crate) fn setup(merged: &Path, private: &Path) -> Result<()> {
    let nosuid_nodev_noexec = MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC;
    let proc = ensure_dir(merged, "proc")?;
    mount_fs("proc", &proc, nosuid_nodev_noexec, "")?;

    ensure_dir(merged, "dev")?;
    for dev in DEVICES {
        let target = ensure_file(merged, &format!("dev/{dev}"))?;
        bind(&Path::new("/dev").join(dev), &target, false)?;
    }
    let pts = ensure_dir(merged, "dev/pts")?;
    mount_fs(
        "devpts",
        &pts,
        MountFlags::NOSUID | MountFlags::NOEXEC,
        "newinstance,ptmxmode=0666,mode=0620",
    )?;
    let ptmx = ensure_file(merged, "dev/ptmx")?;
    bind(&pts.join("ptmx"), &ptmx, false)?;
    let shm = ensure_dir(merged, "dev/shm")?;
    mount_fs(
        "tmpfs",
        &shm,
        MountFlags::NOSUID | MountFlags::NODEV,
        "mode=1777",
    )?;
    for (link, target) in PLACEHOLDER_LINKS {
        let path = checked(merged, link)?;
        if path.symlink_metadata().is_err() {
            std::os::unix::fs::symlink(target, &path).at("symlink", &path)?;
        }
    }

    let sys = ensure_dir(merged, "sys")?;
    bind(Path::new("/sys"), &sys, true)?;
    make_read_only_recursive(Path::new("/sys"), &sys)?;
    let tmp = ensure_dir(merged, "tmp")?;
    mount_fs(
        "tmpfs",
        &tmp,
        MountFlags::NOSUID | MountFlags::NODEV,
        "mode=1777",
    )?;
    let run = ensure_dir(merged, "run")?;
    mount_fs(
        "tmpfs",
        &run,
        MountFlags::NOSUID | MountFlags::NODEV,
        "mode=0755",
    )?;

    ensure_dir(merged, "etc")?;
    for (name, rel) in PRIVATE_FILES {
        bind_private(merged, &private.join(name), rel)?;
    }
    let (name, rel) = POLICY_RC_D;
    if checked(merged, "usr/sbin")?.is_dir() {
        bind_private(merged, &private.join(name), rel)?;
    }
    let (name, dirs, _) = INIT_FUNCTIONS_HOOK;
    // The first that is a real directory (`lib` is a link to `usr/lib` on a
    // merged /usr: `checked` refuses to go through it).
    if let Some(dir) = dirs
        .iter()
        .find(|d| checked(merged, d).is_ok_and(|p| p.symlink_metadata().is_ok_and(|m| m.is_dir())))
    {
        let target = ensure_file(merged, &format!("{dir}/{name}"))?;
        bind(&private.join(name), &target, false)?;
    }
    Ok(())
}

/// Binds a private file over `rel`. When the image has a symlink there, the link
/// is kept and the private file is bound at its target (resolved inside the merged
/// tree, never on the host): into `/run` or `/tmp` (e.g. systemd-resolved's
/// `../run/systemd/resolve/stub-resolv.conf`) the target is made on the sandbox's
/// own tmpfs; elsewhere it must be a regular file of the image (covered, not
/// changed). A dangling link elsewhere is left alone: the build sees what the
/// image has.
fn bind_private(merged: &Path, source: &Path, rel: &str) -> Result<()> {
    let path = checked(merged, rel)?;
    if path
        .symlink_metadata()
        .is_ok_and(|m| m.file_type().is_symlink())
    {
        let link = std::fs::read_link(&path).at("read link", &path)?;
        let dir = Path::new(rel).parent().unwrap_or(Path::new(""));
        let target = resolve_in_root(dir, &link);
        let on_tmpfs = target
            .components()
            .next()
            .is_some_and(|c| c.as_os_str() == "run" || c.as_os_str() == "tmp");
        let target_str = target.to_string_lossy();
        if !on_tmpfs
            && !target_str.is_empty()
            && checked(merged, &target_str)
                .is_ok_and(|p| p.symlink_metadata().is_ok_and(|m| m.is_file()))
        {
            // A file of the image: covered, not changed (the layer keeps it).
            return bind(source, &checked(merged, &target_str)?, false);
        }
        if !on_tmpfs || target.components().count() < 2 {
            tracing::warn!(
                "/{rel} is a symlink to {} in the image: not replaced by the sandbox's copy",
                link.display()
            );
            return Ok(());
        }
        let target = target.to_string_lossy().into_owned();
        let mut prefix = String::new();
        let parts: Vec<&str> = target.split('/').collect();
        for part in &parts[..parts.len() - 1] {
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(part);
            ensure_dir(merged, &prefix)?;
        }
        let file = ensure_file(merged, &target)?;
        return bind(source, &file, false);
    }
    let target = ensure_file(merged, rel)?;
    bind(source, &target, false)
}

/// Where the link `target`, found in the directory `dir` of the image, points,
/// relative to the image's root (chroot semantics: `..` stops at the root, an
/// absolute target starts from it). Only the link's own text is resolved: a
/// symlink met on the way is refused later by [`checked`].
pub(crate) fn resolve_in_root(dir: &Path, target: &Path) -> PathBuf {
    use std::path::Component;
    let mut out: Vec<std::ffi::OsString> = Vec::new();
    if target.is_relative() {
        out.extend(dir.iter().map(|c| c.to_os_string()));
    }
    for c in target.components() {
        match c {
            Component::Normal(n) => out.push(n.to_os_string()),
            Component::ParentDir => {
                out.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    out.iter().collect()
}

/// `merged/rel` after checking that no component of `rel` but the last is a
/// symlink (mount(2) and mkdir would follow it out of the tree).
fn checked(merged: &Path, rel: &str) -> Result<PathBuf> {
    let mut path = merged.to_path_buf();
    let parts: Vec<&str> = rel.split('/').collect();
    for (i, part) in parts.iter().enumerate() {
        path.push(part);
        if i + 1 < parts.len()
            && path
                .symlink_metadata()
                .is_ok_and(|m| m.file_type().is_symlink())
        {
            return Err(symlink_error(&path, rel));
        }
    }
    Ok(path)
}

fn symlink_error(path: &Path, rel: &str) -> Error {
    Error::Mount {
        what: format!("/{rel}"),
        target: path.into(),
        source: std::io::Error::other(
            "a path component is a symlink in the image; refusing to follow it",
        ),
    }
}

/// Makes sure `merged/rel` is a directory (creating it if absent).
fn ensure_dir(merged: &Path, rel: &str) -> Result<PathBuf> {
    let path = checked(merged, rel)?;
    match path.symlink_metadata() {
        Ok(m) if m.is_dir() => Ok(path),
        Ok(_) => Err(symlink_error(&path, rel)),
        Err(_) => {
            std::fs::create_dir(&path).at("mkdir", &path)?;
            Ok(path)
        }
    }
}

/// Makes sure `merged/rel` exists and is not a directory or symlink (creating an
/// empty file if absent), to bind a file over it.
fn ensure_file(merged: &Path, rel: &str) -> Result<PathBuf> {
    let path = checked(merged, rel)?;
    match path.symlink_metadata() {
        Ok(m) if m.file_type().is_symlink() || m.is_dir() => Err(symlink_error(&path, rel)),
        Ok(_) => Ok(path),
        Err(_) => {
            std::fs::File::create(&path).at("create", &path)?;
            Ok(path)
        }
    }
}

/// The content of the private `/etc/hosts` for `hostname`.
pub(crate) fn hosts_file(hostname: &str) -> String {
    format!(
        "127.0.0.1\tlocalhost\n127.0.1.1\t{hostname}\n::1\tlocalhost ip6-localhost ip6-loopback\n\
         ff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_names_the_host() {
        assert!(hosts_file("web01").contains("127.0.1.1\tweb01\n"));
    }

    #[test]
    fn symlinked_parent_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/etc", dir.path().join("dev")).unwrap();
        assert!(checked(dir.path(), "dev/null").is_err());
        assert!(checked(dir.path(), "dev").is_ok());
        assert!(ensure_dir(dir.path(), "dev").is_err());
    }

    #[test]
    fn links_resolve_inside_the_root() {
        let etc = Path::new("etc");
        let want = Path::new("run/systemd/resolve/stub-resolv.conf");
        for link in [
            "../run/systemd/resolve/stub-resolv.conf",
            "/run/systemd/resolve/stub-resolv.conf",
            "../../../../run/systemd/./resolve/stub-resolv.conf",
        ] {
            assert_eq!(resolve_in_root(etc, Path::new(link)), want, "{link}");
        }
        assert_eq!(
            resolve_in_root(etc, Path::new("resolvconf/resolv.conf")),
            Path::new("etc/resolvconf/resolv.conf")
        );
    }

    #[test]
    fn placeholders_cover_every_mount_point() {
        for dev in DEVICES {
            assert!(PLACEHOLDER_FILES.contains(&format!("dev/{dev}").as_str()));
        }
        for (_, rel) in PRIVATE_FILES {
            assert!(PLACEHOLDER_FILES.contains(&rel));
        }
    }
}
