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
//! Extra vars apply to every host, `localhost` included: the connection
//! variables are templates that give the hosts being built their chroot
//! (each its directory in the confined controller, through `vauban-chroot`)
//! and any other host, such as a task's `delegate_to: localhost`, the `local`
//! connection with the controller's own Python: it runs in the confined
//! controller, never on the user's machine. `--limit` keeps the plays on the
//! hosts being built.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// `PATH` given to Ansible. The chroot connection runs commands in the image with
/// Ansible's own environment, and dpkg refuses to work without the `sbin` directories.
pub(crate) use vauban_oci::program_path::SYSTEM_PATH;

/// A command to run: program, arguments, environment additions and working directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CommandLine {
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
    pub(crate) fn env_argv(&self, env_program: &Path) -> Vec<OsString> {
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
    pub(crate) fn display(&self) -> String {
        std::iter::once(self.program.as_os_str())
            .chain(self.args.iter().map(|a| a.as_os_str()))
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// Everything the `ansible-playbook` command of one stage depends on.
#[derive(Debug, Clone)]
pub(crate) struct AnsibleConfig {
    /// The `ansible-playbook` program (resolved on the host).
    pub ansible_playbook: PathBuf,
    /// What the chroot connection runs instead of `chroot(8)`:
    /// `vauban-chroot` in the confined controller, which has the host's
    /// keeper run the command in the image
    /// ([`crate::sandbox::controller::CHROOT_EXE`]).
    pub chroot_exe: PathBuf,
    /// The Ansible root (where `ansible.cfg`, the inventory and playbooks are): the
    /// working directory.
    pub ansible_root: PathBuf,
    /// The playbook, relative to the Ansible root.
    pub playbook: String,
    /// The hosts being built, each with its root as Ansible sees it (its
    /// directory in the confined controller): `--limit` and the inventory
    /// hosts whose variables apply.
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
    /// `ANSIBLE_LOCAL_TEMP`: the controller's private temp.
    pub local_temp: PathBuf,
    /// `ANSIBLE_REMOTE_TEMP`: a directory inside the image.
    pub remote_temp: String,
    /// The fact cache (a directory of the controller) when facts are
    /// gathered once per host and build: `gathering = smart` over a
    /// `jsonfile` cache there.
    pub facts_cache: Option<String>,
    /// The `ANSIBLE_*` variables the user set: theirs win over vauban's
    /// defaults (pipelining, gathering, the fact cache).
    pub user_set: Vec<String>,
}

/// The extra vars of a stage, as one JSON object (`-e '{...}'`). Extra vars
/// apply to every host, so each host's root comes from a map by host name
/// (`ansible_host` is templated per host).
pub(crate) fn extra_vars(config: &AnsibleConfig) -> serde_json::Value {
    let roots: serde_json::Map<String, serde_json::Value> = config
        .hosts
        .iter()
        .map(|(h, root)| (h.clone(), root.clone().into()))
        .collect();
    serde_json::json!({
        "in_vauban": true,
        "in_conffs_build": config.in_conffs_build,
        "vauban_roots": roots,
        "vauban_shorts": short_names(config.hosts.iter().map(|(h, _)| h.as_str())),
        "vauban_python": config.python_interpreter,
        "vauban_target": TARGET,
        "ansible_connection": "{{ 'community.general.chroot' if vauban_target in vauban_roots else 'local' }}",
        "ansible_host": "{{ vauban_roots[vauban_target] | default(inventory_hostname_short) }}",
        "ansible_python_interpreter": "{{ vauban_python if vauban_target in vauban_roots else ansible_playbook_python }}",
    })
}

/// `vauban_target`: which host a task runs on, the host itself or the host it
/// is delegated to. Ansible templates connection variables with the
/// play host's `inventory_hostname` even when delegating, but with the
/// delegated host's `inventory_hostname_short`: a short name that is not the
/// play host's is the delegated host's (a host being built, found by its
/// short name, or any other: `localhost`).
const TARGET: &str = "{{ inventory_hostname if inventory_hostname.split('.')[0] == inventory_hostname_short else (vauban_shorts[inventory_hostname_short] | default('')) }}";

/// What vauban sets to cut Ansible's cost per task and host, unless the
/// user set it: pipelining (a module is piped to one Python in the image,
/// not copied, made executable, run and removed: one process through
/// `vauban-chroot` instead of four or five); and with a fact cache, facts
/// gathered once per host of a build, at its first stage (`gathering =
/// smart`: a play's implicit gathering reads the cache; an explicit `setup`
/// still gathers, and refreshes it).
fn speed_defaults(config: &AnsibleConfig) -> Vec<(String, OsString)> {
    let mut env: Vec<(&str, OsString)> = vec![("ANSIBLE_PIPELINING", "True".into())];
    if let Some(dir) = &config.facts_cache {
        env.extend([
            ("ANSIBLE_GATHERING", "smart".into()),
            ("ANSIBLE_CACHE_PLUGIN", "ansible.builtin.jsonfile".into()),
            ("ANSIBLE_CACHE_PLUGIN_CONNECTION", dir.into()),
            // Never stale within the build; the dir goes with it.
            ("ANSIBLE_CACHE_PLUGIN_TIMEOUT", "0".into()),
        ]);
    }
    env.into_iter()
        .filter(|(k, _)| !config.user_set.iter().any(|u| u == k))
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
}

/// The hosts by short name (`web01` of `web01.example.org`), for those whose
/// short name is theirs alone.
fn short_names<'h>(hosts: impl Iterator<Item = &'h str>) -> serde_json::Value {
    let mut by_short: std::collections::BTreeMap<&str, Vec<&str>> = Default::default();
    for h in hosts {
        by_short
            .entry(h.split('.').next().unwrap_or(h))
            .or_default()
            .push(h);
    }
    by_short
        .into_iter()
        .filter(|(_, full)| full.len() == 1)
        .map(|(short, full)| (short.to_string(), serde_json::Value::from(full[0])))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

/// Builds the `ansible-playbook` command of a stage.
pub(crate) fn ansible_playbook(config: &AnsibleConfig) -> CommandLine {
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
    .chain(speed_defaults(config))
    .collect();

    CommandLine {
        program: config.ansible_playbook.clone(),
        args,
        env,
        cwd: config.ansible_root.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> AnsibleConfig {
        AnsibleConfig {
            ansible_playbook: "/usr/bin/ansible-playbook".into(),
            chroot_exe: "/vauban/bin/vauban-chroot".into(),
            ansible_root: "/cache/wt/ansible".into(),
            playbook: "web.yml".into(),
            hosts: vec![("web01".into(), "/vauban/hosts/web01".into())],
            forks: 1,
            inventories: vec!["/cache/wt/ansible/inventory".into()],
            generated_inventory: "/vauban/in/vauban-inventory.yml".into(),
            in_conffs_build: false,
            python_interpreter: "/usr/bin/python3".into(),
            extra_args: vec!["--tags".into(), "base".into()],
            local_temp: "/tmp".into(),
            remote_temp: "/tmp".into(),
            facts_cache: None,
            user_set: Vec::new(),
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
                "/vauban/in/vauban-inventory.yml",
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
                "vauban_roots": {"web01": "/vauban/hosts/web01"},
                "vauban_shorts": {"web01": "web01"},
                "vauban_python": "/usr/bin/python3",
                "vauban_target": TARGET,
                "ansible_connection": "{{ 'community.general.chroot' if vauban_target in vauban_roots else 'local' }}",
                "ansible_host": "{{ vauban_roots[vauban_target] | default(inventory_hostname_short) }}",
                "ansible_python_interpreter": "{{ vauban_python if vauban_target in vauban_roots else ansible_playbook_python }}",
            })
        );
    }

    #[test]
    fn several_hosts_in_one_run() {
        let mut c = config();
        c.hosts.push(("web02".into(), "/vauban/hosts/web02".into()));
        c.forks = 4;
        let cmd = ansible_playbook(&c);
        let args = strings(&cmd.args);
        let limit = args.iter().position(|a| a == "--limit").unwrap();
        assert_eq!(args[limit + 1], "web01,web02");
        let forks = args.iter().position(|a| a == "--forks").unwrap();
        assert_eq!(args[forks + 1], "4");
        let vars = extra_vars(&c);
        assert_eq!(vars["vauban_roots"]["web02"], "/vauban/hosts/web02");
        let env: std::collections::HashMap<_, _> = cmd
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.to_str().unwrap()))
            .collect();
        assert_eq!(env["ANSIBLE_ANY_ERRORS_FATAL"], "False");
    }

    #[test]
    fn delegation_finds_hosts_by_unique_short_names() {
        let shorts = short_names(["web01.paris", "web01.lyon", "db01.paris", "lb"].into_iter());
        assert_eq!(
            shorts,
            serde_json::json!({"db01": "db01.paris", "lb": "lb"})
        );
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
        assert_eq!(env["ANSIBLE_LOCAL_TEMP"], "/tmp");
        assert_eq!(env["ANSIBLE_REMOTE_TEMP"], "/tmp");
        assert_eq!(env["ANSIBLE_CHROOT_EXE"], "/vauban/bin/vauban-chroot");
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

    #[test]
    fn pipelining_and_facts_once_unless_the_user_says_otherwise() {
        let env = |c: &AnsibleConfig| -> std::collections::BTreeMap<String, String> {
            ansible_playbook(c)
                .env
                .into_iter()
                .map(|(k, v)| (k, v.into_string().unwrap()))
                .collect()
        };
        let mut c = config();
        let plain = env(&c);
        assert_eq!(plain["ANSIBLE_PIPELINING"], "True");
        assert!(
            !plain.contains_key("ANSIBLE_GATHERING"),
            "no cache, no smart gathering"
        );
        c.facts_cache = Some("/vauban/facts".into());
        let cached = env(&c);
        assert_eq!(cached["ANSIBLE_GATHERING"], "smart");
        assert_eq!(cached["ANSIBLE_CACHE_PLUGIN"], "ansible.builtin.jsonfile");
        assert_eq!(cached["ANSIBLE_CACHE_PLUGIN_CONNECTION"], "/vauban/facts");
        c.user_set = vec!["ANSIBLE_PIPELINING".into(), "ANSIBLE_GATHERING".into()];
        let theirs = env(&c);
        assert!(!theirs.contains_key("ANSIBLE_PIPELINING"));
        assert!(!theirs.contains_key("ANSIBLE_GATHERING"));
        assert!(theirs.contains_key("ANSIBLE_CACHE_PLUGIN"));
    }
}
