//! What runs in a sandbox: a [`Program`] inside the image or a host program
//! of vauban's on the bare tree, with the environment each gets and its
//! standard streams ([`Io`]). (Ansible's controller is not a `Program`: see
//! [`super::controller`].)
//!
//! Neither gets vauban's environment: a program in the image starts from
//! [`DEFAULT_ENV`]; a host program (Ansible) from the host variables it needs
//! ([`HOST_ENV_KEPT`]), so the CI's secrets in vauban's environment reach no
//! playbook lookup and no command of the image.

use std::fs::File;

/// A program to run in the sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Program {
    /// Runs inside the image: the image is its root (pivot_root), its
    /// capabilities are bounded, its environment is [`DEFAULT_ENV`] plus the
    /// sandbox's.
    Image(Vec<String>),
    /// Runs a host program of vauban's (`mksquashfs`, `cp`) inside the
    /// sandbox's namespaces (root of the user namespace), with the merged
    /// tree as the image has it at
    /// [`Sandbox::merged_dir`](super::Sandbox::merged_dir): no `/proc`,
    /// `/dev`, `/sys`, tmpfs or private files mounted in it, no network. For
    /// exports that read (or tidy) the image's own files.
    OnTree(Vec<String>),
}

impl Program {
    /// Program and arguments.
    pub fn argv(&self) -> &[String] {
        match self {
            Program::Image(a) | Program::OnTree(a) => a,
        }
    }

    /// Whether the merged tree gets the sandbox's mounts (`/proc`, `/dev`, ...).
    pub(crate) fn mounts_rootfs(&self) -> bool {
        !matches!(self, Program::OnTree(_))
    }

    /// Whether it runs inside the image.
    pub fn in_image(&self) -> bool {
        matches!(self, Program::Image(_))
    }
}

/// One standard stream of a program.
#[derive(Debug, Default)]
pub enum Io {
    /// vauban's own. A terminal is never passed on: a program in the image gets
    /// a pty of its own that vauban relays, a host program gets `/dev/null`.
    #[default]
    Inherit,
    /// `/dev/null`.
    Null,
    /// This file or pipe.
    File(File),
}

/// The standard streams of a program.
#[derive(Debug, Default)]
pub struct RunIo {
    /// Standard input.
    pub stdin: Io,
    /// Standard output.
    pub stdout: Io,
    /// Standard error.
    pub stderr: Io,
}

/// The default environment of a program in the image. `SYSTEMD_OFFLINE`:
/// `systemctl start` (and Ansible's `systemd` module) does nothing, as in a
/// chroot; `systemctl enable` works on the unit files.
pub const DEFAULT_ENV: [(&str, &str); 6] = [
    (
        "PATH",
        "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    ),
    ("HOME", "/root"),
    ("LANG", "C.UTF-8"),
    ("DEBIAN_FRONTEND", "noninteractive"),
    ("container", "vauban"),
    ("SYSTEMD_OFFLINE", "1"),
];

/// Host variables a host program keeps (a name ending in `_` is a prefix).
pub const HOST_ENV_KEPT: [&str; 10] = [
    "PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_", "TZ", "TMPDIR", "TERM", "ANSIBLE_",
];

/// The environment of a program in the image: [`DEFAULT_ENV`], `TERM`, then
/// `extra` (which overrides).
pub(crate) fn image_env(term: Option<&str>, extra: &[(String, String)]) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = DEFAULT_ENV
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    if let Some(term) = term {
        env.push(("TERM".into(), term.into()));
    }
    merge(&mut env, extra);
    env
}

/// The environment of a host program: the kept host variables, then `extra`.
pub(crate) fn host_env(
    host: impl Iterator<Item = (String, String)>,
    extra: &[(String, String)],
) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = host
        .filter(|(k, _)| {
            HOST_ENV_KEPT.iter().any(|kept| {
                if kept.ends_with('_') {
                    k.starts_with(kept)
                } else {
                    k == kept
                }
            })
        })
        .collect();
    merge(&mut env, extra);
    env
}

/// Sets each of `extra` in `env`, replacing a variable of the same name.
fn merge(env: &mut Vec<(String, String)>, extra: &[(String, String)]) {
    for (k, v) in extra {
        env.retain(|(key, _)| key != k);
        env.push((k.clone(), v.clone()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get<'a>(env: &'a [(String, String)], k: &str) -> Option<&'a str> {
        env.iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn image_programs_get_a_clean_env_with_overrides() {
        let extra = vec![
            ("FOO".to_string(), "1".to_string()),
            ("HOME".into(), "/x".into()),
        ];
        let env = image_env(Some("xterm"), &extra);
        assert_eq!(get(&env, "FOO"), Some("1"));
        assert_eq!(get(&env, "HOME"), Some("/x"));
        assert_eq!(get(&env, "TERM"), Some("xterm"));
        assert!(get(&env, "PATH").is_some());
        assert_eq!(env.iter().filter(|(k, _)| k == "HOME").count(), 1);
    }

    #[test]
    fn host_programs_keep_only_what_they_need() {
        let host = [
            ("PATH", "/usr/bin"),
            ("HOME", "/home/u"),
            ("LC_ALL", "C"),
            ("ANSIBLE_FORKS", "5"),
            ("CI_REGISTRY_PASSWORD", "secret"),
            ("AWS_SECRET_ACCESS_KEY", "secret"),
            ("PATHOLOGY", "x"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()));
        let env = host_env(host.into_iter(), &[("X".into(), "y".into())]);
        let keys: Vec<&str> = env.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["PATH", "HOME", "LC_ALL", "ANSIBLE_FORKS", "X"]);
    }
}
