//! The sshd host-key store of `vauban build`: every host gets its own ed25519,
//! ECDSA (P-384) and RSA (4096 bits) keys, made once or imported from the
//! original, and kept in one file encrypted with age, so a rebuilt host keeps
//! its identity.
//!
//! - [`KeySecret`]: the user's key to the store, an age X25519 identity
//!   (preferred) or a passphrase, from `$VAUBAN_KEYSTORE_KEY` or a file.
//! - [`KeyStore`]: open (locked against other processes), get or generate a
//!   host's keys, save atomically.
//! - [`HostKeys`]: a host's keys as the files of `/etc/ssh` with their modes,
//!   for a conffs tree; their fingerprints and `known_hosts` lines.
//! - [`Imported`]: a site's existing keys (the original's `vault/HOST.tar.gpg`,
//!   or plain `HOST/etc/ssh/ssh_host_*` files), checked, for
//!   [`KeyStore::import`].
//!
//! Key material never reaches a log, an event or an error: `Debug` impls show
//! public keys and names only, errors hold paths and hosts, and the serialized
//! form is private to the store. The keys belong in a host's conffs only, never
//! in an image layer or the rootfs.

mod atomic;
mod cipher;
mod ecdsa_scalar;
mod host;
mod import;
mod kind;
mod lock;
mod parallel;
mod problem;
mod secret;
mod store;

#[cfg(test)]
mod tests;

pub use host::{HostKeys, KeyFile, KeyInfo, PRIVATE_MODE, PUBLIC_MODE, SSH_DIR};
pub use import::{Ignored, ImportReport, ImportSource, Imported, SkipReason};
pub use kind::{KeyKind, ECDSA_CURVE, RSA_BITS};
pub use problem::{KeyProblem, SecretKind};
pub use secret::{KeySecret, KEY_ENV};
pub use store::KeyStore;
