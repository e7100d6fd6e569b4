//! A host's disk image: the boot files of a build on a raw GPT disk that
//! boots live with no network, and its update to a newer build with the
//! older one kept as the fallback entry.
//!
//! The layout (`layout`): an EFI system partition (`esp`) holding
//! systemd-boot, its `loader.conf`, one boot entry per generation
//! (`entry`) and each kept build's kernel and initramfs; a data partition
//! (`data`) holding each kept build's `rootfs.img` and the host's conffs.
//! An entry boots with dracut's `dmsquash-live` from the data partition
//! (`root=live:PARTUUID=`, copied to RAM, tmpfs overlay) and the
//! `vauban-local` dracut module applies the host's conffs from the same
//! directory. Everything is made by programs on the file itself (`tools`):
//! `sfdisk`, `mkfs.fat` and mtools, `mkfs.ext4` and `debugfs`, so a disk is
//! made and updated rootless, and the same inputs make the same bytes.
//!
//! A build's directory is named by its build id, a digest of its kernel,
//! initramfs, rootfs, conffs and command line: updating to the build a disk
//! already boots changes nothing.
//!
//! An update (`update_disk`) keeps the current build and the new one:
//! 1. entries other than the current's and the files no entry names are
//!    removed (the old fallback, or what an update cut short left);
//! 2. the new build's files are written and flushed to the disk;
//! 3. its entry is written under a temp name and renamed to
//!    `vauban-G.conf`, G one above the newest: from then on it is the
//!    default and the entry below it, the build that ran, the fallback.
//!
//! A crash before step 3 leaves the current entry the default; after it,
//! the new one. Before step 1 the data partition is checked, and repaired
//! when a crash left it half-written, and `vauban-*` files of the entries'
//! directory that are not exactly what vauban writes are removed, with a
//! `loader.conf` that is not vauban's: what boots is what the entries say.
//! The programs run in a session of their own and are given the disk's
//! lock (`tools::DiskLock`). `rollback_disk` makes the fallback's build the newest
//! entry again, the same meaning as `vauban rollback` on the boot service.

mod data;
mod entry;
mod esp;
mod layout;
mod tools;

pub use entry::Entry;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Instant;

use sha2::{Digest, Sha256};

use self::data::Data;
use self::entry::{BUILDS_DIR, ENTRIES_DIR, INITRAMFS, KERNEL, ROOTFS};
use self::esp::Esp;
use self::layout::{align_up, Layout, ALIGN};
use self::tools::DiskLock;
use super::boot_info::{BootInfo, BOOT_INFO_FILE};
use crate::error::{Error, IoContext, Result};

/// What a disk boots: one build's files for one host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskFiles {
    /// The master.
    pub master: String,
    /// The host.
    pub host: String,
    /// The kernel.
    pub kernel: PathBuf,
    /// The initramfs (with dracut's `dmsquash-live` and vauban's
    /// `vauban-local` modules: vauban's own initramfs has both).
    pub initramfs: PathBuf,
    /// The squashfs root.
    pub rootfs: PathBuf,
    /// The host's conffs.
    pub conffs: PathBuf,
    /// Kernel arguments after the live boot's (the config's, the master's,
    /// the host's).
    pub kernel_args: Vec<String>,
}

impl DiskFiles {
    /// `host`'s files of `master` in the boot tree at `tree` (its
    /// `MASTER/boot.json` names them).
    pub fn from_tree(tree: &Path, master: &str, host: &str) -> Result<DiskFiles> {
        super::cmdline::check_name("master", master)?;
        super::cmdline::check_name("host", host)?;
        let info_path = tree.join(master).join(BOOT_INFO_FILE);
        let text = std::fs::read_to_string(&info_path).map_err(|e| {
            let e = match e.kind() {
                std::io::ErrorKind::NotFound => std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!(
                        "no boot files of {master} here: build them first \
                         (vauban build --name {master} --stage initramfs), or name the tree with --out"
                    ),
                ),
                _ => e,
            };
            Error::io("read", &info_path, e)
        })?;
        let info: BootInfo = serde_json::from_str(&text)
            .map_err(|e| Error::io("parse", &info_path, std::io::Error::other(e)))?;
        let h = info.hosts.get(host).ok_or_else(|| {
            let known: Vec<&str> = info.hosts.keys().map(String::as_str).collect();
            Error::io(
                "find the host in",
                &info_path,
                std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!(
                        "no conffs of {host} in this build of {master}; its hosts: {}",
                        known.join(", ")
                    ),
                ),
            )
        })?;
        let file = |rel: &str| -> Result<PathBuf> {
            let ok = !rel.is_empty()
                && !rel.starts_with('/')
                && rel
                    .split('/')
                    .all(|c| !c.is_empty() && c != "." && c != "..");
            if !ok {
                return Err(Error::io(
                    "read",
                    &info_path,
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidInput,
                        format!("{rel:?} is not a path in the boot tree"),
                    ),
                ));
            }
            let path = tree.join(rel);
            // The file the build wrote, not one a link leads to.
            let meta = std::fs::symlink_metadata(&path).at("stat", &path)?;
            if !meta.is_file() {
                return Err(Error::io(
                    "read",
                    &path,
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidInput,
                        "not a regular file of the boot tree (a link?)",
                    ),
                ));
            }
            Ok(path)
        };
        let mut kernel_args = info.kernel_args.clone();
        kernel_args.extend(h.kernel_args.iter().cloned());
        // Each becomes a word of a boot entry's `options` line.
        if let Some(bad) = kernel_args.iter().find(|a| !super::is_kernel_arg(a)) {
            return Err(Error::io(
                "read",
                &info_path,
                std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!("kernel argument {bad:?}: printable ASCII without spaces or `$` only"),
                ),
            ));
        }
        Ok(DiskFiles {
            master: master.to_owned(),
            host: host.to_owned(),
            kernel: file(&info.kernel)?,
            initramfs: file(&info.initramfs)?,
            rootfs: file(&info.rootfs)?,
            conffs: file(&h.conffs)?,
            kernel_args,
        })
    }

    /// The build id: the first 16 hex digits of a sha256 over the four
    /// files' sha256 and the kernel arguments.
    pub fn build_id(&self) -> Result<String> {
        let mut all = Sha256::new();
        for path in [&self.kernel, &self.initramfs, &self.rootfs, &self.conffs] {
            all.update(super::sums::sha256_file(path)?.as_bytes());
            all.update(b"\n");
        }
        all.update(self.kernel_args.join(" ").as_bytes());
        Ok(hex::encode(all.finalize())[..16].to_owned())
    }

    /// Bytes of a build in the EFI system partition.
    fn esp_bytes(&self) -> Result<u64> {
        Ok(len(&self.kernel)? + len(&self.initramfs)?)
    }

    /// Bytes of a build in the data partition.
    fn data_bytes(&self) -> Result<u64> {
        Ok(len(&self.rootfs)? + len(&self.conffs)?)
    }
}

/// How a disk is made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskOptions {
    /// The disk's size; by default room for two builds of this size with a
    /// quarter to grow.
    pub size: Option<u64>,
    /// systemd-boot's EFI binary (Debian's `systemd-boot-efi`).
    pub bootloader: PathBuf,
    /// Seconds the boot menu waits (0: hidden unless a key is held).
    pub menu_timeout: u32,
}

impl Default for DiskOptions {
    fn default() -> Self {
        DiskOptions {
            size: None,
            bootloader: esp::SYSTEMD_BOOT.name.into(),
            menu_timeout: 5,
        }
    }
}

/// What a disk holds after a change.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DiskReport {
    /// The disk.
    pub disk: PathBuf,
    /// Whether anything was written (an update to the build it boots
    /// changes nothing).
    pub changed: bool,
    /// Its entries, newest (the default) first.
    pub entries: Vec<Entry>,
    /// Files of `loader/entries/` named `vauban-*` that are not entries as
    /// vauban writes them (changed by hand, or left by an update cut
    /// short): an update or a rollback removes them.
    pub foreign: Vec<String>,
    /// What the user should know (a disk with room for one build only).
    pub warnings: Vec<String>,
    /// Its size in bytes.
    pub size: u64,
    /// The bytes it takes on its file system (a disk image is sparse).
    pub allocated: u64,
    /// How long it took.
    pub seconds: f64,
}

/// The EFI system partition's least size: FAT32 wants 65525 clusters.
const ESP_MIN: u64 = 260 << 20;
/// What ext4 takes of the data partition besides the files (a generous
/// bound: no journal, an inode per MiB).
const DATA_SLACK: u64 = 32 << 20;

/// Room for two builds of `bytes`, a quarter more to grow.
fn two_builds(bytes: u64) -> u64 {
    bytes * 2 + bytes / 2
}

/// Makes `dest`, a disk that boots `files`: a temp file beside it, renamed
/// once whole and flushed. The disk holds the host's conffs (its private
/// keys): it is made mode 0600.
pub fn make_disk(files: &DiskFiles, opts: &DiskOptions, dest: &Path) -> Result<DiskReport> {
    let started = Instant::now();
    if !opts.bootloader.is_file() {
        return Err(Error::ToolMissing {
            tool: opts.bootloader.display().to_string(),
            hint: esp::SYSTEMD_BOOT.hint,
        });
    }
    let build = files.build_id()?;
    let esp_size = align_up(two_builds(files.esp_bytes()?)).max(ESP_MIN);
    let one_build = align_up(files.data_bytes()? + DATA_SLACK);
    let data_size = match opts.size {
        None => align_up(two_builds(files.data_bytes()?) + DATA_SLACK),
        Some(size) => {
            let data = size.saturating_sub(esp_size + 2 * ALIGN) / ALIGN * ALIGN;
            if data < one_build {
                return Err(Error::DiskTooSmall {
                    size,
                    needed: esp_size + 2 * ALIGN + one_build,
                });
            }
            data
        }
    };
    let layout = Layout::new(&files.master, &files.host, esp_size, data_size);
    let staged = super::atomic::Staged::new(dest)?;
    let path = staged.path().to_owned();
    File::options()
        .write(true)
        .open(&path)
        .and_then(|f| f.set_len(layout.total))
        .at("size", &path)?;
    let lock = DiskLock::take(&path, true)?;
    layout.write(&path, &lock)?;
    let esp = Esp::new(&path, layout.esp.start, layout.esp.size, lock.clone())?;
    esp.format(&layout.esp.uuid[..8])?;
    for dir in ["EFI", "EFI/BOOT", "loader", ENTRIES_DIR, BUILDS_DIR] {
        esp.mkdir(dir)?;
    }
    esp.put(&opts.bootloader, "EFI/BOOT/BOOTX64.EFI")?;
    esp.put_bytes(
        entry::loader_conf(opts.menu_timeout).as_bytes(),
        "loader/loader.conf",
    )?;
    let data = Data::new(&path, layout.data.start, layout.data.size, lock)?;
    let seed = |role: &str| layout::uuid_from(&format!("{} {role}", layout.disk_uuid));
    data.format(&layout.data.uuid, &seed("hash"))?;
    write_build(&esp, &data, files, &build)?;
    let first = Entry {
        generation: 1,
        options: entry::cmdline(&layout.data.uuid, &build, &files.host, &files.kernel_args),
        build,
        master: files.master.clone(),
        host: files.host.clone(),
    };
    commit_entry(&esp, &path, &first)?;
    let published = staged.publish_with_mode(0o600)?;
    let mut made = report(&published, true, (vec![first], Vec::new()), started)?;
    let room_for_two = align_up(files.data_bytes()? * 2 + DATA_SLACK);
    if data_size < room_for_two {
        made.warnings.push(format!(
            "its data partition ({} MiB) holds this build but not a second beside it: \
             an --update of a build this size will fail; --size {} MiB or more keeps room",
            data_size >> 20,
            (esp_size + 2 * ALIGN + room_for_two) >> 20
        ));
    }
    Ok(made)
}

/// Updates `disk` to boot `files`, the build it booted kept as the
/// fallback entry (see the module doc). A disk of another host, or one
/// without room for the new build beside the current one, is refused
/// before anything is written.
pub fn update_disk(files: &DiskFiles, disk: &Path) -> Result<DiskReport> {
    let started = Instant::now();
    let (layout, esp, data) = open_disk(disk, true)?;
    data.repair()?;
    let (mut entries, foreign) = read_entries(&esp)?;
    let current = entries
        .first()
        .cloned()
        .ok_or_else(|| not_vauban(disk, "no vauban boot entry in its EFI system partition"))?;
    if (current.master.as_str(), current.host.as_str())
        != (files.master.as_str(), files.host.as_str())
    {
        return Err(Error::DiskOfAnotherHost {
            disk: disk.to_owned(),
            on_disk: format!("{}/{}", current.master, current.host),
            asked: format!("{}/{}", files.master, files.host),
        });
    }
    let build = files.build_id()?;
    let loader_ours = loader_is_ours(&esp)?;
    if current.build == build && foreign.is_empty() && loader_ours {
        return report(disk, false, (entries, foreign), started);
    }
    if current.build == build {
        tidy_loader(&esp, &foreign, loader_ours)?;
        sync(disk)?;
        return report(disk, true, read_entries(&esp)?, started);
    }
    let present = entries.iter().any(|e| e.build == build);
    // 1. Room: only the current build (and the new one, if an entry names
    // it) stays. Checked before anything is removed.
    let keep = |b: &str| b == current.build || (present && b == build);
    if !present {
        let (esp_freed, data_freed) = bytes_of_builds(&esp, &data, &keep)?;
        let slack = 1 << 20;
        let (esp_free, data_free) = (esp.free()? + esp_freed, data.free()? + data_freed);
        check_room(
            disk,
            "EFI system partition",
            esp_free,
            files.esp_bytes()? + slack,
        )?;
        check_room(
            disk,
            "data partition",
            data_free,
            files.data_bytes()? + slack,
        )?;
    }
    tidy_loader(&esp, &foreign, loader_ours)?;
    for e in entries.iter().filter(|e| !keep(&e.build)) {
        esp.remove(&format!("{ENTRIES_DIR}/{}", e.file_name()))?;
    }
    entries.retain(|e| keep(&e.build));
    remove_unnamed_builds(&esp, &data, &entries)?;
    sync(disk)?;
    // 2. The new build's files.
    if !present {
        write_build(&esp, &data, files, &build)?;
        sync(disk)?;
    }
    // 3. The switch.
    let newest = Entry {
        generation: current.generation + 1,
        options: entry::cmdline(&layout.data.uuid, &build, &files.host, &files.kernel_args),
        build: build.clone(),
        master: files.master.clone(),
        host: files.host.clone(),
    };
    commit_entry(&esp, disk, &newest)?;
    // An older entry of the same build is the new one's duplicate.
    for e in entries.iter().filter(|e| e.build == build) {
        esp.remove(&format!("{ENTRIES_DIR}/{}", e.file_name()))?;
    }
    sync(disk)?;
    report(disk, true, read_entries(&esp)?, started)
}

/// Makes the fallback entry's build the default again: a new newest entry
/// for it, the build that was the default now the fallback.
pub fn rollback_disk(disk: &Path) -> Result<DiskReport> {
    let started = Instant::now();
    let (_layout, esp, data) = open_disk(disk, true)?;
    let (entries, foreign) = read_entries(&esp)?;
    tidy_loader(&esp, &foreign, loader_is_ours(&esp)?)?;
    let (current, fallback) = match entries.as_slice() {
        [current, fallback, ..] if current.build != fallback.build => (current, fallback),
        _ => {
            return Err(Error::NoFallback {
                disk: disk.to_owned(),
            })
        }
    };
    let newest = Entry {
        generation: current.generation + 1,
        ..fallback.clone()
    };
    commit_entry(&esp, disk, &newest)?;
    // Two entries stay: the new default and the build it replaces.
    let kept = [newest.clone(), current.clone()];
    for e in &entries[1..] {
        if e.generation != current.generation {
            esp.remove(&format!("{ENTRIES_DIR}/{}", e.file_name()))?;
        }
    }
    remove_unnamed_builds(&esp, &data, &kept)?;
    sync(disk)?;
    report(disk, true, read_entries(&esp)?, started)
}

/// The entries of `disk`, newest (the default) first.
pub fn disk_entries(disk: &Path) -> Result<DiskReport> {
    let started = Instant::now();
    let (_layout, esp, _data) = open_disk(disk, false)?;
    let entries = read_entries(&esp)?;
    report(disk, false, entries, started)
}

/// `disk`, locked against other vauban processes (shared to read it,
/// exclusive to change it; see [`DiskLock`]), its layout read.
fn open_disk(disk: &Path, write: bool) -> Result<(Layout, Esp, Data)> {
    let lock = DiskLock::take(disk, write)?;
    check_unmounted(disk)?;
    let layout = Layout::read(disk, &lock)?;
    let esp = Esp::new(disk, layout.esp.start, layout.esp.size, lock.clone())?;
    let data = Data::new(disk, layout.data.start, layout.data.size, lock)?;
    Ok((layout, esp, data))
}

/// A disk in use is refused: a block device with a mounted partition, an
/// image attached to a loop device. (Mounts of other mount namespaces and
/// device-mapper stacks are not seen.)
fn check_unmounted(disk: &Path) -> Result<()> {
    use std::os::unix::fs::FileTypeExt;
    let canonical = std::fs::canonicalize(disk).at("resolve", disk)?;
    let in_use = |what: String| {
        Err(Error::io(
            "change",
            disk,
            std::io::Error::other(format!("{what}: it is in use")),
        ))
    };
    let is_block = std::fs::metadata(&canonical).is_ok_and(|m| m.file_type().is_block_device());
    if is_block {
        let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
        for line in mounts.lines() {
            let source = line.split_whitespace().next().unwrap_or("");
            let source = std::fs::canonicalize(source).unwrap_or_else(|_| source.into());
            if is_part_of(&source, &canonical) {
                return in_use(format!("{} is mounted", source.display()));
            }
        }
        return Ok(());
    }
    for dev in std::fs::read_dir("/sys/block")
        .into_iter()
        .flatten()
        .flatten()
    {
        let backing = dev.path().join("loop/backing_file");
        let Ok(file) = std::fs::read_to_string(&backing) else {
            continue;
        };
        if Path::new(file.trim_end()) == canonical {
            let name = dev.file_name().to_string_lossy().into_owned();
            return in_use(format!("it is attached to /dev/{name}"));
        }
    }
    Ok(())
}

/// Whether `source` is the block device `disk` or one of its partitions
/// (`/dev/sda1` of `/dev/sda`, `/dev/nvme0n1p1` of `/dev/nvme0n1`).
fn is_part_of(source: &Path, disk: &Path) -> bool {
    let (source, disk) = (source.to_string_lossy(), disk.to_string_lossy());
    let Some(rest) = source.strip_prefix(disk.as_ref()) else {
        return false;
    };
    let rest = rest.strip_prefix('p').unwrap_or(rest);
    rest.bytes().all(|b| b.is_ascii_digit())
}

/// The largest entry file read: vauban's are under 1 KiB.
const ENTRY_MAX: u64 = 64 << 10;

/// vauban's entries in the EFI system partition, newest first, and the
/// names of the other `vauban-*` files there.
fn read_entries(esp: &Esp) -> Result<(Vec<Entry>, Vec<String>)> {
    let mut entries = Vec::new();
    let mut foreign = Vec::new();
    for name in esp.list(ENTRIES_DIR)? {
        if !name.starts_with("vauban-") {
            continue;
        }
        let path = format!("{ENTRIES_DIR}/{name}");
        let parsed = match entry::parse_file_name(&name) {
            Some(_) if esp.dir_bytes(&path)? <= ENTRY_MAX => Entry::parse(&name, &esp.read(&path)?),
            _ => None,
        };
        match parsed {
            Some(e) => entries.push(e),
            None => foreign.push(name),
        }
    }
    entry::newest_first(&mut entries);
    Ok((entries, foreign))
}

/// Whether `loader/loader.conf` is one vauban writes.
fn loader_is_ours(esp: &Esp) -> Result<bool> {
    Ok(loader_timeout(esp)?.is_some())
}

/// The menu timeout of a `loader.conf` vauban wrote, if it is one.
fn loader_timeout(esp: &Esp) -> Result<Option<u32>> {
    const LOADER: &str = "loader/loader.conf";
    if esp.dir_bytes(LOADER).unwrap_or(u64::MAX) > ENTRY_MAX {
        return Ok(None);
    }
    let text = esp.read(LOADER)?;
    let timeout = text
        .lines()
        .find_map(|l| l.strip_prefix("timeout "))
        .and_then(|t| t.trim().parse().ok());
    Ok(timeout.filter(|t| entry::loader_conf(*t) == text))
}

/// Removes the `foreign` entry files and rewrites `loader.conf` unless
/// `loader_ours` (it is vauban's): what boots is then what `--list` says.
fn tidy_loader(esp: &Esp, foreign: &[String], loader_ours: bool) -> Result<()> {
    for name in foreign {
        tracing::warn!(entry = %name, "removing a boot entry vauban did not write");
        esp.remove_forced(&format!("{ENTRIES_DIR}/{name}"))?;
    }
    if !loader_ours {
        tracing::warn!("rewriting loader/loader.conf, which vauban did not write");
        let conf = entry::loader_conf(DiskOptions::default().menu_timeout);
        esp.put_bytes(conf.as_bytes(), "loader/loader.conf")?;
    }
    Ok(())
}

/// Removes the build directories of both partitions that no entry names.
fn remove_unnamed_builds(esp: &Esp, data: &Data, entries: &[Entry]) -> Result<()> {
    // Directories named like a build only: vauban leaves anything else alone.
    let named = |b: &str| entries.iter().any(|e| e.build == b);
    for dir in esp.list(BUILDS_DIR)? {
        let id = dir.to_ascii_lowercase();
        if entry::is_build_id(&id) && !named(&id) {
            esp.remove_tree(&format!("{BUILDS_DIR}/{dir}"))?;
        }
    }
    for (dir, _) in data.list(&format!("/{BUILDS_DIR}"))? {
        if entry::is_build_id(&dir) && !named(&dir) {
            data.remove_dir(&format!("/{BUILDS_DIR}/{dir}"))?;
        }
    }
    Ok(())
}

/// The bytes of the build directories `keep` refuses, in each partition.
fn bytes_of_builds(esp: &Esp, data: &Data, keep: &dyn Fn(&str) -> bool) -> Result<(u64, u64)> {
    let mut esp_bytes = 0;
    for dir in esp.list(BUILDS_DIR)? {
        let id = dir.to_ascii_lowercase();
        if entry::is_build_id(&id) && !keep(&id) {
            esp_bytes += esp.dir_bytes(&format!("{BUILDS_DIR}/{dir}"))?;
        }
    }
    let mut data_bytes = 0;
    for (dir, _) in data.list(&format!("/{BUILDS_DIR}"))? {
        if entry::is_build_id(&dir) && !keep(&dir) {
            let files = data.list(&format!("/{BUILDS_DIR}/{dir}"))?;
            data_bytes += files.iter().map(|(_, size)| size).sum::<u64>();
        }
    }
    Ok((esp_bytes, data_bytes))
}

/// Writes a build's files into both partitions.
fn write_build(esp: &Esp, data: &Data, files: &DiskFiles, build: &str) -> Result<()> {
    let dir = format!("{BUILDS_DIR}/{build}");
    esp.mkdir(&dir)?;
    esp.put(&files.kernel, &format!("{dir}/{KERNEL}"))?;
    esp.put(&files.initramfs, &format!("{dir}/{INITRAMFS}"))?;
    data.put(
        &format!("/{dir}"),
        &[
            (files.rootfs.as_path(), ROOTFS.to_owned()),
            (files.conffs.as_path(), entry::conffs_name(&files.host)),
        ],
    )
}

/// Writes `e` under a temp name, then renames it to its entry name: the
/// commit point of a change.
fn commit_entry(esp: &Esp, disk: &Path, e: &Entry) -> Result<()> {
    let tmp = format!("{ENTRIES_DIR}/vauban-{}.new", e.generation);
    esp.put_bytes(e.render().as_bytes(), &tmp)?;
    sync(disk)?;
    esp.rename(&tmp, &format!("{ENTRIES_DIR}/{}", e.file_name()))?;
    sync(disk)
}

/// Flushes what was written to `disk` (a file or a block device).
fn sync(disk: &Path) -> Result<()> {
    File::open(disk)
        .and_then(|f| f.sync_all())
        .at("fsync", disk)
}

/// Fails with [`Error::DiskFull`] when `free` bytes cannot hold `needed`.
fn check_room(disk: &Path, partition: &'static str, free: u64, needed: u64) -> Result<()> {
    if free < needed {
        return Err(Error::DiskFull {
            disk: disk.to_owned(),
            partition,
            needed,
            free,
        });
    }
    Ok(())
}

fn report(
    disk: &Path,
    changed: bool,
    (entries, foreign): (Vec<Entry>, Vec<String>),
    started: Instant,
) -> Result<DiskReport> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(disk).at("stat", disk)?;
    Ok(DiskReport {
        disk: disk.to_owned(),
        changed,
        entries,
        foreign,
        warnings: Vec::new(),
        size: meta.len(),
        allocated: meta.blocks() * 512,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// [`Error::NotAVaubanDisk`].
pub(crate) fn not_vauban(disk: &Path, reason: impl Into<String>) -> Error {
    Error::NotAVaubanDisk {
        disk: disk.to_owned(),
        reason: reason.into(),
    }
}

fn len(path: &Path) -> Result<u64> {
    Ok(std::fs::metadata(path).at("stat", path)?.len())
}
