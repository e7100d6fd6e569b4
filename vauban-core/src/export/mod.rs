//! The boot files of a build: the kernel and a dracut initramfs for a live
//! boot over the network (`dracut`), the image as a squashfs `rootfs.img`
//! (`squashfs`), each host's kernel command line and iPXE script
//! (`cmdline`), what a boot server reads of a master's build (`boot_info`),
//! the layout of the boot tree (`tree`) and its
//! `SHA256SUMS` (`sums`), and each host's conffs archive, the layers its
//! build added over the master's image (`conffs`).
//!
//! Each export runs in a [`Sandbox`](crate::sandbox::Sandbox) over an image
//! of the store (rootless when vauban is not root): dracut inside the image,
//! mksquashfs on the bare merged tree. Files land in the tree atomically
//! (`atomic`). Errors are the crate's [`Error`](crate::Error), in its sections
//! for boot files and conffs archives.

pub(crate) mod atomic;
pub(crate) mod boot_info;
pub(crate) mod cmdline;
pub(crate) mod conffs;
pub(crate) mod disk;
pub(crate) mod dracut;
pub(crate) mod kernel;
pub(crate) mod runlog;
pub(crate) mod squashfs;
pub(crate) mod sums;
pub(crate) mod tree;

pub use boot_info::{is_kernel_arg, normalize_mac, BootInfo, HostInfo, BOOT_INFO_FILE};
pub use cmdline::{is_plain_name, live_cmdline, HostBoot};
pub use conffs::{export_conffs, ConffsOptions, ConffsReport};
pub use disk::{
    disk_entries, make_disk, rollback_disk, update_disk, DiskFiles, DiskOptions, DiskReport,
    Entry as DiskEntry,
};
pub use dracut::{make_initramfs, BootKernel, InitramfsOptions};
pub use kernel::KernelListing;
pub use squashfs::{make_rootfs, ResolvConf, SquashCompression, SquashfsOptions};
pub use tree::{BootTree, DISKS_DIR};
