//! Masters: every mapping nested in a release is a master built `FROM` its parent,
//! by applying its own `stages` on top of the parent's image. A release is read as
//! the root master of its tree (the original treats it as a master without a parent:
//! it has a `name`, may have `stages`, `conffs` and `branch`, and `--name` finds it).
//!
//! Keys of a master: `name`, `stages`, `conffs`, `branch`, and the original
//! scheduler's `schedule` and `schedule_options`. A key whose value is a mapping is a
//! child master; any other key is ignored with a warning, as the original ignored
//! it. Reserved names (those keys, and a release's source keys) are never children.

use std::collections::HashMap;

use schemars::JsonSchema;
use serde::Serialize;

use super::location::{Located, Location};
use super::read::Reader;
use super::release::RELEASE_KEYS;
use super::source::SourceKeys;
use super::warning::ConfigWarning;
use super::yaml::{Entry, Value};
use super::KeyContext;
use crate::error::{Error, Result};
use crate::stage::stage_name::check_branch_name;
use crate::stage::Stage;

/// The keys a master (and a release) may hold besides child masters.
pub const MASTER_KEYS: &[&str] = &[
    "name",
    "stages",
    "conffs",
    "branch",
    "schedule",
    "schedule_options",
    "kernel_args",
    "deploy",
    "drift_report",
];

/// A master (or, at the top of a release, the release itself).
#[derive(Debug, Clone, JsonSchema)]
pub struct Master {
    /// The key this master is written under.
    #[schemars(skip)]
    pub key: String,
    /// The name `--name` takes, which the built image is named after; `name:` when
    /// written, the key otherwise. A release's name names its base image (the
    /// original's `debian-12/iso`). Unique in the config.
    #[schemars(with = "Option<String>")]
    pub name: String,
    /// The playbooks applied, in order, on top of the parent's image, one stage (one
    /// image layer) each: `playbook.yml`, or `branch@playbook.yml` to take that
    /// playbook from another branch of the Ansible repository. The conffs of a host
    /// re-applies the stages of the whole chain, release first.
    #[schemars(default)]
    pub stages: Vec<Located<Stage>>,
    /// The hosts this master's conffs are built for: an Ansible `--limit` pattern
    /// (`web-fr*`, `backend:&prod`). No conffs without it.
    pub conffs: Option<Located<String>>,
    /// The Ansible branch this master's stages are taken from (not inherited by its
    /// children, as in the original, where it defaults to `master`).
    pub branch: Option<Located<String>>,
    /// When the original's scheduler rebuilds this master: a 5-field cron expression
    /// (minute hour day month weekday), e.g. `0 3 * * 1`.
    pub schedule: Option<Located<String>>,
    /// How the scheduled build runs.
    pub schedule_options: Option<Located<ScheduleOptions>>,
    /// Kernel arguments of this master's hosts, after `configuration:`'s
    /// `kernel_args` and before each host's own (host variable `kernel_args`).
    #[schemars(default)]
    pub kernel_args: Vec<Located<String>>,
    /// Whether `vauban serve` deploys each successful build of this master
    /// (`auto`) or only when asked (`manual`, the default).
    pub deploy: Option<Located<DeployPolicy>>,
    /// Whether this master's image (and so its children's: a child cannot
    /// take it out) carries `vauban-drift`, the tool a live host runs to
    /// send what changed since it booted (`drift_report: true`, or a mapping
    /// of `exclude` and `max_size`).
    #[schemars(with = "Option<DriftReportForm>")]
    pub drift_report: Option<Located<DriftReport>>,
    /// The child masters, built `FROM` this one, in file order.
    #[schemars(flatten, with = "std::collections::BTreeMap<String, Master>")]
    pub children: Vec<Master>,
    /// The name of the parent master; `None` for a release.
    #[schemars(skip)]
    pub parent: Option<String>,
    /// The key of the release at the top of this master's chain.
    #[schemars(skip)]
    pub release: String,
    /// Where the master's key is written.
    #[schemars(skip)]
    pub location: Location,
}

impl Master {
    /// Whether this is the root of a release rather than a master built on a parent.
    pub fn is_release(&self) -> bool {
        self.parent.is_none()
    }

    /// The stages alone, without their locations.
    pub fn stage_list(&self) -> impl Iterator<Item = &Stage> {
        self.stages.iter().map(|s| &s.value)
    }
}

/// `deploy:` of a master: when its builds become what its hosts boot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, JsonSchema, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DeployPolicy {
    /// Only when someone deploys a build (`vauban deploy`).
    #[default]
    Manual,
    /// Every successful build of the master's boot files, by `vauban serve`.
    Auto,
}

/// `drift_report:` of a master: what its hosts' `vauban-drift` leaves out
/// and how much it sends at most.
#[derive(Debug, Clone, PartialEq, Eq, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct DriftReport {
    /// Paths never sent, globs from the root (`*` within one name; a
    /// directory with what is under it), besides the secrets (password
    /// hashes, private keys, shell histories), which never are.
    #[schemars(default)]
    pub exclude: Vec<String>,
    /// The largest drift sent, compressed: bytes, or a number and a unit
    /// (`64MiB`, the default).
    #[schemars(with = "Option<String>")]
    pub max_size: u64,
}

/// How `drift_report:` is written: `true`/`false`, or its settings.
#[derive(JsonSchema)]
#[serde(untagged)]
#[allow(dead_code)]
enum DriftReportForm {
    /// On (with the default settings) or off.
    On(bool),
    /// On, with these settings.
    Settings(DriftReport),
}

impl Default for DriftReport {
    fn default() -> Self {
        DriftReport {
            exclude: Vec::new(),
            max_size: 64 << 20,
        }
    }
}

/// `schedule_options:` of a scheduled master.
#[derive(Debug, Clone, PartialEq, Eq, Default, JsonSchema)]
#[schemars(default, deny_unknown_fields)]
pub struct ScheduleOptions {
    /// What the scheduled build builds (`--stage`).
    pub stage: ScheduledStage,
    /// How many parents it rebuilds first (`--build-parents`; `-1` for the whole chain).
    pub build_parents: i64,
}

/// The `--stage` of a scheduled build, as the original names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, JsonSchema, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ScheduledStage {
    /// The master's image.
    Rootfs,
    /// The conffs of its hosts.
    Conffs,
    /// The initramfs and kernel.
    Initramfs,
    /// The original's custom kernel build.
    Kernel,
    /// Rootfs, conffs and initramfs.
    #[default]
    All,
    /// All, and the custom kernel.
    TrueAll,
}

impl ScheduledStage {
    const NAMES: [(&'static str, ScheduledStage); 6] = [
        ("rootfs", ScheduledStage::Rootfs),
        ("conffs", ScheduledStage::Conffs),
        ("initramfs", ScheduledStage::Initramfs),
        ("kernel", ScheduledStage::Kernel),
        ("all", ScheduledStage::All),
        ("trueall", ScheduledStage::TrueAll),
    ];
}

/// Reads masters and registers their names, so that two masters cannot share one.
pub(crate) struct MasterReader<'r> {
    pub reader: &'r Reader,
    /// Every name seen so far and where it was given.
    pub names: HashMap<String, Location>,
    /// The names in file order (depth first).
    pub order: Vec<String>,
}

impl MasterReader<'_> {
    /// Reads the master written as `entry` in the mapping at `parent_path`. `parent` is
    /// `None` for a release, whose source keys go to `source`.
    pub(crate) fn master(
        &mut self,
        entry: &Entry,
        parent_path: &str,
        parent: Option<&Master>,
        mut source: Option<&mut SourceKeys>,
    ) -> Result<Master> {
        let r = self.reader;
        let path = Location::child_path(parent_path, &entry.key);
        let location = r.at(entry.key_pos, &path);
        let Value::Map(entries) = &entry.value.value else {
            return Err(Error::WrongType {
                location: r.at(entry.value.pos, &path),
                expected: "a mapping (a release)",
                found: entry.value.value.kind(),
            });
        };
        let mut master = Master {
            key: entry.key.clone(),
            name: entry.key.clone(),
            stages: Vec::new(),
            conffs: None,
            branch: None,
            schedule: None,
            schedule_options: None,
            kernel_args: Vec::new(),
            deploy: None,
            drift_report: None,
            children: Vec::new(),
            parent: parent.map(|p| p.name.clone()),
            release: parent.map_or_else(|| entry.key.clone(), |p| p.release.clone()),
            location: location.clone(),
        };
        let mut name_location = location.clone();
        let mut child_entries = Vec::new();
        for e in entries {
            let vpath = Location::child_path(&path, &e.key);
            match e.key.as_str() {
                "name" => {
                    if let Some(name) = r.opt_string(&e.value, &vpath)? {
                        master.name = name.value;
                        name_location = name.location;
                    }
                }
                "stages" => {
                    for (item, item_path) in r.list(&e.value, &vpath)? {
                        let spec = r.string(item, &item_path)?;
                        master.stages.push(stage(spec)?);
                    }
                }
                "conffs" => master.conffs = r.opt_string(&e.value, &vpath)?,
                "branch" => {
                    master.branch = r.opt_string(&e.value, &vpath)?;
                    if let Some(branch) = &master.branch {
                        check_branch_name(branch).map_err(|message| Error::InvalidValue {
                            location: branch.location.clone(),
                            message,
                        })?;
                    }
                }
                "schedule" => {
                    master.schedule = r.opt_string(&e.value, &vpath)?;
                    if let Some(cron) = &master.schedule {
                        check_cron(cron)?;
                    }
                }
                "schedule_options" => master.schedule_options = schedule_options(r, e, &vpath)?,
                "kernel_args" => master.kernel_args = r.strings(&e.value, &vpath)?,
                "deploy" => master.deploy = deploy_policy(r, e, &vpath)?,
                "drift_report" => master.drift_report = drift_report(r, e, &vpath)?,
                key if RELEASE_KEYS.contains(&key) => match source.as_deref_mut() {
                    Some(source) => source.read(r, e, &vpath)?,
                    None => {
                        return Err(Error::MisplacedKey {
                            location: r.at(e.key_pos, &vpath),
                            key: e.key.clone(),
                            reason: "is only valid on a release (a top-level key), not on a master",
                        })
                    }
                },
                _ if matches!(e.value.value, Value::Map(_)) => child_entries.push(e),
                // The original read the keys it knew and dropped the others.
                _ => {
                    let within = if source.is_some() {
                        KeyContext::Release
                    } else {
                        KeyContext::Master
                    };
                    r.ignored_key(e, &path, within);
                }
            }
        }
        if parent.is_some() && master.stages.is_empty() && child_entries.is_empty() {
            r.warn(ConfigWarning::NoStages {
                location: location.clone(),
                master: master.name.clone(),
            });
        }
        self.register(&master.name, name_location)?;
        for child in child_entries {
            let child = self.master(child, &path, Some(&master), None)?;
            master.children.push(child);
        }
        Ok(master)
    }

    fn register(&mut self, name: &str, location: Location) -> Result<()> {
        if let Some(first) = self.names.get(name) {
            return Err(Error::DuplicateName {
                name: name.to_owned(),
                location,
                first: Box::new(first.clone()),
            });
        }
        self.names.insert(name.to_owned(), location);
        self.order.push(name.to_owned());
        Ok(())
    }
}

/// Reads a stage entry (`playbook.yml` or `branch@playbook.yml`).
pub(crate) fn stage(spec: Located<String>) -> Result<Located<Stage>> {
    match Stage::parse(&spec) {
        Ok(stage) => Ok(Located::new(stage, spec.location)),
        Err(e) => Err(Error::BadStageEntry {
            location: spec.location,
            source: Box::new(e),
        }),
    }
}

/// The scheduler split a schedule into exactly five fields.
fn check_cron(cron: &Located<String>) -> Result<()> {
    let fields = cron.split_whitespace().count();
    if fields != 5 {
        return Err(Error::InvalidValue {
            location: cron.location.clone(),
            message: format!(
                "a schedule is a cron expression of 5 fields (minute hour day month weekday), `{}` has {fields}",
                cron.value
            ),
        });
    }
    Ok(())
}

/// `deploy: auto|manual`.
fn deploy_policy(r: &Reader, entry: &Entry, path: &str) -> Result<Option<Located<DeployPolicy>>> {
    let Some(text) = r.opt_string(&entry.value, path)? else {
        return Ok(None);
    };
    let policy = match text.value.as_str() {
        "auto" => DeployPolicy::Auto,
        "manual" => DeployPolicy::Manual,
        other => {
            return Err(Error::InvalidValue {
                location: text.location.clone(),
                message: format!("unknown deploy policy `{other}`: auto or manual"),
            })
        }
    };
    Ok(Some(Located {
        value: policy,
        location: text.location,
    }))
}

fn drift_report(r: &Reader, entry: &Entry, path: &str) -> Result<Option<Located<DriftReport>>> {
    let at = r.at(entry.value.pos, path);
    let mut report = DriftReport::default();
    match &entry.value.value {
        Value::Null => return Ok(None),
        Value::Str(_) => {
            let text = r.string(&entry.value, path)?;
            return match text.value.to_ascii_lowercase().as_str() {
                "true" | "yes" | "on" => Ok(Some(Located::new(report, at))),
                "false" | "no" | "off" => Ok(None),
                other => Err(Error::InvalidValue {
                    location: text.location.clone(),
                    message: format!(
                        "`drift_report` is true, false, or a mapping of `exclude` and \
                         `max_size`, not `{other}`"
                    ),
                }),
            };
        }
        _ => {}
    }
    for e in r.map(&entry.value, path)? {
        let vpath = Location::child_path(path, &e.key);
        match e.key.as_str() {
            "exclude" => {
                for p in r.strings(&e.value, &vpath)? {
                    let clean = p.trim_start_matches('/').trim_end_matches('/');
                    if clean.is_empty()
                        || clean
                            .split('/')
                            .any(|c| c.is_empty() || c == "." || c == "..")
                    {
                        return Err(Error::InvalidValue {
                            location: p.location.clone(),
                            message: if clean.is_empty() {
                                "the root itself cannot be left out: name paths under it".into()
                            } else {
                                format!(
                                    "`{}` is not a path from the root (no `.`, `..` or empty \
                                     component)",
                                    p.value
                                )
                            },
                        });
                    }
                    report.exclude.push(clean.to_owned());
                }
            }
            "max_size" => {
                let text = r.string(&e.value, &vpath)?;
                report.max_size = match text.trim().parse::<bytesize::ByteSize>() {
                    Ok(b) if b.as_u64() > 0 => b.as_u64(),
                    Ok(_) => {
                        return Err(Error::InvalidValue {
                            location: text.location.clone(),
                            message: "`max_size` must be more than 0 bytes".into(),
                        })
                    }
                    Err(_) => {
                        return Err(Error::InvalidValue {
                            location: text.location.clone(),
                            message: format!(
                            "`{}` is not a size: give bytes, or a number with a unit like `64MiB`",
                            text.value
                        ),
                        })
                    }
                };
            }
            _ => return Err(r.unknown_key(e, path, KeyContext::DriftReport)),
        }
    }
    Ok(Some(Located::new(report, at)))
}

fn schedule_options(
    r: &Reader,
    entry: &Entry,
    path: &str,
) -> Result<Option<Located<ScheduleOptions>>> {
    if matches!(entry.value.value, Value::Null) {
        return Ok(None);
    }
    let mut options = ScheduleOptions::default();
    for e in r.map(&entry.value, path)? {
        let vpath = Location::child_path(path, &e.key);
        match e.key.as_str() {
            "stage" => {
                let text = r.string(&e.value, &vpath)?;
                options.stage = ScheduledStage::NAMES
                    .iter()
                    .find(|(name, _)| *name == text.value)
                    .map(|(_, stage)| *stage)
                    .ok_or_else(|| Error::InvalidValue {
                        location: text.location.clone(),
                        message: format!(
                            "unknown stage `{}`: one of rootfs, conffs, initramfs, kernel, all, trueall",
                            text.value
                        ),
                    })?;
            }
            "build_parents" => {
                let text = r.string(&e.value, &vpath)?;
                options.build_parents = text.trim().parse().map_err(|_| Error::InvalidValue {
                    location: text.location.clone(),
                    message: format!(
                        "`build_parents` is a whole number (-1 for the whole chain), not `{}`",
                        text.value
                    ),
                })?;
            }
            _ => {
                return Err(r.unknown_key(e, path, KeyContext::ScheduleOptions));
            }
        }
    }
    Ok(Some(Located::new(options, r.at(entry.value.pos, path))))
}
