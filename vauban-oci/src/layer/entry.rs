//! Reading one tar entry of a layer: normalised name, type, and attributes with
//! PAX records (uid, gid, mtime, `SCHILY.xattr.*`) applied.

use std::io::Read;

use super::path::{unsafe_entry, EntryPath};
use super::xattr::Xattr;
use crate::error::Result;
use crate::tar_writer::Kind;

/// Attributes of an entry, PAX records applied.
pub(crate) struct Attrs {
    /// Permission bits.
    pub(crate) mode: u32,
    /// Owner.
    pub(crate) uid: u32,
    /// Group.
    pub(crate) gid: u32,
    /// Modification time.
    pub(crate) mtime: i64,
    /// Extended attributes as found.
    pub(crate) xattrs: Vec<Xattr>,
}

/// One parsed entry.
pub(crate) struct Parsed {
    /// The name as found in the stream (for messages).
    pub(crate) raw: Vec<u8>,
    /// The normalised name.
    pub(crate) path: EntryPath,
    /// Type (a hard link's target is as found, not normalised).
    pub(crate) kind: Kind,
    /// Attributes.
    pub(crate) attrs: Attrs,
}

/// Largest PAX or GNU long-name record accepted.
const MAX_META: u64 = 1 << 20;

/// Reads entries in raw mode, applying PAX records and GNU long names itself:
/// the `tar` crate splits PAX records on newlines, which binary xattr values
/// (capabilities) may contain.
#[derive(Default)]
pub(crate) struct EntryParser {
    pax: Option<Vec<u8>>,
    long_name: Option<Vec<u8>>,
    long_link: Option<Vec<u8>>,
}

impl EntryParser {
    /// Parses an entry; `None` for metadata entries (PAX headers, GNU long
    /// names), whose content applies to the next entry.
    pub(crate) fn parse<R: Read>(&mut self, e: &mut tar::Entry<'_, R>) -> Result<Option<Parsed>> {
        let ty = e.header().entry_type();
        let slot = match ty {
            tar::EntryType::XGlobalHeader => None,
            tar::EntryType::XHeader => Some(&mut self.pax),
            tar::EntryType::GNULongName => Some(&mut self.long_name),
            tar::EntryType::GNULongLink => Some(&mut self.long_link),
            _ => return self.real(e).map(Some),
        };
        let raw = e.path_bytes().into_owned();
        if e.size() > MAX_META {
            return Err(unsafe_entry(
                &raw,
                format!("metadata entry of {} bytes", e.size()),
            ));
        }
        let mut data = Vec::new();
        e.read_to_end(&mut data)
            .map_err(|_| unsafe_entry(&raw, "truncated metadata entry"))?;
        if let Some(slot) = slot {
            // Readers disagree on which of two headers wins (tar-rs refuses two
            // PAX headers, GNU tar takes the last): an ambiguous name is refused.
            if slot.is_some() {
                return Err(unsafe_entry(
                    &raw,
                    "two metadata headers of the same type for one entry",
                ));
            }
            if ty != tar::EntryType::XHeader {
                while data.last() == Some(&0) {
                    data.pop();
                }
            }
            *slot = Some(data);
        }
        Ok(None)
    }

    fn real<R: Read>(&mut self, e: &mut tar::Entry<'_, R>) -> Result<Parsed> {
        let pax = self.pax.take().map(|p| parse_pax(&p)).transpose();
        let long_name = self.long_name.take();
        let long_link = self.long_link.take();
        let mut raw = long_name
            .clone()
            .unwrap_or_else(|| e.path_bytes().into_owned());
        let mut link = long_link
            .clone()
            .or_else(|| e.link_name_bytes().map(|l| l.into_owned()));
        let pax = pax
            .map_err(|why| unsafe_entry(&raw, why))?
            .unwrap_or_default();
        let h = e.header();
        let bad = |raw: &[u8], what: &str| unsafe_entry(raw, format!("bad {what} field"));
        for (k, v) in &pax {
            let long = match k.as_slice() {
                b"path" => &long_name,
                b"linkpath" => &long_link,
                _ => continue,
            };
            // A GNU long name and a PAX record naming different things: readers
            // disagree on which one wins, so neither is trusted.
            if long.as_ref().is_some_and(|l| l != v) {
                return Err(unsafe_entry(&raw, "GNU long name and PAX record disagree"));
            }
            if k == b"path" {
                raw = v.clone();
            } else {
                link = Some(v.clone());
            }
        }
        let mode = h.mode().map_err(|_| bad(&raw, "mode"))?;
        let mut uid = h.uid().map_err(|_| bad(&raw, "uid"))?;
        let mut gid = h.gid().map_err(|_| bad(&raw, "gid"))?;
        let mut mtime = h.mtime().map_err(|_| bad(&raw, "mtime"))? as i64;
        let mut xattrs = Vec::new();
        for (k, v) in pax {
            let num = || {
                std::str::from_utf8(&v)
                    .ok()
                    .and_then(|s| s.split('.').next()?.parse::<i64>().ok())
            };
            match k.as_slice() {
                b"uid" => uid = num().ok_or_else(|| bad(&raw, "PAX uid"))? as u64,
                b"gid" => gid = num().ok_or_else(|| bad(&raw, "PAX gid"))? as u64,
                b"mtime" => mtime = num().ok_or_else(|| bad(&raw, "PAX mtime"))?,
                b"size" => {
                    if num() != Some(e.size() as i64) {
                        return Err(unsafe_entry(&raw, "PAX size differs from the header size"));
                    }
                }
                k if k.starts_with(b"GNU.sparse.") => {
                    return Err(unsafe_entry(&raw, "sparse files are not supported"))
                }
                k => {
                    if let Some(name) = k.strip_prefix(b"SCHILY.xattr.") {
                        xattrs.push((name.to_vec(), v.clone()));
                    }
                }
            }
        }
        // u32::MAX means "unchanged" to chown: refuse it with the rest.
        let uid = u32::try_from(uid)
            .ok()
            .filter(|&u| u != u32::MAX)
            .ok_or_else(|| bad(&raw, "uid"))?;
        let gid = u32::try_from(gid)
            .ok()
            .filter(|&g| g != u32::MAX)
            .ok_or_else(|| bad(&raw, "gid"))?;
        let attrs = Attrs {
            mode,
            uid,
            gid,
            mtime,
            xattrs,
        };
        let path = EntryPath::parse(&raw)?;
        let link = || -> Result<Vec<u8>> {
            link.clone()
                .filter(|l| !l.is_empty())
                .ok_or_else(|| unsafe_entry(&raw, "link without a target"))
        };
        let dev = |what| -> Result<(u32, u32)> {
            let ma = h.device_major().ok().flatten();
            let mi = h.device_minor().ok().flatten();
            ma.zip(mi)
                .ok_or_else(|| unsafe_entry(&raw, format!("bad {what} device numbers")))
        };
        let kind = match h.entry_type() {
            tar::EntryType::Regular | tar::EntryType::Continuous if raw.ends_with(b"/") => {
                Kind::Dir
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => Kind::File(e.size()),
            tar::EntryType::Directory => Kind::Dir,
            tar::EntryType::Symlink => Kind::Symlink(link()?),
            tar::EntryType::Link => Kind::HardLink(link()?),
            tar::EntryType::Char => {
                let (ma, mi) = dev("char")?;
                Kind::Char(ma, mi)
            }
            tar::EntryType::Block => {
                let (ma, mi) = dev("block")?;
                Kind::Block(ma, mi)
            }
            tar::EntryType::Fifo => Kind::Fifo,
            other => {
                return Err(unsafe_entry(
                    &raw,
                    format!("unsupported entry type {other:?}"),
                ))
            }
        };
        if !matches!(kind, Kind::File(_)) && e.size() != 0 && !matches!(kind, Kind::HardLink(_)) {
            return Err(unsafe_entry(&raw, "data on a non-file entry"));
        }
        Ok(Parsed {
            raw,
            path,
            kind,
            attrs,
        })
    }

    /// True when metadata entries are waiting for an entry (a truncated stream).
    pub(crate) fn dangling(&self) -> bool {
        self.pax.is_some() || self.long_name.is_some() || self.long_link.is_some()
    }
}

/// Parses PAX records into (key, value) pairs `"<len> <key>=<value>\n"`, values being arbitrary bytes.
fn parse_pax(mut data: &[u8]) -> std::result::Result<Vec<Xattr>, &'static str> {
    let mut out = Vec::new();
    let mut seen = std::collections::HashSet::new();
    while !data.is_empty() {
        let sp = data
            .iter()
            .position(|&b| b == b' ')
            .ok_or("malformed PAX record")?;
        let len: usize = std::str::from_utf8(&data[..sp])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or("malformed PAX record length")?;
        if len <= sp + 1 || len > data.len() || data[len - 1] != b'\n' {
            return Err("malformed PAX record");
        }
        let kv = &data[sp + 1..len - 1];
        let eq = kv
            .iter()
            .position(|&b| b == b'=')
            .ok_or("malformed PAX record")?;
        let key = &kv[..eq];
        // tar-rs takes the first of two records, GNU tar the last: refuse both.
        if !seen.insert(key) {
            return Err("duplicate PAX record");
        }
        out.push((key.to_vec(), kv[eq + 1..].to_vec()));
        data = &data[len..];
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_values_may_hold_newlines() {
        let rec = b"20 SCHILY.xattr.a=\n\n12 path=abc\n";
        let p = parse_pax(rec).unwrap();
        assert_eq!(p[0], (b"SCHILY.xattr.a".to_vec(), b"\n".to_vec()));
        assert_eq!(p[1], (b"path".to_vec(), b"abc".to_vec()));
        assert!(parse_pax(b"99 path=x\n").is_err());
        assert!(parse_pax(b"x path=x\n").is_err());
        assert!(parse_pax(b"12 path=abc\n12 path=abd\n").is_err());
    }
}
