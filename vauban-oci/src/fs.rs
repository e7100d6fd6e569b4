//! File operations confined below a directory descriptor: nothing is looked up
//! through a symlink, `..` or another mount, and the last component is never
//! followed. The layer applier is built on them; the sandbox's commit uses them
//! on upper dirs a hostile build may have filled with links to the host.

use std::io::Read;
use std::os::fd::AsFd;
use std::path::Path;

use rustix::fs::{FileType, Mode, OFlags};
use rustix::io::Errno;

use crate::error::{Error, IoContext, Result};
pub use crate::layer::resolve::{list_dir, open_beneath, open_dir_at, remove_all_at, type_at};

/// Reads the regular file `name` of `dir` (`rustix::fs::CWD` for a path):
/// `None` when it is absent, a link (never followed) or not a regular file
/// (a FIFO is never waited on, a device never read); [`Error::TooLarge`]
/// beyond `limit` bytes. Errors name `shown`.
pub fn read_regular_at(
    dir: impl AsFd,
    name: &Path,
    limit: u64,
    shown: &Path,
) -> Result<Option<Vec<u8>>> {
    let fd = match rustix::fs::openat(
        dir,
        name,
        // Non-blocking: opening a FIFO returns at once (and is refused below).
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(Errno::NOENT | Errno::LOOP | Errno::NOTDIR) => return Ok(None),
        Err(e) => return Err(Error::io("open", shown, e.into())),
    };
    let st = rustix::fs::fstat(&fd)
        .map_err(std::io::Error::from)
        .at("stat", shown)?;
    if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
        return Ok(None);
    }
    let too_large = |size: u64| Error::TooLarge {
        what: shown.display().to_string(),
        size,
        limit,
    };
    if st.st_size as u64 > limit {
        return Err(too_large(st.st_size as u64));
    }
    let mut bytes = Vec::new();
    std::fs::File::from(fd)
        .take(limit + 1)
        .read_to_end(&mut bytes)
        .at("read", shown)?;
    if bytes.len() as u64 > limit {
        return Err(too_large(bytes.len() as u64));
    }
    Ok(Some(bytes))
}
