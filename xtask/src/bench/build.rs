//! The `vauban build` rows: the test repository of `testdata/build/` with 20
//! web hosts, a release from the Debian fixture. Conffs of 20 hosts against 1
//! (`--no-cache`, keys made beforehand: both sides run every stage), one
//! host's `host_vars` changed among 20 against the 1-host build, and a
//! rebuild with nothing changed against the 2 s target. Also the boot
//! fixture's build ([`boot_build`]): its boot files row, and the store the
//! boot route row serves.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result};

use super::{measure, Comparison, Ctx, Sample};
use crate::util;

/// Hosts of the fleet.
pub const HOSTS: usize = 20;

/// A prepared fleet: its dir (config, Ansible copy, store, keys).
pub struct Fleet {
    dir: PathBuf,
    one_host: Option<Sample>,
}

impl Fleet {
    /// The fleet whose files are in `dir` ([`write_fleet`]).
    pub fn at(dir: PathBuf) -> Fleet {
        Fleet {
            dir,
            one_host: None,
        }
    }

    /// The fleet's dir.
    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    /// `vauban build --name master-web` on the fleet with `args`.
    pub fn build(&self, vauban: &std::path::Path, args: &[&str]) -> Command {
        let mut cmd = Command::new(vauban);
        cmd.arg("--store")
            .arg(self.dir.join("store"))
            .arg("build")
            .arg("--config")
            .arg(self.dir.join("config.yml"))
            .args(["--name", "master-web", "--quiet"])
            .arg("--keystore")
            .arg(self.dir.join("hostkeys.age"))
            // The default secret: an age identity made on first use (a
            // passphrase would add a second of scrypt to every build).
            .env("XDG_CONFIG_HOME", self.dir.join("config-home"))
            .env_remove("VAUBAN_KEYSTORE_KEY")
            .arg("--out")
            .arg(self.dir.join("out"))
            .arg("--log-dir")
            .arg(self.dir.join("logs"))
            .args(args)
            .current_dir(&self.dir);
        cmd
    }
}

/// The fleet, made on first use: files, then the chain and every host's
/// conffs built once (untimed: the release import, keys, cache).
pub fn fleet(ctx: &mut Ctx) -> Result<&mut Fleet> {
    if ctx.state.fleet.is_none() {
        let dir = ctx.fresh_dir("fleet")?;
        write_fleet(&dir, &ctx.fixture, HOSTS, "")?;
        let fleet = Fleet {
            dir,
            one_host: None,
        };
        util::run(&mut fleet.build(&ctx.vauban, &["--stage", "conffs", "--build-parents", "-1"]))
            .context("preparing the bench fleet")?;
        ctx.state.fleet = Some(fleet);
    }
    Ok(ctx.state.fleet.as_mut().expect("just made"))
}

/// A fleet's files in `dir`: the build tests' Ansible repository with
/// `hosts` web hosts, a config over the Debian `fixture` with
/// `configuration` lines added to its `configuration:`.
pub fn write_fleet(
    dir: &std::path::Path,
    fixture: &std::path::Path,
    hosts: usize,
    configuration: &str,
) -> Result<()> {
    util::copy_tree_readable(
        &util::workspace_root().join("testdata/build/ansible"),
        &dir.join("ansible"),
    )?;
    let mut inventory = String::from("master-base\n\n[web]\nmaster-web\n");
    for i in 1..=hosts {
        inventory.push_str(&format!("web{i:02}\n"));
        std::fs::write(
            dir.join(format!("ansible/host_vars/web{i:02}.yml")),
            format!("host_value: value-of-web{i:02}\n"),
        )?;
    }
    std::fs::write(dir.join("ansible/inventory"), inventory)?;
    std::fs::write(
        dir.join("config.yml"),
        format!(
            "configuration:\n  ansible: ansible\n{configuration}bookworm:\n  name: debian-12\n  \
             tarball: {}\n  sha256: {}\n  master-base:\n    stages: [base.yml]\n    \
             master-web:\n      stages: [web.yml]\n      conffs: 'web*'\n",
            fixture.display(),
            util::sha256_file(fixture)?
        ),
    )?;
    Ok(())
}

fn one_host(ctx: &mut Ctx) -> Result<Sample> {
    if let Some(s) = fleet(ctx)?.one_host {
        return Ok(s);
    }
    let vauban = ctx.vauban.clone();
    let cmd = fleet(ctx)?.build(
        &vauban,
        &["--stage", "conffs", "--conffs", "web01", "--no-cache"],
    );
    let s = measure(ctx, &cmd)?;
    fleet(ctx)?.one_host = Some(s);
    Ok(s)
}

/// Conffs of 20 hosts against 1 host, every stage run.
pub fn conffs_hosts(ctx: &mut Ctx) -> Result<Vec<Comparison>> {
    let one = one_host(ctx)?;
    let vauban = ctx.vauban.clone();
    let cmd = fleet(ctx)?.build(&vauban, &["--stage", "conffs", "--no-cache"]);
    let all = measure(ctx, &cmd)?;
    let (one_s, all_s) = (one.wall.as_secs_f64(), all.wall.as_secs_f64());
    let marginal = (all_s - one_s) / (HOSTS - 1) as f64;
    eprintln!(
        "    per host: {:.2} s with {HOSTS} hosts, {one_s:.2} s alone; each host more: {marginal:.2} s; \
         200 hosts projected: {:.0} s on this machine ({} CPUs)",
        all_s / HOSTS as f64,
        projection(one_s, all_s, 200),
        std::thread::available_parallelism().map_or(1, |n| n.get()),
    );
    Ok(vec![Comparison::new(
        &format!("conffs {HOSTS} hosts"),
        all,
        "conffs 1 host",
        one,
    )])
}

/// The wall time of `hosts` hosts' conffs, projected from one host's and
/// [`HOSTS`]' (what each host more costs is taken as constant).
pub fn projection(one: f64, all: f64, hosts: usize) -> f64 {
    one + (all - one) / (HOSTS - 1) as f64 * (hosts - 1) as f64
}

/// One host's `host_vars` changed among 20: only it rebuilds.
pub fn host_vars_change(ctx: &mut Ctx) -> Result<Vec<Comparison>> {
    let one = one_host(ctx)?;
    let dir = fleet(ctx)?.dir.clone();
    let file = dir.join("ansible/host_vars/web07.yml");
    let n = ctx.fresh.get();
    std::fs::write(&file, format!("host_value: changed-{n}\n"))
        .with_context(|| format!("write {}", file.display()))?;
    let vauban = ctx.vauban.clone();
    let cmd = fleet(ctx)?.build(&vauban, &["--stage", "conffs"]);
    let changed = measure(ctx, &cmd)?;
    Ok(vec![Comparison::new(
        "1 host_vars of 20",
        changed,
        "conffs 1 host",
        one,
    )])
}

/// A rebuild of the chain and conffs with nothing changed, against 2 s.
pub fn no_change(ctx: &mut Ctx) -> Result<Vec<Comparison>> {
    let vauban = ctx.vauban.clone();
    let cmd = fleet(ctx)?.build(&vauban, &["--stage", "conffs", "--build-parents", "-1"]);
    let again = measure(ctx, &cmd)?;
    Ok(vec![Comparison::new(
        "no-change rebuild",
        again,
        "target 2 s",
        Sample::wall_only(Duration::from_secs(2)),
    )])
}

/// The master of the boot fixture's build (a release built as its own master).
pub const BOOT_MASTER: &str = "debian-boot";

/// The boot fixture built once with `--stage all`: its dir (config, store,
/// boot tree) and the build's recap.
pub struct BootBuild {
    dir: PathBuf,
    recap: String,
}

impl BootBuild {
    /// Its directory: `out/` (the boot tree), `store/`, `config.yml`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// What the build printed on its standard error (its recap).
    pub fn recap(&self) -> &str {
        &self.recap
    }

    /// The store: the master's images and its boot artifact
    /// (`debian-boot/boot:latest`).
    pub fn store(&self) -> PathBuf {
        self.dir.join("store")
    }

    /// The build's `config.yml`.
    pub fn config(&self) -> PathBuf {
        self.dir.join("config.yml")
    }
}

/// The boot fixture's build, run on first use (its step times are in the
/// recap, so running it untimed costs no row its measure).
pub fn boot_build(ctx: &mut Ctx) -> Result<&BootBuild> {
    if ctx.state.boot.is_none() {
        let fixture = ctx.fixture.with_file_name("debian-boot.tar");
        let dir = ctx.fresh_dir("boot")?;
        std::fs::write(
            dir.join("config.yml"),
            format!(
                "configuration:\n  ansible: ansible\n  boot_url: http://10.0.2.100\nbookworm:\n  name: {BOOT_MASTER}\n  tarball: {}\n  sha256: {}\n",
                fixture.display(),
                util::sha256_file(&fixture)?
            ),
        )?;
        std::fs::create_dir_all(dir.join("ansible"))?;
        let mut cmd = ctx.vauban(&dir.join("store"));
        cmd.arg("build")
            .arg("--config")
            .arg(dir.join("config.yml"))
            .args(["--name", BOOT_MASTER, "--stage", "all"])
            .arg("--out")
            .arg(dir.join("out"))
            .arg("--log-dir")
            .arg(dir.join("logs"))
            .current_dir(&dir);
        eprintln!("  $ {}", util::display(&cmd));
        let out = cmd.output().context("run vauban build")?;
        let recap = String::from_utf8_lossy(&out.stderr).into_owned();
        if !out.status.success() {
            anyhow::bail!(
                "vauban build of the boot fixture failed:\n{}",
                util::tail(&recap, 15)
            );
        }
        ctx.state.boot = Some(BootBuild { dir, recap });
    }
    ctx.state.boot.as_ref().context("boot build state")
}

/// The time of the recap's line starting with `prefix` (its first word
/// ending in `s` that is a number).
pub fn recap_seconds(recap: &str, prefix: &str) -> Result<Duration> {
    recap
        .lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| {
            l.split_whitespace()
                .find_map(|w| w.strip_suffix('s')?.parse::<f64>().ok())
        })
        .map(Duration::from_secs_f64)
        .with_context(|| format!("no `{prefix}` line in the recap:\n{recap}"))
}

/// The boot step on the boot fixture: `rootfs.img` against `mksquashfs` of an
/// unpacked copy of the same image (the floor), and the initramfs (dracut)
/// reported. Times of the build's steps come from its recap.
pub fn boot_files(ctx: &mut Ctx) -> Result<Vec<Comparison>> {
    let (dir, store, recap) = {
        let build = boot_build(ctx)?;
        (build.dir.clone(), build.store(), build.recap.clone())
    };
    let squash = recap_seconds(&recap, "rootfs.img")?;
    let dracut = recap_seconds(&recap, "initramfs")?;
    // The floor: the same image unpacked, then mksquashfs with the same options.
    let tree = dir.join("tree");
    util::run(
        ctx.vauban(&store)
            .arg("unpack")
            .arg(format!("{BOOT_MASTER}:latest"))
            .arg(&tree),
    )?;
    let img = dir.join("floor.img");
    let floor = measure(
        ctx,
        Command::new("mksquashfs").arg(&tree).arg(&img).args([
            "-comp",
            "zstd",
            "-noappend",
            "-no-progress",
            "-quiet",
        ]),
    )?;
    let mut initramfs = Comparison::new(
        "initramfs (dracut)",
        Sample::wall_only(dracut),
        "by hand ~65 s",
        Sample::wall_only(Duration::from_secs(65)),
    );
    initramfs.checked = false;
    Ok(vec![
        Comparison::new(
            "rootfs.img",
            Sample::wall_only(squash),
            "mksquashfs unpacked",
            floor,
        ),
        initramfs,
    ])
}
