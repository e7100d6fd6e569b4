//! Remote image references: `[docker://]HOST[:PORT]/REPO[:TAG|@DIGEST]`.
//!
//! Unlike Docker, the registry host is never implied: the first path component must
//! look like a host (it holds a `.` or a `:`, or is `localhost`).

use std::fmt;

use crate::digest::Digest;
use crate::error::{Error, Result};

/// What a remote reference points at in its repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoteTarget {
    /// A tag (`latest` when none was written).
    Tag(String),
    /// A manifest digest.
    Digest(Digest),
}

/// A parsed remote image reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteReference {
    /// `HOST[:PORT]` of the registry.
    pub registry: String,
    /// Repository path inside the registry, e.g. `vauban/base`.
    pub repository: String,
    /// Tag or digest.
    pub target: RemoteTarget,
}

fn invalid(reference: &str, reason: impl Into<String>) -> Error {
    Error::InvalidReference {
        reference: reference.to_string(),
        reason: reason.into(),
    }
}

/// Whether `s` is a valid tag: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
pub fn is_valid_tag(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

fn is_valid_repository(s: &str) -> bool {
    !s.is_empty()
        && s.split('/').all(|part| {
            let b = part.as_bytes();
            !b.is_empty()
                && b[0].is_ascii_lowercase() | b[0].is_ascii_digit()
                && b[b.len() - 1].is_ascii_lowercase() | b[b.len() - 1].is_ascii_digit()
                && b.iter()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"._-".contains(c))
        })
}

fn is_valid_host(s: &str) -> bool {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let Some((inner, after)) = rest.split_once(']') else {
            return false;
        };
        if inner.parse::<std::net::Ipv6Addr>().is_err() {
            return false;
        }
        match after.strip_prefix(':') {
            Some(p) => ("[v6]", Some(p)),
            None if after.is_empty() => ("[v6]", None),
            None => return false,
        }
    } else {
        match s.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    let host_ok = host == "[v6]"
        || (!host.is_empty()
            && host
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'.' || c == b'-'));
    let port_ok = port.is_none_or(|p| p.parse::<u16>().is_ok_and(|n| n > 0));
    host_ok
        && port_ok
        && (host.contains('.') || port.is_some() || host == "localhost" || host == "[v6]")
}

impl RemoteReference {
    /// Parses `[docker://]HOST[:PORT]/REPO[:TAG|@sha256:HEX]`.
    pub fn parse(input: &str) -> Result<Self> {
        let s = input.strip_prefix("docker://").unwrap_or(input);
        let (host, rest) = s
            .split_once('/')
            .ok_or_else(|| invalid(input, "expected HOST[:PORT]/REPOSITORY[:TAG]"))?;
        if !is_valid_host(host) {
            return Err(invalid(
                input,
                format!("{host:?} is not a registry host (write HOST[:PORT]/REPOSITORY, e.g. registry.example.com/app)"),
            ));
        }
        let (name, target) = if let Some((name, digest)) = rest.split_once('@') {
            let digest = Digest::parse(digest)
                .map_err(|_| invalid(input, format!("bad digest {digest:?}")))?;
            (name, RemoteTarget::Digest(digest))
        } else {
            match rest.rsplit_once(':') {
                Some((name, tag)) if !tag.contains('/') => {
                    if !is_valid_tag(tag) {
                        return Err(invalid(input, format!("bad tag {tag:?}")));
                    }
                    (name, RemoteTarget::Tag(tag.to_string()))
                }
                _ => (rest, RemoteTarget::Tag("latest".to_string())),
            }
        };
        if !is_valid_repository(name) {
            return Err(invalid(
                input,
                format!("bad repository {name:?} (lowercase letters, digits, '.', '_', '-', separated by '/')"),
            ));
        }
        Ok(RemoteReference {
            registry: host.to_string(),
            repository: name.to_string(),
            target,
        })
    }

    /// The same repository with another tag.
    pub fn with_tag(&self, tag: &str) -> Result<Self> {
        if !is_valid_tag(tag) {
            return Err(invalid(tag, "bad tag"));
        }
        Ok(RemoteReference {
            target: RemoteTarget::Tag(tag.to_string()),
            ..self.clone()
        })
    }

    /// The tag or digest string used in `/v2/REPO/manifests/<this>`.
    pub fn manifest_ref(&self) -> String {
        match &self.target {
            RemoteTarget::Tag(t) => t.clone(),
            RemoteTarget::Digest(d) => d.to_string(),
        }
    }

    /// The tag, when the reference has one.
    pub fn tag(&self) -> Option<&str> {
        match &self.target {
            RemoteTarget::Tag(t) => Some(t),
            RemoteTarget::Digest(_) => None,
        }
    }

    /// The last repository component, a default local name for pulls.
    pub fn short_name(&self) -> &str {
        self.repository
            .rsplit('/')
            .next()
            .unwrap_or(&self.repository)
    }
}

impl fmt::Display for RemoteReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.target {
            RemoteTarget::Tag(t) => write!(f, "{}/{}:{}", self.registry, self.repository, t),
            RemoteTarget::Digest(d) => write!(f, "{}/{}@{}", self.registry, self.repository, d),
        }
    }
}

impl std::str::FromStr for RemoteReference {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_host_port_repo_tag() {
        let r = RemoteReference::parse("docker://127.0.0.1:5000/vauban/base:v1").unwrap();
        assert_eq!(r.registry, "127.0.0.1:5000");
        assert_eq!(r.repository, "vauban/base");
        assert_eq!(r.target, RemoteTarget::Tag("v1".into()));
        assert_eq!(r.to_string(), "127.0.0.1:5000/vauban/base:v1");
    }

    #[test]
    fn default_tag_is_latest() {
        let r = RemoteReference::parse("registry.example.com/app").unwrap();
        assert_eq!(r.tag(), Some("latest"));
        assert_eq!(r.short_name(), "app");
    }

    #[test]
    fn digest_reference() {
        let d = format!("sha256:{}", "a".repeat(64));
        let r = RemoteReference::parse(&format!("localhost/app@{d}")).unwrap();
        assert_eq!(r.manifest_ref(), d);
        assert_eq!(r.tag(), None);
    }

    #[test]
    fn refuses_bad_references() {
        for bad in [
            "app:latest",
            "library/app",
            "host.example/App",
            "host.example/app:",
            "host.example/app:-x",
            "host.example:99999/app",
            "host.example/app@sha256:zz",
            "host.example/",
            "host.example//app",
        ] {
            assert!(RemoteReference::parse(bad).is_err(), "{bad} accepted");
        }
    }
}
