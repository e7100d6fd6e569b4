//! The disk half of the boot test: web01's disk image, made by the test
//! user with `vauban disk` from the boot tree of the first build, boots
//! under QEMU with OVMF and no network device at all; its marker shows
//! its own conffs value, and a second boot shows that the file the first
//! wrote is gone. After `vauban disk --update` to the newer build the next
//! boot shows the newer value; choosing the fallback entry in the boot
//! menu (a key sent at the menu) boots the older build again; and after
//! `vauban disk --rollback` the older build is the default.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};

use super::boot_server::BootServer;
use super::build::MASTER;
use crate::boot;

/// The host whose disk is booted.
pub const HOST: &str = "web01";

/// web01's disk image, made from the boot tree as it is now (the test
/// user's `vauban disk`); its path.
pub fn make(serve: &BootServer, out: &Path, dir: &Path) -> Result<PathBuf> {
    let disk = dir.join(format!("{HOST}.raw"));
    let started = Instant::now();
    let printed = serve.vauban_here(&[
        "disk",
        MASTER,
        HOST,
        "-o",
        &disk.display().to_string(),
        "--out",
        &out.display().to_string(),
    ])?;
    eprintln!(
        "boot: disk made in {:.1} s: {}",
        started.elapsed().as_secs_f64(),
        printed.lines().next().unwrap_or_default()
    );
    Ok(disk)
}

/// `vauban disk MASTER web01 --update DISK` from the boot tree as it is now.
pub fn update(serve: &BootServer, out: &Path, disk: &Path) -> Result<String> {
    serve.vauban_here(&[
        "disk",
        MASTER,
        HOST,
        "--update",
        &disk.display().to_string(),
        "--out",
        &out.display().to_string(),
    ])
}

/// The disk's entries as `vauban disk --list --json` gives them: their
/// build ids, the default first.
pub fn builds(serve: &BootServer, disk: &Path) -> Result<Vec<String>> {
    let json = serve.vauban_here(&["disk", "--list", &disk.display().to_string(), "--json"])?;
    let report: serde_json::Value =
        serde_json::from_str(&json).context("vauban disk --list --json")?;
    Ok(report["entries"]
        .as_array()
        .map(|l| {
            l.iter()
                .filter_map(|e| e["build"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default())
}

/// Boots the disk (a copy of OVMF's variables each time: the firmware
/// remembers nothing), the fallback entry chosen at the menu when
/// `fallback`; checks its marker shows `value` and that nothing the guest
/// wrote before survived.
pub fn boot_and_check(disk: &Path, label: &str, value: &str, fallback: bool) -> Result<()> {
    let booted = boot::boot_disk(disk, label, boot::DEFAULT_MARKER, BOOT_TIMEOUT, fallback)
        .with_context(|| format!("booting {} ({label})", disk.display()))?;
    let line = &booted.line;
    super::e2e::check_marker_value(line, HOST, value)?;
    if !line.contains("earlier-write=none") {
        bail!("{label}: a file the guest wrote on an earlier boot survived: {line}");
    }
    if !line.contains("live=free") {
        bail!("{label}: the disk's data partition is still mounted once booted: {line}");
    }
    // The firmware's menu is not UTF-8.
    let console = std::fs::read(&booted.console_log)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .with_context(|| format!("read {}", booted.console_log.display()))?;
    if !console.contains("root=live:PARTUUID=") {
        bail!(
            "{label}: the kernel did not boot from the disk's entry (console log {})",
            booted.console_log.display()
        );
    }
    eprintln!(
        "boot: {label}: marker in {:.0} s: {line}",
        booted.elapsed.as_secs_f64()
    );
    Ok(())
}

/// How long one disk boot may take (TCG beside other tests).
const BOOT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1200);
