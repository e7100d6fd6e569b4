//! The sandbox scenarios of `sandbox_run`, as an unprivileged user: the user
//! namespace with the full subordinate id mapping (run by `cargo xtask test`).

mod sandbox_common;

use sandbox_common::prelude::unprivileged;

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

#[test]
fn rootless_inherited_fds_do_not_reach_the_command() {
    unprivileged();
    sandbox_common::inherited_fds_do_not_reach_the_command();
}

#[test]
fn rootless_sys_is_read_only_with_its_submounts() {
    unprivileged();
    sandbox_common::sys_is_read_only_with_its_submounts();
}

#[test]
fn rootless_resolv_conf_link_into_run_gets_the_private_copy() {
    unprivileged();
    sandbox_common::resolv_conf_link_into_run_gets_the_private_copy();
}

#[test]
fn rootless_image_without_layers_runs() {
    unprivileged();
    sandbox_common::image_without_layers_runs();
}

#[test]
fn rootless_put_files_and_the_bare_tree() {
    unprivileged();
    sandbox_common::put_files_and_the_bare_tree();
}
