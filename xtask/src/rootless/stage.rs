//! The rootless half of `cargo xtask test`, part two: stage the built test
//! binaries with `vauban`, the fixtures and `testdata/` in a world-readable
//! temp dir, give the test user a HOME and TMPDIR there, and run each binary as
//! that user (or as ourselves when not root), counting libtest's results.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

use crate::util;

/// Who runs the rootless tests.
#[derive(Debug, Clone)]
pub struct Runner {
    /// `Some((name, uid, gid))` to switch to that user with setpriv (we are
    /// root); `None` to run as ourselves.
    pub switch_to: Option<(String, u32, u32)>,
}

/// The staging dir: what the test user may read, and its own HOME and TMPDIR.
#[derive(Debug)]
pub struct Stage {
    /// The staging root (removed on drop).
    pub root: PathBuf,
    /// More environment for the tests (tools installed outside the stage).
    pub env: Vec<(&'static str, PathBuf)>,
}

impl Stage {
    /// Where the test executables and `vauban` go.
    pub fn bin(&self) -> PathBuf {
        self.root.join("bin")
    }
    /// `$VAUBAN_EXAMPLES`: vauban-core's example programs.
    pub fn examples(&self) -> PathBuf {
        self.root.join("examples")
    }
    /// `$VAUBAN_FIXTURES`.
    pub fn fixtures(&self) -> PathBuf {
        self.root.join("fixtures")
    }
    /// `$VAUBAN_TESTDATA`.
    pub fn testdata(&self) -> PathBuf {
        self.root.join("testdata")
    }
    /// `$HOME` of the test user.
    pub fn home(&self) -> PathBuf {
        self.root.join("home")
    }
    /// `$TMPDIR` of the test user.
    pub fn tmp(&self) -> PathBuf {
        self.root.join("tmp")
    }

    /// Creates the staging dir and fills it.
    pub fn create(
        runner: &Runner,
        tests: &[super::TestBinary],
        vauban: &Path,
        fixtures: &[PathBuf],
    ) -> Result<Stage> {
        let base = std::env::temp_dir();
        check_traversable(&base)?;
        let root = tempfile::Builder::new()
            .prefix("vauban-xtask-test.")
            .tempdir_in(&base)
            .with_context(|| format!("create a staging dir in {}", base.display()))?
            .keep();
        let stage = Stage {
            root,
            env: Vec::new(),
        };
        util::chmod(&stage.root, 0o755)?;
        for dir in [
            stage.bin(),
            stage.examples(),
            stage.fixtures(),
            stage.home(),
            stage.tmp(),
        ] {
            std::fs::create_dir(&dir).with_context(|| format!("mkdir {}", dir.display()))?;
            util::chmod(&dir, 0o755)?;
        }
        for (name, exe) in tests {
            util::copy_readable(exe, &stage.bin().join(name))?;
        }
        util::copy_readable(vauban, &stage.bin().join("vauban"))?;
        for fixture in fixtures {
            let name = fixture.file_name().context("fixture without a name")?;
            util::link_or_copy_readable(fixture, &stage.fixtures().join(name))?;
        }
        util::copy_tree_readable(&util::workspace_root().join("testdata"), &stage.testdata())?;
        if let Some((_, uid, gid)) = &runner.switch_to {
            for dir in [stage.home(), stage.tmp()] {
                std::os::unix::fs::chown(&dir, Some(*uid), Some(*gid))
                    .with_context(|| format!("chown {uid}:{gid} {}", dir.display()))?;
                util::chmod(&dir, 0o700)?;
            }
        }
        Ok(stage)
    }
}

impl Drop for Stage {
    fn drop(&mut self) {
        if std::fs::remove_dir_all(&self.root).is_ok() {
            return;
        }
        // Rootless tests may leave files owned by our subordinate ids: remove
        // them as root of a user namespace with our full mapping.
        let status = super::userns::remove_command(&self.root).status();
        if !matches!(status, Ok(s) if s.success()) || self.root.exists() {
            eprintln!(
                "warning: could not remove the staging dir {}",
                self.root.display()
            );
        }
    }
}

/// Fails unless every ancestor of `dir` can be traversed by other users.
pub fn check_traversable(dir: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    for ancestor in dir.ancestors() {
        let mode = std::fs::metadata(ancestor)
            .with_context(|| format!("stat {}", ancestor.display()))?
            .permissions()
            .mode();
        if mode & 0o001 == 0 {
            bail!(
                "{} (mode {:o}) is not traversable by the test user: set TMPDIR to a world-traversable dir such as /tmp",
                ancestor.display(),
                mode & 0o7777
            );
        }
    }
    Ok(())
}

/// The command running one staged test binary with the test environment.
pub fn test_command(runner: &Runner, stage: &Stage, exe: &Path, args: &[String]) -> Command {
    let mut cmd = match &runner.switch_to {
        Some((_, uid, gid)) => {
            let mut c = Command::new("setpriv");
            c.args([format!("--reuid={uid}"), format!("--regid={gid}")]);
            c.args(["--init-groups", "--"]).arg(exe);
            c
        }
        None => Command::new(exe),
    };
    cmd.args(args).current_dir(&stage.root).env_clear();
    cmd.env(
        "PATH",
        "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    )
    .env("HOME", stage.home())
    .env("TMPDIR", stage.tmp())
    .env("LANG", "C.UTF-8")
    .env("RUST_BACKTRACE", "1")
    .env("VAUBAN_BIN", stage.bin().join("vauban"))
    // The staged `vauban` is also the sandbox's helper (it calls the hook).
    .env("VAUBAN_HELPER", stage.bin().join("vauban"))
    .env("VAUBAN_FIXTURES", stage.fixtures())
    .env("VAUBAN_EXAMPLES", stage.examples())
    .env("VAUBAN_TESTDATA", stage.testdata())
    .envs(stage.env.iter().map(|(k, v)| (k, v)));
    if let Some((name, _, _)) = &runner.switch_to {
        cmd.env("USER", name).env("LOGNAME", name);
    } else {
        for var in ["USER", "LOGNAME"] {
            if let Some(v) = std::env::var_os(var) {
                cmd.env(var, v);
            }
        }
    }
    for var in ["RUST_LOG", "RUST_TEST_THREADS", "NO_COLOR"] {
        if let Some(v) = std::env::var_os(var) {
            cmd.env(var, v);
        }
    }
    cmd
}

/// Passed and failed test counts.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    /// Tests that passed.
    pub passed: u32,
    /// Tests that failed (a binary that dies without a result line counts one).
    pub failed: u32,
}

/// Reads libtest's `test result: ok. 3 passed; 1 failed; …` line.
pub fn parse_result(line: &str) -> Option<Counts> {
    let rest = line.trim().strip_prefix("test result: ")?;
    let count = |what: &str| {
        rest.split(';').find_map(|part| {
            part.trim()
                .strip_suffix(what)?
                .trim()
                .rsplit(' ')
                .next()?
                .parse()
                .ok()
        })
    };
    Some(Counts {
        passed: count(" passed")?,
        failed: count(" failed")?,
    })
}

/// Runs one staged test binary, streaming its output, and counts its tests.
pub fn run_one(cmd: &mut Command) -> Result<Counts> {
    eprintln!("$ {}", util::display(cmd));
    let started = std::time::Instant::now();
    let mut child = cmd
        .stdout(Stdio::piped())
        .process_group(0)
        .spawn()
        .with_context(|| format!("cannot start `{}`", util::display(cmd)))?;
    let watchdog = Watchdog::arm(child.id(), BINARY_TIME_LIMIT);
    let mut counts = None;
    let stdout = child.stdout.take().context("no stdout pipe")?;
    // Kept and printed at once: binaries run side by side.
    let mut output = String::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.context("read test output")?;
        if let Some(c) = parse_result(&line) {
            counts = Some(c);
        }
        output.push_str(&line);
        output.push('\n');
    }
    print!("$ {}\n{output}", util::display(cmd));
    let status = child.wait().context("wait for the test binary")?;
    let timed_out = watchdog.disarm();
    let mut counts = counts.unwrap_or_default();
    if timed_out {
        eprintln!(
            "test binary killed after {} s (the limit): the tests still running above hung",
            BINARY_TIME_LIMIT.as_secs()
        );
        counts.failed = counts.failed.max(1);
    } else if !status.success() && counts.failed == 0 {
        eprintln!("test binary exited with {status} without a failed test: counted as one failure");
        counts.failed = 1;
    }
    eprintln!("time: {:.0} s", started.elapsed().as_secs_f64());
    Ok(counts)
}

/// How long one rootless test binary may run before it is killed and counted
/// as failed: a hung test must fail the suite, not eat CI's whole budget.
pub const BINARY_TIME_LIMIT: std::time::Duration = std::time::Duration::from_secs(20 * 60);

/// Kills a process group (SIGKILL) unless disarmed before its time is up.
struct Watchdog {
    disarm: std::sync::mpsc::Sender<()>,
    thread: std::thread::JoinHandle<bool>,
}

impl Watchdog {
    /// Arms the watchdog on the process group led by `pid`.
    fn arm(pid: u32, limit: std::time::Duration) -> Watchdog {
        let (disarm, disarmed) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || match disarmed.recv_timeout(limit) {
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                let group = nix::unistd::Pid::from_raw(pid as i32);
                let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
                true
            }
            _ => false,
        });
        Watchdog { disarm, thread }
    }

    /// Stops the watchdog; true when it had fired.
    fn disarm(self) -> bool {
        let _ = self.disarm.send(());
        self.thread.join().unwrap_or(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_lines_are_counted() {
        let line = "test result: FAILED. 3 passed; 2 failed; 0 ignored; 0 measured; 0 filtered out; finished in 1.2s";
        assert_eq!(
            parse_result(line),
            Some(Counts {
                passed: 3,
                failed: 2
            })
        );
        assert_eq!(parse_result("running 5 tests"), None);
    }

    #[test]
    fn test_user_runs_through_setpriv_with_a_clean_env() {
        let stage = Stage {
            root: PathBuf::from("/nonexistent/stage"),
            env: vec![("VAUBAN_SCHEMATHESIS", PathBuf::from("/opt/st"))],
        };
        let runner = Runner {
            switch_to: Some(("vauban-test".into(), 1001, 1001)),
        };
        let cmd = test_command(
            &runner,
            &stage,
            Path::new("/s/bin/rootless_x"),
            &["filter".into()],
        );
        assert_eq!(
            util::display(&cmd),
            "setpriv --reuid=1001 --regid=1001 --init-groups -- /s/bin/rootless_x filter"
        );
        let env: std::collections::HashMap<_, _> = cmd.get_envs().collect();
        let get = |k: &str| env.get(std::ffi::OsStr::new(k)).copied().flatten();
        assert_eq!(
            get("HOME"),
            Some(Path::new("/nonexistent/stage/home").as_os_str())
        );
        assert_eq!(
            get("VAUBAN_BIN"),
            Some(Path::new("/nonexistent/stage/bin/vauban").as_os_str())
        );
        assert_eq!(
            get("VAUBAN_HELPER"),
            Some(Path::new("/nonexistent/stage/bin/vauban").as_os_str())
        );
        assert_eq!(get("USER"), Some(std::ffi::OsStr::new("vauban-test")));
        assert_eq!(
            get("VAUBAN_SCHEMATHESIS"),
            Some(Path::new("/opt/st").as_os_str())
        );
        std::mem::forget(stage); // nothing to remove
    }
}
