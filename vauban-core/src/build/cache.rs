//! The step cache: a step's inputs ([`StepInputs`]) hash to a key; the image a
//! step built is named `vauban-cache/step:<key>` in the store (an intermediate
//! name: `vauban images` hides it, gc keeps it), and its layer's history
//! comment holds the key and the inputs' digests, so `vauban inspect` says why
//! a layer is what it is. Two processes never build one key at once:
//! [`get_or_build`] takes the keys' work locks ([`Store::work_lock`]) and looks
//! again, for the stages' images as for the boot files.

use serde::Serialize;
use sha2::{Digest as _, Sha256};
use vauban_oci::store::{Store, StoreLock};
use vauban_oci::{Image, Reference};

use super::inputs::hex;
use super::report::Outcome;
use crate::error::Result;

/// What [`get_or_build`] gives for one wanted key: what the cache had or what
/// was made, or why it could not be made.
pub(crate) type Got<T, V, F> = (T, std::result::Result<(V, Outcome), F>);

/// The lookup → lock → look-again dance of every cached step, written once.
/// Each wanted key is looked up; the keys still missing are locked in key
/// order (two builds on one store never wait on each other) and looked up
/// again (another build may have made them meanwhile); those still missing are
/// given to `make` at once (one Ansible run for every host of a stage), which
/// returns one result per item, in order, and records what it made. The
/// locks are held until `make` is done. Results come in the order wanted.
pub(crate) fn get_or_build<K: Ord + Clone, T, V, E, F>(
    wanted: Vec<(K, T)>,
    lookup: impl Fn(&K) -> std::result::Result<Option<V>, E>,
    lock: impl Fn(&K) -> std::result::Result<StoreLock, E>,
    make: impl FnOnce(Vec<(K, T)>) -> std::result::Result<Vec<(T, std::result::Result<V, F>)>, E>,
) -> std::result::Result<Vec<Got<T, V, F>>, E> {
    let mut out: Vec<Option<Got<T, V, F>>> = wanted.iter().map(|_| None).collect();
    let mut missing = Vec::new();
    for (i, (key, item)) in wanted.into_iter().enumerate() {
        match lookup(&key)? {
            Some(v) => out[i] = Some((item, Ok((v, Outcome::Cached)))),
            None => missing.push((i, key, item)),
        }
    }
    if !missing.is_empty() {
        let mut keys: Vec<&K> = missing.iter().map(|(_, k, _)| k).collect();
        keys.sort();
        keys.dedup();
        let _locks = keys
            .into_iter()
            .map(&lock)
            .collect::<std::result::Result<Vec<_>, E>>()?;
        let mut todo = Vec::new();
        let mut places = Vec::new();
        for (i, key, item) in missing {
            match lookup(&key)? {
                Some(v) => out[i] = Some((item, Ok((v, Outcome::Cached)))),
                None => {
                    places.push(i);
                    todo.push((key, item));
                }
            }
        }
        if !todo.is_empty() {
            for (i, (item, made)) in places.into_iter().zip(make(todo)?) {
                out[i] = Some((item, made.map(|v| (v, Outcome::Built))));
            }
        }
    }
    Ok(out.into_iter().flatten().collect())
}

/// The repository of cache names in the store.
pub(crate) const CACHE_REPOSITORY: &str = "vauban-cache/step";

/// Everything a stage's layer depends on.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct StepInputs {
    /// The vauban version (a new version may build differently).
    pub vauban: &'static str,
    /// The image the stage starts from.
    pub parent: String,
    /// The stage (`branch@playbook.yml`).
    pub stage: String,
    /// The digest of the Ansible tree as this stage reads it.
    pub tree: String,
    /// The git commit of the checkout, when it is one (recorded, not keyed:
    /// the tree digest says what changed).
    #[serde(skip)]
    pub commit: Option<String>,
    /// The host it is built for.
    pub host: String,
    /// The digest of the host's resolved variables and groups.
    pub inventory: String,
    /// The branch.
    pub branch: Option<String>,
    /// `in_conffs_build`.
    pub in_conffs_build: bool,
    /// `--ansible-arg`s.
    pub extra_args: Vec<String>,
    /// The hooks around ansible-playbook.
    pub hooks: (Option<String>, Option<String>),
    /// The Python interpreter of the image.
    pub python: String,
    /// The layer's compression and excluded paths.
    pub layer: String,
}

impl StepInputs {
    /// The cache key: sha256 of the inputs as JSON.
    pub(crate) fn key(&self) -> StepKey {
        let json = serde_json::to_vec(self).expect("inputs serialize");
        StepKey(hex(Sha256::digest(&json).as_slice()))
    }

    /// The history comment of the step's layer.
    pub(crate) fn comment(&self) -> String {
        format!(
            "vauban cache key {}, parent {}, stage {}, host {}, tree {}, inventory {}{}",
            self.key().0,
            self.parent,
            self.stage,
            self.host,
            short(&self.tree),
            short(&self.inventory),
            self.commit
                .as_deref()
                .map(|c| format!(", ansible commit {c}"))
                .unwrap_or_default()
        )
    }

    /// Which inputs differ from `other`'s, by name.
    #[cfg(test)]
    pub(crate) fn changed_from(&self, other: &StepInputs) -> Vec<&'static str> {
        let mut out = Vec::new();
        let mut check = |name, same: bool| {
            if !same {
                out.push(name);
            }
        };
        check("vauban version", self.vauban == other.vauban);
        check("parent image", self.parent == other.parent);
        check("stage", self.stage == other.stage);
        check("host", self.host == other.host);
        check("Ansible files", self.tree == other.tree);
        check("inventory variables", self.inventory == other.inventory);
        check("branch", self.branch == other.branch);
        check(
            "options",
            self.extra_args == other.extra_args
                && self.hooks == other.hooks
                && self.python == other.python
                && self.layer == other.layer
                && self.in_conffs_build == other.in_conffs_build,
        );
        out
    }
}

fn short(digest: &str) -> &str {
    &digest[..digest.len().min(12)]
}

/// A cache key (64 hex digits).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct StepKey(pub String);

impl std::fmt::Display for StepKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl StepKey {
    /// The store name of the image this key built.
    pub(crate) fn reference(&self) -> Reference {
        Reference::parse(&format!("{CACHE_REPOSITORY}:{}", self.0))
            .expect("a hex tag is a valid reference")
    }
}

/// The cache of one store.
pub(crate) struct Cache<'s> {
    store: &'s Store,
    /// `--no-cache`: never serve, still record.
    pub disabled: bool,
}

impl<'s> Cache<'s> {
    /// The cache of `store`.
    pub(crate) fn new(store: &'s Store) -> Self {
        Cache {
            store,
            disabled: false,
        }
    }

    /// The image `key` built, if the store still has it.
    pub(crate) fn lookup(&self, key: &StepKey) -> Result<Option<Image>> {
        if self.disabled {
            return Ok(None);
        }
        self.peek(key)
    }

    /// Like [`Cache::lookup`], even with `--no-cache` (for `--check`).
    pub(crate) fn peek(&self, key: &StepKey) -> Result<Option<Image>> {
        match self.store.image(&key.reference()) {
            Ok(image) => Ok(Some(image)),
            Err(vauban_oci::Error::ImageNotFound(_)) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Waits for and holds the work lock of `key`.
    pub(crate) fn lock(&self, key: &StepKey) -> Result<StoreLock> {
        Ok(self.store.work_lock(&format!("step-{}", key.0))?)
    }

    /// The names recording that `image` is what `key` builds (give them to
    /// [`Store::tag_all`] with the build's other names, or [`Cache::record`]).
    pub(crate) fn name(key: &StepKey, image: &Image) -> (Reference, oci_spec::image::Descriptor) {
        (
            key.reference(),
            crate::stage::intermediate(image.descriptor()),
        )
    }

    /// Records at once that `image` is what `key` builds.
    pub(crate) fn record(&self, key: &StepKey, image: &Image) -> Result<()> {
        self.store.tag_all(&[Cache::name(key, image)])?;
        Ok(())
    }
}

use vauban_oci::oci_spec;

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs() -> StepInputs {
        StepInputs {
            vauban: "0",
            parent: "sha256:aa".into(),
            stage: "base.yml".into(),
            tree: "t".repeat(64),
            commit: None,
            host: "web01".into(),
            inventory: "i".repeat(64),
            branch: None,
            in_conffs_build: false,
            extra_args: vec![],
            hooks: (None, None),
            python: "/usr/bin/python3".into(),
            layer: "gzip".into(),
        }
    }

    #[test]
    fn every_input_changes_the_key() {
        let base = inputs();
        let mut variants = Vec::new();
        let mut v = base.clone();
        v.parent = "sha256:bb".into();
        variants.push(v);
        let mut v = base.clone();
        v.tree = "u".repeat(64);
        variants.push(v);
        let mut v = base.clone();
        v.host = "web02".into();
        variants.push(v);
        let mut v = base.clone();
        v.inventory = "j".repeat(64);
        variants.push(v);
        let mut v = base.clone();
        v.in_conffs_build = true;
        variants.push(v);
        let mut v = base.clone();
        v.branch = Some("main".into());
        variants.push(v);
        let mut v = base.clone();
        v.hooks.0 = Some("true".into());
        variants.push(v);
        for v in &variants {
            assert_ne!(v.key(), base.key(), "{v:?}");
            assert!(!v.changed_from(&base).is_empty());
        }
        // The commit is recorded, not keyed.
        let mut v = base.clone();
        v.commit = Some("abc".into());
        assert_eq!(v.key(), base.key());
        assert!(v.comment().contains("ansible commit abc"));
    }

    /// Cached keys are not made; the rest are made at once, under their
    /// locks, and come back in the order wanted.
    #[test]
    fn get_or_build_makes_only_what_is_missing() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let have = std::cell::RefCell::new(vec!["b".to_string()]);
        let locked = std::cell::RefCell::new(Vec::new());
        let got = get_or_build(
            vec![
                ("c".to_string(), 3),
                ("b".to_string(), 2),
                ("a".to_string(), 1),
            ],
            |k| Ok::<_, crate::Error>(have.borrow().contains(k).then(|| k.clone())),
            |k| {
                locked.borrow_mut().push(k.clone());
                Ok(store.work_lock(&format!("test-{k}"))?)
            },
            |todo| {
                assert_eq!(todo, [("c".to_string(), 3), ("a".to_string(), 1)]);
                Ok(todo
                    .into_iter()
                    .map(|(k, n)| (n, if n == 3 { Err("boom") } else { Ok(k) }))
                    .collect())
            },
        )
        .unwrap();
        assert_eq!(*locked.borrow(), ["a", "c"], "locked in key order");
        assert_eq!(
            got,
            [
                (3, Err("boom")),
                (2, Ok(("b".to_string(), Outcome::Cached))),
                (1, Ok(("a".to_string(), Outcome::Built))),
            ]
        );
        // All cached: nothing locked, nothing made.
        locked.borrow_mut().clear();
        have.borrow_mut().push("a".into());
        let got = get_or_build(
            vec![("a".to_string(), ())],
            |k| Ok::<_, crate::Error>(have.borrow().contains(k).then(|| k.clone())),
            |_| unreachable!("nothing to lock"),
            |_| -> crate::Result<Vec<((), Result<String, ()>)>> { unreachable!("nothing to make") },
        )
        .unwrap();
        assert_eq!(got, [((), Ok(("a".to_string(), Outcome::Cached)))]);
        assert!(locked.borrow().is_empty());
    }

    #[test]
    fn a_key_is_a_store_name() {
        let key = inputs().key();
        assert_eq!(key.0.len(), 64);
        assert_eq!(
            key.reference().to_string(),
            format!("{CACHE_REPOSITORY}:{}", key.0)
        );
    }
}
