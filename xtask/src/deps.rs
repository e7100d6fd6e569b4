//! `cargo xtask deps`: the Debian packages the tests, the demo and the bench
//! need. As root, the missing ones are installed (`apt-get update` once, then
//! one `apt-get install`); otherwise the exact command is printed and the task
//! fails.

use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::util;

/// Every package we need, with why (shown when something is missing).
pub const PACKAGES: &[(&str, &str)] = &[
    ("mmdebstrap", "builds the Debian fixture"),
    ("uidmap", "newuidmap/newgidmap for the rootless sandbox"),
    (
        "skopeo",
        "interop tests, containers-image-proxy, bench peer",
    ),
    ("umoci", "interop tests, bench peer"),
    ("squashfs-tools", "mksquashfs for rootfs images"),
    ("busybox-static", "the busybox fixture"),
    ("docker-registry", "a real registry on 127.0.0.1 in tests"),
    (
        "ansible",
        "ansible-playbook with the community.general.chroot connection",
    ),
    ("buildah", "bench peer of vauban run"),
    (
        "nginx",
        "bench peer of vauban serve's boot route (sendfile)",
    ),
    (
        "curl",
        "the boot route bench row's clients; the boot test fetches the boot routes as a stranger would",
    ),
    ("apache2-utils", "htpasswd for the registry auth tests"),
    ("git", "Ansible repositories"),
    ("ca-certificates", "HTTPS to Debian's mirror"),
    ("xz-utils", "xz tarballs"),
    ("zstd", "zstd tarballs"),
    ("libcap2-bin", "setcap/getcap in capability tests"),
    ("time", "/usr/bin/time measures peak RSS in the bench"),
    ("util-linux", "setpriv/unshare for the rootless tests"),
    ("passwd", "useradd/usermod for the rootless test user"),
    (
        "gnupg",
        "gpg decrypts the original's vault/HOST.tar.gpg (vauban keys import --gpg)",
    ),
    (
        "openssh-client",
        "ssh-keygen checks the host keys and makes the original's key files in tests",
    ),
    (
        "qemu-system-x86",
        "qemu-system-x86_64 boots the boot tree (cargo xtask boot-test)",
    ),
    (
        "ipxe-qemu",
        "the iPXE ROM of QEMU's network card: the boot test PXE-boots from vauban serve",
    ),
    (
        "ovmf",
        "UEFI firmware for QEMU: the boot test boots a disk image made by vauban disk",
    ),
    (
        "systemd-boot-efi",
        "systemd-boot's EFI binary, the boot loader vauban disk puts on a disk",
    ),
    ("fdisk", "sfdisk writes a disk image's partition table"),
    ("dosfstools", "mkfs.fat makes a disk image's EFI system partition"),
    ("mtools", "mcopy and friends write the EFI system partition without a mount"),
    (
        "e2fsprogs",
        "mkfs.ext4 and debugfs make and write a disk image's data partition",
    ),
    (
        "chromium",
        "the page of vauban serve, tested in a real browser",
    ),
    (
        "python3-venv",
        "virtualenvs for the PyPI test tools: schemathesis (fuzzes vauban serve's API), kubernetes-validate and helm-python-sdk (vauban-kube's manifests and chart)",
    ),
    (
        "slurm-wlm",
        "a real one-node Slurm (slurmctld, slurmd, sbatch) for the executor tests and bench",
    ),
    (
        "munge",
        "Slurm's authentication daemon, for the test cluster",
    ),
    (
        "chromium-driver",
        "chromedriver drives Chromium in the page's test",
    ),
];

/// Runs the task: installs what is missing (root) or says how (not root).
pub fn task(_args: &[String]) -> Result<()> {
    ensure()
}

/// Makes sure every package of [`PACKAGES`] is installed.
pub fn ensure() -> Result<()> {
    let missing = missing()?;
    if missing.is_empty() {
        eprintln!("deps: all {} packages installed", PACKAGES.len());
        return Ok(());
    }
    eprintln!("deps: missing {}", missing.join(" "));
    let commands = apt_commands(&missing);
    if !util::is_root() {
        let lines: Vec<String> = commands.iter().map(util::display).collect();
        bail!(
            "missing Debian packages: {}\nrun as root:\n  {}",
            missing.join(" "),
            lines.join(" && ")
        );
    }
    for mut cmd in commands {
        util::run(&mut cmd)?;
    }
    let still = missing_from(&missing)?;
    if !still.is_empty() {
        bail!("apt-get did not install: {}", still.join(" "));
    }
    Ok(())
}

/// The packages of [`PACKAGES`] that are not installed.
pub fn missing() -> Result<Vec<String>> {
    let names: Vec<String> = PACKAGES.iter().map(|(p, _)| p.to_string()).collect();
    missing_from(&names)
}

fn missing_from(names: &[String]) -> Result<Vec<String>> {
    let mut missing = Vec::new();
    for name in names {
        if !installed(name)? {
            missing.push(name.clone());
        }
    }
    Ok(missing)
}

/// Whether dpkg says `install ok installed` for a package.
fn installed(package: &str) -> Result<bool> {
    let out = Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", package])
        .output()
        .context("cannot run dpkg-query: vauban's tasks expect a Debian or Ubuntu machine")?;
    // dpkg-query exits 1 for an unknown package: that is "missing", not an error.
    Ok(out.status.success() && is_installed_status(&String::from_utf8_lossy(&out.stdout)))
}

/// Reads dpkg's `${Status}` field (`want ok state`).
pub fn is_installed_status(status: &str) -> bool {
    status.trim() == "install ok installed"
}

/// The apt-get commands that install `missing`: one update, then one install.
pub fn apt_commands(missing: &[String]) -> Vec<Command> {
    let mut update = Command::new("apt-get");
    update
        .arg("update")
        .env("DEBIAN_FRONTEND", "noninteractive");
    let mut install = Command::new("apt-get");
    install
        .args(["install", "-y", "--no-install-recommends"])
        .args(missing)
        .env("DEBIAN_FRONTEND", "noninteractive");
    vec![update, install]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_field_is_read_exactly() {
        assert!(is_installed_status("install ok installed"));
        assert!(!is_installed_status("deinstall ok config-files"));
        assert!(!is_installed_status("install ok half-configured"));
        assert!(!is_installed_status(""));
    }

    #[test]
    fn apt_commands_update_once_then_install_without_recommends() {
        let cmds = apt_commands(&["umoci".into(), "skopeo".into()]);
        let lines: Vec<String> = cmds.iter().map(util::display).collect();
        assert_eq!(
            lines,
            [
                "apt-get update",
                "apt-get install -y --no-install-recommends umoci skopeo"
            ]
        );
        for cmd in &cmds {
            let env: Vec<_> = cmd.get_envs().collect();
            assert_eq!(
                env,
                [(
                    std::ffi::OsStr::new("DEBIAN_FRONTEND"),
                    Some(std::ffi::OsStr::new("noninteractive"))
                )]
            );
        }
    }

    #[test]
    fn the_brief_packages_are_listed() {
        for p in [
            "mmdebstrap",
            "uidmap",
            "skopeo",
            "umoci",
            "squashfs-tools",
            "busybox-static",
            "docker-registry",
            "ansible",
            "buildah",
            "nginx",
            "curl",
            "ipxe-qemu",
            "apache2-utils",
            "git",
            "ca-certificates",
            "xz-utils",
            "zstd",
            "libcap2-bin",
            "time",
            "qemu-system-x86",
            "gnupg",
            "openssh-client",
            "chromium",
            "chromium-driver",
            "ovmf",
            "systemd-boot-efi",
            "mtools",
        ] {
            assert!(PACKAGES.iter().any(|(name, _)| *name == p), "{p} missing");
        }
    }
}
