//! YAML text to a tree of [`Node`]s that remember where they were written.
//!
//! Built on `saphyr-parser`'s events, which carry a span each. The tree keeps every
//! scalar as the text written (typing is the loader's business: a master key `12` is
//! the name "12", not a number), resolves anchors and aliases (an aliased value keeps
//! the position of its anchor, where the text to fix is), applies merge keys (`<<:`
//! with a mapping or a list of mappings; keys written in the mapping win, then the
//! earlier merged mapping), and refuses duplicate keys (PyYAML, which the original
//! used, silently kept the last one and so dropped a whole master). A document nested
//! deeper than [`MAX_DEPTH`] or expanding past [`MAX_NODES`] nodes through aliases is
//! refused rather than exhausting the stack or memory.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use saphyr_parser::{Event, Parser, ScalarStyle, ScanError, Span, StrInput, Tag};

use super::location::Location;
use crate::error::{Error, Result};

/// Deepest nesting of mappings and lists accepted.
pub(crate) const MAX_DEPTH: usize = 128;
/// Most nodes a document may hold once aliases are expanded.
pub(crate) const MAX_NODES: usize = 200_000;

/// A 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Pos {
    pub line: usize,
    pub column: usize,
}

impl Pos {
    fn of(span: &Span) -> Pos {
        Pos {
            line: span.start.line(),
            column: span.start.col() + 1,
        }
    }
}

/// One value of the document and where it starts.
#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub pos: Pos,
    pub value: Value,
    /// Whether the node is a plain (unquoted, untagged) scalar, which YAML types by
    /// its text (`12` a number, `true` a boolean) where the config does not say.
    #[cfg_attr(
        not(test),
        expect(dead_code, reason = "read by the schema tests' JSON view")
    )]
    pub plain: bool,
}

/// What a node holds.
#[derive(Debug, Clone)]
pub(crate) enum Value {
    /// `~`, `null` or nothing at all.
    Null,
    /// Any other scalar, as written.
    Str(String),
    /// A list.
    Seq(Vec<Node>),
    /// A mapping, in file order, merge keys applied.
    Map(Vec<Entry>),
}

/// One `key: value` of a mapping.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub key: String,
    pub key_pos: Pos,
    pub value: Node,
}

impl Value {
    /// What this value is, for "expected X, found Y" messages.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Value::Null => "nothing (null)",
            Value::Str(_) => "a string",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }

    fn weight(&self) -> usize {
        1 + match self {
            Value::Null | Value::Str(_) => 0,
            Value::Seq(items) => items.iter().map(|n| n.value.weight()).sum(),
            Value::Map(entries) => entries.iter().map(|e| 1 + e.value.value.weight()).sum(),
        }
    }
}

/// Parses `text` (read from `file`) into its one document; `None` when the text holds
/// no document at all (empty, or only comments).
pub(crate) fn parse(text: &str, file: &Path) -> Result<Option<Node>> {
    let mut builder = Builder {
        events: Parser::new_from_str(text),
        file,
        anchors: HashMap::new(),
        nodes: 0,
    };
    let mut root = None;
    loop {
        let (event, span) = builder.next()?;
        match event {
            Event::StreamStart | Event::DocumentEnd | Event::Nothing => {}
            Event::StreamEnd => return Ok(root),
            Event::DocumentStart(_) => {
                if root.is_some() {
                    return Err(builder.error(
                        Pos::of(&span),
                        "a config file holds one YAML document, this is a second one".into(),
                    ));
                }
                let (event, span) = builder.next()?;
                root = Some(builder.node(event, span, "", 0)?);
            }
            other => {
                return Err(
                    builder.error(Pos::of(&span), format!("unexpected YAML event {other:?}"))
                )
            }
        }
    }
}

struct Builder<'a> {
    events: Parser<'a, StrInput<'a>>,
    file: &'a Path,
    anchors: HashMap<usize, Node>,
    nodes: usize,
}

impl<'a> Builder<'a> {
    fn next(&mut self) -> Result<(Event<'a>, Span)> {
        match self.events.next() {
            Some(Ok(pair)) => Ok(pair),
            Some(Err(e)) => Err(self.scan_error(&e)),
            None => Err(Error::Yaml {
                file: self.file.to_owned(),
                line: 0,
                column: 0,
                message: "the YAML stream ended early".into(),
            }),
        }
    }

    fn scan_error(&self, e: &ScanError) -> Error {
        Error::Yaml {
            file: self.file.to_owned(),
            line: e.marker().line(),
            column: e.marker().col() + 1,
            message: e.info().to_owned(),
        }
    }

    fn error(&self, pos: Pos, message: String) -> Error {
        Error::Yaml {
            file: self.file.to_owned(),
            line: pos.line,
            column: pos.column,
            message,
        }
    }

    fn location(&self, pos: Pos, key_path: &str) -> Location {
        Location {
            file: self.file.into(),
            line: pos.line,
            column: pos.column,
            key_path: key_path.to_owned(),
        }
    }

    fn count(&mut self, weight: usize, pos: Pos) -> Result<()> {
        self.nodes += weight;
        if self.nodes > MAX_NODES {
            return Err(self.error(
                pos,
                format!(
                    "the document expands to more than {MAX_NODES} values (aliases of aliases?)"
                ),
            ));
        }
        Ok(())
    }

    fn remember(&mut self, anchor: usize, node: &Node) {
        if anchor != 0 {
            self.anchors.insert(anchor, node.clone());
        }
    }

    /// Builds the node that starts with `event`.
    fn node(&mut self, event: Event<'a>, span: Span, path: &str, depth: usize) -> Result<Node> {
        let pos = Pos::of(&span);
        if depth > MAX_DEPTH {
            return Err(self.error(
                pos,
                format!("values are nested deeper than {MAX_DEPTH} levels"),
            ));
        }
        let node = match event {
            Event::Scalar(text, style, anchor, tag) => {
                self.count(1, pos)?;
                let node = Node {
                    pos,
                    plain: style == ScalarStyle::Plain && tag.is_none(),
                    value: scalar(&text, style, tag.as_deref()),
                };
                self.remember(anchor, &node);
                node
            }
            Event::Alias(anchor) => {
                let Some(target) = self.anchors.get(&anchor) else {
                    return Err(self.error(pos, "alias to an unknown anchor".into()));
                };
                let target = target.clone();
                self.count(target.value.weight(), pos)?;
                target
            }
            Event::SequenceStart(anchor, _) => {
                let mut items = Vec::new();
                loop {
                    let (event, span) = self.next()?;
                    if matches!(event, Event::SequenceEnd) {
                        break;
                    }
                    let item_path = Location::item_path(path, items.len());
                    items.push(self.node(event, span, &item_path, depth + 1)?);
                }
                self.count(1, pos)?;
                let node = Node {
                    pos,
                    value: Value::Seq(items),
                    plain: false,
                };
                self.remember(anchor, &node);
                node
            }
            Event::MappingStart(anchor, _) => {
                let node = Node {
                    pos,
                    value: Value::Map(self.mapping(path, depth)?),
                    plain: false,
                };
                self.count(1, pos)?;
                self.remember(anchor, &node);
                node
            }
            other => return Err(self.error(pos, format!("unexpected YAML event {other:?}"))),
        };
        Ok(node)
    }

    /// Reads the entries of a mapping up to its end, then applies its merge keys.
    fn mapping(&mut self, path: &str, depth: usize) -> Result<Vec<Entry>> {
        // Entries as written; `None` as key marks a merge key.
        let mut written: Vec<(Option<String>, Pos, Node)> = Vec::new();
        let mut first_seen: HashMap<String, Pos> = HashMap::new();
        loop {
            let (event, span) = self.next()?;
            let key_pos = Pos::of(&span);
            let key = match event {
                Event::MappingEnd => break,
                Event::Scalar(text, ScalarStyle::Plain, _, None) if text == "<<" => None,
                Event::Scalar(text, ..) => Some(text.into_owned()),
                Event::Alias(anchor) => match self.anchors.get(&anchor).map(|n| &n.value) {
                    Some(Value::Str(text)) => Some(text.clone()),
                    _ => return Err(self.error(key_pos, "a mapping key must be a string".into())),
                },
                _ => {
                    return Err(self.error(
                        key_pos,
                        "a mapping key must be a string, not a list or a mapping".into(),
                    ))
                }
            };
            let value_path = match &key {
                Some(key) => Location::child_path(path, key),
                None => path.to_owned(),
            };
            let (event, span) = self.next()?;
            let value = self.node(event, span, &value_path, depth + 1)?;
            if let Some(key) = &key {
                if let Some(first) = first_seen.get(key) {
                    return Err(Error::DuplicateKey {
                        key: key.clone(),
                        location: self.location(key_pos, &value_path),
                        first: Box::new(self.location(*first, &value_path)),
                    });
                }
                first_seen.insert(key.clone(), key_pos);
            }
            written.push((key, key_pos, value));
        }

        let mut entries = Vec::with_capacity(written.len());
        let mut taken: HashSet<String> = HashSet::new();
        for (key, key_pos, value) in written {
            match key {
                Some(key) => {
                    taken.insert(key.clone());
                    entries.push(Entry {
                        key,
                        key_pos,
                        value,
                    });
                }
                None => {
                    let sources = match value.value {
                        Value::Map(merged) => vec![merged],
                        Value::Seq(items) => {
                            let mut maps = Vec::with_capacity(items.len());
                            for item in items {
                                match item.value {
                                    Value::Map(merged) => maps.push(merged),
                                    other => return Err(self.merge_error(item.pos, &other)),
                                }
                            }
                            maps
                        }
                        other => return Err(self.merge_error(value.pos, &other)),
                    };
                    for entry in sources.into_iter().flatten() {
                        if !first_seen.contains_key(&entry.key) && taken.insert(entry.key.clone()) {
                            entries.push(entry);
                        }
                    }
                }
            }
        }
        Ok(entries)
    }

    fn merge_error(&self, pos: Pos, found: &Value) -> Error {
        self.error(
            pos,
            format!(
                "a merge key `<<` takes a mapping or a list of mappings, not {}",
                found.kind()
            ),
        )
    }
}

/// Types a scalar as the YAML core schema does for null, and keeps anything else as
/// its text.
fn scalar(text: &str, style: ScalarStyle, tag: Option<&Tag>) -> Value {
    let core = |suffix: &str| tag.is_some_and(|t| t.is_yaml_core_schema() && t.suffix == suffix);
    let plain_null = style == ScalarStyle::Plain
        && tag.is_none()
        && matches!(text, "" | "~" | "null" | "Null" | "NULL");
    if plain_null || core("null") {
        Value::Null
    } else {
        Value::Str(text.to_owned())
    }
}
