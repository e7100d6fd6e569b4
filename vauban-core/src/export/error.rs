//! The error type of the boot exports (kernel, initramfs, squashfs, boot
//! files): every variant names the image, path or program at fault.

use std::path::PathBuf;

/// Result alias of the export modules.
pub type Result<T, E = ExportError> = std::result::Result<T, E>;

/// Everything that can go wrong while making boot files.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExportError {
    /// The image has no kernel with its modules.
    #[error(
        "image {image} has no kernel: none of /boot/vmlinuz-* has its /lib/modules/* \
         (found modules {modules:?}, kernels {kernels:?}); install the package {packages}"
    )]
    NoKernel {
        /// The image.
        image: String,
        /// The names found in `/lib/modules`.
        modules: Vec<String>,
        /// The names found in `/boot` (`vmlinuz-*`).
        kernels: Vec<String>,
        /// What to install.
        packages: &'static str,
    },
    /// The image has no dracut to make the initramfs with.
    #[error("image {image} has no dracut: install the packages {packages}")]
    NoDracut {
        /// The image.
        image: String,
        /// What to install.
        packages: &'static str,
    },
    /// A program run for an export exited with an error.
    #[error("{program} failed ({status}); its output is in {log}:\n{tail}")]
    Failed {
        /// The program.
        program: String,
        /// How it ended ("exit status: 1").
        status: String,
        /// The file holding its whole output.
        log: PathBuf,
        /// The last lines of its output.
        tail: String,
    },
    /// A short script of ours on the image's tree failed.
    #[error("{what} failed ({status}):\n{output}")]
    ScriptFailed {
        /// What the script does.
        what: &'static str,
        /// How it ended.
        status: String,
        /// What it printed.
        output: String,
    },
    /// A program ran but did not make what it should have.
    #[error("{program} did not make {path}")]
    Missing {
        /// The program.
        program: String,
        /// What is missing.
        path: PathBuf,
    },
    /// A master or host name that cannot be part of a file name.
    #[error("invalid {what} name {name:?} for a boot file: use letters, digits, `.`, `_`, `-`")]
    BadName {
        /// `master` or `host`.
        what: &'static str,
        /// The name.
        name: String,
    },
    /// The sandbox failed (prepare, run, clean-up).
    #[error("{what}")]
    Sandbox {
        /// What was being done.
        what: String,
        /// The sandbox's error.
        #[source]
        source: Box<crate::Error>,
    },
    /// An I/O operation on a path failed.
    #[error("{op} {path}")]
    Io {
        /// What was being done ("write", "rename", ...).
        op: &'static str,
        /// The path at fault.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

impl ExportError {
    /// An I/O error on `path` while doing `op`.
    pub(crate) fn io(
        op: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| ExportError::Io { op, path, source }
    }

    /// A sandbox error while doing `what`.
    pub(crate) fn sandbox(what: impl Into<String>) -> impl FnOnce(crate::Error) -> Self {
        let what = what.into();
        move |source| ExportError::Sandbox {
            what,
            source: Box::new(source),
        }
    }
}

impl ExportError {
    /// Who has to act on this error.
    pub fn blame(&self) -> crate::error::Blame {
        use crate::error::Blame;
        match self {
            ExportError::NoKernel { .. }
            | ExportError::NoDracut { .. }
            | ExportError::BadName { .. } => Blame::User,
            ExportError::Failed { .. }
            | ExportError::ScriptFailed { .. }
            | ExportError::Missing { .. } => Blame::Environment,
            ExportError::Sandbox { source, .. } => source.blame(),
            ExportError::Io { source, .. } => Blame::of_io(source.kind()),
        }
    }
}
