//! Who has to act on each [`Error`]: the one `blame()` of the crate, read by the
//! CLI for its exit code and by a build server for its answer.

use super::{Blame, Error};

impl Error {
    /// Who has to act on this error.
    pub fn blame(&self) -> Blame {
        match self {
            // ---- generic ----
            Error::Io { source, .. } => Blame::of_io(source.kind()),
            Error::Oci(e) => e.blame(),
            Error::Internal { .. } => Blame::Internal,

            // ---- sandbox ----
            Error::InSandbox { source, .. } => source.blame,
            Error::Exec { .. } | Error::Interrupted { .. } | Error::EmptyCommand => Blame::User,
            Error::NoSubIdRange { .. }
            | Error::BadSubIdLine { .. }
            | Error::UidmapMissing { .. }
            | Error::UserNamespacesDisabled { .. }
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
            | Error::Panicked(_) => Blame::Internal,

            // ---- stages ----
            Error::BadStage { .. }
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
            | Error::AnsibleFailed(_)
            | Error::StageFailed { .. } => Blame::User,
            Error::ToolMissing { .. } => Blame::Environment,
            Error::StageStep { .. } => Blame::Internal,

            // ---- config.yml: its author's, except a file the machine cannot read ----
            Error::ReadConfig { source, .. } => Blame::of_io(source.kind()),
            Error::Yaml { .. }
            | Error::EmptyConfig { .. }
            | Error::DuplicateKey { .. }
            | Error::UnknownKey { .. }
            | Error::MisplacedKey { .. }
            | Error::WrongType { .. }
            | Error::MissingKey { .. }
            | Error::InvalidValue { .. }
            | Error::BadStageEntry { .. }
            | Error::DuplicateName { .. }
            | Error::NoSource { .. }
            | Error::TwoSources { .. }
            | Error::BadChecksum { .. }
            | Error::NoSuchMaster { .. }
            | Error::UnknownMaster { .. }
            | Error::MissingPlaybook { .. }
            | Error::Strict { .. }
            | Error::NeverUpload { .. } => Blame::User,

            // ---- sshd host-key store ----
            Error::EmptySecret { .. }
            | Error::InvalidIdentity { .. }
            | Error::SecretNotUtf8 { .. }
            | Error::WrongKey { .. }
            | Error::ExcessiveWork { .. }
            | Error::CorruptKeyStore { .. }
            | Error::BadStoredKey { .. }
            | Error::InvalidHost { .. }
            | Error::BadKeyFile { .. }
            | Error::MissingHalf { .. }
            | Error::MissingKind { .. }
            | Error::UnknownKeyFile { .. }
            | Error::BadTarEntry { .. }
            | Error::BadTarball { .. }
            | Error::Gpg { .. }
            | Error::EmptyPassphrase { .. }
            | Error::NothingToImport { .. }
            | Error::NoSecret { .. }
            | Error::NoDefaultPath { .. } => Blame::User,
            Error::RunGpg { source, .. } => match source.kind() {
                std::io::ErrorKind::NotFound => Blame::Environment,
                kind => Blame::of_io(kind),
            },
            Error::ReadSecret { source, .. } => Blame::of_io(source.kind()),
            Error::Generate { .. } | Error::Encrypt { .. } => Blame::Internal,

            // ---- boot files ----
            Error::NoKernel { .. } | Error::NoDracut { .. } | Error::BadName { .. } => Blame::User,
            Error::NotAVaubanDisk { .. }
            | Error::DiskOfAnotherHost { .. }
            | Error::DiskFull { .. }
            | Error::DiskTooSmall { .. }
            | Error::NoFallback { .. } => Blame::User,
            Error::ProgramFailed { .. } | Error::ScriptFailed { .. } | Error::NotMade { .. } => {
                Blame::Environment
            }
            Error::ExportSandbox { source, .. } => source.blame(),

            // ---- conffs archives ----
            Error::NotOnTop { .. } | Error::TooBig { .. } | Error::BadHostname { .. } => {
                Blame::User
            }
            Error::WrongKeys { .. } => Blame::Internal,

            // ---- builds ----
            Error::HostsFailed { failures, .. } => failures
                .iter()
                .map(|(_, e)| e.blame())
                .find(|b| *b != Blame::User)
                .unwrap_or(Blame::User),
            Error::Release { blame, .. } => *blame,
            Error::NoAnsible { .. }
            | Error::Inventory { .. }
            | Error::NoConffs { .. }
            | Error::NoHosts { .. }
            | Error::NotBuilt { .. }
            | Error::NoKeySecret { .. }
            | Error::BuildInterrupted { .. } => Blame::User,

            // ---- executors ----
            Error::InvalidArgument { .. } => Blame::User,
            Error::Executor { blame, .. } => *blame,
            Error::TaskFailed { .. } => Blame::User,

            // ---- diffs ----
            Error::Diff { .. } => Blame::User,
        }
    }
}
