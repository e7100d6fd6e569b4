//! The QEMU command line of a boot test and the watch of its serial console.
//!
//! The guest gets user-mode networking with `restrict=on` (it reaches nothing
//! but what is forwarded) and one forward: `10.0.2.100:80` runs
//! `busybox nc 127.0.0.1 PORT` per connection, so every HTTP request of the
//! guest reaches the tree's server on loopback (`guestfwd=...-tcp:` would be
//! one connection made at start: the second request would hang).
//! KVM is opt-in: on this machine `-cpu host` aborts and plain KVM hangs.
//!
//! A guest boots one of two ways ([`Boot`]): QEMU loads the kernel and
//! initramfs itself, or the firmware boots from the network as a PXE host
//! does. For the latter (checked with QEMU 7.2 and Debian's `ipxe-qemu`):
//! `-boot n`, SeaBIOS runs the iPXE ROM of the `virtio-net-pci` card (fixed
//! `mac=`), QEMU's user network answers its DHCP with the boot file
//! [`BOOT_FILE`] and serves it over TFTP from a directory, which works with
//! `restrict=on`. iPXE prints on VGA only; the kernel it boots prints on
//! ttyS0 when its command line says `console=ttyS0,115200`.
//!
//! A third way boots a disk image ([`Boot::Disk`]): OVMF (Debian's `ovmf`)
//! with a fresh copy of its variables, the disk on virtio, no network
//! device, and the monitor on a socket to press keys at the boot menu
//! (OVMF shows the menu on the serial console too).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// The address the guest fetches the boot tree from.
pub const GUEST_SERVER: &str = "10.0.2.100";
/// The file QEMU's DHCP names and its TFTP serves in a firmware boot.
pub const BOOT_FILE: &str = "boot.ipxe";

/// How a guest boots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Boot {
    /// QEMU loads the kernel and initramfs (`-kernel`, `-initrd`, `-append`).
    Kernel {
        /// The kernel.
        kernel: PathBuf,
        /// The initramfs.
        initrd: PathBuf,
        /// The kernel command line (the console is added).
        cmdline: String,
    },
    /// The firmware boots from the network: DHCP, then [`BOOT_FILE`] over
    /// TFTP from `tftp_dir`, which the iPXE ROM runs.
    Firmware {
        /// The directory QEMU's TFTP server serves.
        tftp_dir: PathBuf,
        /// The network card's MAC address (`52:54:00:xx:xx:xx`).
        mac: String,
    },
    /// UEFI firmware (OVMF) boots a raw disk image on virtio; the guest
    /// has no network device at all.
    Disk {
        /// The disk image.
        disk: PathBuf,
        /// A copy of OVMF's variable store, written by the firmware.
        vars: PathBuf,
        /// The QEMU monitor's socket, to send keys at the boot menu.
        monitor: PathBuf,
    },
}

/// OVMF's code, from Debian's `ovmf`.
pub const OVMF_CODE: &str = "/usr/share/OVMF/OVMF_CODE_4M.fd";
/// OVMF's empty variable store, copied for each boot.
pub const OVMF_VARS: &str = "/usr/share/OVMF/OVMF_VARS_4M.fd";

/// One guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Guest {
    /// How it boots.
    pub boot: Boot,
    /// Where the serial console is written.
    pub console_log: PathBuf,
    /// The loopback port of the HTTP server.
    pub port: u16,
    /// KVM instead of TCG.
    pub kvm: bool,
    /// Memory in MiB (the squashfs is held in RAM).
    pub memory_mib: u32,
}

/// The `qemu-system-x86_64` argv (program first).
pub fn qemu_argv(g: &Guest) -> Vec<String> {
    let mut argv = machine_argv(g);
    argv.extend(boot_argv(&g.boot));
    if let Boot::Disk { .. } = &g.boot {
        argv.extend(["-nic", "none"].map(String::from));
        return argv;
    }
    argv.push("-netdev".into());
    argv.push(netdev(g));
    argv.push("-device".into());
    argv.push(match &g.boot {
        Boot::Firmware { mac, .. } => format!("virtio-net-pci,netdev=n0,mac={mac}"),
        _ => "virtio-net-pci,netdev=n0".into(),
    });
    argv
}

/// The machine: accelerator, memory, CPUs, no display, the serial console.
fn machine_argv(g: &Guest) -> Vec<String> {
    let mut argv: Vec<String> = [
        "qemu-system-x86_64",
        "-accel",
        if g.kvm { "kvm" } else { "tcg" },
        "-machine",
        "q35",
        "-m",
    ]
    .map(String::from)
    .to_vec();
    argv.push(g.memory_mib.to_string());
    argv.extend(["-smp", "2", "-display", "none", "-no-reboot"].map(String::from));
    argv.push("-serial".into());
    argv.push(format!("file:{}", g.console_log.display()));
    argv
}

/// What starts the boot: the kernel with its command line, or `-boot n`.
fn boot_argv(boot: &Boot) -> Vec<String> {
    match boot {
        Boot::Kernel {
            kernel,
            initrd,
            cmdline,
        } => vec![
            "-kernel".into(),
            kernel.display().to_string(),
            "-initrd".into(),
            initrd.display().to_string(),
            "-append".into(),
            format!("{} console=ttyS0,115200", cmdline.trim()),
        ],
        Boot::Firmware { .. } => vec!["-boot".into(), "n".into()],
        Boot::Disk {
            disk,
            vars,
            monitor,
        } => vec![
            "-drive".into(),
            format!(
                "if=pflash,format=raw,unit=0,readonly=on,file={}",
                option_value(OVMF_CODE)
            ),
            "-drive".into(),
            format!(
                "if=pflash,format=raw,unit=1,file={}",
                option_value(&vars.display().to_string())
            ),
            "-drive".into(),
            format!(
                "if=virtio,format=raw,file={}",
                option_value(&disk.display().to_string())
            ),
            "-monitor".into(),
            format!(
                "unix:{},server=on,wait=off",
                option_value(&monitor.display().to_string())
            ),
        ],
    }
}

/// The `-netdev user,...` value: restricted, the forward to loopback, and
/// for a firmware boot the TFTP dir and boot file.
fn netdev(g: &Guest) -> String {
    let tftp = match &g.boot {
        Boot::Firmware { tftp_dir, .. } => format!(
            "tftp={},bootfile={BOOT_FILE},",
            option_value(&tftp_dir.display().to_string())
        ),
        _ => String::new(),
    };
    format!(
        "user,id=n0,restrict=on,{tftp}guestfwd=tcp:{GUEST_SERVER}:80-cmd:busybox nc 127.0.0.1 {}",
        g.port
    )
}

/// A value inside a QEMU option list: a comma is written twice.
fn option_value(value: &str) -> String {
    value.replace(',', ",,")
}

/// The first line of `console` holding `marker`, if any.
pub fn marker_line(console: &str, marker: &str) -> Option<String> {
    console
        .lines()
        .find(|l| l.contains(marker))
        .map(|l| l.trim_end_matches('\r').to_owned())
}

/// What a boot came to.
#[derive(Debug)]
pub struct Booted {
    /// The console line with the marker.
    pub line: String,
    /// From QEMU's start to the marker.
    pub elapsed: Duration,
    /// The serial console's log (the kernel's `Command line:` is in it).
    pub console_log: PathBuf,
}

/// Starts QEMU, waits for `marker` on the console (polling the log), then
/// stops QEMU. Fails on timeout or if QEMU exits first, naming the log.
pub fn boot(guest: &Guest, marker: &str, timeout: Duration) -> Result<Booted> {
    boot_watching(guest, marker, timeout, &mut |_| Ok(()))
}

/// [`boot`], `on_console` given the console's text at each poll (to send
/// keys when a menu shows).
pub fn boot_watching(
    guest: &Guest,
    marker: &str,
    timeout: Duration,
    on_console: &mut dyn FnMut(&str) -> Result<()>,
) -> Result<Booted> {
    let argv = qemu_argv(guest);
    let _ = std::fs::remove_file(&guest.console_log);
    let started = Instant::now();
    let mut child = Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(std::process::Stdio::null())
        .spawn()
        .with_context(|| format!("cannot start {} (apt-get install qemu-system-x86)", argv[0]))?;
    let result = watch(
        &mut child,
        &guest.console_log,
        marker,
        timeout,
        started,
        on_console,
    );
    stop(&mut child);
    result
}

fn watch(
    child: &mut Child,
    log: &Path,
    marker: &str,
    timeout: Duration,
    started: Instant,
    on_console: &mut dyn FnMut(&str) -> Result<()>,
) -> Result<Booted> {
    loop {
        let console = read_lossy(log);
        on_console(&console)?;
        if let Some(line) = marker_line(&console, marker) {
            return Ok(Booted {
                line,
                elapsed: started.elapsed(),
                console_log: log.to_owned(),
            });
        }
        if let Some(status) = child.try_wait()? {
            bail!(
                "QEMU exited ({status}) before the marker {marker:?}; console log {}:\n{}",
                log.display(),
                tail(&console)
            );
        }
        if started.elapsed() > timeout {
            bail!(
                "no marker {marker:?} after {timeout:?}; console log {}:\n{}",
                log.display(),
                tail(&console)
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Sends `keys` (QEMU key names: `down`, `ret`) to the guest's keyboard
/// through the monitor's socket.
pub fn send_keys(monitor: &Path, keys: &[&str]) -> Result<()> {
    use std::io::Write;
    let mut sock = std::os::unix::net::UnixStream::connect(monitor)
        .with_context(|| format!("connect to QEMU's monitor {}", monitor.display()))?;
    for key in keys {
        writeln!(sock, "sendkey {key}")?;
        std::thread::sleep(Duration::from_millis(300));
    }
    Ok(())
}

/// Stops QEMU: SIGTERM, then SIGKILL after 10 s (under TCG it may not exit
/// by itself after the guest powers off).
fn stop(child: &mut Child) {
    if child.try_wait().ok().flatten().is_some() {
        return;
    }
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
    for _ in 0..100 {
        if child.try_wait().ok().flatten().is_some() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
}

fn read_lossy(path: &Path) -> String {
    let mut bytes = Vec::new();
    if let Ok(mut f) = std::fs::File::open(path) {
        let _ = f.read_to_end(&mut bytes);
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guest(kvm: bool) -> Guest {
        Guest {
            boot: Boot::Kernel {
                kernel: "/o/linux/vmlinuz-default".into(),
                initrd: "/o/linux/initramfs-default.img".into(),
                cmdline: "root=live:http://10.0.2.100/m/rootfs.img ip=dhcp\n".into(),
            },
            console_log: "/l/console.log".into(),
            port: 8123,
            kvm,
            memory_mib: 3072,
        }
    }

    #[test]
    fn qemu_boots_the_kernel_under_tcg_with_a_forward_to_loopback() {
        assert_eq!(
            qemu_argv(&guest(false)),
            [
                "qemu-system-x86_64",
                "-accel",
                "tcg",
                "-machine",
                "q35",
                "-m",
                "3072",
                "-smp",
                "2",
                "-display",
                "none",
                "-no-reboot",
                "-serial",
                "file:/l/console.log",
                "-kernel",
                "/o/linux/vmlinuz-default",
                "-initrd",
                "/o/linux/initramfs-default.img",
                "-append",
                "root=live:http://10.0.2.100/m/rootfs.img ip=dhcp console=ttyS0,115200",
                "-netdev",
                "user,id=n0,restrict=on,guestfwd=tcp:10.0.2.100:80-cmd:busybox nc 127.0.0.1 8123",
                "-device",
                "virtio-net-pci,netdev=n0",
            ]
        );
        let kvm = qemu_argv(&guest(true));
        assert_eq!(kvm[1..3], ["-accel", "kvm"]);
    }

    #[test]
    fn the_firmware_boots_from_the_network_with_a_fixed_mac_and_tftp() {
        let g = Guest {
            boot: Boot::Firmware {
                tftp_dir: "/t/web01,tftp".into(),
                mac: "52:54:00:7c:1d:01".into(),
            },
            ..guest(false)
        };
        let argv = qemu_argv(&g);
        assert_eq!(argv[..14], qemu_argv(&guest(false))[..14]);
        assert_eq!(
            argv[14..],
            [
                "-boot",
                "n",
                "-netdev",
                "user,id=n0,restrict=on,tftp=/t/web01,,tftp,bootfile=boot.ipxe,\
                 guestfwd=tcp:10.0.2.100:80-cmd:busybox nc 127.0.0.1 8123",
                "-device",
                "virtio-net-pci,netdev=n0,mac=52:54:00:7c:1d:01",
            ]
        );
        assert!(!argv.iter().any(|a| a == "-kernel"));
    }

    #[test]
    fn the_marker_line_is_found_without_its_carriage_return() {
        let console = "[  1.0] boot\r\nvauban-marker host=web01\r\nmore\n";
        assert_eq!(
            marker_line(console, "vauban-marker").as_deref(),
            Some("vauban-marker host=web01")
        );
        assert_eq!(marker_line(console, "nope"), None);
    }
}
