//! Releases: the top-level keys of `config.yml`, each a base OS image and the tree
//! of masters built on it.
//!
//! A release says where its base comes from with exactly one source: `image:` (an
//! OCI reference, pulled), `tarball:` (a root filesystem archive, a path relative to
//! the config file or an http(s) URL, with `sha256:` or `sha512:` checked before
//! use), `mmdebstrap:` (bootstrapped: `suite`, `variant`, `include`, `mirror`), or the
//! original's `url:` + `sha512sums:` (a raw cloud image and the `SHA512SUMS` file
//! that lists its digest, or the digest itself).
//!
//! A release with none of them is named by its suite, as the original's current
//! engine read it: `vauban.py` passes the top-level key as `--debian-release`, and
//! `kubernetes_controller_resources.py` debootstraps that suite with a fixed set of
//! packages. Such a key is a Debian codename (`bookworm`, `trixie`, `sid`...), a
//! suite (`stable`, `testing`...) or `debian-NN` (`debian-12` is `bookworm`); the
//! base is [`Mmdebstrap::original`] of it ([`ReleaseSource::Suite`]).

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
    "kernel_args",
    "deploy",
    "drift_report",
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
    /// No source key: the release's key names a Debian suite, bootstrapped with
    /// mmdebstrap as the original debootstrapped it ([`Mmdebstrap::original`]).
    Suite(Mmdebstrap),
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

/// The Debian codenames a release key may be, oldest first, with their
/// `debian-NN` numbers (`None` for `sid`, which has none).
pub const DEBIAN_CODENAMES: &[(&str, Option<u32>)] = &[
    ("jessie", Some(8)),
    ("stretch", Some(9)),
    ("buster", Some(10)),
    ("bullseye", Some(11)),
    ("bookworm", Some(12)),
    ("trixie", Some(13)),
    ("forky", Some(14)),
    ("duke", Some(15)),
    ("sid", None),
];

/// The suite names a release key may be besides the codenames (what debootstrap
/// takes, as the original's `--debian-release` help says: "bookworm, testing, ...").
pub const DEBIAN_SUITES: &[&str] = &["oldoldstable", "oldstable", "stable", "testing", "unstable"];

/// The packages the original's debootstrap added to the required and important
/// ones (`kubernetes_controller_resources.py`, `first_rootfs_script`).
pub const ORIGINAL_INCLUDE: &[&str] = &[
    "debconf-utils",
    "openssh-client",
    "openssl",
    "openssh-server",
    "sudo",
    "python3",
    "bash-completion",
    "unattended-upgrades",
    "xz-utils",
    "file",
    "curl",
    "ca-certificates",
];

/// The important packages, but `ifupdown`, which the original left out
/// (`--exclude apparmor,ifupdown`; apparmor is not important, so never in): an apt
/// pattern, which mmdebstrap passes to apt whole.
pub const ORIGINAL_IMPORTANT: &str = "?and(?priority(important),?not(?name(^ifupdown$)))";

/// The suite a release key names: a codename or suite as it is, `debian-NN` as its
/// codename; `None` for any other key.
pub fn suite_of_key(key: &str) -> Option<&'static str> {
    if let Some(number) = key.strip_prefix("debian-") {
        let number: u32 = number.parse().ok()?;
        return DEBIAN_CODENAMES
            .iter()
            .find(|(_, n)| *n == Some(number))
            .map(|(name, _)| *name);
    }
    DEBIAN_CODENAMES
        .iter()
        .map(|(name, _)| *name)
        .chain(DEBIAN_SUITES.iter().copied())
        .find(|name| *name == key)
}

impl Mmdebstrap {
    /// What the original's debootstrap made of `suite`: debootstrap's default
    /// package set (required and important; mmdebstrap's `required` variant and
    /// [`ORIGINAL_IMPORTANT`]) with [`ORIGINAL_INCLUDE`], from mmdebstrap's
    /// default mirror.
    pub fn original(suite: &str) -> Mmdebstrap {
        Mmdebstrap {
            suite: suite.to_owned(),
            variant: Some("required".into()),
            include: std::iter::once(ORIGINAL_IMPORTANT)
                .chain(ORIGINAL_INCLUDE.iter().copied())
                .map(str::to_owned)
                .collect(),
            mirror: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::master::MASTER_KEYS;

    #[test]
    fn keys_name_suites() {
        assert_eq!(suite_of_key("bookworm"), Some("bookworm"));
        assert_eq!(suite_of_key("sid"), Some("sid"));
        assert_eq!(suite_of_key("testing"), Some("testing"));
        assert_eq!(suite_of_key("debian-12"), Some("bookworm"));
        assert_eq!(suite_of_key("debian-11"), Some("bullseye"));
        assert_eq!(suite_of_key("debian-13"), Some("trixie"));
        for other in [
            "debian-12/iso",
            "debian-7",
            "debian-",
            "debian-12-generic-amd64.raw",
            "Bookworm",
            "ubuntu",
        ] {
            assert_eq!(suite_of_key(other), None, "{other}");
        }
    }

    #[test]
    fn a_release_takes_the_master_keys_and_its_own() {
        let all: Vec<&str> = MASTER_KEYS.iter().chain(RELEASE_KEYS).copied().collect();
        assert_eq!(RELEASE_ALL_KEYS, all.as_slice());
    }
}
