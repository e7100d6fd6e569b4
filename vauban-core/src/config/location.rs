//! Where a value was written in `config.yml`: file, 1-based line and column, and the
//! key path that leads to it (`debian-12.web.stages[1]`), so that every error the
//! loader or the planner reports can point at the text to fix.

use std::borrow::Cow;
use std::fmt;
use std::ops::Deref;
use std::path::Path;
use std::sync::Arc;

use schemars::{JsonSchema, Schema, SchemaGenerator};

/// A position in a config file.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Location {
    /// The config file (absolute), shared by every location in it.
    pub file: Arc<Path>,
    /// The line, counted from 1.
    pub line: usize,
    /// The column in characters, counted from 1.
    pub column: usize,
    /// The keys and list indexes that lead to the value, dot-separated:
    /// `debian-12.web.stages[1]`. A key holding a `.`, a bracket, a space or nothing
    /// at all is written in double quotes. Empty for the document itself.
    pub key_path: String,
}

impl Location {
    /// The key path of `key` inside the value at `self.key_path`.
    pub(crate) fn child_path(parent: &str, key: &str) -> String {
        let needs_quotes = key.is_empty()
            || key.contains(|c: char| {
                c == '.' || c == '[' || c == ']' || c.is_whitespace() || c == '"'
            });
        let key: Cow<'_, str> = if needs_quotes {
            Cow::Owned(format!("{key:?}"))
        } else {
            Cow::Borrowed(key)
        };
        if parent.is_empty() {
            key.into_owned()
        } else {
            format!("{parent}.{key}")
        }
    }

    /// The key path of item `index` (0-based) of the list at `parent`.
    pub(crate) fn item_path(parent: &str, index: usize) -> String {
        format!("{parent}[{index}]")
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.column)?;
        if !self.key_path.is_empty() {
            write!(f, " at `{}`", self.key_path)?;
        }
        Ok(())
    }
}

/// A value together with the place it was written.
///
/// Dereferences to the value, so `stage.playbook` works on a `Located<Stage>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Located<T> {
    /// The value.
    pub value: T,
    /// Where the value was written.
    pub location: Location,
}

impl<T> Located<T> {
    /// Pairs a value with its location.
    pub fn new(value: T, location: Location) -> Self {
        Located { value, location }
    }
}

impl<T> Deref for Located<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.value
    }
}

/// In the schema a located value is just the value.
impl<T: JsonSchema> JsonSchema for Located<T> {
    fn inline_schema() -> bool {
        T::inline_schema()
    }

    fn schema_name() -> Cow<'static, str> {
        T::schema_name()
    }

    fn schema_id() -> Cow<'static, str> {
        T::schema_id()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        T::json_schema(generator)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_paths_quote_keys_that_would_read_ambiguously() {
        assert_eq!(Location::child_path("", "debian-12"), "debian-12");
        assert_eq!(Location::child_path("debian-12", "web"), "debian-12.web");
        assert_eq!(
            Location::child_path("", "debian-12-generic-amd64.raw"),
            "\"debian-12-generic-amd64.raw\""
        );
        assert_eq!(Location::item_path("a.stages", 1), "a.stages[1]");
        let location = Location {
            file: Path::new("/c/config.yml").into(),
            line: 3,
            column: 5,
            key_path: "a.stages[1]".into(),
        };
        assert_eq!(location.to_string(), "/c/config.yml:3:5 at `a.stages[1]`");
    }
}
