//! Tests of the conffs export: images made of hand-written layers in a temp
//! store (gzip, zstd and plain, with whiteouts, opaque directories, hard
//! links, xattrs), exported, and the archive read back.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::OnceLock;

use vauban_oci::image::{build, created_now, HistoryEntry};
use vauban_oci::layer::MEDIA_TYPE_TAR_GZIP;
use vauban_oci::layer::{repack_tar, Compression, PackOptions, PackedLayer, MEDIA_TYPE_TAR};
use vauban_oci::store::Store;
use vauban_oci::{Digest, Image};

use super::*;
use crate::keys::{KeySecret, KeyStore, PRIVATE_MODE, PUBLIC_MODE};
use vauban_oci::tar_writer::pax_record;

const HOST: &str = "web01";

/// One entry of a test layer: a table of cases, one line each.
pub(crate) enum E<'a> {
    Dir(&'a str),
    File(&'a str, &'a [u8]),
    /// A file with mode, uid/gid, mtime and one xattr.
    Rich(&'a str, &'a [u8], u32, u64, u64, (&'a str, &'a str)),
    Symlink(&'a str, &'a str),
    HardLink(&'a str, &'a str),
    /// Deletes the path from the layers below.
    Whiteout(&'a str),
    /// Hides the lower content of the directory.
    Opaque(&'a str),
}

pub(crate) fn tar_of(entries: &[E<'_>]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let header = |ty: tar::EntryType, mode: u32, size: u64| {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(ty);
        h.set_mode(mode);
        h.set_size(size);
        h.set_mtime(1_600_000_000);
        h.set_uid(0);
        h.set_gid(0);
        h
    };
    let file = |b: &mut tar::Builder<Vec<u8>>, name: &str, data: &[u8]| {
        let mut h = header(tar::EntryType::Regular, 0o644, data.len() as u64);
        b.append_data(&mut h, name, data).unwrap();
    };
    for e in entries {
        match e {
            E::Dir(p) => {
                let mut h = header(tar::EntryType::Directory, 0o755, 0);
                b.append_data(&mut h, format!("{p}/"), &[][..]).unwrap();
            }
            E::File(p, data) => file(&mut b, p, data),
            E::Rich(p, data, mode, uid, mtime, (xname, xvalue)) => {
                let mut pax = Vec::new();
                pax_record(
                    &mut pax,
                    format!("SCHILY.xattr.{xname}").as_bytes(),
                    xvalue.as_bytes(),
                );
                let mut x = header(tar::EntryType::XHeader, 0o644, pax.len() as u64);
                b.append_data(&mut x, "././@PaxHeader", &pax[..]).unwrap();
                let mut h = header(tar::EntryType::Regular, *mode, data.len() as u64);
                h.set_uid(*uid);
                h.set_gid(*uid);
                h.set_mtime(*mtime);
                b.append_data(&mut h, p, *data).unwrap();
            }
            E::Symlink(p, t) => {
                let mut h = header(tar::EntryType::Symlink, 0o777, 0);
                b.append_link(&mut h, p, t).unwrap();
            }
            E::HardLink(p, t) => {
                let mut h = header(tar::EntryType::Link, 0o644, 0);
                b.append_link(&mut h, p, t).unwrap();
            }
            E::Whiteout(p) => {
                let (dir, name) = p.rsplit_once('/').unwrap_or(("", p));
                file(&mut b, &format!("{dir}/.wh.{name}"), b"");
            }
            E::Opaque(d) => file(&mut b, &format!("{d}/.wh..wh..opq"), b""),
        }
    }
    b.into_inner().unwrap()
}

/// Stores a layer of `entries`, compressed as `compression`.
pub(crate) fn layer(store: &Store, compression: Compression, entries: &[E<'_>]) -> PackedLayer {
    let tar = tar_of(entries);
    if compression == Compression::Zstd {
        // Through vauban's own encoder (it refuses whiteouts: none here).
        let opts = PackOptions {
            compression,
            ..PackOptions::default()
        };
        let mut w = store.blob_writer().unwrap();
        let packed = repack_tar(&tar[..], &opts, &mut w).unwrap();
        w.commit(Some(&packed.digest)).unwrap();
        return packed;
    }
    let (blob, media_type) = match compression {
        Compression::Gzip => {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gz.write_all(&tar).unwrap();
            (gz.finish().unwrap(), MEDIA_TYPE_TAR_GZIP)
        }
        _ => (tar.clone(), MEDIA_TYPE_TAR),
    };
    let (digest, size) = store.write_blob(&blob).unwrap();
    PackedLayer {
        digest,
        size,
        diff_id: Digest::of_bytes(&tar),
        media_type: media_type.into(),
        entries: entries.len() as u64,
    }
}

pub(crate) fn image(store: &Store, base: Option<&Image>, layers: &[PackedLayer]) -> Image {
    let history = HistoryEntry {
        created_by: "test".into(),
        created: created_now(),
        comment: None,
    };
    build(store, base, layers, &history).unwrap()
}

/// The keys of [`HOST`], generated once per test run (RSA takes seconds).
fn keys() -> &'static HostKeys {
    static STORE: OnceLock<KeyStore> = OnceLock::new();
    STORE
        .get_or_init(|| {
            let dir = tempfile::tempdir().unwrap();
            let identity = age::x25519::Identity::generate();
            use age::secrecy::ExposeSecret;
            let secret = KeySecret::identity(identity.to_string().expose_secret()).unwrap();
            let mut store = KeyStore::open(dir.path().join("keys.age"), secret).unwrap();
            store.host_keys(HOST).unwrap();
            store
        })
        .get(HOST)
        .unwrap()
}

/// An entry read back from an archive.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Got {
    kind: tar::EntryType,
    mode: u32,
    uid: u64,
    mtime: u64,
    link: Option<String>,
    data: Vec<u8>,
    xattrs: Vec<(String, String)>,
}

/// The archive's entries by name, and the names in order.
fn read_back(path: &Path) -> (BTreeMap<String, Got>, Vec<String>) {
    let gz = flate2::read::GzDecoder::new(std::fs::File::open(path).unwrap());
    let mut ar = tar::Archive::new(gz);
    let mut map = BTreeMap::new();
    let mut order = Vec::new();
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let name = String::from_utf8(e.path_bytes().into_owned()).unwrap();
        let mut xattrs = Vec::new();
        if let Some(pax) = e.pax_extensions().unwrap() {
            for x in pax {
                let x = x.unwrap();
                if let Some(n) = x.key().unwrap().strip_prefix("SCHILY.xattr.") {
                    xattrs.push((n.to_owned(), x.value().unwrap().to_owned()));
                }
            }
        }
        let h = e.header().clone();
        let link = e
            .link_name_bytes()
            .map(|l| String::from_utf8(l.into_owned()).unwrap());
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        let got = Got {
            kind: h.entry_type(),
            mode: h.mode().unwrap(),
            uid: h.uid().unwrap(),
            mtime: h.mtime().unwrap(),
            link,
            data,
            xattrs,
        };
        assert!(!name.starts_with('/'), "absolute name {name}");
        assert!(map.insert(name.clone(), got).is_none(), "{name} twice");
        order.push(name);
    }
    (map, order)
}

/// A master of two layers (gzip, zstd) and a host of two (plain, gzip) on it.
struct Scenario {
    dir: tempfile::TempDir,
    store: Store,
    master: Image,
    host: Image,
}

fn scenario(host_layers: &[&[E<'_>]]) -> Scenario {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("store")).unwrap();
    let m1 = layer(
        &store,
        Compression::Gzip,
        &[
            E::Dir("etc"),
            E::File("etc/motd", b"master motd"),
            E::File("etc/keep", b"kept"),
            E::Dir("opt/app"),
            E::File("opt/app/old", b"old"),
            E::Dir("var/log"),
        ],
    );
    let m2 = layer(
        &store,
        Compression::Zstd,
        &[E::File("etc/issue", b"Debian")],
    );
    let master = image(&store, None, &[m1, m2]);
    let compressions = [Compression::None, Compression::Gzip];
    let layers: Vec<PackedLayer> = host_layers
        .iter()
        .enumerate()
        .map(|(i, entries)| layer(&store, compressions[i % 2], entries))
        .collect();
    let host = image(&store, Some(&master), &layers);
    Scenario {
        dir,
        store,
        master,
        host,
    }
}

impl Scenario {
    fn export(&self, limit: u64) -> (Result<ConffsReport>, std::path::PathBuf) {
        let dest = self.dir.path().join("out/bars/conffs-web01.tgz");
        let opts = ConffsOptions {
            size_limit: limit,
            hostname: HOST.into(),
        };
        let r = export_conffs(&self.store, &self.master, &self.host, keys(), &opts, &dest);
        (r, dest)
    }
}

const LOWER: &[E<'static>] = &[
    E::Dir("etc"),
    E::File("etc/app.conf", b"v1"),
    E::File("etc/gone-later", b"made by the host, then removed"),
    E::File("var/log/ansible.log", b"log"),
    E::File("var/cache/apt/pkgcache.bin", b"cache"),
    E::File("root/.ansible/tmp/x", b"x"),
    E::File("root/ansible/y", b"y"),
    E::File("var/lib/apt/lists/deb.debian.org_dists", b"lists"),
    E::File("var/lib/apt/extended_states", b"kept"),
    E::File("toslash/etc/hosts", b"toslash hosts"),
    E::File("etc/hosts", b"plain hosts"),
    E::File("data/orig", b"content"),
    E::HardLink("data/link", "data/orig"),
    E::File("data/shadowed", b"A"),
    E::HardLink("data/copy", "data/shadowed"),
    E::HardLink("data/alias", "etc/keep"),
    E::Symlink("usr/bin/tool", "../lib/tool"),
    E::Rich(
        "etc/secret",
        b"s3cret",
        0o640,
        1000,
        1_234_567,
        ("user.origin", "vauban"),
    ),
];

const UPPER: &[E<'static>] = &[
    E::File("etc/app.conf", b"v2"),
    E::Whiteout("etc/motd"),
    E::Whiteout("etc/gone-later"),
    E::Opaque("opt/app"),
    E::File("opt/app/new", b"new"),
    E::File("data/shadowed", b"B"),
    E::File(
        "etc/ssh/ssh_host_ed25519_key",
        b"made by the openssh postinst",
    ),
    E::File("etc/hostname", b"builder\n"),
];

#[test]
fn the_archive_holds_the_newest_host_files_only_with_toslash_keys_and_hostname() {
    let s = scenario(&[LOWER, UPPER]);
    let (report, dest) = s.export(DEFAULT_CONFFS_SIZE_LIMIT);
    let report = report.unwrap();
    let (got, order) = read_back(&dest);
    let data = |n: &str| String::from_utf8(got[n].data.clone()).unwrap();

    // Only the host's layers, newest version first.
    for master_only in ["etc/keep", "etc/issue", "opt/app/old", "etc/motd"] {
        assert!(!got.contains_key(master_only), "{master_only}");
    }
    assert_eq!(data("etc/app.conf"), "v2");
    assert_eq!(data("opt/app/new"), "new");
    assert_eq!(data("data/shadowed"), "B");
    assert!(!got.contains_key("etc/gone-later"));
    // Left out.
    for name in got.keys() {
        for prefix in [
            "var/log",
            "var/cache",
            "root/ansible",
            "root/.ansible",
            "var/lib/apt/lists",
            "toslash",
        ] {
            assert!(
                !super::names::is_at_or_under(
                    name.trim_end_matches('/').as_bytes(),
                    prefix.as_bytes()
                ),
                "{name}"
            );
        }
    }
    assert_eq!(data("var/lib/apt/extended_states"), "kept");
    // toslash applied and winning.
    assert_eq!(data("etc/hosts"), "toslash hosts");
    // Host identity.
    assert_eq!(data("etc/hostname"), "web01\n");
    assert_eq!(got["etc/hostname"].uid, 0);
    for key in keys().files() {
        let g = &got[&format!("etc/ssh/{}", key.path)];
        assert_eq!(
            (g.kind, g.mode, g.uid),
            (tar::EntryType::Regular, key.mode, 0)
        );
        assert_eq!(g.data, key.contents);
        assert!(key.mode == PRIVATE_MODE || key.mode == PUBLIC_MODE);
    }
    // Metadata, symlinks, xattrs.
    let secret = &got["etc/secret"];
    assert_eq!(
        (secret.mode, secret.uid, secret.mtime),
        (0o640, 1000, 1_234_567)
    );
    assert_eq!(
        secret.xattrs,
        [("user.origin".to_owned(), "vauban".to_owned())]
    );
    let tool = &got["usr/bin/tool"];
    assert_eq!(
        (tool.kind, tool.link.as_deref()),
        (tar::EntryType::Symlink, Some("../lib/tool"))
    );
    // Hard links: kept when the target is in the archive (and before the link);
    // the content otherwise (shadowed target, master target).
    let link = &got["data/link"];
    assert_eq!(
        (link.kind, link.link.as_deref()),
        (tar::EntryType::Link, Some("data/orig"))
    );
    let pos = |n: &str| order.iter().position(|o| o == n).unwrap();
    assert!(pos("data/orig") < pos("data/link"));
    assert_eq!(
        (got["data/copy"].kind, data("data/copy")),
        (tar::EntryType::Regular, "A".into())
    );
    assert_eq!(
        (got["data/alias"].kind, data("data/alias")),
        (tar::EntryType::Regular, "kept".into())
    );
    // Deletions of the master reported, not of the host's own files.
    assert_eq!(report.deletions, ["etc/motd", "opt/app/*"]);
    // The report and the file.
    assert_eq!(report.entries, order.len() as u64);
    assert_eq!(report.size, std::fs::metadata(&dest).unwrap().len());
    assert_eq!(report.path, dest);
    let mode = std::fs::metadata(&dest).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the host's keys are in it");
    let files: Vec<_> = std::fs::read_dir(dest.parent().unwrap()).unwrap().collect();
    assert_eq!(files.len(), 1, "a temp file was left");

    // dracut's det_archive: gzip, then a tar whose first header has `ustar\0`.
    let mut head = [0u8; 263];
    flate2::read::GzDecoder::new(std::fs::File::open(&dest).unwrap())
        .read_exact(&mut head)
        .unwrap();
    assert_eq!(&head[257..], b"ustar\0");
    if let Ok(keep) = std::env::var("VAUBAN_TEST_KEEP_CONFFS") {
        std::fs::copy(&dest, keep).unwrap();
    }

    // It unpacks, hard links resolved.
    let out = tempfile::tempdir().unwrap();
    let gz = flate2::read::GzDecoder::new(std::fs::File::open(&dest).unwrap());
    tar::Archive::new(gz).unpack(out.path()).unwrap();
    assert_eq!(
        std::fs::read(out.path().join("data/link")).unwrap(),
        b"content"
    );
}

/// The directories the sandbox's mount points leave in every layer (the
/// parents of `policy-rc.d` and of the init-functions hook, copied up) are
/// not shipped empty; with something of the host's under them, they are.
#[test]
fn the_sandboxs_directories_are_not_shipped_empty() {
    let names = |layers: &[&[E<'_>]]| {
        let s = scenario(layers);
        let (report, dest) = s.export(DEFAULT_CONFFS_SIZE_LIMIT);
        report.unwrap();
        read_back(&dest).1
    };
    let sandbox_only: &[E<'_>] = &[
        E::Dir("usr"),
        E::Dir("usr/sbin"),
        E::Dir("usr/lib"),
        E::Dir("usr/lib/lsb"),
        E::Dir("usr/lib/lsb/init-functions.d"),
        E::Dir("dev"),
        E::Dir("etc"),
        E::Dir("etc/vauban"),
        E::File("etc/vauban/host-value", b"v"),
        E::Dir("srv/empty"),
    ];
    let got = names(&[sandbox_only]);
    for gone in ["usr/", "usr/sbin/", "usr/lib/", "usr/lib/lsb/", "dev/"] {
        assert!(!got.iter().any(|n| n == gone), "{gone} in {got:?}");
    }
    for kept in ["etc/", "etc/vauban/", "etc/vauban/host-value", "srv/empty/"] {
        assert!(got.iter().any(|n| n == kept), "{kept} not in {got:?}");
    }
    let got = names(&[sandbox_only, &[E::File("usr/sbin/tool", b"#!/bin/sh\n")]]);
    for kept in ["usr/", "usr/sbin/", "usr/sbin/tool"] {
        assert!(got.iter().any(|n| n == kept), "{kept} not in {got:?}");
    }
    assert!(!got.iter().any(|n| n == "usr/lib/"), "{got:?}");
}

#[test]
fn a_hostname_in_toslash_is_kept() {
    let s = scenario(&[
        &[E::File("toslash/etc/hostname", b"custom\n")],
        &[E::File("etc/hostname", b"x\n")],
    ]);
    let (report, dest) = s.export(DEFAULT_CONFFS_SIZE_LIMIT);
    report.unwrap();
    let (got, _) = read_back(&dest);
    assert_eq!(got["etc/hostname"].data, b"custom\n");
}

/// `len` bytes that do not compress: a simple xorshift stream.
pub(crate) fn noise(len: usize) -> Vec<u8> {
    let mut x: u64 = 88172645463325252;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[test]
fn an_archive_at_the_limit_is_refused_naming_the_biggest_files_and_leaves_nothing() {
    let noise = noise(300_000);
    let s = scenario(&[
        &[E::File("srv/big.bin", &noise), E::File("srv/small", b"s")],
        &[],
    ]);
    let (report, dest) = s.export(100 * 1024);
    let err = report.unwrap_err();
    let Error::TooBig {
        host,
        size,
        limit,
        biggest,
    } = &err
    else {
        panic!("{err}");
    };
    assert_eq!((host.as_str(), *limit), (HOST, 100 * 1024));
    assert!(*size > 300_000, "{size}");
    assert_eq!(biggest[0], ("srv/big.bin".to_owned(), 300_000));
    assert!(biggest.len() <= 5);
    let message = err.to_string();
    assert!(
        message.contains(HOST) && message.contains("/srv/big.bin"),
        "{message}"
    );
    assert_eq!(err.blame(), crate::error::Blame::User);
    let dir = dest.parent().unwrap();
    assert_eq!(
        std::fs::read_dir(dir).unwrap().count(),
        0,
        "something left in {dir:?}"
    );
}

#[test]
fn a_host_image_not_built_on_the_master_is_refused() {
    let s = scenario(&[&[E::File("a", b"a")]]);
    let other = image(
        &s.store,
        None,
        &[layer(&s.store, Compression::Gzip, &[E::File("b", b"b")])],
    );
    let dest = s.dir.path().join("conffs-web01.tgz");
    let err = export_conffs(
        &s.store,
        &other,
        &s.host,
        keys(),
        &ConffsOptions::new(HOST),
        &dest,
    )
    .unwrap_err();
    assert!(matches!(err, Error::NotOnTop { .. }), "{err}");
    assert_eq!(err.blame(), crate::error::Blame::User);
    assert!(!dest.exists());
}

#[test]
fn keys_of_another_host_are_refused() {
    let s = scenario(&[&[E::File("a", b"a")]]);
    let dest = s.dir.path().join("conffs-web02.tgz");
    let err = export_conffs(
        &s.store,
        &s.master,
        &s.host,
        keys(),
        &ConffsOptions::new("web02"),
        &dest,
    )
    .unwrap_err();
    assert!(matches!(err, Error::WrongKeys { .. }), "{err}");
}
