//! The `ansible-playbook` command line of a stage, built by a pure function from a
//! typed configuration so that every argument is unit-tested without running Ansible.
//!
//! What the original did, kept here: `--diff -v --limit HOST`,
//! `ANSIBLE_ANY_ERRORS_FATAL=True`, extra vars `in_vauban` and `in_conffs_build`, the
//! host added to the inventory. What vauban adds: the host's connection variables are
//! passed as extra vars (the highest precedence in Ansible) so that whatever the
//! inventory says about the real machine (`ansible_host`, `ansible_connection: ssh`)
//! never leaks into the build: the build runs through `community.general.chroot` into
//! the sandbox's merged root.
//!
//! Known limit of that choice: extra vars apply to every host, so in a template
//! `hostvars['other'].ansible_host` also reads the merged root, and a task delegated
//! to `localhost` runs in the image too. `--limit HOST` keeps the play on the host
//! being built.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// The connection plugin Ansible uses to reach the image.
pub const CHROOT_CONNECTION: &str = "community.general.chroot";

/// `PATH` given to Ansible. The chroot connection runs commands in the image with
/// Ansible's own environment, and dpkg refuses to work without the `sbin` directories.
pub use vauban_oci::programs::SYSTEM_PATH;

/// A command to run: program, arguments, environment additions and working directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandLine {
    /// The program (an absolute path when resolved).
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<OsString>,
    /// Variables set on top of the inherited environment, in order.
    pub env: Vec<(String, OsString)>,
    /// The working directory.
    pub cwd: PathBuf,
}

impl CommandLine {
    /// The whole command as `env K=V... PROGRAM ARGS...`, ready to be exec'd by a
    /// shell wrapper that already changed to [`CommandLine::cwd`].
    pub fn env_argv(&self, env_program: &Path) -> Vec<OsString> {
        let mut argv = vec![env_program.as_os_str().to_owned()];
        for (key, value) in &self.env {
            let mut kv = OsString::from(key);
            kv.push("=");
            kv.push(value);
            argv.push(kv);
        }
        argv.push(self.program.as_os_str().to_owned());
        argv.extend(self.args.iter().cloned());
        argv
    }

    /// A readable rendering for logs and error messages (not for a shell).
    pub fn display(&self) -> String {
        std::iter::once(self.program.as_os_str())
            .chain(self.args.iter().map(|a| a.as_os_str()))
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// Everything the `ansible-playbook` command of one stage depends on.
#[derive(Debug, Clone)]
pub struct AnsibleConfig {
    /// The `ansible-playbook` program (resolved on the host).
    pub ansible_playbook: PathBuf,
    /// What the chroot connection runs instead of `chroot(8)`: the sandbox's
    /// `vauban-chroot`, which confines the command in the image
    /// ([`crate::sandbox::Sandbox::chroot_exe`]).
    pub chroot_exe: PathBuf,
    /// The Ansible root (where `ansible.cfg`, the inventory and playbooks are): the
    /// working directory.
    pub ansible_root: PathBuf,
    /// The playbook, relative to the Ansible root.
    pub playbook: String,
    /// The hosts being built, each with its image's root as Ansible sees it
    /// (a sandbox's merged directory): `--limit` and the inventory hosts whose
    /// variables apply.
    pub hosts: Vec<(String, String)>,
    /// Hosts worked on at once (`--forks`).
    pub forks: usize,
    /// The repository's inventories (each becomes a `-i`).
    pub inventories: Vec<PathBuf>,
    /// The inventory vauban generates, which adds the host when missing.
    pub generated_inventory: PathBuf,
    /// The extra var `in_conffs_build`.
    pub in_conffs_build: bool,
    /// The Python interpreter in the image.
    pub python_interpreter: String,
    /// Extra arguments for `ansible-playbook`, given by the user.
    pub extra_args: Vec<String>,
    /// `ANSIBLE_LOCAL_TEMP`: a private directory on the host.
    pub local_temp: PathBuf,
    /// `ANSIBLE_REMOTE_TEMP`: a directory inside the image.
    pub remote_temp: String,
}

/// The extra vars of a stage, as one JSON object (`-e '{...}'`). Extra vars
/// apply to every host, so each host's root comes from a map by host name
/// (`ansible_host` is templated per host).
pub fn extra_vars(config: &AnsibleConfig) -> serde_json::Value {
    let roots: serde_json::Map<String, serde_json::Value> = config
        .hosts
        .iter()
        .map(|(h, root)| (h.clone(), root.clone().into()))
        .collect();
    serde_json::json!({
        "in_vauban": true,
        "in_conffs_build": config.in_conffs_build,
        "ansible_connection": CHROOT_CONNECTION,
        "vauban_roots": roots,
        "ansible_host": ANSIBLE_HOST_TEMPLATE,
        "ansible_python_interpreter": config.python_interpreter,
    })
}

/// `ansible_host` of every host: its root, from the `vauban_roots` extra var.
pub const ANSIBLE_HOST_TEMPLATE: &str = "{{ vauban_roots[inventory_hostname] }}";

/// Builds the `ansible-playbook` command of a stage.
pub fn ansible_playbook(config: &AnsibleConfig) -> CommandLine {
    let mut args: Vec<OsString> = Vec::new();
    for inventory in &config.inventories {
        args.push("-i".into());
        args.push(inventory.as_os_str().to_owned());
    }
    args.push("-i".into());
    args.push(config.generated_inventory.as_os_str().to_owned());
    let limit: Vec<&str> = config.hosts.iter().map(|(h, _)| h.as_str()).collect();
    args.extend(["--limit".into(), limit.join(",").into()]);
    args.extend(["--forks".into(), config.forks.max(1).to_string().into()]);
    args.push("--diff".into());
    args.push("-v".into());
    // The user's arguments come before vauban's extra vars: for extra vars the last
    // `-e` wins, and the connection variables must win.
    args.extend(config.extra_args.iter().map(OsString::from));
    args.push("-e".into());
    args.push(extra_vars(config).to_string().into());
    args.push(config.playbook.clone().into());

    let env = [
        // One host: its first error ends the run. Several: a failed host must
        // not stop the others (their results are kept).
        (
            "ANSIBLE_ANY_ERRORS_FATAL",
            OsString::from(if config.hosts.len() == 1 {
                "True"
            } else {
                "False"
            }),
        ),
        ("ANSIBLE_HOST_KEY_CHECKING", "False".into()),
        ("ANSIBLE_BECOME_ALLOW_SAME_USER", "False".into()),
        ("ANSIBLE_RETRY_FILES_ENABLED", "False".into()),
        ("ANSIBLE_NOCOLOR", "True".into()),
        (
            "ANSIBLE_LOCAL_TEMP",
            config.local_temp.as_os_str().to_owned(),
        ),
        ("ANSIBLE_REMOTE_TEMP", config.remote_temp.clone().into()),
        (
            "ANSIBLE_CHROOT_EXE",
            config.chroot_exe.as_os_str().to_owned(),
        ),
        ("PATH", SYSTEM_PATH.into()),
        // Ansible refuses to start without a UTF-8 locale; C.UTF-8 exists everywhere.
        ("LC_ALL", "C.UTF-8".into()),
        ("PYTHONUNBUFFERED", "1".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();

    CommandLine {
        program: config.ansible_playbook.clone(),
        args,
        env,
        cwd: config.ansible_root.clone(),
    }
}

pub use vauban_oci::programs::which;

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> AnsibleConfig {
        AnsibleConfig {
            ansible_playbook: "/usr/bin/ansible-playbook".into(),
            chroot_exe: "/s/private/vauban-chroot".into(),
            ansible_root: "/cache/wt/ansible".into(),
            playbook: "web.yml".into(),
            hosts: vec![("web01".into(), "/run/vauban/merged".into())],
            forks: 1,
            inventories: vec!["/cache/wt/ansible/inventory".into()],
            generated_inventory: "/tmp/s/vauban-inventory.yml".into(),
            in_conffs_build: false,
            python_interpreter: "/usr/bin/python3".into(),
            extra_args: vec!["--tags".into(), "base".into()],
            local_temp: "/tmp/s/ansible-local".into(),
            remote_temp: "/tmp".into(),
        }
    }

    fn strings(args: &[OsString]) -> Vec<String> {
        args.iter()
            .map(|a| a.to_str().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn argv_is_exactly_this() {
        let cmd = ansible_playbook(&config());
        assert_eq!(cmd.program, Path::new("/usr/bin/ansible-playbook"));
        assert_eq!(cmd.cwd, Path::new("/cache/wt/ansible"));
        let args = strings(&cmd.args);
        let json = args[args.len() - 2].clone();
        assert_eq!(
            args,
            [
                "-i",
                "/cache/wt/ansible/inventory",
                "-i",
                "/tmp/s/vauban-inventory.yml",
                "--limit",
                "web01",
                "--forks",
                "1",
                "--diff",
                "-v",
                "--tags",
                "base",
                "-e",
                &json,
                "web.yml",
            ]
        );
        let vars: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(
            vars,
            serde_json::json!({
                "in_vauban": true,
                "in_conffs_build": false,
                "ansible_connection": "community.general.chroot",
                "vauban_roots": {"web01": "/run/vauban/merged"},
                "ansible_host": "{{ vauban_roots[inventory_hostname] }}",
                "ansible_python_interpreter": "/usr/bin/python3",
            })
        );
    }

    #[test]
    fn several_hosts_in_one_run() {
        let mut c = config();
        c.hosts.push(("web02".into(), "/run/vauban/merged2".into()));
        c.forks = 4;
        let cmd = ansible_playbook(&c);
        let args = strings(&cmd.args);
        let limit = args.iter().position(|a| a == "--limit").unwrap();
        assert_eq!(args[limit + 1], "web01,web02");
        let forks = args.iter().position(|a| a == "--forks").unwrap();
        assert_eq!(args[forks + 1], "4");
        let vars = extra_vars(&c);
        assert_eq!(vars["vauban_roots"]["web02"], "/run/vauban/merged2");
        let env: std::collections::HashMap<_, _> = cmd
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.to_str().unwrap()))
            .collect();
        assert_eq!(env["ANSIBLE_ANY_ERRORS_FATAL"], "False");
    }

    #[test]
    fn conffs_build_flag() {
        let mut c = config();
        c.in_conffs_build = true;
        assert_eq!(extra_vars(&c)["in_conffs_build"], true);
    }

    #[test]
    fn user_extra_vars_cannot_override_the_connection() {
        let mut c = config();
        c.extra_args = vec!["-e".into(), "ansible_host=127.0.0.98".into()];
        let args = strings(&ansible_playbook(&c).args);
        let user = args
            .iter()
            .position(|a| a == "ansible_host=127.0.0.98")
            .unwrap();
        let ours = args.iter().rposition(|a| a == "-e").unwrap();
        assert!(user < ours, "vauban's -e must come last: {args:?}");
    }

    #[test]
    fn environment() {
        let cmd = ansible_playbook(&config());
        let env: std::collections::HashMap<_, _> = cmd
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.to_str().unwrap()))
            .collect();
        assert_eq!(env["ANSIBLE_ANY_ERRORS_FATAL"], "True");
        assert_eq!(env["ANSIBLE_HOST_KEY_CHECKING"], "False");
        assert_eq!(env["ANSIBLE_LOCAL_TEMP"], "/tmp/s/ansible-local");
        assert_eq!(env["ANSIBLE_REMOTE_TEMP"], "/tmp");
        assert_eq!(env["ANSIBLE_CHROOT_EXE"], "/s/private/vauban-chroot");
        assert!(env["PATH"].split(':').any(|d| d == "/usr/sbin"));
        assert_eq!(env["LC_ALL"], "C.UTF-8");
    }

    #[test]
    fn env_argv_prefixes_variables() {
        let mut cmd = ansible_playbook(&config());
        cmd.env.truncate(1);
        cmd.args.truncate(1);
        let argv = strings(&cmd.env_argv(Path::new("/usr/bin/env")));
        assert_eq!(
            argv,
            [
                "/usr/bin/env",
                "ANSIBLE_ANY_ERRORS_FATAL=True",
                "/usr/bin/ansible-playbook",
                "-i"
            ]
        );
    }
}
