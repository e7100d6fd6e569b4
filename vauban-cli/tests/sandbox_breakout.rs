//! Breakout attempts against the sandbox as the user running the tests: root
//! in CI, the path with no user namespace at all (`rootless_breakout` runs the
//! same attempts as an unprivileged user).

mod breakout_common;
mod cli_support;

#[test]
fn attempts_never_reach_the_host() {
    breakout_common::attempts_never_reach_the_host();
}

#[test]
fn links_made_by_the_build_never_lead_commit_out() {
    breakout_common::links_made_by_the_build_never_lead_commit_out();
}

#[test]
fn tiocsti_never_reaches_the_users_terminal() {
    breakout_common::tiocsti_never_reaches_the_users_terminal();
}
