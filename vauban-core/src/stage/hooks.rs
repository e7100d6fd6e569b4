//! The shell wrapper around `ansible-playbook`: it changes to the Ansible root and
//! runs the user's pre/post hooks (the original's `HOOK_PRE_ANSIBLE` /
//! `HOOK_POST_ANSIBLE`). Its standard output and error are the stage's log (opened
//! by vauban: the confined controller cannot open it itself).
//!
//! As in the original, a hook is a shell snippet evaluated in the same shell that runs
//! `ansible-playbook`, in the Ansible root: what it exports reaches Ansible. The post
//! hook runs whether the playbook succeeded or not. Distinct exit codes tell a hook's
//! failure from Ansible's own (Ansible uses 0–8, 99 and 250).

use std::ffi::OsString;
use std::path::Path;

use super::command::CommandLine;

/// Exit code of the wrapper when the pre hook failed.
pub(crate) const EXIT_PRE_HOOK: i32 = 201;
/// Exit code of the wrapper when the post hook failed.
pub(crate) const EXIT_POST_HOOK: i32 = 202;
/// Exit code of the wrapper when the Ansible root cannot be entered.
pub(crate) const EXIT_CWD: i32 = 203;
/// Exit code of the wrapper when a hook ended the script before Ansible finished.
pub(crate) const EXIT_EARLY: i32 = 204;

/// Shell snippets run around `ansible-playbook`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Hooks {
    /// Evaluated before `ansible-playbook`.
    pub pre: Option<String>,
    /// Evaluated after `ansible-playbook`, even when it failed.
    pub post: Option<String>,
}

/// How the wrapper ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WrapperOutcome {
    /// Ansible and the hooks succeeded.
    Success,
    /// The pre hook failed; Ansible did not run.
    PreHookFailed,
    /// The post hook failed (after a successful playbook).
    PostHookFailed,
    /// The Ansible root could not be entered.
    NoWorkingDirectory,
    /// A hook called `exit`: the playbook may not have run.
    EndedEarly,
    /// `ansible-playbook` failed with this code.
    AnsibleFailed(i32),
}

impl WrapperOutcome {
    /// Reads the wrapper's exit code (`None`: killed by a signal).
    pub(crate) fn from_code(code: Option<i32>) -> Self {
        match code {
            Some(0) => Self::Success,
            Some(EXIT_PRE_HOOK) => Self::PreHookFailed,
            Some(EXIT_POST_HOOK) => Self::PostHookFailed,
            Some(EXIT_CWD) => Self::NoWorkingDirectory,
            Some(EXIT_EARLY) => Self::EndedEarly,
            Some(code) => Self::AnsibleFailed(code),
            None => Self::AnsibleFailed(-1),
        }
    }
}

/// Puts a snippet in a shell function body (`:` keeps an empty or comment-only body valid).
fn function(name: &str, body: Option<&str>) -> String {
    format!("{name}() {{\n:\n{}\n}}\n", body.unwrap_or(""))
}

/// The wrapper script. Its positional parameters are: the working directory, then
/// the command to run.
pub(crate) fn wrapper_script(hooks: &Hooks) -> String {
    let mut script = String::from(
        "vauban_cwd=$1\nshift\n\
         exec 2>&1 </dev/null\n\
         vauban_done=0\n",
    );
    script.push_str(&format!(
        "trap '[ \"$vauban_done\" = 1 ] || exit {EXIT_EARLY}' EXIT\n"
    ));
    script.push_str(&format!("cd \"$vauban_cwd\" || exit {EXIT_CWD}\n"));
    script.push_str(&function("vauban_hook_pre", hooks.pre.as_deref()));
    script.push_str(&function("vauban_hook_post", hooks.post.as_deref()));
    if hooks.pre.is_some() {
        script.push_str("echo 'vauban: running the pre-ansible hook'\n");
    }
    script.push_str(&format!(
        "vauban_hook_pre || {{ vauban_done=1; exit {EXIT_PRE_HOOK}; }}\n"
    ));
    script.push_str("\"$@\"\nvauban_rc=$?\n");
    if hooks.post.is_some() {
        script.push_str("echo 'vauban: running the post-ansible hook'\n");
    }
    script.push_str(&format!(
        "vauban_hook_post || {{ vauban_done=1; [ \"$vauban_rc\" = 0 ] && exit {EXIT_POST_HOOK}; exit \"$vauban_rc\"; }}\n"
    ));
    script.push_str("vauban_done=1\nexit \"$vauban_rc\"\n");
    script
}

/// The argv that runs `command` through the wrapper (its standard output is the
/// log; its standard error goes there too).
pub(crate) fn wrapper_argv(
    shell: &Path,
    env_program: &Path,
    hooks: &Hooks,
    command: &CommandLine,
) -> Vec<OsString> {
    let mut argv: Vec<OsString> = vec![
        shell.as_os_str().to_owned(),
        "-c".into(),
        wrapper_script(hooks).into(),
        "vauban-stage".into(),
        command.cwd.as_os_str().to_owned(),
    ];
    argv.extend(command.env_argv(env_program));
    argv
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn run(hooks: &Hooks, command: &[&str]) -> (WrapperOutcome, String) {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        let cmd = CommandLine {
            program: command[0].into(),
            args: command[1..].iter().map(OsString::from).collect(),
            env: vec![("VAUBAN_T".into(), "from-vauban".into())],
            cwd: dir.path().to_owned(),
        };
        let argv = wrapper_argv("/bin/sh".as_ref(), "/usr/bin/env".as_ref(), hooks, &cmd);
        let out = std::fs::File::create(&log).unwrap();
        let status = Command::new(&argv[0])
            .args(&argv[1..])
            .stdout(out)
            .status()
            .unwrap();
        let out = std::fs::read_to_string(&log).unwrap_or_default();
        (WrapperOutcome::from_code(status.code()), out)
    }

    #[test]
    fn plain_command_success_and_output_in_log() {
        let (outcome, log) = run(
            &Hooks::default(),
            &["/bin/sh", "-c", "echo out; echo err >&2; pwd"],
        );
        assert_eq!(outcome, WrapperOutcome::Success);
        assert!(log.contains("out\nerr\n"), "{log}");
    }

    #[test]
    fn ansible_failure_code_is_kept() {
        let (outcome, _) = run(&Hooks::default(), &["/bin/sh", "-c", "exit 2"]);
        assert_eq!(outcome, WrapperOutcome::AnsibleFailed(2));
    }

    #[test]
    fn pre_hook_exports_reach_the_command_and_post_runs_after() {
        let hooks = Hooks {
            pre: Some(
                "# a comment only line\nexport FROM_HOOK=yes; echo pre in $(basename $PWD)".into(),
            ),
            post: Some("echo post".into()),
        };
        let (outcome, log) = run(&hooks, &["/bin/sh", "-c", "echo cmd $FROM_HOOK $VAUBAN_T"]);
        assert_eq!(outcome, WrapperOutcome::Success);
        let pre = log.find("pre in").unwrap();
        let cmd = log.find("cmd yes from-vauban").unwrap();
        let post = log.find("post").unwrap();
        assert!(pre < cmd && cmd < post, "{log}");
    }

    #[test]
    fn empty_hooks_are_valid() {
        let hooks = Hooks {
            pre: Some(String::new()),
            post: Some("# nothing\n".into()),
        };
        assert_eq!(run(&hooks, &["/bin/true"]).0, WrapperOutcome::Success);
    }

    #[test]
    fn failing_hooks() {
        let pre = Hooks {
            pre: Some("false".into()),
            post: None,
        };
        let (outcome, log) = run(&pre, &["/bin/sh", "-c", "echo must-not-run"]);
        assert_eq!(outcome, WrapperOutcome::PreHookFailed);
        assert!(!log.contains("must-not-run"));

        let post = Hooks {
            pre: None,
            post: Some("false".into()),
        };
        assert_eq!(run(&post, &["/bin/true"]).0, WrapperOutcome::PostHookFailed);
        // The playbook's failure wins over the post hook's.
        assert_eq!(
            run(&post, &["/bin/sh", "-c", "exit 2"]).0,
            WrapperOutcome::AnsibleFailed(2)
        );
    }

    #[test]
    fn a_hook_calling_exit_is_not_success() {
        let hooks = Hooks {
            pre: Some("exit 0".into()),
            post: None,
        };
        assert_eq!(run(&hooks, &["/bin/true"]).0, WrapperOutcome::EndedEarly);
    }
}
