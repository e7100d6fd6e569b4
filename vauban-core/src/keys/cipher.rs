//! Encryption of the store file with age, and the mapping of age's decryption
//! errors onto errors that say what the user got wrong.

use std::io::{Read, Write};
use std::path::Path;

use age::DecryptError;
use zeroize::Zeroizing;

use super::problem::SecretKind;
use super::secret::KeySecret;
use crate::error::{Error, Result};

/// Encrypts `plaintext` to `secret`, for the store file at `path`.
pub(super) fn encrypt(secret: &KeySecret, plaintext: &[u8], path: &Path) -> Result<Vec<u8>> {
    let recipient = secret.age_recipient();
    let encryptor =
        age::Encryptor::with_recipients(std::iter::once(&*recipient)).map_err(|source| {
            Error::Encrypt {
                path: path.to_owned(),
                source: Box::new(source),
            }
        })?;
    let write_err = |source| Error::Io {
        op: "encrypt",
        path: path.to_owned(),
        source,
    };
    let mut out = Vec::with_capacity(plaintext.len() + 512);
    let mut writer = encryptor.wrap_output(&mut out).map_err(write_err)?;
    writer.write_all(plaintext).map_err(write_err)?;
    writer.finish().map_err(write_err)?;
    Ok(out)
}

/// Decrypts the store file `ciphertext` read from `path` with `secret`.
///
/// A secret that does not open the file gives [`Error::WrongKey`], saying
/// how the file is encrypted; a damaged file gives [`Error::CorruptKeyStore`].
pub(super) fn decrypt(
    secret: &KeySecret,
    ciphertext: &[u8],
    path: &Path,
) -> Result<Zeroizing<Vec<u8>>> {
    let corrupt = |what: String| Error::CorruptKeyStore {
        path: path.to_owned(),
        what,
    };
    let decryptor = age::Decryptor::new_buffered(ciphertext)
        .map_err(|e| corrupt(format!("not an age file: {}", describe(&e))))?;
    let store = if decryptor.is_scrypt() {
        SecretKind::Passphrase
    } else {
        SecretKind::Identity
    };
    let identity = secret.age_identity();
    let mut reader = decryptor
        .decrypt(std::iter::once(&*identity))
        .map_err(|e| match e {
            DecryptError::NoMatchingKeys
            | DecryptError::DecryptionFailed
            | DecryptError::KeyDecryptionFailed => Error::WrongKey {
                path: path.to_owned(),
                store,
                given: secret.kind(),
            },
            DecryptError::ExcessiveWork { required, target } => Error::ExcessiveWork {
                path: path.to_owned(),
                required,
                max: target.saturating_add(4),
            },
            other => corrupt(describe(&other)),
        })?;
    let mut plaintext = Zeroizing::new(Vec::new());
    reader
        .read_to_end(&mut plaintext)
        .map_err(|e| corrupt(format!("payload does not decrypt: {e}")))?;
    Ok(plaintext)
}

/// A short description of an age error that carries no key material.
fn describe(error: &DecryptError) -> String {
    match error {
        DecryptError::InvalidHeader => "invalid header".to_owned(),
        DecryptError::InvalidMac => "the header MAC does not match".to_owned(),
        DecryptError::UnknownFormat => "unknown age format version".to_owned(),
        DecryptError::Io(e) => e.to_string(),
        other => other.to_string(),
    }
}
