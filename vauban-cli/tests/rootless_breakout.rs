//! The breakout attempts of `sandbox_breakout`, as an unprivileged user with
//! the full subordinate id mapping (run by `cargo xtask test` as `vauban-test`).

mod breakout_common;
mod cli_support;

use cli_support::unprivileged;

#[test]
fn rootless_attempts_never_reach_the_host() {
    unprivileged();
    breakout_common::attempts_never_reach_the_host();
}

#[test]
fn rootless_links_made_by_the_build_never_lead_commit_out() {
    unprivileged();
    breakout_common::links_made_by_the_build_never_lead_commit_out();
}

#[test]
fn rootless_tiocsti_never_reaches_the_users_terminal() {
    unprivileged();
    breakout_common::tiocsti_never_reaches_the_users_terminal();
}
