//! `cargo xtask test [--rootless-only] [-- TEST-ARGS]`: deps, fixtures,
//! `cargo test --workspace`, then the rootless tests as the unprivileged user
//! `vauban-test` (created with subordinate id ranges when we are root and it is
//! missing), or as ourselves when not root. Ends with the plain line
//! `rootless: N passed, M failed`.

use std::fs;
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::rootless;
use crate::rootless::stage::{self, Counts, Runner, Stage};
use crate::{deps, fixtures, util};

/// The unprivileged user the rootless tests run as.
pub const TEST_USER: &str = "vauban-test";
/// How many subordinate ids the test user gets (a full 16-bit range).
pub const SUBID_COUNT: u64 = 65536;

/// How many rootless test binaries run at once, beside the boot test: much
/// of their time is waiting (on Ansible's forks, on apt, on a schedule's
/// minute), and one after the other they took 21 min.
const LANES: usize = 2;

/// The slowest rootless binaries, started first so the lanes end together.
const SLOWEST: &[&str] = &[
    "rootless_serve",
    "rootless_slurm",
    "rootless_build",
    "rootless_isolation",
    "rootless_build_plan",
    "rootless_export",
    "rootless_example",
    "rootless_stage",
    "rootless_stage_cli",
];

/// Runs the task.
pub fn task(args: &[String]) -> Result<()> {
    let (flags, test_args) = match args.iter().position(|a| a == "--") {
        Some(i) => (&args[..i], &args[i + 1..]),
        None => (args, &[][..]),
    };
    let mut rootless_only = false;
    for flag in flags {
        match flag.as_str() {
            "--rootless-only" => rootless_only = true,
            other => bail!(
                "unknown option {other}: usage: cargo xtask test [--rootless-only] [-- TEST-ARGS]"
            ),
        }
    }
    let mut clock = util::Clock::start();
    deps::ensure()?;
    clock.lap("installing packages");
    let fixtures = fixtures::ensure()?;
    clock.lap("fixtures");

    let built = rootless::build_all()?;
    clock.lap("building every test");

    let mut failures = Vec::new();
    if !rootless_only {
        // As schemathesis below: a failed install fails vauban-kube's
        // manifest and chart tests, loudly, not the whole run.
        let kube_tools = crate::tools::kube_tools()
            .inspect_err(|e| {
                eprintln!(
                    "error: the Kubernetes tools could not be installed ({e:#}): \
                     vauban-kube's manifest and chart tests will fail"
                )
            })
            .ok();
        for mut cmd in workspace_test_commands(&built, test_args) {
            if let Some(venv) = &kube_tools {
                cmd.env("VAUBAN_KUBE_TOOLS", venv);
            }
            if let Err(e) = util::run(&mut cmd) {
                eprintln!("error: {e:#}");
                failures.push(util::display(&cmd));
            }
        }
        clock.lap("the workspace's tests");
    }

    let counts = rootless_tests(&built, &fixtures, test_args);
    clock.lap("the rootless tests");
    match &counts {
        Ok(c) => println!("rootless: {} passed, {} failed", c.passed, c.failed),
        Err(e) => {
            eprintln!("error: {e:#}");
            println!("rootless: could not run: {e}");
        }
    }
    match counts {
        Ok(c) if c.failed > 0 => failures.push(format!("{} rootless test(s)", c.failed)),
        Ok(_) => {}
        Err(_) => failures.push("the rootless tests".to_string()),
    }
    if !failures.is_empty() {
        bail!("failed: {}", failures.join(", "));
    }
    Ok(())
}

/// `cargo test` of the workspace's unit, integration (all but the rootless
/// ones) and doc tests, with the features everything was built with.
pub fn workspace_test_commands(built: &rootless::Built, args: &[String]) -> Vec<Command> {
    let mut targets = util::cargo();
    targets.args(["test", "--workspace", "--no-fail-fast", "--features"]);
    targets.args([&built.features, "--lib", "--bins"]);
    for test in &built.other_tests {
        targets.args(["--test", test]);
    }
    let mut docs = util::cargo();
    docs.args(["test", "--workspace", "--no-fail-fast", "--features"]);
    docs.args([&built.features, "--doc"]);
    for cmd in [&mut targets, &mut docs] {
        if !args.is_empty() {
            cmd.arg("--").args(args);
        }
    }
    vec![targets, docs]
}

/// Stages and runs every rootless test binary; sums the counts (a
/// misdeclared crate counts as one failure).
fn rootless_tests(
    built: &rootless::Built,
    fixtures: &[std::path::PathBuf],
    args: &[String],
) -> Result<Counts> {
    let runner = if util::is_root() {
        let (uid, gid) = ensure_test_user()?;
        Runner {
            switch_to: Some((TEST_USER.to_string(), uid, gid)),
        }
    } else {
        Runner { switch_to: None }
    };
    let tests = &built.rootless;
    let problems = &built.problems;
    let mut stage = Stage::create(&runner, tests, &built.vauban, fixtures)?;
    // A failed install (PyPI unreachable) fails the one test that needs it,
    // loudly, not the whole run.
    match crate::tools::schemathesis() {
        Ok(st) => stage.env.push(("VAUBAN_SCHEMATHESIS", st)),
        Err(e) => eprintln!(
            "error: schemathesis could not be installed ({e:#}): the API fuzz test will fail"
        ),
    }
    for (name, exe) in &built.examples {
        util::copy_readable(exe, &stage.examples().join(name))?;
    }
    // A real Slurm for the executor tests; one that cannot start fails
    // them, loudly (they need $SLURM_CONF).
    let _slurm = match crate::slurm::Cluster::start(&stage.root.join("slurm")) {
        Ok(c) => {
            stage.env.push(("SLURM_CONF", c.conf.clone()));
            Some(c)
        }
        Err(e) => {
            eprintln!(
                "error: the test Slurm cluster could not start ({e:#}): the Slurm tests will fail"
            );
            None
        }
    };
    eprintln!("rootless: staged in {}", stage.root.display());
    let mut total = Counts {
        passed: 0,
        failed: problems.len() as u32,
    };
    // The boot test (minutes under TCG) runs beside the test binaries; a
    // filter other than `boot` leaves it out.
    let boot_wanted = args.is_empty() || args.iter().any(|a| a == "boot");
    let mut order: Vec<&str> = tests.iter().map(|(n, _)| n.as_str()).collect();
    order.sort_by_key(|n| SLOWEST.iter().position(|s| s == n).unwrap_or(SLOWEST.len()));
    let queue = std::sync::Mutex::new(order.into_iter());
    let sums = std::sync::Mutex::new(Counts::default());
    std::thread::scope(|s| -> Result<()> {
        let boot = boot_wanted.then(|| s.spawn(|| crate::demo::e2e::run(&runner, &stage)));
        let lanes: Vec<_> = (0..LANES)
            .map(|_| {
                s.spawn(|| loop {
                    let Some(name) = queue.lock().unwrap_or_else(|e| e.into_inner()).next() else {
                        break;
                    };
                    let exe = stage.bin().join(name);
                    let c = stage::run_one(&mut stage::test_command(&runner, &stage, &exe, args))
                        .unwrap_or_else(|e| {
                            eprintln!("rootless: {name}: {e:#}");
                            Counts {
                                passed: 0,
                                failed: 1,
                            }
                        });
                    eprintln!("rootless: {name}: {} passed, {} failed", c.passed, c.failed);
                    let mut sum = sums.lock().unwrap_or_else(|e| e.into_inner());
                    sum.passed += c.passed;
                    sum.failed += c.failed;
                })
            })
            .collect();
        for lane in lanes {
            if lane.join().is_err() {
                total.failed += 1;
            }
        }
        let sum = sums.lock().unwrap_or_else(|e| e.into_inner());
        total.passed += sum.passed;
        total.failed += sum.failed;
        if let Some(boot) = boot {
            match boot.join() {
                Ok(Ok(())) => {
                    eprintln!("rootless: boot test: passed");
                    total.passed += 1;
                }
                Ok(Err(e)) => {
                    eprintln!("rootless: boot test FAILED: {e:#}");
                    total.failed += 1;
                }
                Err(_) => {
                    eprintln!("rootless: boot test FAILED: it panicked");
                    total.failed += 1;
                }
            }
        }
        Ok(())
    })?;
    Ok(total)
}

/// Makes sure `vauban-test` exists with subuid and subgid ranges; returns its
/// uid and gid. Only called as root.
pub fn ensure_test_user() -> Result<(u32, u32)> {
    if nix::unistd::User::from_name(TEST_USER)?.is_none() {
        util::run(Command::new("useradd").args([
            "--user-group",
            "--no-create-home",
            "--shell",
            "/usr/sbin/nologin",
            TEST_USER,
        ]))?;
    }
    for (file, flag) in [
        ("/etc/subuid", "--add-subuids"),
        ("/etc/subgid", "--add-subgids"),
    ] {
        let contents = fs::read_to_string(file).unwrap_or_default();
        if has_range(&contents, TEST_USER) {
            continue;
        }
        let start = next_free_start(&contents);
        let range = format!("{start}-{}", start + SUBID_COUNT - 1);
        util::run(Command::new("usermod").args([flag, &range, TEST_USER]))?;
    }
    let user = nix::unistd::User::from_name(TEST_USER)?
        .with_context(|| format!("user {TEST_USER} missing after useradd"))?;
    Ok((user.uid.as_raw(), user.gid.as_raw()))
}

/// Whether a subuid/subgid file gives `user` a range of at least [`SUBID_COUNT`].
pub fn has_range(contents: &str, user: &str) -> bool {
    ranges(contents).any(|(name, _, count)| name == user && count >= SUBID_COUNT)
}

/// The first id after every range of the file (at least 100000).
pub fn next_free_start(contents: &str) -> u64 {
    ranges(contents)
        .map(|(_, start, count)| start + count)
        .fold(100_000, u64::max)
}

fn ranges(contents: &str) -> impl Iterator<Item = (&str, u64, u64)> {
    contents.lines().filter_map(|line| {
        let mut parts = line.trim().split(':');
        let name = parts.next()?;
        let start = parts.next()?.parse().ok()?;
        let count = parts.next()?.parse().ok()?;
        Some((name, start, count))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workspace_tests_use_the_build_features_and_leave_rootless_targets_out() {
        let built = rootless::Built {
            features: "vauban-cli/rootless-tests".into(),
            rootless: vec![("rootless_run".into(), "/t/rootless_run".into())],
            other_tests: vec!["cli_errors".into(), "tidy".into()],
            vauban: "/t/vauban".into(),
            examples: Vec::new(),
            problems: Vec::new(),
        };
        let lines: Vec<String> = workspace_test_commands(&built, &["name".into()])
            .iter()
            .map(util::display)
            .collect();
        assert!(
            lines[0].ends_with(
                "test --workspace --no-fail-fast --features vauban-cli/rootless-tests --lib --bins \
                 --test cli_errors --test tidy -- name"
            ),
            "{lines:?}"
        );
        assert!(
            lines[1]
                .ends_with("test --workspace --no-fail-fast --features vauban-cli/rootless-tests --doc -- name"),
            "{lines:?}"
        );
    }

    #[test]
    fn subid_ranges_are_found_and_new_ones_do_not_overlap() {
        let file = "alice:100000:65536\nvauban-test:165536:65536\n# junk\n";
        assert!(has_range(file, "vauban-test"));
        assert!(!has_range(file, "bob"));
        assert!(!has_range("vauban-test:100000:1000\n", "vauban-test"));
        assert_eq!(next_free_start(file), 231_072);
        assert_eq!(next_free_start(""), 100_000);
    }
}
