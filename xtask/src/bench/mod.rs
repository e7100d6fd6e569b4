//! `cargo xtask bench [--debug]`: vauban side by side with its peer tools
//! (umoci, skopeo, buildah, nginx), in one run, on the Debian fixture. Each [`Bench`] row times our command and the
//! peer's with `/usr/bin/time` (wall time and peak RSS of the process and its
//! waited-for children), then prints the ratio against the row's target.
//!
//! A row is one entry of [`rows::ROWS`]: the vauban subcommands and peer tools
//! it needs (a row whose command does not exist yet is shown as skipped) and a
//! function that returns one or more [`Comparison`]s.

mod boot;
mod build;
mod diff;
mod disk;
mod rows;
mod serve;
mod slurm;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::{deps, fixtures, rootless, util};

/// One benchmark row.
pub struct Bench {
    /// Row label.
    pub name: &'static str,
    /// vauban subcommands the row needs (`vauban --help` must list them).
    pub needs: &'static [&'static str],
    /// Target: our wall time at most this fraction of the peer's.
    pub max_ratio: f64,
    /// Target: our peak RSS under this many MiB, when the row has one.
    pub max_rss_mib: Option<u64>,
    /// Measures the row.
    pub run: fn(&mut Ctx) -> Result<Vec<Comparison>>,
}

/// Our measurement against the peer's.
#[derive(Debug, Clone)]
pub struct Comparison {
    /// What was compared (e.g. `import` or `run --commit (warm)`).
    pub label: String,
    /// vauban's sample.
    pub ours: Sample,
    /// The peer's name (e.g. `umoci repack`).
    pub peer: String,
    /// The peer's sample.
    pub theirs: Sample,
    /// Whether the row's targets apply (else the line is reported only, like
    /// the cold `run --commit`).
    pub checked: bool,
}

impl Comparison {
    /// A comparison held to the row's targets.
    pub fn new(label: &str, ours: Sample, peer: &str, theirs: Sample) -> Comparison {
        Comparison {
            label: label.into(),
            ours,
            peer: peer.into(),
            theirs,
            checked: true,
        }
    }

    /// Keeps the best of two runs: the shorter wall time and the higher peak RSS
    /// of each side.
    pub fn best_of(self, other: &Comparison) -> Comparison {
        Comparison {
            ours: self.ours.best(other.ours),
            theirs: self.theirs.best(other.theirs),
            ..self
        }
    }
}

/// What became of a row.
enum Outcome {
    Skipped(String),
    Failed(String),
    Done(Vec<Comparison>),
}

/// Wall time and peak RSS of one measured command (or a sequence of them).
#[derive(Debug, Clone, Copy, Default)]
pub struct Sample {
    /// Wall-clock time.
    pub wall: Duration,
    /// Peak resident set size in KiB (max over the sequence).
    pub max_rss_kib: u64,
}

impl Sample {
    /// A wall time alone (a target, or a time read from a recap), no RSS.
    pub fn wall_only(wall: Duration) -> Sample {
        Sample {
            wall,
            max_rss_kib: 0,
        }
    }

    /// The better of two runs of the same thing: the shorter wall time, the
    /// higher peak RSS (so memory is never under-reported).
    pub fn best(self, other: Sample) -> Sample {
        Sample {
            wall: self.wall.min(other.wall),
            max_rss_kib: self.max_rss_kib.max(other.max_rss_kib),
        }
    }

    /// Adds a later step: wall times add up, the peak is the max.
    pub fn then(self, next: Sample) -> Sample {
        Sample {
            wall: self.wall + next.wall,
            max_rss_kib: self.max_rss_kib.max(next.max_rss_kib),
        }
    }
}

/// What rows share: the binaries, the fixture, a scratch dir, and resources
/// built on first use (see `rows`).
pub struct Ctx {
    /// The `vauban` binary under test.
    pub vauban: PathBuf,
    /// The Debian fixture tarball.
    pub fixture: PathBuf,
    /// Scratch space, removed at the end.
    pub scratch: PathBuf,
    /// Whether we run as root (umoci then unpacks without `--rootless`).
    pub root: bool,
    /// Lazily prepared resources, owned by the rows module.
    pub state: rows::State,
    /// Counter making every fresh path unique (see [`Ctx::fresh_path`]).
    pub fresh: std::cell::Cell<u32>,
}

impl Ctx {
    /// `vauban --store STORE ARGS…`.
    pub fn vauban(&self, store: &Path) -> Command {
        let mut cmd = Command::new(&self.vauban);
        cmd.arg("--store").arg(store);
        cmd
    }

    /// A fresh empty directory under the scratch dir.
    pub fn fresh_dir(&self, name: &str) -> Result<PathBuf> {
        let dir = self.fresh_path(name)?;
        fs::create_dir_all(&dir).with_context(|| format!("mkdir {}", dir.display()))?;
        Ok(dir)
    }

    /// A new path under the scratch dir that does not exist. Every call gets its
    /// own name and nothing is deleted here: removing the previous run's 10k
    /// files right before a timed run makes the filesystem slower for the next
    /// one (ext4 avoids recently freed inodes), which skews both tools. The
    /// whole scratch dir goes at the end.
    pub fn fresh_path(&self, name: &str) -> Result<PathBuf> {
        let n = self.fresh.get();
        self.fresh.set(n + 1);
        let path = self.scratch.join(format!("{name}-{n}"));
        remove_all(&path)?;
        Ok(path)
    }
}

/// Removes a path if it exists (as root of a user namespace when plain removal
/// is refused, for trees owned by subordinate ids).
pub fn remove_all(path: &Path) -> Result<()> {
    if fs::symlink_metadata(path).is_err() {
        return Ok(());
    }
    if fs::remove_dir_all(path).is_ok() || fs::remove_file(path).is_ok() {
        return Ok(());
    }
    util::run(&mut rootless::userns::remove_command(path))
}

/// `/usr/bin/time -f '%e %M' -o OUT PROGRAM ARGS…` with the command's env and cwd.
pub fn timed(cmd: &Command, out: &Path) -> Command {
    let mut t = Command::new("/usr/bin/time");
    t.args(["-f", "%e %M", "-o"])
        .arg(out)
        .arg(cmd.get_program())
        .args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => t.env(k, v),
            None => t.env_remove(k),
        };
    }
    if let Some(dir) = cmd.get_current_dir() {
        t.current_dir(dir);
    }
    t
}

/// Reads the last line `SECONDS KIB` GNU time wrote.
pub fn parse_time(out: &str) -> Option<u64> {
    let last = out.lines().rev().find(|l| !l.trim().is_empty())?;
    let mut parts = last.split_whitespace();
    let _seconds: f64 = parts.next()?.parse().ok()?;
    parts.next()?.parse().ok()
}

/// Runs a command under `/usr/bin/time`; fails with its stderr tail.
pub fn measure(ctx: &Ctx, cmd: &Command) -> Result<Sample> {
    let out = ctx.scratch.join("time.out");
    let mut t = timed(cmd, &out);
    eprintln!("  $ {}", util::display(cmd));
    let started = Instant::now();
    let result = t
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .with_context(|| format!("cannot start `{}`", util::display(cmd)))?;
    let wall = started.elapsed();
    if !result.status.success() {
        bail!(
            "`{}` failed: {}\n{}",
            util::display(cmd),
            result.status,
            util::tail(&String::from_utf8_lossy(&result.stderr), 15)
        );
    }
    let text = fs::read_to_string(&out).with_context(|| format!("read {}", out.display()))?;
    let max_rss_kib =
        parse_time(&text).with_context(|| format!("bad /usr/bin/time output: {text:?}"))?;
    eprintln!("    {:.2}s, {} MiB", wall.as_secs_f64(), max_rss_kib / 1024);
    Ok(Sample { wall, max_rss_kib })
}

/// Runs commands one after the other (untimed on failure) and adds up.
pub fn measure_all(ctx: &Ctx, cmds: &[Command]) -> Result<Sample> {
    let mut total = Sample::default();
    for cmd in cmds {
        total = total.then(measure(ctx, cmd)?);
    }
    Ok(total)
}

/// Subcommand names from `vauban --help` (clap's `Commands:` section).
pub fn parse_subcommands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|l| !l.trim_start().starts_with("Commands:"))
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| l.split_whitespace().next().map(String::from))
        .collect()
}

/// Runs the task.
pub fn task(args: &[String]) -> Result<()> {
    let usage = "usage: cargo xtask bench [--debug] [--runs N] [--only TEXT]";
    let (mut release, mut runs) = (true, 1u32);
    let mut only: Option<String> = None;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--debug" => release = false,
            "--runs" => {
                let n = args
                    .next()
                    .with_context(|| format!("--runs needs a number: {usage}"))?;
                runs = n
                    .parse()
                    .ok()
                    .filter(|n| *n > 0)
                    .with_context(|| format!("bad --runs {n}: {usage}"))?;
            }
            "--only" => {
                only = Some(
                    args.next()
                        .with_context(|| format!("--only needs a text: {usage}"))?
                        .clone(),
                )
            }
            other => bail!("unknown option {other}: {usage}"),
        }
    }
    deps::ensure()?;
    let fixture = fixtures::dir().join("debian.tar");
    fixtures::ensure()?;
    let vauban = rootless::build_vauban(release)?;
    let help = util::output(Command::new(&vauban).arg("--help"))?;
    let available = parse_subcommands(&help);
    let scratch = util::target_dir().join("bench");
    remove_all(&scratch)?;
    fs::create_dir_all(&scratch).with_context(|| format!("mkdir {}", scratch.display()))?;
    // Read the fixture once so neither side pays the cold page cache.
    std::io::copy(&mut fs::File::open(&fixture)?, &mut std::io::sink())?;
    let mut ctx = Ctx {
        vauban,
        fixture,
        scratch,
        root: util::is_root(),
        state: rows::State::default(),
        fresh: std::cell::Cell::new(0),
    };
    let header = format!(
        "bench: {} ({} MiB), vauban {} build, {}, best of {runs}",
        ctx.fixture.display(),
        fs::metadata(&ctx.fixture)?.len() >> 20,
        if release { "release" } else { "debug" },
        if ctx.root { "as root" } else { "rootless" }
    );
    eprintln!("{header}");

    let mut outcomes: Vec<Outcome> = Vec::new();
    for run in 0..runs {
        // Every run starts from nothing: fresh stores, layouts and registries.
        ctx.state.shutdown(&ctx.scratch);
        ctx.state = rows::State::default();
        for (i, row) in rows::ROWS.iter().enumerate() {
            let missing: Vec<&str> = row
                .needs
                .iter()
                .copied()
                .filter(|n| !available.iter().any(|a| a == n))
                .collect();
            let outcome = if only
                .as_ref()
                .is_some_and(|o| !row.name.contains(o.as_str()))
            {
                Outcome::Skipped("not asked (--only)".to_string())
            } else if !missing.is_empty() {
                Outcome::Skipped(format!("vauban has no `{}` yet", missing.join("`, `")))
            } else {
                eprintln!("bench: {} (run {}/{runs})", row.name, run + 1);
                match (row.run)(&mut ctx) {
                    Ok(comparisons) => Outcome::Done(comparisons),
                    Err(e) => Outcome::Failed(format!("{e:#}")),
                }
            };
            if run == 0 {
                outcomes.push(outcome);
            } else if let (Outcome::Done(best), Outcome::Done(new)) = (&mut outcomes[i], &outcome) {
                for (b, n) in best.iter_mut().zip(new) {
                    *b = b.clone().best_of(n);
                }
            } else if let Outcome::Failed(_) = outcome {
                outcomes[i] = outcome;
            }
        }
    }
    ctx.state.shutdown(&ctx.scratch);
    let cleanup = remove_all(&ctx.scratch);

    println!("\n{header}");
    println!(
        "{:<22} {:>8} {:>8} {:>7} {:>7} {:>8} {:>8}  {:<12} peer",
        "row", "vauban", "peer", "ratio", "target", "RSS", "peer RSS", "verdict"
    );
    for (row, outcome) in rows::ROWS.iter().zip(&outcomes) {
        match outcome {
            Outcome::Skipped(why) => println!("{:<22} skipped: {why}", row.name),
            Outcome::Failed(why) => println!("{:<22} FAILED: {why}", row.name),
            Outcome::Done(comparisons) => {
                for c in comparisons {
                    println!("{}", format_line(row, c));
                }
            }
        }
    }
    cleanup
}

/// One result line: times, ratio against target, peak RSS, verdict.
pub fn format_line(row: &Bench, c: &Comparison) -> String {
    let ratio = c.ours.wall.as_secs_f64() / c.theirs.wall.as_secs_f64().max(1e-9);
    let rss_mib = c.ours.max_rss_kib as f64 / 1024.0;
    let mut misses = Vec::new();
    if ratio > row.max_ratio {
        misses.push("time");
    }
    if row.max_rss_mib.is_some_and(|max| rss_mib >= max as f64) {
        misses.push("rss");
    }
    let verdict = if !c.checked {
        "report only".to_string()
    } else if misses.is_empty() {
        "ok".to_string()
    } else {
        format!("MISSED {}", misses.join("+"))
    };
    format!(
        "{:<22} {:>7.2}s {:>7.2}s {:>6.2}x {:>7} {:>4.0} MiB {:>4.0} MiB  {:<12} {}",
        c.label,
        c.ours.wall.as_secs_f64(),
        c.theirs.wall.as_secs_f64(),
        ratio,
        if c.checked {
            format!("<={:.2}", row.max_ratio)
        } else {
            "-".into()
        },
        rss_mib,
        c.theirs.max_rss_kib as f64 / 1024.0,
        verdict,
        c.peer,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subcommands_come_from_clap_help() {
        let help = "vauban: build\n\nUsage: vauban [OPTIONS] <COMMAND>\n\nCommands:\n  import  Import a rootfs\n  images  List\n  help    Print this\n\nGlobal options:\n  --store <DIR>\n";
        assert_eq!(parse_subcommands(help), ["import", "images", "help"]);
    }

    #[test]
    fn time_output_is_read_from_the_last_line() {
        assert_eq!(parse_time("1.23 45678\n"), Some(45678));
        assert_eq!(
            parse_time("Command exited with non-zero status 1\n0.01 2000\n"),
            Some(2000)
        );
        assert_eq!(parse_time(""), None);
    }

    #[test]
    fn timed_wraps_program_args_env_and_cwd() {
        let mut cmd = Command::new("umoci");
        cmd.args(["repack", "--image", "l:debian", "b"])
            .env("A", "1")
            .current_dir("/w");
        let t = timed(&cmd, Path::new("/s/time.out"));
        assert_eq!(
            util::display(&t),
            "/usr/bin/time -f '%e %M' -o /s/time.out umoci repack --image l:debian b"
        );
        assert_eq!(t.get_current_dir(), Some(Path::new("/w")));
        assert_eq!(t.get_envs().count(), 1);
    }

    #[test]
    fn best_of_keeps_the_fastest_time_and_the_highest_peak() {
        let s = |secs: u64, kib: u64| Sample {
            wall: Duration::from_secs(secs),
            max_rss_kib: kib,
        };
        let a = Comparison::new("x", s(3, 10), "p", s(5, 40));
        let b = Comparison::new("x", s(2, 20), "p", s(6, 30));
        let best = a.best_of(&b);
        assert_eq!(
            (best.ours.wall, best.ours.max_rss_kib),
            (Duration::from_secs(2), 20)
        );
        assert_eq!(
            (best.theirs.wall, best.theirs.max_rss_kib),
            (Duration::from_secs(5), 40)
        );
    }

    #[test]
    fn a_line_says_which_target_was_missed() {
        let row = Bench {
            name: "import",
            needs: &[],
            max_ratio: 0.7,
            max_rss_mib: Some(64),
            run: |_| Ok(vec![]),
        };
        let sample = |s: f64, mib: u64| Sample {
            wall: Duration::from_secs_f64(s),
            max_rss_kib: mib * 1024,
        };
        let c = |ours, theirs| Comparison::new("import", ours, "umoci repack", theirs);
        assert!(format_line(&row, &c(sample(1.0, 30), sample(2.0, 90))).contains(" ok "));
        assert!(format_line(&row, &c(sample(1.8, 30), sample(2.0, 90))).contains("MISSED time "));
        assert!(format_line(&row, &c(sample(1.0, 70), sample(2.0, 90))).contains("MISSED rss "));
        let cold = Comparison {
            checked: false,
            ..c(sample(9.0, 70), sample(2.0, 90))
        };
        assert!(format_line(&row, &cold).contains("report only"));
    }
}
