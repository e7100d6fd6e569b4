//! `check_playbooks` against a real Ansible tree in a temporary directory.

use std::fs;

use super::{chain, load, FILE};
use crate::config::Config;

/// An Ansible root with playbooks at the top and in a subdirectory, and YAML files
/// that are not playbooks.
fn ansible_root() -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    for file in [
        "base.yml",
        "packages.yml",
        "web.yml",
        "db.yml",
        "hostname.yml",
        "playbooks/monitoring.yaml",
        "roles/web/tasks/main.yml",
        "group_vars/all.yml",
    ] {
        let path = root.path().join(file);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, "- hosts: all\n  tasks: []\n").unwrap();
    }
    root
}

#[test]
fn every_playbook_present_passes() {
    let root = ansible_root();
    // hotfix/42@web.yml names another branch and is not looked for here.
    load("original.yml").check_playbooks(root.path()).unwrap();
    let text = "r:\n  image: x\n  m:\n    stages: [playbooks/monitoring.yaml, ./base.yml]\n";
    Config::parse(text, FILE)
        .unwrap()
        .check_playbooks(root.path())
        .unwrap();
}

#[test]
fn a_missing_playbook_names_its_line_and_the_closest_one() {
    let root = ansible_root();
    let text = "r:\n  image: x\n  m:\n    stages:\n      - base.yml\n      - pakages.yml\n";
    let err = Config::parse(text, FILE)
        .unwrap()
        .check_playbooks(root.path())
        .unwrap_err();
    assert_eq!(
        chain(&err),
        format!(
            "/t/config.yml:6:9 at `r.m.stages[1]`: playbook `pakages.yml` not found under {} (did you mean `packages.yml`?)",
            root.path().display()
        )
    );

    let text = "r:\n  image: x\n  m:\n    stages: [playbooks/monitoring.yml]\n";
    let err = Config::parse(text, FILE)
        .unwrap()
        .check_playbooks(root.path())
        .unwrap_err();
    assert!(
        chain(&err).ends_with("(did you mean `playbooks/monitoring.yaml`?)"),
        "{}",
        chain(&err)
    );

    // Role tasks are not offered as playbooks, and a stranger gets no suggestion.
    let text = "r:\n  image: x\n  m:\n    stages: [main.yml, deploy-everything.yml]\n";
    let err = Config::parse(text, FILE)
        .unwrap()
        .check_playbooks(root.path())
        .unwrap_err();
    assert!(
        chain(&err).ends_with(&format!(
            "`main.yml` not found under {}",
            root.path().display()
        )),
        "{}",
        chain(&err)
    );

    // The stages added to every conffs build are checked too.
    let text = "configuration:\n  always_apply_stage_in_conffs: [hostnme.yml]\nr:\n  image: x\n";
    let err = Config::parse(text, FILE)
        .unwrap()
        .check_playbooks(root.path())
        .unwrap_err();
    assert!(chain(&err).starts_with("/t/config.yml:2:34 at `configuration.always_apply_stage_in_conffs[0]`: playbook `hostnme.yml`"), "{}", chain(&err));
    assert!(
        chain(&err).ends_with("(did you mean `hostname.yml`?)"),
        "{}",
        chain(&err)
    );
}
