//! Replacing the store file atomically: a temp file in the same directory,
//! mode 0600 set explicitly (whatever the umask), fsync, rename, fsync of the
//! directory. A crash leaves the old file or the new one, and at most a stray
//! `.NAME.*.tmp` beside it.

use std::fs::{File, Permissions};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::error::{Error, IoContext, Result};

/// Mode of the store file.
pub(super) const STORE_MODE: u32 = 0o600;

/// Writes `contents` to `path` atomically, mode [`STORE_MODE`].
pub(super) fn write_atomically(path: &Path, contents: &[u8]) -> Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".tmp")
        .permissions(Permissions::from_mode(STORE_MODE))
        .tempfile_in(dir)
        .at("create a temp file in", dir)?;
    let tmp_path = tmp.path().to_owned();
    // The umask may have taken bits off at creation; fchmod sets exactly 0600.
    tmp.as_file()
        .set_permissions(Permissions::from_mode(STORE_MODE))
        .at("chmod", &tmp_path)?;
    tmp.write_all(contents).at("write", &tmp_path)?;
    tmp.as_file().sync_all().at("fsync", &tmp_path)?;
    tmp.persist(path)
        .map_err(|e| Error::io("rename a temp file onto", path, e.error))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .at("fsync", dir)?;
    Ok(())
}
