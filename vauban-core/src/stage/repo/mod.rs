//! The Ansible repository of a build: a local directory used as it is, or a git URL
//! cloned once into a cache directory, fetched **once** per build, and each branch
//! checked out **once** at the commit `origin/<branch>` had then, in a detached
//! worktree private to the build (the original reset one clone to `origin/<branch>`
//! before every stage, so a push during a build changed its later stages). Every
//! stage of a branch runs from that one checkout, whose commit is recorded.

mod git;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Error, IoContext, Result};

use super::stage_name::check_branch_name;

/// Where the playbooks come from.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AnsibleSource {
    /// A directory used as it is (its git commit is recorded when it is a work tree).
    Dir(PathBuf),
    /// A git repository (any URL git accepts: `https://`, `ssh://`, `git@host:path`,
    /// `file://`), cloned into the cache.
    Git(String),
}

impl AnsibleSource {
    /// Reads a `--ansible` argument: a URL (`scheme://...` or scp-like `user@host:path`)
    /// is a git source, anything else a directory.
    pub fn parse(s: &str) -> Self {
        let scp_like = match s.split_once(':') {
            Some((before, _)) => before.contains('@') && !before.contains('/'),
            None => false,
        };
        if s.contains("://") || scp_like {
            AnsibleSource::Git(s.to_owned())
        } else {
            AnsibleSource::Dir(PathBuf::from(s))
        }
    }
}

impl fmt::Display for AnsibleSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AnsibleSource::Dir(dir) => write!(f, "{}", dir.display()),
            AnsibleSource::Git(url) => f.write_str(url),
        }
    }
}

pub(crate) use git::args as git_args;
use git::{git, git_quiet, lock};

/// The cache directory name of a URL: a readable tail plus a hash of the whole URL.
pub(crate) fn cache_name(url: &str) -> String {
    use sha2::{Digest as _, Sha256};
    let hash = hex::encode(&Sha256::digest(url.as_bytes())[..8]);
    let tail = url
        .trim_end_matches('/')
        .trim_end_matches(".git")
        .rsplit(['/', ':'])
        .next()
        .unwrap_or("");
    let tail: String = tail
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(40)
        .collect();
    format!("{tail}-{hash}")
}

/// One checked-out state of the Ansible repository.
#[derive(Debug)]
pub struct Checkout {
    /// The Ansible root (the repository's configured sub-directory).
    pub root: PathBuf,
    /// The commit, when known.
    pub commit: Option<String>,
    /// The branch, when known.
    pub branch: Option<String>,
    /// The inventories Ansible reads in it (absolute; listed once per checkout:
    /// see `stage::inventory::repo_inventories`).
    pub inventories: Vec<PathBuf>,
    worktree: Option<Worktree>,
}

/// A worktree removed on drop.
#[derive(Debug)]
struct Worktree {
    clone: PathBuf,
    path: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Worktree {
    fn drop(&mut self) {
        if let Err(e) = git_quiet(&git_args::worktree_remove(&self.clone, &self.path)) {
            tracing::warn!("removing worktree {}: {e}", self.path.display());
        }
    }
}

/// The Ansible repository of a build: synced once, each branch checked out
/// once (the checkouts live as long as the repository).
#[derive(Debug)]
pub struct AnsibleRepo {
    source: AnsibleSource,
    root_subdir: PathBuf,
    cache_dir: PathBuf,
    /// The inventories asked for (relative to the Ansible root; empty: found).
    inventories: Vec<PathBuf>,
    synced: bool,
    /// The remote's default branch, once asked.
    default_branch: Option<String>,
    /// The checkouts made, by branch (`None`: a directory's own state).
    checkouts: Vec<(Option<String>, Arc<Checkout>)>,
}

impl AnsibleRepo {
    /// A repository from `source`, with its Ansible root at `root_subdir` inside it
    /// (empty for the top), git clones kept under `cache_dir`.
    pub fn new(
        source: AnsibleSource,
        root_subdir: impl Into<PathBuf>,
        cache_dir: impl Into<PathBuf>,
    ) -> Self {
        AnsibleRepo {
            source,
            root_subdir: root_subdir.into(),
            cache_dir: cache_dir.into(),
            inventories: Vec::new(),
            synced: false,
            default_branch: None,
            checkouts: Vec::new(),
        }
    }

    /// The inventories Ansible is given, relative to the Ansible root (by
    /// default: from `ansible.cfg`, else the usual names).
    pub fn with_inventories(mut self, inventories: Vec<PathBuf>) -> Self {
        self.inventories = inventories;
        self
    }

    /// The checkouts made so far, in the order they were made.
    pub fn checkouts(&self) -> impl Iterator<Item = &Arc<Checkout>> {
        self.checkouts.iter().map(|(_, c)| c)
    }

    /// Where this repository's source is.
    pub fn source(&self) -> &AnsibleSource {
        &self.source
    }

    fn clone_dir(&self, url: &str) -> PathBuf {
        self.cache_dir.join(cache_name(url))
    }

    /// Clones the repository when it is not in the cache yet, then fetches it.
    /// Does nothing for a directory, or when done already: called once per
    /// build by [`AnsibleRepo::checkout`].
    pub fn sync(&mut self) -> Result<()> {
        if self.synced {
            return Ok(());
        }
        let AnsibleSource::Git(url) = &self.source else {
            self.synced = true;
            return Ok(());
        };
        let clone = self.clone_dir(url);
        std::fs::create_dir_all(&self.cache_dir).at("create", &self.cache_dir)?;
        let _lock = lock(&clone)?;
        if !clone.join("HEAD").exists() && !clone.join(".git").exists() {
            let tmp = tempfile::Builder::new()
                .prefix(".clone-")
                .tempdir_in(&self.cache_dir)
                .at("create a directory in", &self.cache_dir)?;
            let dest = tmp.path().join("repo");
            tracing::info!("cloning Ansible repository {url}");
            git(url, &git_args::clone(url, &dest))?;
            std::fs::rename(&dest, &clone).at("rename into", &clone)?;
        } else {
            tracing::info!("fetching Ansible repository {url}");
            git(url, &git_args::fetch(&clone))?;
        }
        self.synced = true;
        Ok(())
    }

    /// The checkout of `branch` (or the build's default: the remote's default
    /// branch for a git source, what is there for a directory), made on the
    /// first call and the same one after: a branch's commit is the one it had
    /// when this build first asked for it, whatever is pushed meanwhile.
    /// `stage` names the stage in errors.
    pub fn checkout(&mut self, branch: Option<&str>, stage: &str) -> Result<Arc<Checkout>> {
        self.sync()?;
        let key = match &self.source {
            AnsibleSource::Dir(_) => None,
            AnsibleSource::Git(url) => Some(match branch {
                Some(b) => b.to_owned(),
                None => self.default_branch(&url.clone())?,
            }),
        };
        if let Some((_, done)) = self.checkouts.iter().find(|(k, _)| *k == key) {
            if let (None, Some(wanted)) = (&key, branch) {
                // A directory has one branch: the one it is on.
                if done.branch.as_deref() != Some(wanted) {
                    return Err(self.not_that_branch(stage, wanted));
                }
            }
            return Ok(done.clone());
        }
        let mut checkout = match self.source.clone() {
            AnsibleSource::Dir(dir) => self.checkout_dir(&dir, branch, stage)?,
            AnsibleSource::Git(url) => self.checkout_git(&url, key.as_deref(), stage)?,
        };
        checkout.inventories =
            super::inventory::repo_inventories(&checkout.root, &self.inventories)?;
        let checkout = Arc::new(checkout);
        self.checkouts.push((key, checkout.clone()));
        Ok(checkout)
    }

    /// The remote's default branch (asked once).
    fn default_branch(&mut self, url: &str) -> Result<String> {
        if let Some(b) = &self.default_branch {
            return Ok(b.clone());
        }
        let full = git(url, &git_args::default_branch(&self.clone_dir(url)))?;
        let b = full.strip_prefix("origin/").unwrap_or(&full).to_owned();
        self.default_branch = Some(b.clone());
        Ok(b)
    }

    fn not_that_branch(&self, stage: &str, wanted: &str) -> Error {
        let dir = match &self.source {
            AnsibleSource::Dir(d) => d.clone(),
            AnsibleSource::Git(u) => PathBuf::from(u),
        };
        Error::BranchOfDirectory {
            stage: stage.to_owned(),
            branch: wanted.to_owned(),
            dir,
        }
    }

    fn checkout_dir(&self, dir: &Path, branch: Option<&str>, stage: &str) -> Result<Checkout> {
        let meta = std::fs::metadata(dir).at("open the Ansible directory", dir)?;
        if !meta.is_dir() {
            return Err(Error::io(
                "open the Ansible directory",
                dir,
                std::io::Error::new(std::io::ErrorKind::NotADirectory, "not a directory"),
            ));
        }
        let commit = git_quiet(&git_args::head(dir, false)).ok();
        let current = git_quiet(&git_args::head(dir, true)).ok();
        if let Some(wanted) = branch {
            if current.as_deref() != Some(wanted) {
                return Err(self.not_that_branch(stage, wanted));
            }
        }
        Ok(Checkout {
            root: dir.join(&self.root_subdir),
            commit,
            branch: current,
            inventories: Vec::new(),
            worktree: None,
        })
    }

    fn checkout_git(&self, url: &str, branch: Option<&str>, stage: &str) -> Result<Checkout> {
        let clone = self.clone_dir(url);
        let branch = branch.unwrap_or_default().to_owned();
        check_branch_name(&branch).map_err(|reason| Error::BadStage {
            spec: stage.to_owned(),
            reason,
        })?;
        let commit = git_quiet(&git_args::remote_commit(&clone, &branch)).map_err(|_| {
            Error::NoSuchBranch {
                repo: url.to_owned(),
                branch: branch.clone(),
            }
        })?;
        let _lock = lock(&clone)?;
        let _ = git_quiet(&git_args::worktree_prune(&clone));
        let wt_parent = self.cache_dir.join("worktrees");
        std::fs::create_dir_all(&wt_parent).at("create", &wt_parent)?;
        let dir = tempfile::Builder::new()
            .prefix("wt-")
            .tempdir_in(&wt_parent)
            .at("create a directory in", &wt_parent)?;
        let path = dir.path().join("repo");
        git(url, &git_args::worktree_add(&clone, &path, &commit))?;
        tracing::info!("Ansible repository {url} at origin/{branch} = {commit}");
        Ok(Checkout {
            root: path.join(&self.root_subdir),
            commit: Some(commit),
            branch: Some(branch),
            inventories: Vec::new(),
            worktree: Some(Worktree {
                clone,
                path,
                _dir: dir,
            }),
        })
    }
}

impl Checkout {
    /// Whether this checkout is a private worktree (removed when dropped).
    pub fn is_worktree(&self) -> bool {
        self.worktree.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn sources() {
        for url in [
            "https://git.example.org/a/b.git",
            "file:///srv/ansible",
            "git@gitlab.example:ops/ansible.git",
            "ssh://git@h/x",
        ] {
            assert_eq!(
                AnsibleSource::parse(url),
                AnsibleSource::Git(url.into()),
                "{url}"
            );
        }
        for dir in ["/srv/ansible", "ansible", "./a:b", "dir/with@sign:x"] {
            assert_eq!(
                AnsibleSource::parse(dir),
                AnsibleSource::Dir(dir.into()),
                "{dir}"
            );
        }
    }

    #[test]
    fn cache_names() {
        let a = cache_name("https://git.example.org/ops/ansible.git");
        assert!(
            a.starts_with("ansible-") && a.len() == "ansible-".len() + 16,
            "{a}"
        );
        assert_ne!(a, cache_name("https://other.example.org/ops/ansible.git"));
        assert!(cache_name("git@h:ops/my repo").starts_with("my_repo-"));
    }

    fn sh(dir: &Path, script: &str) {
        let st = Command::new("sh")
            .arg("-ec")
            .arg(script)
            .current_dir(dir)
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@example.invalid")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@example.invalid")
            .status()
            .unwrap();
        assert!(st.success(), "{script}");
    }

    #[test]
    fn git_source_clones_fetches_and_checks_out_branches() {
        let tmp = tempfile::tempdir().unwrap();
        let origin = tmp.path().join("origin");
        std::fs::create_dir(&origin).unwrap();
        sh(&origin, "git init -q -b main . && mkdir ans && echo one > ans/site.yml && git add . && git commit -qm one \
                     && git checkout -qb dev && echo dev > ans/site.yml && git commit -qam dev && git checkout -q main");
        let url = format!("file://{}", origin.display());
        let cache = tmp.path().join("cache");
        let mut repo = AnsibleRepo::new(AnsibleSource::Git(url.clone()), "ans", &cache);

        let main = repo.checkout(None, "site.yml").unwrap();
        assert_eq!(main.branch.as_deref(), Some("main"));
        assert_eq!(
            std::fs::read_to_string(main.root.join("site.yml")).unwrap(),
            "one\n"
        );
        let dev = repo.checkout(Some("dev"), "dev@site.yml").unwrap();
        assert_eq!(
            std::fs::read_to_string(dev.root.join("site.yml")).unwrap(),
            "dev\n"
        );
        assert_ne!(main.commit, dev.commit);
        assert_eq!(main.commit.as_ref().unwrap().len(), 40);
        // The default branch named or not: one checkout.
        let main_by_name = repo.checkout(Some("main"), "main@site.yml").unwrap();
        assert!(Arc::ptr_eq(&main, &main_by_name));
        assert_eq!(repo.checkouts().count(), 2);

        let err = repo.checkout(Some("nope"), "nope@site.yml").unwrap_err();
        assert!(matches!(err, Error::NoSuchBranch { .. }), "{err}");

        // A push during the build changes nothing: the branch's checkout is
        // the one made first, at the commit it had then.
        sh(&origin, "echo two > ans/site.yml && git commit -qam two");
        let again = repo.checkout(None, "site.yml").unwrap();
        assert!(Arc::ptr_eq(&main, &again));
        assert_eq!(
            std::fs::read_to_string(again.root.join("site.yml")).unwrap(),
            "one\n"
        );
        let wt = dev.root.clone();
        drop((dev, main, main_by_name, again));
        assert!(wt.exists(), "a worktree lives as long as its repository");
        drop(repo);
        assert!(!wt.exists(), "worktree removed with its repository");

        // The next build fetches: the new commit on main is seen.
        let mut next = AnsibleRepo::new(AnsibleSource::Git(url), "ans", &cache);
        let main2 = next.checkout(None, "site.yml").unwrap();
        assert_eq!(
            std::fs::read_to_string(main2.root.join("site.yml")).unwrap(),
            "two\n"
        );
    }

    #[test]
    fn directory_source() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("plain");
        std::fs::create_dir(&dir).unwrap();
        let mut repo = AnsibleRepo::new(
            AnsibleSource::Dir(dir.clone()),
            "",
            tmp.path().join("cache"),
        );
        let c = repo.checkout(None, "x.yml").unwrap();
        assert_eq!(c.root, dir.join(""));
        assert_eq!(c.commit, None);
        let err = repo
            .checkout(Some("dev"), "dev@x.yml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("file://"), "{err}");

        sh(
            &dir,
            "git init -q -b main . && touch f && git add f && git commit -qm x",
        );
        // A new build sees the directory's new state.
        let mut repo = AnsibleRepo::new(
            AnsibleSource::Dir(dir.clone()),
            "",
            tmp.path().join("cache"),
        );
        let c = repo.checkout(Some("main"), "main@x.yml").unwrap();
        assert_eq!(c.branch.as_deref(), Some("main"));
        assert_eq!(c.commit.as_ref().unwrap().len(), 40);
        let err = repo.checkout(Some("dev"), "dev@x.yml").unwrap_err();
        assert!(matches!(err, Error::BranchOfDirectory { .. }), "{err}");
    }
}
