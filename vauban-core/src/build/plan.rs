//! The plan of a build: which steps run, in order, for `--name`, `--stage` and
//! `--build-parents`, with the original's meaning. The parent of a conffs or of
//! the boot files is its master's rootfs; the parent of a rootfs is the parent
//! master's rootfs; `--build-parents N` builds N parents first (each one's own
//! parent counting against N), `-1` the whole chain.
//!
//! Each step then carries where its image comes from ([`with_bases`]): the
//! rootfs an earlier step of the build makes, the release's own base, or a
//! master's image as it is before the build (found in the store or the
//! registry once, when the build starts). Steps never look a name up while
//! they run.

use serde::Serialize;

use crate::config::{Config, Master};
use crate::error::Result;

/// What `--stage` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Part {
    /// The master's image: its stages on its parent's.
    Rootfs,
    /// The conffs of the master's hosts.
    Conffs,
    /// The boot files: kernel, initramfs, `rootfs.img`, each host's command line.
    Initramfs,
    /// Rootfs, conffs (when the master has hosts) and the boot files.
    All,
    /// What [`Part::All`] makes, then each host's disk image
    /// (`OUT/disks/MASTER/HOST.raw`, made or updated).
    Disk,
}

impl Part {
    /// The names `--stage` takes.
    pub const NAMES: [(&'static str, Part); 5] = [
        ("rootfs", Part::Rootfs),
        ("conffs", Part::Conffs),
        ("initramfs", Part::Initramfs),
        ("all", Part::All),
        ("disk", Part::Disk),
    ];

    /// The part named `name`.
    pub fn parse(name: &str) -> Option<Part> {
        Part::NAMES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, p)| *p)
    }
}

/// What a step builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StepKind {
    /// A master's image (for a release: its base, then its own stages).
    Rootfs,
    /// The conffs of the master's hosts.
    Conffs,
    /// The boot files of the master.
    Boot,
}

/// One step of a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Step {
    /// What it builds.
    pub kind: StepKind,
    /// The master it builds it for (its name, as `--name` takes it).
    pub master: String,
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.kind {
            StepKind::Rootfs => "rootfs",
            StepKind::Conffs => "conffs",
            StepKind::Boot => "initramfs",
        };
        write!(f, "{kind} {}", self.master)
    }
}

/// Where a step's image comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Base {
    /// The release's own base (pulled, a checked tarball, mmdebstrap...),
    /// made once per recipe: the base of a release's rootfs.
    Release,
    /// The rootfs step number `N` of this build makes.
    Step(usize),
    /// The rootfs of this master as it is when the build starts (in the
    /// store, else in the registry).
    Found(String),
}

/// A step and the images it starts from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Planned {
    /// The step.
    pub step: Step,
    /// A rootfs: its parent master's rootfs (a release: [`Base::Release`]);
    /// a conffs or the boot files: the master's rootfs.
    pub base: Base,
    /// The boot files: the rootfs whose kernel and dracut make the
    /// initramfs (`initramfs_release:`, else the master's own).
    pub kernel: Option<Base>,
}

/// The steps of `steps` with their bases; `kernel_master` is the
/// `initramfs_release:` master, if the config names one.
pub(crate) fn with_bases(
    config: &Config,
    steps: &[Step],
    kernel_master: Option<&str>,
) -> Result<Vec<Planned>> {
    let rootfs_of = |name: &str, before: usize| {
        steps[..before]
            .iter()
            .position(|s| s.kind == StepKind::Rootfs && s.master == name)
            .map(Base::Step)
            .unwrap_or_else(|| Base::Found(name.to_owned()))
    };
    steps
        .iter()
        .enumerate()
        .map(|(i, step)| {
            let master = config.find(&step.master)?;
            let base = match (step.kind, config.parent(master)) {
                (StepKind::Rootfs, None) => Base::Release,
                (StepKind::Rootfs, Some(parent)) => rootfs_of(&parent.name, i),
                (StepKind::Conffs | StepKind::Boot, _) => rootfs_of(&master.name, i),
            };
            let kernel = match step.kind {
                StepKind::Boot => Some(rootfs_of(kernel_master.unwrap_or(&master.name), i)),
                _ => None,
            };
            Ok(Planned {
                step: step.clone(),
                base,
                kernel,
            })
        })
        .collect()
}

/// The steps of `--name name --stage part --build-parents build_parents`, in the
/// order they run; a step never appears twice. `has_conffs` says whether a master
/// has hosts (its `conffs:` or `--conffs`): `all` leaves the conffs out without
/// them, `conffs` is then an error of the caller's.
pub(crate) fn plan(
    config: &Config,
    name: &str,
    part: Part,
    build_parents: i64,
    has_conffs: &dyn Fn(&Master) -> bool,
) -> Result<Vec<Step>> {
    let master = config.find(name)?;
    let mut steps = Vec::new();
    plan_into(config, master, part, build_parents, has_conffs, &mut steps);
    let mut seen = Vec::new();
    steps.retain(|s| {
        if seen.contains(s) {
            false
        } else {
            seen.push(s.clone());
            true
        }
    });
    Ok(steps)
}

fn plan_into(
    config: &Config,
    master: &Master,
    part: Part,
    build_parents: i64,
    has_conffs: &dyn Fn(&Master) -> bool,
    steps: &mut Vec<Step>,
) {
    if build_parents != 0 {
        match part {
            Part::Rootfs | Part::All | Part::Disk => {
                if let Some(parent) = config.parent(master) {
                    plan_into(
                        config,
                        parent,
                        Part::Rootfs,
                        build_parents - 1,
                        has_conffs,
                        steps,
                    );
                }
            }
            Part::Conffs | Part::Initramfs => plan_into(
                config,
                master,
                Part::Rootfs,
                build_parents - 1,
                has_conffs,
                steps,
            ),
        }
    }
    let step = |kind| Step {
        kind,
        master: master.name.clone(),
    };
    match part {
        Part::Rootfs => steps.push(step(StepKind::Rootfs)),
        Part::Conffs => steps.push(step(StepKind::Conffs)),
        Part::Initramfs => steps.push(step(StepKind::Boot)),
        Part::All | Part::Disk => {
            steps.push(step(StepKind::Rootfs));
            if has_conffs(master) {
                steps.push(step(StepKind::Conffs));
            }
            steps.push(step(StepKind::Boot));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = "\
bookworm:
  name: debian-12
  image: 127.0.0.1:5000/debian:12
  master-a:
    stages: [a.yml]
    master-b:
      stages: [b.yml]
      conffs: 'b*'
      master-c:
        stages: [c.yml]
";

    fn steps(name: &str, part: Part, n: i64) -> Vec<String> {
        let config = Config::parse(CONFIG, "/x/config.yml").unwrap();
        plan(&config, name, part, n, &|m| m.conffs.is_some())
            .unwrap()
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    #[test]
    fn without_parents_only_the_asked_part() {
        assert_eq!(steps("master-b", Part::Rootfs, 0), ["rootfs master-b"]);
        assert_eq!(steps("master-b", Part::Conffs, 0), ["conffs master-b"]);
        assert_eq!(
            steps("master-b", Part::Initramfs, 0),
            ["initramfs master-b"]
        );
        assert_eq!(
            steps("master-b", Part::All, 0),
            ["rootfs master-b", "conffs master-b", "initramfs master-b"]
        );
        // `all` leaves out the conffs of a master without hosts.
        assert_eq!(
            steps("master-c", Part::All, 0),
            ["rootfs master-c", "initramfs master-c"]
        );
    }

    #[test]
    fn the_parent_of_a_rootfs_is_the_parent_masters_rootfs() {
        assert_eq!(
            steps("master-c", Part::Rootfs, 1),
            ["rootfs master-b", "rootfs master-c"]
        );
        assert_eq!(
            steps("master-c", Part::Rootfs, 2),
            ["rootfs master-a", "rootfs master-b", "rootfs master-c"]
        );
        assert_eq!(
            steps("master-c", Part::All, 1),
            ["rootfs master-b", "rootfs master-c", "initramfs master-c"]
        );
    }

    #[test]
    fn the_parent_of_a_conffs_or_initramfs_is_its_masters_rootfs() {
        assert_eq!(
            steps("master-b", Part::Conffs, 1),
            ["rootfs master-b", "conffs master-b"]
        );
        assert_eq!(
            steps("master-b", Part::Conffs, 2),
            ["rootfs master-a", "rootfs master-b", "conffs master-b"]
        );
        assert_eq!(
            steps("master-b", Part::Initramfs, 1),
            ["rootfs master-b", "initramfs master-b"]
        );
    }

    #[test]
    fn minus_one_is_the_whole_chain_release_first() {
        let whole = [
            "rootfs debian-12",
            "rootfs master-a",
            "rootfs master-b",
            "conffs master-b",
            "initramfs master-b",
        ];
        assert_eq!(steps("master-b", Part::All, -1), whole);
        assert_eq!(
            steps("master-b", Part::Conffs, -1),
            [
                "rootfs debian-12",
                "rootfs master-a",
                "rootfs master-b",
                "conffs master-b"
            ]
        );
        // More parents than the chain has: the chain.
        assert_eq!(steps("master-b", Part::All, 10), whole);
        assert_eq!(steps("master-b", Part::Disk, -1), whole);
    }

    #[test]
    fn a_release_has_no_parent() {
        assert_eq!(steps("debian-12", Part::Rootfs, -1), ["rootfs debian-12"]);
        assert_eq!(
            steps("debian-12", Part::All, 3),
            ["rootfs debian-12", "initramfs debian-12"]
        );
    }

    #[test]
    fn each_step_carries_its_base() {
        let config = Config::parse(CONFIG, "/x/config.yml").unwrap();
        let planned = |name: &str, part: Part, n: i64, kernel: Option<&str>| {
            let steps = plan(&config, name, part, n, &|m| m.conffs.is_some()).unwrap();
            with_bases(&config, &steps, kernel)
                .unwrap()
                .into_iter()
                .map(|p| (p.step.to_string(), p.base, p.kernel))
                .collect::<Vec<_>>()
        };
        let found = |m: &str| Base::Found(m.to_owned());
        assert_eq!(
            planned("master-b", Part::All, 1, None),
            [
                ("rootfs master-a".into(), found("debian-12"), None),
                ("rootfs master-b".into(), Base::Step(0), None),
                ("conffs master-b".into(), Base::Step(1), None),
                (
                    "initramfs master-b".into(),
                    Base::Step(1),
                    Some(Base::Step(1))
                ),
            ]
        );
        assert_eq!(
            planned("master-b", Part::Conffs, 0, None),
            [("conffs master-b".into(), found("master-b"), None)]
        );
        assert_eq!(
            planned("debian-12", Part::Rootfs, 0, None)[0].1,
            Base::Release
        );
        assert_eq!(
            planned("master-c", Part::Initramfs, 1, Some("debian-12")),
            [
                ("rootfs master-c".into(), found("master-b"), None),
                (
                    "initramfs master-c".into(),
                    Base::Step(0),
                    Some(found("debian-12"))
                ),
            ]
        );
    }

    #[test]
    fn an_unknown_name_lists_the_masters() {
        let config = Config::parse(CONFIG, "/x/config.yml").unwrap();
        let err = plan(&config, "master-z", Part::All, 0, &|_| false).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("master-z") && msg.contains("master-c"),
            "{msg}"
        );
    }
}
