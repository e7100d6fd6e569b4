//! File operations confined below a directory descriptor: nothing is looked up
//! through a symlink, `..` or another mount, and the last component is never
//! followed. The layer applier is built on them; the sandbox's commit uses them
//! on upper dirs a hostile build may have filled with links to the host.

pub use crate::layer::resolve::{list_dir, open_beneath, open_dir_at, remove_all_at, type_at};
