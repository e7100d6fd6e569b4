//! The one error type of `vauban-core`: every variant names the thing at fault
//! (a path, a file of the host, a command, an image).

use std::path::PathBuf;

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the builder.
///
/// Sections are owned by modules: add new variants to your module's section.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    // ---- generic ----
    /// An I/O operation on a path failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done ("open", "write", "mount", ...).
        op: &'static str,
        /// The path at fault.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// An error of the OCI layer (store, codec, registry).
    #[error(transparent)]
    Oci(#[from] vauban_oci::Error),

    // ---- sandbox (module `sandbox`) ----
    /// This user has no subordinate id range in `/etc/subuid` or `/etc/subgid`.
    #[error(
        "no subordinate {kind} range for user {user} in {file}: add a line like \
         `{user}:100000:65536` to {file} (as root: `usermod --add-sub{kind}s 100000-165535 {user}`)"
    )]
    NoSubIdRange {
        /// `uid` or `gid`.
        kind: &'static str,
        /// The user name.
        user: String,
        /// The file that lacks the range.
        file: PathBuf,
    },
    /// A line of `/etc/subuid` or `/etc/subgid` cannot be parsed.
    #[error("{file}:{line}: malformed subordinate id range {text:?}")]
    BadSubIdLine {
        /// The file.
        file: PathBuf,
        /// The 1-based line number.
        line: usize,
        /// The line.
        text: String,
    },
    /// `newuidmap`/`newgidmap` are not installed.
    #[error(
        "{tool} not found: rootless builds need the `uidmap` package (`apt-get install uidmap`)"
    )]
    UidmapMissing {
        /// The missing program.
        tool: &'static str,
    },
    /// The kernel refuses unprivileged user namespaces.
    #[error("cannot create a user namespace ({source}): {hint}")]
    UserNamespacesDisabled {
        /// What to change.
        hint: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A namespace or process set-up call failed.
    #[error("sandbox: {op} failed: {source}")]
    Sys {
        /// The call ("fork", "unshare", "pipe", ...).
        op: &'static str,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A mount inside the sandbox failed.
    #[error("mount {what} on {target}: {source}")]
    Mount {
        /// What was mounted (a file system type or a source path).
        what: String,
        /// The mount point.
        target: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The kernel refused the overlay mount.
    #[error("overlay mount on {target} refused ({layers} lower layers): {source}; {hint}")]
    OverlayRefused {
        /// The mount point.
        target: PathBuf,
        /// How many lower dirs were given.
        layers: usize,
        /// What may be wrong.
        hint: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// An external command failed.
    #[error("{command} failed ({status}): {stderr}")]
    Command {
        /// The command line.
        command: String,
        /// Its exit status.
        status: String,
        /// The tail of its standard error.
        stderr: String,
    },
    /// Work done in the sandbox's child process failed; the message is the child's error chain.
    #[error("{what} (in the sandbox): {message}")]
    InSandbox {
        /// What the child was doing.
        what: String,
        /// The child's error, rendered.
        message: String,
    },
    /// The sandbox's child process died without reporting a result.
    #[error("{what}: sandbox process ended without a result ({status})")]
    ChildDied {
        /// What the child was doing.
        what: String,
        /// Its wait status.
        status: String,
    },
    /// The run was interrupted by a signal; everything it started was killed.
    #[error("interrupted by signal {signal}")]
    Interrupted {
        /// The signal number.
        signal: i32,
    },
    /// A program to run was given as an empty argument list.
    #[error("empty command line")]
    EmptyCommand,
    /// An image has a layer whose diff_id is missing from its config.
    #[error("image {image}: {reason}")]
    BadImage {
        /// The image reference.
        image: String,
        /// What is wrong.
        reason: String,
    },

    // ---- Ansible stages (module `stage`) ----
    /// A stage is not `playbook.yml` or `branch@playbook.yml`.
    #[error("invalid stage {spec:?}: {reason}")]
    BadStage {
        /// The stage as written.
        spec: String,
        /// What is wrong.
        reason: String,
    },
    /// A host name cannot be used as an Ansible host and `/etc/hostname`.
    #[error("invalid host name {host:?}: {reason}")]
    BadHost {
        /// The host name.
        host: String,
        /// What is wrong.
        reason: String,
    },
    /// A program vauban runs is not installed on this machine.
    #[error("{tool} not found in PATH: {hint}")]
    ToolMissing {
        /// The program.
        tool: String,
        /// How to get it.
        hint: &'static str,
    },
    /// A git command on the Ansible repository failed.
    #[error("Ansible repository {repo}: `{command}` failed ({status}): {stderr}")]
    Git {
        /// The repository (URL or directory).
        repo: String,
        /// The git command line.
        command: String,
        /// Its exit status.
        status: String,
        /// The tail of its standard error.
        stderr: String,
    },
    /// The Ansible repository has no such branch.
    #[error("Ansible repository {repo}: no branch {branch:?} (after `git fetch`)")]
    NoSuchBranch {
        /// The repository.
        repo: String,
        /// The branch asked for.
        branch: String,
    },
    /// A stage names a branch but the Ansible source is a plain directory.
    #[error(
        "stage {stage:?} asks for branch {branch:?}, but the Ansible source {dir} is a \
         directory used as it is; give a git URL (e.g. file://{dir}) to build from branches"
    )]
    BranchOfDirectory {
        /// The stage.
        stage: String,
        /// The branch.
        branch: String,
        /// The directory.
        dir: PathBuf,
    },
    /// The playbook of a stage does not exist in the Ansible root.
    #[error("playbook {playbook:?} not found in {root} (branch {branch})")]
    NoPlaybook {
        /// The playbook.
        playbook: String,
        /// The Ansible root it was looked for in.
        root: PathBuf,
        /// The branch checked out.
        branch: String,
    },
    /// The image has no Python, which Ansible needs.
    #[error(
        "image {image} has no usable {interpreter}: Ansible needs Python in the image \
         (install python3 in the base image, e.g. `mmdebstrap --include=python3`)"
    )]
    NoPython {
        /// The image.
        image: String,
        /// The interpreter looked for.
        interpreter: String,
    },
    /// A step of a stage other than the playbook failed (hostname, dpkg-query, metadata).
    #[error("stage {stage}: {step} failed ({status})")]
    StageStep {
        /// The stage.
        stage: String,
        /// The step.
        step: &'static str,
        /// Its exit status.
        status: String,
    },
    /// A pre or post hook command failed.
    #[error("stage {stage}: {hook} hook failed ({status}); log: {log}")]
    HookFailed {
        /// The stage.
        stage: String,
        /// `pre-ansible` or `post-ansible`.
        hook: &'static str,
        /// Its exit status.
        status: String,
        /// The saved log.
        log: PathBuf,
    },
    /// `ansible-playbook` failed: nothing of the stage was committed.
    #[error("{0}")]
    AnsibleFailed(Box<AnsibleFailure>),
}

/// What [`Error::AnsibleFailed`] says (boxed: it is large).
#[derive(Debug)]
pub struct AnsibleFailure {
    /// The stage.
    pub stage: String,
    /// The host being built.
    pub host: String,
    /// The exit status of `ansible-playbook`.
    pub status: String,
    /// The failed task and host as Ansible printed them, when found.
    pub failure: Option<String>,
    /// The saved log.
    pub log: PathBuf,
    /// The last lines of output.
    pub tail: String,
}

impl AnsibleFailure {
    /// The message without the output's last lines: stage, host, status, failed task,
    /// log path.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "stage {} for host {}: ansible-playbook failed ({})",
            self.stage, self.host, self.status
        );
        if let Some(failure) = &self.failure {
            s.push_str(": ");
            s.push_str(failure);
        }
        s.push_str(&format!("; log: {}", self.log.display()));
        s
    }
}

impl std::fmt::Display for AnsibleFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}\nlast lines of its output:\n{}",
            self.summary(),
            self.tail
        )
    }
}

impl Error {
    /// Builds an [`Error::Io`] naming the operation and the path.
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }

    /// Builds an [`Error::Sys`] from a failed system call.
    pub fn sys(op: &'static str, source: impl Into<std::io::Error>) -> Self {
        Error::Sys {
            op,
            source: source.into(),
        }
    }
}

/// Extension to attach a path to an `io::Result`.
pub trait IoContext<T> {
    /// Maps an `io::Error` into [`Error::Io`] naming `op` and `path`.
    fn at(self, op: &'static str, path: impl Into<PathBuf>) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn at(self, op: &'static str, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|e| Error::io(op, path, e))
    }
}
