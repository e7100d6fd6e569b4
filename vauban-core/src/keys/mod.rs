//! The sshd host-key store of `vauban build`: every host gets its own ed25519,
//! RSA and ECDSA keys, made once and kept in one file encrypted with age, so a
//! rebuilt host keeps its identity.
//!
//! - [`KeySecret`]: the user's key to the store, an age X25519 identity
//!   (preferred) or a passphrase, from `$VAUBAN_KEYSTORE_KEY` or a file.
//! - [`KeyStore`]: open (locked against other processes), get or generate a
//!   host's keys, save atomically.
//! - [`HostKeys`]: a host's keys as the files of `/etc/ssh` with their modes,
//!   for a conffs tree.
//!
//! Key material never reaches a log, an event or an error: `Debug` impls show
//! public keys and names only, errors hold paths and hosts, and the serialized
//! form is private to the store. The keys belong in a host's conffs only, never
//! in an image layer or the rootfs.

mod atomic;
mod cipher;
mod error;
mod host;
mod lock;
mod parallel;
mod secret;
mod store;

#[cfg(test)]
mod tests;

pub use error::{KeyStoreError, Result, SecretKind};
pub use host::{HostKeys, KeyFile, KeyKind, PRIVATE_MODE, PUBLIC_MODE, RSA_BITS, SSH_DIR};
pub use secret::{KeySecret, KEY_ENV};
pub use store::KeyStore;
