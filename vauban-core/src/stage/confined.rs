//! Ansible on this machine, confined: what the controller is shown (the
//! system, the checkout, the collections, roles and configuration Ansible is
//! pointed at, an Ansible installed outside `/usr`), what it is never shown
//! (the store, the key store and its identity, registry and ssh
//! credentials, vauban's logs and boot tree), its environment and network.
//! Every Ansible process vauban starts goes through here: `ansible-playbook`
//! of a stage ([`Confined::controller`]) and the tools that read a repository
//! (`ansible-inventory --list`, `--syntax-check`, `--list-hosts`:
//! [`Confined::tool`]); see [`crate::sandbox::controller`].

use std::ffi::OsStr;
use std::io::{Read, Seek};
use std::path::{Path, PathBuf};

use vauban_oci::dirs::UserDir;

use super::command::SYSTEM_PATH;
use super::tools::Tools;
use crate::error::{Error, IoContext, Result};
use crate::machine::Env;
use crate::sandbox::{run_controller_alone, Controller, Helper, Io, Network, RunIo};

/// Where the controller's Ansible finds its local temp (its private `/tmp`).
pub(crate) const LOCAL_TEMP: &str = "/tmp";

/// The confined controller's view, made once per build.
#[derive(Debug, Clone)]
pub(crate) struct Confined {
    helper: Helper,
    network: Network,
    read_only: Vec<PathBuf>,
    hidden: Vec<PathBuf>,
    env: Vec<(String, String)>,
}

impl Confined {
    /// The view for `env` with `tools`, over the store at `store`.
    pub(crate) fn new(env: &Env, tools: &Tools, store: &Path) -> Result<Self> {
        let mut host_env: Vec<(String, String)> = crate::sandbox::host_env(std::env::vars(), &[]);
        // Tokens, passwords and keys given to the user's Ansible (a Galaxy
        // token, a private key for ssh) are not the build's.
        host_env.retain(|(k, _)| !is_credential(k));
        let home = std::env::var_os("HOME").map(PathBuf::from);
        let mut read_only = Vec::new();
        if let Some(home) = &home {
            for rel in [".ansible/collections", ".ansible/roles", ".ansible.cfg"] {
                read_only.push(home.join(rel));
            }
        }
        for (k, v) in &host_env {
            read_only.extend(paths_of(k, v));
        }
        let install = installation(&tools.ansible_playbook);
        read_only.extend(install.iter().cloned());
        let mut hidden = default_hidden(home.as_deref());
        hidden.push(store.to_path_buf());
        hidden.push(env.log_dir.clone());
        hidden.extend(env.hidden.iter().cloned());
        let mut path = SYSTEM_PATH.to_string();
        if let Some(bin) = tools
            .ansible_playbook
            .parent()
            .filter(|_| !install.is_empty())
        {
            path = format!("{}:{path}", bin.display());
        }
        let mut ours: Vec<(String, String)> = [
            ("PATH", path.as_str()),
            ("LC_ALL", "C.UTF-8"),
            ("TMPDIR", "/tmp"),
            ("ANSIBLE_NOCOLOR", "True"),
            ("ANSIBLE_RETRY_FILES_ENABLED", "False"),
            ("ANSIBLE_LOCAL_TEMP", LOCAL_TEMP),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let mut full = host_env;
        full.retain(|(k, _)| !ours.iter().any(|(o, _)| o == k));
        full.append(&mut ours);
        Ok(Confined {
            helper: env.helper()?,
            network: env.network.clone(),
            read_only,
            hidden,
            env: full,
        })
    }

    /// The controller of a stage: `argv` in `cwd` (the checkout), with
    /// `extra_env` and vauban's files of the run in `inputs`.
    pub(crate) fn controller(
        &self,
        argv: Vec<String>,
        cwd: &Path,
        extra_env: &[(String, String)],
        inputs: Option<PathBuf>,
    ) -> Result<Controller> {
        self.check_root(cwd)?;
        let mut env = self.env.clone();
        for (k, v) in extra_env {
            env.retain(|(key, _)| key != k);
            env.push((k.clone(), v.clone()));
        }
        // The checkout's git metadata: a CI leaves its token in `.git/config`.
        let mut hidden = self.hidden.clone();
        hidden.push(cwd.join(".git"));
        Ok(Controller {
            argv,
            env,
            cwd: cwd.to_path_buf(),
            read_only: self.read_only.clone(),
            hidden,
            inputs,
            facts: None,
        })
    }

    /// An Ansible tool (`program`, resolved on the host) run in `root` with
    /// the repository's `inventories`.
    pub(crate) fn tool(&self, program: &Path, root: &Path, inventories: &[PathBuf]) -> Tool<'_> {
        let mut argv = vec![program.display().to_string()];
        for inv in inventories {
            argv.push("-i".into());
            argv.push(inv.display().to_string());
        }
        Tool {
            confined: self,
            argv,
            root: root.to_path_buf(),
        }
    }

    /// A checkout the controller can be shown: not the user's home, nor a
    /// directory that holds it.
    fn check_root(&self, root: &Path) -> Result<()> {
        let home = std::env::var_os("HOME").map(PathBuf::from);
        if let Some(home) = home.filter(|h| h.starts_with(root)) {
            return Err(Error::AnsibleRootHoldsHome {
                root: root.to_path_buf(),
                home,
            });
        }
        if let Some(h) = self.hidden.iter().find(|h| root.starts_with(h)) {
            return Err(Error::AnsibleRootHidden {
                root: root.to_path_buf(),
                hidden: h.clone(),
            });
        }
        Ok(())
    }
}

/// An Ansible tool to run confined; see [`Confined::tool`].
pub(crate) struct Tool<'a> {
    confined: &'a Confined,
    argv: Vec<String>,
    root: PathBuf,
}

impl Tool<'_> {
    /// Adds an argument.
    pub(crate) fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.argv.push(arg.as_ref().to_string_lossy().into_owned());
        self
    }

    /// The arguments after the program.
    #[cfg(test)]
    pub(crate) fn args(&self) -> &[String] {
        &self.argv[1..]
    }

    /// Runs it as the confined controller (no standard input) and returns
    /// what it printed.
    pub(crate) fn output(&self) -> Result<std::process::Output> {
        let controller = self
            .confined
            .controller(self.argv.clone(), &self.root, &[], None)?;
        let mut out = tempfile::tempfile().at("create a temp file in", std::env::temp_dir())?;
        let mut err = tempfile::tempfile().at("create a temp file in", std::env::temp_dir())?;
        let io = RunIo {
            stdin: Io::Null,
            stdout: Io::File(out.try_clone().at("dup", "a temp file")?),
            stderr: Io::File(err.try_clone().at("dup", "a temp file")?),
        };
        let status = run_controller_alone(
            &self.confined.helper,
            &controller,
            &self.confined.network,
            io,
        )?;
        let read = |f: &mut std::fs::File| -> Result<Vec<u8>> {
            let mut buf = Vec::new();
            f.rewind().at("read", "a temp file")?;
            f.read_to_end(&mut buf).at("read", "a temp file")?;
            Ok(buf)
        };
        Ok(std::process::Output {
            status,
            stdout: read(&mut out)?,
            stderr: read(&mut err)?,
        })
    }
}

/// Whether an environment variable holds a credential (its name says so).
fn is_credential(name: &str) -> bool {
    // Decrypting the repository's own vaults is the build's business.
    if matches!(
        name,
        "ANSIBLE_VAULT_PASSWORD_FILE" | "ANSIBLE_VAULT_IDENTITY_LIST"
    ) {
        return false;
    }
    let name = name.to_ascii_uppercase();
    [
        "TOKEN",
        "PASSWORD",
        "PASSWD",
        "PASSPHRASE",
        "SECRET",
        "PRIVATE_KEY",
        "KEY_FILE",
        "CREDENTIAL",
    ]
    .iter()
    .any(|w| name.contains(w))
}

/// The paths the Ansible variable `name` tells Ansible to read code or
/// configuration from (`ANSIBLE_CONFIG`, `ANSIBLE_COLLECTIONS_PATH`,
/// `ANSIBLE_ROLES_PATH`, `ANSIBLE_*_PLUGINS`, the vault's password file...),
/// those that exist. Any other variable shows nothing.
fn paths_of(name: &str, value: &str) -> Vec<PathBuf> {
    let shown = matches!(
        name,
        "ANSIBLE_CONFIG"
            | "ANSIBLE_COLLECTIONS_PATH"
            | "ANSIBLE_COLLECTIONS_PATHS"
            | "ANSIBLE_ROLES_PATH"
            | "ANSIBLE_LIBRARY"
            | "ANSIBLE_MODULE_UTILS"
            | "ANSIBLE_VAULT_PASSWORD_FILE"
            | "ANSIBLE_VAULT_IDENTITY_LIST"
    ) || (name.starts_with("ANSIBLE_") && name.ends_with("_PLUGINS"));
    if !shown {
        return Vec::new();
    }
    value
        .split([':', ','])
        // `label@path` in a vault identity list.
        .map(|p| PathBuf::from(p.rsplit('@').next().unwrap_or(p)))
        .filter(|p| p.is_absolute() && p.exists())
        .collect()
}

/// Paths of an Ansible installed outside the system directories (a virtual
/// environment, `pip install --user`): its `bin`, `lib`, `lib64` and
/// `pyvenv.cfg`, and those of the Python its scripts start with.
fn installation(ansible_playbook: &Path) -> Vec<PathBuf> {
    let system = |p: &Path| {
        ["/usr", "/bin", "/sbin", "/lib", "/lib64"]
            .iter()
            .any(|s| p.starts_with(s))
    };
    let mut roots = Vec::new();
    if !system(ansible_playbook) {
        roots.extend(
            ansible_playbook
                .parent()
                .and_then(Path::parent)
                .map(Path::to_path_buf),
        );
    }
    // `#!/opt/venv/bin/python3`: the interpreter's prefix.
    let shebang = std::fs::read(ansible_playbook)
        .ok()
        .and_then(|b| {
            let line = b.split(|c| *c == b'\n').next()?.to_vec();
            let line = String::from_utf8(line).ok()?;
            let interp = line
                .strip_prefix("#!")?
                .split_whitespace()
                .next()?
                .to_string();
            Some(PathBuf::from(interp))
        })
        .filter(|p| p.is_absolute() && !system(p));
    if let Some(interp) = shebang {
        roots.extend(
            interp
                .parent()
                .and_then(Path::parent)
                .map(Path::to_path_buf),
        );
    }
    roots.sort();
    roots.dedup();
    roots
        .iter()
        .flat_map(|r| ["bin", "lib", "lib64", "pyvenv.cfg"].map(|n| r.join(n)))
        .filter(|p| p.exists())
        .collect()
}

/// What no controller is shown: vauban's own configuration (the key store's
/// identity), key store and state (logs), and the usual credentials.
fn default_hidden(home: Option<&Path>) -> Vec<PathBuf> {
    let mut hidden: Vec<PathBuf> = [UserDir::Config, UserDir::Data, UserDir::State]
        .into_iter()
        .filter_map(|d| d.vauban())
        .collect();
    if let Some(data) = UserDir::Data.vauban() {
        hidden.push(data.with_file_name("vauban-keys"));
    }
    if let Some(home) = home {
        for rel in [
            ".ssh",
            ".gnupg",
            ".docker",
            ".config/containers",
            ".aws",
            ".kube",
        ] {
            hidden.push(home.join(rel));
        }
    }
    if let Some(run) = std::env::var_os("XDG_RUNTIME_DIR") {
        hidden.push(PathBuf::from(run).join("containers"));
    }
    if let Some(auth) = std::env::var_os("REGISTRY_AUTH_FILE") {
        hidden.push(PathBuf::from(auth));
    }
    hidden
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ansible_in_a_virtualenv_is_shown_with_its_python() {
        let dir = tempfile::tempdir().unwrap();
        let venv = dir.path().join("venv");
        for d in ["bin", "lib"] {
            std::fs::create_dir_all(venv.join(d)).unwrap();
        }
        std::fs::write(venv.join("pyvenv.cfg"), "home = /usr/bin\n").unwrap();
        let exe = venv.join("bin/ansible-playbook");
        std::fs::write(&exe, format!("#!{}/bin/python3\n", venv.display())).unwrap();
        assert_eq!(
            installation(&exe),
            [venv.join("bin"), venv.join("lib"), venv.join("pyvenv.cfg")]
        );
        assert!(installation(Path::new("/usr/bin/ansible-playbook")).is_empty());
    }

    #[test]
    fn credentials_never_reach_the_controller() {
        for name in [
            "ANSIBLE_GALAXY_SERVER_X_TOKEN",
            "ANSIBLE_HASHI_VAULT_TOKEN",
            "ANSIBLE_PRIVATE_KEY_FILE",
            "ANSIBLE_CONNECTION_PASSWORD_FILE",
            "ANSIBLE_BECOME_PASSWORD_FILE",
        ] {
            assert!(is_credential(name), "{name}");
        }
        for name in [
            "ANSIBLE_VAULT_PASSWORD_FILE",
            "ANSIBLE_COLLECTIONS_PATH",
            "ANSIBLE_FORKS",
        ] {
            assert!(!is_credential(name), "{name}");
        }
        assert!(paths_of("ANSIBLE_PRIVATE_KEY_FILE", "/").is_empty());
        assert!(paths_of("ANSIBLE_LOG_PATH", "/").is_empty());
        assert_eq!(
            paths_of("ANSIBLE_FILTER_PLUGINS", "/:rel"),
            [PathBuf::from("/")]
        );
        assert_eq!(
            paths_of("ANSIBLE_VAULT_IDENTITY_LIST", "prod@/,x@missing"),
            [PathBuf::from("/")]
        );
    }

    #[test]
    fn credentials_and_vaubans_own_dirs_are_hidden() {
        let hidden = default_hidden(Some(Path::new("/home/alice")));
        assert!(hidden.contains(&PathBuf::from("/home/alice/.ssh")));
        assert!(hidden.contains(&PathBuf::from("/home/alice/.docker")));
    }
}
