//! The data partition, ext4, made with `mkfs.ext4 -E offset=` and changed
//! with `debugfs -w` on `DISK?offset=N` (e2fsprogs opens a file system at
//! an offset of a file that way): no mount, no loop device, no root.
//!
//! It has no journal: nothing mounts it read-write (the initramfs mounts it
//! read-only and lets it go once the squashfs is in RAM), and debugfs
//! writes around a journal anyway. A build's files are written before any
//! boot entry names them, so a write cut short leaves a directory no entry
//! names, which the next update removes.
//!
//! debugfs exits 0 whatever its commands did: a command that failed says so
//! on standard error, which is checked, and every file written is listed
//! back with its size.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

use super::tools::{self, DiskLock};
use crate::error::{Error, Result};

/// The ext4 file system of a partition.
#[derive(Debug, Clone)]
pub(crate) struct Data {
    disk: PathBuf,
    start: u64,
    size: u64,
    lock: DiskLock,
}

/// The block size: a few large files.
const BLOCK: u64 = 4096;

impl Data {
    /// The partition at `start` (bytes) of `size` bytes of `disk`.
    pub(crate) fn new(disk: &Path, start: u64, size: u64, lock: DiskLock) -> Result<Data> {
        if disk.to_string_lossy().contains('?') {
            return Err(Error::io(
                "use",
                disk,
                std::io::Error::other("e2fsprogs cannot name a disk whose path holds `?`"),
            ));
        }
        Ok(Data {
            disk: disk.to_owned(),
            start,
            size,
            lock,
        })
    }

    /// `DISK?offset=N`.
    fn device(&self) -> OsString {
        let mut device = self.disk.clone().into_os_string();
        device.push(format!("?offset={}", self.start));
        device
    }

    /// Makes the file system over the whole partition, with `vauban/` in it.
    pub(crate) fn format(&self, uuid: &str, hash_seed: &str) -> Result<()> {
        let extended = format!(
            "offset={},root_owner=0:0,hash_seed={hash_seed},lazy_itable_init=0",
            self.start
        );
        let blocks = (self.size / BLOCK).to_string();
        let args: [&OsStr; 18] = [
            "-q".as_ref(),
            "-F".as_ref(),
            "-b".as_ref(),
            "4096".as_ref(),
            "-L".as_ref(),
            super::layout::DATA_NAME.as_ref(),
            "-U".as_ref(),
            uuid.as_ref(),
            "-O".as_ref(),
            "^has_journal".as_ref(),
            "-m".as_ref(),
            "0".as_ref(),
            "-i".as_ref(),
            "1048576".as_ref(),
            "-E".as_ref(),
            extended.as_ref(),
            self.disk.as_os_str(),
            blocks.as_ref(),
        ];
        tools::run(tools::MKFS_EXT4, &self.lock, &args, None)?;
        self.commands(&[format!("mkdir /{}", super::entry::BUILDS_DIR)])
    }

    /// Runs debugfs `commands` read-write; fails on any complaint.
    pub(crate) fn commands(&self, commands: &[String]) -> Result<()> {
        let script = commands.join("\n") + "\n";
        let device = self.device();
        let args: [&OsStr; 4] = [
            "-w".as_ref(),
            "-f".as_ref(),
            "-".as_ref(),
            device.as_os_str(),
        ];
        let (_, stderr) =
            tools::run_both(tools::DEBUGFS, &self.lock, &args, Some(script.as_bytes()))?;
        let complaints: Vec<&str> = stderr
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with("debugfs "))
            .collect();
        if !complaints.is_empty() {
            return Err(Error::Command {
                command: format!(
                    "debugfs -w {} ({})",
                    self.disk.display(),
                    commands.join("; ")
                ),
                status: "a command failed".into(),
                stderr: tools::tail(&complaints.join("\n")),
            });
        }
        Ok(())
    }

    /// Runs one read-only debugfs command; its output.
    fn query(&self, command: &str) -> Result<String> {
        let device = self.device();
        let args: [&OsStr; 3] = ["-R".as_ref(), command.as_ref(), device.as_os_str()];
        let out = tools::run(tools::DEBUGFS, &self.lock, &args, None)?;
        Ok(String::from_utf8_lossy(&out).into_owned())
    }

    /// Copies the host files `files` (source, destination in the file
    /// system) into the existing directory `dir`, then checks their sizes.
    pub(crate) fn put(&self, dir: &str, files: &[(&Path, String)]) -> Result<()> {
        let mut commands = vec![format!("mkdir {dir}")];
        for (src, name) in files {
            commands.push(format!("write {} {dir}/{name}", quoted(src)?));
        }
        self.commands(&commands)?;
        let listed = self.list(dir)?;
        for (src, name) in files {
            let want = std::fs::metadata(src)
                .map_err(|e| Error::io("stat", *src, e))?
                .len();
            let got = listed.iter().find(|(n, _)| n == name).map(|(_, s)| *s);
            if got != Some(want) {
                return Err(Error::Command {
                    command: format!("debugfs -w {}", self.disk.display()),
                    status: "a file was not written whole".into(),
                    stderr: format!("{dir}/{name}: {got:?} bytes of {want}"),
                });
            }
        }
        Ok(())
    }

    /// Removes the directory `dir` and the files in it, or the file `dir`
    /// if it is none.
    pub(crate) fn remove_dir(&self, dir: &str) -> Result<()> {
        let (parent, name) = dir.rsplit_once('/').unwrap_or(("", dir));
        let parent = if parent.is_empty() { "/" } else { parent };
        let is_dir = self
            .list_kinds(parent)?
            .iter()
            .any(|(n, _, d)| n == name && *d);
        if !is_dir {
            return self.commands(&[format!("rm {dir}")]);
        }
        let mut commands: Vec<String> = self
            .list(dir)?
            .into_iter()
            .map(|(name, _)| format!("rm {dir}/{name}"))
            .collect();
        commands.push(format!("rmdir {dir}"));
        self.commands(&commands)
    }

    /// Repairs the file system (`e2fsck -fy`): what an update cut short by
    /// a crash left half-written (an inode in a directory but not in the
    /// bitmaps) is set right before anything else is written.
    /// A clean one is only read (`-fn` first): a repair writes its
    /// superblock even when it finds nothing.
    pub(crate) fn repair(&self) -> Result<()> {
        let device = self.device();
        let check: [&OsStr; 2] = ["-fn".as_ref(), device.as_os_str()];
        if tools::run(tools::E2FSCK, &self.lock, &check, None).is_ok() {
            return Ok(());
        }
        let args: [&OsStr; 2] = ["-fy".as_ref(), device.as_os_str()];
        match tools::run(tools::E2FSCK, &self.lock, &args, None) {
            Ok(_) => Ok(()),
            // 1: errors corrected; 2: corrected, the system should reboot
            // (it is not mounted). 4 and up: left uncorrected, or worse.
            Err(Error::Command { status, .. })
                if status.ends_with("exit status: 1") || status.ends_with("exit status: 2") =>
            {
                tracing::warn!(disk = %self.disk.display(), "the data partition was repaired");
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// The names in `dir` (no `.`, `..`) and their sizes; none when it does
    /// not exist.
    pub(crate) fn list(&self, dir: &str) -> Result<Vec<(String, u64)>> {
        Ok(self
            .list_kinds(dir)?
            .into_iter()
            .map(|(n, s, _)| (n, s))
            .collect())
    }

    /// [`Data::list`] with whether each is a directory.
    pub(crate) fn list_kinds(&self, dir: &str) -> Result<Vec<(String, u64, bool)>> {
        Ok(parse_ls(&self.query(&format!("ls -p {dir}"))?))
    }

    /// The bytes free in the file system.
    pub(crate) fn free(&self) -> Result<u64> {
        let stats = self.query("stats")?;
        let field = |key: &str| -> Option<u64> {
            stats
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.trim().parse().ok())
        };
        match (field("Free blocks:"), field("Block size:")) {
            (Some(free), Some(block)) => Ok(free * block),
            _ => Err(Error::io(
                "read the free space of",
                &self.disk,
                std::io::Error::other("debugfs stats printed no free blocks"),
            )),
        }
    }
}

/// A host path as one debugfs argument: in double quotes, which it must
/// not hold (nor a line break).
fn quoted(path: &Path) -> Result<String> {
    let text = path.to_str().unwrap_or("\"");
    if text.contains(['"', '\n', '\r']) {
        return Err(Error::io(
            "copy",
            path,
            std::io::Error::other(
                "debugfs cannot name a file whose path holds `\"` or a line break",
            ),
        ));
    }
    Ok(format!("\"{text}\""))
}

/// The entries of `ls -p`: `/INODE/MODE/UID/GID/NAME/SIZE/` lines. Only
/// plain names (letters, digits, `.`, `_`, `-`: every name vauban writes)
/// are taken: a name read from a disk goes back into debugfs commands, and
/// one holding a space or a line break could add commands of its own.
fn parse_ls(text: &str) -> Vec<(String, u64, bool)> {
    text.lines()
        .filter_map(|l| {
            let fields: Vec<&str> = l.trim().split('/').collect();
            if fields.len() != 8 {
                return None;
            }
            let (name, size) = (fields[5], fields[6]);
            if !crate::export::is_plain_name(name) {
                return None;
            }
            // A directory has no size.
            let dir = fields[2].starts_with("04");
            Some((name.to_string(), size.parse().unwrap_or(0), dir))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ls_lines_give_names_and_sizes() {
        let out =
            "/13/040755/0/0/.//\n/12/040755/0/0/..//\n/14/100644/0/0/rootfs.img/31457280/\n\n";
        assert_eq!(
            parse_ls(out),
            [("rootfs.img".to_string(), 31_457_280, false)]
        );
        // A name with a space or a line break is never read back.
        let hostile = "/15/100644/0/0/a b/1/\n/16/100644/0/0/x\n/17/100644/0/0/ok/2/\n";
        assert_eq!(parse_ls(hostile), [("ok".to_string(), 2, false)]);
        let dirs = "/12/040755/0/0/.//\n/13/040755/0/0/ac7b3f2a39c7921f//\n";
        assert_eq!(parse_ls(dirs), [("ac7b3f2a39c7921f".to_string(), 0, true)]);
        assert_eq!(quoted(Path::new("/a b/c")).unwrap(), "\"/a b/c\"");
        assert!(quoted(Path::new("/a\"b")).is_err());
    }
}
