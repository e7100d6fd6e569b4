//! `rootfs.img`: the squashfs a live boot mounts as its root, made from an
//! image without unpacking a copy of it.
//!
//! In a sandbox over the image, a host `sh` on the bare merged tree
//! ([`Program::OnTree`]: nothing mounted in it) fills a small dir of ours,
//! `EXTRAS`, mounts a second, read-only overlay `lowerdir=EXTRAS:MERGED` and
//! runs `mksquashfs` on that view. `EXTRAS` holds:
//! - a copy of `/toslash/*` (the original's workaround for the files Docker
//!   owns), which so lies over `/`; `/toslash` itself is left out. (It cannot
//!   be a lower dir of its own: overlayfs refuses a layer inside another.)
//! - `etc/resolv.conf` as a link (to `/run/resolvconf/resolv.conf` by default);
//! - the mount points `proc`, `dev`, `sys`, which a live root needs (else
//!   dracut finds no root); they, `etc` and the root take the owners, modes
//!   and times of the image's.
//!
//! Build leftovers ([`REMOVED`]) are left out by mksquashfs (`-wildcards -e`).
//!
//! mksquashfs reads the tree as root of the sandbox's user namespace, so it
//! sees the image's owners, modes, setuid bits and xattrs (file capabilities
//! read back as v2), and nothing of the image's links is ever followed: a
//! hostile image cannot make it read or write the host. Everything is one
//! pass over the image's layer dirs, as fast as mksquashfs of an unpacked copy.

use std::path::{Path, PathBuf};

use vauban_oci::store::Store;
use vauban_oci::Image;

use super::atomic::Staged;
use super::runlog;
use crate::error::{Error, IoContext, Result};
use crate::sandbox::{Program, Sandbox, SandboxOptions};

/// Paths left out of the squashfs (mksquashfs wildcards, relative to `/`).
pub(crate) const REMOVED: [&str; 14] = [
    "toslash",
    "var/lib/apt/lists/*",
    "var/cache/apt/*",
    "tmp/*",
    "tmp/.*",
    "var/tmp/*",
    "var/tmp/.*",
    "root/.ansible",
    "boot/initrd*",
    "proc/*",
    "sys/*",
    "dev/*",
    "dev/.*",
    "run/*",
];

/// Our dir in the sandbox dir, beside `merged`: `extras` and `view`.
const OUR_DIR: &str = "export-rootfs";

/// Where `/etc/resolv.conf` points by default (Debian's `resolvconf`).
pub(crate) const RESOLV_CONF_LINK: &str = "/run/resolvconf/resolv.conf";

/// The squashfs compressor.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SquashCompression {
    /// zstd (level 15, mksquashfs's default): fast to make and to read.
    #[default]
    Zstd,
    /// xz: ~10 % smaller, several times slower to make.
    Xz,
}

impl SquashCompression {
    /// mksquashfs's name for it.
    pub fn name(self) -> &'static str {
        match self {
            SquashCompression::Zstd => "zstd",
            SquashCompression::Xz => "xz",
        }
    }
}

/// What `/etc/resolv.conf` is in the squashfs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResolvConf {
    /// A symlink to this path.
    Link(String),
    /// As the image has it.
    Keep,
}

impl Default for ResolvConf {
    fn default() -> Self {
        ResolvConf::Link(RESOLV_CONF_LINK.into())
    }
}

/// How to make `rootfs.img`.
#[derive(Debug, Clone, Default)]
pub struct SquashfsOptions {
    /// The compressor.
    pub compression: SquashCompression,
    /// `/etc/resolv.conf` in the squashfs.
    pub resolv_conf: ResolvConf,
    /// mksquashfs threads; `None`: every CPU.
    pub processors: Option<usize>,
    /// Where mksquashfs's output is written.
    pub log: PathBuf,
    /// The sandbox it runs in.
    pub sandbox: SandboxOptions,
}

/// The mksquashfs options after `SOURCE DEST` (`-e` and its list last, as
/// mksquashfs wants).
pub(crate) fn mksquashfs_args(opts: &SquashfsOptions) -> Vec<String> {
    let mut args: Vec<String> = [
        "-noappend",
        "-no-exports",
        "-always-use-fragments",
        "-no-progress",
        "-comp",
        opts.compression.name(),
    ]
    .map(String::from)
    .to_vec();
    if let Some(n) = opts.processors {
        args.extend(["-processors".into(), n.to_string()]);
    }
    args.push("-wildcards".into());
    args.push("-e".into());
    args.extend(REMOVED.map(String::from));
    args
}

/// The host `sh` script run on the bare tree: `$1` the sandbox dir, `$2` the
/// merged tree and `$3` our dir (holding `extras` and `view`), both relative
/// to `$1` (short paths with no `:` or `,` for the overlay options), `$4` the `resolv.conf` link target or empty; then
/// mksquashfs's `DEST` and options.
///
/// Nothing of the image is followed: `cp -a` copies `toslash`'s links as
/// links, and writes only into `extras`, whose dirs are ours (it cannot
/// replace them with links of the image); the link is made after the copy,
/// in our `extras/etc`.
pub(crate) const SCRIPT: &str = r#"set -eu
cd "$1"; m=$2; x=$3; link=$4; shift 4
if [ -d "$m/toslash" ] && [ ! -L "$m/toslash" ]; then
  cp -a "$m/toslash/." "$x/extras/"
fi
if [ -n "$link" ]; then
  rm -f "$x/extras/etc/resolv.conf"
  ln -s "$link" "$x/extras/etc/resolv.conf"
fi
for d in . etc proc dev sys; do
  if [ -d "$x/extras/$d" ] && [ -d "$m/$d" ] && [ ! -L "$m/$d" ]; then
    chown --reference="$m/$d" "$x/extras/$d"
    chmod --reference="$m/$d" "$x/extras/$d"
    touch --reference="$m/$d" "$x/extras/$d"
  fi
done
mount -t overlay -o "ro,userxattr,lowerdir=$x/extras:$m" vauban-rootfs "$x/view"
exec mksquashfs "$x/view" "$@"
"#;

/// Makes the squashfs of `image` (named `name` in messages) at `dest`.
pub fn make_rootfs(
    store: &Store,
    image: &Image,
    name: &str,
    opts: &SquashfsOptions,
    dest: &Path,
) -> Result<PathBuf> {
    let sandbox = Sandbox::prepare(store, image, opts.sandbox.clone()).map_err(
        Error::export_sandbox(format!("prepare a sandbox over {name}")),
    )?;
    // Our dir lives in the sandbox dir, which the sandbox removes (inside the
    // user namespace: the script gives its files the image's owners), also
    // when something fails.
    let merged = sandbox.merged_dir();
    let sandbox_dir = merged.parent().unwrap_or(Path::new("/")).to_owned();
    let ours = sandbox_dir.join(OUR_DIR);
    make_extras(&ours.join("extras"), &opts.resolv_conf)?;
    let view = ours.join("view");
    std::fs::create_dir(&view).at("mkdir", &view)?;

    let staged = Staged::new(dest)?;
    let mut argv: Vec<String> = vec![
        "/bin/sh".into(),
        "-c".into(),
        SCRIPT.into(),
        "sh".into(),
        sandbox_dir.to_string_lossy().into_owned(),
        "merged".into(),
        OUR_DIR.into(),
        match &opts.resolv_conf {
            ResolvConf::Link(target) => target.clone(),
            ResolvConf::Keep => String::new(),
        },
        staged.path().to_string_lossy().into_owned(),
    ];
    argv.extend(mksquashfs_args(opts));
    let started = std::time::Instant::now();
    let status = sandbox
        .run_with(&Program::OnTree(argv), runlog::streams(&opts.log)?)
        .map_err(Error::export_sandbox(format!("run mksquashfs on {name}")))?;
    runlog::check("mksquashfs", status, &opts.log)?;
    tracing::info!(elapsed = ?started.elapsed(), "rootfs.img made");
    sandbox
        .discard()
        .map_err(Error::export_sandbox("remove mksquashfs's sandbox"))?;
    staged.publish()
}

/// The dir laid over the image, before the script fills it: the mount
/// points, and `etc` for the `resolv.conf` link.
fn make_extras(extras: &Path, resolv_conf: &ResolvConf) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mut dirs = vec![("proc", 0o555), ("sys", 0o555), ("dev", 0o755)];
    if let ResolvConf::Link(_) = resolv_conf {
        dirs.push(("etc", 0o755));
    }
    for (dir, mode) in dirs {
        let p = extras.join(dir);
        std::fs::create_dir_all(&p).at("mkdir", &p)?;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).at("chmod", &p)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mksquashfs_gets_the_compressor_and_the_exclusions_last() {
        let opts = SquashfsOptions {
            processors: Some(2),
            ..SquashfsOptions::default()
        };
        let args = mksquashfs_args(&opts);
        assert_eq!(
            args[..11].join(" "),
            "-noappend -no-exports -always-use-fragments -no-progress -comp zstd \
             -processors 2 -wildcards -e toslash"
        );
        assert_eq!(args.last().map(String::as_str), Some("run/*"));
        for removed in [
            "var/lib/apt/lists/*",
            "root/.ansible",
            "boot/initrd*",
            "proc/*",
        ] {
            assert!(args.iter().any(|a| a == removed), "{removed}");
        }
        let xz = SquashfsOptions {
            compression: SquashCompression::Xz,
            ..SquashfsOptions::default()
        };
        let args = mksquashfs_args(&xz);
        assert!(args.windows(2).any(|w| w == ["-comp", "xz"]));
        assert!(!args.iter().any(|a| a == "-processors"));
    }

    #[test]
    fn extras_hold_the_mount_points_and_etc_for_the_link() {
        let dir = tempfile::tempdir().unwrap();
        let extras = dir.path().join("x");
        make_extras(&extras, &ResolvConf::default()).unwrap();
        for d in ["proc", "sys", "dev", "etc"] {
            assert!(extras.join(d).is_dir(), "{d}");
            assert_eq!(std::fs::read_dir(extras.join(d)).unwrap().count(), 0);
        }
        let kept = dir.path().join("k");
        make_extras(&kept, &ResolvConf::Keep).unwrap();
        assert!(!kept.join("etc").exists());
    }
}
