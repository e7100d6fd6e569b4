//! The user's key to the host-key store: an age X25519 identity or a passphrase,
//! read from an environment variable, a file, or given explicitly.
//!
//! Prefer an identity (`age-keygen -o key.txt`, or `rage-keygen`): opening and
//! saving then cost microseconds. A passphrase goes through age's scrypt recipient,
//! whose work factor is picked to cost about one second on the machine that
//! encrypts; every open of a passphrase store pays that second again to decrypt,
//! and every save pays it to encrypt (the store decrypts once per open and
//! encrypts once per save, never per host).

use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use age::secrecy::SecretString;
use zeroize::Zeroizing;

use super::problem::SecretKind;
use crate::error::{Error, IoContext, Result};

/// The environment variable [`KeySecret::from_env`] reads.
pub const KEY_ENV: &str = "VAUBAN_KEYSTORE_KEY";

/// The default identity's file under the user's configuration directory.
const DEFAULT_IDENTITY: &str = "vauban/keystore-key.txt";

/// The prefix of an age X25519 identity.
const IDENTITY_PREFIX: &str = "AGE-SECRET-KEY-";

/// The key that encrypts the store. Its `Debug` shows the kind and where it came
/// from, never the secret.
#[derive(Clone)]
pub struct KeySecret {
    key: Key,
    origin: String,
    /// The scrypt work factor (log2) to encrypt with; `None` is age's default (~1 s).
    work_factor: Option<u8>,
}

#[derive(Clone)]
enum Key {
    Identity(age::x25519::Identity),
    Passphrase(SecretString),
}

impl KeySecret {
    /// The identity file used when no secret is given:
    /// `$XDG_CONFIG_HOME/vauban/keystore-key.txt` (else under `~/.config`).
    pub fn default_identity_path() -> Result<PathBuf> {
        vauban_oci::dirs::UserDir::Config
            .path()
            .map(|dir| dir.join(DEFAULT_IDENTITY))
            .ok_or(Error::NoDefaultPath {
                var: "XDG_CONFIG_HOME",
            })
    }

    /// The secret a command uses: the file `key_file` when given, else
    /// [`KEY_ENV`], else the default identity file
    /// ([`default_identity_path`](Self::default_identity_path)), which is made when
    /// missing if `make` (then its path is returned, to tell the user to keep it)
    /// and is [`Error::NoSecret`] otherwise.
    pub fn find(key_file: Option<&Path>, make: bool) -> Result<(Self, Option<PathBuf>)> {
        if let Some(file) = key_file {
            return Ok((Self::from_file(file)?, None));
        }
        if let Some(secret) = Self::from_env()? {
            return Ok((secret, None));
        }
        let identity = Self::default_identity_path()?;
        if !make && !identity.exists() {
            return Err(Error::NoSecret {
                var: KEY_ENV,
                identity,
            });
        }
        let (secret, made) = Self::load_or_create_identity(&identity)?;
        Ok((secret, made.then_some(identity)))
    }

    /// Reads the secret from [`KEY_ENV`] (`$VAUBAN_KEYSTORE_KEY`); `None` when unset.
    pub fn from_env() -> Result<Option<Self>> {
        Self::from_env_var(KEY_ENV)
    }

    /// Reads the secret from the environment variable `var`; `None` when unset.
    ///
    /// The value is an identity (`AGE-SECRET-KEY-1...`) or else a passphrase.
    pub fn from_env_var(var: &str) -> Result<Option<Self>> {
        match std::env::var(var) {
            Ok(value) => Self::parse(&Zeroizing::new(value), format!("${var}")).map(Some),
            Err(std::env::VarError::NotPresent) => Ok(None),
            Err(std::env::VarError::NotUnicode(_)) => Err(Error::SecretNotUtf8 {
                var: var.to_owned(),
            }),
        }
    }

    /// Reads the secret from a file: an age identity file (as `age-keygen` writes it,
    /// `#` comments allowed) or else a passphrase (trailing newlines stripped).
    ///
    /// A file that the group or others may read or write gets a warning.
    pub fn from_file(path: &Path) -> Result<Self> {
        let read_err = |source| Error::ReadSecret {
            path: path.to_owned(),
            source,
        };
        let mut file = fs::File::open(path).map_err(read_err)?;
        let mode = file.metadata().map_err(read_err)?.permissions().mode();
        if mode & 0o077 != 0 {
            tracing::warn!(
                path = %path.display(),
                mode = format_args!("{:04o}", mode & 0o7777),
                "the key store secret file is accessible to group or others: chmod 600 it"
            );
        }
        let mut text = Zeroizing::new(String::new());
        file.read_to_string(&mut text).map_err(read_err)?;
        Self::parse(&text, path.display().to_string())
    }

    /// Reads the age identity file at `path`, or makes one there (mode 0600,
    /// its missing directories 0700) when there is none; `true` when it was made now.
    /// The default of `vauban build` when no secret is given, so a first build
    /// needs no set-up (back the file up: without it the keys are lost).
    pub fn load_or_create_identity(path: &Path) -> Result<(Self, bool)> {
        match fs::metadata(path) {
            Ok(_) => return Ok((Self::from_file(path)?, false)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(Error::ReadSecret {
                    path: path.to_owned(),
                    source,
                })
            }
        }
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            crate::private::create_dirs(dir).at("create", dir)?;
        }
        let identity = age::x25519::Identity::generate();
        let text = Zeroizing::new(format!(
            "# vauban key store identity, made {}\n# public key: {}\n{}\n",
            chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            identity.to_public(),
            age::secrecy::ExposeSecret::expose_secret(&identity.to_string()),
        ));
        super::atomic::write_atomically(path, text.as_bytes())?;
        Ok((Self::from_file(path)?, true))
    }

    /// Parses `text`: when a line that is neither blank nor a `#` comment starts
    /// with `AGE-SECRET-KEY-`, it must be the only such line and a valid age X25519
    /// identity; otherwise the whole text, less trailing line ends, is a passphrase
    /// (use [`KeySecret::passphrase`] for one that starts like an identity). Blank
    /// text is [`Error::EmptySecret`]. `origin` names where the text came
    /// from, for messages (`$VAUBAN_KEYSTORE_KEY`, a path).
    pub fn parse(text: &str, origin: impl Into<String>) -> Result<Self> {
        let origin = origin.into();
        let lines: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty() && !line.starts_with('#'))
            .collect();
        if lines.iter().any(|line| line.starts_with(IDENTITY_PREFIX)) {
            match lines[..] {
                [identity] => Self::identity_from(identity, origin),
                _ => Err(Error::InvalidIdentity { origin }),
            }
        } else if text.trim().is_empty() {
            Err(Error::EmptySecret { origin })
        } else {
            Self::passphrase_from(text.trim_end_matches(['\n', '\r']), origin)
        }
    }

    /// An age X25519 identity (`AGE-SECRET-KEY-1...`), the recommended kind.
    pub fn identity(text: &str) -> Result<Self> {
        Self::identity_from(text.trim(), "the identity given".to_owned())
    }

    /// A passphrase. Costs about a second per open and per save (see the module doc).
    pub fn passphrase(passphrase: &str) -> Result<Self> {
        Self::passphrase_from(passphrase, "the passphrase given".to_owned())
    }

    fn identity_from(text: &str, origin: String) -> Result<Self> {
        let identity =
            text.parse::<age::x25519::Identity>()
                .map_err(|_| Error::InvalidIdentity {
                    origin: origin.clone(),
                })?;
        Ok(KeySecret {
            key: Key::Identity(identity),
            origin,
            work_factor: None,
        })
    }

    fn passphrase_from(passphrase: &str, origin: String) -> Result<Self> {
        if passphrase.is_empty() {
            return Err(Error::EmptySecret { origin });
        }
        Ok(KeySecret {
            key: Key::Passphrase(SecretString::from(passphrase.to_owned())),
            origin,
            work_factor: None,
        })
    }

    /// Sets the scrypt work factor (log2 of N) that a passphrase encrypts with,
    /// instead of age's pick of about one second here. Tests use a low one.
    #[cfg(test)]
    pub(crate) fn with_work_factor(mut self, log_n: u8) -> Self {
        self.work_factor = Some(log_n);
        self
    }

    /// The kind of secret.
    pub fn kind(&self) -> SecretKind {
        match self.key {
            Key::Identity(_) => SecretKind::Identity,
            Key::Passphrase(_) => SecretKind::Passphrase,
        }
    }

    /// The public recipient (`age1...`) of an identity; `None` for a passphrase.
    pub fn recipient(&self) -> Option<String> {
        match &self.key {
            Key::Identity(identity) => Some(identity.to_public().to_string()),
            Key::Passphrase(_) => None,
        }
    }

    /// The age recipient that encrypts to this secret.
    pub(super) fn age_recipient(&self) -> Box<dyn age::Recipient> {
        match &self.key {
            Key::Identity(identity) => Box::new(identity.to_public()),
            Key::Passphrase(passphrase) => {
                let mut recipient = age::scrypt::Recipient::new(passphrase.clone());
                if let Some(log_n) = self.work_factor {
                    recipient.set_work_factor(log_n);
                }
                Box::new(recipient)
            }
        }
    }

    /// The age identity that decrypts with this secret.
    pub(super) fn age_identity(&self) -> Box<dyn age::Identity> {
        match &self.key {
            Key::Identity(identity) => Box::new(identity.clone()),
            Key::Passphrase(passphrase) => Box::new(age::scrypt::Identity::new(passphrase.clone())),
        }
    }
}

impl std::fmt::Debug for KeySecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeySecret")
            .field("kind", &self.kind())
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}
