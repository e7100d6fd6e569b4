//! The log of a program run for an export: its standard output and error go
//! to one private file (0600, its missing directories 0700), and a failure
//! reports the file and its last lines, escaped ([`crate::printable`]: the
//! program is the image's, e.g. its dracut).

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::process::ExitStatus;

use crate::error::{Error, IoContext, Result};
use crate::sandbox::{Io, RunIo};

/// Lines of a log shown in an error.
pub(crate) const TAIL_LINES: usize = 20;

/// Creates (truncates) `log` and returns the streams that write into it.
pub(crate) fn streams(log: &Path) -> Result<RunIo> {
    let file = crate::private::create_file(log).at("create", log)?;
    let err = file.try_clone().at("dup", log)?;
    Ok(RunIo {
        stdin: Io::Null,
        stdout: Io::File(file),
        stderr: Io::File(err),
    })
}

/// `Ok` when `status` is a success, else [`Error::ProgramFailed`] with the
/// tail of `log`.
pub(crate) fn check(program: &str, status: ExitStatus, log: &Path) -> Result<()> {
    if status.success() {
        return Ok(());
    }
    Err(Error::ProgramFailed {
        program: program.to_owned(),
        status: status.to_string(),
        log: log.to_owned(),
        tail: tail(log, TAIL_LINES),
    })
}

/// The last `lines` lines of the file at `path` (at most 64 KiB read),
/// escaped.
pub(crate) fn tail(path: &Path, lines: usize) -> String {
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

    #[test]
    fn the_log_is_private_and_its_tail_escaped() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("logs/boot/dracut.log");
        let RunIo { stdout, .. } = streams(&log).unwrap();
        let Io::File(mut out) = stdout else {
            panic!("not a file")
        };
        std::io::Write::write_all(&mut out, b"ok\n\x1b]0;pwned\x07\xff\n").unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode(&log), 0o600);
        assert_eq!(mode(&dir.path().join("logs/boot")), 0o700);
        assert_eq!(tail(&log, 1), "\\x1b]0;pwned\\x07\\xff");
    }
}
