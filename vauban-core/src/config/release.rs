//! Releases: the top-level keys of `config.yml`, each a base OS image and the tree
//! of masters built on it.
//!
//! A release says where its base comes from with exactly one source: `image:` (an
//! OCI reference, pulled), `tarball:` (a root filesystem archive, a path relative to
//! the config file or an http(s) URL, with `sha256:` or `sha512:` checked before
//! use), `mmdebstrap:` (bootstrapped: `suite`, `variant`, `include`, `mirror`), or the
//! original's `url:` + `sha512sums:` (a raw cloud image and the `SHA512SUMS` file
//! that lists its digest, or the digest itself).

use schemars::JsonSchema;

use super::location::Location;
use super::master::Master;

/// The keys only a release may hold: its source.
pub const RELEASE_KEYS: &[&str] = &[
    "image",
    "tarball",
    "sha256",
    "sha512",
    "mmdebstrap",
    "url",
    "sha512sums",
];

/// The keys a release may hold besides child masters: the
/// [`MASTER_KEYS`](super::master::MASTER_KEYS), then
/// [`RELEASE_KEYS`].
pub const RELEASE_ALL_KEYS: &[&str] = &[
    "name",
    "stages",
    "conffs",
    "branch",
    "schedule",
    "schedule_options",
    "image",
    "tarball",
    "sha256",
    "sha512",
    "mmdebstrap",
    "url",
    "sha512sums",
];

/// The variants `mmdebstrap --variant` accepts.
pub(crate) const MMDEBSTRAP_VARIANTS: &[&str] = &[
    "extract",
    "custom",
    "essential",
    "apt",
    "required",
    "minbase",
    "buildd",
    "important",
    "debootstrap",
    "-",
    "standard",
];

/// A release: a base image and the masters built on it.
#[derive(Debug, Clone, JsonSchema)]
pub struct Release {
    /// Where the base image comes from.
    #[schemars(flatten)]
    pub source: ReleaseSource,
    /// Where the source key (`image`, `tarball`, ...) is written.
    #[schemars(skip)]
    pub source_location: Location,
    /// The release as a master: its key, `name` (the base image's name), its own
    /// `stages`, `conffs`, `branch`, and its child masters.
    #[schemars(flatten)]
    pub root: Master,
}

impl Release {
    /// The key the release is written under (the original's `--debian-release`).
    pub fn key(&self) -> &str {
        &self.root.key
    }

    /// The name of the base image (`name:`, or the key).
    pub fn name(&self) -> &str {
        &self.root.name
    }

    /// The masters built directly on the release.
    pub fn masters(&self) -> &[Master] {
        &self.root.children
    }
}

/// Where a release's base image comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReleaseSource {
    /// `image:` any OCI image reference, pulled.
    Image(String),
    /// `tarball:` a root filesystem archive, checked before use.
    Tarball {
        /// The archive.
        tarball: TarballLocation,
        /// Its expected digest.
        checksum: Checksum,
    },
    /// `mmdebstrap:` a Debian base bootstrapped on the spot.
    Mmdebstrap(Mmdebstrap),
    /// `url:` + `sha512sums:` the original's raw cloud image.
    CloudImage {
        /// The image's http(s) URL.
        url: String,
        /// How its digest is known.
        sha512sums: Sha512Sums,
    },
}

/// Where a tarball is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TarballLocation {
    /// A local file (absolute; written relative to the config file).
    Path(std::path::PathBuf),
    /// An http(s) URL.
    Url(String),
}

/// An expected digest, lowercase hex.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Checksum {
    /// 64 hex digits.
    Sha256(String),
    /// 128 hex digits.
    Sha512(String),
}

impl Checksum {
    /// `sha256` or `sha512`.
    pub fn algorithm(&self) -> &'static str {
        match self {
            Checksum::Sha256(_) => "sha256",
            Checksum::Sha512(_) => "sha512",
        }
    }

    /// The digest in lowercase hex.
    pub fn hex(&self) -> &str {
        match self {
            Checksum::Sha256(hex) | Checksum::Sha512(hex) => hex,
        }
    }
}

/// The `sha512sums:` of a cloud image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sha512Sums {
    /// The http(s) URL of a `SHA512SUMS` file: the digest is on the line that names the
    /// image's file name (the last path component of `url`), as the original read it.
    Url(String),
    /// The digest itself (128 hex digits, lowercase).
    Digest(String),
}

/// `mmdebstrap:` how to bootstrap a Debian base.
#[derive(Debug, Clone, PartialEq, Eq, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Mmdebstrap {
    /// The suite (`bookworm`, `trixie`, `stable`...).
    pub suite: String,
    /// `--variant` (`minbase`, `important`, ...; mmdebstrap's default when absent).
    #[schemars(extend("enum" = MMDEBSTRAP_VARIANTS))]
    pub variant: Option<String>,
    /// Packages added with `--include`.
    #[schemars(default)]
    pub include: Vec<String>,
    /// The mirror (mmdebstrap's default when absent).
    pub mirror: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::master::MASTER_KEYS;

    #[test]
    fn a_release_takes_the_master_keys_and_its_own() {
        let all: Vec<&str> = MASTER_KEYS.iter().chain(RELEASE_KEYS).copied().collect();
        assert_eq!(RELEASE_ALL_KEYS, all.as_slice());
    }
}
