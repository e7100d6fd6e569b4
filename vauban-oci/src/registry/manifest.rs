//! Manifests as they travel: media types (OCI and Docker schema 2), the few
//! fields we read from manifests and indexes, and the platform choice.

use serde::Deserialize;

use crate::digest::Digest;
use crate::error::{Error, Result};

/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Docker schema 2 manifest.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker schema 2 manifest list.
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// The `Accept` header of manifest requests.
pub const ACCEPT_MANIFESTS: &str = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json";

/// An `os/arch[/variant]` platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    /// e.g. `linux`.
    pub os: String,
    /// e.g. `amd64`.
    pub architecture: String,
    /// e.g. `v8`.
    pub variant: Option<String>,
}

impl Default for Platform {
    /// This machine's platform.
    fn default() -> Self {
        Platform::host()
    }
}

impl Platform {
    /// This machine's platform, in OCI's words (`linux/amd64`, `linux/arm64`).
    pub fn host() -> Self {
        let architecture = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "powerpc64" => "ppc64le",
            "riscv64" => "riscv64",
            "s390x" => "s390x",
            "arm" => "arm",
            other => other,
        };
        Platform {
            os: std::env::consts::OS.into(),
            architecture: architecture.into(),
            variant: None,
        }
    }

    /// Whether an index entry for `os/architecture[/variant]` is for this
    /// platform (a variant not asked for matches any).
    pub fn matches(&self, os: &str, architecture: &str, variant: Option<&str>) -> bool {
        self.os == os
            && self.architecture == architecture
            && (self.variant.is_none() || self.variant.as_deref() == variant)
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for Platform {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let parts: Vec<&str> = s.split('/').collect();
        let ok =
            |p: &&str| !p.is_empty() && p.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_');
        match parts.as_slice() {
            [os, arch] if ok(os) && ok(arch) => Ok(Platform {
                os: os.to_string(),
                architecture: arch.to_string(),
                variant: None,
            }),
            [os, arch, v] if ok(os) && ok(arch) && ok(v) => Ok(Platform {
                os: os.to_string(),
                architecture: arch.to_string(),
                variant: Some(v.to_string()),
            }),
            _ => Err(Error::InvalidReference {
                reference: s.to_string(),
                reason: "a platform is OS/ARCH[/VARIANT], e.g. linux/amd64".into(),
            }),
        }
    }
}

/// A descriptor as found in manifests and indexes.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WireDescriptor {
    /// Media type of the target.
    #[serde(default)]
    pub media_type: String,
    /// Digest (validated when used).
    pub digest: String,
    /// Size in bytes.
    pub size: u64,
    /// Platform, in index entries.
    #[serde(default)]
    pub platform: Option<WirePlatform>,
}

/// A platform as found in index entries.
#[derive(Debug, Clone, Deserialize)]
pub struct WirePlatform {
    /// OS.
    #[serde(default)]
    pub os: String,
    /// Architecture.
    #[serde(default)]
    pub architecture: String,
    /// Variant.
    #[serde(default)]
    pub variant: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireDoc {
    #[serde(default)]
    media_type: Option<String>,
    #[serde(default)]
    config: Option<WireDescriptor>,
    #[serde(default)]
    layers: Vec<WireDescriptor>,
    #[serde(default)]
    manifests: Vec<WireDescriptor>,
}

/// A parsed manifest or index.
#[derive(Debug, Clone)]
pub enum Document {
    /// An image manifest: its media type, config and layers.
    Manifest {
        /// OCI or Docker manifest media type.
        media_type: String,
        /// The config descriptor.
        config: WireDescriptor,
        /// Layer descriptors, base first.
        layers: Vec<WireDescriptor>,
    },
    /// An image index / manifest list.
    Index {
        /// Entries.
        manifests: Vec<WireDescriptor>,
    },
}

/// Parses `bytes` as a manifest or index; `content_type` is the HTTP header
/// (trusted when it names a known type, else the document's `mediaType`).
pub fn parse_document(bytes: &[u8], content_type: Option<&str>, what: &str) -> Result<Document> {
    let doc: WireDoc = serde_json::from_slice(bytes).map_err(|source| Error::Json {
        what: what.to_string(),
        source,
    })?;
    let ct = content_type
        .map(|c| c.split(';').next().unwrap_or(c).trim())
        .filter(|c| [OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST].contains(c));
    let media_type = doc
        .media_type
        .clone()
        .or(ct.map(str::to_string))
        .unwrap_or_else(|| {
            if doc.manifests.is_empty() {
                OCI_MANIFEST.to_string()
            } else {
                OCI_INDEX.to_string()
            }
        });
    match media_type.as_str() {
        OCI_INDEX | DOCKER_LIST => Ok(Document::Index {
            manifests: doc.manifests,
        }),
        OCI_MANIFEST | DOCKER_MANIFEST => Ok(Document::Manifest {
            config: doc.config.ok_or_else(|| {
                Error::UnsupportedMediaType(format!("{what}: manifest without a config"))
            })?,
            layers: doc.layers,
            media_type,
        }),
        other => Err(Error::UnsupportedMediaType(format!("{what}: {other}"))),
    }
}

/// Parses `bytes` (stored or fetched without a content type) as an image
/// manifest: its media type, config and layers; an index is refused.
pub fn parse_image_manifest(
    bytes: &[u8],
    what: &str,
) -> Result<(String, WireDescriptor, Vec<WireDescriptor>)> {
    match parse_document(bytes, None, what)? {
        Document::Manifest {
            media_type,
            config,
            layers,
        } => Ok((media_type, config, layers)),
        Document::Index { .. } => Err(Error::UnsupportedMediaType(format!("{what}: an index"))),
    }
}

/// Picks the entry of an index for `platform` (a missing variant matches any).
pub fn choose_platform<'a>(
    manifests: &'a [WireDescriptor],
    platform: &Platform,
    reference: &str,
) -> Result<&'a WireDescriptor> {
    manifests
        .iter()
        .find(|m| {
            m.platform
                .as_ref()
                .is_some_and(|p| platform.matches(&p.os, &p.architecture, p.variant.as_deref()))
        })
        .ok_or_else(|| Error::PlatformNotFound {
            reference: reference.to_string(),
            platform: platform.to_string(),
            available: manifests
                .iter()
                .filter_map(|m| m.platform.as_ref())
                .map(|p| match &p.variant {
                    Some(v) => format!("{}/{}/{v}", p.os, p.architecture),
                    None => format!("{}/{}", p.os, p.architecture),
                })
                .collect::<Vec<_>>()
                .join(", "),
        })
}

/// A descriptor's digest, validated (safe in a URL or path).
pub fn descriptor_digest(d: &WireDescriptor) -> Result<Digest> {
    Digest::parse(&d.digest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platform_parse() {
        assert_eq!(
            "linux/amd64".parse::<Platform>().unwrap(),
            Platform::default()
        );
        let p: Platform = "linux/arm64/v8".parse().unwrap();
        assert_eq!(p.variant.as_deref(), Some("v8"));
        assert!("linux".parse::<Platform>().is_err());
        assert!("linux/../x".parse::<Platform>().is_err());
    }

    #[test]
    fn index_choice() {
        let d = format!("sha256:{}", "1".repeat(64));
        let e = format!("sha256:{}", "2".repeat(64));
        let idx = format!(
            r#"{{"schemaVersion":2,"manifests":[
            {{"mediaType":"{OCI_MANIFEST}","digest":"{d}","size":1,"platform":{{"os":"linux","architecture":"arm64","variant":"v8"}}}},
            {{"mediaType":"{OCI_MANIFEST}","digest":"{e}","size":1,"platform":{{"os":"linux","architecture":"amd64"}}}}]}}"#
        );
        let Document::Index { manifests } =
            parse_document(idx.as_bytes(), Some(DOCKER_LIST), "x").unwrap()
        else {
            panic!("not an index")
        };
        assert_eq!(
            choose_platform(&manifests, &Platform::default(), "x")
                .unwrap()
                .digest,
            e
        );
        let arm: Platform = "linux/arm64".parse().unwrap();
        assert_eq!(choose_platform(&manifests, &arm, "x").unwrap().digest, d);
        let err = choose_platform(&manifests, &"linux/s390x".parse().unwrap(), "x").unwrap_err();
        assert!(
            err.to_string().contains("linux/arm64/v8, linux/amd64"),
            "{err}"
        );
    }

    #[test]
    fn docker_manifest() {
        let d = format!("sha256:{}", "1".repeat(64));
        let m = format!(
            r#"{{"schemaVersion":2,"mediaType":"{DOCKER_MANIFEST}","config":{{"mediaType":"application/vnd.docker.container.image.v1+json","digest":"{d}","size":3}},"layers":[]}}"#
        );
        match parse_document(m.as_bytes(), None, "x").unwrap() {
            Document::Manifest {
                media_type, config, ..
            } => {
                assert_eq!(media_type, DOCKER_MANIFEST);
                assert_eq!(config.size, 3);
            }
            Document::Index { .. } => panic!("index"),
        }
    }
}
