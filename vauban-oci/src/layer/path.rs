//! Entry names: normalisation of tar paths into components inside the root.

use crate::error::{Error, Result};

/// A normalised entry path: components, none empty, `.` or `..`. Empty = the root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EntryPath(pub(crate) Vec<Vec<u8>>);

impl EntryPath {
    /// Normalises a tar name: leading `/` and `./` dropped, `.` and empty
    /// components skipped; a `..` component or a NUL byte is refused.
    pub(crate) fn parse(raw: &[u8]) -> Result<Self> {
        let mut comps = Vec::new();
        for c in raw.split(|&b| b == b'/') {
            match c {
                b"" | b"." => {}
                b".." => return Err(unsafe_entry(raw, "`..` path component")),
                _ if c.contains(&0) => return Err(unsafe_entry(raw, "NUL byte in the name")),
                _ => comps.push(c.to_vec()),
            }
        }
        Ok(EntryPath(comps))
    }

    /// True for the root (`.`, `./`, `/`).
    pub(crate) fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    /// The parent components and the last one (None for the root).
    pub(crate) fn split_last(&self) -> Option<(&[Vec<u8>], &[u8])> {
        self.0
            .split_last()
            .map(|(last, parent)| (parent, last.as_slice()))
    }

    /// The path joined with `/` (empty for the root).
    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        self.0.join(&b'/')
    }

    /// The name as written in a layer: `./` for the root, `a/b/` for a directory.
    pub(crate) fn tar_name(&self, dir: bool) -> Vec<u8> {
        if self.is_root() {
            return b"./".to_vec();
        }
        let mut n = self.to_bytes();
        if dir {
            n.push(b'/');
        }
        n
    }
}

/// An [`Error::UnsafeEntry`] naming the raw entry.
pub(crate) fn unsafe_entry(raw: &[u8], reason: impl Into<String>) -> Error {
    Error::UnsafeEntry {
        entry: String::from_utf8_lossy(raw).into_owned(),
        reason: reason.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_and_refuses() {
        let p = |s: &str| EntryPath::parse(s.as_bytes()).map(|p| p.to_bytes());
        assert_eq!(p("./etc//passwd").unwrap(), b"etc/passwd");
        assert_eq!(p("/usr/./lib/").unwrap(), b"usr/lib");
        assert!(EntryPath::parse(b"./").unwrap().is_root());
        assert!(EntryPath::parse(b"/").unwrap().is_root());
        assert!(p("../etc").is_err());
        assert!(p("a/../../b").is_err());
        assert_eq!(EntryPath::parse(b"a").unwrap().tar_name(true), b"a/");
    }
}
