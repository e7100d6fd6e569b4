//! The `vauban` binary: parses the command line, sets up logging, runs the
//! command and maps its error to an exit code (1: user error, 2: internal error).
//!
//! Architecture invariant: the CLI holds no logic; it parses, reports progress
//! and maps errors to exit codes.

// Doc comments of the CLI are clap's help text (`NAME[:TAG]`, `[default: …]`),
// not rustdoc links.
#![allow(rustdoc::broken_intra_doc_links)]

mod cli;
mod commands;
mod exit;
mod render;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // The helper protocol: every sandbox process (worker, init, a host's keeper,
    // the egress proxy, the `vauban-chroot` client) is a fresh exec of this
    // binary, never a fork of vauban, so none inherits its environment, open
    // files or threads. Its `argv[1]` (or `argv[0]` for `vauban-chroot`) says
    // which; then this runs that process and never returns.
    vauban_core::sandbox::run_helper_if_asked();
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // Help and version go to stdout and succeed; usage errors are user errors
            // (2 for `diff --exit-code`, whose 1 means "they differ").
            let _ = e.print();
            return if e.use_stderr() && diff_exit_code() {
                ExitCode::from(2)
            } else if e.use_stderr() {
                ExitCode::from(exit::USER_ERROR)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    init_tracing(cli.verbose, cli.debug);
    match std::panic::catch_unwind(move || cli.run()) {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(err)) => {
            // One line, the hint (flags to use) at its end.
            match exit::hint(&err) {
                Some(hint) => eprintln!("vauban: error: {}; hint: {hint}", exit::message(&err)),
                None => eprintln!("vauban: error: {}", exit::message(&err)),
            }
            ExitCode::from(exit::code_for(&err))
        }
        // The panic message was already printed by the default hook.
        Err(_) => ExitCode::from(exit::INTERNAL_ERROR),
    }
}

/// Whether the command line is a `vauban diff --exit-code` (read raw: it
/// could not be parsed).
fn diff_exit_code() -> bool {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    args.iter().any(|a| a == "diff") && args.iter().any(|a| a == "--exit-code")
}

/// Logs to stderr: `RUST_LOG` wins, else `-v` (info), `-vv`/`--debug` (debug), `-vvv` (trace).
fn init_tracing(verbose: u8, debug: bool) {
    let level = match (verbose, debug) {
        (0, false) => "warn",
        (1, false) => "info",
        (0..=2, _) => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(debug || verbose > 1)
        .init();
}
