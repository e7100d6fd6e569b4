//! The host programs a disk is made and changed with, run with their
//! arguments (never through a shell), each in a session of its own (no
//! terminal to ask on), and a fixed environment: `C` messages, no user
//! configuration of mtools (`~/.mtoolsrc`), and the times of everything written
//! taken from `SOURCE_DATE_EPOCH` (mtools, mkfs.fat) and
//! `E2FSPROGS_FAKE_TIME` (mkfs.ext4, debugfs), so the same inputs make the
//! same disk.

use std::ffi::OsStr;
use std::fs::File;
use std::io::Write;
use std::os::fd::AsFd;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;

use crate::error::{Error, IoContext, Result};

/// A disk locked against other vauban processes (`flock` on a descriptor
/// of it: shared to read it, exclusive to change it). Every program run
/// on the disk is given the descriptor, and with it the lock, so a
/// program that outlives a killed vauban still holds it; no other program
/// vauban (or the process it is embedded in) spawns gets it.
#[derive(Debug, Clone)]
pub(crate) struct DiskLock(Arc<File>);

/// How many times a held lock is tried again, 50 ms apart, before the
/// disk is said busy.
const LOCK_TRIES: u32 = 20;

impl DiskLock {
    /// Opens and locks `disk`, refused at once when another holds it.
    pub(crate) fn take(disk: &Path, write: bool) -> Result<DiskLock> {
        let file = File::options()
            .read(true)
            .write(write)
            .open(disk)
            .at("open", disk)?;
        let how = if write {
            rustix::fs::FlockOperation::NonBlockingLockExclusive
        } else {
            rustix::fs::FlockOperation::NonBlockingLockShared
        };
        // A fork of another thread holds a copy of every descriptor until
        // it execs: a lock just let go may look held for an instant.
        let mut tries = 0;
        let locked = loop {
            match rustix::fs::flock(&file, how) {
                Err(rustix::io::Errno::WOULDBLOCK) if tries < LOCK_TRIES => {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                other => break other,
            }
        };
        locked.map_err(|e| {
            Error::io(
                "lock",
                disk,
                std::io::Error::new(
                    std::io::ErrorKind::ResourceBusy,
                    format!("another vauban is changing it ({e})"),
                ),
            )
        })?;
        Ok(DiskLock(Arc::new(file)))
    }
}

/// One program and the Debian package that has it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tool {
    /// The program.
    pub name: &'static str,
    /// How to get it.
    pub hint: &'static str,
}

/// Writes and reads the partition table.
pub(crate) const SFDISK: Tool = Tool {
    name: "sfdisk",
    hint: "apt-get install fdisk",
};
/// Formats the EFI system partition.
pub(crate) const MKFS_FAT: Tool = Tool {
    name: "mkfs.fat",
    hint: "apt-get install dosfstools",
};
/// Formats the data partition.
pub(crate) const MKFS_EXT4: Tool = Tool {
    name: "mkfs.ext4",
    hint: "apt-get install e2fsprogs",
};
/// Writes files into the data partition.
pub(crate) const DEBUGFS: Tool = Tool {
    name: "debugfs",
    hint: "apt-get install e2fsprogs",
};
/// Repairs the data partition before an update.
pub(crate) const E2FSCK: Tool = Tool {
    name: "e2fsck",
    hint: "apt-get install e2fsprogs",
};

/// An mtools command (`mcopy`, `mmd`...).
pub(crate) const fn mtools(name: &'static str) -> Tool {
    Tool {
        name,
        hint: "apt-get install mtools",
    }
}

/// The time every file and directory written is given (2000-01-01):
/// a fixed date keeps the disk of the same inputs the same.
pub(crate) const EPOCH: u64 = 946_684_800;

/// Runs `tool` with `args` (and `stdin`), returns its standard output;
/// a failure is [`Error::Command`] with the tail of its standard error.
pub(crate) fn run(
    tool: Tool,
    lock: &DiskLock,
    args: &[&OsStr],
    stdin: Option<&[u8]>,
) -> Result<Vec<u8>> {
    let (stdout, stderr) = run_both(tool, lock, args, stdin)?;
    let _ = stderr;
    Ok(stdout)
}

/// [`run`], both outputs returned (debugfs tells a failed command on
/// standard error only).
pub(crate) fn run_both(
    tool: Tool,
    lock: &DiskLock,
    args: &[&OsStr],
    stdin: Option<&[u8]>,
) -> Result<(Vec<u8>, String)> {
    // A session of its own: no terminal (mtools asks on /dev/tty when a
    // name clashes or a file is read-only: it fails instead), and a Ctrl-C
    // meant for vauban lets the program finish its step rather than cut
    // debugfs before it writes its bitmaps. It holds the disk's lock.
    let mut cmd = Command::new(tool.name);
    cmd.args(args)
        .env("LC_ALL", "C")
        .env("HOME", "/nonexistent/vauban-disk")
        .env("MTOOLSRC", "/dev/null")
        .env("MTOOLS_SKIP_CHECK", "1")
        .env("SOURCE_DATE_EPOCH", EPOCH.to_string())
        .env("E2FSPROGS_FAKE_TIME", EPOCH.to_string())
        .env("DEBUGFS_PAGER", "__none__")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let command_line = || {
        let mut line = tool.name.to_owned();
        for a in args {
            line.push(' ');
            line.push_str(&a.to_string_lossy());
        }
        line
    };
    let mut child =
        crate::sandbox::spawn_holding(&mut cmd, lock.0.as_fd()).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::ToolMissing {
                tool: tool.name.to_owned(),
                hint: tool.hint,
            },
            _ => Error::io("run", tool.name, e),
        })?;
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("stdin is piped");
        // A program that exits without reading all of it fails below.
        let _ = pipe.write_all(input);
    }
    let out = child
        .wait_with_output()
        .map_err(|e| Error::io("wait for", tool.name, e))?;
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if !out.status.success() {
        return Err(Error::Command {
            command: command_line(),
            status: out.status.to_string(),
            stderr: tail(&stderr),
        });
    }
    Ok((out.stdout, stderr))
}

/// The last lines of a program's standard error.
pub(crate) fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(8)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn disk() -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let disk = dir.path().join("disk.raw");
        std::fs::write(&disk, b"").unwrap();
        (dir, disk)
    }

    /// The CI failure of stop 26: the lock's descriptor was made
    /// inheritable, so a program another thread spawned while a disk was
    /// held kept the lock after vauban let it go.
    #[test]
    fn a_program_spawned_elsewhere_never_gets_the_lock() {
        let (_dir, disk) = disk();
        let lock = DiskLock::take(&disk, true).unwrap();
        let mut unrelated = Command::new("sleep")
            .arg("30")
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        drop(lock);
        let again = DiskLock::take(&disk, true);
        unrelated.kill().unwrap();
        unrelated.wait().unwrap();
        again.expect("the disk is free once vauban lets it go");
    }

    /// A program run on the disk holds its lock, as descriptor 3 and no
    /// other beyond its standard streams, even once vauban has let go: a
    /// program left running by a killed vauban keeps the next one out.
    #[test]
    fn a_program_run_on_the_disk_holds_it_and_nothing_else() {
        let (_dir, disk) = disk();
        let lock = DiskLock::take(&disk, true).unwrap();
        let stray = File::open("/dev/null").unwrap();
        rustix::io::fcntl_setfd(&stray, rustix::io::FdFlags::empty()).unwrap();
        let sh = Tool {
            name: "sh",
            hint: "",
        };
        let out = run(
            sh,
            &lock,
            &[
                "-c".as_ref(),
                "sleep 5 </dev/null >/dev/null 2>&1 & echo $!".as_ref(),
            ],
            None,
        )
        .unwrap();
        drop(lock);
        let pid = String::from_utf8(out).unwrap().trim().to_owned();
        let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect::<std::collections::BTreeSet<_>>();
        let held = std::fs::read_link(format!("/proc/{pid}/fd/3")).unwrap();
        let busy = DiskLock::take(&disk, true);
        let _ = Command::new("kill").arg(&pid).status();
        assert_eq!(fds, ["0", "1", "2", "3"].map(String::from).into());
        assert_eq!(held, disk);
        match busy.expect_err("the program still holds the disk") {
            Error::Io {
                op: "lock", source, ..
            } => {
                assert_eq!(source.kind(), std::io::ErrorKind::ResourceBusy, "{source}")
            }
            other => panic!("{other:?}"),
        }
    }
}
