//! Repacking a rootfs tarball (uncompressed stream) into a normalised layer:
//! names made relative, hostile entries refused, xattrs filtered, mtimes
//! clamped, in the input's order, streaming.

use std::io::{Read, Write};

use super::entry::{EntryParser, Parsed};
use super::pack::Excludes;
use super::path::{unsafe_entry, EntryPath};
use super::writer::LayerWriter;
use super::xattr;
use super::{PackOptions, PackedLayer, WHITEOUT_PREFIX};
use crate::error::{Error, Result};
use crate::tar_writer::{Entry, Kind};

/// Reads the uncompressed tar `input` (e.g. a rootfs tarball) and writes it as a
/// layer into `out`. Names with `..`, whiteout names and unsupported entry types
/// are refused with [`Error::UnsafeEntry`].
pub fn repack_tar(input: impl Read, opts: &PackOptions, out: impl Write) -> Result<PackedLayer> {
    let excludes = Excludes::new(&opts.exclude)?;
    let mut writer = LayerWriter::new(out, opts.compression, opts.source_date_epoch);
    let tar_err = |source| Error::Tar {
        what: "input tarball".into(),
        source,
    };
    let mut parser = EntryParser::default();
    let mut archive = tar::Archive::new(input);
    for entry in archive.entries().map_err(tar_err)?.raw(true) {
        let mut entry = entry.map_err(tar_err)?;
        let Some(Parsed {
            raw,
            path,
            kind,
            attrs,
        }) = parser.parse(&mut entry)?
        else {
            continue;
        };
        if excludes.excludes(&path.0) {
            continue;
        }
        if path
            .0
            .iter()
            .any(|c| c.starts_with(WHITEOUT_PREFIX.as_bytes()))
        {
            return Err(unsafe_entry(&raw, "whiteout name in a rootfs tarball"));
        }
        let kind = match kind {
            Kind::HardLink(t) => {
                let t = EntryPath::parse(&t)
                    .map_err(|_| unsafe_entry(&raw, "hard link target with `..`"))?;
                if t.is_root() {
                    return Err(unsafe_entry(&raw, "hard link to the root"));
                }
                Kind::HardLink(t.to_bytes())
            }
            k => k,
        };
        if path.is_root() && kind != Kind::Dir {
            return Err(unsafe_entry(&raw, "the root `.` may only be a directory"));
        }
        let meta = Entry {
            name: path.tar_name(kind == Kind::Dir),
            kind,
            mode: attrs.mode & 0o7777,
            uid: attrs.uid.into(),
            gid: attrs.gid.into(),
            mtime: attrs.mtime.max(0) as u64,
            xattrs: xattr::for_layer(attrs.xattrs),
        };
        let data: Option<&mut dyn Read> = match meta.kind {
            Kind::File(_) => Some(&mut entry),
            _ => None,
        };
        writer.append(meta, data).map_err(|source| Error::Tar {
            what: format!("entry {:?}", String::from_utf8_lossy(&raw)),
            source,
        })?;
    }
    let (_, layer) = writer.finish().map_err(|source| Error::Tar {
        what: "layer output".into(),
        source,
    })?;
    Ok(layer)
}
