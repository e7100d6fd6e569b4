//! The overlay of cached layer directories, and the small mount helpers of the
//! sandbox. Runs inside the sandbox's mount namespace only.
//!
//! The overlay is mounted with `userxattr` (inside a user namespace the kernel
//! requires it; as real root it keeps the same on-disk format: whiteouts are char
//! devices 0/0, opaque dirs carry `user.overlay.opaque`), never with `index=on`,
//! and `nodev`: a device node an image carries (a node of the host's disk) is
//! never usable, as real root too; the sandbox's `/dev` nodes are bind mounts of
//! the host's harmless ones.
//! Lower dirs are passed one by one with `fsconfig(lowerdir+)` (Linux >= 6.6), so the
//! one-page limit of the classic option string does not cap the number of layers; on
//! older kernels the classic `mount(2)` is used with paths relative to the layers'
//! common parent.

use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use rustix::mount::{
    fsconfig_create, fsconfig_set_flag, fsconfig_set_string, fsmount, fsopen, move_mount,
    FsMountFlags, FsOpenFlags, MountAttrFlags, MountFlags, MoveMountFlags,
};

use crate::error::{Error, Result};

/// An overlay to mount.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct Overlay {
    /// Lower dirs, topmost first.
    pub(crate) lower: Vec<PathBuf>,
    /// The upper dir (receives every change).
    pub(crate) upper: PathBuf,
    /// The work dir (same file system as `upper`, empty).
    pub(crate) work: PathBuf,
}

const HINT: &str = "the store must be on a file system overlayfs accepts as upper \
                    (not overlayfs itself, not NFS); see `dmesg` for the kernel's reason";

/// The classic `mount(2)` data string for an overlay, lower dirs given as written.
pub(crate) fn overlay_options(lower: &[String], upper: &str, work: &str) -> String {
    format!(
        "lowerdir={},upperdir={upper},workdir={work},userxattr,index=off",
        lower.join(":")
    )
}

impl Overlay {
    /// Mounts the overlay on `target`.
    pub(crate) fn mount(&self, target: &Path) -> Result<()> {
        if self.lower.is_empty() {
            // The caller gives an empty dir for an image without layers.
            return Err(Error::OverlayRefused {
                target: target.into(),
                layers: 0,
                hint: "the image has no layers".into(),
                source: std::io::Error::from_raw_os_error(libc::EINVAL),
            });
        }
        match self.mount_fsconfig(target) {
            Ok(()) => Ok(()),
            Err(FsconfigError::Unsupported) => self.mount_classic(target),
            Err(FsconfigError::Failed(source, log)) => Err(Error::OverlayRefused {
                target: target.into(),
                layers: self.lower.len(),
                hint: if log.is_empty() {
                    HINT.into()
                } else {
                    format!("kernel says: {log}")
                },
                source,
            }),
        }
    }

    fn mount_fsconfig(&self, target: &Path) -> Result<(), FsconfigError> {
        let fs = match fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC) {
            Ok(fd) => fd,
            Err(rustix::io::Errno::NOSYS) => return Err(FsconfigError::Unsupported),
            Err(e) => return Err(FsconfigError::Failed(e.into(), String::new())),
        };
        let failed = |e: rustix::io::Errno| FsconfigError::Failed(e.into(), fs_log(&fs));
        fsconfig_set_string(&fs, "source", "vauban").map_err(failed)?;
        for (i, dir) in self.lower.iter().enumerate() {
            match fsconfig_set_string(&fs, "lowerdir+", dir) {
                Ok(()) => {}
                // Kernels before 6.6 do not know `lowerdir+`.
                Err(rustix::io::Errno::INVAL) if i == 0 && kernel_lacks_lowerdir_plus(&fs) => {
                    return Err(FsconfigError::Unsupported)
                }
                Err(e) => return Err(failed(e)),
            }
        }
        fsconfig_set_string(&fs, "upperdir", &self.upper).map_err(failed)?;
        fsconfig_set_string(&fs, "workdir", &self.work).map_err(failed)?;
        fsconfig_set_flag(&fs, "userxattr").map_err(failed)?;
        fsconfig_set_string(&fs, "index", "off").map_err(failed)?;
        fsconfig_create(&fs).map_err(failed)?;
        let mnt = fsmount(
            &fs,
            FsMountFlags::FSMOUNT_CLOEXEC,
            MountAttrFlags::MOUNT_ATTR_NODEV,
        )
        .map_err(failed)?;
        move_mount(
            mnt.as_fd(),
            "",
            rustix::fs::CWD,
            target,
            MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
        )
        .map_err(failed)
    }

    fn mount_classic(&self, target: &Path) -> Result<()> {
        let refused = |source: std::io::Error| Error::OverlayRefused {
            target: target.into(),
            layers: self.lower.len(),
            hint: HINT.into(),
            source,
        };
        // Paths relative to the layers' common parent keep the string short.
        let parent = self.lower[0]
            .parent()
            .unwrap_or(Path::new("/"))
            .to_path_buf();
        let lower: Vec<String> = self
            .lower
            .iter()
            .map(|l| match l.strip_prefix(&parent) {
                Ok(rel) => rel.display().to_string(),
                Err(_) => l.display().to_string(),
            })
            .collect();
        let data = overlay_options(
            &lower,
            &self.upper.display().to_string(),
            &self.work.display().to_string(),
        );
        if data.len() >= 4096 {
            return Err(refused(std::io::Error::other(format!(
                "{} layers need {} bytes of mount options, more than one page, and this \
                 kernel has no `lowerdir+` (Linux >= 6.6)",
                self.lower.len(),
                data.len()
            ))));
        }
        std::env::set_current_dir(&parent).map_err(refused)?;
        let data = std::ffi::CString::new(data).map_err(|e| refused(std::io::Error::other(e)))?;
        rustix::mount::mount(
            "vauban",
            target,
            "overlay",
            MountFlags::NODEV,
            data.as_c_str(),
        )
        .map_err(|e| refused(e.into()))
    }
}

enum FsconfigError {
    Unsupported,
    Failed(std::io::Error, String),
}

fn kernel_lacks_lowerdir_plus(fs: &impl AsFd) -> bool {
    fs_log(fs).contains("lowerdir+")
}

/// The messages the kernel queued on an fs context (`e overlayfs: ...`).
fn fs_log(fs: &impl AsFd) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 1024];
    while let Ok(n) = rustix::io::read(fs, &mut buf) {
        if n == 0 {
            break;
        }
        out.push(String::from_utf8_lossy(&buf[..n]).trim().to_string());
    }
    out.join("; ")
}

/// Mounts a file system of type `fstype` on `target`.
pub(crate) fn mount_fs(fstype: &str, target: &Path, flags: MountFlags, data: &str) -> Result<()> {
    let err = |source: std::io::Error| Error::Mount {
        what: fstype.to_string(),
        target: target.into(),
        source,
    };
    let data = std::ffi::CString::new(data).map_err(|e| err(std::io::Error::other(e)))?;
    rustix::mount::mount(fstype, target, fstype, flags, data.as_c_str()).map_err(|e| Error::Mount {
        what: fstype.to_string(),
        target: target.into(),
        source: e.into(),
    })
}

/// Bind-mounts `source` on `target` (recursively when `recursive`).
pub(crate) fn bind(source: &Path, target: &Path, recursive: bool) -> Result<()> {
    let res = if recursive {
        rustix::mount::mount_bind_recursive(source, target)
    } else {
        rustix::mount::mount_bind(source, target)
    };
    res.map_err(|e| Error::Mount {
        what: source.display().to_string(),
        target: target.into(),
        source: e.into(),
    })
}

/// Makes the bind mount at `target` read-only, keeping the flags the kernel locks
/// (nosuid, nodev, noexec) as they are on `source`.
pub(crate) fn remount_read_only(source: &Path, target: &Path) -> Result<()> {
    use rustix::fs::StatVfsMountFlags as S;
    let err = |e: rustix::io::Errno| Error::Mount {
        what: format!("read-only {}", source.display()),
        target: target.into(),
        source: e.into(),
    };
    let st = rustix::fs::statvfs(source).map_err(err)?;
    let mut flags = MountFlags::BIND | MountFlags::RDONLY;
    for (s, m) in [
        (S::NOSUID, MountFlags::NOSUID),
        (S::NODEV, MountFlags::NODEV),
        (S::NOEXEC, MountFlags::NOEXEC),
        (S::NOATIME, MountFlags::NOATIME),
        (S::NODIRATIME, MountFlags::NODIRATIME),
        (S::RELATIME, MountFlags::RELATIME),
    ] {
        if st.f_flag.contains(s) {
            flags |= m;
        }
    }
    rustix::mount::mount_remount(target, flags, "").map_err(err)
}

/// `struct mount_attr` of `mount_setattr(2)`.
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// Makes the mount at `target` and every mount below it read-only
/// (`mount_setattr(AT_RECURSIVE, MOUNT_ATTR_RDONLY)`, Linux >= 5.12): a recursive
/// bind of `/sys` carries the host's cgroup file systems, which a remount of the
/// top mount alone leaves writable. Falls back to [`remount_read_only`] of the top
/// mount on older kernels.
#[allow(unsafe_code)]
pub(crate) fn make_read_only_recursive(source: &Path, target: &Path) -> Result<()> {
    const MOUNT_ATTR_RDONLY: u64 = 0x1;
    let err = |e: std::io::Error| Error::Mount {
        what: format!("read-only {}", source.display()),
        target: target.into(),
        source: e,
    };
    let path = std::ffi::CString::new(target.as_os_str().as_encoded_bytes())
        .map_err(|e| err(std::io::Error::other(e)))?;
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_RDONLY,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: `path` is a NUL-terminated string and `attr` a `struct mount_attr`
    // whose size is passed; both outlive the call, which only reads them.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            libc::AT_FDCWD,
            path.as_ptr(),
            (libc::AT_RECURSIVE | libc::AT_SYMLINK_NOFOLLOW) as libc::c_uint,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if rc == 0 {
        return Ok(());
    }
    let e = std::io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::ENOSYS) {
        return remount_read_only(source, target);
    }
    Err(err(e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classic_options_are_userxattr_without_index() {
        let o = overlay_options(&["b".into(), "a".into()], "/s/up", "/s/work");
        assert_eq!(
            o,
            "lowerdir=b:a,upperdir=/s/up,workdir=/s/work,userxattr,index=off"
        );
    }
}
