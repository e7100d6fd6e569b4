//! `vauban diff --packages`: the packages each side has installed, from its
//! `/var/lib/dpkg/status` (read from the one layer that holds its newest
//! copy), compared by name and architecture: added, removed, upgraded or
//! downgraded (Debian's version order), or rebuilt with the same version.

use std::collections::BTreeMap;

use serde::Serialize;
use vauban_oci::store::Store;

use super::index::LayerIndex;
use super::side::Side;
use crate::error::{Error, Result};
use crate::export::conffs::names::ancestors;

/// Where dpkg keeps what is installed.
const STATUS: &[u8] = b"var/lib/dpkg/status";

/// The largest status file read (a big server's is a few MiB).
const STATUS_LIMIT: u64 = 256 << 20;

/// How a package differs.
#[derive(Debug, Clone, Serialize)]
pub struct PackageChange {
    /// Its name.
    pub name: String,
    /// Its architecture.
    pub arch: String,
    /// `added`, `removed`, `upgraded`, `downgraded` (or `changed` when a
    /// version cannot be read as a Debian version).
    pub change: &'static str,
    /// A's version.
    pub a: Option<String>,
    /// B's version.
    pub b: Option<String>,
}

/// What `--packages` found.
#[derive(Debug, Clone, Serialize)]
pub struct PackageReport {
    /// [`super::SCHEMA`].
    pub schema: &'static str,
    /// Packages installed on A.
    pub a_installed: usize,
    /// Packages installed on B.
    pub b_installed: usize,
    /// Those that differ, by name.
    pub changes: Vec<PackageChange>,
}

/// Compares the installed packages of `a` and `b`.
pub fn packages(store: &Store, a: &Side, b: &Side) -> Result<PackageReport> {
    let status = |side: &Side| -> Result<Vec<u8>> {
        status_of(store, side)?.ok_or_else(|| Error::Diff {
            what: side.name.clone(),
            reason: "it has no /var/lib/dpkg/status: no package list to compare".into(),
        })
    };
    let pa = installed(&status(a)?);
    let pb = installed(&status(b)?);
    let mut changes = Vec::new();
    for (key, va) in &pa {
        let change = match pb.get(key) {
            None => "removed",
            Some(vb) if vb == va => continue,
            Some(vb) => match (
                va.parse::<debversion::Version>(),
                vb.parse::<debversion::Version>(),
            ) {
                (Ok(x), Ok(y)) if x < y => "upgraded",
                (Ok(x), Ok(y)) if x > y => "downgraded",
                _ => "changed",
            },
        };
        changes.push(PackageChange {
            name: key.0.clone(),
            arch: key.1.clone(),
            change,
            a: Some(va.clone()),
            b: pb.get(key).cloned(),
        });
    }
    for (key, vb) in &pb {
        if !pa.contains_key(key) {
            changes.push(PackageChange {
                name: key.0.clone(),
                arch: key.1.clone(),
                change: "added",
                a: None,
                b: Some(vb.clone()),
            });
        }
    }
    changes.sort_by(|x, y| (&x.name, &x.arch).cmp(&(&y.name, &y.arch)));
    Ok(PackageReport {
        schema: super::SCHEMA,
        a_installed: pa.len(),
        b_installed: pb.len(),
        changes,
    })
}

/// The dpkg status file of `side`, `None` when it has none: its sources'
/// indexes read from the top until one has it or deletes it.
fn status_of(store: &Store, side: &Side) -> Result<Option<Vec<u8>>> {
    for source in &side.sources {
        let index: LayerIndex = source.index(store)?;
        if let Some(node) = index.nodes.get(STATUS) {
            let path = node.hardlink.clone().unwrap_or_else(|| STATUS.to_vec());
            let wanted = [path.clone()].into_iter().collect();
            let last = node.entry.filter(|_| node.hardlink.is_none());
            let mut got = source.contents(store, &wanted, STATUS_LIMIT, last)?;
            return got.remove(&path).map(Some).ok_or_else(|| Error::Diff {
                what: source.describe(),
                reason: "its index names /var/lib/dpkg/status but the layer does not hold it"
                    .into(),
            });
        }
        let deleted = index.whiteouts.contains(STATUS)
            || index.opaque.contains(&b""[..])
            || ancestors(STATUS).any(|d| index.whiteouts.contains(d) || index.opaque.contains(d));
        if deleted {
            return Ok(None);
        }
    }
    Ok(None)
}

/// The installed packages of a dpkg status file: (name, architecture) →
/// version.
fn installed(status: &[u8]) -> BTreeMap<(String, String), String> {
    let text = String::from_utf8_lossy(status);
    let mut out = BTreeMap::new();
    for stanza in text.split("\n\n") {
        let mut name = None;
        let mut arch = None;
        let mut version = None;
        let mut state = None;
        for line in stanza.lines() {
            let Some((key, value)) = line.split_once(':') else {
                continue;
            };
            let value = value.trim();
            // dpkg reads field names in any case.
            match key.to_ascii_lowercase().as_str() {
                "package" => name = Some(value),
                "architecture" => arch = Some(value),
                "version" => version = Some(value),
                "status" => state = Some(value),
                _ => {}
            }
        }
        // `install ok installed`, or `hold ok installed`: on disk.
        if let (Some(n), Some(v), Some(s)) = (name, version, state) {
            if s.ends_with(" installed") {
                // The image's words, printed: quoted as names are.
                let quote = |t: &str| super::node::quote_name(t.as_bytes());
                let key = (quote(n), quote(arch.unwrap_or("all")));
                out.insert(key, quote(v));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn installed_packages_are_read_from_the_status_file() {
        let status = b"Package: bash\nStatus: install ok installed\nArchitecture: amd64\nVersion: 5.2.15-2+b2\n\n\
Package: gone\nStatus: deinstall ok config-files\nArchitecture: amd64\nVersion: 1.0\n\n\
Package: tzdata\nStatus: hold ok installed\nArchitecture: all\nVersion: 2024a-0+deb12u1\n";
        let p = installed(status);
        assert_eq!(p.len(), 2, "{p:?}");
        assert_eq!(p[&("bash".into(), "amd64".into())], "5.2.15-2+b2");
        assert!(p.contains_key(&("tzdata".to_string(), "all".to_string())));
        // A hostile status: fields in another case, a name that would
        // drive the terminal.
        let hostile = b"package: bash\x1b[2J\rEVIL\nstatus: install ok installed\narchitecture: amd64\nversion: 1\n";
        let p = installed(hostile);
        let (name, _) = p.keys().next().unwrap();
        assert_eq!(name, "bash\\x1b[2J\\x0dEVIL");
    }

    #[test]
    fn versions_compare_in_debian_order() {
        let x: debversion::Version = "1.0~rc1-1".parse().unwrap();
        let y: debversion::Version = "1.0-1".parse().unwrap();
        assert!(x < y, "a tilde sorts before the release");
        let e: debversion::Version = "1:0.9-1".parse().unwrap();
        assert!(y < e, "an epoch wins");
    }
}
