//! The decrypted `HOST.tar` of the original, read in memory (the keys never
//! touch the disk in clear). Its layout is what `tar cvf HOST.tar HOST` made of
//! `ssh-keygen -A -f HOST`: the directories `HOST/`, `HOST/etc/`, `HOST/etc/ssh/`
//! and regular files `HOST/etc/ssh/ssh_host_*`. Anything else is refused with
//! the entry's name: an absolute name or a `..`, another host's directory, a
//! link, a file elsewhere, a name given twice. The `tar` crate is the parser
//! only (GNU long names and PAX headers included); nothing is extracted.

use std::io::Read;
use std::path::Path;

use zeroize::Zeroizing;

use super::files::{HostFiles, KEY_PREFIX, MAX_KEY_FILE};
use crate::error::{Error, Result};

/// Reads the key files of `host` from `plaintext`, the decryption of `tarball`.
pub(super) fn read(tarball: &Path, host: &str, plaintext: &[u8]) -> Result<HostFiles> {
    let shown = tarball.display().to_string();
    let mut files = HostFiles::new(host, shown.clone(), format!("{shown}: {host}/etc/ssh/"))?;
    let bad_tar = |source| Error::BadTarball {
        tarball: tarball.to_owned(),
        source,
    };
    let mut seen: Vec<Vec<u8>> = Vec::new();
    let mut archive = tar::Archive::new(plaintext);
    for entry in archive.entries().map_err(bad_tar)? {
        let mut entry = entry.map_err(bad_tar)?;
        let raw = entry.path_bytes().into_owned();
        let name = String::from_utf8_lossy(&raw).into_owned();
        let refuse = |reason: String| Error::BadTarEntry {
            tarball: tarball.to_owned(),
            entry: name.clone(),
            reason,
        };
        let parts = components(&raw).map_err(|why| refuse(why.to_owned()))?;
        let Some((first, rest)) = parts.split_first() else {
            return Err(refuse("an empty name".to_owned()));
        };
        if *first != host.as_bytes() {
            return Err(refuse(format!("not under {host}/")));
        }
        let kind = entry.header().entry_type();
        match rest {
            [] | [b"etc"] | [b"etc", b"ssh"] if kind.is_dir() => continue,
            [b"etc", b"ssh", file] if file.starts_with(KEY_PREFIX.as_bytes()) => {
                if !(kind.is_file() || kind.is_contiguous()) {
                    return Err(refuse("not a regular file".to_owned()));
                }
                if seen.iter().any(|s| s == file) {
                    return Err(refuse("appears twice".to_owned()));
                }
                seen.push(file.to_vec());
                let file = std::str::from_utf8(file)
                    .map_err(|_| refuse("a name that is not UTF-8".to_owned()))?;
                let mut contents = Zeroizing::new(Vec::new());
                (&mut entry)
                    .take(MAX_KEY_FILE + 1)
                    .read_to_end(&mut contents)
                    .map_err(bad_tar)?;
                files.add(file, contents)?;
            }
            _ => {
                return Err(refuse(format!(
                    "not one of {host}/, {host}/etc/, {host}/etc/ssh/ (directories) and \
                     {host}/etc/ssh/ssh_host_* (files)"
                )))
            }
        }
    }
    Ok(files)
}

/// The components of an entry name, without `.` and empty ones; an absolute
/// name or a `..` is refused.
fn components(name: &[u8]) -> std::result::Result<Vec<&[u8]>, &'static str> {
    if name.starts_with(b"/") {
        return Err("an absolute name");
    }
    let parts: Vec<&[u8]> = name
        .split(|b| *b == b'/')
        .filter(|part| !part.is_empty() && *part != b".")
        .collect();
    if parts.iter().any(|part| *part == b"..") {
        return Err("a name that leads out of the archive (..)");
    }
    Ok(parts)
}
