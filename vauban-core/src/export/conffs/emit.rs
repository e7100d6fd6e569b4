//! The second pass: the host layers read again top first, each planned entry
//! written at its place under its final name with its owner, mode, mtime,
//! xattrs and content, and right after an entry the hard links whose content
//! it holds: links to it when it was written, else the first link as a copy
//! of it and the others as links to that copy. A hard link thus always
//! follows its target in the archive.

use std::io::{Read, Write};

use vauban_oci::store::Store;

use super::archive::{Archive, Entry, Kind};
use super::names::show;
use super::plan::{EntryId, Plan};
use super::source::{read_layer, Flow, LayerBlob};
use crate::error::{Error, Result};

/// Writes the planned entries of `layers` (top first) into `archive`.
pub(super) fn emit<W: Write>(
    store: &Store,
    layers: &[LayerBlob],
    plan: &Plan,
    archive: &mut Archive<W>,
    dest: &std::path::Path,
) -> Result<()> {
    for (n, layer) in layers.iter().enumerate() {
        read_layer(store, layer, |entry, index| {
            let id = EntryId { layer: n, index };
            let name = plan.emit.get(&id);
            let links = plan.links.get(&id);
            if name.is_none() && links.is_none() {
                return Ok(Flow::Continue);
            }
            let meta = meta_of(entry, &format_args!("layer {}", layer.digest))?;
            write_with_links(archive, meta, entry, name, links.map(Vec::as_slice), dest)?;
            Ok(Flow::Continue)
        })?;
    }
    Ok(())
}

/// Writes `meta` under `name` (if any) with the content read from `data`, then
/// `links` as hard links to it (or the first as a copy of it).
pub(super) fn write_with_links<W: Write>(
    archive: &mut Archive<W>,
    mut meta: Entry,
    data: &mut dyn Read,
    name: Option<&Vec<u8>>,
    links: Option<&[Vec<u8>]>,
    dest: &std::path::Path,
) -> Result<()> {
    let io = |e| Error::io("write", dest, e);
    let mut links = links.unwrap_or_default().iter();
    let target = match name {
        Some(name) => name.clone(),
        None => match links.next() {
            Some(first) => first.clone(),
            None => return Ok(()),
        },
    };
    meta.name = target.clone();
    archive.append(&meta, Some(data)).map_err(io)?;
    for link in links {
        let link_meta = Entry {
            name: link.clone(),
            kind: Kind::HardLink(target.clone()),
            xattrs: Vec::new(),
            ..meta.clone()
        };
        archive.append(&link_meta, None).map_err(io)?;
    }
    Ok(())
}

/// The metadata of a layer entry (its name left empty); PAX `uid`, `gid`,
/// `mtime` and `SCHILY.xattr.*` records override the header.
pub(crate) fn meta_of<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    layer: &dyn std::fmt::Display,
) -> Result<Entry> {
    let raw = show(&entry.path_bytes());
    let bad = |reason: String| {
        Error::Oci(vauban_oci::Error::UnsafeEntry {
            entry: raw.clone(),
            reason: format!("{reason} ({layer})"),
        })
    };
    let h = entry.header();
    let number = |v: std::io::Result<u64>, what: &str| v.map_err(|e| bad(format!("{what}: {e}")));
    let mut uid = number(h.uid(), "uid")?;
    let mut gid = number(h.gid(), "gid")?;
    let mut mtime = number(h.mtime(), "mtime")?;
    let mode = h.mode().map_err(|e| bad(format!("mode: {e}")))?;
    let device = |v: std::io::Result<Option<u32>>| {
        v.map(Option::unwrap_or_default)
            .map_err(|e| bad(format!("device number: {e}")))
    };
    let kind = match h.entry_type() {
        tar::EntryType::Regular | tar::EntryType::Continuous => Kind::File(entry.size()),
        tar::EntryType::Directory => Kind::Dir,
        tar::EntryType::Symlink => {
            Kind::Symlink(entry.link_name_bytes().unwrap_or_default().into_owned())
        }
        tar::EntryType::Link => {
            Kind::HardLink(entry.link_name_bytes().unwrap_or_default().into_owned())
        }
        tar::EntryType::Char => Kind::Char(device(h.device_major())?, device(h.device_minor())?),
        tar::EntryType::Block => Kind::Block(device(h.device_major())?, device(h.device_minor())?),
        tar::EntryType::Fifo => Kind::Fifo,
        other => return Err(bad(format!("unsupported entry type {other:?}"))),
    };
    let mut xattrs = Vec::new();
    if let Some(pax) = entry
        .pax_extensions()
        .map_err(|e| bad(format!("PAX header: {e}")))?
    {
        for ext in pax {
            let ext = ext.map_err(|e| bad(format!("PAX record: {e}")))?;
            let key = ext.key_bytes();
            let int = || {
                let v = std::str::from_utf8(ext.value_bytes()).unwrap_or("");
                v.split('.').next().and_then(|s| s.parse::<u64>().ok())
            };
            if let Some(name) = key.strip_prefix(b"SCHILY.xattr.") {
                xattrs.push((name.to_vec(), ext.value_bytes().to_vec()));
            } else if key == b"uid" {
                uid = int().unwrap_or(uid);
            } else if key == b"gid" {
                gid = int().unwrap_or(gid);
            } else if key == b"mtime" {
                mtime = int().unwrap_or(0);
            }
        }
    }
    Ok(Entry {
        name: Vec::new(),
        kind,
        mode,
        uid,
        gid,
        mtime,
        xattrs,
    })
}
