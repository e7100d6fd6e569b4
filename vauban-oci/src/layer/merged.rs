//! Host-side reads of an image's files in its layer dirs, merged as overlayfs
//! stacks them (whiteouts, opaque directories and non-directories hide what is
//! below) but with no overlay mounted. The layers are the image's: every
//! component is opened beneath its layer dir with no link followed at all (a
//! path through a link is taken as absent), and only a regular file is read,
//! never a FIFO or a device, up to a bound.

use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{FileType, Mode, OFlags};
use rustix::io::Errno;

use super::lower::{lookup, Found};
use crate::error::{Error, IoContext, Result};

/// The layer dirs of an image that exist, opened, top-most first.
struct Layers(Vec<(PathBuf, OwnedFd)>);

impl Layers {
    /// Opens `dirs` (top-most first); one that does not exist is skipped.
    fn open(dirs: &[PathBuf]) -> Result<Layers> {
        let mut fds = Vec::new();
        for dir in dirs {
            match rustix::fs::open(
                dir,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            ) {
                Ok(fd) => fds.push((dir.clone(), fd)),
                Err(Errno::NOENT) => {}
                Err(e) => return Err(Error::io("open the layer dir", dir, e.into())),
            }
        }
        Ok(Layers(fds))
    }

    fn lookup(&self, rel: &str) -> Result<Option<Found>> {
        let comps = components(rel)?;
        let fds: Vec<_> = self.0.iter().map(|(_, f)| f.as_fd()).collect();
        lookup(&fds, &comps).at("look up in the layer dirs", rel)
    }
}

/// The components of `rel` (relative to the image's `/`); `..` is refused.
fn components(rel: &str) -> Result<Vec<Vec<u8>>> {
    let comps: Vec<Vec<u8>> = rel
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .map(|c| c.as_bytes().to_vec())
        .collect();
    if comps.is_empty() || comps.iter().any(|c| c == b"..") {
        return Err(Error::io(
            "look up in the layer dirs",
            rel,
            io::Error::from(io::ErrorKind::InvalidInput),
        ));
    }
    Ok(comps)
}

/// Whether `rel` exists (as anything) in the merged view of `dirs`.
pub fn exists(dirs: &[PathBuf], rel: &str) -> Result<bool> {
    Ok(Layers::open(dirs)?.lookup(rel)?.is_some())
}

/// The content of the regular file `rel` of the image whose layer dirs are
/// `dirs` (top-most first): `None` when it is absent, whited out, reached
/// through a link, or not a regular file (a link, a FIFO, a device);
/// [`Error::TooLarge`] beyond `limit` bytes.
pub fn read_file(dirs: &[PathBuf], rel: &str, limit: u64) -> Result<Option<Vec<u8>>> {
    let layers = Layers::open(dirs)?;
    let Some(found) = layers.lookup(rel)? else {
        return Ok(None);
    };
    if FileType::from_raw_mode(found.stat.st_mode) != FileType::RegularFile {
        return Ok(None);
    }
    let name = components(rel)?.pop().unwrap_or_default();
    let shown = layers
        .0
        .get(found.layer)
        .map_or(PathBuf::from(rel), |(d, _)| d.join(rel));
    crate::beneath::read_regular_at(
        &found.parent,
        Path::new(OsStr::from_bytes(&name)),
        limit,
        &shown,
    )
}
