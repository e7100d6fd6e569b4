//! Which kernel an image boots: the newest version that has both its modules
//! (`/lib/modules/VERSION`) and its image (`/boot/vmlinuz-VERSION`), and
//! whether the image has dracut. The names are listed by a host `sh` on the
//! bare merged tree ([`Program::OnTree`]), which follows no link of the image
//! (`lib`, `boot` or a kernel that is a symlink is not taken).

use std::cmp::Ordering;
use std::io::{Read, Seek};

use crate::error::{Error, IoContext, Result};
use crate::sandbox::{Io, Program, RunIo, Sandbox};

/// The package that brings a kernel (Debian, amd64).
pub(crate) const KERNEL_PACKAGES: &str = "linux-image-amd64";

/// The packages a rootfs needs to make a live-boot initramfs with dracut
/// (without `dbus` dracut's postinst fails; without `procps` dracut drops
/// `network-legacy`; without `curl` it drops `url-lib`, hence `livenet`).
pub(crate) const DRACUT_PACKAGES: &str =
    "dracut dracut-live dracut-network curl isc-dhcp-client procps systemd-sysv dbus";

/// What an image holds of kernels, dracut and curl.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KernelListing {
    /// Directory names in `/lib/modules`.
    pub modules: Vec<String>,
    /// Versions of the `/boot/vmlinuz-VERSION` files.
    pub kernels: Vec<String>,
    /// Whether `dracut` is installed.
    pub dracut: bool,
    /// Whether `curl` is installed (dracut's `livenet` fetches with it).
    pub curl: bool,
}

impl KernelListing {
    /// The newest version with both modules and a kernel; `None` if none.
    pub fn newest(&self) -> Option<&str> {
        self.kernels
            .iter()
            .filter(|k| self.modules.contains(k))
            .max_by(|a, b| compare_versions(a, b))
            .map(String::as_str)
    }

    /// [`KernelListing::newest`], or the error naming what to install.
    pub fn require(&self, image: &str) -> Result<String> {
        self.newest()
            .map(str::to_owned)
            .ok_or_else(|| Error::NoKernel {
                image: image.to_owned(),
                modules: self.modules.clone(),
                kernels: self.kernels.clone(),
                packages: KERNEL_PACKAGES,
            })
    }

    /// Parses the output of `LISTING_SCRIPT`. A name with a control
    /// character is no kernel version (it would reach file names, command
    /// lines and messages): left out.
    pub fn parse(text: &str) -> Self {
        let mut out = KernelListing::default();
        for line in text.lines().filter(|l| crate::printable::is_plain(l)) {
            match line.split_once(' ') {
                Some(("M", name)) => out.modules.push(name.to_owned()),
                Some(("K", name)) => out.kernels.push(name.to_owned()),
                _ if line == "D" => out.dracut = true,
                _ if line == "C" => out.curl = true,
                _ => {}
            }
        }
        out
    }
}

/// Orders kernel versions as people read them: runs of digits by value, the
/// rest by bytes (`6.1.0-10-amd64` after `6.1.0-9-amd64`).
pub(crate) fn compare_versions(a: &str, b: &str) -> Ordering {
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    loop {
        match (a.first(), b.first()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) if x.is_ascii_digit() && y.is_ascii_digit() => {
                let (na, ra) = split_digits(a);
                let (nb, rb) = split_digits(b);
                let na = na.trim_start_matches('0');
                let nb = nb.trim_start_matches('0');
                let by_value = na.len().cmp(&nb.len()).then_with(|| na.cmp(nb));
                if by_value != Ordering::Equal {
                    return by_value;
                }
                (a, b) = (ra, rb);
            }
            (Some(x), Some(y)) => {
                if x != y {
                    return x.cmp(y);
                }
                (a, b) = (&a[1..], &b[1..]);
            }
        }
    }
}

fn split_digits(s: &[u8]) -> (&str, &[u8]) {
    let n = s.iter().take_while(|c| c.is_ascii_digit()).count();
    // Only ASCII digits: valid UTF-8.
    (std::str::from_utf8(&s[..n]).unwrap_or("0"), &s[n..])
}

/// The host `sh` script that lists an image's kernels (`$1`: the merged
/// tree). `lib` may be the usrmerge link `usr/lib`; every other link is left
/// alone.
pub(crate) const LISTING_SCRIPT: &str = r#"cd "$1" || exit 1
if [ -d usr/lib/modules ] && [ ! -L usr ] && [ ! -L usr/lib ] && [ ! -L usr/lib/modules ]; then
  m=usr/lib/modules
elif [ -d lib/modules ] && [ ! -L lib ] && [ ! -L lib/modules ]; then
  m=lib/modules
else
  m=
fi
if [ -n "$m" ]; then
  for d in "$m"/*; do
    [ -d "$d" ] && [ ! -L "$d" ] && echo "M ${d#"$m"/}"
  done
fi
if [ -d boot ] && [ ! -L boot ]; then
  for f in boot/vmlinuz-*; do
    [ -f "$f" ] && [ ! -L "$f" ] && echo "K ${f#boot/vmlinuz-}"
  done
fi
for p in usr/bin/dracut usr/sbin/dracut; do
  if [ -f "$p" ] && [ ! -L usr ] && [ ! -L "${p%/*}" ]; then echo D; break; fi
done
for p in usr/bin/curl usr/local/bin/curl; do
  if [ -f "$p" ] && [ ! -L usr ] && [ ! -L "${p%/*}" ]; then echo C; break; fi
done
exit 0
"#;

/// Lists the kernels and dracut of the sandbox's image.
pub(crate) fn list(sandbox: &Sandbox<'_>) -> Result<KernelListing> {
    let merged = sandbox.merged_dir();
    let mut out = tempfile::tempfile().at("create a temp file in", "TMPDIR")?;
    let dup = || out.try_clone().at("dup", "a temp file");
    let io = RunIo {
        stdin: Io::Null,
        stdout: Io::File(dup()?),
        stderr: Io::File(dup()?),
    };
    let program = Program::OnTree(vec![
        "/bin/sh".into(),
        "-c".into(),
        LISTING_SCRIPT.into(),
        "sh".into(),
        merged.to_string_lossy().into_owned(),
    ]);
    let status = sandbox
        .run_with(&program, io)
        .map_err(Error::export_sandbox("list the kernels of the image"))?;
    let mut text = String::new();
    out.rewind()
        .and_then(|_| out.read_to_string(&mut text))
        .at("read", "the kernel listing")?;
    if !status.success() {
        return Err(Error::ScriptFailed {
            what: "listing the kernels of the image",
            status: status.to_string(),
            output: crate::printable::escape(&text).into_owned(),
        });
    }
    Ok(KernelListing::parse(&text))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listing(modules: &[&str], kernels: &[&str]) -> KernelListing {
        KernelListing {
            modules: modules.iter().map(|s| s.to_string()).collect(),
            kernels: kernels.iter().map(|s| s.to_string()).collect(),
            dracut: true,
            curl: true,
        }
    }

    #[test]
    fn the_newest_kernel_with_its_modules_wins() {
        let l = listing(
            &["6.1.0-9-amd64", "6.1.0-10-amd64", "6.12.0-1-amd64"],
            &["6.1.0-9-amd64", "6.1.0-10-amd64", "6.2.0-1-amd64"],
        );
        // 6.12 has no kernel, 6.2 no modules.
        assert_eq!(l.newest(), Some("6.1.0-10-amd64"));
    }

    #[test]
    fn versions_compare_by_number() {
        assert_eq!(compare_versions("6.1.0-9", "6.1.0-10"), Ordering::Less);
        assert_eq!(compare_versions("6.10", "6.9"), Ordering::Greater);
        assert_eq!(compare_versions("6.1.0", "6.1.0"), Ordering::Equal);
        assert_eq!(compare_versions("6.1", "6.1.0"), Ordering::Less);
        assert_eq!(compare_versions("6.01", "6.1"), Ordering::Equal);
    }

    #[test]
    fn no_kernel_names_the_package_to_install() {
        let err = listing(&["6.1.0-9-amd64"], &[])
            .require("base:1")
            .unwrap_err()
            .to_string();
        assert!(err.contains("base:1"), "{err}");
        assert!(err.contains("linux-image-amd64"), "{err}");
    }

    #[test]
    fn the_listing_is_parsed_line_by_line() {
        let l = KernelListing::parse(
            "M 6.1.0-9-amd64\nK 6.1.0-9-amd64\nD\nC\njunk\nM 6\x1b]0;x\x07\nK 6\x1b]0;x\x07\n",
        );
        assert_eq!(l, listing(&["6.1.0-9-amd64"], &["6.1.0-9-amd64"]));
        assert!(!KernelListing::parse("").dracut);
    }

    #[test]
    fn the_listing_script_reads_a_real_tree() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for d in ["usr/lib/modules/6.1.0-9-amd64", "usr/bin", "boot"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        std::os::unix::fs::symlink("usr/lib", root.join("lib")).unwrap();
        std::fs::write(root.join("boot/vmlinuz-6.1.0-9-amd64"), "k").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", root.join("boot/vmlinuz-9.9")).unwrap();
        std::fs::write(root.join("usr/bin/dracut"), "").unwrap();
        std::fs::write(root.join("usr/bin/curl"), "").unwrap();
        let out = std::process::Command::new("/bin/sh")
            .args(["-c", LISTING_SCRIPT, "sh"])
            .arg(root)
            .output()
            .unwrap();
        assert!(out.status.success());
        let l = KernelListing::parse(&String::from_utf8(out.stdout).unwrap());
        assert_eq!(l, listing(&["6.1.0-9-amd64"], &["6.1.0-9-amd64"]));
    }
}
