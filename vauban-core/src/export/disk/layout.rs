//! The partition table of a disk image: GPT, two partitions aligned to
//! 1 MiB, written by `sfdisk` on the file itself (no loop device).
//!
//! ```text
//! LBA 0-2047      protective MBR, GPT header and entries
//! vauban-esp      EFI system partition, FAT32: systemd-boot, loader/,
//!                 vauban/BUILD/{vmlinuz,initramfs.img}
//! vauban-data     Linux filesystem, ext4: vauban/BUILD/{rootfs.img,conffs-HOST.tgz}
//! last 1 MiB      backup GPT
//! ```
//!
//! The disk's and the partitions' UUIDs are derived from the master and
//! host names, so the same host's disk is made the same twice; the kernel
//! finds the data partition by its PARTUUID.

use std::path::Path;

use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::tools::{self, DiskLock};
use crate::error::Result;

/// Partitions start and end on this boundary.
pub(crate) const ALIGN: u64 = 1 << 20;
/// The sector size of the table written.
const SECTOR: u64 = 512;
/// The GPT partition type of an EFI system partition.
const ESP_TYPE: &str = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B";
/// The GPT partition type of a Linux filesystem.
const DATA_TYPE: &str = "0FC63DAF-8483-4772-8E79-3D69D8477DE4";
/// The partition names vauban gives and looks for.
pub(crate) const ESP_NAME: &str = "vauban-esp";
/// See [`ESP_NAME`].
pub(crate) const DATA_NAME: &str = "vauban-data";

/// One partition: where it is, in bytes, and its UUID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Part {
    /// Its first byte in the disk.
    pub start: u64,
    /// Its size in bytes.
    pub size: u64,
    /// Its PARTUUID, lower case.
    pub uuid: String,
}

/// The disk's layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Layout {
    /// The disk's GUID.
    pub disk_uuid: String,
    /// The EFI system partition.
    pub esp: Part,
    /// The data partition.
    pub data: Part,
    /// The disk's size in bytes.
    pub total: u64,
}

/// `n` rounded up to [`ALIGN`].
pub(crate) fn align_up(n: u64) -> u64 {
    n.div_ceil(ALIGN) * ALIGN
}

/// A UUID (version 4 form) derived from `seed`.
pub(crate) fn uuid_from(seed: &str) -> String {
    let mut b: [u8; 16] = Sha256::digest(seed.as_bytes())[..16]
        .try_into()
        .expect("16 bytes of a sha256");
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

impl Layout {
    /// The layout of `master`/`host`'s disk with partitions of (at least)
    /// these sizes.
    pub(crate) fn new(master: &str, host: &str, esp_size: u64, data_size: u64) -> Layout {
        let seed = |role: &str| uuid_from(&format!("vauban disk {master}/{host} {role}"));
        let esp = Part {
            start: ALIGN,
            size: align_up(esp_size),
            uuid: seed("esp"),
        };
        let data = Part {
            start: esp.start + esp.size,
            size: align_up(data_size),
            uuid: seed("data"),
        };
        let total = data.start + data.size + ALIGN;
        Layout {
            disk_uuid: seed("disk"),
            esp,
            data,
            total,
        }
    }

    /// The `sfdisk` script that writes this table.
    pub(crate) fn sfdisk_script(&self) -> String {
        let part = |p: &Part, kind: &str, name: &str| {
            format!(
                "start={}, size={}, type={kind}, uuid={}, name=\"{name}\"\n",
                p.start / SECTOR,
                p.size / SECTOR,
                p.uuid
            )
        };
        format!(
            "label: gpt\nlabel-id: {}\nsector-size: {SECTOR}\nfirst-lba: {}\n{}{}",
            self.disk_uuid,
            ALIGN / SECTOR,
            part(&self.esp, ESP_TYPE, ESP_NAME),
            part(&self.data, DATA_TYPE, DATA_NAME),
        )
    }

    /// Writes the table on `disk` (a file of [`Layout::total`] bytes).
    pub(crate) fn write(&self, disk: &Path, lock: &DiskLock) -> Result<()> {
        tools::run(
            tools::SFDISK,
            lock,
            &["--quiet".as_ref(), "--no-reread".as_ref(), disk.as_os_str()],
            Some(self.sfdisk_script().as_bytes()),
        )?;
        Ok(())
    }

    /// Reads the layout of a vauban disk: its two partitions, found by name
    /// and type.
    pub(crate) fn read(disk: &Path, lock: &DiskLock) -> Result<Layout> {
        let out = tools::run(
            tools::SFDISK,
            lock,
            &["--json".as_ref(), disk.as_os_str()],
            None,
        )
        .map_err(|_| super::not_vauban(disk, "no partition table sfdisk can read"))?;
        let table: SfdiskOutput = serde_json::from_slice(&out)
            .map_err(|e| super::not_vauban(disk, format!("sfdisk --json: {e}")))?;
        let t = table.partitiontable;
        if t.label != "gpt" {
            return Err(super::not_vauban(
                disk,
                format!("a {} partition table, not GPT", t.label),
            ));
        }
        let sector = t.sectorsize.unwrap_or(SECTOR);
        let find = |name: &str, kind: &str| -> Result<Part> {
            let p = t
                .partitions
                .iter()
                .find(|p| p.name.as_deref() == Some(name))
                .ok_or_else(|| super::not_vauban(disk, format!("no partition named {name}")))?;
            if !p.kind.eq_ignore_ascii_case(kind) {
                return Err(super::not_vauban(
                    disk,
                    format!("partition {name} has type {}, not {kind}", p.kind),
                ));
            }
            let bytes = |n: u64| {
                n.checked_mul(sector).ok_or_else(|| {
                    super::not_vauban(disk, format!("partition {name} is out of range"))
                })
            };
            Ok(Part {
                start: bytes(p.start)?,
                size: bytes(p.size)?,
                uuid: p.uuid.clone().unwrap_or_default().to_ascii_lowercase(),
            })
        };
        let esp = find(ESP_NAME, ESP_TYPE)?;
        let data = find(DATA_NAME, DATA_TYPE)?;
        let total = std::fs::metadata(disk).map(|m| m.len()).unwrap_or(0);
        Ok(Layout {
            disk_uuid: t.id.to_ascii_lowercase(),
            esp,
            data,
            total,
        })
    }
}

#[derive(Deserialize)]
struct SfdiskOutput {
    partitiontable: SfdiskTable,
}

#[derive(Deserialize)]
struct SfdiskTable {
    label: String,
    #[serde(default)]
    id: String,
    sectorsize: Option<u64>,
    #[serde(default)]
    partitions: Vec<SfdiskPart>,
}

#[derive(Deserialize)]
struct SfdiskPart {
    start: u64,
    size: u64,
    #[serde(rename = "type")]
    kind: String,
    uuid: Option<String>,
    name: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_are_aligned_and_their_uuids_are_the_hosts() {
        let l = Layout::new("master-web", "web01", 300 << 20, (500 << 20) + 1);
        assert_eq!(l.esp.start, 1 << 20);
        assert_eq!(l.esp.size, 300 << 20);
        assert_eq!(l.data.start, 301 << 20);
        assert_eq!(l.data.size, 501 << 20);
        assert_eq!(l.total, (301 + 501 + 1) << 20);
        assert_eq!(
            l,
            Layout::new("master-web", "web01", 300 << 20, (500 << 20) + 1)
        );
        let other = Layout::new("master-web", "web02", 300 << 20, 500 << 20);
        assert_ne!(l.data.uuid, other.data.uuid);
        assert_ne!(l.esp.uuid, l.data.uuid);
        let u = &l.data.uuid;
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4", "{u}");
        assert!(l.sfdisk_script().contains(&format!(
            "start=2048, size=614400, type={ESP_TYPE}, uuid={}, name=\"vauban-esp\"\n",
            l.esp.uuid
        )));
    }
}
