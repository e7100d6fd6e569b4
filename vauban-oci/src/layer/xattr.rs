//! Extended attributes: reading them for packing, filtering overlay metadata,
//! converting `security.capability` v3 to v2, escaping overlay xattrs on apply.

use std::borrow::Cow;
use std::io;
use std::os::fd::AsFd;
use std::path::Path;

use rustix::fs::XattrFlags;

/// An xattr name and value.
pub(crate) type Xattr = (Vec<u8>, Vec<u8>);

const CAPABILITY: &[u8] = b"security.capability";
const VFS_CAP_REVISION_MASK: u32 = 0xff00_0000;
const VFS_CAP_REVISION_2: u32 = 0x0200_0000;
const VFS_CAP_REVISION_3: u32 = 0x0300_0000;
const VFS_CAP_V2_LEN: usize = 20;
const VFS_CAP_V3_LEN: usize = 24;

/// True for overlayfs metadata (`trusted.overlay.*`, `user.overlay.*`, any
/// `<namespace>.overlay.*`).
pub(crate) fn is_overlay(name: &[u8]) -> bool {
    match name.iter().position(|&b| b == b'.') {
        Some(i) => name[i + 1..].starts_with(b"overlay."),
        None => false,
    }
}

/// Escapes an overlay xattr found in a layer the way overlayfs does
/// (`user.overlay.X` -> `user.overlay.overlay.X`), so that it is shown, not obeyed.
pub(crate) fn escape_overlay(name: &[u8]) -> Cow<'_, [u8]> {
    if !is_overlay(name) {
        return Cow::Borrowed(name);
    }
    let dot = name.iter().position(|&b| b == b'.').unwrap_or(0) + 1 + b"overlay.".len();
    let mut out = name[..dot].to_vec();
    out.extend_from_slice(b"overlay.");
    out.extend_from_slice(&name[dot..]);
    Cow::Owned(out)
}

/// Undoes [`escape_overlay`] on a name read from a layer dir: `Some` of the
/// name as a layer holds it, `None` for overlayfs's own metadata (not escaped).
pub(crate) fn unescape_overlay(name: &[u8]) -> Option<Vec<u8>> {
    if !is_overlay(name) {
        return Some(name.to_vec());
    }
    let dot = name.iter().position(|&b| b == b'.').unwrap_or(0) + 1 + b"overlay.".len();
    let rest = name[dot..].strip_prefix(b"overlay.")?;
    let mut out = name[..dot].to_vec();
    out.extend_from_slice(rest);
    Some(out)
}

/// Converts a `security.capability` v3 value (with a namespace root id, as
/// written by `setcap` inside a user namespace) to v2; other values unchanged.
pub(crate) fn capability_to_v2(value: &[u8]) -> Cow<'_, [u8]> {
    if value.len() != VFS_CAP_V3_LEN {
        return Cow::Borrowed(value);
    }
    let magic = u32::from_le_bytes([value[0], value[1], value[2], value[3]]);
    if magic & VFS_CAP_REVISION_MASK != VFS_CAP_REVISION_3 {
        return Cow::Borrowed(value);
    }
    let magic = (magic & !VFS_CAP_REVISION_MASK) | VFS_CAP_REVISION_2;
    let mut out = value[..VFS_CAP_V2_LEN].to_vec();
    out[..4].copy_from_slice(&magic.to_le_bytes());
    Cow::Owned(out)
}

/// Prepares xattrs for a layer: overlay metadata dropped, capabilities as v2,
/// sorted by name.
pub(crate) fn for_layer(xattrs: Vec<Xattr>) -> Vec<Xattr> {
    let mut out: Vec<Xattr> = xattrs
        .into_iter()
        .filter(|(n, _)| !is_overlay(n))
        .map(|(n, v)| {
            let v = if n == CAPABILITY {
                capability_to_v2(&v).into_owned()
            } else {
                v
            };
            (n, v)
        })
        .collect();
    out.sort();
    out
}

/// All xattrs of `path` (not following a final symlink); none where unsupported.
pub(crate) fn read_all(path: &Path) -> io::Result<Vec<Xattr>> {
    let mut names = vec![0u8; 1024];
    let len = loop {
        match rustix::fs::llistxattr(path, &mut names[..]) {
            Ok(n) => break n,
            Err(rustix::io::Errno::RANGE) => {
                let n = rustix::fs::llistxattr_query(path)?;
                names.resize(n.max(names.len() * 2), 0);
            }
            Err(rustix::io::Errno::NOTSUP) => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        }
    };
    let mut out = Vec::new();
    for name in names[..len].split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let mut value = vec![0u8; 256];
        let n = loop {
            match rustix::fs::lgetxattr(path, name, &mut value[..]) {
                Ok(n) => break Some(n),
                Err(rustix::io::Errno::RANGE) => {
                    let n = rustix::fs::lgetxattr_query(path, name)?;
                    value.resize(n.max(value.len() * 2), 0);
                }
                // Removed meanwhile.
                Err(rustix::io::Errno::NODATA) => break None,
                Err(e) => return Err(e.into()),
            }
        };
        if let Some(n) = n {
            value.truncate(n);
            out.push((name.to_vec(), value));
        }
    }
    Ok(out)
}

/// Sets an xattr through an open file or directory.
pub(crate) fn set_fd(fd: impl AsFd, name: &[u8], value: &[u8]) -> io::Result<()> {
    rustix::fs::fsetxattr(fd, name, value, XattrFlags::empty()).map_err(Into::into)
}

/// Sets an xattr on `name` inside the directory `parent` without following it
/// (for symlinks and special files, which cannot be opened for this).
pub(crate) fn set_at(parent: impl AsFd, entry: &[u8], name: &[u8], value: &[u8]) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    use std::os::unix::ffi::OsStrExt;
    let mut path = format!("/proc/self/fd/{}/", parent.as_fd().as_raw_fd()).into_bytes();
    path.extend_from_slice(entry);
    let path = std::ffi::OsStr::from_bytes(&path);
    rustix::fs::lsetxattr(path, name, value, XattrFlags::empty()).map_err(Into::into)
}

/// The value of the overlay xattr `*.overlay<suffix>` (in the `trusted` or
/// `user` namespace) among `raw`.
pub(crate) fn overlay_value<'a>(raw: &'a [Xattr], suffix: &[u8]) -> Option<&'a [u8]> {
    raw.iter()
        .find(|(n, _)| {
            (n.starts_with(b"trusted.overlay.") || n.starts_with(b"user.overlay."))
                && n.ends_with(suffix)
                && n.iter().filter(|&&b| b == b'.').count() == 2
        })
        .map(|(_, v)| v.as_slice())
}

/// Whether xattrs `raw` mark an opaque overlay directory.
pub(crate) fn is_opaque(raw: &[Xattr]) -> bool {
    overlay_value(raw, b".opaque") == Some(b"y")
}

/// Whether the directory `dir` is marked opaque for overlayfs
/// (`user.overlay.opaque` or `trusted.overlay.opaque` = `y`).
pub fn is_opaque_dir(dir: impl AsFd) -> bool {
    let dir = dir.as_fd();
    let raw: Vec<Xattr> = [b"user.overlay.opaque".as_slice(), b"trusted.overlay.opaque"]
        .iter()
        .filter_map(|name| {
            let mut buf = [0u8; 4];
            let n = rustix::fs::fgetxattr(dir, *name, &mut buf).ok()?;
            Some((name.to_vec(), buf[..n.min(4)].to_vec()))
        })
        .collect();
    is_opaque(&raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlay_names() {
        assert!(is_overlay(b"trusted.overlay.opaque"));
        assert!(is_overlay(b"user.overlay.origin"));
        assert!(!is_overlay(b"user.overlayfoo"));
        assert!(!is_overlay(b"security.capability"));
        assert_eq!(
            &*escape_overlay(b"user.overlay.opaque"),
            b"user.overlay.overlay.opaque"
        );
        assert_eq!(
            &*escape_overlay(b"trusted.overlay.x"),
            b"trusted.overlay.overlay.x"
        );
        assert_eq!(&*escape_overlay(b"user.mime"), b"user.mime");
        for n in [
            b"user.overlay.opaque".as_slice(),
            b"trusted.overlay.x",
            b"user.mime",
        ] {
            assert_eq!(unescape_overlay(&escape_overlay(n)).as_deref(), Some(n));
        }
        assert_eq!(unescape_overlay(b"user.overlay.opaque"), None);
    }

    #[test]
    fn capability_v3_becomes_v2() {
        let mut v3 = Vec::new();
        v3.extend_from_slice(&(VFS_CAP_REVISION_3 | 1).to_le_bytes());
        v3.extend_from_slice(&[0x00, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        v3.extend_from_slice(&100000u32.to_le_bytes());
        let v2 = capability_to_v2(&v3);
        assert_eq!(v2.len(), VFS_CAP_V2_LEN);
        assert_eq!(&v2[..4], &(VFS_CAP_REVISION_2 | 1).to_le_bytes());
        assert_eq!(&v2[4..], &v3[4..20]);
        assert_eq!(&*capability_to_v2(&v2), &*v2);
    }
}
