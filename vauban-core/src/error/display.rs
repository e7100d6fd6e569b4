//! Pieces of [`Error`](super::Error)'s messages that take more than a format
//! string: lists, suggestions, the tail of a command's output.

use super::Error;
use crate::config::release::{DEBIAN_CODENAMES, DEBIAN_SUITES};

/// `; it said: A / B` when a sandbox helper wrote `stderr`, its lines joined.
pub(super) fn tail(stderr: &str) -> String {
    if stderr.is_empty() {
        String::new()
    } else {
        format!("; it said: {}", stderr.replace('\n', " / "))
    }
}

/// `; it said: TEXT` when `stderr` (of gpg, already escaped) is not empty.
pub(super) fn said(stderr: &str) -> String {
    if stderr.is_empty() {
        String::new()
    } else {
        format!("; it said: {stderr}")
    }
}

/// ` (did you mean `S`?)` when a close name was found.
pub(super) fn did_you_mean(suggestion: Option<&str>) -> String {
    suggestion.map_or_else(String::new, |s| format!(" (did you mean `{s}`?)"))
}

/// The Debian codenames a release key may be, comma-separated.
pub(super) fn codenames() -> String {
    DEBIAN_CODENAMES
        .iter()
        .map(|(name, _)| *name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// `debian-N to debian-M`, the numbered release keys.
pub(super) fn numbered() -> String {
    let numbers: Vec<u32> = DEBIAN_CODENAMES.iter().filter_map(|(_, n)| *n).collect();
    match (numbers.first(), numbers.last()) {
        (Some(first), Some(last)) => format!("debian-{first} to debian-{last}"),
        _ => String::new(),
    }
}

/// The Debian suites a release key may be, comma-separated.
pub(super) fn suites() -> String {
    DEBIAN_SUITES.join(", ")
}

/// The biggest files of a conffs archive: `/PATH (SIZE), ...`.
pub(super) fn list_biggest(biggest: &[(String, u64)]) -> String {
    if biggest.is_empty() {
        return "(no regular file)".into();
    }
    biggest
        .iter()
        .map(|(path, size)| format!("/{path} ({})", bytesize::ByteSize::b(*size)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The failed hosts of a conffs step: `HOST (ERROR); ...`, an Ansible failure
/// by its summary (without the output's last lines).
pub(super) fn summary(failures: &[(String, Error)]) -> String {
    failures
        .iter()
        .map(|(host, e)| match e {
            Error::AnsibleFailed(f) => format!("{host} ({})", f.summary()),
            other => format!("{host} ({other})"),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// `; its output: LOG` when a task's output was kept.
pub(super) fn log_hint(log: &Option<std::path::PathBuf>) -> String {
    log.as_ref()
        .map(|l| format!("; its output: {}", l.display()))
        .unwrap_or_default()
}
