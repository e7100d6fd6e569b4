//! Checking, before anything is built, that every stage's playbook is in the Ansible
//! repository, so a typo fails in a second with the line to fix rather than after
//! the stages before it have run.

use std::path::{Path, PathBuf};

use super::location::Located;
use super::suggest::closest;
use super::Config;
use crate::error::{Error, Result};
use crate::stage::Stage;

/// How deep under the Ansible root playbooks are looked for, for suggestions.
const SEARCH_DEPTH: usize = 3;

/// Directories of an Ansible tree that hold YAML files which are not playbooks.
const NOT_PLAYBOOK_DIRS: &[&str] = &[
    "roles",
    "group_vars",
    "host_vars",
    "collections",
    "library",
    "templates",
    "files",
    "vars",
    "defaults",
];

impl Config {
    /// Checks that the playbook of every stage exists under `ansible_root`: the
    /// stages of every release and master, then `always_apply_stage_in_conffs`, in
    /// that order, stopping at the first missing one.
    ///
    /// `ansible_root` is the checkout the build runs from. A `branch@playbook.yml`
    /// stage names another branch, whose tree is not that one, and is skipped: check it
    /// with [`check_playbook`] on a checkout of its branch. A master's `branch:` is not
    /// looked at (one checkout is checked, as a `--branch` override builds every master
    /// from one branch); a planner that checks out each master's branch can call
    /// [`check_playbook`] per master instead.
    pub fn check_playbooks(&self, ansible_root: &Path) -> Result<()> {
        let stages = self
            .masters()
            .flat_map(|m| m.stages.iter())
            .chain(&self.configuration.always_apply_stage_in_conffs)
            .filter(|s| s.branch.is_none());
        for stage in stages {
            check_playbook(ansible_root, stage)?;
        }
        Ok(())
    }
}

/// Checks that the playbook of `stage` exists under `ansible_root`, suggesting the
/// closest playbook present when it does not.
pub fn check_playbook(ansible_root: &Path, stage: &Located<Stage>) -> Result<()> {
    if ansible_root.join(&stage.playbook).is_file() {
        return Ok(());
    }
    let present = playbooks_under(ansible_root);
    let wanted = stage.playbook.trim_start_matches("./");
    Err(Error::MissingPlaybook {
        location: stage.location.clone(),
        playbook: stage.playbook.clone(),
        root: ansible_root.into(),
        suggestion: closest(wanted, present.iter().map(String::as_str)).map(str::to_owned),
    })
}

/// The `*.yml` and `*.yaml` files under `root`, relative to it, sorted, leaving out
/// hidden directories and those of roles, variables and templates.
fn playbooks_under(root: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, depth: usize, found: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let path: PathBuf = entry.path();
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                if depth < SEARCH_DEPTH
                    && !name.starts_with('.')
                    && !NOT_PLAYBOOK_DIRS.contains(&name.as_ref())
                {
                    walk(root, &path, depth + 1, found);
                }
            } else if name.ends_with(".yml") || name.ends_with(".yaml") {
                if let Ok(relative) = path.strip_prefix(root) {
                    found.push(relative.to_string_lossy().into_owned());
                }
            }
        }
    }
    let mut found = Vec::new();
    walk(root, root, 1, &mut found);
    found.sort();
    found
}
