//! The boot test of `cargo xtask test`: the demo built rootless by the test
//! user through `vauban serve` (`vauban remote build --stage all
//! --build-parents -1`, the release from the boot fixture instead of a fresh
//! mmdebstrap: the same packages), its boot artifact in the registry; a
//! second build with nothing changed must leave `SHA256SUMS` as it was and
//! remove an archive an earlier build left for a host the inventory no
//! longer has. Then a build where web01's value changed, deployed when it
//! succeeds, and web01 and web02 booted at once under QEMU with no
//! `-kernel`: the firmware's iPXE gets its script from QEMU's DHCP/TFTP,
//! chains to vauban's boot route by MAC, and each host shows its own conffs
//! of the newer build. Their conffs URLs are then spent, a token opens no
//! other host's conffs, an unknown MAC gets the local-disk script; the older
//! build is deployed again and web01's next boot shows it; `/hosts` tells
//! both boots and their builds. web01's disk image (`vauban disk`) boots
//! with no network, and is updated, booted from its fallback entry and
//! rolled back (`disk`).

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};

use super::boot_server::{BootServer, ServerSetup};
use super::{build::MASTER, disk, user};
use crate::rootless::stage::{Runner, Stage};
use crate::{boot, util};

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
    // The demo's repository, copied: the test changes a host's value.
    let demo = dir.join("demo");
    util::copy_tree_readable(&stage.testdata().join("demo"), &demo)?;
    let tarball = stage.fixtures().join("debian-boot.tar");
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
    let vauban = stage.bin().join("vauban");
    let serve = BootServer::start(
        runner,
        &ServerSetup {
            vauban: &vauban,
            store: &dir.join("store"),
            config: &config,
            out: &out,
            dir: &dir,
            extra: vec![
                "--registry".into(),
                format!("{}/vauban", registry.addr),
                "--tls-verify=false".into(),
            ],
        },
    )?;
    eprintln!(
        "boot: vauban serve at {} (log {})",
        serve.url,
        serve.log.display()
    );
    let build = |deploy: bool| serve.build(deploy);

    let a = build(false)?;
    eprintln!(
        "boot: build {a} in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    check_artifact(&registry.addr)?;
    let sums = std::fs::read_to_string(out.join("SHA256SUMS")).context("read SHA256SUMS")?;

    // An archive of a host that left the inventory, as an earlier build
    // would have left it: a build with nothing changed removes it and
    // changes nothing else.
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

    // web01's disk image of this build boots with no network at all.
    let disk_image = disk::make(&serve, &out, &dir)?;
    disk::boot_and_check(&disk_image, "web01-disk", "conffs-of-web01", false)?;

    // A newer build where web01's value changed, deployed when it succeeds.
    let host_vars = demo.join("ansible/host_vars/web01.yml");
    let vars = std::fs::read_to_string(&host_vars)?;
    std::fs::write(&host_vars, vars.replace("conffs-of-web01", NEWER_WEB01))?;
    let b = build(true)?;
    eprintln!("boot: build {b} deployed");

    // Both hosts boot through their firmware: DHCP and TFTP of QEMU's
    // network, then vauban's script by MAC, each its own conffs.
    let booted = boot_hosts(
        &serve,
        &[("web01", NEWER_WEB01), ("web02", "conffs-of-web02")],
    )?;
    check_conffs_urls_are_spent(&serve, &booted)?;
    check_unknown_mac(&serve)?;
    check_drift(&serve, "web02", &booted)?;
    let first_web01_token = boot_token(&booted[0].1)?;
    check_drift_refused(&serve, &first_web01_token, "web02", 403)?;

    // The older build deployed again: web01's next boot is of it.
    serve.vauban(&["deploy", MASTER, "--build", &a])?;
    let again = boot_hosts(&serve, &[("web01", "conffs-of-web01")])?;
    check_hosts(&serve, &a, &b)?;
    check_drift(&serve, "web01", &again)?;
    // The token of web01's first boot sends no drift once it booted again.
    check_drift_refused(&serve, &first_web01_token, "web01", 410)?;
    check_builds_diff(&serve, &a, &b)?;

    // The disk updated to build b boots it; its fallback entry boots a,
    // where the file the guest wrote on the disk's first boot is gone.
    check_disk_update(&serve, &out, &disk_image)?;
    eprintln!("boot: done in {:.0} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// `vauban disk --update` to the newer build (in the boot tree now): the
/// disk boots it, its fallback entry the older one; `--rollback` makes the
/// older the default again.
fn check_disk_update(serve: &BootServer, out: &Path, disk_image: &Path) -> Result<()> {
    let before = disk::builds(serve, disk_image)?;
    let printed = disk::update(serve, out, disk_image)?;
    eprintln!("boot: {}", printed.lines().next().unwrap_or_default());
    let after = disk::builds(serve, disk_image)?;
    if after.len() != 2 || after[1] != before[0] {
        bail!(
            "after the update the disk should boot a new build, {before:?} its fallback: {after:?}"
        );
    }
    let again = disk::update(serve, out, disk_image)?;
    if !again.contains("nothing written") {
        bail!("a second update to the same build wrote something:\n{again}");
    }
    disk::boot_and_check(disk_image, "web01-disk-updated", NEWER_WEB01, false)?;
    disk::boot_and_check(disk_image, "web01-disk-fallback", "conffs-of-web01", true)?;
    serve.vauban_here(&["disk", "--rollback", &disk_image.display().to_string()])?;
    let rolled = disk::builds(serve, disk_image)?;
    if rolled != [after[1].clone(), after[0].clone()] {
        bail!(
            "after --rollback the disk should boot {} first: {rolled:?}",
            after[1]
        );
    }
    eprintln!("boot: the disk's update, fallback and rollback hold");
    Ok(())
}

/// How long one boot may take here: two TCG guests beside the rootless
/// tests on two cores took up to 716 s (the kernel stalled for minutes,
/// starved), against 106 s on an idle machine.
const BOOT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1200);

/// web01's value in the second build.
const NEWER_WEB01: &str = "conffs-of-web01-v2";

/// Boots `hosts` (host, the conffs value its marker must show) at once
/// through the firmware; each host's console log.
fn boot_hosts(serve: &BootServer, hosts: &[(&str, &str)]) -> Result<Vec<(String, String)>> {
    let results: Vec<Result<boot::Booted>> = std::thread::scope(|s| {
        let handles: Vec<_> = hosts
            .iter()
            .map(|(host, _)| {
                let mac = demo_mac(host);
                let port = serve.port;
                s.spawn(move || {
                    boot::boot_firmware(port, &mac, host, boot::DEFAULT_MARKER, BOOT_TIMEOUT)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| bail!("a boot thread panicked")))
            .collect()
    });
    let mut consoles = Vec::new();
    for ((host, value), result) in hosts.iter().zip(results) {
        let booted = result.with_context(|| format!("booting {host} through its firmware"))?;
        check_marker_value(&booted.line, host, value)?;
        eprintln!(
            "boot: {host} reached its marker in {:.0} s: {}",
            booted.elapsed.as_secs_f64(),
            booted.line
        );
        let console = std::fs::read_to_string(&booted.console_log)
            .with_context(|| format!("read {}", booted.console_log.display()))?;
        consoles.push((host.to_string(), console));
    }
    Ok(consoles)
}

/// The MAC of a demo host (its `mac:` in the demo's `host_vars`).
fn demo_mac(host: &str) -> String {
    match host {
        "web01" => super::DEMO_MAC,
        "web02" => "52:54:00:12:34:02",
        _ => "52:54:00:12:34:ff",
    }
    .to_string()
}

/// The conffs URL a host booted with (the kernel prints its command
/// line: any process of the host reads it in /proc/cmdline too) is
/// spent, and opens no other host's conffs either.
fn check_conffs_urls_are_spent(serve: &BootServer, consoles: &[(String, String)]) -> Result<()> {
    let conffs_url = |console: &str| -> Result<String> {
        console
            .split_whitespace()
            .find_map(|w| w.strip_prefix("live.updates="))
            .map(|u| u.replace("10.0.2.100", &serve.url.replace("http://", "")))
            .context("no live.updates= on the console (the kernel prints its command line)")
    };
    let urls: Vec<String> = consoles
        .iter()
        .map(|(_, c)| conffs_url(c))
        .collect::<Result<_>>()?;
    for (url, (host, _)) in urls.iter().zip(consoles) {
        let (code, body) = serve.get(url)?;
        if code != 410 {
            bail!("{host}'s conffs URL, fetched again, answered {code}, not 410: {body}");
        }
    }
    if let [first, second, ..] = urls.as_slice() {
        // The first host's token on the second host's conffs.
        let (digest_path, _) = second.split_once('?').context("no token")?;
        let (_, token) = first.split_once('?').context("no token")?;
        let (code, _) = serve.get(&format!("{digest_path}?{token}"))?;
        if code != 403 {
            bail!(
                "{}'s boot token opened {}'s conffs ({code})",
                consoles[0].0,
                consoles[1].0
            );
        }
        let (code, _) = serve.get(&format!("{digest_path}?boot={}", "0".repeat(64)))?;
        if code != 403 {
            bail!("a guessed token was answered {code}, not 403");
        }
    }
    eprintln!("boot: the conffs URLs of the boots are spent, and open no other host's");
    Ok(())
}

/// A MAC nobody owns gets the script that boots the local disk, and is
/// listed.
fn check_unknown_mac(serve: &BootServer) -> Result<()> {
    let (code, script) = serve.get(&format!("{}/boot/ipxe?mac=52:54:00:99:99:99", serve.url))?;
    if code != 200 || !script.trim_end().ends_with("exit") {
        bail!("an unknown MAC got {code}:\n{script}");
    }
    let hosts: serde_json::Value = serde_json::from_str(&serve.vauban(&["hosts", "--json"])?)?;
    if !hosts["unknown"]
        .as_array()
        .is_some_and(|u| u.iter().any(|m| m["mac"] == "52:54:00:99:99:99"))
    {
        bail!("the unknown MAC is not in /hosts: {hosts:#}");
    }
    Ok(())
}

/// The boot token on a host's console (the kernel prints its command line).
fn boot_token(console: &str) -> Result<String> {
    console
        .split_whitespace()
        .find_map(|w| w.strip_prefix("live.updates="))
        .and_then(|u| u.split_once("?boot="))
        .map(|(_, t)| t.chars().take_while(char::is_ascii_hexdigit).collect())
        .filter(|t: &String| t.len() == 64)
        .context("no boot token in live.updates= on the console")
}

/// `host` changed /etc/motd and removed /etc/issue.net after it booted, and
/// sent its drift (the demo's marker unit, `vauban-drift` of
/// `drift_report:`): `vauban diff --drift` shows both against the build it
/// booted, the line added as text. Another within the minute is refused.
fn check_drift(serve: &BootServer, host: &str, consoles: &[(String, String)]) -> Result<()> {
    let console = &consoles
        .iter()
        .find(|(h, _)| h == host)
        .with_context(|| format!("no console of {host}"))?
        .1;
    let sent = console
        .lines()
        .find(|l| l.contains("VAUBAN-DRIFT"))
        .with_context(|| format!("{host} printed no VAUBAN-DRIFT line"))?;
    if !sent.contains("vauban-drift: sent") {
        bail!("{host} did not send its drift: {sent}");
    }
    let status = serve.vauban(&["diff", "--drift", host, "--name-status"])?;
    for wanted in ["M\t/etc/motd", "D\t/etc/issue.net"] {
        if !status.lines().any(|l| l == wanted) {
            bail!("vauban diff --drift {host} has no {wanted:?}:\n{status}");
        }
    }
    let text = serve.vauban(&["diff", "--drift", host, "--", "/etc/motd"])?;
    if !text.contains(&format!("+changed on {host} after boot")) {
        bail!("vauban diff --drift {host} -- /etc/motd shows no line added:\n{text}");
    }
    // The guest signed it with its sshd key, the one of its conffs.
    let hosts: serde_json::Value =
        serde_json::from_str(&serve.vauban(&["hosts", host, "--json"])?)?;
    let signer = hosts["drifts"][0]["signer"].as_str().unwrap_or_default();
    if !signer.starts_with("SHA256:") {
        bail!("{host}'s drift was not signed by its sshd key: {hosts:#}");
    }
    // A local user of the guest reads its token on /proc/cmdline and
    // sends a drift of their own: without the host key's signature, it is
    // refused.
    let token = boot_token(console)?;
    let url = format!("{}/hosts/{host}/drift", serve.url);
    let (code, body) = serve.post(&url, &token, &empty_drift()?)?;
    if code != 403 || !body.contains("must be signed") {
        bail!("a drift sent with {host}'s boot token alone was answered {code}, not 403: {body}");
    }
    eprintln!(
        "boot: {host}'s drift: {} paths differ from its build, /etc/motd changed, /etc/issue.net \
         removed; signed by {signer}; the token alone sends none (403)",
        status.lines().count()
    );
    Ok(())
}

/// An empty drift: a gzip-compressed empty tar archive (its two zero
/// blocks), made by `gzip`.
fn empty_drift() -> Result<Vec<u8>> {
    use std::io::Write;
    let mut child = Command::new("gzip")
        .arg("-c")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .context("run gzip")?;
    child
        .stdin
        .take()
        .context("gzip's stdin")?
        .write_all(&[0u8; 1024])?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!("gzip failed: {}", out.status);
    }
    Ok(out.stdout)
}

/// A drift sent for `host` with `token` is refused with `code`.
fn check_drift_refused(serve: &BootServer, token: &str, host: &str, code: u16) -> Result<()> {
    let (got, body) = serve.post(&format!("{}/hosts/{host}/drift", serve.url), token, b"")?;
    if got != code {
        bail!("a drift of {host} with that token was answered {got}, not {code}: {body}");
    }
    Ok(())
}

/// The two builds differ, for web01, by its value and nothing else of the
/// host (the server's diff of two builds, `build:ID/IMAGE`).
fn check_builds_diff(serve: &BootServer, a: &str, b: &str) -> Result<()> {
    let status = serve.vauban(&[
        "diff",
        &format!("build:{a}/{MASTER}/web01"),
        &format!("build:{b}"),
        "--name-status",
        "--exclude",
        "/imginfo",
    ])?;
    if status.trim() != "M\t/etc/vauban/host-value" {
        bail!(
            "builds {a} and {b} of web01 should differ by /etc/vauban/host-value alone:\n{status}"
        );
    }
    Ok(())
}

/// `/hosts`: web01 last booted build `a`, whole, and runs the deployed
/// build; web02 booted `b`, which is no longer deployed; web01's history
/// holds both boots.
fn check_hosts(serve: &BootServer, a: &str, b: &str) -> Result<()> {
    let hosts: serde_json::Value = serde_json::from_str(&serve.vauban(&["hosts", "--json"])?)?;
    let host = |name: &str| {
        hosts["hosts"]
            .as_array()
            .and_then(|l| l.iter().find(|h| h["host"] == name))
            .cloned()
            .with_context(|| format!("no {name} in /hosts: {hosts:#}"))
    };
    let (web01, web02) = (host("web01")?, host("web02")?);
    let wanted = [(&web01, a, true), (&web02, b, false)];
    for (h, build, runs) in wanted {
        let last = &h["last_boot"];
        if last["build_id"] != build || last["state"] != "complete" || h["runs_deployed"] != runs {
            bail!("/hosts: {} should have booted build {build} whole (runs the deployed: {runs}): {h:#}", h["host"]);
        }
    }
    let history: serde_json::Value =
        serde_json::from_str(&serve.vauban(&["hosts", "web01", "--json"])?)?;
    let builds: Vec<&str> = history["boots"]
        .as_array()
        .map(|l| l.iter().filter_map(|b| b["build_id"].as_str()).collect())
        .unwrap_or_default();
    if builds != [a, b] {
        bail!("web01's boots should be of builds {a} then {b} (newest first): {history:#}");
    }
    eprintln!(
        "boot: /hosts says {}",
        web02["summary"].as_str().unwrap_or_default()
    );
    Ok(())
}

/// `check_marker` with the conffs value `value`.
pub fn check_marker_value(line: &str, host: &str, value: &str) -> Result<()> {
    super::check_marker(&line.replace(value, &format!("conffs-of-{host}")), host)
        .with_context(|| format!("{host} should show conffs={value}"))?;
    if !line.contains(&format!("conffs={value} ")) {
        bail!("{host} should show conffs={value}: {line}");
    }
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
