//! What the service talks about: a build request (checked against the
//! config before anything is queued), a build as the history keeps it, its
//! steps, and their states.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::ServeError;

/// The `--stage` values a request may ask for.
pub const STAGES: [&str; 4] = ["rootfs", "conffs", "initramfs", "all"];

/// A build as asked for (`POST /builds`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BuildRequest {
    /// The master (`--name`).
    pub name: String,
    /// `rootfs`, `conffs`, `initramfs` or `all` (the default).
    #[serde(default = "all")]
    pub stage: String,
    /// `--build-parents`: how many parents to build first (`-1`: all).
    #[serde(default)]
    pub build_parents: i64,
    /// `--conffs`: the hosts' pattern instead of the master's.
    #[serde(default)]
    pub conffs: Option<String>,
    /// `--branch`: every stage from this branch.
    #[serde(default)]
    pub branch: Option<String>,
    /// `--no-cache`.
    #[serde(default)]
    pub no_cache: bool,
    /// `--rebuild-stale`: a parent whose inputs changed since it was built
    /// is rebuilt first.
    #[serde(default)]
    pub rebuild_stale: bool,
    /// Deploy the master's boot files when the build succeeds (what its
    /// hosts boot next).
    #[serde(default)]
    pub deploy: bool,
}

impl BuildRequest {
    /// Checks every field against what vauban accepts and `masters` (the
    /// config's): the error names the field and the choices. Nothing of a
    /// request ever reaches a shell: each field becomes one argument.
    pub fn validate(&self, masters: &[String]) -> Result<(), ServeError> {
        if !masters.contains(&self.name) {
            let mut known = masters.to_vec();
            known.sort();
            return Err(ServeError::BadRequest {
                field: "name",
                message: format!(
                    "no master {:?} in config.yml; masters: {}",
                    self.name,
                    known.join(", ")
                ),
            });
        }
        if !STAGES.contains(&self.stage.as_str()) {
            return Err(ServeError::BadRequest {
                field: "stage",
                message: format!(
                    "{:?} is not a stage; one of {}",
                    self.stage,
                    STAGES.join(", ")
                ),
            });
        }
        if self.build_parents < -1 || self.build_parents > 64 {
            return Err(ServeError::BadRequest {
                field: "build_parents",
                message: "a number from -1 (every parent) to 64".into(),
            });
        }
        if let Some(p) = &self.conffs {
            check_word(
                "conffs",
                p,
                "a host pattern (letters, digits and - _ . * , : ! & ? [ ])",
                |c| c.is_ascii_alphanumeric() || "-_.*,:!&?[]".contains(c),
            )?;
        }
        if let Some(b) = &self.branch {
            check_word("branch", b, "a git branch name", |c| {
                c.is_ascii_alphanumeric() || "-_./".contains(c)
            })?;
            if b.starts_with('-') || b.contains("..") {
                return Err(ServeError::BadRequest {
                    field: "branch",
                    message: format!("{b:?} is not a branch name"),
                });
            }
        }
        Ok(())
    }

    /// The `vauban build` arguments of this request (after the service's own).
    pub fn build_args(&self) -> Vec<String> {
        let mut args = vec![
            "--name".to_string(),
            self.name.clone(),
            "--stage".into(),
            self.stage.clone(),
            "--build-parents".into(),
            self.build_parents.to_string(),
        ];
        if let Some(c) = &self.conffs {
            args.push("--conffs".into());
            args.push(c.clone());
        }
        if let Some(b) = &self.branch {
            args.push("--branch".into());
            args.push(b.clone());
        }
        if self.rebuild_stale {
            args.push("--rebuild-stale".into());
        }
        if self.no_cache {
            args.push("--no-cache".into());
        }
        args
    }
}

fn all() -> String {
    "all".into()
}

fn check_word(
    field: &'static str,
    value: &str,
    what: &str,
    ok: impl Fn(char) -> bool,
) -> Result<(), ServeError> {
    if value.is_empty() || value.len() > 256 || !value.chars().all(ok) {
        return Err(ServeError::BadRequest {
            field,
            message: format!("{value:?} is not {what}"),
        });
    }
    Ok(())
}

/// Where a build is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Waiting for a slot (or for its master's other build).
    Queued,
    /// Its worker runs.
    Running,
    /// It ended well.
    Succeeded,
    /// It failed (or was interrupted).
    Failed,
    /// It was cancelled.
    Cancelled,
}

impl Status {
    /// Its name in the API and the history.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Queued => "queued",
            Status::Running => "running",
            Status::Succeeded => "succeeded",
            Status::Failed => "failed",
            Status::Cancelled => "cancelled",
        }
    }

    /// From its name.
    pub fn parse(s: &str) -> Option<Status> {
        Some(match s {
            "queued" => Status::Queued,
            "running" => Status::Running,
            "succeeded" => Status::Succeeded,
            "failed" => Status::Failed,
            "cancelled" => Status::Cancelled,
            _ => return None,
        })
    }

    /// Whether it is over.
    pub fn is_done(self) -> bool {
        matches!(self, Status::Succeeded | Status::Failed | Status::Cancelled)
    }
}

/// What started a build.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// A request to the API.
    Api,
    /// The scheduler (config.yml's `schedule:`).
    Schedule,
    /// A retry of a failed build.
    Retry,
}

impl Trigger {
    /// Its name.
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Api => "api",
            Trigger::Schedule => "schedule",
            Trigger::Retry => "retry",
        }
    }

    /// From its name.
    pub fn parse(s: &str) -> Trigger {
        match s {
            "schedule" => Trigger::Schedule,
            "retry" => Trigger::Retry,
            _ => Trigger::Api,
        }
    }
}

/// One step of a build, as its events said.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Step {
    /// The step (`rootfs master-web: web.yml`, `conffs master-web/web01: ...`).
    pub step: String,
    /// `running`, `built`, `cached` or `failed`.
    pub state: String,
    /// The image it gave.
    pub image: Option<String>,
    /// Wall time, seconds (when done).
    pub seconds: Option<f64>,
}

/// A build as the history keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Build {
    /// Its id (a ULID).
    pub id: String,
    /// What was asked.
    pub request: BuildRequest,
    /// Where it is.
    pub status: Status,
    /// Who asked (the token's name, the proxy's user, `scheduler`).
    pub requested_by: String,
    /// What started it.
    pub trigger: Trigger,
    /// When it was asked for (RFC 3339).
    pub created: String,
    /// When its worker started.
    pub started: Option<String>,
    /// When it ended.
    pub finished: Option<String>,
    /// Seconds from start to end (or to now).
    pub seconds: Option<f64>,
    /// Why it failed.
    pub error: Option<String>,
    /// The step that failed.
    pub failed_step: Option<String>,
    /// The host that failed.
    pub failed_host: Option<String>,
    /// Its steps, in order.
    pub steps: Vec<Step>,
    /// The last lines of its log (when it failed).
    pub tail: Vec<String>,
}

impl Build {
    /// The digest of the boot artifact this build made for `master`, if
    /// any (its step named [`crate::worker::BOOT_STEP_PREFIX`] and the master).
    pub fn boot_artifact(&self, master: &str) -> Option<&str> {
        self.steps
            .iter()
            .find(|s| {
                s.step
                    .strip_prefix(crate::worker::BOOT_STEP_PREFIX)
                    .is_some_and(|m| m == master)
            })
            .and_then(|s| s.image.as_deref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req() -> BuildRequest {
        BuildRequest {
            name: "master-web".into(),
            stage: "conffs".into(),
            build_parents: 0,
            conffs: Some("web0*,!web03".into()),
            branch: Some("feature/x".into()),
            no_cache: true,
            rebuild_stale: true,
            deploy: false,
        }
    }

    #[test]
    fn a_good_request_becomes_arguments() {
        let r = req();
        r.validate(&["master-web".into()]).unwrap();
        assert_eq!(
            r.build_args(),
            [
                "--name",
                "master-web",
                "--stage",
                "conffs",
                "--build-parents",
                "0",
                "--conffs",
                "web0*,!web03",
                "--branch",
                "feature/x",
                "--rebuild-stale",
                "--no-cache"
            ]
        );
    }

    #[test]
    fn bad_fields_are_named_with_the_choices() {
        let masters = ["master-web".to_string(), "master-db".into()];
        let cases: [(&str, BuildRequest); 6] = [
            (
                "name",
                BuildRequest {
                    name: "nope".into(),
                    ..req()
                },
            ),
            (
                "stage",
                BuildRequest {
                    stage: "kernel".into(),
                    ..req()
                },
            ),
            (
                "build_parents",
                BuildRequest {
                    build_parents: -2,
                    ..req()
                },
            ),
            (
                "conffs",
                BuildRequest {
                    conffs: Some("a;rm -rf /".into()),
                    ..req()
                },
            ),
            (
                "branch",
                BuildRequest {
                    branch: Some("--upload-pack=x".into()),
                    ..req()
                },
            ),
            (
                "branch",
                BuildRequest {
                    branch: Some("a..b".into()),
                    ..req()
                },
            ),
        ];
        for (field, r) in cases {
            match r.validate(&masters) {
                Err(ServeError::BadRequest { field: f, message }) => {
                    assert_eq!(f, field, "{message}");
                }
                other => panic!("{field}: {other:?}"),
            }
        }
        let Err(ServeError::BadRequest { message, .. }) = BuildRequest {
            name: "x".into(),
            ..req()
        }
        .validate(&masters) else {
            panic!()
        };
        assert!(message.contains("master-db, master-web"), "{message}");
    }
}
