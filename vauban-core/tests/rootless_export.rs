//! The export scenarios as an unprivileged user (run by `cargo xtask test`):
//! mksquashfs and dracut in the rootless sandbox.

#[allow(dead_code)]
mod sandbox_common;

mod export_common;

use sandbox_common::prelude::unprivileged;

#[test]
fn rootless_squashfs_holds_the_image_as_it_is() {
    unprivileged();
    export_common::squashfs_holds_the_image_as_it_is();
}

#[test]
fn rootless_initramfs_needs_a_kernel_and_dracut() {
    unprivileged();
    export_common::initramfs_needs_a_kernel_and_dracut();
}

#[test]
fn rootless_initramfs_holds_the_live_modules_and_drivers() {
    unprivileged();
    export_common::initramfs_holds_the_live_modules_and_drivers();
}
