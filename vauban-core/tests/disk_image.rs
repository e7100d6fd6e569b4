//! `export::disk` on real tools (sfdisk, mkfs.fat, mtools, mkfs.ext4,
//! debugfs), as whoever runs the tests: a disk made from a boot tree of
//! made-up files is a GPT disk whose two file systems their own checkers
//! pass and which hold the files byte for byte; the same inputs make the
//! same bytes; an update keeps the build it replaces as the fallback,
//! refuses another host's build and a build with no room before touching
//! anything, and a rollback swaps the two; names a disk holds that vauban
//! did not write are left alone.

use std::path::{Path, PathBuf};
use std::process::Command;

use vauban_core::export::{
    disk_entries, make_disk, rollback_disk, update_disk, DiskFiles, DiskOptions,
};

/// A boot tree of master `m` with hosts web01 and web02: random kernel,
/// initramfs and rootfs of the given MiB, a small conffs each.
fn tree(dir: &Path, rootfs_mib: usize, seed: u8) -> PathBuf {
    let out = dir.join("out");
    std::fs::create_dir_all(out.join("linux")).unwrap();
    std::fs::create_dir_all(out.join("m")).unwrap();
    let noise = |mib: usize, salt: u8| -> Vec<u8> {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15 ^ u64::from(seed) << 8 ^ u64::from(salt);
        (0..mib << 20)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    };
    std::fs::write(out.join("linux/vmlinuz-6.1"), noise(2, 1)).unwrap();
    std::fs::write(out.join("linux/initramfs-6.1.img"), noise(6, 2)).unwrap();
    std::fs::write(out.join("m/rootfs.img"), noise(rootfs_mib, 3)).unwrap();
    for host in ["web01", "web02"] {
        std::fs::write(
            out.join(format!("m/conffs-{host}.tgz")),
            format!("{host} {seed}"),
        )
        .unwrap();
    }
    let info = serde_json::json!({
        "master": "m", "kver": "6.1",
        "kernel": "linux/vmlinuz-6.1", "initramfs": "linux/initramfs-6.1.img",
        "rootfs": "m/rootfs.img", "kernel_args": ["console=ttyS0,115200"],
        "hosts": {
            "web01": {"conffs": "m/conffs-web01.tgz"},
            "web02": {"conffs": "m/conffs-web02.tgz", "kernel_args": ["quiet"]}
        }
    });
    std::fs::write(out.join("m/boot.json"), info.to_string()).unwrap();
    out
}

/// A temp dir with web01's disk made from a first build (`a/out`): the
/// dir, the disk and the build's files.
fn web01_disk() -> (tempfile::TempDir, PathBuf, DiskFiles) {
    let dir = tempfile::tempdir().unwrap();
    let disk = dir.path().join("web01.raw");
    let first = DiskFiles::from_tree(&tree(&dir.path().join("a"), 20, 1), "m", "web01").unwrap();
    make_disk(&first, &opts(), &disk).unwrap();
    (dir, disk, first)
}

/// The data partition as e2fsprogs names it: `DISK?offset=N`.
fn data_dev(disk: &Path) -> String {
    let (start, _, _) = partitions(disk)[1].clone();
    format!("{}?offset={start}", disk.display())
}

fn opts() -> DiskOptions {
    DiskOptions {
        bootloader: bootloader(),
        ..DiskOptions::default()
    }
}

/// systemd-boot's EFI binary (Debian's `systemd-boot-efi`, which
/// `cargo xtask deps` installs).
fn bootloader() -> PathBuf {
    let real = PathBuf::from("/usr/lib/systemd/boot/efi/systemd-bootx64.efi");
    assert!(
        real.is_file(),
        "{} is missing: apt-get install systemd-boot-efi (cargo xtask deps)",
        real.display()
    );
    real
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The partitions' (start, size) in bytes, by `sfdisk --json`.
fn partitions(disk: &Path) -> Vec<(u64, u64, String)> {
    let json: serde_json::Value =
        serde_json::from_str(&run(Command::new("sfdisk").arg("--json").arg(disk))).unwrap();
    json["partitiontable"]["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["start"].as_u64().unwrap() * 512,
                p["size"].as_u64().unwrap() * 512,
                p["name"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

/// A file of the data partition, by debugfs.
fn data_file(disk: &Path, path: &str) -> Vec<u8> {
    let (start, _, _) = partitions(disk)[1].clone();
    let dump = disk.with_extension("dump");
    let _ = std::fs::remove_file(&dump);
    let dev = format!("{}?offset={start}", disk.display());
    run(Command::new("debugfs")
        .arg("-R")
        .arg(format!("dump {path} {}", dump.display()))
        .arg(&dev));
    std::fs::read(&dump).unwrap_or_default()
}

/// A file of the EFI system partition, by mtools.
fn esp_file(disk: &Path, path: &str) -> Vec<u8> {
    let (start, _, _) = partitions(disk)[0].clone();
    let out = Command::new("mtype")
        .env("MTOOLS_SKIP_CHECK", "1")
        .arg("-i")
        .arg(format!("{}@@{start}", disk.display()))
        .arg(format!("::/{path}"))
        .output()
        .unwrap();
    out.stdout
}

/// Both file systems pass their own checkers.
fn check_filesystems(disk: &Path) {
    let parts = partitions(disk);
    let esp = disk.with_extension("esp");
    let (start, size, _) = parts[0].clone();
    let bytes = std::fs::read(disk).unwrap();
    std::fs::write(&esp, &bytes[start as usize..(start + size) as usize]).unwrap();
    run(Command::new("fsck.fat").arg("-n").arg(&esp));
    let (start, _, _) = parts[1].clone();
    run(Command::new("e2fsck")
        .arg("-fn")
        .arg(format!("{}?offset={start}", disk.display())));
}

#[test]
fn a_disk_holds_the_files_of_its_build_and_is_made_the_same_twice() {
    let dir = tempfile::tempdir().unwrap();
    let out = tree(dir.path(), 20, 1);
    let files = DiskFiles::from_tree(&out, "m", "web02").unwrap();
    assert_eq!(files.kernel_args, ["console=ttyS0,115200", "quiet"]);
    let disk = dir.path().join("web02.raw");
    let made = make_disk(&files, &opts(), &disk).unwrap();
    assert!(made.changed);
    assert_eq!(made.entries.len(), 1);
    let build = made.entries[0].build.clone();
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&disk).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "a disk holds the host's conffs");
    // Sparse: the partitions' empty room takes no space.
    assert!(made.allocated < made.size, "{made:?}");

    let parts = partitions(&disk);
    let names: Vec<&str> = parts.iter().map(|p| p.2.as_str()).collect();
    assert_eq!(names, ["vauban-esp", "vauban-data"]);
    assert!(parts
        .iter()
        .all(|(start, size, _)| start % (1 << 20) == 0 && size % (1 << 20) == 0));
    check_filesystems(&disk);
    assert_eq!(
        data_file(&disk, &format!("/vauban/{build}/rootfs.img")),
        std::fs::read(out.join("m/rootfs.img")).unwrap()
    );
    assert_eq!(
        data_file(&disk, &format!("/vauban/{build}/conffs-web02.tgz")),
        b"web02 1"
    );
    assert_eq!(
        esp_file(&disk, &format!("vauban/{build}/vmlinuz")),
        std::fs::read(out.join("linux/vmlinuz-6.1")).unwrap()
    );
    assert_eq!(
        esp_file(&disk, "EFI/BOOT/BOOTX64.EFI"),
        std::fs::read(bootloader()).unwrap()
    );
    let entry = String::from_utf8(esp_file(&disk, "loader/entries/vauban-1.conf")).unwrap();
    assert!(entry.contains("\nsort-key vauban\nversion 1\n"), "{entry}");
    assert!(
        entry.contains(&format!(
            "vauban.conffs=/vauban/{build}/conffs-web02.tgz console=ttyS0,115200 quiet\n"
        )),
        "{entry}"
    );
    let loader = String::from_utf8(esp_file(&disk, "loader/loader.conf")).unwrap();
    assert!(loader.contains("default vauban-*\n"), "{loader}");

    // The same inputs, the same bytes.
    let again = dir.path().join("again.raw");
    make_disk(&files, &opts(), &again).unwrap();
    assert!(std::fs::read(&disk).unwrap() == std::fs::read(&again).unwrap());
    // Another host, another disk identity.
    let web01 = dir.path().join("web01.raw");
    make_disk(
        &DiskFiles::from_tree(&out, "m", "web01").unwrap(),
        &opts(),
        &web01,
    )
    .unwrap();
    let uuids = |d: &Path| run(Command::new("sfdisk").arg("--dump").arg(d));
    let (a, b) = (uuids(&web01), uuids(&disk));
    let data_uuid = |dump: &str| {
        dump.lines()
            .find(|l| l.contains("vauban-data"))
            .and_then(|l| l.split("uuid=").nth(1))
            .map(|u| u[..36].to_owned())
            .unwrap()
    };
    assert_ne!(data_uuid(&a), data_uuid(&b), "{a}\n{b}");
}

#[test]
fn an_update_keeps_the_build_it_replaces_as_the_fallback() {
    let (dir, disk, first) = web01_disk();
    let a = first.build_id().unwrap();

    let second = DiskFiles::from_tree(&tree(&dir.path().join("b"), 20, 2), "m", "web01").unwrap();
    let b = second.build_id().unwrap();
    assert_ne!(a, b);
    let updated = update_disk(&second, &disk).unwrap();
    let builds = |r: &vauban_core::export::DiskReport| -> Vec<(u64, String)> {
        r.entries
            .iter()
            .map(|e| (e.generation, e.build.clone()))
            .collect()
    };
    assert_eq!(builds(&updated), [(2, b.clone()), (1, a.clone())]);
    check_filesystems(&disk);
    // The same build again: nothing written.
    let before = std::fs::read(&disk).unwrap();
    assert!(!update_disk(&second, &disk).unwrap().changed);
    assert!(std::fs::read(&disk).unwrap() == before);

    // A third build: the oldest goes, its files with it.
    let third = DiskFiles::from_tree(&tree(&dir.path().join("c"), 20, 3), "m", "web01").unwrap();
    let c = third.build_id().unwrap();
    let updated = update_disk(&third, &disk).unwrap();
    assert_eq!(builds(&updated), [(3, c.clone()), (2, b.clone())]);
    assert!(data_file(&disk, &format!("/vauban/{a}/rootfs.img")).is_empty());
    assert!(esp_file(&disk, &format!("vauban/{a}/vmlinuz")).is_empty());
    check_filesystems(&disk);

    // A rollback: the fallback's build becomes the default, the default the fallback.
    let rolled = rollback_disk(&disk).unwrap();
    assert_eq!(builds(&rolled), [(4, b.clone()), (3, c.clone())]);
    assert_eq!(builds(&disk_entries(&disk).unwrap()), builds(&rolled));
    // An update to the fallback's build reuses its files.
    let updated = update_disk(&third, &disk).unwrap();
    assert_eq!(builds(&updated), [(5, c), (4, b)]);
    check_filesystems(&disk);
}

#[test]
fn an_update_that_cannot_be_done_touches_nothing() {
    let (dir, disk, first) = web01_disk();
    let second = DiskFiles::from_tree(&tree(&dir.path().join("b"), 20, 2), "m", "web01").unwrap();
    update_disk(&second, &disk).unwrap();
    let before = std::fs::read(&disk).unwrap();

    // Another host's build.
    let web02 = DiskFiles::from_tree(&dir.path().join("b/out"), "m", "web02").unwrap();
    let err = update_disk(&web02, &disk).unwrap_err().to_string();
    assert!(err.contains("boots m/web01, not m/web02"), "{err}");
    // A build too big for the room left once the fallback goes.
    let big = DiskFiles::from_tree(&tree(&dir.path().join("c"), 80, 3), "m", "web01").unwrap();
    let err = update_disk(&big, &disk).unwrap_err().to_string();
    assert!(
        err.contains("data partition has") && err.contains("--size"),
        "{err}"
    );
    assert!(
        std::fs::read(&disk).unwrap() == before,
        "a refused update changed the disk"
    );
    // A disk that is not vauban's.
    let junk = dir.path().join("junk.raw");
    std::fs::write(&junk, vec![0u8; 4 << 20]).unwrap();
    let err = disk_entries(&junk).unwrap_err().to_string();
    assert!(err.contains("is not a vauban disk"), "{err}");
    // Too small a size asked.
    let err = make_disk(
        &first,
        &DiskOptions {
            size: Some(100 << 20),
            ..opts()
        },
        &dir.path().join("small.raw"),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("cannot hold this build"), "{err}");
    assert!(!dir.path().join("small.raw").exists());
    // Room for this build but not a second: made, with a warning.
    let one = make_disk(
        &first,
        &DiskOptions {
            size: Some(330 << 20),
            ..opts()
        },
        &dir.path().join("one.raw"),
    )
    .unwrap();
    assert!(
        one.warnings.iter().any(|w| w.contains("not a second")),
        "{one:?}"
    );
}

#[test]
fn names_on_a_disk_that_vauban_did_not_write_are_left_alone() {
    let (dir, disk, _) = web01_disk();
    // Someone put a directory with a hostile name and a file of theirs
    // under vauban/ of the data partition.
    let dev = data_dev(&disk);
    let mine = dir.path().join("mine");
    std::fs::write(&mine, b"keep me").unwrap();
    run(Command::new("debugfs")
        .arg("-w")
        .arg("-f")
        .arg("-")
        .arg(&dev)
        .stdin({
            let cmds = dir.path().join("cmds");
            std::fs::write(
                &cmds,
                format!(
                    "mkdir \"/vauban/x y\"\nmkdir /vauban/notes\nwrite {} /vauban/notes/mine\n",
                    mine.display()
                ),
            )
            .unwrap();
            std::fs::File::open(cmds).unwrap()
        }));
    let second = DiskFiles::from_tree(&tree(&dir.path().join("b"), 20, 2), "m", "web01").unwrap();
    update_disk(&second, &disk).unwrap();
    let third = DiskFiles::from_tree(&tree(&dir.path().join("c"), 20, 3), "m", "web01").unwrap();
    update_disk(&third, &disk).unwrap();
    assert_eq!(data_file(&disk, "/vauban/notes/mine"), b"keep me");
    let listing = run(Command::new("debugfs")
        .arg("-R")
        .arg("ls -p /vauban")
        .arg(&dev));
    assert!(listing.contains("/x y/"), "{listing}");
    check_filesystems(&disk);
}

/// `mcopy` of `content` to `path` in the EFI system partition.
fn esp_put(disk: &Path, path: &str, content: &str) {
    let (start, _, _) = partitions(disk)[0].clone();
    let src = disk.with_extension("put");
    std::fs::write(&src, content).unwrap();
    run(Command::new("mcopy")
        .env("MTOOLS_SKIP_CHECK", "1")
        .args(["-D", "o", "-i"])
        .arg(format!("{}@@{start}", disk.display()))
        .arg(&src)
        .arg(format!("::/{path}")));
}

#[test]
fn entries_changed_by_hand_are_foreign_and_an_update_removes_them() {
    let (dir, disk, _) = web01_disk();
    let second = DiskFiles::from_tree(&tree(&dir.path().join("b"), 20, 2), "m", "web01").unwrap();
    update_disk(&second, &disk).unwrap();
    // An entry of someone's that systemd-boot would boot first, vauban's
    // fallback edited to sort first, one read-only, and a loader.conf of
    // theirs.
    let evil = "title evil\nsort-key vauban\nversion 999999\nlinux /EFI/evil/vmlinuz\n";
    esp_put(&disk, "loader/entries/vauban-evil.conf", evil);
    let one = String::from_utf8(esp_file(&disk, "loader/entries/vauban-1.conf")).unwrap();
    esp_put(
        &disk,
        "loader/entries/vauban-1.conf",
        &one.replace("version 1", "version 5000"),
    );
    esp_put(&disk, "loader/entries/vauban-07.conf", &one);
    let (start, _, _) = partitions(&disk)[0].clone();
    run(Command::new("mattrib")
        .env("MTOOLS_SKIP_CHECK", "1")
        .args(["+r", "-i"])
        .arg(format!("{}@@{start}", disk.display()))
        .arg("::/loader/entries/vauban-07.conf"));
    esp_put(
        &disk,
        "loader/loader.conf",
        "default vauban-evil*\ntimeout 0\n",
    );

    let listed = disk_entries(&disk).unwrap();
    let mut foreign = listed.foreign.clone();
    foreign.sort();
    assert_eq!(
        foreign,
        ["vauban-07.conf", "vauban-1.conf", "vauban-evil.conf"]
    );
    assert_eq!(listed.entries.len(), 1, "{listed:?}");
    assert_eq!(listed.entries[0].generation, 2);

    let third = DiskFiles::from_tree(&tree(&dir.path().join("c"), 20, 3), "m", "web01").unwrap();
    let updated = update_disk(&third, &disk).unwrap();
    assert!(updated.foreign.is_empty(), "{updated:?}");
    let generations: Vec<u64> = updated.entries.iter().map(|e| e.generation).collect();
    assert_eq!(generations, [3, 2]);
    let loader = String::from_utf8(esp_file(&disk, "loader/loader.conf")).unwrap();
    assert!(loader.contains("default vauban-*\n"), "{loader}");
    assert!(esp_file(&disk, "loader/entries/vauban-evil.conf").is_empty());
    check_filesystems(&disk);
}

#[test]
fn an_update_cut_short_is_repaired_by_the_next() {
    let (dir, disk, first) = web01_disk();
    // What a debugfs killed in the middle of a write leaves: an inode in a
    // directory that the bitmaps do not count (its inode and blocks freed
    // under it).
    let dev = data_dev(&disk);
    let build = first.build_id().unwrap();
    run(Command::new("debugfs")
        .args(["-w", "-R"])
        .arg(format!("freei /vauban/{build}/conffs-web01.tgz"))
        .arg(&dev));
    let broken = Command::new("e2fsck")
        .arg("-fn")
        .arg(&dev)
        .output()
        .unwrap();
    assert!(
        !broken.status.success(),
        "the file system should be inconsistent"
    );
    let second = DiskFiles::from_tree(&tree(&dir.path().join("b"), 20, 2), "m", "web01").unwrap();
    update_disk(&second, &disk).unwrap();
    check_filesystems(&disk);
}
