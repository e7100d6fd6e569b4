//! Reading a release's source keys: which one of `image`, `tarball`, `mmdebstrap`
//! and `url` is given (none: the key names the suite, [`ReleaseSource::Suite`]),
//! whether its companion keys are (`sha256`/`sha512` with a tarball, `sha512sums`
//! with a url), and whether its digests are the hex they claim.

use super::location::{Located, Location};
use super::read::{http_url, is_url, Reader};
use super::release::{
    suite_of_key, Checksum, Mmdebstrap, ReleaseSource, Sha512Sums, TarballLocation,
    MMDEBSTRAP_VARIANTS,
};
use super::yaml::Entry;
use super::KeyContext;
use crate::error::{Error, Result};

/// The source keys of a release as they are read, resolved into a [`ReleaseSource`]
/// once the whole release is read.
#[derive(Default)]
pub(crate) struct SourceKeys {
    image: Option<Located<String>>,
    tarball: Option<Located<String>>,
    sha256: Option<Located<String>>,
    sha512: Option<Located<String>>,
    mmdebstrap: Option<Located<Mmdebstrap>>,
    url: Option<Located<String>>,
    sha512sums: Option<Located<String>>,
}

impl SourceKeys {
    /// Reads one of [`RELEASE_KEYS`].
    pub(crate) fn read(&mut self, r: &Reader, e: &Entry, path: &str) -> Result<()> {
        let slot = match e.key.as_str() {
            "image" => &mut self.image,
            "tarball" => &mut self.tarball,
            "sha256" => &mut self.sha256,
            "sha512" => &mut self.sha512,
            "url" => &mut self.url,
            "sha512sums" => &mut self.sha512sums,
            "mmdebstrap" => {
                self.mmdebstrap = Some(mmdebstrap(r, e, path)?);
                return Ok(());
            }
            other => unreachable!("{other} is not a release key"),
        };
        *slot = Some(r.non_empty(&e.value, path)?);
        Ok(())
    }

    /// The one source of the release `key` written at `release`.
    pub(crate) fn resolve(
        self,
        r: &Reader,
        key: &str,
        release: &Location,
    ) -> Result<(ReleaseSource, Location)> {
        let mut given: Vec<(&'static str, &Location)> = [
            ("image", self.image.as_ref().map(|v| &v.location)),
            ("tarball", self.tarball.as_ref().map(|v| &v.location)),
            ("mmdebstrap", self.mmdebstrap.as_ref().map(|v| &v.location)),
            ("url", self.url.as_ref().map(|v| &v.location)),
        ]
        .into_iter()
        .filter_map(|(k, l)| l.map(|l| (k, l)))
        .collect();
        given.sort_by_key(|(_, l)| (l.line, l.column));
        let misplaced = |value: &Located<String>, key: &str, reason| Error::MisplacedKey {
            location: value.location.clone(),
            key: key.to_owned(),
            reason,
        };
        let no_source = match given.as_slice() {
            [] => true,
            [_] => false,
            [(first, _), (second, location), ..] => {
                return Err(Error::TwoSources {
                    location: (*location).clone(),
                    release: key.to_owned(),
                    first,
                    second,
                })
            }
        };
        if self.tarball.is_none() {
            if let Some(v) = self.sha256.as_ref().or(self.sha512.as_ref()) {
                let key = if self.sha256.is_some() {
                    "sha256"
                } else {
                    "sha512"
                };
                return Err(misplaced(v, key, "goes with `tarball`, to check it"));
            }
        }
        if self.url.is_none() {
            if let Some(v) = &self.sha512sums {
                return Err(misplaced(
                    v,
                    "sha512sums",
                    "goes with `url`, to check the image it downloads",
                ));
            }
        }
        if no_source {
            // As the original's current engine: the key is the suite bootstrapped.
            let suite = suite_of_key(key).ok_or_else(|| Error::NoSource {
                location: release.clone(),
                release: key.to_owned(),
            })?;
            return Ok((
                ReleaseSource::Suite(Mmdebstrap::original(suite)),
                release.clone(),
            ));
        }
        if let Some(image) = self.image {
            if image.contains(char::is_whitespace) {
                return Err(Error::InvalidValue {
                    location: image.location,
                    message: format!("`{}` is not an image reference", image.value),
                });
            }
            return Ok((ReleaseSource::Image(image.value), image.location));
        }
        if let Some(tarball) = self.tarball {
            let checksum = match (self.sha256, self.sha512) {
                (Some(hex), None) => Checksum::Sha256(hex_digest(&hex, "sha256", 64)?),
                (None, Some(hex)) => Checksum::Sha512(hex_digest(&hex, "sha512", 128)?),
                (None, None) => return Err(Error::MissingKey {
                    location: release.clone(),
                    key: "sha256",
                    reason:
                        "a `tarball` is checked before use: give its `sha256` or `sha512` digest",
                }),
                (Some(_), Some(second)) => {
                    return Err(misplaced(
                        &second,
                        "sha512",
                        "is given with `sha256`: keep one",
                    ));
                }
            };
            let location = if is_url(&tarball) {
                http_url(&tarball)?;
                TarballLocation::Url(tarball.value.clone())
            } else {
                TarballLocation::Path(r.path(&tarball.value))
            };
            return Ok((
                ReleaseSource::Tarball {
                    tarball: location,
                    checksum,
                },
                tarball.location,
            ));
        }
        if let Some(mmdebstrap) = self.mmdebstrap {
            return Ok((
                ReleaseSource::Mmdebstrap(mmdebstrap.value),
                mmdebstrap.location,
            ));
        }
        let url = self.url.expect("one source is given");
        http_url(&url)?;
        let Some(sums) = self.sha512sums else {
            return Err(Error::MissingKey {
                location: release.clone(),
                key: "sha512sums",
                reason: "a `url` image is checked against `sha512sums`: the URL of its SHA512SUMS file, or its digest",
            });
        };
        let sha512sums = if is_url(&sums) {
            http_url(&sums)?;
            Sha512Sums::Url(sums.value)
        } else {
            Sha512Sums::Digest(hex_digest(&sums, "sha512", 128).map_err(|e| match e {
                Error::BadChecksum {
                    location,
                    algorithm,
                    reason,
                } => Error::BadChecksum {
                    location,
                    algorithm,
                    reason: format!("{reason} (or give the http(s) URL of a SHA512SUMS file)"),
                },
                other => other,
            })?)
        };
        Ok((
            ReleaseSource::CloudImage {
                url: url.value,
                sha512sums,
            },
            url.location,
        ))
    }
}

/// Checks that `text` is `digits` hex digits, and lowercases it.
fn hex_digest(text: &Located<String>, algorithm: &'static str, digits: usize) -> Result<String> {
    let bad = |reason: String| Error::BadChecksum {
        location: text.location.clone(),
        algorithm,
        reason,
    };
    let hex = text.trim();
    if let Some((i, c)) = hex
        .chars()
        .enumerate()
        .find(|(_, c)| !c.is_ascii_hexdigit())
    {
        return Err(bad(format!(
            "`{c}` (character {}) is not a hex digit",
            i + 1
        )));
    }
    if hex.len() != digits {
        return Err(bad(format!(
            "{} hex digits, a {algorithm} digest has {digits}",
            hex.len()
        )));
    }
    Ok(hex.to_ascii_lowercase())
}

fn mmdebstrap(r: &Reader, entry: &Entry, path: &str) -> Result<Located<Mmdebstrap>> {
    let location = r.at(entry.value.pos, path);
    let mut suite = None;
    let mut spec = Mmdebstrap {
        suite: String::new(),
        variant: None,
        include: Vec::new(),
        mirror: None,
    };
    for e in r.map(&entry.value, path)? {
        let vpath = Location::child_path(path, &e.key);
        match e.key.as_str() {
            "suite" => suite = Some(r.non_empty(&e.value, &vpath)?.value),
            "variant" => {
                if let Some(variant) = r.opt_string(&e.value, &vpath)? {
                    if !MMDEBSTRAP_VARIANTS.contains(&variant.as_str()) {
                        return Err(Error::InvalidValue {
                            location: variant.location.clone(),
                            message: format!(
                                "mmdebstrap has no variant `{}`{}; it has: {}",
                                variant.value,
                                super::suggest::closest(
                                    &variant,
                                    MMDEBSTRAP_VARIANTS.iter().copied()
                                )
                                .map_or_else(String::new, |s| format!(" (did you mean `{s}`?)")),
                                MMDEBSTRAP_VARIANTS.join(", ")
                            ),
                        });
                    }
                    spec.variant = Some(variant.value);
                }
            }
            "include" => {
                spec.include = r
                    .strings(&e.value, &vpath)?
                    .into_iter()
                    .map(|s| s.value)
                    .collect()
            }
            "mirror" => spec.mirror = r.opt_string(&e.value, &vpath)?.map(|s| s.value),
            _ => return Err(r.unknown_key(e, path, KeyContext::Mmdebstrap)),
        }
    }
    spec.suite = suite.ok_or_else(|| Error::MissingKey {
        location: location.clone(),
        key: "suite",
        reason: "mmdebstrap needs the suite to bootstrap (`bookworm`, `trixie`, ...)",
    })?;
    Ok(Located::new(spec, location))
}
