//! The errors of loading `config.yml`: each names the file, line, column and key at
//! fault and says what is wrong in words a user can act on.

use std::path::{Path, PathBuf};

use super::configuration::CONFIGURATION_KEYS;
use super::location::Location;
use super::master::MASTER_KEYS;
use super::release::{DEBIAN_CODENAMES, DEBIAN_SUITES, RELEASE_ALL_KEYS};
use super::warning::ConfigWarning;

/// Everything that can be wrong with a config file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("cannot read config file {path}")]
    Read {
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
    Empty {
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
        did_you_mean(*suggestion),
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
    BadStage {
        /// The entry.
        location: Location,
        /// Why [`crate::stage::Stage::parse`] refused it.
        #[source]
        source: Box<crate::Error>,
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
        codenames(),
        DEBIAN_SUITES.join(", "),
        numbered()
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
        did_you_mean(suggestion.as_deref())
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
}

fn codenames() -> String {
    DEBIAN_CODENAMES
        .iter()
        .map(|(name, _)| *name)
        .collect::<Vec<_>>()
        .join(", ")
}

fn numbered() -> String {
    let numbers: Vec<u32> = DEBIAN_CODENAMES.iter().filter_map(|(_, n)| *n).collect();
    match (numbers.first(), numbers.last()) {
        (Some(first), Some(last)) => format!("debian-{first} to debian-{last}"),
        _ => String::new(),
    }
}

fn did_you_mean(suggestion: Option<&str>) -> String {
    suggestion.map_or_else(String::new, |s| format!(" (did you mean `{s}`?)"))
}

/// What holds a key, for [`ConfigError::UnknownKey`]: it says which keys are valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyContext {
    /// A release (a top-level key).
    Release,
    /// A master.
    Master,
    /// `configuration:`.
    Configuration,
    /// A release's `mmdebstrap:`.
    Mmdebstrap,
    /// A master's `schedule_options:`.
    ScheduleOptions,
}

impl KeyContext {
    /// The keys valid in this mapping.
    pub fn valid_keys(self) -> &'static [&'static str] {
        match self {
            KeyContext::Release => RELEASE_ALL_KEYS,
            KeyContext::Master => MASTER_KEYS,
            KeyContext::Configuration => CONFIGURATION_KEYS,
            KeyContext::Mmdebstrap => &["suite", "variant", "include", "mirror"],
            KeyContext::ScheduleOptions => &["stage", "build_parents"],
        }
    }

    /// Whether a key with a mapping value is a child master here.
    pub fn holds_masters(self) -> bool {
        matches!(self, KeyContext::Release | KeyContext::Master)
    }
}

impl std::fmt::Display for KeyContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            KeyContext::Release => "a release",
            KeyContext::Master => "a master",
            KeyContext::Configuration => "`configuration`",
            KeyContext::Mmdebstrap => "`mmdebstrap`",
            KeyContext::ScheduleOptions => "`schedule_options`",
        })
    }
}

impl ConfigError {
    /// Who has to act: the config's author, except for a file the machine
    /// cannot read.
    pub fn blame(&self) -> crate::error::Blame {
        use crate::error::Blame;
        match self {
            ConfigError::Read { source, .. } => Blame::of_io(source.kind()),
            ConfigError::Yaml { .. }
            | ConfigError::Empty { .. }
            | ConfigError::DuplicateKey { .. }
            | ConfigError::UnknownKey { .. }
            | ConfigError::MisplacedKey { .. }
            | ConfigError::WrongType { .. }
            | ConfigError::MissingKey { .. }
            | ConfigError::InvalidValue { .. }
            | ConfigError::BadStage { .. }
            | ConfigError::DuplicateName { .. }
            | ConfigError::NoSource { .. }
            | ConfigError::TwoSources { .. }
            | ConfigError::BadChecksum { .. }
            | ConfigError::NoSuchMaster { .. }
            | ConfigError::UnknownMaster { .. }
            | ConfigError::MissingPlaybook { .. }
            | ConfigError::Strict { .. }
            | ConfigError::NeverUpload { .. } => Blame::User,
        }
    }
}
