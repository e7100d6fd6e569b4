//! Decrypting the original's `vault/HOST.tar.gpg` files. OpenPGP is not
//! reimplemented here: the real `gpg` does it (package `gnupg`), as the
//! original did (`gpg -d --no-symkey-cache --pinentry-mode loopback
//! --passphrase-fd 0`).
//!
//! The passphrase is the first line of the passphrase file, as `gpg
//! --passphrase-file` and the original's `echo "$VAULTED_SSHD_KEYS_KEY" | gpg
//! --passphrase-fd 0` take it. vauban reads that file once and hands the line
//! to each `gpg` on its standard input, so the file may be a pipe
//! (`--passphrase-file <(pass show vault-key)`). Each `gpg` runs with a fresh
//! private home (the user's keyrings and agent are never touched), in batch
//! mode with no agent started (`--no-autostart`: symmetric decryption with the
//! passphrase given needs none, and none is left running). The decrypted
//! tarball is read from its standard output into memory, never written to disk.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use zeroize::Zeroizing;

use super::files::HostFiles;
use super::tarball;
use super::Ignored;
use crate::error::{Error, IoContext, Result};
use crate::keys::host::check_host;

/// The suffix of the original's encrypted tarballs.
const SUFFIX: &str = ".tar.gpg";

/// The largest decrypted tarball read: six key files take about 20 KiB.
const MAX_TARBALL: u64 = 1 << 20;

/// How much of gpg's stderr an error quotes, from its end.
const STDERR_TAIL: usize = 600;

/// Reads the key files of every `HOST.tar.gpg` of `path` (a directory or one file).
pub(super) fn read(path: &Path, passphrase_file: &Path) -> Result<(Vec<HostFiles>, Vec<Ignored>)> {
    let passphrase = read_passphrase(passphrase_file)?;
    let mut ignored = Vec::new();
    let meta = std::fs::metadata(path).at("read", path)?;
    let tarballs = if meta.is_dir() {
        let mut tarballs = Vec::new();
        let entries = std::fs::read_dir(path).at("read the directory", path)?;
        for entry in entries {
            let entry = entry.at("read the directory", path)?;
            let file = entry.path();
            if file.is_file() && host_of(&file).is_some() {
                tarballs.push(file);
            } else {
                ignored.push(Ignored {
                    file: file.display().to_string(),
                    reason: "not a HOST.tar.gpg file",
                });
            }
        }
        tarballs.sort();
        ignored.sort_by(|a, b| a.file.cmp(&b.file));
        tarballs
    } else {
        vec![path.to_owned()]
    };
    let mut hosts = Vec::new();
    for file in &tarballs {
        let host = host_of(file).ok_or_else(|| Error::NothingToImport {
            path: file.clone(),
            expected: "not a HOST.tar.gpg file",
        })?;
        check_host(&host)?;
        let plaintext = decrypt(file, &passphrase)?;
        hosts.push(tarball::read(file, &host, &plaintext)?);
    }
    Ok((hosts, ignored))
}

/// The host of `DIR/HOST.tar.gpg` (any name that is not UTF-8 is not one).
fn host_of(file: &Path) -> Option<String> {
    let name = file.file_name()?.to_str()?;
    name.strip_suffix(SUFFIX)
        .filter(|host| !host.is_empty())
        .map(str::to_owned)
}

/// The first line of the passphrase file, without its line end.
fn read_passphrase(path: &Path) -> Result<Zeroizing<Vec<u8>>> {
    let mut text = Zeroizing::new(Vec::new());
    std::fs::File::open(path)
        .and_then(|f| f.take(64 << 10).read_to_end(&mut text))
        .at("read the passphrase file", path)?;
    let line = text.split(|b| *b == b'\n').next().unwrap_or_default();
    if line.is_empty() {
        return Err(Error::EmptyPassphrase {
            path: path.to_owned(),
        });
    }
    Ok(Zeroizing::new(line.to_vec()))
}

/// The arguments of `gpg` that decrypt `input` to stdout with its own `home`,
/// the passphrase read from stdin.
pub(super) fn args(home: &Path, input: &Path) -> Vec<OsString> {
    let mut args: Vec<OsString> = [
        "--homedir".as_ref(),
        home.as_os_str(),
        "--batch".as_ref(),
        "--quiet".as_ref(),
        "--no-tty".as_ref(),
        "--no-autostart".as_ref(),
        "--no-symkey-cache".as_ref(),
        "--pinentry-mode".as_ref(),
        "loopback".as_ref(),
        "--passphrase-fd".as_ref(),
        "0".as_ref(),
        "--decrypt".as_ref(),
        "--".as_ref(),
    ]
    .into_iter()
    .map(std::ffi::OsStr::to_owned)
    .collect();
    args.push(input.as_os_str().to_owned());
    args
}

/// Runs `gpg` on `input`: its decryption, in memory.
fn decrypt(input: &Path, passphrase: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
    // gpg warns about a home that others may enter: 0700 whatever the umask.
    let home = tempfile::Builder::new()
        .prefix("vauban-gpg-")
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .tempdir()
        .at("create a temp dir for gpg", std::env::temp_dir())?;
    let mut child = Command::new("gpg")
        .args(args(home.path(), input))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| Error::RunGpg {
            file: input.to_owned(),
            source,
        })?;
    let mut stderr = child.stderr.take().expect("stderr is piped");
    let stderr = std::thread::spawn(move || {
        let mut text = Vec::new();
        let _ = stderr.read_to_end(&mut text);
        text
    });
    // The passphrase fits in the pipe's buffer: this write does not wait for gpg.
    // gpg may exit before reading it (a file it cannot open): its status says why.
    let mut stdin = child.stdin.take().expect("stdin is piped");
    let _ = stdin
        .write_all(passphrase)
        .and_then(|()| stdin.write_all(b"\n"));
    drop(stdin);
    let mut plaintext = Zeroizing::new(Vec::with_capacity(64 << 10));
    let read = child
        .stdout
        .take()
        .expect("stdout is piped")
        .take(MAX_TARBALL + 1)
        .read_to_end(&mut plaintext);
    if plaintext.len() as u64 > MAX_TARBALL {
        let _ = child.kill();
    }
    let status = child.wait().at("wait for gpg on", input)?;
    let stderr = stderr.join().unwrap_or_default();
    if plaintext.len() as u64 > MAX_TARBALL {
        return Err(Error::BadTarball {
            tarball: input.to_owned(),
            source: std::io::Error::other("larger than 1 MiB, which no key tarball is"),
        });
    }
    if !status.success() {
        return Err(Error::Gpg {
            file: input.to_owned(),
            status: status.to_string(),
            stderr: tail(&stderr),
        });
    }
    read.at("read gpg's output for", input)?;
    Ok(plaintext)
}

/// The end of gpg's stderr on one line, escaped.
fn tail(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let text = text.trim().replace('\n', " / ");
    let start = text
        .char_indices()
        .rev()
        .nth(STDERR_TAIL)
        .map_or(0, |(i, _)| i);
    crate::printable::escape(&text[start..]).into_owned()
}
