//! `SHA256SUMS` of a boot tree, in `sha256sum`'s format (`HEX  PATH`, paths
//! relative to the tree, sorted), so `sha256sum -c SHA256SUMS` in the tree
//! checks a download. Symlinks to files are listed like the files (as
//! `sha256sum` reads through them); temp files being made are not.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::atomic;
use crate::error::{IoContext, Result};

/// The file name of the list.
pub(crate) const SUMS_FILE: &str = "SHA256SUMS";

/// The list's text for `(path, hex digest)` pairs, sorted by path. A path
/// with a `\` or a newline is escaped as GNU `sha256sum` does (the line then
/// starts with `\`).
pub(crate) fn format_sums(entries: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    for (path, hex) in entries {
        if path.contains(['\\', '\n']) {
            let escaped = path.replace('\\', "\\\\").replace('\n', "\\n");
            out.push_str(&format!("\\{hex}  {escaped}\n"));
        } else {
            out.push_str(&format!("{hex}  {path}\n"));
        }
    }
    out
}

/// The sha256 of every file of the tree at `root` by relative path.
pub(crate) fn compute_sums(root: &Path) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    let mut by_target: BTreeMap<PathBuf, String> = BTreeMap::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let dir = root.join(&rel);
        let entries = std::fs::read_dir(&dir).at("read the directory", &dir)?;
        for entry in entries {
            let entry = entry.at("read the directory", &dir)?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let rel = rel.join(&name);
            let path = root.join(&rel);
            let disks = rel == Path::new(super::tree::DISKS_DIR);
            if rel == Path::new(SUMS_FILE)
                || disks
                || (name.starts_with('.') && name.ends_with(".tmp"))
            {
                continue;
            }
            // Through links, as sha256sum reads them.
            let meta = std::fs::metadata(&path).at("stat", &path)?;
            if meta.is_dir() {
                if !entry.file_type().is_ok_and(|t| t.is_symlink()) {
                    stack.push(rel);
                }
                continue;
            }
            if !meta.is_file() {
                continue;
            }
            let target = std::fs::canonicalize(&path).at("resolve", &path)?;
            let hex = match by_target.get(&target) {
                Some(hex) => hex.clone(),
                None => {
                    let hex = sha256_file(&target)?;
                    by_target.insert(target, hex.clone());
                    hex
                }
            };
            out.insert(rel.to_string_lossy().into_owned(), hex);
        }
    }
    Ok(out)
}

/// Writes `root/SHA256SUMS` (atomically) for the tree at `root`.
pub(crate) fn write_sums(root: &Path) -> Result<PathBuf> {
    let text = format_sums(&compute_sums(root)?);
    atomic::write_file(&root.join(SUMS_FILE), text.as_bytes())
}

pub(crate) fn sha256_file(path: &Path) -> Result<String> {
    let mut file = std::fs::File::open(path).at("open", path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).at("read", path)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_format_is_sha256sums() {
        let mut entries = BTreeMap::new();
        entries.insert("linux/vmlinuz-6".to_string(), "ab".repeat(32));
        entries.insert("a\\b".to_string(), "cd".repeat(32));
        assert_eq!(
            format_sums(&entries),
            format!(
                "\\{}  a\\\\b\n{}  linux/vmlinuz-6\n",
                "cd".repeat(32),
                "ab".repeat(32)
            )
        );
    }

    #[test]
    fn sha256sum_checks_the_written_list() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("linux")).unwrap();
        std::fs::create_dir_all(root.join("bars")).unwrap();
        std::fs::write(root.join("linux/vmlinuz-6.1"), "kernel").unwrap();
        std::os::unix::fs::symlink("vmlinuz-6.1", root.join("linux/vmlinuz-default")).unwrap();
        std::fs::write(root.join("bars/rootfs.img"), "squash").unwrap();
        std::fs::write(root.join("bars/.rootfs.img.x.tmp"), "half").unwrap();
        write_sums(root).unwrap();
        // Written twice: the list does not list itself.
        write_sums(root).unwrap();
        let text = std::fs::read_to_string(root.join(SUMS_FILE)).unwrap();
        let names: Vec<&str> = text.lines().map(|l| &l[66..]).collect();
        assert_eq!(
            names,
            [
                "bars/rootfs.img",
                "linux/vmlinuz-6.1",
                "linux/vmlinuz-default"
            ]
        );
        let out = std::process::Command::new("sha256sum")
            .args(["--check", "--strict", SUMS_FILE])
            .current_dir(root)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
}
