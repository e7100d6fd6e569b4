//! [`BuildOptions`]: what to build and how, as `vauban build`'s options say it,
//! and the tag of every local name a build gives.

use std::path::PathBuf;

use super::plan::Part;
use super::publish::Registry;
use crate::keys::KeySecret;
use crate::stage::{AnsibleSource, Hooks};

/// The tag of every local name a build gives.
pub const LOCAL_TAG: &str = "latest";

/// What to build, and how.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// `--name`: the master.
    pub name: String,
    /// `--stage`.
    pub part: Part,
    /// `--build-parents` (`-1`: the whole chain).
    pub build_parents: i64,
    /// `--rebuild-stale`: a master the build starts from whose stages no
    /// longer give its image (a playbook or its variables changed since) is
    /// rebuilt first, with its stale parents; without it the build warns.
    pub rebuild_stale: bool,
    /// `--conffs`: the hosts' pattern instead of the master's `conffs:`.
    pub conffs: Option<String>,
    /// `--branch`: every stage from this branch.
    pub branch: Option<String>,
    /// `--ansible`, else the config's `ansible:`.
    pub ansible: Option<AnsibleSource>,
    /// Extra `ansible-playbook` arguments.
    pub ansible_args: Vec<String>,
    /// Shell snippets around `ansible-playbook`.
    pub hooks: Hooks,
    /// `--no-cache`: run every stage.
    pub no_cache: bool,
    /// Hosts worked on at once (Ansible's `--forks`).
    pub jobs: usize,
    /// `--out`: the output tree.
    pub out: PathBuf,
    /// `--registry`: where images are pushed and looked for.
    pub registry: Option<Registry>,
    /// The sshd host-key store.
    pub keystore: PathBuf,
    /// Its secret (needed by conffs steps only: [`crate::build::Builder::needs_keys`]).
    pub keys: Option<KeySecret>,
    /// `--boot-url`, else the config's `boot_url:`.
    pub boot_url: Option<String>,
    /// `--network`/`--network-allow`, else the config's `network:` and
    /// `network_allow:`.
    pub network: Option<crate::sandbox::Network>,
    /// `--images-only`: a conffs makes and publishes its hosts' images, and
    /// no archive (a task of an executor: no key store, no `--out`; the
    /// coordinator exports).
    pub images_only: bool,
    /// `--base-digest`: the master's image a conffs starts from, this
    /// manifest exactly (from the store, else pulled from `--registry`).
    pub base_digest: Option<vauban_oci::Digest>,
}

impl BuildOptions {
    /// `--stage part` of master `name`, no parents, `./out`, two jobs per core.
    pub fn new(name: impl Into<String>, part: Part, keystore: impl Into<PathBuf>) -> Self {
        BuildOptions {
            name: name.into(),
            part,
            build_parents: 0,
            rebuild_stale: false,
            conffs: None,
            branch: None,
            ansible: None,
            ansible_args: Vec::new(),
            hooks: Hooks::default(),
            no_cache: false,
            jobs: std::thread::available_parallelism()
                .map(|n| n.get() * 2)
                .unwrap_or(2),
            out: PathBuf::from("out"),
            registry: None,
            keystore: keystore.into(),
            keys: None,
            boot_url: None,
            network: None,
            images_only: false,
            base_digest: None,
        }
    }
}
