//! OCI whiteouts during apply: `.wh.NAME` removes NAME from lower layers,
//! `.wh..wh..opq` hides a directory's lower content; or, in overlay form, a
//! char device 0/0 and the `user.overlay.opaque=y` xattr. A layer's whiteouts
//! never remove that layer's own entries. Unprivileged, a read-only directory
//! is unlocked first (its mode put back at the end of the apply).

use rustix::fs::{FileType, Mode};

use super::apply::Applier;
use super::path::unsafe_entry;
use std::os::fd::OwnedFd;

use super::{xattr, WhiteoutMode, OPAQUE_WHITEOUT};
use crate::beneath::{list_dir, open_beneath, open_dir_at, remove_all_at, type_at};
use crate::error::Result;

impl Applier {
    /// Applies the whiteout entry `raw` (`parent/name`, `name` = `.wh.target`).
    pub(super) fn whiteout(
        &mut self,
        raw: &[u8],
        parent: &[Vec<u8>],
        name: &[u8],
        target: &[u8],
    ) -> Result<()> {
        self.report.whiteouts += 1;
        let overlay = self.opts.whiteouts == WhiteoutMode::Overlay;
        if name == OPAQUE_WHITEOUT.as_bytes() {
            let Some(dir) = self.dir_in_root(parent, overlay, raw)? else {
                return Ok(());
            };
            self.unlock(&dir, parent, raw)?;
            let dir = open_dir_at(&dir, b"").map_err(|e| self.err("open", raw, e))?;
            if overlay {
                let r = xattr::set_fd(&dir, b"user.overlay.opaque", b"y");
                return r.map_err(|e| self.err("set opaque xattr on", raw, e));
            }
            return self.opaque(&dir, raw);
        }
        if target.is_empty() || target == b"." || target == b".." {
            return Err(unsafe_entry(raw, "invalid whiteout name"));
        }
        let Some(dir) = self.dir_in_root(parent, overlay, raw)? else {
            return Ok(());
        };
        if let Some(st) = type_at(&dir, target).map_err(|e| self.err("stat", raw, e))? {
            if self.is_created(&st) {
                // Whiteouts hide lower layers only, never this layer's own entries.
                return Ok(());
            }
            self.unlock(&dir, parent, raw)?;
            remove_all_at(&dir, target, self.unlocking())
                .map_err(|e| self.err("remove", raw, e))?;
        }
        if overlay {
            self.unlock(&dir, parent, raw)?;
            rustix::fs::mknodat(&dir, target, FileType::CharacterDevice, Mode::empty(), 0)
                .map_err(|e| self.err("mknod whiteout", raw, e))?;
        }
        Ok(())
    }

    /// Hides the lower content of `dir` (opened readable): everything this
    /// layer did not make is removed, down through the directories it made or
    /// touched (a marker may follow the layer's own entries in the stream).
    /// Iterative, one directory fd at a time.
    fn opaque(&mut self, dir: &OwnedFd, raw: &[u8]) -> Result<()> {
        let dev = rustix::fs::fstat(dir)
            .map_err(|e| self.err("stat", raw, e))?
            .st_dev;
        let mut work: Vec<Vec<u8>> = vec![Vec::new()];
        while let Some(rel) = work.pop() {
            let d = if rel.is_empty() {
                dir.try_clone()
            } else {
                open_beneath(dir, &rel)
            }
            .map_err(|e| self.err("open", raw, e))?;
            for child in list_dir(&d).map_err(|e| self.err("list", raw, e))? {
                let Some(st) = type_at(&d, &child).map_err(|e| self.err("stat", raw, e))? else {
                    continue;
                };
                if !self.is_created(&st) {
                    remove_all_at(&d, &child, self.unlocking())
                        .map_err(|e| self.err("remove", raw, e))?;
                } else if FileType::from_raw_mode(st.st_mode) == FileType::Directory
                    && st.st_dev == dev
                {
                    let mut sub = rel.clone();
                    if !sub.is_empty() {
                        sub.push(b'/');
                    }
                    sub.extend_from_slice(&child);
                    work.push(sub);
                }
            }
        }
        Ok(())
    }
}
