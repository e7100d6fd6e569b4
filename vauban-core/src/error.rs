//! The one error type of `vauban-core`: every variant names the thing at fault
//! (a path, a file of the host, a command, an image).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
pub use vauban_oci::Blame;

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
    #[error("{op} {path}")]
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
    /// An error of the conffs export (module `export::conffs`).
    #[error(transparent)]
    Conffs(#[from] crate::export::conffs::ConffsError),

    // ---- sandbox (module `sandbox`) ----
    /// This user has no subordinate id range in `/etc/subuid` or `/etc/subgid`.
    #[error(
        "no subordinate {kind} range for user {user} in {file}: add a line like \
         `{user}:{free}:65536` to {file} (as root: `usermod --add-sub{kind}s {free}-{} {user}`)",
        free + 65535
    )]
    NoSubIdRange {
        /// `uid` or `gid`.
        kind: &'static str,
        /// The user name.
        user: String,
        /// The file that lacks the range.
        file: PathBuf,
        /// The first id after every range of the file (at least 100000).
        free: u64,
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
    #[error("cannot create a user namespace: {hint}")]
    UserNamespacesDisabled {
        /// What to change.
        hint: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A namespace or process set-up call failed.
    #[error("sandbox: {op} failed")]
    Sys {
        /// The call ("fork", "unshare", "pipe", ...).
        op: &'static str,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A mount inside the sandbox failed.
    #[error("mount {what} on {target}")]
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
    #[error("overlay mount on {target} refused ({layers} lower layers); {hint}")]
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
    /// Work done in a sandbox helper failed; its error comes back as data.
    #[error("{what} (in the sandbox)")]
    InSandbox {
        /// What the helper was doing.
        what: String,
        /// The helper's error.
        #[source]
        source: Box<RemoteError>,
    },
    /// A sandbox helper died without reporting a result.
    #[error(
        "{what}: the sandbox helper ended without a result ({status}){}",
        tail(stderr)
    )]
    ChildDied {
        /// What the helper was doing.
        what: String,
        /// Its wait status.
        status: String,
        /// The last lines it wrote on its standard error.
        stderr: String,
    },
    /// A sandbox helper said something it should not have.
    #[error("sandbox helper: {message}")]
    ChildProtocol {
        /// What was wrong.
        message: String,
    },
    /// The channel to a sandbox helper failed.
    #[error("the channel to a sandbox helper failed")]
    Channel(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The helper executable cannot be started.
    #[error("cannot start the sandbox helper {helper}")]
    HelperFailed {
        /// The executable.
        helper: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// No helper executable is known to this program.
    #[error(
        "no sandbox helper: call vauban_core::sandbox::run_helper_if_asked() first in main, \
         or set VAUBAN_HELPER to a vauban binary"
    )]
    NoHelper,
    /// The program to run in the sandbox cannot be started.
    #[error("cannot run {program} in the sandbox")]
    Exec {
        /// The program.
        program: String,
        /// `execve`'s error (not found: exit 127, not executable: 126).
        #[source]
        source: std::io::Error,
    },
    /// A thread of vauban panicked.
    #[error("{0} panicked")]
    Panicked(&'static str),
    /// The run was interrupted by a signal; everything it started was killed.
    #[error("interrupted by signal {signal}")]
    Interrupted {
        /// The signal number.
        signal: i32,
    },
    /// A program to run was given as an empty argument list.
    #[error("empty command line")]
    EmptyCommand,
    /// No user directory of that kind can be derived from the environment.
    #[error("no {what} directory: set XDG_{}_HOME or HOME", what.to_uppercase())]
    NoUserDir {
        /// `cache` or `state`.
        what: &'static str,
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
    /// The Ansible root is the user's home or holds it: the confined
    /// controller never shows the home.
    #[error(
        "the Ansible root {root} holds your home directory {home}: Ansible's controller is \
         never shown the home (it holds vauban's keys and your credentials); point --ansible \
         (or `ansible:` in config.yml) at the repository itself"
    )]
    AnsibleRootHoldsHome {
        /// The Ansible root.
        root: PathBuf,
        /// The home directory.
        home: PathBuf,
    },
    /// The Ansible root is inside a path the controller is never shown.
    #[error(
        "the Ansible root {root} is inside {hidden}, which Ansible's controller is never \
         shown (vauban's store, keys, logs or output, or credentials): move the repository"
    )]
    AnsibleRootHidden {
        /// The Ansible root.
        root: PathBuf,
        /// The hidden path that holds it.
        hidden: PathBuf,
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
    #[error(
        "playbook {playbook:?} not found in {root} (branch {branch}){}",
        suggestion.as_ref().map(|s| format!(": did you mean {s:?}?")).unwrap_or_default()
    )]
    NoPlaybook {
        /// The playbook.
        playbook: String,
        /// The Ansible root it was looked for in.
        root: PathBuf,
        /// The branch checked out.
        branch: String,
        /// The closest playbook of the root, if close.
        suggestion: Option<String>,
    },
    /// An inventory given for the stages does not exist in the Ansible root.
    #[error("inventory {inventory} does not exist")]
    NoInventory {
        /// The inventory, in the Ansible root.
        inventory: PathBuf,
    },
    /// Ansible cannot parse a playbook.
    #[error("ansible-playbook --syntax-check {playbooks} (in {root}) failed: {message}")]
    PlaybookSyntax {
        /// The playbooks checked.
        playbooks: String,
        /// The Ansible root.
        root: PathBuf,
        /// Ansible's `ERROR!` and what follows.
        message: String,
    },
    /// A stage ran no task for its host: no play of it matches the host.
    #[error(
        "stage {stage} ran nothing for host {host}: its plays are for {} and {host} is in {}",
        if patterns.is_empty() { "(unknown)".to_string() } else { patterns.join("; ") },
        if groups.is_empty() { "no group".to_string() } else { format!("groups {}", groups.join(", ")) }
    )]
    NoHostMatched {
        /// The stage.
        stage: String,
        /// The host.
        host: String,
        /// The host patterns of its plays.
        patterns: Vec<String>,
        /// The groups the host is in.
        groups: Vec<String>,
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
    /// A stage could not run for a host (its checkout, its sandbox).
    #[error("stage {stage} for host {host}: {message}")]
    StageFailed {
        /// The stage.
        stage: String,
        /// The host.
        host: String,
        /// What happened.
        message: String,
    },
    /// `ansible-playbook` failed: nothing of the stage was committed.
    #[error("{0}")]
    AnsibleFailed(Box<AnsibleFailure>),
}

/// What [`Error::AnsibleFailed`] says (boxed: it is large).
#[derive(Debug, Clone)]
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

fn tail(stderr: &str) -> String {
    if stderr.is_empty() {
        String::new()
    } else {
        format!("; it said: {}", stderr.replace('\n', " / "))
    }
}

impl Error {
    /// Who has to act on this error.
    pub fn blame(&self) -> Blame {
        match self {
            Error::Io { source, .. } => Blame::of_io(source.kind()),
            Error::Oci(e) => e.blame(),
            Error::Conffs(e) => e.blame(),
            Error::InSandbox { source, .. } => source.blame,
            Error::Exec { .. }
            | Error::Interrupted { .. }
            | Error::EmptyCommand
            | Error::BadStage { .. }
            | Error::BadHost { .. }
            | Error::Git { .. }
            | Error::NoSuchBranch { .. }
            | Error::BranchOfDirectory { .. }
            | Error::NoPlaybook { .. }
            | Error::AnsibleRootHoldsHome { .. }
            | Error::AnsibleRootHidden { .. }
            | Error::PlaybookSyntax { .. }
            | Error::NoInventory { .. }
            | Error::NoHostMatched { .. }
            | Error::NoPython { .. }
            | Error::HookFailed { .. }
            | Error::AnsibleFailed(_) => Blame::User,
            Error::NoSubIdRange { .. }
            | Error::BadSubIdLine { .. }
            | Error::UidmapMissing { .. }
            | Error::UserNamespacesDisabled { .. }
            | Error::ToolMissing { .. }
            | Error::NoHelper
            | Error::NoUserDir { .. }
            | Error::HelperFailed { .. }
            | Error::Sys { .. }
            | Error::Mount { .. }
            | Error::OverlayRefused { .. }
            | Error::Command { .. } => Blame::Environment,
            Error::ChildDied { .. }
            | Error::ChildProtocol { .. }
            | Error::Channel(_)
            | Error::Panicked(_)
            | Error::StageStep { .. } => Blame::Internal,
            Error::StageFailed { .. } => Blame::User,
        }
    }

    /// Wraps a failure of the channel to a helper.
    pub(crate) fn channel(e: crate::sandbox::helper::channel::ChannelError) -> Self {
        Error::Channel(Box::new(e))
    }

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

// `IoContext`: `.at(op, path)` makes an [`Error::Io`]; written once in vauban-oci.
vauban_oci::io_context!(Error);

/// An error of a helper process, as data: who is to blame, its message and its
/// source's, so the chain prints as it would have in the helper.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteError {
    /// Who has to act.
    pub blame: Blame,
    /// The error's own message.
    pub message: String,
    /// The error it came from.
    pub source: Option<Box<RemoteError>>,
}

impl RemoteError {
    /// A crate error and its sources, as data.
    pub(crate) fn of(e: &crate::Error) -> Self {
        let blame = e.blame();
        let mut messages = vec![e.to_string()];
        let mut cur = std::error::Error::source(e);
        while let Some(s) = cur {
            messages.push(s.to_string());
            cur = s.source();
        }
        let mut out: Option<Box<RemoteError>> = None;
        for message in messages.into_iter().rev() {
            out = Some(Box::new(RemoteError {
                blame,
                message,
                source: out,
            }));
        }
        *out.expect("at least the error's own message")
    }

    /// An error of the helper's own making.
    pub(crate) fn new(blame: Blame, message: impl Into<String>) -> Self {
        RemoteError {
            blame,
            message: message.into(),
            source: None,
        }
    }
}

impl std::fmt::Display for RemoteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for RemoteError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_deref().map(|e| e as _)
    }
}
