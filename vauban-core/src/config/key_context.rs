//! What holds a key of `config.yml` ([`KeyContext`]): it says which keys are
//! valid there, for the message of an unknown key.

use super::configuration::CONFIGURATION_KEYS;
use super::master::MASTER_KEYS;
use super::release::RELEASE_ALL_KEYS;

/// What holds a key, for [`Error::UnknownKey`](crate::Error::UnknownKey): it says which keys are valid.
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
    /// A master's `drift_report:`.
    DriftReport,
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
            KeyContext::DriftReport => &["exclude", "max_size"],
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
            KeyContext::DriftReport => "`drift_report`",
        })
    }
}
