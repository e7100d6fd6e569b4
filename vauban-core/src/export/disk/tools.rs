//! The host programs a disk is made and changed with, run with their
//! arguments (never through a shell), each in a session of its own (no
//! terminal to ask on), and a fixed environment: `C` messages, no user
//! configuration of mtools (`~/.mtoolsrc`), and the times of everything written
//! taken from `SOURCE_DATE_EPOCH` (mtools, mkfs.fat) and
//! `E2FSPROGS_FAKE_TIME` (mkfs.ext4, debugfs), so the same inputs make the
//! same disk.

use std::ffi::OsStr;
use std::io::Write;
use std::process::{Command, Stdio};

use crate::error::{Error, Result};

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
pub(crate) fn run(tool: Tool, args: &[&OsStr], stdin: Option<&[u8]>) -> Result<Vec<u8>> {
    let (stdout, stderr) = run_both(tool, args, stdin)?;
    let _ = stderr;
    Ok(stdout)
}

/// [`run`], both outputs returned (debugfs tells a failed command on
/// standard error only).
pub(crate) fn run_both(
    tool: Tool,
    args: &[&OsStr],
    stdin: Option<&[u8]>,
) -> Result<(Vec<u8>, String)> {
    // `setsid --wait`: the program runs in a session of its own, with no
    // terminal (mtools asks on /dev/tty when a name clashes or a file is
    // read-only: it fails instead), and a Ctrl-C meant for vauban lets the
    // program finish its step rather than cut debugfs before it writes its
    // bitmaps. The disk's lock is inherited: held while any of them runs.
    let mut cmd = Command::new("setsid");
    cmd.arg("--wait")
        .arg(tool.name)
        .args(args)
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
    let mut child = cmd.spawn().map_err(|e| match e.kind() {
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
    if out.status.code() == Some(127) && stderr.contains("failed to execute") {
        return Err(Error::ToolMissing {
            tool: tool.name.to_owned(),
            hint: tool.hint,
        });
    }
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
