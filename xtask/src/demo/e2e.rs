//! The boot test of `cargo xtask test`: the demo built rootless by the test
//! user (`vauban build --stage all --build-parents -1`, the release from the
//! boot fixture instead of a fresh mmdebstrap: the same packages), then two
//! hosts booted under QEMU from the one `rootfs.img`, each with its own
//! conffs, each marker checked; then a second build with nothing changed
//! must leave `SHA256SUMS` as it was (no new initramfs nor squashfs), and an
//! archive an earlier build left for a host the inventory no longer has gets
//! no command line, is not listed and is gone.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};

use super::{build::MASTER, check_marker, user};
use crate::rootless::stage::{Runner, Stage};
use crate::{boot, util};

/// The hosts booted.
pub const HOSTS: [&str; 2] = ["web01", "web02"];

/// The demo's config with its release read from `tarball` (checked by its sha256).
pub fn config_with_tarball(demo_config: &str, tarball: &Path, sha256: &str) -> Result<String> {
    let mut out = Vec::new();
    let mut skipping = false;
    let mut replaced = false;
    for line in demo_config.lines() {
        if line == "  mmdebstrap:" {
            out.push(format!("  tarball: {}", tarball.display()));
            out.push(format!("  sha256: {sha256}"));
            skipping = true;
            replaced = true;
            continue;
        }
        if skipping && (line.starts_with("    ") || line.trim().is_empty()) {
            continue;
        }
        skipping = false;
        out.push(line.to_string());
    }
    if !replaced {
        bail!("the demo config has no `  mmdebstrap:` release to replace");
    }
    Ok(out.join("\n") + "\n")
}

/// Runs the test in `stage` (the rootless tests' staging dir).
pub fn run(runner: &Runner, stage: &Stage) -> Result<()> {
    let started = Instant::now();
    let dir = stage.tmp().join("boot-e2e");
    std::fs::create_dir_all(&dir).with_context(|| format!("mkdir {}", dir.display()))?;
    user::own_dir(runner, &dir)?;
    let tarball = stage.fixtures().join("debian-boot.tar");
    let demo = stage.testdata().join("demo");
    let text = std::fs::read_to_string(demo.join("config.yml"))
        .with_context(|| format!("read {}", demo.join("config.yml").display()))?;
    let config = demo.join("config-boot-test.yml");
    std::fs::write(
        &config,
        config_with_tarball(&text, &tarball, &util::sha256_file(&tarball)?)?,
    )
    .with_context(|| format!("write {}", config.display()))?;
    util::chmod(&config, 0o644)?;
    let out = dir.join("out");
    let registry = crate::registry::Registry::start_temp()?;
    let build = |publish: bool| -> Result<()> {
        let mut cmd = Command::new(stage.bin().join("vauban"));
        cmd.arg("--store")
            .arg(dir.join("store"))
            .arg("build")
            .arg("--config")
            .arg(&config)
            .args(["--name", MASTER, "--stage", "all", "--build-parents", "-1"])
            .arg("--out")
            .arg(&out)
            .arg("--log-dir")
            .arg(dir.join("logs"))
            .arg("--quiet");
        if publish {
            cmd.arg("--registry")
                .arg(format!("{}/vauban", registry.addr))
                .arg("--tls-verify=false");
        }
        let mut cmd = user::as_user(runner, &cmd, &dir);
        cmd.current_dir(&dir);
        util::run(&mut cmd).context("the boot test's vauban build")
    };
    build(true)?;
    eprintln!("boot: built in {:.0} s", started.elapsed().as_secs_f64());
    check_artifact(&registry.addr)?;
    let sums = std::fs::read_to_string(out.join("SHA256SUMS")).context("read SHA256SUMS")?;

    let booted: Vec<Result<boot::Booted>> = std::thread::scope(|s| {
        let handles: Vec<_> = HOSTS
            .iter()
            .map(|host| {
                let out: PathBuf = out.clone();
                s.spawn(move || boot::boot_tree_host(&out, MASTER, host))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| bail!("a boot thread panicked")))
            .collect()
    });
    for (host, result) in HOSTS.iter().zip(booted) {
        let booted = result.with_context(|| format!("booting {host}"))?;
        check_marker(&booted.line, host)?;
        eprintln!(
            "boot: {host} reached its marker in {:.0} s: {}",
            booted.elapsed.as_secs_f64(),
            booted.line
        );
    }

    // An archive of a host that left the inventory, as an earlier build
    // would have left it.
    let master_dir = out.join(MASTER);
    let stale = master_dir.join("conffs-old01.tgz");
    std::fs::copy(master_dir.join("conffs-web01.tgz"), &stale)
        .with_context(|| format!("copy to {}", stale.display()))?;
    let again = Instant::now();
    build(false)?;
    let sums_again = std::fs::read_to_string(out.join("SHA256SUMS")).context("read SHA256SUMS")?;
    for left in ["conffs-old01.tgz", "cmdline-old01", "boot-old01.ipxe"] {
        if master_dir.join(left).exists() || sums_again.contains(left) {
            bail!("{left} of a host no longer in the inventory is still in the boot tree:\n{sums_again}");
        }
    }
    if sums != sums_again {
        bail!("a second build with nothing changed changed the boot files:\n{sums}\n---\n{sums_again}");
    }
    let leftovers = super::show_tree(&out)?
        .lines()
        .filter(|l| l.trim_start().split('/').any(|c| c.starts_with('.')))
        .map(str::to_owned)
        .collect::<Vec<_>>();
    if !leftovers.is_empty() {
        bail!("temp files left in the boot tree: {leftovers:?}");
    }
    eprintln!(
        "boot: a second build changed nothing ({:.1} s)",
        again.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The boot files' artifact in the registry: its `artifactType`, the kernel
/// version annotation, the kernel, initramfs, rootfs and each host's conffs.
fn check_artifact(addr: &str) -> Result<()> {
    let image = format!("docker://{addr}/vauban/{MASTER}/boot:latest");
    let raw = util::output(
        Command::new("skopeo")
            .args(["inspect", "--raw", "--tls-verify=false"])
            .arg(&image),
    )?;
    let manifest: serde_json::Value =
        serde_json::from_str(&raw).with_context(|| format!("{image}: not JSON: {raw}"))?;
    if manifest["artifactType"] != "application/vnd.vauban.boot.v1" {
        bail!("{image}: artifactType is {}", manifest["artifactType"]);
    }
    let kver = manifest["annotations"]["dev.vauban.kernel.version"]
        .as_str()
        .unwrap_or("");
    if kver.is_empty() {
        bail!("{image}: no kernel version annotation: {raw}");
    }
    let titles: Vec<&str> = manifest["layers"]
        .as_array()
        .map(|l| {
            l.iter()
                .filter_map(|d| d["annotations"]["org.opencontainers.image.title"].as_str())
                .collect()
        })
        .unwrap_or_default();
    for wanted in [
        format!("linux/vmlinuz-{kver}"),
        format!("linux/initramfs-{kver}.img"),
        format!("{MASTER}/rootfs.img"),
        format!("{MASTER}/conffs-web01.tgz"),
        format!("{MASTER}/conffs-web02.tgz"),
    ] {
        if !titles.contains(&wanted.as_str()) {
            bail!("{image}: no {wanted} among {titles:?}");
        }
    }
    eprintln!("boot: {image} holds {} files, kernel {kver}", titles.len());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_release_becomes_the_fixture() {
        let text = "configuration:\n  ansible: ansible\n\nbookworm:\n  mmdebstrap:\n    suite: bookworm\n    include:\n      - python3\n  master-base:\n    stages: [base.yml]\n";
        let out = config_with_tarball(text, Path::new("/f/debian-boot.tar"), "ab").unwrap();
        assert_eq!(
            out,
            "configuration:\n  ansible: ansible\n\nbookworm:\n  tarball: /f/debian-boot.tar\n  sha256: ab\n  master-base:\n    stages: [base.yml]\n"
        );
        assert!(config_with_tarball("x: 1\n", Path::new("/t"), "ab").is_err());
    }
}
