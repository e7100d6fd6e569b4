//! The sandbox scenarios of `sandbox_run`, as an unprivileged user: the user
//! namespace with the full subordinate id mapping (run by `cargo xtask test`).

mod sandbox_common;

fn unprivileged() {
    assert!(
        !nix::unistd::geteuid().is_root(),
        "rootless tests must run as an unprivileged user: use cargo xtask test"
    );
}

#[test]
fn rootless_run_twice_then_commit() {
    unprivileged();
    sandbox_common::run_twice_then_commit();
}

#[test]
fn rootless_failed_prepare_leaves_nothing() {
    unprivileged();
    sandbox_common::failed_prepare_leaves_nothing_and_missing_image_is_named();
}
