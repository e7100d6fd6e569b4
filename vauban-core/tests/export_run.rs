//! The squashfs export as root (CI runs as root): no user namespace, the
//! image's owners as they are. The rootless runs are `rootless_export`.

#[allow(dead_code)]
mod sandbox_common;

#[allow(dead_code)]
mod export_common;

#[test]
fn squashfs_holds_the_image_as_it_is() {
    export_common::squashfs_holds_the_image_as_it_is();
}

#[test]
fn initramfs_needs_a_kernel_and_dracut() {
    export_common::initramfs_needs_a_kernel_and_dracut();
}
