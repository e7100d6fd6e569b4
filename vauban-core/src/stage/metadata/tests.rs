//! `/imginfo` and `/packages` against samples of the original's, written the way
//! its scripts wrote them (`vauban-kubernetes.sh`, `kubernetes_controller_resources.py`):
//! what reads one reads the other.

use std::collections::BTreeMap;
use std::path::Path;

use chrono::TimeZone;

use super::*;
use crate::config::yaml::{self, Node, Value};

/// `/imginfo` as the original's Kubernetes engine left it after two stages: the
/// head of `kubernetes_create_parent_rootfs`, an entry of
/// `kubernetes_end_stage_for_host` per stage (each `echo -e`'d, so with the
/// newline `echo` adds).
const ORIGINAL_IMGINFO: &str = concat!(
    "\n---\n\ndebian_release: bookworm\nvauban_branch: main\nvauban_sha1: 5eaebe3\n",
    "date: 2024-05-02T1530\nstages:\n\n",
    "\n    - date: 2024-05-02T15:31:12+00:00\n",
    "      playbook: base.yml\n",
    "      hostname: master-base\n",
    "      source: debian-bookworm/iso\n",
    "      ansible-sha1: 9f1c0ab\n",
    "      ansible-branch: master\n",
    "      build-engine: kubernetes\n",
    "      vauban-sha1: 5eaebe3\n\n",
    "\n    - date: 2024-05-02T15:40:03+00:00\n",
    "      playbook: web.yml\n",
    "      hostname: master-web\n",
    "      source: master-base\n",
    "      ansible-sha1: 9f1c0ab\n",
    "      ansible-branch: master\n",
    "      build-engine: kubernetes\n",
    "      vauban-sha1: 5eaebe3\n\n",
);

/// `/packages` as the original left it: debootstrap's list
/// (`from_scratch_metadata_and_leave`), then a stage's `diff` of `apt list
/// --installed` through its `sed`.
const ORIGINAL_PACKAGES: &str = concat!(
    "\n---\npackages:\n\n- source: debootstrap\n  hostname: bookworm\n  packages: |\n",
    "          + adduser/stable,now 3.134 all [installed]\n",
    "          + curl/stable,now 7.88.1-10 amd64 [installed]\n",
    "\n- playbook: fixme\n  hostname: master-base\n  packages: |\n",
    "          - curl/stable,now 7.88.1-10 amd64 [installed]\n",
    "          + curl/stable,now 7.88.1-10+deb12u5 amd64 [installed]\n",
    "          + hello/stable,now 2.10-3 amd64 [installed]\n",
);

fn parse(text: &str) -> Node {
    yaml::parse(text, Path::new("/imginfo"))
        .expect("valid YAML")
        .expect("a document")
}

fn map(node: &Node) -> BTreeMap<String, Node> {
    let Value::Map(entries) = &node.value else {
        panic!("not a mapping: {node:?}");
    };
    entries
        .iter()
        .map(|e| (e.key.clone(), e.value.clone()))
        .collect()
}

fn list(node: &Node) -> Vec<Node> {
    let Value::Seq(items) = &node.value else {
        panic!("not a list: {node:?}");
    };
    items.clone()
}

fn value_of(node: &Node) -> &str {
    let Value::Str(s) = &node.value else {
        panic!("not a scalar: {node:?}");
    };
    s
}

fn date(h: u32, m: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 25, h, m, s).unwrap()
}

/// Ours: a head, then two stages.
fn ours() -> String {
    let head = ImgInfoHead {
        debian_release: Some("bookworm".into()),
        date: date(22, 30, 0),
    };
    let first = ImgInfo {
        date: date(22, 30, 5),
        playbook: "base.yml".into(),
        hostname: "master-base".into(),
        source: Some("debian-12".into()),
        source_digest: "sha256:abcd".into(),
        git_sha1: Some("0123abcdef".into()),
        git_branch: Some("main".into()),
    };
    let second = ImgInfo {
        playbook: "web.yml".into(),
        hostname: "master-web".into(),
        source: Some("master-base".into()),
        git_sha1: None,
        git_branch: None,
        ..first.clone()
    };
    head.to_yaml() + &first.to_yaml() + &second.to_yaml()
}

#[test]
fn imginfo_reads_as_the_originals() {
    let original = map(&parse(ORIGINAL_IMGINFO));
    let text = ours();
    let ours = map(&parse(&text));
    for key in original.keys() {
        assert!(ours.contains_key(key), "no `{key}` in:\n{text}");
    }
    assert_eq!(value_of(&ours["debian_release"]), "bookworm");
    assert_eq!(value_of(&ours["date"]), "2026-11-25T2230");
    let original_stage = map(&list(&original["stages"])[0]);
    let stages = list(&ours["stages"]);
    assert_eq!(stages.len(), 2);
    for stage in &stages {
        let stage = map(stage);
        for key in original_stage.keys() {
            assert!(stage.contains_key(key), "no `{key}` in a stage of:\n{text}");
        }
    }
    let first = map(&stages[0]);
    for (key, value) in [
        ("date", "2026-11-25T22:30:05+00:00"),
        ("playbook", "base.yml"),
        ("hostname", "master-base"),
        ("source", "debian-12"),
        ("ansible-sha1", "0123abcdef"),
        ("ansible-branch", "main"),
        ("build-engine", "vauban"),
        ("source-digest", "sha256:abcd"),
        ("git-sha1", "0123abcdef"),
    ] {
        assert_eq!(value_of(&first[key]), value, "{key}");
    }
    // Plain, as the original wrote them: `grep playbook: | cut -d' ' -f2` works.
    for key in [
        "playbook",
        "hostname",
        "source",
        "ansible-sha1",
        "build-engine",
    ] {
        assert!(first[key].plain, "{key} is quoted in:\n{text}");
    }
    assert!(text.contains("\n      playbook: base.yml\n"), "{text}");
    let second = map(&stages[1]);
    assert!(matches!(second["ansible-sha1"].value, Value::Null));
    assert_eq!(value_of(&second["source"]), "master-base");
}

#[test]
fn an_entry_appends_to_an_image_of_the_original() {
    let entry = ImgInfo {
        date: date(1, 2, 3),
        playbook: "extra.yml".into(),
        hostname: "web01".into(),
        source: Some("master-web".into()),
        source_digest: "sha256:ef".into(),
        git_sha1: None,
        git_branch: None,
    };
    let stages = list(&map(&parse(&(ORIGINAL_IMGINFO.to_owned() + &entry.to_yaml())))["stages"]);
    assert_eq!(stages.len(), 3);
    assert_eq!(value_of(&map(&stages[2])["playbook"]), "extra.yml");
}

#[test]
fn packages_read_as_the_originals() {
    let original = map(&parse(ORIGINAL_PACKAGES));
    let before = concat!(
        "Listing...\n",
        "adduser/now 3.134 all [installed,local]\n",
        "curl/now 7.88.1-10 amd64 [installed,local]\n",
        "old/now 1 all [installed,local]\n",
    );
    // After an apt-get update: the suites change, not the packages.
    let after = concat!(
        "Listing...\n",
        "adduser/stable,stable,now 3.134 all [installed]\n",
        "curl/stable,now 7.88.1-10+deb12u5 amd64 [installed]\n",
        "hello/stable,now 2.10-3 amd64 [installed,automatic]\n",
    );
    let diff = package_diff(before, after);
    assert_eq!(
        diff,
        [
            "- curl/now 7.88.1-10 amd64 [installed,local]",
            "+ curl/stable,now 7.88.1-10+deb12u5 amd64 [installed]",
            "+ hello/stable,now 2.10-3 amd64 [installed,automatic]",
            "- old/now 1 all [installed,local]",
        ]
    );
    assert!(package_diff(before, before).is_empty());
    let text = packages_head("debian-12", "master-base", Some(before))
        + &packages_entry("base.yml", "master-base", Some(&diff))
        + &packages_entry("web.yml", "master-web", Some(&[]))
        + &packages_entry("x.yml", "master-web", None);
    let ours = map(&parse(&text));
    let (original, ours) = (list(&original["packages"]), list(&ours["packages"]));
    assert_eq!(ours.len(), 4);
    for (theirs, mine) in [(&original[0], &ours[0]), (&original[1], &ours[1])] {
        let (theirs, mine) = (map(theirs), map(mine));
        assert_eq!(
            theirs.keys().collect::<Vec<_>>(),
            mine.keys().collect::<Vec<_>>()
        );
    }
    let head = map(&ours[0]);
    assert_eq!(
        value_of(&head["packages"]),
        "+ adduser/now 3.134 all [installed,local]\n+ curl/now 7.88.1-10 amd64 [installed,local]\n\
         + old/now 1 all [installed,local]\n"
    );
    assert_eq!(value_of(&head["source"]), "debian-12");
    let stage = map(&ours[1]);
    assert_eq!(value_of(&stage["packages"]), diff.join("\n") + "\n");
    // The original's lines, indented as its `sed` indented them.
    assert!(
        text.contains("\n          + hello/stable,now 2.10-3 amd64 [installed,automatic]\n"),
        "{text}"
    );
    assert_eq!(value_of(&map(&ours[2])["packages"]), "");
    assert!(matches!(map(&ours[3])["packages"].value, Value::Null));
}

#[test]
fn values_are_plain_only_when_yaml_reads_them_back() {
    for plain in [
        "base.yml",
        "web01",
        "master-web/web01/base.yml",
        "0123abc",
        "main",
    ] {
        assert_eq!(scalar(plain), plain);
    }
    for quoted in [
        "",
        "yes",
        "No",
        "null",
        "12",
        "1e5",
        "0x1f",
        "1.0",
        "12:30",
        "a b",
        "a: b\n- c\"",
        "sha256:ab",
        "-x",
        "2024-01-01",
    ] {
        assert_eq!(
            scalar(quoted),
            serde_json::Value::from(quoted).to_string(),
            "{quoted}"
        );
    }
}

#[test]
fn long_texts_go_in_pieces_under_the_kernels_limit() {
    let line = "          + a-package-of-some-length/stable,now 1.2.3-4 amd64 [installed]\n";
    let listing = line.repeat(3000);
    let write = MetadataWrite {
        imginfo_head: "h".into(),
        imginfo_entry: "e".into(),
        packages_head: listing.clone(),
        packages_entry: "x".into(),
        hostname: None,
    };
    let argv = write.argv();
    assert_eq!(argv[..2], ["/bin/sh", "-ec"]);
    let pieces: usize = argv[7].parse().unwrap();
    assert!(pieces > 1);
    assert!(argv.iter().all(|a| a.len() <= CHUNK));
    assert_eq!(argv[8..8 + pieces].concat(), listing);
    assert!(argv[8..8 + pieces].iter().all(|p| p.ends_with('\n')));
    assert_eq!(argv[8 + pieces..], ["x"]);
}

#[test]
fn the_listing_runs_apt_and_writes_no_cache() {
    let argv = package_list_argv();
    assert!(argv[2].contains("apt list --installed"));
    assert!(argv[2].contains("Dir::Cache::pkgcache="));
}
