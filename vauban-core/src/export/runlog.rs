//! The log of a program run for an export: its standard output and error go
//! to one file, and a failure reports the file and its last lines, escaped
//! ([`crate::printable`]: the program is the image's, e.g. its dracut).

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::process::ExitStatus;

use super::error::{ExportError, Result};
use crate::sandbox::{Io, RunIo};

/// Lines of a log shown in an error.
pub const TAIL_LINES: usize = 20;

/// Creates (truncates) `log` and returns the streams that write into it.
pub fn streams(log: &Path) -> Result<RunIo> {
    if let Some(dir) = log.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(ExportError::io("create the directory", dir))?;
    }
    let file = std::fs::File::create(log).map_err(ExportError::io("create", log))?;
    let err = file.try_clone().map_err(ExportError::io("dup", log))?;
    Ok(RunIo {
        stdin: Io::Null,
        stdout: Io::File(file),
        stderr: Io::File(err),
    })
}

/// `Ok` when `status` is a success, else [`ExportError::Failed`] with the
/// tail of `log`.
pub fn check(program: &str, status: ExitStatus, log: &Path) -> Result<()> {
    if status.success() {
        return Ok(());
    }
    Err(ExportError::Failed {
        program: program.to_owned(),
        status: status.to_string(),
        log: log.to_owned(),
        tail: tail(log, TAIL_LINES),
    })
}

/// The last `lines` lines of the file at `path` (at most 64 KiB read),
/// escaped.
pub fn tail(path: &Path, lines: usize) -> String {
    let Ok(mut file) = std::fs::File::open(path) else {
        return String::new();
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = file.seek(SeekFrom::Start(len.saturating_sub(64 * 1024)));
    let mut bytes = Vec::new();
    let _ = file.read_to_end(&mut bytes);
    let text = crate::printable::escape_bytes(&bytes);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    #[test]
    fn a_failure_shows_the_last_lines_and_names_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("run.log");
        let text: String = (1..=30).map(|i| format!("line {i}\n")).collect();
        std::fs::write(&log, text).unwrap();
        assert_eq!(tail(&log, 2), "line 29\nline 30");
        check("dracut", ExitStatus::from_raw(0), &log).unwrap();
        let err = check("dracut", ExitStatus::from_raw(1 << 8), &log)
            .unwrap_err()
            .to_string();
        assert!(err.contains("dracut failed (exit status: 1)"), "{err}");
        assert!(err.contains("run.log") && err.ends_with("line 30"), "{err}");
        assert!(!err.contains("line 10\n"), "{err}");
    }
}
