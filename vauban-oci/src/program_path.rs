//! Where a program is: finding the programs vauban runs (`skopeo`, `ansible-playbook`,
//! `mksquashfs`...): in `$PATH`, then in the system directories an ordinary
//! user's `PATH` may lack (`/usr/sbin`, `/sbin`).

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

/// The system directories searched after `$PATH`.
pub const SYSTEM_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// `program` as an executable file: as given when it holds a `/`, else the
/// first in `path_var` (a `$PATH` value), then in [`SYSTEM_PATH`].
pub fn which(program: &str, path_var: Option<&OsStr>) -> Option<PathBuf> {
    if program.contains('/') {
        return Some(PathBuf::from(program)).filter(|p| is_executable(p));
    }
    let system = OsString::from(SYSTEM_PATH);
    path_var
        .into_iter()
        .chain(std::iter::once(system.as_os_str()))
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(program))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_first_then_system_dirs() {
        let dir = tempfile::tempdir().unwrap();
        let tool = dir.path().join("vauban-test-tool");
        std::fs::write(&tool, "#!/bin/sh\n").unwrap();
        let path = std::env::join_paths([dir.path()]).unwrap();
        assert_eq!(
            which("vauban-test-tool", Some(&path)),
            None,
            "not executable"
        );
        std::fs::set_permissions(&tool, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        assert_eq!(which("vauban-test-tool", Some(&path)), Some(tool));
        assert_eq!(which("vauban-test-tool", None), None);
        assert!(which("sh", Some("/nonexistent".as_ref())).is_some());
        assert_eq!(which("/bin/sh", None), Some(PathBuf::from("/bin/sh")));
    }
}
