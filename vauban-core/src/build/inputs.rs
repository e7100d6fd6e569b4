//! What a step reads, as digests for its cache key: the Ansible tree (every
//! file but the inventory, attributed to the stages whose playbooks name it),
//! each host's resolved inventory variables and groups (`ansible-inventory
//! --list`), and the hosts of a conffs pattern (`ansible --list-hosts`).
//!
//! # Which files a stage reads
//!
//! A stage's playbook, and every file of the tree whose path, file name or
//! (for a role) role name appears as a word in a file already taken, are the
//! stage's files (the *closure* of its playbook). A stage's key holds the
//! digest of every file of the tree **except** those in another stage's
//! closure and not in its own: a file named by no stage at all (read through a
//! computed name, a glob) is in every key. Over-invalidating is the safe side;
//! a file read only through a name computed at run time from another stage's
//! files is the one case this misses (ARCHITECTURE.md, "Cache").

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use crate::error::{Error, IoContext, Result};
use crate::stage::confined::Confined;

/// Files larger than this are hashed but never read for names.
const SCANNED_MAX: u64 = 1 << 20;

/// One file of the tree.
#[derive(Debug, Clone)]
struct TreeFile {
    /// sha256 of mode, then content (or link target).
    digest: String,
    /// The words of its text, when it is small UTF-8 text.
    words: HashSet<String>,
}

/// The Ansible tree of a checkout, hashed once per build.
#[derive(Debug, Clone)]
pub(crate) struct AnsibleTree {
    files: BTreeMap<String, TreeFile>,
}

impl AnsibleTree {
    /// Reads every file under `root` except `.git`, the inventories and their
    /// `host_vars`/`group_vars` (which enter keys as resolved variables).
    pub(crate) fn read(root: &Path, inventories: &[PathBuf]) -> Result<Self> {
        let mut skip: HashSet<PathBuf> = HashSet::new();
        skip.insert(root.join(".git"));
        skip.extend(inventory_paths(root, inventories));
        let mut files = BTreeMap::new();
        let mut stack = vec![root.to_path_buf()];
        while let Some(dir) = stack.pop() {
            let entries = std::fs::read_dir(&dir).at("read the Ansible directory", &dir)?;
            for entry in entries {
                let entry = entry.at("read the Ansible directory", &dir)?;
                let path = entry.path();
                if skip.contains(&path) {
                    continue;
                }
                let meta = path.symlink_metadata().at("stat", &path)?;
                let rel = path
                    .strip_prefix(root)
                    .unwrap_or(&path)
                    .to_string_lossy()
                    .into_owned();
                if meta.is_dir() {
                    stack.push(path);
                } else if rel.ends_with(".retry") {
                    continue;
                } else {
                    files.insert(rel, read_file(&path, &meta)?);
                }
            }
        }
        Ok(AnsibleTree { files })
    }

    /// The digest of the whole tree (every file it read).
    pub(crate) fn digest(&self) -> String {
        let mut hasher = Sha256::new();
        for (rel, file) in &self.files {
            hasher.update(rel.as_bytes());
            hasher.update([0]);
            hasher.update(file.digest.as_bytes());
            hasher.update([0]);
        }
        hex(hasher.finalize().as_slice())
    }

    /// The relative paths of the tree, sorted.
    #[cfg(test)]
    pub(crate) fn paths(&self) -> impl Iterator<Item = &str> {
        self.files.keys().map(String::as_str)
    }

    /// The files `playbook` reads, as far as names tell (see the module doc).
    pub(crate) fn closure(&self, playbook: &str) -> BTreeSet<String> {
        let mut taken: BTreeSet<String> = BTreeSet::new();
        if !self.files.contains_key(playbook) {
            return taken;
        }
        taken.insert(playbook.to_owned());
        let mut queue = vec![playbook.to_owned()];
        while let Some(current) = queue.pop() {
            let words = &self.files[&current].words;
            for rel in self.files.keys() {
                if !taken.contains(rel) && is_named(rel, words) {
                    taken.insert(rel.clone());
                    queue.push(rel.clone());
                }
            }
        }
        taken
    }

    /// The digest of the tree as the stage of `playbook` reads it, among the
    /// stages of `playbooks` (every stage of the config).
    pub(crate) fn stage_digest(&self, playbook: &str, playbooks: &[String]) -> String {
        let own = self.closure(playbook);
        let mut others: BTreeSet<String> = BTreeSet::new();
        for p in playbooks.iter().filter(|p| p.as_str() != playbook) {
            others.extend(self.closure(p));
        }
        let mut hasher = Sha256::new();
        for (rel, file) in &self.files {
            if others.contains(rel) && !own.contains(rel) {
                continue;
            }
            hasher.update(rel.as_bytes());
            hasher.update([0]);
            hasher.update(file.digest.as_bytes());
            hasher.update([0]);
        }
        hex(hasher.finalize().as_slice())
    }
}

/// Whether a file at `rel` is named by `words`: its path, its file name, or,
/// under `roles/NAME/`, the role's name.
fn is_named(rel: &str, words: &HashSet<String>) -> bool {
    if words.contains(rel) {
        return true;
    }
    let name = rel.rsplit('/').next().unwrap_or(rel);
    if words.contains(name) {
        return true;
    }
    // `template: src=fleet.j2` for `templates/fleet.j2`, `roles/x/templates/...`.
    let mut parts = rel.split('/');
    if let (Some("roles"), Some(role)) = (parts.next(), parts.next()) {
        return words.contains(role);
    }
    false
}

fn read_file(path: &Path, meta: &std::fs::Metadata) -> Result<TreeFile> {
    let mut hasher = Sha256::new();
    hasher.update(format!("{:o}\0", meta.permissions().mode() & 0o7777).as_bytes());
    let mut words = HashSet::new();
    if meta.file_type().is_symlink() {
        let target = std::fs::read_link(path).at("read the link", path)?;
        hasher.update(b"link\0");
        hasher.update(target.as_os_str().as_encoded_bytes());
    } else {
        let mut file = std::fs::File::open(path).at("open", path)?;
        if meta.len() <= SCANNED_MAX {
            let mut bytes = Vec::with_capacity(meta.len() as usize);
            file.read_to_end(&mut bytes).at("read", path)?;
            hasher.update(&bytes);
            if let Ok(text) = std::str::from_utf8(&bytes) {
                words = words_of(text);
            }
        } else {
            std::io::copy(&mut file, &mut HashWriter(&mut hasher)).at("read", path)?;
        }
    }
    Ok(TreeFile {
        digest: hex(hasher.finalize().as_slice()),
        words,
    })
}

/// The words of a text that may name a file: runs of letters, digits and
/// `._/-`, each also without its leading directories.
fn words_of(text: &str) -> HashSet<String> {
    let mut words = HashSet::new();
    for word in text.split(|c: char| !(c.is_alphanumeric() || matches!(c, '.' | '_' | '/' | '-'))) {
        let word = word.trim_matches(|c| c == '.' || c == '/');
        if word.is_empty() {
            continue;
        }
        let mut rest = word;
        words.insert(rest.to_owned());
        while let Some((_, tail)) = rest.split_once('/') {
            if !tail.is_empty() {
                words.insert(tail.to_owned());
            }
            rest = tail;
        }
    }
    words
}

struct HashWriter<'a>(&'a mut Sha256);

impl std::io::Write for HashWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Lowercase hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    hex::encode(bytes)
}

/// The digest of a JSON value (maps are sorted: `serde_json` keeps them in
/// a `BTreeMap`).
pub(crate) fn json_digest(value: &serde_json::Value) -> String {
    hex(Sha256::digest(value.to_string().as_bytes()).as_slice())
}

/// The inventories and the `host_vars`/`group_vars` beside them and at the
/// root: what the inventory is made of besides `ansible.cfg`.
fn inventory_paths(root: &Path, inventories: &[PathBuf]) -> Vec<PathBuf> {
    let dirs = std::iter::once(root.to_path_buf()).chain(inventories.iter().filter_map(|i| {
        if i.is_dir() {
            Some(i.clone())
        } else {
            i.parent().map(Path::to_path_buf)
        }
    }));
    let mut paths: Vec<PathBuf> = dirs
        .flat_map(|d| [d.join("host_vars"), d.join("group_vars")])
        .collect();
    paths.extend(inventories.iter().cloned());
    paths
}

/// The digest of what the inventory is made of: `ansible.cfg`, the
/// inventories, and the `host_vars`/`group_vars` beside them and at the root
/// (what [`AnsibleTree::read`] leaves out).
pub(crate) fn inventory_digest(root: &Path, inventories: &[PathBuf]) -> Result<String> {
    let mut paths: Vec<PathBuf> = vec![root.join("ansible.cfg")];
    paths.extend(inventory_paths(root, inventories));
    paths.sort();
    paths.dedup();
    let mut hasher = Sha256::new();
    let mut stack: Vec<PathBuf> = paths.into_iter().rev().collect();
    while let Some(path) = stack.pop() {
        let Ok(meta) = path.symlink_metadata() else {
            continue;
        };
        hasher.update(path.as_os_str().as_encoded_bytes());
        hasher.update([0]);
        if meta.is_dir() {
            let mut children: Vec<PathBuf> = std::fs::read_dir(&path)
                .at("read the directory", &path)?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .collect();
            children.sort();
            stack.extend(children.into_iter().rev());
        } else {
            hasher.update(read_file(&path, &meta)?.digest.as_bytes());
        }
    }
    Ok(hex(hasher.finalize().as_slice()))
}

/// Small results of Ansible's own tools (inventory listings, host lists, a
/// passed syntax check), kept in `STORE/ansible-cache/<key>` by the digest of
/// what they read, so a rebuild with nothing changed starts no Ansible at all.
#[derive(Debug, Clone)]
pub(crate) struct ToolCache {
    dir: PathBuf,
    /// `--no-cache`: never serve, still record.
    pub disabled: bool,
}

impl ToolCache {
    /// The cache of the store at `store_root`.
    pub(crate) fn new(store_root: &Path) -> Self {
        ToolCache {
            dir: store_root.join("ansible-cache"),
            disabled: false,
        }
    }

    /// The value kept for `key`.
    pub(crate) fn get(&self, key: &str) -> Option<String> {
        if self.disabled {
            return None;
        }
        std::fs::read_to_string(self.dir.join(key)).ok()
    }

    /// Keeps `value` for `key` (temp file, rename).
    pub(crate) fn put(&self, key: &str, value: &str) -> Result<()> {
        use std::io::Write;
        private_dir(&self.dir)?;
        let mut tmp = tempfile::NamedTempFile::new_in(&self.dir)
            .map_err(|e| Error::io("create a temp file in", &self.dir, e))?;
        tmp.write_all(value.as_bytes())
            .map_err(|e| Error::io("write", tmp.path(), e))?;
        tmp.persist(self.dir.join(key))
            .map_err(|e| Error::io("rename", self.dir.join(key), e.error))?;
        Ok(())
    }
}

/// Makes `dir` private to its owner (created, or tightened), like the
/// store's own directories.
pub(super) fn private_dir(dir: &Path) -> Result<()> {
    crate::private::dir(dir).at("create", dir)
}

/// The key of a tool's result: its name and what it read.
pub(crate) fn tool_key(tool: &str, parts: &[&str]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(env!("CARGO_PKG_VERSION").as_bytes());
    hasher.update(tool.as_bytes());
    for p in parts {
        hasher.update([0]);
        hasher.update(p.as_bytes());
    }
    format!("{tool}-{}", hex(hasher.finalize().as_slice()))
}

/// The inventory of a checkout as `ansible-inventory --list` resolves it.
#[derive(Debug, Clone)]
pub(crate) struct Inventory {
    list: serde_json::Value,
}

impl Inventory {
    /// [`Inventory::load`] through `cache`, keyed by `digest`
    /// ([`inventory_digest`]).
    pub(crate) fn load_cached(
        cache: &ToolCache,
        digest: &str,
        confined: &Confined,
        ansible_playbook: &Path,
        root: &Path,
        inventories: &[PathBuf],
    ) -> Result<Self> {
        let key = tool_key("inventory", &[digest]);
        if let Some(list) = cache.get(&key).and_then(|t| serde_json::from_str(&t).ok()) {
            return Ok(Inventory { list });
        }
        let inventory = Inventory::load(confined, ansible_playbook, root, inventories)?;
        cache.put(&key, &inventory.list.to_string())?;
        Ok(inventory)
    }

    /// Runs `ansible-inventory --list` in `root`, confined.
    pub(crate) fn load(
        confined: &Confined,
        ansible_playbook: &Path,
        root: &Path,
        inventories: &[PathBuf],
    ) -> Result<Self> {
        let program = ansible_playbook.with_file_name("ansible-inventory");
        let out = confined
            .tool(&program, root, inventories)
            .arg("--list")
            .output()?;
        if !out.status.success() {
            return Err(Error::Inventory {
                root: root.to_owned(),
                message: crate::printable::escape_bytes(&out.stderr)
                    .trim()
                    .to_owned(),
            });
        }
        let list = serde_json::from_slice(&out.stdout).map_err(|e| Error::Inventory {
            root: root.to_owned(),
            message: format!("ansible-inventory printed no JSON: {e}"),
        })?;
        Ok(Inventory { list })
    }

    /// The variables and groups of `host` (empty for a host the inventory
    /// does not have), and their digest.
    pub(crate) fn host_inputs(&self, host: &str) -> (serde_json::Value, String) {
        let vars = self
            .list
            .pointer(&format!(
                "/_meta/hostvars/{}",
                host.replace('~', "~0").replace('/', "~1")
            ))
            .cloned()
            .unwrap_or(serde_json::Value::Object(Default::default()));
        let groups = crate::stage::inventory::groups_of(&self.list, host);
        let value = serde_json::json!({ "vars": vars, "groups": groups });
        let digest = json_digest(&value);
        (value, digest)
    }
}

/// The hosts of `pattern` as the original resolves a conffs:
/// `ansible 'PATTERN,!master-*' --list-hosts`, in the inventory's order.
pub(crate) fn conffs_hosts(
    confined: &Confined,
    ansible_playbook: &Path,
    root: &Path,
    inventories: &[PathBuf],
    pattern: &str,
) -> Result<Vec<String>> {
    let program = ansible_playbook.with_file_name("ansible");
    let limit = format!("{pattern},!master-*");
    let out = confined
        .tool(&program, root, inventories)
        .arg(&limit)
        .arg("--list-hosts")
        .output()?;
    if !out.status.success() {
        return Err(Error::Inventory {
            root: root.to_owned(),
            message: format!(
                "ansible {limit} --list-hosts: {}",
                crate::printable::escape_bytes(&out.stderr).trim()
            ),
        });
    }
    Ok(parse_list_hosts(&String::from_utf8_lossy(&out.stdout)))
}

/// The host names of `ansible --list-hosts` output.
pub(crate) fn parse_list_hosts(text: &str) -> Vec<String> {
    text.lines()
        .skip_while(|l| !l.trim_start().starts_with("hosts ("))
        .skip(1)
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(files: &[(&str, &str)]) -> (tempfile::TempDir, AnsibleTree) {
        let dir = tempfile::tempdir().unwrap();
        for (rel, text) in files {
            let p = dir.path().join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        let inv = dir.path().join("inventory");
        let t = AnsibleTree::read(dir.path(), &[inv]).unwrap();
        (dir, t)
    }

    const FILES: &[(&str, &str)] = &[
        ("base.yml", "- hosts: all\n  tasks:\n  - template: src=fleet.j2 dest=/etc/x\n  roles: [common]\n"),
        ("web.yml", "- hosts: web\n  vars_files: [vars/web.yml]\n  tasks:\n  - copy: src=files/motd dest=/etc/motd\n"),
        ("templates/fleet.j2", "{{ fleet }}"),
        ("roles/common/tasks/main.yml", "- template: src=common.conf.j2 dest=/etc/c\n"),
        ("roles/common/templates/common.conf.j2", "x"),
        ("vars/web.yml", "a: 1"),
        ("files/motd", "hi"),
        ("files/unnamed", "read through a glob"),
        ("inventory", "web01"),
        ("host_vars/web01.yml", "v: 1"),
        ("group_vars/all.yml", "v: 1"),
    ];

    fn digests(files: &[(&str, &str)]) -> (String, String) {
        let (_d, t) = tree(files);
        let all = vec!["base.yml".to_string(), "web.yml".to_string()];
        (
            t.stage_digest("base.yml", &all),
            t.stage_digest("web.yml", &all),
        )
    }

    fn changed(rel: &str) -> Vec<(&'static str, String)> {
        FILES
            .iter()
            .map(|(p, t)| {
                (
                    *p,
                    if *p == rel {
                        format!("{t} changed")
                    } else {
                        t.to_string()
                    },
                )
            })
            .collect()
    }

    fn digests_with(rel: &str) -> (String, String) {
        let files = changed(rel);
        let refs: Vec<(&str, &str)> = files.iter().map(|(p, t)| (*p, t.as_str())).collect();
        digests(&refs)
    }

    #[test]
    fn inventory_files_are_not_in_the_tree() {
        let (_d, t) = tree(FILES);
        let paths: Vec<&str> = t.paths().collect();
        assert!(
            !paths
                .iter()
                .any(|p| p.contains("_vars") || *p == "inventory"),
            "{paths:?}"
        );
        assert!(paths.contains(&"roles/common/templates/common.conf.j2"));
    }

    #[test]
    fn a_playbook_change_is_seen_by_its_stage_only() {
        let (b, w) = digests(FILES);
        let (b2, w2) = digests_with("web.yml");
        assert_eq!(b, b2);
        assert_ne!(w, w2);
        let (b3, w3) = digests_with("base.yml");
        assert_ne!(b, b3);
        assert_eq!(w, w3);
    }

    #[test]
    fn templates_roles_and_vars_files_go_to_the_stages_naming_them() {
        let (b, w) = digests(FILES);
        for rel in [
            "templates/fleet.j2",
            "roles/common/templates/common.conf.j2",
        ] {
            let (b2, w2) = digests_with(rel);
            assert_ne!(b, b2, "{rel}");
            assert_eq!(w, w2, "{rel}");
        }
        for rel in ["vars/web.yml", "files/motd"] {
            let (b2, w2) = digests_with(rel);
            assert_eq!(b, b2, "{rel}");
            assert_ne!(w, w2, "{rel}");
        }
    }

    #[test]
    fn a_file_no_stage_names_is_in_every_key() {
        let (b, w) = digests(FILES);
        let (b2, w2) = digests_with("files/unnamed");
        assert_ne!(b, b2);
        assert_ne!(w, w2);
    }

    #[test]
    fn inventory_changes_leave_the_tree_digest_alone() {
        let (b, w) = digests(FILES);
        assert_eq!((b.clone(), w.clone()), digests_with("host_vars/web01.yml"));
        assert_eq!((b, w), digests_with("group_vars/all.yml"));
    }

    #[test]
    fn list_hosts_output_is_read() {
        let text = "  hosts (2):\n    web01\n    web02\n";
        assert_eq!(parse_list_hosts(text), ["web01", "web02"]);
        assert!(
            parse_list_hosts("[WARNING]: No hosts matched, nothing to do\n  hosts (0):\n")
                .is_empty()
        );
    }
}
