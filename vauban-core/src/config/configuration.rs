//! The top-level `configuration:` mapping: the original's conffs and upload
//! settings, and vauban's own (the Ansible repository, the conffs size limit, and the
//! boot files). Every key is optional; an unknown key is ignored with a warning, as
//! the original ignored it.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use schemars::JsonSchema;
use serde::Serialize;

use super::location::{Located, Location};
use super::master::stage;
use super::read::{http_url, Reader};
use super::yaml::Node;
use super::KeyContext;
use crate::error::{Error, Result};
use crate::stage::{AnsibleSource, Stage};

/// The keys `configuration:` holds.
pub const CONFIGURATION_KEYS: &[&str] = &[
    "ignore_stage_in_conffs",
    "never_upload",
    "always_apply_stage_in_conffs",
    "ansible",
    "ansible_root",
    "conffs_size_limit",
    "dracut_conf",
    "initramfs_release",
    "kernel_args",
    "squashfs_compression",
    "resolv_conf",
    "boot_url",
    "network",
    "network_allow",
    "notify",
    "executor",
];

/// The default `conffs_size_limit`: the original refused a conffs archive of 50 MiB.
pub const DEFAULT_CONFFS_SIZE_LIMIT: u64 = 50 * 1024 * 1024;

/// The default `resolv_conf`: where the original linked the rootfs' `/etc/resolv.conf`.
pub const DEFAULT_RESOLV_CONF: &str = "/run/resolvconf/resolv.conf";

/// The settings that apply to every build of the file.
#[derive(Debug, Clone, JsonSchema)]
#[schemars(default, deny_unknown_fields)]
pub struct Configuration {
    /// Stages left out of conffs builds, where they would change nothing host-specific
    /// (each as written in `stages`, `branch@` included).
    pub ignore_stage_in_conffs: Vec<Located<Stage>>,
    /// Masters never uploaded (by name). Releases are never uploaded anyway.
    pub never_upload: Vec<Located<String>>,
    /// Stages applied first in every conffs build, before the chain's own.
    pub always_apply_stage_in_conffs: Vec<Located<Stage>>,
    /// The Ansible repository: a directory (relative to the config file), or a git URL
    /// (`https://`, `ssh://`, `git@host:path`, `file://`).
    pub ansible: Option<Located<AnsibleSource>>,
    /// The Ansible root inside the repository (where playbooks and inventory are),
    /// relative to it; the repository's top when absent.
    pub ansible_root: Option<Located<PathBuf>>,
    /// The largest conffs archive accepted: bytes, or a size like `50MiB` or `2 MB`.
    #[schemars(with = "super::schema::Size")]
    pub conffs_size_limit: u64,
    /// Extra `dracut.conf` text for the initramfs, or the path of such a file (relative
    /// to the config file). A value with a `=` or a newline is the text itself.
    pub dracut_conf: Option<Located<DracutConf>>,
    /// The name of the release or master whose rootfs provides the kernel and dracut
    /// for the initramfs; each master's own rootfs when absent.
    pub initramfs_release: Option<Located<String>>,
    /// Extra kernel command line arguments for the boot entries.
    pub kernel_args: Vec<Located<String>>,
    /// The compression of the rootfs squashfs.
    pub squashfs_compression: SquashfsCompression,
    /// Where the rootfs' `/etc/resolv.conf` links to (an absolute path on the booted host).
    pub resolv_conf: PathBuf,
    /// The base URL the boot tree is served from (kernel, initramfs, rootfs, conffs).
    pub boot_url: Option<Located<String>>,
    /// The builds' network: `isolated` (a namespace of their own; HTTP(S) and
    /// DNS to public addresses through vauban's proxy) or `host` (the host's:
    /// everything the user can reach, e.g. a site's local apt proxy).
    pub network: NetworkMode,
    /// Hosts an isolated build may reach whatever their address (a mirror on
    /// a private network): `HOST`, `HOST:PORT`, `*.DOMAIN`, an address or
    /// `ADDRESS/PREFIX`.
    pub network_allow: Vec<Located<String>>,
    /// Webhooks `vauban serve` tells when a build fails, when a master's
    /// build succeeds after a failure (and after every build with
    /// `--notify-all`): `http(s)://` (or `slack+https://`) URLs, beside its
    /// `--notify` ones; one URL or a list.
    pub notify: Vec<Located<String>>,
    /// Where builds run their conffs hosts by default, and the batch
    /// system's settings (`--executor` wins).
    pub executor: super::executor::ExecutorConfig,
    /// Where the value of each key written in `configuration:` is, by key.
    #[schemars(skip)]
    pub locations: BTreeMap<String, Location>,
}

impl Default for Configuration {
    fn default() -> Self {
        Configuration {
            ignore_stage_in_conffs: Vec::new(),
            never_upload: Vec::new(),
            always_apply_stage_in_conffs: Vec::new(),
            ansible: None,
            ansible_root: None,
            conffs_size_limit: DEFAULT_CONFFS_SIZE_LIMIT,
            dracut_conf: None,
            initramfs_release: None,
            kernel_args: Vec::new(),
            squashfs_compression: SquashfsCompression::default(),
            resolv_conf: PathBuf::from(DEFAULT_RESOLV_CONF),
            boot_url: None,
            network: NetworkMode::default(),
            network_allow: Vec::new(),
            notify: Vec::new(),
            executor: Default::default(),
            locations: BTreeMap::new(),
        }
    }
}

/// `dracut_conf:` text or a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DracutConf {
    /// `dracut.conf` lines.
    Text(String),
    /// A file of them (absolute).
    File(PathBuf),
}

/// `network:` of a build.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, JsonSchema, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NetworkMode {
    /// A network namespace of its own, out through vauban's proxy.
    #[default]
    Isolated,
    /// The host's network namespace.
    Host,
}

impl Configuration {
    /// The sandboxes' network this file asks for.
    pub fn network(&self) -> crate::sandbox::Network {
        match self.network {
            NetworkMode::Host => crate::sandbox::Network::Host,
            NetworkMode::Isolated => crate::sandbox::Network::Isolated {
                allow: self.network_allow.iter().map(|a| a.value.clone()).collect(),
            },
        }
    }
}

/// The squashfs compressors offered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, JsonSchema, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SquashfsCompression {
    /// zstd: fast to build and to boot.
    #[default]
    Zstd,
    /// xz: smallest, as the original made them.
    Xz,
}

/// Reads `configuration:`.
pub(crate) fn configuration(r: &Reader, node: &Node, path: &str) -> Result<Configuration> {
    let mut c = Configuration::default();
    for e in r.map(node, path)? {
        let vpath = Location::child_path(path, &e.key);
        let value = &e.value;
        match e.key.as_str() {
            "ignore_stage_in_conffs" => c.ignore_stage_in_conffs = stages(r, value, &vpath)?,
            "never_upload" => c.never_upload = r.strings(value, &vpath)?,
            "always_apply_stage_in_conffs" => {
                c.always_apply_stage_in_conffs = stages(r, value, &vpath)?
            }
            "ansible" => {
                c.ansible = r.opt_string(value, &vpath)?.map(|s| {
                    let source = match AnsibleSource::parse(&s) {
                        AnsibleSource::Dir(dir) => AnsibleSource::Dir(r.path(dir)),
                        git => git,
                    };
                    Located::new(source, s.location)
                });
            }
            "ansible_root" => {
                if let Some(root) = r.opt_string(value, &vpath)? {
                    let dir = PathBuf::from(&root.value);
                    if !dir
                        .components()
                        .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
                    {
                        return Err(invalid(&root, "`ansible_root` is a directory inside the repository: relative, without `..`"));
                    }
                    c.ansible_root = Some(Located::new(dir, root.location));
                }
            }
            "conffs_size_limit" => {
                let text = r.non_empty(value, &vpath)?;
                c.conffs_size_limit = size(&text)?;
            }
            "dracut_conf" => {
                c.dracut_conf = r.opt_string(value, &vpath)?.map(|s| {
                    let conf = if s.contains(['=', '\n']) {
                        DracutConf::Text(s.value.clone())
                    } else {
                        DracutConf::File(r.path(&s.value))
                    };
                    Located::new(conf, s.location)
                });
            }
            "initramfs_release" => c.initramfs_release = r.opt_string(value, &vpath)?,
            "kernel_args" => c.kernel_args = r.strings(value, &vpath)?,
            "squashfs_compression" => {
                let text = r.non_empty(value, &vpath)?;
                c.squashfs_compression = match text.as_str() {
                    "zstd" => SquashfsCompression::Zstd,
                    "xz" => SquashfsCompression::Xz,
                    other => {
                        return Err(invalid(
                            &text,
                            &format!("unknown compression `{other}`: `zstd` or `xz`"),
                        ))
                    }
                };
            }
            "resolv_conf" => {
                let text = r.non_empty(value, &vpath)?;
                if !Path::new(&text.value).is_absolute() {
                    return Err(invalid(
                        &text,
                        "`resolv_conf` is an absolute path on the booted host",
                    ));
                }
                c.resolv_conf = PathBuf::from(&text.value);
            }
            "boot_url" => {
                c.boot_url = r.opt_string(value, &vpath)?;
                if let Some(url) = &c.boot_url {
                    http_url(url)?;
                }
            }
            "network" => {
                let text = r.non_empty(value, &vpath)?;
                c.network = match text.as_str() {
                    "isolated" => NetworkMode::Isolated,
                    "host" => NetworkMode::Host,
                    other => {
                        return Err(invalid(
                            &text,
                            &format!("unknown network `{other}`: `isolated` or `host`"),
                        ))
                    }
                };
            }
            "network_allow" => {
                c.network_allow = r.strings(value, &vpath)?;
                for entry in &c.network_allow {
                    crate::sandbox::network::check_allow(std::slice::from_ref(&entry.value))
                        .map_err(|e| invalid(entry, &e))?;
                }
            }
            "notify" => {
                c.notify = match &value.value {
                    super::yaml::Value::Str(_) => vec![r.non_empty(value, &vpath)?],
                    _ => r.strings(value, &vpath)?,
                };
                for url in &c.notify {
                    // `slack+https://…`: Slack's payload to a Slack-compatible hook.
                    let plain = url.strip_prefix("slack+").unwrap_or(url);
                    http_url(&Located::new(plain.to_string(), url.location.clone()))?;
                }
            }
            "executor" => c.executor = super::executor::executor(r, value, &vpath)?,
            // The original read the keys it knew and dropped the others.
            _ => {
                r.ignored_key(e, path, KeyContext::Configuration);
                continue;
            }
        }
        c.locations.insert(e.key.clone(), r.at(value.pos, &vpath));
    }
    Ok(c)
}

/// An [`Error::InvalidValue`] at `value`, saying `message`.
pub(super) fn invalid(value: &Located<String>, message: &str) -> Error {
    Error::InvalidValue {
        location: value.location.clone(),
        message: message.to_owned(),
    }
}

fn stages(r: &Reader, node: &Node, path: &str) -> Result<Vec<Located<Stage>>> {
    r.list(node, path)?
        .into_iter()
        .map(|(item, item_path)| stage(r.string(item, &item_path)?))
        .collect()
}

/// Bytes, or a number and a unit (`50MiB`, `1.5 GB`, `512k`; `k`, `M`, `G` are
/// powers of 1000, `Ki`, `Mi`, `Gi` of 1024).
fn size(text: &Located<String>) -> Result<u64> {
    let bytes = text.trim().parse::<bytesize::ByteSize>().map_err(|_| {
        invalid(
            text,
            &format!(
                "`{}` is not a size: give bytes, or a number with a unit like `50MiB`",
                text.value
            ),
        )
    })?;
    if bytes.as_u64() == 0 {
        return Err(invalid(
            text,
            "`conffs_size_limit` must be more than 0 bytes",
        ));
    }
    Ok(bytes.as_u64())
}
