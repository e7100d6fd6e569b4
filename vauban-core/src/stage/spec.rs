//! What a build of stages is ([`StageSpec`]: plain data that can be planned,
//! hashed for the cache, sent to another process or machine) and how the image
//! of each stage is named. Where this machine keeps things is [`crate::Env`].

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use vauban_oci::layer::Compression;
use vauban_oci::Reference;

use super::hooks::Hooks;
use super::repo::AnsibleSource;
use crate::error::{Error, Result};

/// The interpreter Ansible uses in the image.
pub(crate) const DEFAULT_PYTHON: &str = "/usr/bin/python3";

/// What a build of stages is: everything it depends on besides the image, the
/// stages and the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StageSpec {
    /// The Ansible repository (a directory as an absolute path, or a git URL).
    pub ansible: AnsibleSource,
    /// The Ansible root inside the repository (the original's `ANSIBLE_ROOT_DIR`);
    /// empty for the top.
    pub ansible_root: PathBuf,
    /// The build's branch (stages written `branch@playbook.yml` override it); `None`:
    /// the remote's default branch.
    pub branch: Option<String>,
    /// The repository's inventories, relative to the Ansible root; empty: found from
    /// `ansible.cfg` or the usual names.
    pub inventories: Vec<PathBuf>,
    /// Extra `ansible-playbook` arguments (the original's `ANSIBLE_EXTRA_ARGS`).
    pub extra_args: Vec<String>,
    /// Shell snippets run around `ansible-playbook`.
    pub hooks: Hooks,
    /// The extra var `in_conffs_build`.
    pub in_conffs_build: bool,
    /// The Python interpreter in the image.
    pub python_interpreter: String,
    /// Each stage's image is named `<name_prefix>/<playbook>:<tag>`.
    pub name_prefix: String,
    /// The tag of each stage's image.
    pub tag: String,
    /// A name also given to the last stage's image.
    pub final_name: Option<Reference>,
    /// Compression of the new layers.
    pub compression: Compression,
    /// Paths left out of every layer, on top of the sandbox's defaults.
    pub exclude: Vec<PathBuf>,
    /// The release the images descend from (its key in `config.yml`), for the
    /// head of an `/imginfo` written anew (`debian_release`).
    #[serde(default)]
    pub release: Option<String>,
}

impl StageSpec {
    /// A spec with defaults: the remote's default branch, no hooks, stage images
    /// named `<name_prefix>/<playbook>`.
    pub fn new(ansible: AnsibleSource, name_prefix: impl Into<String>) -> Self {
        StageSpec {
            ansible,
            ansible_root: PathBuf::new(),
            branch: None,
            inventories: Vec::new(),
            extra_args: Vec::new(),
            hooks: Hooks::default(),
            in_conffs_build: false,
            python_interpreter: DEFAULT_PYTHON.into(),
            name_prefix: name_prefix.into(),
            tag: vauban_oci::reference::DEFAULT_TAG.into(),
            final_name: None,
            compression: Compression::default(),
            exclude: Vec::new(),
            release: None,
        }
    }

    /// The name of the image a stage running `playbook` makes.
    pub fn stage_reference(&self, playbook: &str) -> Result<Reference> {
        let name = format!("{}/{}", self.name_prefix, name_component(playbook));
        Reference::new(&name, &self.tag).map_err(Error::from)
    }
}

/// Makes a playbook path a valid part of an image name: lowercase, `/` kept, runs of
/// other characters become one separator the reference grammar accepts.
pub(crate) fn name_component(playbook: &str) -> String {
    playbook
        .trim_start_matches("./")
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .map(|component| {
            let lower = component.to_ascii_lowercase();
            let mut out = String::new();
            let mut sep = String::new();
            for c in lower.chars() {
                if c.is_ascii_lowercase() || c.is_ascii_digit() {
                    if !out.is_empty() && !sep.is_empty() {
                        let valid = matches!(sep.as_str(), "." | "_" | "__")
                            || sep.chars().all(|s| s == '-');
                        out.push_str(if valid { &sep } else { "-" });
                    }
                    sep.clear();
                    out.push(c);
                } else {
                    sep.push(c);
                }
            }
            if out.is_empty() {
                "x".to_owned()
            } else {
                out
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("base.yml", "base.yml")]
    #[case("./roles/Web Server.yml", "roles/web-server.yml")]
    #[case("a__b--c._d.yml", "a__b--c-d.yml")]
    #[case("_x_.yml", "x-yml")]
    fn components(#[case] playbook: &str, #[case] expected: &str) {
        assert_eq!(name_component(playbook), expected);
    }

    #[test]
    fn stage_names() {
        let mut o = StageSpec::new(AnsibleSource::Dir("/a".into()), "web");
        assert_eq!(
            o.stage_reference("base.yml").unwrap().to_string(),
            "web/base.yml:latest"
        );
        o.tag = "v1".into();
        assert_eq!(
            o.stage_reference("Site.YML").unwrap().to_string(),
            "web/site.yml:v1"
        );
    }

    #[test]
    fn a_spec_crosses_a_process_boundary() {
        let mut o = StageSpec::new(AnsibleSource::Git("file:///r".into()), "web");
        o.final_name = Some(Reference::parse("web:final").unwrap());
        o.hooks.pre = Some("echo pre".into());
        let json = serde_json::to_string(&o).unwrap();
        assert_eq!(serde_json::from_str::<StageSpec>(&json).unwrap(), o);
    }
}
