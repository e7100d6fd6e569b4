//! `cargo xtask boot-test --tree OUT --master M --host H [--host H2...]`:
//! boots each host of a boot tree (see `vauban_core::export::tree`) in QEMU
//! and waits for the marker line its image prints on the serial console.
//!
//! The tree must have been made with the base URL `http://10.0.2.100` (the
//! address QEMU forwards to the tree's server on loopback). Each host boots
//! `OUT/linux/vmlinuz-default` and `initramfs-default.img` with the command
//! line of `OUT/M/cmdline-H`; the test passes when a console line holds the
//! marker and `host=H`. Console logs: `target/boot-test/H-console.log`.
//!
//! With `--firmware` each host boots as a PXE host does instead
//! ([`boot_firmware`]): the firmware gets a chain script over TFTP that asks
//! the server for `/boot/ipxe?mac=...`, and the server answers with the
//! tree's own `OUT/M/boot-H.ipxe` (a served dir of links per host, since
//! `busybox httpd` ignores the query string).

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
    /// Through the firmware and the tree's iPXE script instead of `-kernel`.
    pub firmware: bool,
}

impl Options {
    /// `hosts` of `tree` with the default marker and timeout, under TCG.
    fn new(tree: PathBuf, master: String, hosts: Vec<String>) -> Options {
        Options {
            tree,
            master,
            hosts,
            marker: DEFAULT_MARKER.into(),
            timeout: DEFAULT_TIMEOUT,
            kvm: false,
            firmware: false,
        }
    }
}

/// Parses the task's arguments.
pub fn parse(args: &[String]) -> Result<Options> {
    let mut opts = Options::new(PathBuf::new(), String::new(), Vec::new());
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
            "--firmware" => opts.firmware = true,
            other => bail!("unknown argument {other:?}"),
        }
    }
    if opts.tree.as_os_str().is_empty() || opts.master.is_empty() || opts.hosts.is_empty() {
        bail!("usage: cargo xtask boot-test --tree OUT --master M --host H [--host H2...] [--marker TEXT] [--timeout SECS] [--kvm | --firmware]");
    }
    if opts.kvm && opts.firmware {
        bail!("--firmware boots under TCG only (KVM hangs on this kind of machine): drop --kvm");
    }
    Ok(opts)
}

/// Runs the task.
pub fn task(args: &[String]) -> Result<()> {
    let opts = parse(args)?;
    for host in &opts.hosts {
        let booted = boot_host(&opts, host)?;
        eprintln!(
            "boot-test: {host}: marker after {:.1} s: {}",
            booted.elapsed.as_secs_f64(),
            booted.line
        );
    }
    Ok(())
}

/// The serial console log of the guest `label` (a host name):
/// `target/boot-test/<label>-console.log`.
pub fn console_of(label: &str) -> PathBuf {
    logs_path().join(format!("{label}-console.log"))
}

/// Boots one host of the tree (the way `opts` says) and checks its marker line.
pub fn boot_host(opts: &Options, host: &str) -> Result<Booted> {
    let booted = if opts.firmware {
        boot_tree_firmware(opts, host)?
    } else {
        boot_kernel(opts, host)?
    };
    if !booted.line.contains(&format!("host={host}")) {
        bail!(
            "{host} printed the marker for another host: {} (console log {})",
            booted.line,
            booted.console_log.display()
        );
    }
    Ok(booted)
}

/// Boots one host with `-kernel`, `-initrd` and its `cmdline-H`.
fn boot_kernel(opts: &Options, host: &str) -> Result<Booted> {
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
        boot: qemu::Boot::Kernel {
            kernel: tree.join("linux/vmlinuz-default"),
            initrd: tree.join("linux/initramfs-default.img"),
            cmdline,
        },
        console_log: console_for(host)?,
        port: server.port,
        kvm: opts.kvm,
        memory_mib: 3072,
    };
    eprintln!(
        "boot-test: booting {host} ({})",
        guest.console_log.display()
    );
    qemu::boot(&guest, &opts.marker, opts.timeout)
}

/// Boots one host through the firmware: the server answers `/boot/ipxe`
/// with the tree's `M/boot-H.ipxe`.
fn boot_tree_firmware(opts: &Options, host: &str) -> Result<Booted> {
    let www = served_dir(&opts.tree, &opts.master, host)?;
    let server = http::Server::start(&www)?;
    eprintln!(
        "boot-test: booting {host} through the firmware ({})",
        console_of(host).display()
    );
    boot_firmware(server.port, &mac_of(host), host, &opts.marker, opts.timeout)
}

/// `target/boot-test/<host>-www`: links to the tree's `linux/` and `M/`, and
/// `boot/ipxe` to the host's script `M/boot-H.ipxe`.
fn served_dir(tree: &Path, master: &str, host: &str) -> Result<PathBuf> {
    let tree = std::fs::canonicalize(tree).with_context(|| format!("{}", tree.display()))?;
    let script = tree.join(master).join(format!("boot-{host}.ipxe"));
    if !script.is_file() {
        bail!("no iPXE script {} in the tree", script.display());
    }
    let www = logs_dir()?.join(format!("{}-www", check_label(host)?));
    fresh_dir(&www)?;
    std::fs::create_dir(www.join("boot"))?;
    for (link, target) in [
        (www.join("linux"), tree.join("linux")),
        (www.join(master), tree.join(master)),
        (www.join("boot/ipxe"), script),
    ] {
        std::os::unix::fs::symlink(&target, &link)
            .with_context(|| format!("symlink {}", link.display()))?;
    }
    Ok(www)
}

/// Boots a guest through its firmware as a PXE host does, under TCG with
/// 3072 MiB: QEMU's DHCP and TFTP give it a chain script that fetches
/// `http://10.0.2.100/boot/ipxe?mac=${net0/mac}` from the caller's server on
/// `127.0.0.1:port` (the MAC URL-encoded: `52%3A54%3A00%3A...`). The server's
/// script must boot a kernel with `console=ttyS0,115200`. Waits for `marker`
/// on the serial console, logged in [`console_of`]`(label)`; the TFTP dir is
/// `target/boot-test/<label>-tftp`.
pub fn boot_firmware(
    port: u16,
    mac: &str,
    label: &str,
    marker: &str,
    timeout: Duration,
) -> Result<Booted> {
    qemu::boot(&firmware_guest(port, mac, label)?, marker, timeout)
}

/// A guest booting through its firmware, its TFTP dir written with the
/// chain script.
fn firmware_guest(port: u16, mac: &str, label: &str) -> Result<qemu::Guest> {
    check_mac(mac)?;
    let tftp_dir = logs_dir()?.join(format!("{}-tftp", check_label(label)?));
    fresh_dir(&tftp_dir)?;
    let boot_file = tftp_dir.join(qemu::BOOT_FILE);
    std::fs::write(&boot_file, chain_script())
        .with_context(|| format!("write {}", boot_file.display()))?;
    Ok(qemu::Guest {
        boot: qemu::Boot::Firmware {
            tftp_dir,
            mac: mac.to_owned(),
        },
        console_log: console_for(label)?,
        port,
        kvm: false,
        memory_mib: 3072,
    })
}

/// Boots the disk image `disk` under OVMF with no network device (see
/// [`qemu::Boot::Disk`]) and waits for `marker`; with `fallback` the second
/// entry of the boot menu is chosen (down, enter) as soon as the menu
/// shows on the console. The disk is only read.
pub fn boot_disk(
    disk: &Path,
    label: &str,
    marker: &str,
    timeout: Duration,
    fallback: bool,
) -> Result<Booted> {
    let dir = logs_dir()?.join(format!("{}-disk", check_label(label)?));
    fresh_dir(&dir)?;
    let vars = dir.join("OVMF_VARS.fd");
    std::fs::copy(qemu::OVMF_VARS, &vars)
        .with_context(|| format!("copy {} (apt-get install ovmf)", qemu::OVMF_VARS))?;
    let monitor = dir.join("monitor.sock");
    let guest = qemu::Guest {
        boot: qemu::Boot::Disk {
            disk: disk.to_owned(),
            vars,
            monitor: monitor.clone(),
        },
        console_log: console_for(label)?,
        port: 0,
        kvm: false,
        memory_mib: 3072,
    };
    let mut chosen = !fallback;
    let mut choose = |console: &str| -> Result<()> {
        // systemd-boot's menu names each entry's build.
        if !chosen && console.matches("(build ").count() >= 2 {
            qemu::send_keys(&monitor, &["down", "ret"])?;
            chosen = true;
        }
        Ok(())
    };
    eprintln!(
        "boot-test: booting {} ({})",
        disk.display(),
        guest.console_log.display()
    );
    let booted = qemu::boot_watching(&guest, marker, timeout, &mut choose)?;
    if !chosen {
        bail!("the boot menu never showed two entries to choose the fallback from");
    }
    Ok(booted)
}

/// The iPXE script the firmware gets over TFTP: fetch the host's own script
/// from the server, by MAC address.
pub fn chain_script() -> String {
    format!(
        "#!ipxe\nchain http://{}/boot/ipxe?mac=${{net0/mac}}\n",
        qemu::GUEST_SERVER
    )
}

/// A MAC address for `host`: QEMU's prefix `52:54:00` and three bytes of the
/// sha256 of its name, so each host keeps its own.
pub fn mac_of(host: &str) -> String {
    let hex = util::sha256_hex(host.as_bytes());
    format!("52:54:00:{}:{}:{}", &hex[0..2], &hex[2..4], &hex[4..6])
}

/// Refuses anything but six pairs of hex digits separated by colons.
fn check_mac(mac: &str) -> Result<()> {
    let pairs: Vec<&str> = mac.split(':').collect();
    let hex_pair = |p: &&str| p.len() == 2 && p.chars().all(|c| c.is_ascii_hexdigit());
    if pairs.len() != 6 || !pairs.iter().all(hex_pair) {
        bail!("bad MAC address {mac:?}: want six hex pairs such as 52:54:00:12:34:56");
    }
    Ok(())
}

/// A label becomes part of a file name: no `/`, not empty, no leading dot.
fn check_label(label: &str) -> Result<&str> {
    if label.is_empty() || label.contains('/') || label.starts_with('.') {
        bail!("bad guest label {label:?}: it names files in target/boot-test/");
    }
    Ok(label)
}

/// [`console_of`]`(label)`, the label checked and its dir made.
fn console_for(label: &str) -> Result<PathBuf> {
    check_label(label)?;
    logs_dir()?;
    Ok(console_of(label))
}

/// `target/boot-test/`: console logs, TFTP and served dirs.
fn logs_path() -> PathBuf {
    util::target_dir().join("boot-test")
}

/// [`logs_path`], made if missing.
fn logs_dir() -> Result<PathBuf> {
    let logs = logs_path();
    std::fs::create_dir_all(&logs).with_context(|| format!("mkdir {}", logs.display()))?;
    Ok(logs)
}

/// An empty directory at `dir` (what a previous boot left is removed).
fn fresh_dir(dir: &Path) -> Result<()> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("rm -r {}", dir.display()))?;
    }
    std::fs::create_dir_all(dir).with_context(|| format!("mkdir {}", dir.display()))
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
        assert!(!opts.firmware);
        assert!(parse(&["--tree".into(), "/o".into()]).is_err());
        assert!(parse(&["--bogus".into()]).is_err());
        let firmware: Vec<String> = "--tree /o --master bars --host web01 --firmware"
            .split(' ')
            .map(String::from)
            .collect();
        assert!(parse(&firmware).unwrap().firmware);
        let both = [firmware, vec!["--kvm".into()]].concat();
        assert!(parse(&both).is_err());
    }

    #[test]
    fn the_chain_script_asks_the_server_for_the_host_script_by_mac() {
        assert_eq!(
            chain_script(),
            "#!ipxe\nchain http://10.0.2.100/boot/ipxe?mac=${net0/mac}\n"
        );
    }

    #[test]
    fn each_host_gets_its_own_valid_mac() {
        let (a, b) = (mac_of("web01"), mac_of("web02"));
        assert!(a.starts_with("52:54:00:"), "{a}");
        assert_ne!(a, b);
        check_mac(&a).unwrap();
        assert!(check_mac("52:54:00:12:34").is_err());
        assert!(check_mac("52:54:00:12:34:zz").is_err());
        assert!(check_mac("52:54:00:12:34:567").is_err());
    }

    #[test]
    fn a_label_names_its_console_log_and_nothing_outside() {
        assert!(console_of("web01").ends_with("target/boot-test/web01-console.log"));
        assert!(check_label("../x").is_err());
        assert!(check_label("").is_err());
        assert!(check_label(".hidden").is_err());
        assert_eq!(check_label("web01").unwrap(), "web01");
    }
}
