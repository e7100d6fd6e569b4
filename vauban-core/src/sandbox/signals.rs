//! SIGINT/SIGTERM/SIGHUP while a sandbox lives: the handler only records the
//! signal; the code waiting on a sandbox helper sees it, kills the helper (and
//! with it the pid namespace it made) and returns
//! [`Error::Interrupted`](crate::Error::Interrupted), so the sandbox's directories
//! are removed on the way out instead of the process dying on the spot. When the
//! last guard goes, the signal is raised again with the previous disposition.
#![allow(unsafe_code)]

use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};
use std::sync::Mutex;

use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};

use crate::error::{Error, Result};

static PENDING: AtomicI32 = AtomicI32::new(0);
static GUARDS: AtomicUsize = AtomicUsize::new(0);
static SAVED: Mutex<Vec<(Signal, SigAction)>> = Mutex::new(Vec::new());

const SIGNALS: [Signal; 3] = [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP];

extern "C" fn record(sig: libc::c_int) {
    PENDING.store(sig, Ordering::SeqCst);
}

/// Keeps the recording handlers installed while alive; the first guard installs
/// them, the last one dropped restores the previous handlers.
#[derive(Debug)]
pub struct SignalGuard(());

impl SignalGuard {
    /// Installs the handlers (if not already installed by another guard).
    pub fn install() -> Result<Self> {
        let mut saved = SAVED.lock().unwrap_or_else(|e| e.into_inner());
        if GUARDS.fetch_add(1, Ordering::SeqCst) == 0 {
            PENDING.store(0, Ordering::SeqCst);
            // SA_RESTART: other threads' blocking calls are not cut short by EINTR;
            // the code waiting on a sandbox polls `pending()` on a timeout anyway.
            let action = SigAction::new(
                SigHandler::Handler(record),
                SaFlags::SA_RESTART,
                SigSet::empty(),
            );
            for sig in SIGNALS {
                // SAFETY: `record` is async-signal-safe: it only stores into an atomic
                // (lock-free on every target we build for), no allocation, no lock.
                let old = match unsafe { sigaction(sig, &action) } {
                    Ok(old) => old,
                    Err(e) => {
                        for (sig, old) in saved.drain(..) {
                            // SAFETY: puts back the disposition found.
                            let _ = unsafe { sigaction(sig, &old) };
                        }
                        GUARDS.fetch_sub(1, Ordering::SeqCst);
                        return Err(Error::sys("sigaction", e));
                    }
                };
                if old.handler() == SigHandler::SigIgn {
                    // Ignored by whoever started us (a background job): keep it so.
                    // SAFETY: puts back the disposition found.
                    let _ = unsafe { sigaction(sig, &old) };
                    continue;
                }
                saved.push((sig, old));
            }
        }
        Ok(SignalGuard(()))
    }
}

impl Drop for SignalGuard {
    /// The last guard restores the previous handlers, then re-raises a signal
    /// received meanwhile: the sandbox is cleaned up by now, and the process ends
    /// the way the signal asked (or its own handler runs).
    fn drop(&mut self) {
        let mut saved = SAVED.lock().unwrap_or_else(|e| e.into_inner());
        if GUARDS.fetch_sub(1, Ordering::SeqCst) == 1 {
            for (sig, old) in saved.drain(..) {
                // SAFETY: restores the handler that was installed before ours.
                let _ = unsafe { sigaction(sig, &old) };
            }
            drop(saved);
            if let Some(sig) = pending().and_then(|s| Signal::try_from(s).ok()) {
                PENDING.store(0, Ordering::SeqCst);
                let _ = nix::sys::signal::raise(sig);
            }
        }
    }
}

/// The signal received since the handlers were installed, if any.
pub fn pending() -> Option<i32> {
    match PENDING.load(Ordering::SeqCst) {
        0 => None,
        sig => Some(sig),
    }
}
