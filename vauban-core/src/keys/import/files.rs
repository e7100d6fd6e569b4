//! The key files of one host, gathered from a directory or a tarball, and the
//! rules they follow: the six files of the three kinds, each private key with
//! its `.pub`; DSA and RSA1 keys left out (sshd has not offered them by default
//! since OpenSSH 7.0, so no client knows a host by them); any other
//! `ssh_host_*` name refused.

use std::collections::BTreeMap;

use zeroize::Zeroizing;

use super::Ignored;
use crate::error::{Error, Result};
use crate::keys::host::{check_host, HostKeys};
use crate::keys::kind::KeyKind;
use crate::keys::KeyProblem;

/// The largest key file read (an RSA 16384 private key is about 12 KiB).
pub(super) const MAX_KEY_FILE: u64 = 64 << 10;

/// The prefix of the names of host key files.
pub(super) const KEY_PREFIX: &str = "ssh_host_";

/// Key files sshd no longer uses by default, left out.
const LEFT_OUT: [&str; 4] = [
    "ssh_host_dsa_key",
    "ssh_host_dsa_key.pub",
    "ssh_host_key",
    "ssh_host_key.pub",
];

/// Why [`LEFT_OUT`] files are left out.
const LEFT_OUT_REASON: &str =
    "DSA and RSA1 host keys are not kept (sshd has not used them by default since OpenSSH 7.0)";

/// The key files of one host, by file name.
pub(super) struct HostFiles {
    host: String,
    /// Where the host's keys are read, for messages.
    origin: String,
    /// What a file name is prefixed with to name the file in messages.
    prefix: String,
    files: BTreeMap<&'static str, Zeroizing<String>>,
    pub(super) ignored: Vec<Ignored>,
}

impl HostFiles {
    /// An empty set for `host`, read at `origin`; a file `NAME` is shown as
    /// `PREFIX` + `NAME` in messages.
    pub(super) fn new(host: &str, origin: String, prefix: String) -> Result<Self> {
        check_host(host)?;
        Ok(HostFiles {
            host: host.to_owned(),
            origin,
            prefix,
            files: BTreeMap::new(),
            ignored: Vec::new(),
        })
    }

    /// The file `name` in messages.
    pub(super) fn show(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// Adds the file `name` (an `ssh_host_*` name under `etc/ssh`) with `contents`.
    pub(super) fn add(&mut self, name: &str, contents: Zeroizing<Vec<u8>>) -> Result<()> {
        if LEFT_OUT.contains(&name) {
            self.ignored.push(Ignored {
                file: self.show(name),
                reason: LEFT_OUT_REASON,
            });
            return Ok(());
        }
        let Some(known) = KeyKind::ALL
            .iter()
            .flat_map(|kind| [kind.private_file(), kind.public_file()])
            .find(|known| *known == name)
        else {
            return Err(Error::UnknownKeyFile {
                file: self.show(name),
            });
        };
        let bad = |problem| Error::BadKeyFile {
            file: self.show(name),
            problem,
        };
        if contents.len() as u64 > MAX_KEY_FILE {
            return Err(bad(KeyProblem::TooLarge));
        }
        let text = std::str::from_utf8(&contents).map_err(|_| bad(KeyProblem::NotText))?;
        self.files.insert(known, Zeroizing::new(text.to_owned()));
        Ok(())
    }

    /// The host's keys, checked: every kind with both halves, each a pair.
    pub(super) fn finish(mut self) -> Result<(HostKeys, Vec<Ignored>)> {
        let pairs = [
            self.pair(KeyKind::Ed25519)?,
            self.pair(KeyKind::Ecdsa)?,
            self.pair(KeyKind::Rsa)?,
        ];
        let keys = HostKeys::from_files(&self.host, pairs).map_err(|(kind, problem)| {
            let name = if problem.in_public_file() {
                kind.public_file()
            } else {
                kind.private_file()
            };
            Error::BadKeyFile {
                file: self.show(name),
                problem,
            }
        })?;
        Ok((keys, self.ignored))
    }

    /// The two files of `kind`: the private key's text and the `.pub`'s.
    fn pair(&mut self, kind: KeyKind) -> Result<(Zeroizing<String>, String)> {
        let (private, public) = (kind.private_file(), kind.public_file());
        match (self.files.remove(private), self.files.remove(public)) {
            (Some(key), Some(line)) => Ok((key, line.as_str().to_owned())),
            (None, None) => Err(Error::MissingKind {
                origin: self.origin.clone(),
                host: self.host.clone(),
                kind,
                file: private,
            }),
            (Some(_), None) => Err(self.missing(public, private)),
            (None, Some(_)) => Err(self.missing(private, public)),
        }
    }

    fn missing(&self, missing: &str, there: &str) -> Error {
        Error::MissingHalf {
            file: self.show(missing),
            other: there.to_owned(),
        }
    }
}
