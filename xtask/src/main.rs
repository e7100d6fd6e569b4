//! `cargo xtask TASK`: project automation for vauban, as a table of named
//! tasks (see [`TASKS`]). Run `cargo xtask help` for the list.

mod bench;
mod boot;
mod demo;
mod deps;
mod fixtures;
mod registry;
mod rootless;
mod slurm;
mod test;
mod tidy;
mod tools;
mod util;

use std::process::ExitCode;

use anyhow::Result;

/// One named task.
struct Task {
    name: &'static str,
    help: &'static str,
    run: fn(&[String]) -> Result<()>,
}

/// Every task, in the order `help` lists them.
const TASKS: &[Task] = &[
    Task { name: "deps", help: "install the Debian packages tests and demo need (root), or print the command", run: deps::task },
    Task { name: "fixtures", help: "build the test fixtures into target/fixtures (cached by recipe)", run: fixtures::task },
    Task { name: "test", help: "deps, fixtures, cargo test --workspace, then the rootless tests as an unprivileged user [--rootless-only] [-- ARGS]", run: test::task },
    Task { name: "demo", help: "build testdata/demo (vauban build, rootless) into target/demo-out, push it to a local registry, boot web01 under QEMU", run: demo::task },
    Task { name: "tidy", help: "check the sources: module docs, no ignored tests, no stubs, unsafe only in the sandbox", run: tidy::task },
    Task { name: "boot-test", help: "boot hosts of a boot tree in QEMU until their marker line: --tree OUT --master M --host H... [--kvm | --firmware]", run: boot::task },
    Task { name: "bench", help: "vauban against umoci, skopeo and buildah on the Debian fixture [--debug]", run: bench::task },
];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((name, rest)) = args.split_first() else {
        usage();
        return ExitCode::from(2);
    };
    if matches!(name.as_str(), "help" | "-h" | "--help") {
        usage();
        return ExitCode::SUCCESS;
    }
    let Some(task) = TASKS.iter().find(|t| t.name == name) else {
        eprintln!("xtask: unknown task `{name}`\n");
        usage();
        return ExitCode::from(2);
    };
    match (task.run)(rest) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask {}: error: {e:#}", task.name);
            ExitCode::FAILURE
        }
    }
}

fn usage() {
    eprintln!("usage: cargo xtask TASK [ARGS]\n\ntasks:");
    for task in TASKS {
        eprintln!("  {:<9} {}", task.name, task.help);
    }
}
