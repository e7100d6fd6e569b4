//! What keeps the image's processes in the image, as runc and crun do it: the
//! root moved with `pivot_root` and the old one detached (no tree of the host
//! left to climb to), `/proc` paths masked or read-only, and a bounded
//! capability set (the same whether vauban runs as root or rootless), and a
//! session keyring of its own (the user's keys, such as a CI's cached
//! credentials, are not the image's to read).

use std::path::Path;

use rustix::mount::{MountFlags, MountPropagationFlags, UnmountFlags};
use rustix::thread::CapabilitySet;

use super::mount::{bind, mount_fs, remount_read_only};
use crate::error::{Error, Result};

/// The capabilities the image's processes keep: Docker's default set without
/// `CAP_MKNOD` (no devices cgroup here: a node of the host's disk would be
/// open to it) and `CAP_NET_RAW` (the host network is shared). Enough for apt,
/// dpkg, useradd, setcap in postinsts and Ansible's modules; no
/// `CAP_SYS_ADMIN`, `CAP_SYS_PTRACE`, `CAP_SYS_MODULE`, `CAP_DAC_READ_SEARCH`.
pub const ALLOWED_CAPABILITIES: CapabilitySet = CapabilitySet::CHOWN
    .union(CapabilitySet::DAC_OVERRIDE)
    .union(CapabilitySet::FOWNER)
    .union(CapabilitySet::FSETID)
    .union(CapabilitySet::KILL)
    .union(CapabilitySet::SETGID)
    .union(CapabilitySet::SETUID)
    .union(CapabilitySet::SETPCAP)
    .union(CapabilitySet::SETFCAP)
    .union(CapabilitySet::NET_BIND_SERVICE)
    .union(CapabilitySet::SYS_CHROOT)
    .union(CapabilitySet::AUDIT_WRITE);

/// `/proc` files hidden behind `/dev/null` (runc's masked paths).
pub const MASKED_FILES: [&str; 6] = [
    "proc/kcore",
    "proc/keys",
    "proc/latency_stats",
    "proc/timer_list",
    "proc/timer_stats",
    "proc/sched_debug",
];

/// Directories hidden behind an empty read-only tmpfs.
pub const MASKED_DIRS: [&str; 5] = [
    "proc/acpi",
    "proc/asound",
    "proc/scsi",
    "sys/firmware",
    "sys/devices/virtual/powercap",
];

/// Paths made read-only (runc's read-only paths).
pub const READ_ONLY: [&str; 5] = [
    "proc/bus",
    "proc/fs",
    "proc/irq",
    "proc/sys",
    "proc/sysrq-trigger",
];

/// Makes sure this process runs from a read-only mount of its executable:
/// when it does not, it enters a mount namespace of its own, binds its
/// executable read-only over itself there, and re-executes itself from it
/// with `args` (descriptors without close-on-exec, such as the channel, are
/// kept). Returns when the executable already is read-only.
///
/// Why (runc's CVE-2019-5736): a command forked from a sandbox process that
/// execs a script whose interpreter is `/proc/self/exe` runs this very
/// executable inside the image, dumpable; any process of the image may then
/// open `/proc/PID/exe` and chmod, chown or set xattrs on the file vauban
/// runs from. On a read-only mount each of those fails (`EROFS`), and the
/// content cannot be written while it runs (`ETXTBSY`).
pub(crate) fn run_from_read_only_exe(args: &[&str]) -> Result<()> {
    let exe = Path::new("/proc/self/exe");
    let st = rustix::fs::statvfs(exe).map_err(|e| Error::sys("statvfs /proc/self/exe", e))?;
    if st.f_flag.contains(rustix::fs::StatVfsMountFlags::RDONLY) {
        return Ok(());
    }
    let path = std::fs::read_link(exe).map_err(|e| Error::io("read link", exe, e))?;
    if !path.is_absolute() || path.to_string_lossy().ends_with(" (deleted)") {
        return Err(Error::io(
            "run the sandbox from (the vauban executable was replaced while it ran)",
            path,
            std::io::Error::from(std::io::ErrorKind::NotFound),
        ));
    }
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS)
        .map_err(|e| Error::sys("unshare", e))?;
    make_mounts_private()?;
    bind(&path, &path, false)?;
    remount_read_only(&path, &path)?;
    use std::os::unix::process::CommandExt;
    let err = std::process::Command::new(&path)
        .arg0(
            std::env::args_os()
                .next()
                .unwrap_or_else(|| "vauban-sandbox".into()),
        )
        .args(args)
        .env_clear()
        .exec();
    Err(Error::sys(
        "re-execute the sandbox from its read-only executable",
        err,
    ))
}

/// Nothing mounted from now on propagates back to the namespace we came from.
pub(crate) fn make_mounts_private() -> Result<()> {
    rustix::mount::mount_change(
        "/",
        MountPropagationFlags::PRIVATE | MountPropagationFlags::REC,
    )
    .map_err(|e| Error::sys("make / private", e))
}

/// Joins a new, empty session keyring, as runc does for every container:
/// the keyring inherited from the user's session stays out of reach of the
/// image's processes. A kernel without keys (`ENOSYS`) has nothing to hide.
#[allow(unsafe_code)]
pub(crate) fn new_session_keyring() -> Result<()> {
    const KEYCTL_JOIN_SESSION_KEYRING: libc::c_long = 1;
    // SAFETY: keyctl(KEYCTL_JOIN_SESSION_KEYRING, NULL) takes no buffer (a
    // NULL name makes an anonymous keyring) and only changes this process's
    // keyring subscription; no memory of ours is read or written.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_keyctl,
            KEYCTL_JOIN_SESSION_KEYRING,
            std::ptr::null::<libc::c_char>(),
        )
    };
    if rc < 0 {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::ENOSYS) {
            return Err(Error::sys("join a new session keyring", e));
        }
    }
    Ok(())
}

/// Masks the paths of `/proc` (and `/sys`) under `root` that runc masks.
/// Paths this kernel does not have are skipped.
pub(crate) fn mask_proc(root: &Path) -> Result<()> {
    let null = root.join("dev/null");
    for rel in MASKED_FILES {
        let target = root.join(rel);
        if target.symlink_metadata().is_ok() {
            bind(&null, &target, false)?;
        }
    }
    for rel in MASKED_DIRS {
        let target = root.join(rel);
        if target.symlink_metadata().is_ok_and(|m| m.is_dir()) {
            mount_fs(
                "tmpfs",
                &target,
                MountFlags::RDONLY | MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC,
                "size=0,mode=0555",
            )?;
        }
    }
    for rel in READ_ONLY {
        let target = root.join(rel);
        if target.symlink_metadata().is_ok() {
            bind(&target, &target, false)?;
            remount_read_only(&target, &target)?;
        }
    }
    Ok(())
}

/// Makes `new_root` (a mount point) the root of this mount namespace and
/// detaches the old root: nothing of the host's tree stays reachable, by `..`,
/// by a second `chroot` or by a path.
pub(crate) fn pivot_into(new_root: &Path) -> Result<()> {
    let err = |op: &'static str| {
        move |e: rustix::io::Errno| Error::Mount {
            what: format!("{op} {}", new_root.display()),
            target: new_root.to_path_buf(),
            source: e.into(),
        }
    };
    rustix::process::chdir(new_root).map_err(err("chdir"))?;
    // `pivot_root(".", ".")` stacks the old root on top of the new one; the
    // detach takes it away, leaving the new root as `/`.
    rustix::process::pivot_root(".", ".").map_err(err("pivot_root"))?;
    rustix::mount::unmount(".", UnmountFlags::DETACH).map_err(err("detach the old root of"))?;
    rustix::process::chdir("/").map_err(err("chdir"))?;
    Ok(())
}

/// The highest capability number this kernel knows.
pub(crate) fn last_capability() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(40)
}

/// Bounds this thread's capabilities to `allowed` (bounding, effective,
/// permitted and inheritable sets; ambient cleared): what it execs, setuid
/// programs included, can never hold more. Only plain system calls: fit to run
/// between fork and exec.
pub(crate) fn bound_capabilities(allowed: CapabilitySet, last: u32) -> std::io::Result<()> {
    for cap in 0..=last.min(63) {
        let set = CapabilitySet::from_bits_retain(1 << cap);
        if !allowed.contains(set) {
            match rustix::thread::remove_capability_from_bounding_set(set) {
                // Not known to this kernel.
                Ok(()) | Err(rustix::io::Errno::INVAL) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    let current = rustix::thread::capabilities(None)?;
    rustix::thread::set_capabilities(
        None,
        rustix::thread::CapabilitySets {
            effective: current.effective & allowed,
            permitted: current.permitted & allowed,
            inheritable: CapabilitySet::empty(),
        },
    )?;
    rustix::thread::clear_ambient_capability_set()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dangerous_capabilities_are_not_allowed() {
        for cap in [
            CapabilitySet::SYS_ADMIN,
            CapabilitySet::SYS_PTRACE,
            CapabilitySet::SYS_MODULE,
            CapabilitySet::SYS_RAWIO,
            CapabilitySet::DAC_READ_SEARCH,
            CapabilitySet::MKNOD,
            CapabilitySet::NET_RAW,
            CapabilitySet::NET_ADMIN,
            CapabilitySet::SYS_BOOT,
            CapabilitySet::SYS_TIME,
            CapabilitySet::SYSLOG,
            CapabilitySet::BPF,
        ] {
            assert!(!ALLOWED_CAPABILITIES.contains(cap), "{cap:?} is allowed");
        }
        assert_eq!(ALLOWED_CAPABILITIES.bits().count_ones(), 12);
    }
}
