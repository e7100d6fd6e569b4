//! The disk row: a host's disk image (`vauban disk`) made from the boot
//! fixture's boot files (kernel, initramfs, `rootfs.img`) and a small
//! conffs, against the time the boot files themselves took to build (the
//! build's recap: `rootfs.img` and `initramfs`). Reported beside it: the
//! disk's size and the bytes it takes (sparse) against the files it holds,
//! and an update to a changed conffs.

use std::process::Command;

use anyhow::{Context, Result};

use super::build::{boot_build, recap_seconds, BOOT_MASTER};
use super::{measure, Comparison, Ctx, Sample};
use crate::util;

/// The bench host.
const HOST: &str = "bench01";

/// `vauban disk` against the boot files' own build time.
pub fn host_disk(ctx: &mut Ctx) -> Result<Vec<Comparison>> {
    let (dir, store, recap) = {
        let build = boot_build(ctx)?;
        (
            build.dir().to_path_buf(),
            build.store(),
            build.recap().to_owned(),
        )
    };
    let out = dir.join("out");
    let master_dir = out.join(BOOT_MASTER);
    // The boot fixture has no host: one is added to its boot.json, with a
    // conffs of a few files.
    let conffs = master_dir.join(format!("conffs-{HOST}.tgz"));
    write_conffs(&ctx.fresh_dir("disk-conffs")?, &conffs, "one")?;
    let info_path = master_dir.join("boot.json");
    let mut info: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(&info_path)
            .with_context(|| format!("read {}", info_path.display()))?,
    )?;
    info["hosts"][HOST] =
        serde_json::json!({ "conffs": format!("{BOOT_MASTER}/conffs-{HOST}.tgz") });
    std::fs::write(&info_path, serde_json::to_vec_pretty(&info)?)?;

    let disk = ctx.fresh_path("bench01.raw")?;
    let mut make = ctx.vauban(&store);
    make.args(["disk", BOOT_MASTER, HOST, "-o"])
        .arg(&disk)
        .arg("--out")
        .arg(&out);
    let made = measure(ctx, &make)?;

    let files: u64 = ["linux/vmlinuz-default", "linux/initramfs-default.img"]
        .iter()
        .map(|r| out.join(r))
        .chain([master_dir.join("rootfs.img"), conffs.clone()])
        .map(|p| std::fs::metadata(&p).map(|m| m.len()).unwrap_or(0))
        .sum();
    let (size, allocated) = sizes(&disk)?;
    eprintln!(
        "  disk: {} MiB, {} MiB allocated, for {} MiB of files: {:.1}% over the files",
        size >> 20,
        allocated >> 20,
        files >> 20,
        (allocated as f64 / files as f64 - 1.0) * 100.0
    );

    // An update: a host's conffs changed, the rest the same build.
    write_conffs(&ctx.fresh_dir("disk-conffs")?, &conffs, "two")?;
    let mut update = ctx.vauban(&store);
    update
        .args(["disk", BOOT_MASTER, HOST, "--update"])
        .arg(&disk)
        .arg("--out")
        .arg(&out);
    let updated = measure(ctx, &update)?;
    super::remove_all(&disk)?;

    let boot_files = Sample::wall_only(
        recap_seconds(&recap, "rootfs.img")? + recap_seconds(&recap, "initramfs")?,
    );
    let mut update_row = Comparison::new(
        "disk --update (conffs changed)",
        updated,
        "boot files' build",
        boot_files,
    );
    update_row.checked = false;
    Ok(vec![
        Comparison::new("disk -o (make)", made, "boot files' build", boot_files),
        update_row,
    ])
}

/// `dest`: a gzip tar of `etc/hostname` and `etc/vauban/host-value`
/// holding `value`, made in `dir`.
fn write_conffs(dir: &std::path::Path, dest: &std::path::Path, value: &str) -> Result<()> {
    std::fs::create_dir_all(dir.join("etc/vauban"))?;
    std::fs::write(dir.join("etc/hostname"), format!("{HOST}\n"))?;
    std::fs::write(dir.join("etc/vauban/host-value"), format!("{value}\n"))?;
    util::run(
        Command::new("tar")
            .arg("-czf")
            .arg(dest)
            .arg("-C")
            .arg(dir)
            .arg("etc"),
    )
}

/// A file's size and the bytes it takes on disk.
fn sizes(path: &std::path::Path) -> Result<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).with_context(|| format!("stat {}", path.display()))?;
    Ok((m.len(), m.blocks() * 512))
}
