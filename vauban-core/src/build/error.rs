//! The error of a build ([`BuildError`]): the config's, the key store's, the
//! exports' and the stages' errors, and the build's own, each naming the
//! master, host or file at fault.

use std::path::PathBuf;

use crate::config::ConfigError;
use crate::error::Blame;
use crate::export::ExportError;
use crate::keys::KeyStoreError;

/// Everything that can stop a build.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// `config.yml` is wrong.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A stage, the sandbox, the store or a registry failed.
    #[error(transparent)]
    Core(#[from] crate::Error),
    /// The sshd host-key store failed.
    #[error(transparent)]
    Keys(#[from] KeyStoreError),
    /// A boot file could not be made.
    #[error(transparent)]
    Export(#[from] ExportError),
    /// Neither `--ansible` nor `ansible:` in the config's `configuration:`.
    #[error(
        "no Ansible repository: give --ansible DIR|URL or set `ansible:` under \
         `configuration:` in {config}"
    )]
    NoAnsible {
        /// The config file.
        config: PathBuf,
    },
    /// `ansible-inventory` or `ansible --list-hosts` failed on the repository.
    #[error("the inventory of {root} cannot be read: {message}")]
    Inventory {
        /// The Ansible root.
        root: PathBuf,
        /// What Ansible said.
        message: String,
    },
    /// `--stage conffs` for a master without `conffs:` (and no `--conffs`).
    #[error("master {master} has no `conffs:` pattern: give --conffs PATTERN to build some")]
    NoConffs {
        /// The master.
        master: String,
    },
    /// A conffs pattern matched no host.
    #[error("the conffs pattern {pattern:?} of master {master} matches no host of the inventory (masters `master-*` are left out)")]
    NoHosts {
        /// The master.
        master: String,
        /// The pattern.
        pattern: String,
    },
    /// A step needs an image that is neither in the store nor in the registry.
    #[error(
        "{what} of master {master} is not built yet (not in the store{registry}): build it \
         first, or add --build-parents 1"
    )]
    NotBuilt {
        /// The master.
        master: String,
        /// What is missing (`the rootfs`).
        what: &'static str,
        /// `, nor in REGISTRY` when one was asked.
        registry: String,
    },
    /// Hosts failed in a conffs step; the others' results are kept.
    #[error("conffs of master {master}: {} host(s) failed: {}", failures.len(), summary(failures))]
    HostsFailed {
        /// The master.
        master: String,
        /// Each failed host and its error.
        failures: Vec<(String, crate::Error)>,
    },
    /// A conffs needs the key store's secret.
    #[error(
        "the sshd host keys in {keystore} need a secret: set $VAUBAN_KEYSTORE_KEY or give \
         --keystore-key-file"
    )]
    NoKeySecret {
        /// The key store.
        keystore: PathBuf,
    },
    /// The base of a release cannot be made.
    #[error("release {release}: {message}")]
    Release {
        /// The release's key.
        release: String,
        /// What went wrong.
        message: String,
        /// Who has to act.
        blame: Blame,
    },
    /// The build was interrupted (SIGINT, SIGTERM); what was built is cached.
    #[error("interrupted by signal {signal}; what was built is kept in the cache")]
    Interrupted {
        /// The signal.
        signal: i32,
    },
}

fn summary(failures: &[(String, crate::Error)]) -> String {
    failures
        .iter()
        .map(|(host, e)| match e {
            crate::Error::AnsibleFailed(f) => format!("{host} ({})", f.summary()),
            other => format!("{host} ({other})"),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

impl BuildError {
    /// Who has to act on this error.
    pub fn blame(&self) -> Blame {
        match self {
            BuildError::Config(e) => e.blame(),
            BuildError::Core(e) => e.blame(),
            BuildError::Keys(e) => e.blame(),
            BuildError::Export(e) => e.blame(),
            BuildError::HostsFailed { failures, .. } => failures
                .iter()
                .map(|(_, e)| e.blame())
                .find(|b| *b != Blame::User)
                .unwrap_or(Blame::User),
            BuildError::Release { blame, .. } => *blame,
            BuildError::NoAnsible { .. }
            | BuildError::Inventory { .. }
            | BuildError::NoConffs { .. }
            | BuildError::NoHosts { .. }
            | BuildError::NotBuilt { .. }
            | BuildError::NoKeySecret { .. }
            | BuildError::Interrupted { .. } => Blame::User,
        }
    }
}

impl From<vauban_oci::Error> for BuildError {
    fn from(e: vauban_oci::Error) -> Self {
        BuildError::Core(e.into())
    }
}
