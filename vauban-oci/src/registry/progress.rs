//! Progress reporting: the registry code calls a [`Progress`] the caller
//! provides (the CLI draws `indicatif` bars on a terminal, plain lines in CI).

use crate::digest::Digest;

/// What happened to one blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobOutcome {
    /// Sent to the registry.
    Uploaded,
    /// The registry already had it in the target repository.
    Exists,
    /// Mounted from another repository of the same registry.
    Mounted,
    /// Downloaded and verified.
    Downloaded,
    /// Already in the local store.
    Cached,
}

/// Receives progress events; every method has a do-nothing default.
/// Called from several tasks at once, hence `Send + Sync`.
pub trait Progress: Send + Sync {
    /// A blob transfer starts (`size` in bytes as announced).
    fn blob_start(&self, _digest: &Digest, _size: u64) {}
    /// `done` bytes of the blob have moved so far (may go back to 0 on a retry).
    fn blob_progress(&self, _digest: &Digest, _done: u64) {}
    /// The blob is settled.
    fn blob_done(&self, _digest: &Digest, _outcome: BlobOutcome) {}
    /// A one-line status (manifest written, tag pushed, ...).
    fn message(&self, _text: &str) {}
}

/// A [`Progress`] that reports nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {}
