//! What a config may hold that the original ignored and vauban ignores too, with
//! a word: a key it does not know whose value is no mapping (the original read a
//! master's keys with `value.get(...)` and took every mapping for a child master,
//! so anything else was silently dropped; it read `configuration:` the same way),
//! and a master with nothing to build. A build goes on and shows them as
//! warnings; `vauban config check --strict` refuses them
//! ([`Error::Strict`](crate::Error::Strict)).
//!
//! What the original refused too stays an error: a release that is no mapping
//! (`assert isinstance(value, dict)`), a value of the wrong type (a `stages:` that
//! is no list broke `vauban.py`), an unknown key in `schedule_options:` (the
//! scheduler's `ScheduleOptions(**options)` raised), and in what only vauban reads
//! (`mmdebstrap:`), where a typo would change the build.

use super::key_context::KeyContext;
use super::location::Location;

/// Something ignored in a config, with where it is written.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigWarning {
    /// A key vauban does not know, whose value is no mapping (a mapping is a
    /// child master): ignored.
    UnknownKey {
        /// Where the key is written.
        location: Location,
        /// The key.
        key: String,
        /// What holds it.
        within: KeyContext,
        /// The valid key closest to it, if one is close.
        suggestion: Option<&'static str>,
        /// Whether its value is empty (`web:` alone: meant as a master?).
        empty: bool,
    },
    /// A master with neither stages nor child masters: its image is its parent's.
    NoStages {
        /// The master's key.
        location: Location,
        /// Its name.
        master: String,
    },
}

impl ConfigWarning {
    /// Where the ignored text is written.
    pub fn location(&self) -> &Location {
        match self {
            ConfigWarning::UnknownKey { location, .. }
            | ConfigWarning::NoStages { location, .. } => location,
        }
    }
}

impl std::fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConfigWarning::UnknownKey {
                location,
                key,
                within,
                suggestion,
                empty,
            } => {
                write!(f, "{location}: unknown key `{key}` in {within}, ignored")?;
                match suggestion {
                    Some(s) => write!(f, " (did you mean `{s}`?)"),
                    None if *empty && within.holds_masters() => write!(
                        f,
                        " (a child master is a mapping: `{key}: {{stages: [...]}}`)"
                    ),
                    None => write!(f, "; valid keys here: {}", within.valid_keys().join(", ")),
                }
            }
            ConfigWarning::NoStages { location, master } => write!(
                f,
                "{location}: master `{master}` has neither `stages` nor child masters: \
                 its image is its parent's"
            ),
        }
    }
}
