//! The initramfs of a live boot over the network or from a local disk, made by the image's own
//! dracut in a sandbox over the image (rootless when vauban is not root), and
//! the kernel beside it.
//!
//! The initramfs is dracut's shell-based one: `livenet` fetches the squashfs
//! over HTTP, `dmsquash-live` mounts it with an overlayfs in RAM, and
//! `network-legacy` brings the link up with dhclient. dracut's `systemd`
//! modules are left out: with them `network` picks systemd-networkd and
//! `livenet` never fetches. Rootless, dracut's `mknod` of `dev/null`,
//! `dev/kmsg`, `dev/console`... in the initramfs fail ("Operation not
//! permitted") and the image lacks them: it boots all the same (the kernel's
//! devtmpfs provides them).
//!
//! Output: `vmlinuz-KVER`, `initramfs-KVER.img`, and `vmlinuz-default`,
//! `initramfs-default.img` as relative symlinks to them: a default that names
//! the version it points to, without a second copy of 60 MB (an HTTP server
//! or `rsync -l` follows or keeps them).

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags};
use vauban_oci::store::Store;
use vauban_oci::Image;

use super::atomic::{self, Staged};
use super::kernel::{self, DRACUT_PACKAGES};
use super::runlog;
use crate::error::{Error, IoContext, Result};
use crate::sandbox::{Io, Program, RunIo, Sandbox, SandboxOptions};

/// dracut modules added for a live boot over the network, and from a
/// local disk (`vauban-local`, vauban's own: see [`LOCAL_MODULE`]).
pub(crate) const MODULES: [&str; 6] = [
    "livenet",
    "dmsquash-live",
    "overlayfs",
    "network-legacy",
    "bash",
    LOCAL_MODULE_NAME,
];

/// The name of vauban's dracut module for a disk boot.
const LOCAL_MODULE_NAME: &str = "vauban-local";

/// vauban's dracut module, put into the image before dracut runs: on a
/// live boot from a local partition it applies the host's conffs from
/// that partition (`vauban.conffs=PATH`), which no stock module does
/// (livenet's `live.updates=` fetches over the network only), then lets
/// the partition go once the squashfs is in RAM. Its files, by name.
pub(crate) const LOCAL_MODULE: [(&str, &str); 3] = [
    (
        "module-setup.sh",
        include_str!("vauban-local/module-setup.sh"),
    ),
    (
        "vauban-local-conffs.sh",
        include_str!("vauban-local/vauban-local-conffs.sh"),
    ),
    (
        "vauban-local-release.sh",
        include_str!("vauban-local/vauban-local-release.sh"),
    ),
];

/// Where dracut looks for [`LOCAL_MODULE`] in the image.
const LOCAL_MODULE_DIR: &str = "/usr/lib/dracut/modules.d/95vauban-local";

/// dracut modules left out: systemd's (see the module doc) and the storage
/// stacks a live root does not use.
pub(crate) const OMITTED_MODULES: [&str; 13] = [
    "systemd",
    "systemd-initrd",
    "dracut-systemd",
    "systemd-networkd",
    "network-manager",
    "iscsi",
    "nfs",
    "lvm",
    "crypt",
    "btrfs",
    "mdraid",
    "multipath",
    "plymouth",
];

/// Kernel drivers always in the initramfs: the live root's, the disk
/// boot's file system, QEMU's NICs and disks, and common server NICs.
pub(crate) const DRIVERS: [&str; 14] = [
    "overlay",
    "loop",
    "squashfs",
    "ext4",
    "virtio_net",
    "virtio_pci",
    "virtio_blk",
    "e1000",
    "e1000e",
    "igb",
    "ixgbe",
    "r8169",
    "tg3",
    "bnx2",
];

/// Where vauban's `dracut.conf` is put in the image.
pub(crate) const CONF_IN_IMAGE: &str = "/etc/vauban/dracut.conf";

/// Where dracut writes the initramfs in the image (lands in the upper dir).
pub(crate) const INITRAMFS_IN_IMAGE: &str = "/var/tmp/vauban-initramfs.img";

/// The largest initramfs taken out of the image (dracut's are ~60 MB): the
/// file is the image's, a sparse one could otherwise fill the disk.
const INITRAMFS_LIMIT: u64 = 4 << 30;

/// vauban's `dracut.conf`, then the user's `extra` text (which may override it).
pub(crate) fn dracut_conf(extra: &str) -> String {
    let mut conf = String::from("# vauban: an initramfs for a live boot over the network\n");
    conf.push_str("hostonly=\"no\"\n");
    conf.push_str("compress=\"gzip\"\n");
    conf.push_str(&format!("add_dracutmodules+=\" {} \"\n", MODULES.join(" ")));
    conf.push_str(&format!(
        "omit_dracutmodules+=\" {} \"\n",
        OMITTED_MODULES.join(" ")
    ));
    conf.push_str(&format!("add_drivers+=\" {} \"\n", DRIVERS.join(" ")));
    if !extra.trim().is_empty() {
        conf.push_str("# from the build's configuration\n");
        conf.push_str(extra);
        if !extra.ends_with('\n') {
            conf.push('\n');
        }
    }
    conf
}

/// The dracut command line (run in the image) making the initramfs of `kver`.
pub(crate) fn dracut_argv(kver: &str) -> Vec<String> {
    [
        "dracut",
        "--force",
        "--reproducible",
        "--no-hostonly",
        "--conf",
        CONF_IN_IMAGE,
        "--kver",
        kver,
        INITRAMFS_IN_IMAGE,
    ]
    .map(String::from)
    .to_vec()
}

/// How to make the initramfs.
#[derive(Debug, Clone, Default)]
pub struct InitramfsOptions {
    /// Text appended to vauban's `dracut.conf`.
    pub extra_conf: String,
    /// Where dracut's output is written.
    pub log: PathBuf,
    /// The sandbox dracut runs in.
    pub sandbox: SandboxOptions,
}

/// A kernel and its initramfs in the output directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootKernel {
    /// The kernel version (`6.1.0-28-amd64`).
    pub version: String,
    /// `DIR/vmlinuz-VERSION`.
    pub kernel: PathBuf,
    /// `DIR/initramfs-VERSION.img`.
    pub initramfs: PathBuf,
}

/// File names of the kernel and initramfs of `kver`.
pub(crate) fn file_names(kver: &str) -> (String, String) {
    (format!("vmlinuz-{kver}"), format!("initramfs-{kver}.img"))
}

/// The `-default` names.
pub(crate) const DEFAULT_NAMES: (&str, &str) = ("vmlinuz-default", "initramfs-default.img");

/// Runs dracut in a sandbox over `image` (named `name` in messages) and writes
/// the kernel and initramfs into `out_dir` (see the module doc).
pub fn make_initramfs(
    store: &Store,
    image: &Image,
    name: &str,
    opts: &InitramfsOptions,
    out_dir: &Path,
) -> Result<BootKernel> {
    let sandbox = Sandbox::prepare(store, image, opts.sandbox.clone()).map_err(
        Error::export_sandbox(format!("prepare a sandbox over {name}")),
    )?;
    let listing = kernel::list(&sandbox)?;
    let kver = listing.require(name)?;
    if !listing.dracut || !listing.curl {
        return Err(Error::NoDracut {
            image: name.to_owned(),
            packages: DRACUT_PACKAGES,
        });
    }
    // The kernel is copied before anything of the image runs: dracut could
    // turn `/boot` into a link to the host's files.
    let (kernel_name, initramfs_name) = file_names(&kver);
    let staged_kernel = Staged::new(&out_dir.join(&kernel_name))?;
    copy_kernel(&sandbox, &kver, staged_kernel.path())?;
    sandbox
        .put_file(
            CONF_IN_IMAGE,
            dracut_conf(&opts.extra_conf).as_bytes(),
            0o644,
        )
        .map_err(Error::export_sandbox("put dracut.conf in the image"))?;
    for (name, text) in LOCAL_MODULE {
        let mode = if name == "module-setup.sh" {
            0o755
        } else {
            0o644
        };
        sandbox
            .put_file(&format!("{LOCAL_MODULE_DIR}/{name}"), text.as_bytes(), mode)
            .map_err(Error::export_sandbox(
                "put vauban's dracut module in the image",
            ))?;
    }
    let started = std::time::Instant::now();
    let status = sandbox
        .run_with(
            &Program::Image(dracut_argv(&kver)),
            runlog::streams(&opts.log)?,
        )
        .map_err(Error::export_sandbox(format!("run dracut in {name}")))?;
    runlog::check("dracut", status, &opts.log)?;
    tracing::info!(kver, elapsed = ?started.elapsed(), "initramfs made");

    let initramfs = Staged::new(&out_dir.join(&initramfs_name))?;
    copy_from_upper(&sandbox.upper_dir(), INITRAMFS_IN_IMAGE, initramfs.path())?;
    sandbox
        .discard()
        .map_err(Error::export_sandbox("remove dracut's sandbox"))?;
    let kernel = staged_kernel.publish()?;
    let initramfs = initramfs.publish()?;
    atomic::symlink(&kernel_name, &out_dir.join(DEFAULT_NAMES.0))?;
    atomic::symlink(&initramfs_name, &out_dir.join(DEFAULT_NAMES.1))?;
    Ok(BootKernel {
        version: kver,
        kernel,
        initramfs,
    })
}

/// Copies the regular file `rel` (absolute in the image) of the upper dir to
/// `dest`, following no link of the upper dir (dracut is the image's code).
fn copy_from_upper(upper: &Path, rel: &str, dest: &Path) -> Result<()> {
    let rel = rel.trim_start_matches('/');
    let (dir, name) = rel.rsplit_once('/').unwrap_or(("", rel));
    let missing = |_| Error::NotMade {
        program: "dracut".into(),
        path: upper.join(rel),
    };
    let root = File::open(upper).at("open", upper)?;
    let dir_fd = vauban_oci::beneath::open_beneath(&root, dir.as_bytes()).map_err(missing)?;
    let fd = rustix::fs::openat(
        &dir_fd,
        name,
        // Non-blocking: a FIFO left there would block the open forever.
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK,
        Mode::empty(),
    )
    .map_err(|e| missing(std::io::Error::from(e)))?;
    let regular = rustix::fs::fstat(&fd)
        .map(|st| {
            rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::RegularFile
        })
        .unwrap_or(false);
    if !regular {
        return Err(missing(std::io::Error::other("not a regular file")));
    }
    let mut src = File::from(fd).take(INITRAMFS_LIMIT + 1);
    let mut out = File::create(dest).at("open", dest)?;
    let copied = std::io::copy(&mut src, &mut out).at("write", dest)?;
    if copied > INITRAMFS_LIMIT {
        return Err(Error::io(
            "copy",
            upper.join(rel),
            std::io::Error::other(format!("more than {INITRAMFS_LIMIT} bytes")),
        ));
    }
    Ok(())
}

/// Copies `/boot/vmlinuz-KVER` of the image to `dest` (a host `cat` on the
/// bare tree, whose output goes to `dest`: the kernel is root's, mode 0600).
/// [`kernel::list`] took only a `boot` and a kernel that are no links, and
/// nothing ran in the sandbox since.
fn copy_kernel(sandbox: &Sandbox<'_>, kver: &str, dest: &Path) -> Result<()> {
    let src = sandbox.merged_dir().join(format!("boot/vmlinuz-{kver}"));
    let out = File::create(dest).at("open", dest)?;
    let io = RunIo {
        stdin: Io::Null,
        stdout: Io::File(out),
        stderr: Io::Inherit,
    };
    let program = Program::OnTree(vec![
        "cat".into(),
        "--".into(),
        src.to_string_lossy().into_owned(),
    ]);
    let status = sandbox
        .run_with(&program, io)
        .map_err(Error::export_sandbox("copy the kernel out of the image"))?;
    if !status.success() {
        return Err(Error::NotMade {
            program: "cat".into(),
            path: src,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_conf_adds_the_live_modules_and_drivers_then_the_users_text() {
        let conf = dracut_conf("compress=\"xz\"");
        assert!(conf.contains("hostonly=\"no\"\n"));
        assert!(conf.contains(
            "add_dracutmodules+=\" livenet dmsquash-live overlayfs network-legacy bash \
             vauban-local \"\n"
        ));
        assert!(conf.contains("omit_dracutmodules+=\" systemd systemd-initrd "));
        assert!(conf.contains(" plymouth \"\n"));
        assert!(conf.contains(
            "add_drivers+=\" overlay loop squashfs ext4 virtio_net virtio_pci virtio_blk e1000 e1000e \
             igb ixgbe r8169 tg3 bnx2 \"\n"
        ));
        // The user's text comes last, so it wins.
        assert!(conf.ends_with("compress=\"xz\"\n"), "{conf}");
        assert!(conf.find("compress=\"gzip\"").unwrap() < conf.find("compress=\"xz\"").unwrap());
        assert!(!dracut_conf("  \n").contains("from the build"));
    }

    #[test]
    fn dracut_is_run_on_vaubans_conf_for_one_kernel() {
        assert_eq!(
            dracut_argv("6.1.0-28-amd64").join(" "),
            "dracut --force --reproducible --no-hostonly --conf /etc/vauban/dracut.conf \
             --kver 6.1.0-28-amd64 /var/tmp/vauban-initramfs.img"
        );
    }

    #[test]
    fn file_names_carry_the_version() {
        assert_eq!(
            file_names("6.1.0-28-amd64"),
            (
                "vmlinuz-6.1.0-28-amd64".to_string(),
                "initramfs-6.1.0-28-amd64.img".to_string()
            )
        );
    }

    #[test]
    fn a_file_is_copied_from_the_upper_dir_but_never_through_a_link() {
        let upper = tempfile::tempdir().unwrap();
        let out = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(upper.path().join("var/tmp")).unwrap();
        std::fs::write(upper.path().join("var/tmp/vauban-initramfs.img"), "cpio").unwrap();
        let dest = out.path().join("i.img");
        copy_from_upper(upper.path(), INITRAMFS_IN_IMAGE, &dest).unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"cpio");

        let linked = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(linked.path().join("var")).unwrap();
        std::os::unix::fs::symlink(upper.path().join("var/tmp"), linked.path().join("var/tmp"))
            .unwrap();
        let err = copy_from_upper(linked.path(), INITRAMFS_IN_IMAGE, &dest).unwrap_err();
        assert!(matches!(err, Error::NotMade { .. }), "{err}");
    }
}
