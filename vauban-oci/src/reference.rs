//! Image references of the local store: `NAME[:TAG]`, the tag defaulting to
//! `latest`. NAME follows the distribution grammar (lowercase path components
//! separated by `/`, optionally led by a registry host with a port); TAG is
//! `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};

/// The tag used when a reference has none.
pub const DEFAULT_TAG: &str = "latest";

/// Longest accepted name, as in the distribution spec.
const MAX_NAME: usize = 255;
/// Longest accepted tag.
const MAX_TAG: usize = 128;

/// A validated `NAME:TAG`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference {
    name: String,
    tag: String,
}

impl Reference {
    /// Parses `NAME[:TAG]`; the tag defaults to [`DEFAULT_TAG`].
    pub fn parse(s: &str) -> Result<Self> {
        let bad = |reason: &str| Error::InvalidReference {
            reference: s.to_string(),
            reason: reason.to_string(),
        };
        if s.contains('@') {
            return Err(bad(
                "digest references (NAME@sha256:...) are not accepted here",
            ));
        }
        // The tag separator is a ':' after the last '/', so `host:5000/x` has no tag.
        let last_slash = s.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match s[last_slash..].rfind(':') {
            Some(i) => (&s[..last_slash + i], &s[last_slash + i + 1..]),
            None => (s, DEFAULT_TAG),
        };
        validate_name(name).map_err(|r| bad(&r))?;
        validate_tag(tag).map_err(|r| bad(&r))?;
        Ok(Reference {
            name: name.to_string(),
            tag: tag.to_string(),
        })
    }

    /// Builds a reference from a name and a tag, validating both.
    pub fn new(name: &str, tag: &str) -> Result<Self> {
        let whole = format!("{name}:{tag}");
        let bad = |reason: String| Error::InvalidReference {
            reference: whole.clone(),
            reason,
        };
        validate_name(name).map_err(bad)?;
        validate_tag(tag).map_err(bad)?;
        Ok(Reference {
            name: name.to_string(),
            tag: tag.to_string(),
        })
    }

    /// The name, without the tag.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The tag.
    pub fn tag(&self) -> &str {
        &self.tag
    }

    /// The same name with another tag.
    pub fn with_tag(&self, tag: &str) -> Result<Self> {
        Reference::new(&self.name, tag)
    }
}

fn validate_name(name: &str) -> std::result::Result<(), String> {
    if name.is_empty() {
        return Err("the name is empty".into());
    }
    if name.len() > MAX_NAME {
        return Err(format!("the name is longer than {MAX_NAME} characters"));
    }
    let mut components: Vec<&str> = name.split('/').collect();
    // A leading registry host (has a '.' or a ':' or is `localhost`) may hold a port.
    if components.len() > 1 {
        let first = components[0];
        if first.contains('.') || first.contains(':') || first == "localhost" {
            validate_host(first)?;
            components.remove(0);
        }
    }
    for c in components {
        validate_component(c)?;
    }
    Ok(())
}

fn validate_host(host: &str) -> std::result::Result<(), String> {
    let (h, port) = match host.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (host, None),
    };
    let ok_host = !h.is_empty()
        && h.split('.').all(|l| {
            !l.is_empty()
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        });
    if !ok_host {
        return Err(format!("{host:?} is not a valid registry host"));
    }
    if let Some(p) = port {
        if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("{host:?} has an invalid port"));
        }
    }
    Ok(())
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`
fn validate_component(c: &str) -> std::result::Result<(), String> {
    let err = || {
        format!(
            "name component {c:?} must be lowercase letters and digits, \
             separated by '.', '_', '__' or dashes"
        )
    };
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return Err(err());
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let valid = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !valid {
            return Err(err());
        }
    }
    Ok(())
}

fn validate_tag(tag: &str) -> std::result::Result<(), String> {
    let b = tag.as_bytes();
    let first_ok = b
        .first()
        .is_some_and(|&x| x.is_ascii_alphanumeric() || x == b'_');
    if !first_ok
        || b.len() > MAX_TAG
        || !b
            .iter()
            .all(|&x| x.is_ascii_alphanumeric() || matches!(x, b'_' | b'.' | b'-'))
    {
        return Err(format!(
            "tag {tag:?} must be 1 to {MAX_TAG} of [A-Za-z0-9_.-], not starting with '.' or '-'"
        ));
    }
    Ok(())
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.name, self.tag)
    }
}

impl fmt::Debug for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.name, self.tag)
    }
}

impl FromStr for Reference {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Reference::parse(s)
    }
}

impl serde::Serialize for Reference {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> serde::Deserialize<'de> for Reference {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Reference::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_good_references() {
        for (input, name, tag) in [
            ("debian", "debian", "latest"),
            ("debian:12", "debian", "12"),
            (
                "vauban/web01:2026-11-25T2218",
                "vauban/web01",
                "2026-11-25T2218",
            ),
            (
                "localhost:5000/vauban/x",
                "localhost:5000/vauban/x",
                "latest",
            ),
            (
                "reg.example.com:5000/a/b:v1.2_3",
                "reg.example.com:5000/a/b",
                "v1.2_3",
            ),
            ("a__b/c-d---e.f", "a__b/c-d---e.f", "latest"),
        ] {
            let r = Reference::parse(input).unwrap();
            assert_eq!((r.name(), r.tag()), (name, tag), "{input}");
            assert_eq!(r.to_string(), format!("{name}:{tag}"));
        }
    }

    #[test]
    fn refuses_bad_references() {
        for bad in [
            "",
            ":tag",
            "Debian",
            "debian:",
            "debian:.x",
            "debian:-x",
            "a//b",
            "/a",
            "a/",
            "../x",
            "a/../b",
            "a b",
            "a:b:c",
            "x@sha256:00",
            "a.-b",
            "a___b",
        ] {
            assert!(Reference::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert!(Reference::parse(&format!("a:{}", "t".repeat(129))).is_err());
    }
}
