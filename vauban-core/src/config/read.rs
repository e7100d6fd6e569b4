//! Typed reads of [`Node`]s: the one place that turns "expected a list, found a
//! string" and unknown keys into [`Error`]s (or, for keys the original
//! ignored, [`ConfigWarning`]s) with a [`Location`].
//!
//! Where a value is optional (an optional string, a list, a mapping), an explicit null
//! (`key:` with nothing, `~`) reads as if the key were absent; a required string must
//! be written.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::location::{Located, Location};
use super::suggest::closest;
use super::warning::ConfigWarning;
use super::yaml::{Entry, Node, Pos, Value};
use super::KeyContext;
use crate::error::{Error, Result};

/// What every read needs: the file, for locations, and its directory, for the
/// relative paths of the config.
pub(crate) struct Reader {
    /// The config file (absolute).
    pub file: Arc<Path>,
    /// Its directory.
    pub dir: PathBuf,
    /// What the reads found to ignore, in file order.
    warnings: RefCell<Vec<ConfigWarning>>,
}

impl Reader {
    pub(crate) fn new(file: &Path) -> Self {
        Reader {
            file: file.into(),
            dir: file
                .parent()
                .map_or_else(|| PathBuf::from("/"), Path::to_owned),
            warnings: RefCell::new(Vec::new()),
        }
    }

    /// Notes something the config holds that is ignored.
    pub(crate) fn warn(&self, warning: ConfigWarning) {
        self.warnings.borrow_mut().push(warning);
    }

    /// The warnings noted, in file order.
    pub(crate) fn take_warnings(&self) -> Vec<ConfigWarning> {
        let mut warnings = self.warnings.take();
        warnings.sort_by_key(|w| (w.location().line, w.location().column));
        warnings
    }

    pub(crate) fn at(&self, pos: Pos, key_path: &str) -> Location {
        Location {
            file: self.file.clone(),
            line: pos.line,
            column: pos.column,
            key_path: key_path.to_owned(),
        }
    }

    fn wrong_type(&self, node: &Node, path: &str, expected: &'static str) -> Error {
        Error::WrongType {
            location: self.at(node.pos, path),
            expected,
            found: node.value.kind(),
        }
    }

    /// A string; a null is an error (the key is there, so a value was meant).
    pub(crate) fn string(&self, node: &Node, path: &str) -> Result<Located<String>> {
        match &node.value {
            Value::Str(s) => Ok(Located::new(s.clone(), self.at(node.pos, path))),
            _ => Err(self.wrong_type(node, path, "a string")),
        }
    }

    /// A string that must not be empty.
    pub(crate) fn non_empty(&self, node: &Node, path: &str) -> Result<Located<String>> {
        let s = self.string(node, path)?;
        if s.value.trim().is_empty() {
            return Err(Error::InvalidValue {
                location: s.location,
                message: "the value is empty".into(),
            });
        }
        Ok(s)
    }

    /// A non-empty string, or `None` for a null.
    pub(crate) fn opt_string(&self, node: &Node, path: &str) -> Result<Option<Located<String>>> {
        match node.value {
            Value::Null => Ok(None),
            _ => self.non_empty(node, path).map(Some),
        }
    }

    /// The items of a list, each with its key path; a null is an empty list.
    pub(crate) fn list<'n>(&self, node: &'n Node, path: &str) -> Result<Vec<(&'n Node, String)>> {
        match &node.value {
            Value::Null => Ok(Vec::new()),
            Value::Seq(items) => Ok(items
                .iter()
                .enumerate()
                .map(|(i, item)| (item, Location::item_path(path, i)))
                .collect()),
            _ => Err(self.wrong_type(node, path, "a list")),
        }
    }

    /// A list of non-empty strings.
    pub(crate) fn strings(&self, node: &Node, path: &str) -> Result<Vec<Located<String>>> {
        self.list(node, path)?
            .into_iter()
            .map(|(item, item_path)| self.non_empty(item, &item_path))
            .collect()
    }

    /// The entries of a mapping; a null is an empty mapping.
    pub(crate) fn map<'n>(&self, node: &'n Node, path: &str) -> Result<&'n [Entry]> {
        match &node.value {
            Value::Null => Ok(&[]),
            Value::Map(entries) => Ok(entries),
            _ => Err(self.wrong_type(node, path, "a mapping")),
        }
    }

    /// The error for `entry`, a key of the mapping at `parent_path` (a `within`) that
    /// is not one of its keys.
    pub(crate) fn unknown_key(
        &self,
        entry: &Entry,
        parent_path: &str,
        within: KeyContext,
    ) -> Error {
        Error::UnknownKey {
            location: self.key_at(entry, parent_path),
            key: entry.key.clone(),
            within,
            suggestion: closest(&entry.key, within.valid_keys().iter().copied()),
        }
    }

    /// Notes `entry`, a key of the mapping at `parent_path` (a `within`) that is
    /// not one of its keys, as ignored (the original ignored it).
    pub(crate) fn ignored_key(&self, entry: &Entry, parent_path: &str, within: KeyContext) {
        self.warn(ConfigWarning::UnknownKey {
            location: self.key_at(entry, parent_path),
            key: entry.key.clone(),
            within,
            suggestion: closest(&entry.key, within.valid_keys().iter().copied()),
            empty: matches!(entry.value.value, Value::Null),
        });
    }

    /// Where the key of `entry`, in the mapping at `parent_path`, is written.
    fn key_at(&self, entry: &Entry, parent_path: &str) -> Location {
        self.at(
            entry.key_pos,
            &Location::child_path(parent_path, &entry.key),
        )
    }

    /// A path written in the config: absolute as it is, relative to the config's
    /// directory otherwise (joined lexically, not resolved on disk).
    pub(crate) fn path(&self, written: impl AsRef<Path>) -> PathBuf {
        self.dir.join(written)
    }
}

/// Whether `text` is a URL rather than a path (`scheme://...`).
pub(crate) fn is_url(text: &str) -> bool {
    text.contains("://")
}

/// Checks that `text` is an `http://` or `https://` URL.
pub(crate) fn http_url(text: &Located<String>) -> Result<()> {
    let bad = |message: String| Error::InvalidValue {
        location: text.location.clone(),
        message,
    };
    let url = url::Url::parse(text)
        .map_err(|e| bad(format!("`{}` is not a valid URL: {e}", text.value)))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad(format!(
            "`{}`: only http:// and https:// URLs are fetched",
            text.value
        )));
    }
    Ok(())
}
