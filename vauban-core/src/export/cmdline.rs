//! What a host boots with: its kernel command line and its iPXE script, both
//! pointing at the boot tree served over HTTP from `base`
//! (see [`tree`](super::tree) for the layout).
//!
//! The command line is dracut's live boot: `root=live:URL` fetches the
//! squashfs into RAM, `live.updates=URL` unpacks the host's conffs over it,
//! `rd.live.overlay.overlayfs=1` makes the writable layer an overlayfs (without
//! it the root is never mounted), `rd.neednet=1 ip=dhcp` brings the network
//! up first.

use crate::error::{Error, Result};

/// What one host boots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostBoot<'a> {
    /// The URL the boot tree is served at (`http://boot.example/vauban`),
    /// without a trailing `/`.
    pub base: &'a str,
    /// The master whose rootfs the host boots.
    pub master: &'a str,
    /// The host.
    pub host: &'a str,
    /// The kernel version of the boot tree's `linux/`.
    pub kver: &'a str,
    /// Arguments appended to the command line (`console=ttyS0,115200`).
    pub extra_args: &'a [String],
}

impl HostBoot<'_> {
    /// Checks that master and host names can be file names of the tree.
    pub fn validate(&self) -> Result<()> {
        check_name("master", self.master)?;
        check_name("host", self.host)
    }

    fn base(&self) -> &str {
        self.base.trim_end_matches('/')
    }

    /// The kernel command line.
    pub fn cmdline(&self) -> String {
        let base = self.base();
        let (m, h) = (self.master, self.host);
        live_cmdline(
            &format!("{base}/{m}/rootfs.img"),
            &format!("{base}/{m}/conffs-{h}.tgz"),
            self.extra_args,
        )
    }

    /// The iPXE script: kernel (with `initrd=`, which EFI kernels need to
    /// find the initrd), initrd, boot.
    pub fn ipxe_script(&self) -> String {
        let base = self.base();
        let (kernel, initrd) = super::dracut::file_names(self.kver);
        format!(
            "#!ipxe\n\
             # vauban: host {host} boots master {master}\n\
             kernel {base}/linux/{kernel} initrd={initrd} {cmdline}\n\
             initrd {base}/linux/{initrd}\n\
             boot\n",
            host = self.host,
            master = self.master,
            cmdline = self.cmdline(),
        )
    }
}

/// The kernel command line of a live boot over the network: the squashfs
/// at `rootfs_url`, the conffs at `conffs_url` unpacked over it, then
/// `extra_args`.
pub fn live_cmdline(rootfs_url: &str, conffs_url: &str, extra_args: &[String]) -> String {
    let mut args = vec![
        format!("root=live:{rootfs_url}"),
        format!("live.updates={conffs_url}"),
        "rd.live.image".into(),
        "rd.live.overlay.overlayfs=1".into(),
        "rd.neednet=1".into(),
        "ip=dhcp".into(),
    ];
    args.extend(extra_args.iter().cloned());
    args.join(" ")
}

/// Whether `name` is usable as a master or host name in a file name and a
/// URL path segment: ASCII letters, digits, `.`, `_`, `-`, not starting
/// with `.`.
pub fn is_plain_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// [`is_plain_name`], or an error naming `what` is at fault.
pub(crate) fn check_name(what: &'static str, name: &str) -> Result<()> {
    if is_plain_name(name) {
        Ok(())
    } else {
        Err(Error::BadName {
            what,
            name: name.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn web01(extra: &[String]) -> HostBoot<'_> {
        HostBoot {
            base: "http://10.0.2.100/",
            master: "bars",
            host: "web01",
            kver: "6.1.0-28-amd64",
            extra_args: extra,
        }
    }

    #[test]
    fn the_command_line_boots_the_live_root_with_the_hosts_conffs() {
        let extra = vec!["console=ttyS0,115200".to_string()];
        assert_eq!(
            web01(&extra).cmdline(),
            "root=live:http://10.0.2.100/bars/rootfs.img \
             live.updates=http://10.0.2.100/bars/conffs-web01.tgz rd.live.image \
             rd.live.overlay.overlayfs=1 rd.neednet=1 ip=dhcp console=ttyS0,115200"
        );
    }

    #[test]
    fn the_ipxe_script_loads_the_versioned_kernel_and_initrd() {
        let script = web01(&[]).ipxe_script();
        let lines: Vec<&str> = script.lines().collect();
        assert_eq!(lines[0], "#!ipxe");
        assert_eq!(
            lines[2],
            format!(
                "kernel http://10.0.2.100/linux/vmlinuz-6.1.0-28-amd64 \
                 initrd=initramfs-6.1.0-28-amd64.img {}",
                web01(&[]).cmdline()
            )
        );
        assert_eq!(
            lines[3],
            "initrd http://10.0.2.100/linux/initramfs-6.1.0-28-amd64.img"
        );
        assert_eq!(lines[4], "boot");
        assert_eq!(lines.len(), 5);
    }

    #[test]
    fn names_that_would_escape_the_tree_are_refused() {
        for bad in ["", ".", "..", "a/b", "web 01", ".hidden", "x\n"] {
            assert!(check_name("host", bad).is_err(), "{bad:?}");
        }
        for good in ["web01", "db-1.dc2", "a_b"] {
            check_name("host", good).unwrap();
        }
        let mut boot = web01(&[]);
        boot.master = "../etc";
        let err = boot.validate().unwrap_err().to_string();
        assert!(err.contains("master") && err.contains("../etc"), "{err}");
    }
}
