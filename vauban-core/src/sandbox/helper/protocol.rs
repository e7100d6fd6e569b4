//! What vauban and its helper processes say to each other (see [`super`]): the
//! job vauban asks for, the helper's steps, and the typed reply, with the error's
//! blame and message chain (an error crosses the channel as data, never as
//! prose to be parsed again).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use vauban_oci::layer::{ApplyReport, Owners, PackOptions};
use vauban_oci::{ChainId, Digest};

pub(crate) use crate::error::RemoteError;

use super::init::InitJob;

/// vauban → helper.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum ToHelper {
    /// The work to do (the first message).
    Job(Box<Job>),
    /// The id maps of the helper's user namespace are written (rootless only).
    Mapped,
}

/// helper → vauban.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum FromHelper {
    /// The helper is in its new user namespace and waits for its id maps.
    Unshared,
    /// A layer dir is extracted (`index` in the job's list).
    Extracted {
        /// Position in [`Job::Extract`]'s list.
        index: usize,
        /// What the extraction did.
        report: ApplyReport,
    },
    /// An interactive run's pty master comes with this message.
    Pty,
    /// The command started (its pid in the sandbox's pid namespace).
    Started,
    /// The listening sockets of the sandbox's network namespace come with
    /// this message, for its egress proxy (see `sandbox::network`).
    Net,
    /// The end: what the job gave.
    Done(Reply),
}

/// The work a helper does in the namespaces.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Job {
    /// Extract layers into cached layer dirs.
    Extract {
        /// The store root.
        store: PathBuf,
        /// The layers.
        layers: Vec<LayerJob>,
        /// Owner handling.
        owners: Owners,
    },
    /// Make the upper dir a clean change set, pack it into a layer blob.
    Commit(CommitJob),
    /// Apply an image's layers onto a directory (a full unpack, owners
    /// mapped to the subordinate ids).
    Unpack {
        /// The store root.
        store: PathBuf,
        /// The image's manifest digest.
        image: Digest,
        /// The target directory.
        target: PathBuf,
    },
    /// Walk layer dirs again and compare each with its tree record (inside
    /// the user namespace, where owners map as they did at extraction).
    CheckLayers {
        /// The dirs and their records.
        dirs: Vec<vauban_oci::store::LayerDirToCheck>,
    },
    /// Remove directory trees (files owned by subordinate ids).
    Remove {
        /// The trees; each is retried for a while (processes still dying).
        paths: Vec<PathBuf>,
    },
    /// Run a program in the sandbox.
    Run {
        /// What the sandbox's init does.
        init: Box<InitJob>,
        /// The egress proxy's allowlist, when the sandbox has one (an
        /// isolated network).
        proxy: Option<Vec<String>>,
    },
}

/// One layer to extract.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct LayerJob {
    /// Its media type.
    pub media_type: String,
    /// The blob's digest.
    pub digest: Digest,
    /// The blob's size.
    pub size: u64,
    /// The diff_id (checked against the blob's content).
    pub diff_id: Digest,
    /// The chain ID (names the layer dir).
    pub chain: ChainId,
    /// Where it is extracted before the rename.
    pub tmp: PathBuf,
    /// The chain IDs of the layers below it in the image, top-most first
    /// (their dirs are its overlay lower dirs).
    pub lowers: Vec<ChainId>,
}

/// What a commit needs.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct CommitJob {
    /// The store root.
    pub store: PathBuf,
    /// The upper dir.
    pub upper: PathBuf,
    /// The sandbox's private files.
    pub private: PathBuf,
    /// What the private files held at the start, by name.
    pub initial: Vec<(String, Vec<u8>)>,
    /// The lower dirs (to tell the sandbox's placeholders from the image's).
    pub lower: Vec<PathBuf>,
    /// How to pack the layer.
    pub pack: PackOptions,
}

/// A program and its environment.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct CommandSpec {
    /// Program and arguments.
    pub argv: Vec<String>,
    /// The whole environment.
    pub env: Vec<(String, String)>,
    /// The working directory.
    pub cwd: PathBuf,
}

/// What a finished job gives.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Reply {
    /// Extraction or removal done.
    Done,
    /// The layer dirs checked, in the job's order.
    Checked(Vec<vauban_oci::layer::tree::TreeCheck>),
    /// An unpack done: what it did.
    Unpacked(vauban_oci::layer::ApplyReport),
    /// The packed layer.
    Packed(vauban_oci::layer::PackedLayer),
    /// The program ended with this raw wait status.
    Exited(i32),
    /// The program could not be started.
    ExecFailed {
        /// The program.
        program: String,
        /// `errno` of `execve`.
        errno: i32,
    },
    /// The kernel refused a user namespace (errno of `unshare`).
    UserNamespace(i32),
    /// The job failed.
    Failed(RemoteError),
}
