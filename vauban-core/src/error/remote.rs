//! An error of a sandbox helper process sent back as data ([`RemoteError`]),
//! carried by [`Error::InSandbox`](super::Error::InSandbox).

use serde::{Deserialize, Serialize};

use super::{Blame, Error};

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
    pub(crate) fn of(e: &Error) -> Self {
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
