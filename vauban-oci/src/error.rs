//! The one error type of `vauban-oci`: every variant names the thing at fault
//! (a path, a digest, an entry, a reference, a registry).

use std::path::PathBuf;

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Who has to act on an error: what a command-line tool turns into an exit code
/// and a build server into "fix the input", "fix the machine" or "report a bug".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Blame {
    /// The input is wrong: a reference, a file, a layer, credentials, a playbook.
    User,
    /// The machine is not able to do it: a missing tool or permission, a full disk,
    /// user namespaces turned off, a registry that cannot be reached.
    Environment,
    /// vauban itself or its store is broken: a bug, a corrupt blob.
    Internal,
}

impl Blame {
    /// The blame of an I/O error by its kind: missing or refused paths and bad data
    /// are the input's; full disks and read-only file systems the machine's.
    pub fn of_io(kind: std::io::ErrorKind) -> Blame {
        use std::io::ErrorKind as K;
        match kind {
            K::NotFound
            | K::PermissionDenied
            | K::AlreadyExists
            | K::InvalidInput
            | K::InvalidData
            | K::UnexpectedEof
            | K::NotADirectory
            | K::IsADirectory
            | K::DirectoryNotEmpty
            | K::InvalidFilename => Blame::User,
            K::StorageFull
            | K::QuotaExceeded
            | K::ReadOnlyFilesystem
            | K::OutOfMemory
            | K::ResourceBusy
            | K::ConnectionRefused
            | K::ConnectionReset
            | K::ConnectionAborted
            | K::NotConnected
            | K::HostUnreachable
            | K::NetworkUnreachable
            | K::NetworkDown
            | K::TimedOut
            | K::Unsupported => Blame::Environment,
            _ => Blame::Internal,
        }
    }
}

/// Everything that can go wrong in the store, the layer codec and the registry client.
///
/// Sections are owned by modules: add new variants to your module's section.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    // ---- generic I/O, always with the path at fault ----
    /// An I/O operation on a path failed.
    #[error("{op} {path}")]
    Io {
        /// What was being done ("open", "write", "rename", ...).
        op: &'static str,
        /// The path at fault.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    // ---- digests ----
    /// A string is not a valid `sha256:<64 hex>` digest.
    #[error("invalid digest {0:?}: expected sha256:<64 lowercase hex digits>")]
    InvalidDigest(String),
    /// Content does not hash to the digest it was announced with.
    #[error("digest mismatch for {what}: expected {expected}, found {found}")]
    DigestMismatch {
        /// What was being verified (a blob, a layer's diff_id, ...).
        what: String,
        /// The announced digest.
        expected: crate::Digest,
        /// The digest of the bytes actually seen.
        found: crate::Digest,
    },
    /// Content does not have the size it was announced with.
    #[error("size mismatch for {what}: expected {expected} bytes, found {found}")]
    SizeMismatch {
        /// What was being verified.
        what: String,
        /// The announced size.
        expected: u64,
        /// The size actually seen.
        found: u64,
    },
    /// A JSON document could not be read or written.
    #[error("invalid JSON in {what}")]
    Json {
        /// The document (a path, a manifest digest, ...).
        what: String,
        /// The underlying error.
        #[source]
        source: serde_json::Error,
    },
    /// A document is larger than we accept.
    #[error("{what} is {size} bytes, more than the {limit} bytes accepted")]
    TooLarge {
        /// The document.
        what: String,
        /// Its size.
        size: u64,
        /// The cap.
        limit: u64,
    },

    // ---- layer codec (module `layer`) ----
    /// A tar entry cannot be applied safely or is malformed.
    #[error("layer entry {entry:?}: {reason}")]
    UnsafeEntry {
        /// The entry's name as found in the tar stream.
        entry: String,
        /// Why it was refused.
        reason: String,
    },
    /// The tar stream itself is malformed.
    #[error("malformed layer {what}")]
    Tar {
        /// The layer (a blob digest or a path).
        what: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A media type we do not know how to handle.
    #[error("unsupported media type {0:?}")]
    UnsupportedMediaType(String),

    // ---- store (module `store`) ----
    /// A reference is not of the form `NAME[:TAG]`.
    #[error("invalid image reference {reference:?}: {reason}")]
    InvalidReference {
        /// The reference as written.
        reference: String,
        /// What is wrong with it.
        reason: String,
    },
    /// No image of that name in the store.
    #[error("image {0} not found in the store")]
    ImageNotFound(String),
    /// A blob is missing from the store.
    #[error("blob {0} not found in the store")]
    BlobNotFound(crate::Digest),
    /// Another vauban process has the store open, so gc cannot run now.
    #[error("store {path} is in use by another vauban process; retry when it is done")]
    StoreBusy {
        /// The store root.
        path: PathBuf,
    },
    /// The store directory is not a usable OCI layout.
    #[error("store {path} is not a usable OCI image layout: {reason}")]
    BadStore {
        /// The store root.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// No directory for the store was given and none can be derived.
    #[error("no store directory: set VAUBAN_STORE, XDG_DATA_HOME or HOME")]
    NoStoreDir,
    /// An image of the store is inconsistent (its manifest and config disagree).
    #[error("image {manifest}: {reason}")]
    BadImage {
        /// The manifest's digest.
        manifest: crate::Digest,
        /// What is wrong.
        reason: String,
    },
    /// An unpack target already holds files.
    #[error("{dir} is not empty: unpack needs an empty or new directory")]
    TargetNotEmpty {
        /// The directory.
        dir: PathBuf,
    },
    /// A directory remover given to gc left the directory in place.
    #[error("gc: {path} is still there after its removal")]
    NotRemoved {
        /// The directory.
        path: PathBuf,
    },

    // ---- registry (module `registry`) ----
    /// A registry broke the protocol (a bad address, a missing header, a
    /// malformed answer).
    #[error("registry {registry}: {message}")]
    Registry {
        /// The registry, `HOST[:PORT]`.
        registry: String,
        /// What went wrong, in a sentence.
        message: String,
    },
    /// A registry answered a request with a status we cannot go on with.
    #[error(
        "registry {registry}: {request} answered {status}{}",
        detail_of(detail)
    )]
    RegistryStatus {
        /// The registry, `HOST[:PORT]`.
        registry: String,
        /// The request (`GET /v2/`, `PUT manifest web:1`).
        request: String,
        /// The HTTP status code.
        status: u16,
        /// The registry's own explanation, when it gave one.
        detail: String,
    },
    /// A registry could not be reached or the exchange broke off.
    #[error("registry {registry}: {url}: {reason}")]
    Unreachable {
        /// The registry, `HOST[:PORT]`.
        registry: String,
        /// The URL tried last.
        url: String,
        /// What that means.
        reason: Unreachable,
        /// The transport's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Credentials were refused, or none were given to a registry that wants them.
    #[error("registry {registry} {}: {message}", match user {
        Some(u) => format!("refused the credentials of {u}"),
        None => "asks for credentials and none were given".to_string(),
    })]
    Unauthorized {
        /// The registry, `HOST[:PORT]`.
        registry: String,
        /// The user of the credentials given, if any.
        user: Option<String>,
        /// The registry's answer.
        message: String,
    },
    /// Credentials given or found are malformed, or cannot be stored.
    #[error("credentials: {0}")]
    InvalidCredentials(String),
    /// A registry sent us somewhere we refuse to go (another host, a downgrade).
    #[error("registry {registry}: refused redirect to {location}: {reason}")]
    RefusedRedirect {
        /// The registry, `HOST[:PORT]`.
        registry: String,
        /// The `Location` it answered with.
        location: String,
        /// Why it was refused.
        reason: String,
    },
    /// No manifest of an image index matches the requested platform.
    #[error("{reference}: no image for platform {platform} (available: {available})")]
    PlatformNotFound {
        /// The remote reference.
        reference: String,
        /// The requested `os/arch[/variant]`.
        platform: String,
        /// The platforms the index offers.
        available: String,
    },
    /// A tool needed for a transport is not installed.
    #[error("{transport} needs {tool}, which is not installed: {hint}")]
    MissingTool {
        /// The transport or feature.
        transport: String,
        /// The missing program.
        tool: String,
        /// How to install it.
        hint: String,
    },
}

/// Why a registry could not be reached: what a user can check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unreachable {
    /// Nothing listens on that port (connection refused).
    Refused,
    /// The registry speaks plain HTTP while HTTPS was asked.
    PlainHttp,
    /// The TLS handshake or certificate check failed.
    Tls,
    /// The host name does not resolve.
    Dns,
    /// No answer in time.
    Timeout,
    /// The connection broke off.
    Other,
}

impl std::fmt::Display for Unreachable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Unreachable::Refused => "connection refused: nothing listens on that port",
            Unreachable::PlainHttp => {
                "the registry answered in plain HTTP where HTTPS was expected; \
                 allow insecure registries to use it"
            }
            Unreachable::Tls => "TLS failed (a certificate this machine does not trust?)",
            Unreachable::Dns => "the host name does not resolve",
            Unreachable::Timeout => "no answer in time",
            Unreachable::Other => "the connection failed",
        })
    }
}

fn detail_of(detail: &str) -> String {
    if detail.is_empty() {
        String::new()
    } else {
        format!(": {detail}")
    }
}

impl Error {
    /// Who has to act on this error.
    pub fn blame(&self) -> Blame {
        match self {
            Error::Io { source, .. } => Blame::of_io(source.kind()),
            Error::InvalidReference { .. }
            | Error::ImageNotFound(_)
            | Error::InvalidDigest(_)
            | Error::UnsafeEntry { .. }
            | Error::Tar { .. }
            | Error::UnsupportedMediaType(_)
            | Error::Registry { .. }
            | Error::RegistryStatus { .. }
            | Error::Unauthorized { .. }
            | Error::InvalidCredentials(_)
            | Error::RefusedRedirect { .. }
            | Error::PlatformNotFound { .. }
            | Error::TargetNotEmpty { .. } => Blame::User,
            Error::MissingTool { .. }
            | Error::StoreBusy { .. }
            | Error::NoStoreDir
            | Error::Unreachable { .. } => Blame::Environment,
            Error::DigestMismatch { .. }
            | Error::SizeMismatch { .. }
            | Error::Json { .. }
            | Error::TooLarge { .. }
            | Error::BlobNotFound(_)
            | Error::BadStore { .. }
            | Error::BadImage { .. }
            | Error::NotRemoved { .. } => Blame::Internal,
        }
    }

    /// Builds an [`Error::Io`] naming the operation and the path.
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }
}

/// Defines `IoContext`, the extension that attaches what was being done and
/// the path to an `io::Result` (`.at("open", path)?`), for an error type with
/// an `io(op, path, source)` constructor. The trait is written once, here;
/// vauban-oci and vauban-core each define it for their own error (a generic
/// trait could not tell which error a `?` wants).
#[macro_export]
macro_rules! io_context {
    ($error:ident) => {
        /// Extension to attach a path to an `io::Result`.
        pub trait IoContext<T> {
            /// Maps an `io::Error` into the error's `Io` variant naming `op`
            /// and `path`.
            fn at(
                self,
                op: &'static str,
                path: impl Into<::std::path::PathBuf>,
            ) -> ::std::result::Result<T, $error>;
        }

        impl<T> IoContext<T> for ::std::io::Result<T> {
            fn at(
                self,
                op: &'static str,
                path: impl Into<::std::path::PathBuf>,
            ) -> ::std::result::Result<T, $error> {
                self.map_err(|e| $error::io(op, path, e))
            }
        }
    };
}

io_context!(Error);
