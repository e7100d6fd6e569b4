//! `cargo xtask boot-test --tree OUT --master M --host H [--host H2...]`:
//! boots each host of a boot tree (see `vauban_core::export::tree`) in QEMU
//! and waits for the marker line its image prints on the serial console.
//!
//! The tree must have been made with the base URL `http://10.0.2.100` (the
//! address QEMU forwards to the tree's server on loopback). Each host boots
//! `OUT/linux/vmlinuz-default` and `initramfs-default.img` with the command
//! line of `OUT/M/cmdline-H`; the test passes when a console line holds the
//! marker and `host=H`. Console logs: `target/boot-test/H-console.log`.

mod http;
mod qemu;

pub use qemu::Booted;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::util;

/// The default marker the test image prints.
pub const DEFAULT_MARKER: &str = "VAUBAN-BOOT-OK";
/// How long one boot may take by default (TCG: the marker came after 36 to 100 s).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

/// What the task was asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// The boot tree.
    pub tree: PathBuf,
    /// The master whose hosts boot.
    pub master: String,
    /// The hosts, booted one after the other.
    pub hosts: Vec<String>,
    /// The marker text.
    pub marker: String,
    /// How long one boot may take.
    pub timeout: Duration,
    /// KVM instead of TCG.
    pub kvm: bool,
}

/// Parses the task's arguments.
pub fn parse(args: &[String]) -> Result<Options> {
    let mut opts = Options {
        tree: PathBuf::new(),
        master: String::new(),
        hosts: Vec::new(),
        marker: DEFAULT_MARKER.into(),
        timeout: DEFAULT_TIMEOUT,
        kvm: false,
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = || {
            it.next()
                .cloned()
                .with_context(|| format!("{arg} needs a value"))
        };
        match arg.as_str() {
            "--tree" => opts.tree = value()?.into(),
            "--master" => opts.master = value()?,
            "--host" => opts.hosts.push(value()?),
            "--marker" => opts.marker = value()?,
            "--timeout" => opts.timeout = Duration::from_secs(value()?.parse()?),
            "--kvm" => opts.kvm = true,
            other => bail!("unknown argument {other:?}"),
        }
    }
    if opts.tree.as_os_str().is_empty() || opts.master.is_empty() || opts.hosts.is_empty() {
        bail!("usage: cargo xtask boot-test --tree OUT --master M --host H [--host H2...] [--marker TEXT] [--timeout SECS] [--kvm]");
    }
    Ok(opts)
}

/// Runs the task.
pub fn task(args: &[String]) -> Result<()> {
    let opts = parse(args)?;
    let logs = util::target_dir().join("boot-test");
    std::fs::create_dir_all(&logs)?;
    for host in &opts.hosts {
        let booted = boot_host(&opts, host, &logs)?;
        eprintln!(
            "boot-test: {host}: marker after {:.1} s: {}",
            booted.elapsed.as_secs_f64(),
            booted.line
        );
    }
    Ok(())
}

/// Boots `host` of the boot tree `tree` (master `master`) with the default
/// marker and timeout under TCG, its console log in `target/boot-test/`, and
/// returns its marker line. What the demo and tests call.
pub fn boot_tree_host(tree: &Path, master: &str, host: &str) -> Result<Booted> {
    let opts = Options {
        tree: tree.to_owned(),
        master: master.to_owned(),
        hosts: vec![host.to_owned()],
        marker: DEFAULT_MARKER.into(),
        timeout: DEFAULT_TIMEOUT,
        kvm: false,
    };
    let logs = util::target_dir().join("boot-test");
    std::fs::create_dir_all(&logs).with_context(|| format!("mkdir {}", logs.display()))?;
    boot_host(&opts, host, &logs)
}

/// Boots one host of the tree and checks its marker line.
pub fn boot_host(opts: &Options, host: &str, logs: &Path) -> Result<Booted> {
    let tree = &opts.tree;
    let cmdline_file = tree.join(&opts.master).join(format!("cmdline-{host}"));
    let cmdline = std::fs::read_to_string(&cmdline_file)
        .with_context(|| format!("cannot read {}", cmdline_file.display()))?;
    if !cmdline.contains(&format!("http://{}/", qemu::GUEST_SERVER)) {
        bail!(
            "{} does not fetch from http://{}/: make the tree with that base URL",
            cmdline_file.display(),
            qemu::GUEST_SERVER
        );
    }
    let server = http::Server::start(tree)?;
    let guest = qemu::Guest {
        kernel: tree.join("linux/vmlinuz-default"),
        initrd: tree.join("linux/initramfs-default.img"),
        cmdline,
        console_log: logs.join(format!("{host}-console.log")),
        port: server.port,
        kvm: opts.kvm,
        memory_mib: 3072,
    };
    eprintln!(
        "boot-test: booting {host} ({})",
        guest.console_log.display()
    );
    let booted = qemu::boot(&guest, &opts.marker, opts.timeout)?;
    drop(server);
    if !booted.line.contains(&format!("host={host}")) {
        bail!(
            "{host} printed the marker for another host: {} (console log {})",
            booted.line,
            guest.console_log.display()
        );
    }
    Ok(booted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_name_the_tree_the_master_and_the_hosts() {
        let args: Vec<String> =
            "--tree /o --master bars --host web01 --host web02 --kvm --timeout 60"
                .split(' ')
                .map(String::from)
                .collect();
        let opts = parse(&args).unwrap();
        assert_eq!(opts.tree, Path::new("/o"));
        assert_eq!(opts.hosts, ["web01", "web02"]);
        assert!(opts.kvm);
        assert_eq!(opts.timeout, Duration::from_secs(60));
        assert_eq!(opts.marker, DEFAULT_MARKER);
        assert!(parse(&["--tree".into(), "/o".into()]).is_err());
        assert!(parse(&["--bogus".into()]).is_err());
    }
}
