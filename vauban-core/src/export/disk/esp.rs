//! The EFI system partition, FAT32, made with `mkfs.fat --offset` and
//! changed with mtools (`-i DISK@@OFFSET`), on the disk file itself: no
//! mount, no loop device, no root.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

use super::tools::{self, DiskLock, Tool};
use crate::error::{Error, Result};

/// The FAT file system of a partition.
#[derive(Debug, Clone)]
pub(crate) struct Esp {
    disk: PathBuf,
    start: u64,
    size: u64,
    lock: DiskLock,
}

/// A path in the partition, as mtools names it (`::/loader/entries`).
fn fat_path(path: &str) -> OsString {
    format!("::/{}", path.trim_start_matches('/')).into()
}

impl Esp {
    /// The partition at `start` (bytes) of `size` bytes of `disk`.
    pub(crate) fn new(disk: &Path, start: u64, size: u64, lock: DiskLock) -> Result<Esp> {
        if disk.to_string_lossy().contains("@@") {
            return Err(Error::io(
                "use",
                disk,
                std::io::Error::other("mtools cannot name a disk whose path holds `@@`"),
            ));
        }
        Ok(Esp {
            disk: disk.to_owned(),
            start,
            size,
            lock,
        })
    }

    /// `DISK@@OFFSET`, mtools' name of a partition in a file.
    fn image(&self) -> OsString {
        let mut image = self.disk.clone().into_os_string();
        image.push(format!("@@{}", self.start));
        image
    }

    fn mtool(&self, name: &'static str, args: &[&OsStr]) -> Result<Vec<u8>> {
        let image = self.image();
        let mut all: Vec<&OsStr> = vec!["-i".as_ref(), image.as_os_str()];
        all.extend_from_slice(args);
        tools::run(tools::mtools(name), &self.lock, &all, None)
    }

    /// Makes a FAT32 file system over the whole partition.
    pub(crate) fn format(&self, volume_id: &str) -> Result<()> {
        let sector = (self.start / 512).to_string();
        let kib = (self.size / 1024).to_string();
        let offset = format!("--offset={sector}");
        let disk = self.disk.as_os_str();
        // No volume label: mkfs.fat stamps its directory entry with the
        // current time, whatever SOURCE_DATE_EPOCH says (the GPT names the
        // partition).
        let args: [&OsStr; 8] = [
            offset.as_ref(),
            "-F".as_ref(),
            "32".as_ref(),
            "-i".as_ref(),
            volume_id.as_ref(),
            "--".as_ref(),
            disk,
            kib.as_ref(),
        ];
        tools::run(tools::MKFS_FAT, &self.lock, &args, None).map(drop)
    }

    /// Makes the directory `path` (its parent must exist).
    pub(crate) fn mkdir(&self, path: &str) -> Result<()> {
        self.mtool("mmd", &[fat_path(path).as_os_str()]).map(drop)
    }

    /// Copies the host file `src` to `dest` (replacing it).
    pub(crate) fn put(&self, src: &Path, dest: &str) -> Result<()> {
        self.mtool(
            "mcopy",
            &[
                "-D".as_ref(),
                "o".as_ref(),
                src.as_os_str(),
                fat_path(dest).as_os_str(),
            ],
        )
        .map(drop)
    }

    /// Writes `content` to `dest` (through a temp file of the host).
    pub(crate) fn put_bytes(&self, content: &[u8], dest: &str) -> Result<()> {
        let tmp =
            tempfile::NamedTempFile::new().map_err(|e| Error::io("create a temp file", "", e))?;
        std::fs::write(tmp.path(), content).map_err(|e| Error::io("write", tmp.path(), e))?;
        self.put(tmp.path(), dest)
    }

    /// Renames `from` to `to` in the same directory.
    pub(crate) fn rename(&self, from: &str, to: &str) -> Result<()> {
        let to_name = to.rsplit('/').next().unwrap_or(to);
        self.mtool("mren", &[fat_path(from).as_os_str(), to_name.as_ref()])
            .map(drop)
    }

    /// Removes the file `path`.
    pub(crate) fn remove(&self, path: &str) -> Result<()> {
        self.mtool("mdel", &[fat_path(path).as_os_str()]).map(drop)
    }

    /// Removes the file `path` whatever its attributes (read-only, hidden,
    /// system: mdel refuses a read-only one).
    pub(crate) fn remove_forced(&self, path: &str) -> Result<()> {
        let fat = fat_path(path);
        self.mtool(
            "mattrib",
            &["-r".as_ref(), "-h".as_ref(), "-s".as_ref(), fat.as_os_str()],
        )?;
        self.remove(path)
    }

    /// Removes the directory `path` and all it holds.
    pub(crate) fn remove_tree(&self, path: &str) -> Result<()> {
        self.mtool("mdeltree", &[fat_path(path).as_os_str()])
            .map(drop)
    }

    /// The text of the file `path`.
    pub(crate) fn read(&self, path: &str) -> Result<String> {
        let out = self.mtool("mtype", &[fat_path(path).as_os_str()])?;
        Ok(String::from_utf8_lossy(&out).into_owned())
    }

    /// The names in the directory `path` (none when it does not exist).
    pub(crate) fn list(&self, path: &str) -> Result<Vec<String>> {
        let image = self.image();
        let fat = fat_path(path);
        let args: [&OsStr; 4] = [
            "-i".as_ref(),
            image.as_os_str(),
            "-b".as_ref(),
            fat.as_os_str(),
        ];
        match tools::run(tools::mtools("mdir"), &self.lock, &args, None) {
            Ok(out) => Ok(String::from_utf8_lossy(&out)
                .lines()
                .filter_map(|l| l.trim_end_matches('/').rsplit('/').next())
                // A FAT name holds no `/`, control character, `*` or `?`:
                // any goes back into mtools' arguments as it is (no shell,
                // no wildcard).
                .filter(|n| !n.is_empty() && *n != "." && *n != "..")
                .map(str::to_owned)
                .collect()),
            Err(Error::Command { stderr, .. }) if stderr.contains("not found") => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }

    /// The bytes free in the file system.
    pub(crate) fn free(&self) -> Result<u64> {
        self.mdir_total("/", "bytes free")
    }

    /// The bytes of the file, or of the files in the directory, `path`.
    pub(crate) fn dir_bytes(&self, path: &str) -> Result<u64> {
        self.mdir_total(path, "bytes")
    }

    /// The number before `suffix` on the last line of `mdir PATH` that ends so.
    fn mdir_total(&self, path: &str, suffix: &str) -> Result<u64> {
        let image = self.image();
        let fat = fat_path(path);
        let args: [&OsStr; 3] = ["-i".as_ref(), image.as_os_str(), fat.as_os_str()];
        let out = tools::run(tools::mtools("mdir"), &self.lock, &args, None)?;
        parse_total(&String::from_utf8_lossy(&out), suffix).ok_or_else(|| {
            Error::io(
                "read the sizes of",
                &self.disk,
                std::io::Error::other(format!("mdir printed no `{suffix}` line")),
            )
        })
    }
}

/// The `N NNN NNN` before `suffix` (`bytes free`, `bytes`) on the last
/// line of `mdir`'s output that ends with it.
fn parse_total(text: &str, suffix: &str) -> Option<u64> {
    let line = text.lines().rev().find(|l| {
        let l = l.trim_end();
        l.ends_with(suffix) && (suffix != "bytes" || !l.ends_with("bytes free"))
    })?;
    let number = line.trim_end().strip_suffix(suffix)?;
    // `N files  B bytes`, or `1 file  B bytes`.
    let number = number
        .rsplit_once("file")
        .map_or(number, |(_, n)| n.strip_prefix('s').unwrap_or(n));
    let digits: String = number.chars().filter(|c| !c.is_whitespace()).collect();
    digits.parse().ok()
}

/// A `Tool` for the EFI binaries' messages: systemd-boot is a file of
/// Debian's `systemd-boot-efi`.
pub(crate) const SYSTEMD_BOOT: Tool = Tool {
    name: "/usr/lib/systemd/boot/efi/systemd-bootx64.efi",
    hint: "apt-get install systemd-boot-efi",
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_space_and_sizes_are_read_from_mdir() {
        let out = " Volume in drive : is VAUBAN-ESP\nDirectory for ::/\n\nEFI <DIR>\n        2 files                   0 bytes\n                        535 633 920 bytes free\n\n";
        assert_eq!(parse_total(out, "bytes free"), Some(535_633_920));
        assert_eq!(parse_total(out, "bytes"), Some(0));
        let dir = "Directory for ::/EFI/BOOT\n\nBOOTX64  EFI    140891 2000-01-01   0:00\n        3 files             140 891 bytes\n";
        assert_eq!(parse_total(dir, "bytes"), Some(140_891));
        let one = "vauban~1 con       462 2000-01-01   0:00  vauban-6.conf\n        1 file                  462 bytes\n                        171 225 088 bytes free\n";
        assert_eq!(parse_total(one, "bytes"), Some(462));
        assert_eq!(parse_total("nothing", "bytes free"), None);
        assert_eq!(
            fat_path("/loader/entries"),
            OsString::from("::/loader/entries")
        );
    }
}
