//! Plain key files laid out as `DIR/HOST/etc/ssh/ssh_host_*`: every
//! directory of `DIR` is a host. Of a host's `etc/ssh` only the `ssh_host_*`
//! files are read, so a copy of a host's whole `/etc/ssh` (with `sshd_config`,
//! `moduli`) is fine; what else `DIR` holds is listed as left out.

use std::fs;
use std::io::Read;
use std::path::Path;

use zeroize::Zeroizing;

use super::files::{HostFiles, KEY_PREFIX, MAX_KEY_FILE};
use super::Ignored;
use crate::error::{Error, IoContext, Result};
use crate::keys::host::SSH_DIR;

/// Reads the key files of every host under `dir`.
pub(super) fn read(dir: &Path) -> Result<(Vec<HostFiles>, Vec<Ignored>)> {
    let mut hosts = Vec::new();
    let mut ignored = Vec::new();
    for entry in sorted_entries(dir)? {
        let path = dir.join(&entry);
        if !fs::metadata(&path).at("stat", &path)?.is_dir() {
            ignored.push(Ignored {
                file: path.display().to_string(),
                reason: "not a HOST directory",
            });
            continue;
        }
        let host = entry.to_str().ok_or_else(|| Error::InvalidHost {
            host: entry.to_string_lossy().into_owned(),
        })?;
        let ssh_dir = path.join(SSH_DIR);
        let mut files = HostFiles::new(
            host,
            path.display().to_string(),
            format!("{}/", ssh_dir.display()),
        )?;
        let names = match sorted_entries(&ssh_dir) {
            Ok(names) => names,
            // A host directory without `etc/ssh` lacks every key: `finish` says so.
            Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                Vec::new()
            }
            Err(e) => return Err(e),
        };
        for name in names {
            let Some(name) = name.to_str().filter(|n| n.starts_with(KEY_PREFIX)) else {
                continue;
            };
            files.add(name, read_key_file(&ssh_dir.join(name))?)?;
        }
        hosts.push(files);
    }
    Ok((hosts, ignored))
}

/// The names in `dir`, sorted.
fn sorted_entries(dir: &Path) -> Result<Vec<std::ffi::OsString>> {
    let mut names = Vec::new();
    for entry in fs::read_dir(dir).at("read the directory", dir)? {
        names.push(entry.at("read the directory", dir)?.file_name());
    }
    names.sort();
    Ok(names)
}

/// The contents of a key file, at most [`MAX_KEY_FILE`] + 1 bytes (a larger one
/// is refused as such by [`HostFiles::add`]); it must be a regular file.
fn read_key_file(path: &Path) -> Result<Zeroizing<Vec<u8>>> {
    let file = fs::File::open(path).at("read", path)?;
    let meta = file.metadata().at("stat", path)?;
    if !meta.is_file() {
        return Err(Error::io(
            "read",
            path,
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a regular file"),
        ));
    }
    let mut contents = Zeroizing::new(Vec::with_capacity(meta.len().min(MAX_KEY_FILE) as usize));
    file.take(MAX_KEY_FILE + 1)
        .read_to_end(&mut contents)
        .at("read", path)?;
    Ok(contents)
}
