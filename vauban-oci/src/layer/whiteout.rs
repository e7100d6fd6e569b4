//! OCI whiteouts during apply: `.wh.NAME` removes NAME from lower layers,
//! `.wh..wh..opq` hides a directory's lower content; or, in overlay form, a
//! char device 0/0 and the `user.overlay.opaque=y` xattr. A layer's whiteouts
//! never remove that layer's own entries.

use rustix::fs::{FileType, Mode};

use super::apply::Applier;
use super::path::unsafe_entry;
use super::resolve::{list_dir, open_dir_at, remove_all_at, type_at};
use super::{xattr, WhiteoutMode, OPAQUE_WHITEOUT};
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
            let Some(dir) = self.root.dir(parent, overlay, raw)? else {
                return Ok(());
            };
            let dir = open_dir_at(&dir, b"").map_err(|e| self.err("open", raw, e))?;
            if overlay {
                let r = xattr::set_fd(&dir, b"user.overlay.opaque", b"y");
                return r.map_err(|e| self.err("set opaque xattr on", raw, e));
            }
            for child in list_dir(&dir).map_err(|e| self.err("list", raw, e))? {
                let st = type_at(&dir, &child).map_err(|e| self.err("stat", raw, e))?;
                if st.is_some_and(|st| !self.is_created(&st)) {
                    remove_all_at(&dir, &child).map_err(|e| self.err("remove", raw, e))?;
                }
            }
            return Ok(());
        }
        if target.is_empty() || target == b"." || target == b".." {
            return Err(unsafe_entry(raw, "invalid whiteout name"));
        }
        let Some(dir) = self.root.dir(parent, overlay, raw)? else {
            return Ok(());
        };
        if let Some(st) = type_at(&dir, target).map_err(|e| self.err("stat", raw, e))? {
            if self.is_created(&st) {
                // Whiteouts hide lower layers only, never this layer's own entries.
                return Ok(());
            }
            remove_all_at(&dir, target).map_err(|e| self.err("remove", raw, e))?;
        }
        if overlay {
            rustix::fs::mknodat(&dir, target, FileType::CharacterDevice, Mode::empty(), 0)
                .map_err(|e| self.err("mknod whiteout", raw, e))?;
        }
        Ok(())
    }
}
