//! `cargo xtask fixtures`: the test fixtures, built once and cached under
//! `target/fixtures/`, each keyed by its recipe: `NAME.recipe` beside the file
//! holds the sha256 of the recipe text, and a different recipe rebuilds it.
//!
//! - `debian.tar`: `mmdebstrap --variant=minbase --include=python3 bookworm`.
//! - `debian-boot.tar`: the same with a kernel and dracut
//!   ([`BOOT_PACKAGES`]), for the initramfs and boot tests.
//! - `busybox.tar`: a tiny rootfs: `/bin/busybox` (from `busybox-static`) and
//!   applet links, `/etc/passwd`, `/etc/group`, `/tmp`, `/root`; all 0:0.
//!
//! Files are written to a temp name in the same directory and renamed, so a
//! reader never sees half a fixture.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};

use crate::util;

/// The fixtures directory (what tests read as `$VAUBAN_FIXTURES` by default).
pub fn dir() -> PathBuf {
    std::env::var_os("VAUBAN_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| util::target_dir().join("fixtures"))
}

/// Runs the task.
pub fn task(_args: &[String]) -> Result<()> {
    let built = ensure()?;
    for path in built {
        eprintln!("fixture: {}", path.display());
    }
    Ok(())
}

/// Makes every fixture up to date and returns their paths.
pub fn ensure() -> Result<Vec<PathBuf>> {
    let dir = dir();
    fs::create_dir_all(&dir).with_context(|| format!("mkdir {}", dir.display()))?;
    // The two mmdebstrap runs wait mostly on the mirror and dpkg: side by side.
    let (debian, boot) = std::thread::scope(|s| {
        let boot = s.spawn(|| debian_boot(&dir));
        let debian = debian(&dir);
        let boot = boot
            .join()
            .unwrap_or_else(|_| Err(anyhow::anyhow!("the boot fixture's thread panicked")));
        (debian, boot)
    });
    Ok(vec![debian?, boot?, busybox(&dir)?])
}

/// What the boot fixture adds to minbase: a kernel, dracut and what dracut's
/// live modules need (without `dbus` dracut's postinst fails; without
/// `procps` dracut drops `network-legacy`, without `curl` `livenet`).
pub const BOOT_PACKAGES: &str = "linux-image-amd64,dracut,dracut-live,dracut-network,curl,\
isc-dhcp-client,procps,systemd-sysv,dbus,python3,openssh-client";

/// The Debian base with a kernel and dracut, cached by its command line.
fn debian_boot(dir: &Path) -> Result<PathBuf> {
    let target = dir.join("debian-boot.tar");
    let recipe = format!("{}\n", debian_boot_args("OUT").join(" "));
    cached(&target, &recipe, |tmp| {
        let args = debian_boot_args(&tmp.to_string_lossy());
        util::run(Command::new(&args[0]).args(&args[1..]))
    })
}

/// The mmdebstrap command line writing the boot fixture to `out`.
pub fn debian_boot_args(out: &str) -> Vec<String> {
    [
        "mmdebstrap",
        "--variant=minbase",
        &format!("--include={BOOT_PACKAGES}"),
        "--format=tar",
        "bookworm",
        out,
    ]
    .map(String::from)
    .to_vec()
}

/// The Debian base: built by mmdebstrap, cached by its command line.
fn debian(dir: &Path) -> Result<PathBuf> {
    let target = dir.join("debian.tar");
    let recipe = format!("{}\n", debian_args("OUT").join(" "));
    cached(&target, &recipe, |tmp| {
        let args = debian_args(&tmp.to_string_lossy());
        util::run(Command::new(&args[0]).args(&args[1..]))
    })
}

/// The mmdebstrap command line writing the Debian fixture to `out`.
pub fn debian_args(out: &str) -> Vec<String> {
    [
        "mmdebstrap",
        "--variant=minbase",
        "--include=python3",
        "--format=tar",
        "bookworm",
        out,
    ]
    .map(String::from)
    .to_vec()
}

/// The busybox applets linked in `/bin`.
pub const APPLETS: &[&str] = &[
    "sh", "cat", "cp", "chmod", "chown", "echo", "false", "grep", "hostname", "id", "ln", "ls",
    "mkdir", "mv", "rm", "sed", "sleep", "stat", "touch", "true",
];

const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n";
const GROUP: &str = "root:x:0:\n";
/// The mtime of every entry: fixed, so the tarball is byte-for-byte reproducible.
const MTIME: u64 = 1_700_000_000;
const BUSYBOX: &str = "/bin/busybox";

/// The busybox rootfs: built with the `tar` crate (no root needed), cached by
/// the busybox binary's hash and the layout.
fn busybox(dir: &Path) -> Result<PathBuf> {
    let target = dir.join("busybox.tar");
    let binary = Path::new(BUSYBOX);
    let hash = util::sha256_file(binary).with_context(|| {
        format!("{BUSYBOX} is missing: install busybox-static (cargo xtask deps)")
    })?;
    let recipe = format!(
        "busybox {hash}\napplets {}\npasswd {PASSWD:?}\ngroup {GROUP:?}\nmtime {MTIME}\nv1\n",
        APPLETS.join(",")
    );
    cached(&target, &recipe, |tmp| {
        let bytes = fs::read(binary).with_context(|| format!("read {BUSYBOX}"))?;
        let file = fs::File::create(tmp).with_context(|| format!("create {}", tmp.display()))?;
        write_busybox_tar(&bytes, file)
    })
}

/// Writes the busybox rootfs tarball around the given binary.
pub fn write_busybox_tar(busybox: &[u8], out: impl Write) -> Result<()> {
    let mut tar = tar::Builder::new(out);
    let dir = |tar: &mut tar::Builder<_>, name: &str, mode: u32| {
        let mut h = header(tar::EntryType::Directory, mode, 0);
        tar.append_data(&mut h, name, std::io::empty())
    };
    dir(&mut tar, "./", 0o755)?;
    dir(&mut tar, "bin/", 0o755)?;
    let mut h = header(tar::EntryType::Regular, 0o755, busybox.len() as u64);
    tar.append_data(&mut h, "bin/busybox", busybox)?;
    for applet in APPLETS {
        let mut h = header(tar::EntryType::Symlink, 0o777, 0);
        tar.append_link(&mut h, format!("bin/{applet}"), "busybox")?;
    }
    dir(&mut tar, "etc/", 0o755)?;
    for (name, body) in [("etc/passwd", PASSWD), ("etc/group", GROUP)] {
        let mut h = header(tar::EntryType::Regular, 0o644, body.len() as u64);
        tar.append_data(&mut h, name, body.as_bytes())?;
    }
    dir(&mut tar, "root/", 0o700)?;
    dir(&mut tar, "tmp/", 0o1777)?;
    tar.into_inner()?.flush()?;
    Ok(())
}

fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(MTIME);
    h
}

/// Returns `target` when its recipe file matches `recipe`; else builds it with
/// `build(tmp)` into a temp name beside it, renames it, then records the recipe.
fn cached(target: &Path, recipe: &str, build: impl FnOnce(&Path) -> Result<()>) -> Result<PathBuf> {
    let recipe_path = recipe_path(target);
    let key = util::sha256_hex(recipe.as_bytes());
    let recorded = fs::read_to_string(&recipe_path).unwrap_or_default();
    if target.exists() && recorded.lines().next() == Some(key.as_str()) {
        eprintln!("fixtures: {} is up to date", target.display());
        return Ok(target.to_path_buf());
    }
    eprintln!("fixtures: building {}", target.display());
    let tmp = temp_name(target);
    let _ = fs::remove_file(&tmp);
    let started = std::time::Instant::now();
    if let Err(e) = build(&tmp) {
        let _ = fs::remove_file(&tmp);
        return Err(e.context(format!("building fixture {}", target.display())));
    }
    util::chmod(&tmp, 0o644)?;
    // Drop the old key first: a crash before the new key is written leaves a
    // fixture with no key, which the next run rebuilds.
    let _ = fs::remove_file(&recipe_path);
    fs::rename(&tmp, target)
        .with_context(|| format!("rename {} to {}", tmp.display(), target.display()))?;
    fs::write(&recipe_path, format!("{key}\n{recipe}"))
        .with_context(|| format!("write {}", recipe_path.display()))?;
    eprintln!(
        "fixtures: built {} in {:.1}s",
        target.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(target.to_path_buf())
}

/// `NAME.recipe` beside the fixture.
pub fn recipe_path(target: &Path) -> PathBuf {
    let mut name = target.file_name().unwrap_or_default().to_os_string();
    name.push(".recipe");
    target.with_file_name(name)
}

/// A temp name in the same directory, still ending in `.tar` (mmdebstrap
/// infers things from the extension).
fn temp_name(target: &Path) -> PathBuf {
    let stem = target.file_stem().unwrap_or_default().to_string_lossy();
    target.with_file_name(format!(".{stem}.partial-{}.tar", std::process::id()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debian_recipe_is_the_documented_command() {
        assert_eq!(
            debian_args("x.tar").join(" "),
            "mmdebstrap --variant=minbase --include=python3 --format=tar bookworm x.tar"
        );
    }

    #[test]
    fn the_boot_fixture_adds_a_kernel_and_dracut() {
        assert_eq!(
            debian_boot_args("x.tar").join(" "),
            "mmdebstrap --variant=minbase --include=linux-image-amd64,dracut,dracut-live,\
             dracut-network,curl,isc-dhcp-client,procps,systemd-sysv,dbus,python3,openssh-client --format=tar \
             bookworm x.tar"
        );
    }

    #[test]
    fn busybox_tar_is_reproducible_and_owned_by_root() {
        let (mut a, mut b) = (Vec::new(), Vec::new());
        write_busybox_tar(b"fake busybox", &mut a).unwrap();
        write_busybox_tar(b"fake busybox", &mut b).unwrap();
        assert_eq!(a, b);
        let mut archive = tar::Archive::new(&a[..]);
        let mut names = Vec::new();
        for entry in archive.entries().unwrap() {
            let entry = entry.unwrap();
            let h = entry.header();
            assert_eq!((h.uid().unwrap(), h.gid().unwrap()), (0, 0));
            names.push(entry.path().unwrap().to_string_lossy().into_owned());
        }
        for want in [
            "bin/busybox",
            "bin/sh",
            "etc/passwd",
            "etc/group",
            "tmp",
            "root",
        ] {
            assert!(
                names.iter().any(|n| n.trim_end_matches('/') == want),
                "{want} not in {names:?}"
            );
        }
    }

    #[test]
    fn recipe_and_temp_names_sit_beside_the_fixture() {
        let t = Path::new("/f/debian.tar");
        assert_eq!(recipe_path(t), Path::new("/f/debian.tar.recipe"));
        let tmp = temp_name(t);
        assert_eq!(tmp.parent(), Some(Path::new("/f")));
        assert!(tmp.to_string_lossy().ends_with(".tar"));
    }
}
