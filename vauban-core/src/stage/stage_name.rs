//! What a stage is on the command line and in `config.yml`: `playbook.yml`, or
//! `branch@playbook.yml` to take that playbook from another branch of the Ansible
//! repository for that stage only (as the original allows).

use std::fmt;
use std::path::{Component, Path};
use std::str::FromStr;

use crate::error::{Error, Result};

/// One stage: a playbook, optionally from a given branch of the Ansible repository.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Stage {
    /// The branch this stage's playbook is taken from; `None` means the build's branch.
    pub branch: Option<String>,
    /// The playbook, relative to the Ansible root of the repository.
    pub playbook: String,
}

impl Stage {
    /// A stage running `playbook` from the build's branch.
    pub fn new(playbook: impl Into<String>) -> Result<Self> {
        let stage = Stage {
            branch: None,
            playbook: playbook.into(),
        };
        stage.validate()?;
        Ok(stage)
    }

    /// Parses `playbook.yml` or `branch@playbook.yml`.
    pub fn parse(spec: &str) -> Result<Self> {
        let bad = |reason: &str| Error::BadStage {
            spec: spec.to_owned(),
            reason: reason.to_owned(),
        };
        let stage = match spec.split_once('@') {
            Some((branch, playbook)) => {
                if branch.is_empty() {
                    return Err(bad("the branch before `@` is empty"));
                }
                Stage {
                    branch: Some(branch.to_owned()),
                    playbook: playbook.to_owned(),
                }
            }
            None => Stage {
                branch: None,
                playbook: spec.to_owned(),
            },
        };
        stage.validate().map_err(|e| match e {
            Error::BadStage { reason, .. } => bad(&reason),
            other => other,
        })?;
        Ok(stage)
    }

    /// The branch of this stage, or `default` when it names none.
    pub fn branch_or<'a>(&'a self, default: &'a str) -> &'a str {
        self.branch.as_deref().unwrap_or(default)
    }

    /// The playbook's file name without directories and extension (`web.yml` → `web`),
    /// used where a short label is wanted.
    pub fn label(&self) -> &str {
        let name = self.playbook.rsplit('/').next().unwrap_or(&self.playbook);
        name.strip_suffix(".yml")
            .or_else(|| name.strip_suffix(".yaml"))
            .unwrap_or(name)
    }

    fn validate(&self) -> Result<()> {
        let bad = |reason: &str| {
            Err(Error::BadStage {
                spec: self.to_string(),
                reason: reason.to_owned(),
            })
        };
        if self.playbook.is_empty() {
            return bad("the playbook is empty");
        }
        if self.playbook.contains('@') {
            return bad("more than one `@`");
        }
        let path = Path::new(&self.playbook);
        if path.is_absolute() {
            return bad("the playbook must be relative to the Ansible root");
        }
        if path
            .components()
            .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
        {
            return bad("the playbook may not leave the Ansible root (`..`)");
        }
        if let Some(branch) = &self.branch {
            check_branch_name(branch).or_else(|reason| bad(&reason))?;
        }
        Ok(())
    }
}

/// Refuses branch names git would not accept or that could be read as an option.
pub(crate) fn check_branch_name(branch: &str) -> std::result::Result<(), String> {
    if branch.is_empty() {
        return Err("the branch name is empty".into());
    }
    if branch.starts_with('-') {
        return Err(format!("branch {branch:?} starts with `-`"));
    }
    if branch.contains("..")
        || branch.ends_with('/')
        || branch.ends_with(".lock")
        || branch
            .chars()
            .any(|c| c.is_ascii_control() || " ~^:?*[\\".contains(c))
    {
        return Err(format!("{branch:?} is not a valid git branch name"));
    }
    Ok(())
}

impl FromStr for Stage {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Stage::parse(s)
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.branch {
            Some(branch) => write!(f, "{branch}@{}", self.playbook),
            None => f.write_str(&self.playbook),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("site.yml", None, "site.yml")]
    #[case("feature@site.yml", Some("feature"), "site.yml")]
    #[case("release/2.0@roles/web.yml", Some("release/2.0"), "roles/web.yml")]
    #[case("./site.yml", None, "./site.yml")]
    fn parses(#[case] spec: &str, #[case] branch: Option<&str>, #[case] playbook: &str) {
        let stage = Stage::parse(spec).unwrap();
        assert_eq!(stage.branch.as_deref(), branch);
        assert_eq!(stage.playbook, playbook);
        assert_eq!(stage.to_string(), spec);
    }

    #[rstest]
    #[case("", "empty")]
    #[case("@site.yml", "branch before")]
    #[case("main@", "playbook is empty")]
    #[case("a@b@c.yml", "more than one")]
    #[case("/etc/site.yml", "relative")]
    #[case("../other/site.yml", "leave")]
    #[case("-x@site.yml", "starts with")]
    #[case("a..b@site.yml", "valid git branch")]
    #[case("a b@site.yml", "valid git branch")]
    fn refuses(#[case] spec: &str, #[case] why: &str) {
        let err = Stage::parse(spec).unwrap_err().to_string();
        assert!(err.contains(why), "{spec:?}: {err}");
        assert!(err.contains(&format!("{spec:?}")), "{err}");
    }

    #[test]
    fn label_and_branch() {
        let stage = Stage::parse("dev@roles/web.yaml").unwrap();
        assert_eq!(stage.label(), "web");
        assert_eq!(stage.branch_or("main"), "dev");
        assert_eq!(Stage::new("x.yml").unwrap().branch_or("main"), "main");
    }
}
