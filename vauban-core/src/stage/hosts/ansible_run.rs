//! The one `ansible-playbook` of a stage over every host's sandbox, run as the
//! confined controller, and what it says of each host: its own log, its
//! failure with the tail of that log.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use super::StageRun;
use crate::error::{AnsibleFailure, Error, IoContext, Result};
use crate::sandbox::controller::{self, CHROOT_EXE, INPUTS_DIR};
use crate::sandbox::{Io, RunIo, Sandbox};
use crate::stage::check;
use crate::stage::command::{self, AnsibleConfig};
use crate::stage::hooks::{self, WrapperOutcome};
use crate::stage::inventory;
use crate::stage::output::{Follower, Scanner};

/// `ANSIBLE_REMOTE_TEMP` in the image: the sandbox's `/tmp` is a tmpfs, so nothing
/// Ansible leaves there reaches the layer.
const REMOTE_TEMP: &str = "/tmp";

impl StageRun<'_> {
    /// One `ansible-playbook` over every sandbox, as the confined controller;
    /// the scanner of its output.
    pub(super) fn run_ansible(&self, sandboxes: &[&Sandbox<'_>], work: &Path) -> Result<Scanner> {
        let root = &self.checkout.root;
        let inventories = &self.checkout.inventories;
        let hosts: Vec<&str> = sandboxes.iter().map(|s| s.hostname()).collect();
        // vauban's files for the run, shown read-only at INPUTS_DIR.
        let inputs = work.join("in");
        std::fs::create_dir(&inputs).at("create", &inputs)?;
        let generated = "vauban-inventory.yml";
        let path = inputs.join(generated);
        std::fs::write(&path, inventory::generated_inventory_for(&hosts)).at("write", &path)?;
        let config = AnsibleConfig {
            ansible_playbook: self.tools.ansible_playbook.clone(),
            chroot_exe: CHROOT_EXE.into(),
            ansible_root: root.clone(),
            playbook: self.stage.playbook.clone(),
            hosts: hosts
                .iter()
                .map(|h| (h.to_string(), controller::host_root(h)))
                .collect(),
            forks: self.jobs,
            inventories: inventories.clone(),
            generated_inventory: Path::new(INPUTS_DIR).join(generated),
            in_conffs_build: self.spec.in_conffs_build,
            python_interpreter: self.spec.python_interpreter.clone(),
            extra_args: self.spec.extra_args.clone(),
            local_temp: crate::stage::confined::LOCAL_TEMP.into(),
            remote_temp: REMOTE_TEMP.into(),
            facts_cache: self.facts.map(|_| controller::FACTS_DIR.to_owned()),
            user_set: std::env::vars_os()
                .filter_map(|(k, _)| k.into_string().ok())
                .filter(|k| k.starts_with("ANSIBLE_"))
                .collect(),
        };
        let cmd = command::ansible_playbook(&config);
        let header = format!(
            "vauban: stage {} for {}, Ansible {} (branch {})\nvauban: {}\n",
            self.stage,
            hosts.join(", "),
            self.checkout
                .commit
                .as_deref()
                .unwrap_or("(not a git checkout)"),
            self.checkout.branch.as_deref().unwrap_or("-"),
            cmd.display(),
        );
        if let Some(parent) = self.log.parent() {
            crate::private::dir(parent).at("create", parent)?;
        }
        crate::private::write_file(self.log, header.as_bytes()).at("write", self.log)?;
        let argv = hooks::wrapper_argv(&self.tools.sh, &self.tools.env, &self.spec.hooks, &cmd);
        let argv = argv
            .into_iter()
            .map(os_string)
            .collect::<Result<Vec<_>>>()?;
        let mut controller = self.confined.controller(argv, root, &[], Some(inputs))?;
        controller.facts = self.facts.map(Path::to_path_buf);
        let log = std::fs::OpenOptions::new()
            .append(true)
            .open(self.log)
            .at("open", self.log)?;
        let io = RunIo {
            stdin: Io::Null,
            stdout: Io::File(log.try_clone().at("open", self.log)?),
            stderr: Io::File(log),
        };
        let follower = Follower::start(
            self.log,
            self.stage.to_string(),
            hosts.join(","),
            self.env.events.clone(),
        )?;
        let result = Sandbox::run_controller(sandboxes, &controller, io);
        let scanner = follower.finish()?;
        for host in &hosts {
            split_log(self.log, host)?;
        }
        let status = result?;
        let stage = self.stage.to_string();
        let hook_failed = |hook: &'static str| Error::HookFailed {
            stage: stage.clone(),
            hook,
            status: status.to_string(),
            log: self.log.to_path_buf(),
        };
        match WrapperOutcome::from_code(status.code()) {
            WrapperOutcome::Success if scanner.matched_no_host() => Err(check::no_host_matched(
                self.confined,
                &self.tools.ansible_playbook,
                self.checkout,
                inventories,
                self.stage,
                &hosts.join(","),
            )),
            WrapperOutcome::Success => Ok(scanner),
            // Hosts failed: the scanner says which.
            WrapperOutcome::AnsibleFailed(_) if !scanner.failed_hosts().is_empty() => Ok(scanner),
            WrapperOutcome::AnsibleFailed(_) => {
                Err(Error::AnsibleFailed(Box::new(AnsibleFailure {
                    stage,
                    host: hosts.join(","),
                    status: status.to_string(),
                    failure: scanner.failure().map(|f| f.to_string()),
                    log: self.log.to_path_buf(),
                    tail: scanner.tail(),
                })))
            }
            WrapperOutcome::PreHookFailed => Err(hook_failed("pre-ansible")),
            WrapperOutcome::PostHookFailed => Err(hook_failed("post-ansible")),
            WrapperOutcome::EndedEarly => {
                Err(hook_failed("pre- or post-ansible (it called `exit`)"))
            }
            WrapperOutcome::NoWorkingDirectory => Err(Error::io(
                "enter the Ansible root",
                root,
                std::io::Error::from(std::io::ErrorKind::NotFound),
            )),
        }
    }

    /// The error of one host when the run as a whole failed with `e`.
    pub(super) fn whole_run_failed(&self, e: &Error, host: &str) -> Error {
        match e {
            Error::AnsibleFailed(f) => Error::AnsibleFailed(Box::new(AnsibleFailure {
                host: host.to_string(),
                ..(**f).clone()
            })),
            Error::HookFailed {
                stage,
                hook,
                status,
                log,
            } => Error::HookFailed {
                stage: stage.clone(),
                hook,
                status: status.clone(),
                log: log.clone(),
            },
            Error::NoHostMatched {
                stage,
                patterns,
                groups,
                ..
            } => Error::NoHostMatched {
                stage: stage.clone(),
                host: host.to_string(),
                patterns: patterns.clone(),
                groups: groups.clone(),
            },
            other => Error::StageFailed {
                stage: self.stage.to_string(),
                host: host.to_string(),
                message: other.to_string(),
            },
        }
    }

    /// The error of a host Ansible failed on, from its own log.
    pub(super) fn host_failed(&self, scanner: &Scanner, host: &str) -> Error {
        let log = host_log(self.log, host);
        let tail = std::fs::read(&log)
            .map(|t| {
                let t = crate::printable::escape_bytes(&t);
                let lines: Vec<&str> = t.lines().collect();
                lines[lines.len().saturating_sub(crate::stage::output::TAIL_LINES)..].join("\n")
            })
            .unwrap_or_default();
        Error::AnsibleFailed(Box::new(AnsibleFailure {
            stage: self.stage.to_string(),
            host: host.to_string(),
            status: "failed".into(),
            failure: scanner.failure_of(host).map(|f| f.to_string()),
            log,
            tail,
        }))
    }
}

/// `<dir of log>/<host>/<log file name>`.
fn host_log(log: &Path, host: &str) -> PathBuf {
    let dir = log.parent().unwrap_or(Path::new("."));
    dir.join(host).join(log.file_name().unwrap_or_default())
}

/// Writes the lines of `log` that are `host`'s (its results, and the play,
/// task and recap headers) to its own log.
fn split_log(log: &Path, host: &str) -> Result<()> {
    let text = std::fs::read_to_string(log).at("read", log)?;
    let mark = format!("[{host}]");
    let mark_delegated = format!("[{host} ->");
    let mine: Vec<&str> = text
        .lines()
        .filter(|l| {
            l.starts_with("PLAY")
                || l.starts_with("TASK [")
                || l.starts_with("RUNNING HANDLER")
                || l.starts_with("vauban:")
                || l.starts_with("ERROR!")
                || l.contains(&mark)
                || l.contains(&mark_delegated)
                || l.split(" : ").next().is_some_and(|h| h.trim() == host)
        })
        .collect();
    let out = host_log(log, host);
    crate::private::write_file(&out, (mine.join("\n") + "\n").as_bytes()).at("write", &out)
}

fn os_string(s: OsString) -> Result<String> {
    s.into_string().map_err(|s| {
        Error::io(
            "use a non-UTF-8 argument",
            PathBuf::from(s),
            std::io::Error::from(std::io::ErrorKind::InvalidData),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_host_gets_its_lines() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("01-base.log");
        std::fs::write(
            &log,
            "vauban: stage base.yml\nPLAY [x] *\nTASK [a] *\nok: [web01]\nchanged: [db01]\nfatal: [db01]: FAILED! => {}\n\nPLAY RECAP *\nweb01 : ok=1 failed=0\ndb01 : ok=1 failed=1\n",
        )
        .unwrap();
        split_log(&log, "db01").unwrap();
        let mine = std::fs::read_to_string(dir.path().join("db01/01-base.log")).unwrap();
        assert!(mine.contains("changed: [db01]") && mine.contains("db01 : ok=1 failed=1"));
        assert!(!mine.contains("web01"), "{mine}");
    }
}
