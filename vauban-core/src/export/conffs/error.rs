//! The error type of the conffs export: every variant names the host, the
//! image, the layer or the path at fault.

use std::path::PathBuf;

use crate::error::Blame;

/// Everything that can go wrong while writing a host's conffs archive.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConffsError {
    /// The host image is not built on the master: its layers do not start
    /// with the master's (compared by diff_id).
    #[error(
        "image {image} is not built on master image {master}: its layers do not start \
         with the master's; rebuild the host on the current master"
    )]
    NotOnTop {
        /// The master image (manifest digest).
        master: String,
        /// The host image (manifest digest).
        image: String,
    },
    /// The compressed archive is at or over the size limit.
    #[error(
        "the conffs of host {host} is {} (limit {}); the biggest files: {}",
        bytesize::ByteSize::b(*size),
        bytesize::ByteSize::b(*limit),
        list_biggest(biggest)
    )]
    TooBig {
        /// The host.
        host: String,
        /// The compressed size in bytes.
        size: u64,
        /// The limit in bytes.
        limit: u64,
        /// The biggest regular files of the archive (path, bytes), biggest first.
        biggest: Vec<(String, u64)>,
    },
    /// The host keys given are another host's.
    #[error("the sshd keys given for host {host} are those of host {keys_host}")]
    WrongKeys {
        /// The host of the conffs.
        host: String,
        /// The host of the keys.
        keys_host: String,
    },
    /// A host name that cannot be written to `/etc/hostname`.
    #[error("invalid host name {host:?} for /etc/hostname")]
    BadHostname {
        /// The host name.
        host: String,
    },
    /// An I/O operation on the archive failed.
    #[error("{op} {path}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The path at fault.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Reading an image or a layer of the store failed (a missing or corrupt
    /// blob, a malformed tar, an entry that names a path outside the root).
    #[error(transparent)]
    Layer(#[from] vauban_oci::Error),
}

fn list_biggest(biggest: &[(String, u64)]) -> String {
    if biggest.is_empty() {
        return "(no regular file)".into();
    }
    biggest
        .iter()
        .map(|(path, size)| format!("/{path} ({})", bytesize::ByteSize::b(*size)))
        .collect::<Vec<_>>()
        .join(", ")
}

impl ConffsError {
    /// Who has to act on this error.
    pub fn blame(&self) -> Blame {
        match self {
            ConffsError::NotOnTop { .. }
            | ConffsError::TooBig { .. }
            | ConffsError::BadHostname { .. } => Blame::User,
            ConffsError::WrongKeys { .. } => Blame::Internal,
            ConffsError::Io { source, .. } => Blame::of_io(source.kind()),
            ConffsError::Layer(e) => e.blame(),
        }
    }

    /// An I/O error on `path` while doing `op`.
    pub(super) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        ConffsError::Io {
            op,
            path: path.into(),
            source,
        }
    }
}
