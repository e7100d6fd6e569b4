//! `OUT/MASTER/boot.json`: what a boot server needs to know of a master's
//! build besides its files: which file is the kernel, the initramfs, the
//! rootfs and each host's conffs (paths in the boot tree, which are the
//! titles of the boot artifact's layers), the kernel arguments of the config
//! and of the master, and for each host what its inventory says about its
//! boot: its MAC addresses (host variable `mac`, a string or a list), its
//! address (`ip`, else an `ansible_host` that is an IP address), its own
//! `kernel_args` (a string or a list) and whether it may be bound to the
//! first unknown MAC that asks (`discoverable: true`).
//!
//! It travels in the boot artifact, so a boot server that only pulls
//! artifacts (`vauban serve --boot-only`) needs no Ansible and no checkout:
//! the deployed build says which host has which MAC, as the build saw it.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// The file name of the boot information in a master's directory.
pub const BOOT_INFO_FILE: &str = "boot.json";

/// What a master's build boots (see the module doc).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BootInfo {
    /// The master.
    pub master: String,
    /// The kernel version.
    pub kver: String,
    /// The kernel, as a path in the boot tree (`linux/vmlinuz-KVER`).
    pub kernel: String,
    /// The initramfs (`linux/initramfs-KVER.img`).
    pub initramfs: String,
    /// The squashfs root (`MASTER/rootfs.img`).
    pub rootfs: String,
    /// Kernel arguments of `configuration:` then of the master, in order.
    pub kernel_args: Vec<String>,
    /// The hosts with a conffs in this build.
    pub hosts: BTreeMap<String, HostInfo>,
}

/// One host of a [`BootInfo`].
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct HostInfo {
    /// Its conffs (`MASTER/conffs-HOST.tgz`).
    pub conffs: String,
    /// Its MAC addresses, lower case, `:`-separated.
    #[serde(default)]
    pub macs: Vec<String>,
    /// Its address in the inventory, when it names one.
    #[serde(default)]
    pub ip: Option<IpAddr>,
    /// Its own kernel arguments, after the master's.
    #[serde(default)]
    pub kernel_args: Vec<String>,
    /// Whether the first unknown MAC that asks may become this host's.
    #[serde(default)]
    pub discoverable: bool,
}

impl HostInfo {
    /// The boot facts of a host from its inventory variables (the
    /// `_meta.hostvars` entry of `ansible-inventory --list`), with a warning
    /// for each value that cannot be used.
    pub fn from_vars(conffs: String, vars: &serde_json::Value) -> (HostInfo, Vec<String>) {
        let mut warnings = Vec::new();
        let mut macs = Vec::new();
        for m in strings(vars.get("mac")) {
            match normalize_mac(&m) {
                Some(mac) => macs.push(mac),
                None => warnings.push(format!(
                    "`mac: {m}` is not a MAC address (six hex pairs); left out"
                )),
            }
        }
        let ip = ["ip", "ansible_host"]
            .iter()
            .filter_map(|k| vars.get(*k)?.as_str())
            .find_map(|v| v.parse::<IpAddr>().ok());
        let mut kernel_args: Vec<String> = match vars.get("kernel_args") {
            Some(serde_json::Value::String(s)) => s.split_whitespace().map(str::to_owned).collect(),
            other => strings(other),
        };
        kernel_args.retain(|a| {
            let ok = is_kernel_arg(a);
            if !ok {
                warnings.push(format!(
                    "kernel argument {a:?} left out: printable ASCII without spaces or `$` only"
                ));
            }
            ok
        });
        let discoverable = match vars.get("discoverable") {
            Some(serde_json::Value::Bool(b)) => *b,
            Some(serde_json::Value::String(s)) => {
                matches!(s.to_ascii_lowercase().as_str(), "true" | "yes" | "1")
            }
            _ => false,
        };
        let info = HostInfo {
            conffs,
            macs,
            ip,
            kernel_args,
            discoverable,
        };
        (info, warnings)
    }
}

/// Whether `arg` can be a word of a kernel command line in an iPXE
/// script: printable ASCII, no space (a script's line stays one line), no
/// `$` (iPXE expands `${...}`).
pub fn is_kernel_arg(arg: &str) -> bool {
    !arg.is_empty() && arg.bytes().all(|b| b.is_ascii_graphic() && b != b'$')
}

/// A string or a list of strings (anything else: none).
fn strings(value: Option<&serde_json::Value>) -> Vec<String> {
    match value {
        Some(serde_json::Value::String(s)) => vec![s.clone()],
        Some(serde_json::Value::Array(a)) => a
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    }
}

/// `52:54:00:AB:cd:01`, `52-54-00-ab-cd-01` or `525400abcd01` as
/// `52:54:00:ab:cd:01`; `None` for anything else.
pub fn normalize_mac(text: &str) -> Option<String> {
    let hex: String = text
        .trim()
        .chars()
        .filter(|c| !matches!(c, ':' | '-' | '.'))
        .collect();
    if hex.len() != 12 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let separators = text.trim().chars().filter(|c| !c.is_ascii_hexdigit());
    if separators.clone().count() != 0 && separators.count() != 5 {
        return None;
    }
    let lower = hex.to_ascii_lowercase();
    let pairs: Vec<&str> = (0..6).map(|i| &lower[2 * i..2 * i + 2]).collect();
    Some(pairs.join(":"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs_are_read_in_every_usual_spelling() {
        for m in [
            "52:54:00:AB:cd:01",
            "52-54-00-ab-cd-01",
            "525400abcd01",
            " 52:54:00:ab:cd:01 ",
        ] {
            assert_eq!(
                normalize_mac(m).as_deref(),
                Some("52:54:00:ab:cd:01"),
                "{m}"
            );
        }
        for bad in [
            "",
            "52:54:00:ab:cd",
            "52:54:00:ab:cd:0g",
            "5:25:40:0a:bc:d01x",
            "52:54:00:ab:cd01",
        ] {
            assert_eq!(normalize_mac(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_hosts_boot_facts_come_from_its_variables() {
        let vars = serde_json::json!({
            "mac": ["52:54:00:00:00:01", "nonsense"],
            "ansible_host": "db01.example",
            "ip": "10.1.2.3",
            "kernel_args": "quiet  loglevel=3 ${x}",
            "discoverable": "yes",
        });
        let (info, warnings) = HostInfo::from_vars("m/conffs-h.tgz".into(), &vars);
        assert_eq!(info.macs, ["52:54:00:00:00:01"]);
        assert_eq!(info.ip, Some("10.1.2.3".parse().unwrap()));
        assert_eq!(info.kernel_args, ["quiet", "loglevel=3"]);
        assert!(info.discoverable);
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(warnings[0].contains("nonsense"));
        assert!(warnings[1].contains("${x}"));

        let (info, warnings) = HostInfo::from_vars(
            "c".into(),
            &serde_json::json!({"mac": "52-54-00-00-00-02", "ansible_host": "192.0.2.7",
                                "kernel_args": ["a=1", "b"]}),
        );
        assert!(warnings.is_empty());
        assert_eq!(info.macs, ["52:54:00:00:00:02"]);
        assert_eq!(info.ip, Some("192.0.2.7".parse().unwrap()));
        assert_eq!(info.kernel_args, ["a=1", "b"]);
        assert!(!info.discoverable);
    }
}
