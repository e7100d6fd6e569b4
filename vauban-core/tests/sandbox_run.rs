//! The sandbox through the library: prepare, two runs over one upper dir, a host
//! program seeing the overlay at `merged_dir()`, a failing run, commit. In CI this
//! runs as root (no user namespace: the root path); `rootless_sandbox` runs the same
//! scenarios as an unprivileged user.

mod sandbox_common;

#[test]
fn run_twice_then_commit() {
    sandbox_common::run_twice_then_commit();
}

#[test]
fn failed_prepare_leaves_nothing_and_missing_image_is_named() {
    sandbox_common::failed_prepare_leaves_nothing_and_missing_image_is_named();
}

#[test]
fn inherited_fds_do_not_reach_the_command() {
    sandbox_common::inherited_fds_do_not_reach_the_command();
}

#[test]
fn sys_is_read_only_with_its_submounts() {
    sandbox_common::sys_is_read_only_with_its_submounts();
}

#[test]
fn resolv_conf_link_into_run_gets_the_private_copy() {
    sandbox_common::resolv_conf_link_into_run_gets_the_private_copy();
}

#[test]
fn image_without_layers_runs() {
    sandbox_common::image_without_layers_runs();
}

#[test]
fn put_files_and_the_bare_tree() {
    sandbox_common::put_files_and_the_bare_tree();
}
