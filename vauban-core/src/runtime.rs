//! The one async runtime of a process. Registry calls (push, pull, login,
//! deploy) are vauban's only async work; a build and every command run them
//! on this runtime, made on first use and kept for the process's life, so a
//! build that pushes twenty images starts one runtime, not twenty.

use std::sync::OnceLock;

use tokio::runtime::Runtime;

use crate::error::{Error, Result};

/// The process's runtime (two worker threads: the transfers wait on the
/// network, not on the CPU).
pub fn runtime() -> Result<&'static Runtime> {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    if let Some(rt) = RUNTIME.get() {
        return Ok(rt);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("vauban-registry")
        .enable_all()
        .build()
        .map_err(|e| Error::io("start the async runtime for", "the registry", e))?;
    // Another thread may have made one meanwhile: either is the one.
    let _ = RUNTIME.set(rt);
    Ok(RUNTIME.get().expect("the runtime was just set"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn one_runtime_per_process() {
        let a = super::runtime().unwrap() as *const _;
        let b = super::runtime().unwrap() as *const _;
        assert_eq!(a, b);
        assert_eq!(super::runtime().unwrap().block_on(async { 1 + 1 }), 2);
    }
}
