//! The export scenarios shared by `export_run` (root in CI) and
//! `rootless_export` (the unprivileged test user): the squashfs of an image,
//! the errors of an image without kernel or dracut, and a real initramfs.

use std::collections::BTreeMap;
use std::path::Path;

use vauban_core::export::{self, InitramfsOptions, ResolvConf, SquashfsOptions};
use vauban_core::sandbox::Program;
use vauban_core::Error;
use vauban_oci::image::HistoryEntry;
use vauban_oci::layer::{repack_tar, PackOptions};
use vauban_oci::store::Store;
use vauban_oci::Reference;

use crate::sandbox_common::{self, options, sh, BbStore};

pub mod cpio;

/// Path -> `MODE UID/GID` (`-rwsr-xr-x 2001/2002`), for every entry.
type Listing = BTreeMap<String, String>;

/// The image's own listing: a host `find` on the bare merged tree of a
/// sandbox over it (owners as the image has them).
fn image_listing(store: &Store, name: &Reference) -> Listing {
    let sandbox = sandbox_common::sandbox(store, name, options());
    let merged = sandbox.merged_dir();
    let find = Program::OnTree(vec![
        "find".into(),
        merged.to_string_lossy().into_owned(),
        "-mindepth".into(),
        "1".into(),
        "-printf".into(),
        "%M %U/%G %P\n".into(),
    ]);
    let (status, out) = sandbox_common::output(&sandbox, &find);
    assert!(status.success(), "{out}");
    parse_listing(&out, "")
}

/// `unsquashfs -lln` of a squashfs.
fn squashfs_listing(img: &Path) -> Listing {
    let out = std::process::Command::new("unsquashfs")
        .args(["-lln", "-d", "R"])
        .arg(img)
        .output()
        .expect("unsquashfs (squashfs-tools) runs");
    assert!(out.status.success(), "{out:?}");
    parse_listing(&String::from_utf8_lossy(&out.stdout), "R/")
}

/// Lines `MODE OWNER ... PATH` (the path last; a symlink's ` -> target` cut).
fn parse_listing(text: &str, prefix: &str) -> Listing {
    let mut out = Listing::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        let (Some(mode), Some(owner)) = (words.next(), words.next()) else {
            continue;
        };
        if mode.len() != 10 {
            continue;
        }
        let rest: Vec<&str> = words.collect();
        let end = rest.iter().position(|w| *w == "->").unwrap_or(rest.len());
        let Some(path) = rest[..end].last() else {
            continue;
        };
        let Some(path) = path.strip_prefix(prefix) else {
            continue;
        };
        if !path.is_empty() {
            out.insert(path.to_string(), format!("{mode} {owner}"));
        }
    }
    out
}

/// The image the squashfs test exports: busybox, a layer with build
/// leftovers, `/toslash`, a user xattr and odd modes, then a sandbox run
/// that gives files other owners and a setuid bit.
fn tidy_image(s: &BbStore) -> Reference {
    let layer = s.with_layer("leftovers", "leftovers", |t| {
        let files = [
            ("var/lib/apt/lists/deb_Packages", "pkgs"),
            ("var/cache/apt/pkgcache.bin", "cache"),
            ("tmp/junk", "junk"),
            ("tmp/.hidden", "junk"),
            ("var/tmp/junk", "junk"),
            ("root/.ansible/tmp/x", "x"),
            ("boot/initrd.img-6.1", "initrd"),
            ("boot/vmlinuz-6.1", "kernel"),
            ("proc/stray", "stray"),
            ("etc/motd", "from the image\n"),
            ("etc/resolv.conf", "nameserver 127.0.0.53\n"),
            ("toslash/etc/motd", "from toslash\n"),
            ("etc/xattr-file", "has an xattr\n"),
        ];
        for (path, body) in files {
            let p = t.join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, body).unwrap();
        }
        rustix::fs::setxattr(
            t.join("etc/xattr-file"),
            "user.vauban",
            b"kept",
            rustix::fs::XattrFlags::empty(),
        )
        .unwrap();
    });
    let sandbox = sandbox_common::sandbox(&s.store, &layer, options());
    let script = "set -e; echo owned > /owned; chown 2001:2002 /owned; chmod 0640 /owned; \
                  mkdir -p /srv/data; chown 3000:3000 /srv/data; chmod 2750 /srv/data; \
                  cp /bin/busybox /suid; chmod 4755 /suid";
    let status = sandbox.run(&sh(script)).unwrap();
    assert!(status.success(), "{status}");
    sandbox_common::commit_as(&s.store, sandbox, "tidy");
    Reference::parse("tidy").unwrap()
}

/// The squashfs of an image holds its tree with its owners, modes, setuid
/// bits and xattrs; `/toslash` lies over `/`; build leftovers are gone;
/// `proc`, `dev`, `sys` are empty dirs; `resolv.conf` is the link.
pub fn squashfs_holds_the_image_as_it_is() {
    let s = BbStore::new();
    let name = tidy_image(&s);
    let image = s.store.image(&name).unwrap();
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("bars/rootfs.img");
    let opts = SquashfsOptions {
        log: out.path().join("mksquashfs.log"),
        processors: Some(1),
        sandbox: options(),
        ..SquashfsOptions::default()
    };
    export::make_rootfs(&s.store, &image, "tidy", &opts, &dest).unwrap();
    let listing = squashfs_listing(&dest);
    let want = image_listing(&s.store, &name);

    // Owners and modes, entry by entry, of everything kept.
    let removed = |p: &str| {
        [
            "var/lib/apt/lists/",
            "var/cache/apt/",
            "tmp/",
            "var/tmp/",
            "root/.ansible",
            "boot/initrd",
            "proc/",
            "toslash",
        ]
        .iter()
        .any(|r| p.starts_with(r))
    };
    for (path, attrs) in want.iter().filter(|(p, _)| !removed(p)) {
        if path == "etc/resolv.conf" {
            continue;
        }
        assert_eq!(listing.get(path), Some(attrs), "{path}");
    }
    for (path, attrs) in [
        ("owned", "-rw-r----- 2001/2002"),
        ("srv/data", "drwxr-s--- 3000/3000"),
        ("suid", "-rwsr-xr-x 0/0"),
        ("etc/resolv.conf", "lrwxrwxrwx 0/0"),
    ] {
        assert_eq!(listing.get(path).map(String::as_str), Some(attrs), "{path}");
    }
    let names: Vec<&String> = listing.keys().collect();
    for gone in [
        "var/lib/apt/lists/deb_Packages",
        "var/cache/apt/pkgcache.bin",
        "tmp/junk",
        "tmp/.hidden",
        "var/tmp/junk",
        "root/.ansible",
        "boot/initrd.img-6.1",
        "proc/stray",
        "toslash",
    ] {
        assert!(!listing.contains_key(gone), "{gone} in {names:?}");
    }
    for kept in ["var/lib/apt/lists", "tmp", "var/tmp", "boot/vmlinuz-6.1"] {
        assert!(listing.contains_key(kept), "{kept} missing: {names:?}");
    }
    for dir in ["proc", "dev", "sys"] {
        assert!(listing[dir].starts_with('d'), "{dir}: {}", listing[dir]);
        let prefix = format!("{dir}/");
        assert!(
            !listing.keys().any(|p| p.starts_with(&prefix)),
            "{dir} is not empty: {names:?}"
        );
    }

    // Contents and xattrs: the squashfs unpacked.
    let unpacked = out.path().join("unpacked");
    let status = std::process::Command::new("unsquashfs")
        .args(["-no-progress", "-d"])
        .arg(&unpacked)
        .arg(&dest)
        .args(["etc/motd", "etc/xattr-file", "etc/resolv.conf"])
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "{status}");
    let motd = std::fs::read_to_string(unpacked.join("etc/motd")).unwrap();
    assert_eq!(motd, "from toslash\n");
    assert_eq!(
        std::fs::read_link(unpacked.join("etc/resolv.conf")).unwrap(),
        Path::new("/run/resolvconf/resolv.conf")
    );
    let mut value = [0u8; 16];
    let n = rustix::fs::getxattr(unpacked.join("etc/xattr-file"), "user.vauban", &mut value)
        .expect("the user xattr is in the squashfs");
    assert_eq!(&value[..n], b"kept");

    // Kept as the image has it when asked.
    let keep = SquashfsOptions {
        resolv_conf: ResolvConf::Keep,
        ..opts
    };
    let kept = out.path().join("kept.img");
    export::make_rootfs(&s.store, &image, "tidy", &keep, &kept).unwrap();
    assert!(squashfs_listing(&kept)["etc/resolv.conf"].starts_with('-'));
    let left: Vec<_> = std::fs::read_dir(s.store.tmp_dir()).unwrap().collect();
    assert!(left.is_empty(), "left in STORE/tmp: {left:?}");
}

/// An image without a kernel, then one with a kernel but no dracut: each
/// error names what to install, and nothing is written.
pub fn initramfs_needs_a_kernel_and_dracut() {
    let s = BbStore::new();
    let out = tempfile::tempdir().unwrap();
    let opts = InitramfsOptions {
        log: out.path().join("dracut.log"),
        sandbox: options(),
        ..InitramfsOptions::default()
    };
    let image = s.store.image(&s.base).unwrap();
    let linux = out.path().join("linux");
    let err = export::make_initramfs(&s.store, &image, "bb", &opts, &linux).unwrap_err();
    assert!(matches!(err, Error::NoKernel { .. }), "{err}");
    assert!(err.to_string().contains("linux-image-amd64"), "{err}");

    let kernel = s.with_layer("kernel", "kernel", |t| {
        std::fs::create_dir_all(t.join("usr/lib/modules/6.1.0-9-amd64")).unwrap();
        std::fs::create_dir_all(t.join("boot")).unwrap();
        std::fs::write(t.join("boot/vmlinuz-6.1.0-9-amd64"), "MZ").unwrap();
        std::os::unix::fs::symlink("usr/lib", t.join("lib")).unwrap();
    });
    let image = s.store.image(&kernel).unwrap();
    let err = export::make_initramfs(&s.store, &image, "kernel", &opts, &linux).unwrap_err();
    assert!(matches!(err, Error::NoDracut { .. }), "{err}");
    assert!(
        err.to_string().contains("dracut-live dracut-network"),
        "{err}"
    );
    assert!(!linux.exists());
}

/// Imports the boot fixture (Debian with a kernel and dracut) as `boot`.
fn import_boot_fixture(store: &Store) -> Reference {
    let tar = std::fs::File::open(sandbox_common::prelude::fixture("debian-boot.tar")).unwrap();
    let mut w = store.blob_writer().unwrap();
    let packed = repack_tar(
        std::io::BufReader::new(tar),
        &PackOptions::default(),
        &mut w,
    )
    .unwrap();
    w.commit(Some(&packed.digest)).unwrap();
    let history = HistoryEntry {
        created_by: "import debian-boot.tar".into(),
        created: vauban_oci::image::created_now(),
        comment: None,
    };
    let name = Reference::parse("boot").unwrap();
    vauban_oci::image::commit(store, None, std::slice::from_ref(&packed), &history, &name).unwrap();
    name
}

/// A real initramfs: dracut in the image, the live modules and the NIC and
/// filesystem drivers in it, the kernel beside it, the defaults linked.
pub fn initramfs_holds_the_live_modules_and_drivers() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let name = import_boot_fixture(&store);
    let image = store.image(&name).unwrap();
    let out = tempfile::tempdir().unwrap();
    let linux = out.path().join("linux");
    let opts = InitramfsOptions {
        log: out.path().join("dracut.log"),
        sandbox: options(),
        ..InitramfsOptions::default()
    };
    let kernel = export::make_initramfs(&store, &image, "boot", &opts, &linux).unwrap();
    let kver = &kernel.version;
    assert!(kver.ends_with("-amd64"), "{kver}");
    let bzimage = std::fs::read(&kernel.kernel).unwrap();
    assert!(bzimage.len() > 1 << 20 && bzimage.starts_with(b"MZ"));
    assert_eq!(
        std::fs::read_link(linux.join("vmlinuz-default")).unwrap(),
        Path::new(&format!("vmlinuz-{kver}"))
    );
    assert_eq!(
        std::fs::read_link(linux.join("initramfs-default.img")).unwrap(),
        Path::new(&format!("initramfs-{kver}.img"))
    );

    let files = cpio::initramfs_files(&std::fs::read(&kernel.initramfs).unwrap());
    let modules = String::from_utf8_lossy(&files["usr/lib/dracut/modules.txt"]).into_owned();
    let included: Vec<&str> = modules.lines().collect();
    for module in [
        "livenet",
        "dmsquash-live",
        "overlayfs",
        "network-legacy",
        "bash",
    ] {
        assert!(included.contains(&module), "{module} not in {included:?}");
    }
    for omitted in ["systemd", "systemd-networkd", "plymouth", "lvm"] {
        assert!(!included.contains(&omitted), "{omitted} in {included:?}");
    }
    for driver in [
        "squashfs",
        "overlay",
        "loop",
        "virtio_net",
        "e1000e",
        "igb",
        "r8169",
    ] {
        let ko = format!("/{driver}.ko");
        assert!(
            files.keys().any(|p| p.contains(&ko)),
            "{driver}.ko not in the initramfs"
        );
    }
    let log = std::fs::read_to_string(&opts.log).unwrap();
    assert!(!log.is_empty());
    drop(store);
    let path = dir.keep();
    vauban_core::sandbox::remove_dir_all(&path, &sandbox_common::helper()).unwrap();
}
