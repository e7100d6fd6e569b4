//! The boot tree: every file the hosts of a build boot from, laid out to be
//! served as is over HTTP.
//!
//! ```text
//! OUT/SHA256SUMS
//! OUT/linux/vmlinuz-KVER              OUT/linux/vmlinuz-default -> vmlinuz-KVER
//! OUT/linux/initramfs-KVER.img        OUT/linux/initramfs-default.img -> initramfs-KVER.img
//! OUT/MASTER/rootfs.img
//! OUT/MASTER/conffs-HOST.tgz
//! OUT/MASTER/cmdline-HOST             OUT/MASTER/boot-HOST.ipxe
//! OUT/disks/MASTER/HOST.raw           (--stage disk; not in SHA256SUMS)
//! ```
//!
//! The tree is private: its directories are 0700 (made so, or tightened, by
//! every build that writes into them) and each `conffs-HOST.tgz` is 0600, as
//! it holds the host's sshd private keys and whatever its stages put there.
//! The other files are 0644: the kernel, initramfs and `rootfs.img` are the
//! same for every host, and a command line or iPXE script holds URLs and
//! kernel arguments, which the firmware fetches in clear and every process
//! of the booted host reads in `/proc/cmdline` (no place for a secret).
//! Serving the tree takes a copy with explicit modes (README, "Publishing a
//! boot tree").

use std::path::{Path, PathBuf};

use super::atomic;
use super::cmdline::HostBoot;
use super::sums;
use crate::error::{IoContext, Result};

/// The directory of the tree holding the hosts' disk images
/// (`--stage disk`), left out of `SHA256SUMS` and never served: each
/// holds its host's conffs.
pub const DISKS_DIR: &str = "disks";

/// A boot tree rooted at a directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootTree {
    root: PathBuf,
}

impl BootTree {
    /// The tree at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        BootTree { root: root.into() }
    }

    /// Its root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Makes the root and `OUT/<sub>` (`linux`, a master's directory)
    /// private, created or tightened; returns `OUT/<sub>`.
    pub fn private_dir(&self, sub: &str) -> Result<PathBuf> {
        let dir = self.root.join(sub);
        for d in [self.root.as_path(), dir.as_path()] {
            crate::private::dir(d).at("make private", d)?;
        }
        Ok(dir)
    }

    /// `OUT/linux`: kernels and initramfs images.
    pub fn linux_dir(&self) -> PathBuf {
        self.root.join("linux")
    }

    /// `OUT/MASTER`.
    pub fn master_dir(&self, master: &str) -> PathBuf {
        self.root.join(master)
    }

    /// `OUT/MASTER/rootfs.img`.
    pub fn rootfs(&self, master: &str) -> PathBuf {
        self.master_dir(master).join("rootfs.img")
    }

    /// `OUT/MASTER/conffs-HOST.tgz`.
    pub fn conffs(&self, master: &str, host: &str) -> PathBuf {
        self.master_dir(master).join(format!("conffs-{host}.tgz"))
    }

    /// `OUT/MASTER/cmdline-HOST`.
    pub fn cmdline(&self, master: &str, host: &str) -> PathBuf {
        self.master_dir(master).join(format!("cmdline-{host}"))
    }

    /// `OUT/MASTER/boot-HOST.ipxe`.
    pub fn ipxe(&self, master: &str, host: &str) -> PathBuf {
        self.master_dir(master).join(format!("boot-{host}.ipxe"))
    }

    /// `OUT/SHA256SUMS`.
    pub fn sums(&self) -> PathBuf {
        self.root.join(sums::SUMS_FILE)
    }

    /// Writes the command line and the iPXE script of one host.
    pub fn write_host_files(&self, boot: &HostBoot<'_>) -> Result<()> {
        boot.validate()?;
        let cmdline = format!("{}\n", boot.cmdline());
        atomic::write_file(&self.cmdline(boot.master, boot.host), cmdline.as_bytes())?;
        atomic::write_file(
            &self.ipxe(boot.master, boot.host),
            boot.ipxe_script().as_bytes(),
        )?;
        Ok(())
    }

    /// Writes `OUT/SHA256SUMS` over everything in the tree.
    pub fn write_sums(&self) -> Result<PathBuf> {
        sums::write_sums(&self.root)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn host_files_land_in_the_masters_dir() {
        let dir = tempfile::tempdir().unwrap();
        let tree = BootTree::new(dir.path());
        let boot = HostBoot {
            base: "http://10.0.2.100",
            master: "bars",
            host: "web01",
            kver: "6.1.0-28-amd64",
            extra_args: &[],
        };
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(tree.private_dir("bars").unwrap(), dir.path().join("bars"));
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
        assert_eq!(
            (mode(dir.path()), mode(&dir.path().join("bars"))),
            (0o700, 0o700)
        );
        tree.write_host_files(&boot).unwrap();
        assert_eq!(mode(&dir.path().join("bars/boot-web01.ipxe")), 0o644);
        let cmdline = std::fs::read_to_string(dir.path().join("bars/cmdline-web01")).unwrap();
        assert_eq!(cmdline, format!("{}\n", boot.cmdline()));
        let ipxe = std::fs::read_to_string(dir.path().join("bars/boot-web01.ipxe")).unwrap();
        assert!(ipxe.starts_with("#!ipxe\n"), "{ipxe}");
        assert_eq!(
            tree.conffs("bars", "web01"),
            dir.path().join("bars/conffs-web01.tgz")
        );
        assert_eq!(tree.linux_dir().join("x"), dir.path().join("linux/x"));
        tree.write_sums().unwrap();
        let sums = std::fs::read_to_string(tree.sums()).unwrap();
        assert_eq!(sums.lines().count(), 2, "{sums}");
        let bad = HostBoot {
            host: "../x",
            ..boot
        };
        assert!(tree.write_host_files(&bad).is_err());
        assert!(!dir.path().join("x").exists());
    }
}
