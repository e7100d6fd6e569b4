//! Generating the keys of many hosts on every core: an RSA key takes
//! seconds in pure Rust (4096 bits), so the first build of a fleet would
//! otherwise spend minutes on one core.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use super::host::HostKeys;
use crate::error::Result;

/// Generates the keys of each of `hosts` (distinct names), one thread per core
/// at most; the results are in the order of `hosts`.
pub(super) fn generate_all(hosts: &[&str]) -> Vec<Result<HostKeys>> {
    let threads = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .min(hosts.len());
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Result<HostKeys>>>> =
        Mutex::new(hosts.iter().map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(host) = hosts.get(i) else { break };
                let keys = HostKeys::generate(host);
                results.lock().expect("no thread panics holding the lock")[i] = Some(keys);
            });
        }
    });
    results
        .into_inner()
        .expect("no thread panics holding the lock")
        .into_iter()
        .map(|keys| keys.expect("every host was generated"))
        .collect()
}
