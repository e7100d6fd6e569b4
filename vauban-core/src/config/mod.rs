//! `config.yml`: what `vauban build` builds, read as the original vauban reads it, with
//! vauban's additions, and errors that name the file, line, column and key at fault.
//!
//! # The file
//!
//! ```yaml
//! configuration:                 # optional: settings of every build
//!   ignore_stage_in_conffs: [packages.yml]
//!   never_upload: [web-staging]
//!   conffs_size_limit: 50MiB
//! bookworm:                      # a release: a base image and the masters built on it
//!   name: debian-12/iso          #   the base image's name (the key when absent)
//!   mmdebstrap: {suite: bookworm, variant: minbase, include: [python3]}
//!   base:                        # a master, built FROM its parent (here the release)
//!     stages: [base.yml]         #   playbooks, one stage each; `branch@playbook.yml`
//!     web:                       #   a child master, built FROM `base`
//!       stages: [web.yml]
//!       conffs: "web-*"          #   the hosts whose conffs are built (Ansible --limit)
//!       branch: main             #   the Ansible branch of its stages
//! ```
//!
//! Top-level keys are releases ([`release`]), every nested mapping a master
//! ([`master`]), `configuration:` the settings ([`configuration`]). The same file works
//! with the original: its keys (`url`, `sha512sums`, `name`, `stages`, `conffs`,
//! `branch`, the scheduler's `schedule` and `schedule_options`, and
//! `configuration:`'s three lists) mean what they meant there; a release without a
//! source key is bootstrapped from the suite its key names, as the original's current
//! engine did. What the original silently ignored, vauban ignores with a warning
//! ([`ConfigWarning`], [`Config::warnings`]; errors with [`Config::strict`]): a key it
//! does not know whose value is no mapping, a master that builds nothing. What could
//! build something else than meant is an error: a duplicate key (the original kept
//! the last), two masters with one name (the original built the first).
//!
//! [`json_schema`] describes the file for editors; it is generated from these types.
//!
//! # The YAML parser
//!
//! `saphyr-parser`, the maintained YAML 1.2 parser of the saphyr project (successor
//! of `yaml-rust`/`yaml-rust2`, by the same maintainers), read through its event API:
//! each event carries a span, so `yaml` builds a tree of nodes that all know their
//! line and column, and the loader reads that tree by hand into the types. That gives
//! a location on every value and error messages of our own wording, which a serde
//! front end (`serde_yaml_ng`, `serde-saphyr`) would make harder to get for "unknown
//! key, did you mean", or for a mapping that is a child master beside reserved keys.
//! `serde_yaml` is unmaintained. Anchors, aliases and merge keys (`<<`) work: the
//! original read the file with PyYAML, which has them, and users rely on them.
//!
//! # Code map
//!
//! `yaml` (text to positioned nodes), `read` (typed reads, unknown keys),
//! [`location`] ([`Location`], [`Located`]), [`release`] and `source` (reading its
//! source keys), [`master`],
//! [`configuration`], [`warning`], `navigate` (finding masters, chains), `playbooks`
//! ([`Config::check_playbooks`]), `schema` ([`json_schema`]), `key_context`
//! ([`KeyContext`]). Errors are the crate's [`Error`], in its
//! section for `config.yml`.

pub mod configuration;
pub mod executor;
mod key_context;
pub mod location;
pub mod master;
mod navigate;
mod playbooks;
mod read;
pub mod release;
mod schema;
mod source;
mod suggest;
pub mod warning;
pub(crate) mod yaml;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use schemars::JsonSchema;

pub use configuration::{Configuration, DracutConf, NetworkMode, SquashfsCompression};
pub use executor::{ExecutorConfig, SlurmConfig};
pub use key_context::KeyContext;
pub use location::{Located, Location};
pub use master::{DeployPolicy, DriftReport, Master, ScheduleOptions, ScheduledStage};
pub use navigate::Masters;
pub use playbooks::check_playbook;
pub use release::{Checksum, Mmdebstrap, Release, ReleaseSource, Sha512Sums, TarballLocation};
pub use schema::json_schema;
pub use warning::ConfigWarning;

use crate::error::{Error, Result};
use master::MasterReader;
use read::Reader;
use source::SourceKeys;
use yaml::Value;

/// A loaded `config.yml`.
#[derive(Debug, Clone, JsonSchema)]
#[schemars(title = "vauban config.yml")]
pub struct Config {
    /// The file it was read from (absolute).
    #[schemars(skip)]
    pub path: PathBuf,
    /// The settings of every build (`configuration:`).
    #[schemars(default)]
    pub configuration: Configuration,
    /// The releases, in file order.
    #[schemars(flatten, with = "std::collections::BTreeMap<String, Release>")]
    pub releases: Vec<Release>,
    /// What the file holds that is ignored, in file order.
    #[schemars(skip)]
    pub warnings: Vec<ConfigWarning>,
}

impl Config {
    /// Reads and checks the config file at `path`.
    pub fn load(path: impl AsRef<Path>) -> Result<Config> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| Error::ReadConfig {
            path: path.to_owned(),
            source,
        })?;
        Config::parse(&text, path)
    }

    /// Checks `text` as the content of the config file at `path` (which need not
    /// exist: it names the file in errors and anchors the config's relative paths).
    pub fn parse(text: &str, path: impl AsRef<Path>) -> Result<Config> {
        let path = path.as_ref();
        let file = std::path::absolute(path).map_err(|source| Error::ReadConfig {
            path: path.to_owned(),
            source,
        })?;
        let r = Reader::new(&file);
        let Some(root) = yaml::parse(text, &file)? else {
            return Err(Error::EmptyConfig { file });
        };
        let entries = match &root.value {
            Value::Map(entries) => entries,
            Value::Null => return Err(Error::EmptyConfig { file }),
            other => {
                return Err(Error::WrongType {
                    location: r.at(root.pos, ""),
                    expected: "a mapping of releases",
                    found: other.kind(),
                })
            }
        };
        let mut configuration = Configuration::default();
        let mut releases = Vec::new();
        let mut masters = MasterReader {
            reader: &r,
            names: HashMap::new(),
            order: Vec::new(),
        };
        for entry in entries {
            if entry.key == "configuration" {
                configuration = configuration::configuration(&r, &entry.value, "configuration")?;
                continue;
            }
            let mut source = SourceKeys::default();
            let root = masters.master(entry, "", None, Some(&mut source))?;
            let (source, source_location) = source.resolve(&r, &entry.key, &root.location)?;
            releases.push(Release {
                source,
                source_location,
                root,
            });
        }
        if releases.is_empty() {
            return Err(Error::EmptyConfig { file });
        }
        if let Some(name) = &configuration.initramfs_release {
            if !masters.names.contains_key(&name.value) {
                return Err(Error::UnknownMaster {
                    location: name.location.clone(),
                    name: name.value.clone(),
                    known: masters.order,
                });
            }
        }
        Ok(Config {
            path: file,
            configuration,
            releases,
            warnings: r.take_warnings(),
        })
    }

    /// An error when the file holds anything ignored (`--strict`).
    pub fn strict(&self) -> Result<()> {
        if self.warnings.is_empty() {
            return Ok(());
        }
        Err(Error::Strict {
            file: self.path.clone(),
            warnings: self.warnings.clone(),
        })
    }

    /// The `never_upload:` entry naming `name`, a master or one of its hosts'
    /// images (`master/host`), if any.
    pub fn never_upload_entry(&self, name: &str) -> Option<&Located<String>> {
        self.configuration.never_upload.iter().find(|n| {
            name.strip_prefix(n.as_str())
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        })
    }

    /// An error when `vauban deploy` of `name` would move the `deployed` tag of a
    /// master of `never_upload` (the original never moved it).
    pub fn check_deployable(&self, name: &str) -> Result<()> {
        match self.never_upload_entry(name) {
            Some(entry) => Err(Error::NeverUpload {
                location: entry.location.clone(),
                name: name.to_owned(),
            }),
            None => Ok(()),
        }
    }
}
