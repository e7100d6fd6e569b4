//! The one error type of `vauban-core`, [`Error`], a section of variants per
//! module: every variant names the thing at fault (a path, a file of the host,
//! a command, an image, a line of `config.yml`, a host of the key store).
//!
//! `blame` holds its one [`Error::blame`], `display` the pieces of its
//! messages; [`AnsibleFailure`] and [`RemoteError`] are payloads it carries
//! whole.

mod ansible;
mod blame;
mod display;
mod remote;

use std::path::{Path, PathBuf};

pub use vauban_oci::Blame;

pub use ansible::AnsibleFailure;
pub use remote::RemoteError;

use crate::config::{ConfigWarning, KeyContext, Location};
use crate::keys::{KeyKind, KeyProblem, SecretKind};

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
    /// An error of the OCI layer (store, codec, registry), also reading an image
    /// or a layer of the store (a missing or corrupt blob, a malformed tar, an
    /// entry that names a path outside the root).
    #[error(transparent)]
    Oci(#[from] vauban_oci::Error),
    /// An invariant of vauban broke: a bug, not the input's fault.
    #[error("internal error: {what}")]
    Internal {
        /// The invariant that broke.
        what: String,
    },

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
        display::tail(stderr)
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

    // ---- config.yml (module `config`) ----
    /// The file cannot be read.
    #[error("cannot read config file {path}")]
    ReadConfig {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The text is not valid YAML, or uses YAML in a way the config cannot hold
    /// (a list as a key, a merge key on a scalar, two documents).
    #[error("{file}:{line}:{column}: invalid YAML: {message}", file = file.display())]
    Yaml {
        /// The file.
        file: PathBuf,
        /// The line reported by the parser, from 1 (0 when the text ended early).
        line: usize,
        /// The column reported by the parser, from 1.
        column: usize,
        /// The parser's words.
        message: String,
    },
    /// The file holds no document, or one with no release in it.
    #[error("{} holds no release: a config needs at least one top-level release", file.display())]
    EmptyConfig {
        /// The file.
        file: PathBuf,
    },
    /// A key appears twice in one mapping.
    #[error(
        "{location}: duplicate key `{key}`, first written at {first} (the original silently \
         kept the last)"
    )]
    DuplicateKey {
        /// The key.
        key: String,
        /// The second occurrence.
        location: Location,
        /// The first occurrence.
        first: Box<Location>,
    },
    /// A key that means nothing where it is written.
    #[error(
        "{location}: unknown key `{key}` in {within}{}; valid keys here: {}{}",
        display::did_you_mean(*suggestion),
        within.valid_keys().join(", "),
        if within.holds_masters() { ", or a mapping for a child master" } else { "" }
    )]
    UnknownKey {
        /// Where the key is written.
        location: Location,
        /// The key.
        key: String,
        /// What holds it.
        within: KeyContext,
        /// The valid key closest to it, if one is close.
        suggestion: Option<&'static str>,
    },
    /// A known key written where it does not belong (`url` on a master, not a release).
    #[error("{location}: `{key}` {reason}")]
    MisplacedKey {
        /// Where the key is written.
        location: Location,
        /// The key.
        key: String,
        /// Where it belongs.
        reason: &'static str,
    },
    /// A value of the wrong YAML type.
    #[error("{location}: expected {expected}, found {found}")]
    WrongType {
        /// The value.
        location: Location,
        /// What the key takes.
        expected: &'static str,
        /// What was written.
        found: &'static str,
    },
    /// A key that must be there is not.
    #[error("{location}: missing `{key}`: {reason}")]
    MissingKey {
        /// The mapping that lacks the key.
        location: Location,
        /// The missing key.
        key: &'static str,
        /// Why it is needed.
        reason: &'static str,
    },
    /// A value of the right type that still makes no sense (a branch git refuses, a
    /// size that is no size, a URL that does not parse...).
    #[error("{location}: {message}")]
    InvalidValue {
        /// The value.
        location: Location,
        /// What is wrong with it.
        message: String,
    },
    /// A `stages` entry that is not `playbook.yml` or `branch@playbook.yml`.
    #[error("{location}: invalid stage")]
    BadStageEntry {
        /// The entry.
        location: Location,
        /// Why [`crate::stage::Stage::parse`] refused it.
        #[source]
        source: Box<Error>,
    },
    /// Two masters (or releases) share a name, so `--name` could not tell them apart.
    #[error(
        "{location}: two masters are named `{name}`, this one and the one at {first}: rename \
         one (the original silently built the first)"
    )]
    DuplicateName {
        /// The name.
        name: String,
        /// The second master.
        location: Location,
        /// The first one.
        first: Box<Location>,
    },
    /// A release that does not say where its base comes from, under a key that
    /// names no Debian suite.
    #[error(
        "{location}: release `{release}` has no source: give one of `image`, `tarball` \
         (with `sha256` or `sha512`), `mmdebstrap`, or `url` with `sha512sums`; or name \
         the release by the Debian suite to bootstrap, as the original did: a codename \
         ({}), a suite ({}) or `debian-NN` ({})",
        display::codenames(),
        display::suites(),
        display::numbered()
    )]
    NoSource {
        /// The release's key.
        location: Location,
        /// The release's key.
        release: String,
    },
    /// A release with more than one source.
    #[error("{location}: release `{release}` has two sources, `{first}` and `{second}`: keep one")]
    TwoSources {
        /// The second source key.
        location: Location,
        /// The release's key.
        release: String,
        /// The first source key.
        first: &'static str,
        /// The second source key.
        second: &'static str,
    },
    /// A checksum that is not the hex digest it claims to be.
    #[error("{location}: bad {algorithm} checksum: {reason}")]
    BadChecksum {
        /// The checksum.
        location: Location,
        /// `sha256` or `sha512`.
        algorithm: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// `--name` names no master.
    #[error("no master named `{name}` in {}; the masters are: {}", file.display(), known.join(", "))]
    NoSuchMaster {
        /// The name asked for.
        name: String,
        /// The config file.
        file: PathBuf,
        /// Every master name, in file order.
        known: Vec<String>,
    },
    /// A value of the config that names a master which does not exist.
    #[error("{location}: no master named `{name}`; the masters are: {}", known.join(", "))]
    UnknownMaster {
        /// The value.
        location: Location,
        /// The name written.
        name: String,
        /// Every master name, in file order.
        known: Vec<String>,
    },
    /// A stage whose playbook is not in the Ansible repository.
    #[error(
        "{location}: playbook `{playbook}` not found under {}{}",
        root.display(),
        display::did_you_mean(suggestion.as_deref())
    )]
    MissingPlaybook {
        /// The stage entry.
        location: Location,
        /// The playbook, relative to the Ansible root.
        playbook: String,
        /// The Ansible root searched.
        root: Box<Path>,
        /// The playbook present with the closest path, if one is close.
        suggestion: Option<String>,
    },
    /// `--strict`: the config holds what is ignored.
    #[error(
        "{} holds {} warning(s), errors with --strict; the first: {}",
        file.display(),
        warnings.len(),
        warnings.first().map(ToString::to_string).unwrap_or_default()
    )]
    Strict {
        /// The config file.
        file: PathBuf,
        /// What is ignored.
        warnings: Vec<ConfigWarning>,
    },
    /// `vauban deploy` of a master the config never uploads.
    #[error(
        "{location}: `{name}` is in `never_upload`: its boot files are never uploaded and \
         its `deployed` tag never moves (the original's `--upload no`); give --force to \
         move it anyway"
    )]
    NeverUpload {
        /// The `never_upload` entry.
        location: Location,
        /// The master.
        name: String,
    },

    // ---- sshd host-key store (module `keys`) ----
    /// The secret given is empty.
    #[error("the key store secret from {origin} is empty")]
    EmptySecret {
        /// Where the secret came from (`$VAUBAN_KEYSTORE_KEY`, a file path, ...).
        origin: String,
    },
    /// The secret looks like an age identity but does not parse as one.
    #[error(
        "the key store secret from {origin} is not a valid age identity (AGE-SECRET-KEY-1...)"
    )]
    InvalidIdentity {
        /// Where the secret came from.
        origin: String,
    },
    /// The environment variable holding the secret is not valid UTF-8.
    #[error("${var} is not valid UTF-8")]
    SecretNotUtf8 {
        /// The variable.
        var: String,
    },
    /// The file holding the secret cannot be read.
    #[error("cannot read the key store secret file {path}")]
    ReadSecret {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The secret does not decrypt the store.
    #[error(
        "{path}: the key given does not match this key store (the store is encrypted with \
         {store}, the key given is {given})"
    )]
    WrongKey {
        /// The store file.
        path: PathBuf,
        /// How the store is encrypted.
        store: SecretKind,
        /// What was given.
        given: SecretKind,
    },
    /// The store's passphrase work factor is far above what this machine does in a second.
    #[error(
        "{path}: the passphrase work factor 2^{required} is too high for this machine \
         (at most 2^{max}); re-encrypt the store with a lower one"
    )]
    ExcessiveWork {
        /// The store file.
        path: PathBuf,
        /// The file's work factor (log2).
        required: u8,
        /// The highest accepted here (log2).
        max: u8,
    },
    /// The store file is not a valid age file, or its plaintext is not a key store.
    #[error("{path}: corrupt key store ({what})")]
    CorruptKeyStore {
        /// The store file.
        path: PathBuf,
        /// What is wrong (never includes key material).
        what: String,
    },
    /// A stored private key of a host does not parse, or is of the wrong type.
    #[error("{path}: the stored {kind} key of host {host} is invalid")]
    BadStoredKey {
        /// The store file.
        path: PathBuf,
        /// The host.
        host: String,
        /// The key type (`ed25519`, `rsa`, `ecdsa`).
        kind: &'static str,
    },
    /// A host name cannot name keys (empty, or with whitespace or control characters).
    #[error("invalid host name {host:?} for the key store")]
    InvalidHost {
        /// The host name.
        host: String,
    },
    /// A key file of an import is refused.
    #[error("{file}: {problem}")]
    BadKeyFile {
        /// The file, or `TARBALL: ENTRY` for an entry of a tarball.
        file: String,
        /// Why.
        problem: KeyProblem,
    },
    /// One half of a key pair of an import is missing.
    #[error("{file}: missing (found {other} without it)")]
    MissingHalf {
        /// The missing file, or `TARBALL: ENTRY`.
        file: String,
        /// The half that is there.
        other: String,
    },
    /// A host of an import lacks a kind of key.
    #[error(
        "{origin}: host {host} has no {kind} key ({file}); vauban gives sshd an ed25519, an \
         ecdsa and an rsa key: add the missing one (ssh-keygen -t {kind} -N '' -f {file})"
    )]
    MissingKind {
        /// Where the host's keys were read.
        origin: String,
        /// The host.
        host: String,
        /// The missing kind.
        kind: KeyKind,
        /// The private key's file name.
        file: &'static str,
    },
    /// A key file name under `etc/ssh` that is no host key vauban keeps.
    #[error(
        "{file}: not a host key vauban keeps (ssh_host_{{ed25519,ecdsa,rsa}}_key and their \
         .pub; DSA and RSA1 keys are left out)"
    )]
    UnknownKeyFile {
        /// The file, or `TARBALL: ENTRY`.
        file: String,
    },
    /// An entry of a key tarball is refused.
    #[error("{tarball}: entry {entry:?}: {reason}")]
    BadTarEntry {
        /// The encrypted tarball.
        tarball: PathBuf,
        /// The entry's name, as in the tarball.
        entry: String,
        /// Why.
        reason: String,
    },
    /// A decrypted key tarball does not read as a tar archive.
    #[error("{tarball}: the decrypted file is not a tar archive")]
    BadTarball {
        /// The encrypted tarball.
        tarball: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// `gpg` cannot be started.
    #[error("cannot run gpg to decrypt {file} (is gnupg installed? apt-get install gnupg)")]
    RunGpg {
        /// The encrypted file.
        file: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// `gpg` failed to decrypt a file.
    #[error(
        "gpg could not decrypt {file} ({status}){}{}",
        display::said(stderr),
        if stderr.contains("Bad session key") {
            ": the passphrase is wrong (the original's VAULTED_SSHD_KEYS_KEY?)"
        } else {
            ""
        }
    )]
    Gpg {
        /// The encrypted file.
        file: PathBuf,
        /// gpg's exit status.
        status: String,
        /// The end of what gpg wrote on stderr, escaped.
        stderr: String,
    },
    /// The passphrase file of an import is empty.
    #[error("{path}: the passphrase file is empty (its first line is the passphrase)")]
    EmptyPassphrase {
        /// The file.
        path: PathBuf,
    },
    /// An import found no host.
    #[error("{path}: no host keys found ({expected})")]
    NothingToImport {
        /// The directory or file given.
        path: PathBuf,
        /// What was looked for.
        expected: &'static str,
    },
    /// No secret was given and the default identity file does not exist.
    #[error(
        "no key store secret: set ${var} or give a key file; the default, {identity}, does not \
         exist (a build or `vauban keys import` makes it)"
    )]
    NoSecret {
        /// The environment variable read.
        var: &'static str,
        /// The default identity file.
        identity: PathBuf,
    },
    /// Neither `$XDG_…` nor `$HOME` is set, so there is no default path.
    #[error("neither ${var} nor $HOME is set: give the path")]
    NoDefaultPath {
        /// The XDG variable.
        var: &'static str,
    },
    /// Generating or encoding a key failed.
    #[error("cannot generate the {kind} host key of {host}")]
    Generate {
        /// The host.
        host: String,
        /// The key type.
        kind: &'static str,
        /// The underlying error.
        #[source]
        source: ssh_key::Error,
    },
    /// Encrypting the store failed.
    #[error("{path}: cannot encrypt the key store")]
    Encrypt {
        /// The store file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: Box<age::EncryptError>,
    },

    // ---- boot files (module `export`) ----
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
    ProgramFailed {
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
    NotMade {
        /// The program.
        program: String,
        /// What is missing.
        path: PathBuf,
    },
    /// A disk to update, roll back or list is not one `vauban disk` made.
    #[error("{} is not a vauban disk: {reason}", .disk.display())]
    NotAVaubanDisk {
        /// The disk.
        disk: PathBuf,
        /// What is missing.
        reason: String,
    },
    /// A disk of one host was asked to boot another's build.
    #[error("{} boots {on_disk}, not {asked}: make a disk for {asked} instead", .disk.display())]
    DiskOfAnotherHost {
        /// The disk.
        disk: PathBuf,
        /// `MASTER/HOST` of its entries.
        on_disk: String,
        /// `MASTER/HOST` asked for.
        asked: String,
    },
    /// A partition of a disk has no room for a new build beside the current one.
    #[error(
        "{disk}: its {partition} has {} MiB free, the new build needs {} MiB: \
         make a bigger disk (vauban disk --size)",
        .free >> 20,
        .needed.div_ceil(1 << 20)
    )]
    DiskFull {
        /// The disk.
        disk: PathBuf,
        /// Which partition.
        partition: &'static str,
        /// Bytes needed.
        needed: u64,
        /// Bytes free.
        free: u64,
    },
    /// The size asked for a disk cannot hold one build.
    #[error(
        "a disk of {} MiB cannot hold this build: it needs at least {} MiB",
        .size >> 20,
        .needed.div_ceil(1 << 20)
    )]
    DiskTooSmall {
        /// The size asked.
        size: u64,
        /// The least size.
        needed: u64,
    },
    /// A rollback of a disk with no fallback entry of another build.
    #[error("{} has no fallback entry to roll back to", .disk.display())]
    NoFallback {
        /// The disk.
        disk: PathBuf,
    },
    /// A master or host name that cannot be part of a file name.
    #[error("invalid {what} name {name:?} for a boot file: use letters, digits, `.`, `_`, `-`")]
    BadName {
        /// `master` or `host`.
        what: &'static str,
        /// The name.
        name: String,
    },
    /// The sandbox of an export failed (prepare, run, clean-up).
    #[error("{what}")]
    ExportSandbox {
        /// What was being done.
        what: String,
        /// The sandbox's error.
        #[source]
        source: Box<Error>,
    },

    // ---- conffs archives (module `export::conffs`) ----
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
        display::list_biggest(biggest)
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

    // ---- builds (module `build`) ----
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
    #[error("conffs of master {master}: {} host(s) failed: {}", failures.len(), display::summary(failures))]
    HostsFailed {
        /// The master.
        master: String,
        /// Each failed host and its error.
        failures: Vec<(String, Error)>,
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
    BuildInterrupted {
        /// The signal.
        signal: i32,
    },

    // ---- diffs (module `diff`) ----
    /// A side of a diff, or something in it, cannot be read as a tree.
    #[error("{what}: {reason}")]
    Diff {
        /// The side, the layer or the entry at fault.
        what: String,
        /// Why.
        reason: String,
    },

    // ---- executors (module `executor`) ----
    /// An argument given to a build cannot be used.
    #[error("{argument}: {reason}")]
    InvalidArgument {
        /// The argument (`--conffs-shards`, `--executor`).
        argument: String,
        /// Why.
        reason: String,
    },
    /// The batch system refused or failed a request.
    #[error("{executor}: {message}")]
    Executor {
        /// `slurm`, `kubernetes`.
        executor: crate::executor::ExecutorKind,
        /// What it said, and what was asked.
        message: String,
        /// Who has to act.
        blame: Blame,
    },
    /// A task of a job failed, and so did its retry.
    #[error(
        "{executor} job {job}: task {index} ({what}) failed: {reason}{}",
        display::log_hint(log)
    )]
    TaskFailed {
        /// `slurm`, `kubernetes`.
        executor: crate::executor::ExecutorKind,
        /// The job, as the batch system names it.
        job: String,
        /// The task's index.
        index: usize,
        /// What it built (`conffs master-web: web01,web02`).
        what: String,
        /// Why, as the batch system says it, or the task's own error.
        reason: String,
        /// The task's output, when the coordinator kept it.
        log: Option<PathBuf>,
    },
}

impl Error {
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

    /// Builds an [`Error::Internal`]: `what` is the invariant that broke.
    pub(crate) fn internal(what: impl Into<String>) -> Self {
        Error::Internal { what: what.into() }
    }

    /// Wraps an error of the sandbox of an export while doing `what`
    /// ([`Error::ExportSandbox`]).
    pub(crate) fn export_sandbox(what: impl Into<String>) -> impl FnOnce(Error) -> Self {
        let what = what.into();
        move |source| Error::ExportSandbox {
            what,
            source: Box::new(source),
        }
    }
}

// `IoContext`: `.at(op, path)` makes an [`Error::Io`]; written once in vauban-oci.
vauban_oci::io_context!(Error);
