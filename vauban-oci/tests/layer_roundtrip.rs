//! Layer round trips: tree -> layer -> apply gives the same tree; packing is
//! deterministic; excludes; blob verification (digest, size, trailing bytes,
//! multi-member gzip, diff_id); the Debian fixture repacked and applied equals
//! `tar -x` of the same tarball (with throughput printed).

mod common;

use std::fs;
use std::io::Write;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;
use std::time::Instant;

use common::*;
use rustix::fs::{AtFlags, FileType, Mode, Timespec, Timestamps, CWD};
use vauban_oci::layer::{
    apply_blob, pack, repack_tar, ApplyOptions, BlobInfo, Compression, LayerSource, PackOptions,
    PackedLayer,
};
use vauban_oci::{Digest, Error};

fn set_mtime(p: &Path, secs: i64) {
    let t = Timespec {
        tv_sec: secs,
        tv_nsec: 0,
    };
    rustix::fs::utimensat(
        CWD,
        p,
        &Timestamps {
            last_access: t,
            last_modification: t,
        },
        AtFlags::SYMLINK_NOFOLLOW,
    )
    .unwrap();
}

fn write(p: &Path, data: &str, mode: u32) {
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, data).unwrap();
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
}

fn chown(p: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::lchown(p, Some(uid), Some(gid)).unwrap();
}

/// A capability v2 value: cap_net_raw permitted and effective.
fn cap_net_raw_v2() -> Vec<u8> {
    let mut v = (0x0200_0000u32 | 1).to_le_bytes().to_vec();
    v.extend_from_slice(&(1u32 << 13).to_le_bytes());
    v.extend_from_slice(&[0; 12]);
    v
}

/// A tree with everything a layer must keep.
fn build_full_tree(root: &Path) {
    for d in ["bin", "etc", "usr/bin", "usr/lib", "dev", "var/log"] {
        fs::create_dir_all(root.join(d)).unwrap();
    }
    fs::create_dir(root.join("tmp")).unwrap();
    fs::set_permissions(root.join("tmp"), fs::Permissions::from_mode(0o1777)).unwrap();
    write(&root.join("bin/ping"), "ping", 0o4755);
    set_xattr(
        &root.join("bin/ping"),
        "security.capability",
        &cap_net_raw_v2(),
    );
    write(&root.join("usr/bin/sg"), "sg", 0o2755);
    chown(&root.join("usr/bin/sg"), 0, 50);
    write(&root.join("etc/owned"), "owned", 0o640);
    chown(&root.join("etc/owned"), 1000, 1001);
    write(&root.join("etc/notes"), "notes", 0o644);
    set_xattr(
        &root.join("etc/notes"),
        "user.comment",
        b"line1\nline2\0binary",
    );
    set_xattr(&root.join("etc"), "user.dir", b"yes");
    fs::create_dir(root.join("etc/private")).unwrap();
    fs::set_permissions(root.join("etc/private"), fs::Permissions::from_mode(0o700)).unwrap();
    chown(&root.join("etc/private"), 33, 33);
    symlink("/usr/lib", root.join("lib")).unwrap();
    symlink("../usr/bin/sg", root.join("bin/sg")).unwrap();
    symlink("/nowhere/at/all", root.join("dangling")).unwrap();
    chown(&root.join("dangling"), 7, 8);
    write(&root.join("usr/bin/a"), "same inode", 0o755);
    fs::hard_link(root.join("usr/bin/a"), root.join("usr/bin/b")).unwrap();
    fs::hard_link(root.join("usr/bin/a"), root.join("bin/c")).unwrap();
    let dev = root.join("dev");
    rustix::fs::mknodat(
        CWD,
        dev.join("null"),
        FileType::CharacterDevice,
        Mode::from_raw_mode(0o666),
        rustix::fs::makedev(1, 3),
    )
    .unwrap();
    rustix::fs::mknodat(
        CWD,
        dev.join("loop0"),
        FileType::BlockDevice,
        Mode::from_raw_mode(0o660),
        rustix::fs::makedev(7, 0),
    )
    .unwrap();
    rustix::fs::mknodat(
        CWD,
        dev.join("fifo"),
        FileType::Fifo,
        Mode::from_raw_mode(0o600),
        0,
    )
    .unwrap();
    fs::set_permissions(dev.join("null"), fs::Permissions::from_mode(0o666)).unwrap();
    fs::set_permissions(dev.join("loop0"), fs::Permissions::from_mode(0o660)).unwrap();
    fs::set_permissions(dev.join("fifo"), fs::Permissions::from_mode(0o600)).unwrap();
    write(
        &root.join(format!("long/{}", "n".repeat(150))),
        "long name",
        0o644,
    );
    let deep = (0..5)
        .map(|i| format!("{i}{}", "d".repeat(59)))
        .collect::<Vec<_>>()
        .join("/");
    write(
        &root.join(&deep).join("file-at-more-than-255"),
        "deep",
        0o600,
    );
    symlink(
        format!("/{deep}/{}", "t".repeat(40)),
        root.join("long-target"),
    )
    .unwrap();
    write(&root.join("var/log/big"), &"x".repeat(3 << 20), 0o644);
    // Distinct mtimes, children before parents.
    let snap = snapshot(root);
    for (i, p) in snap.nodes.keys().rev().enumerate() {
        set_mtime(&root.join(p), 1_500_000_000 + i as i64 * 1000);
    }
}

fn pack_to_vec(src: LayerSource<'_>, opts: &PackOptions) -> (Vec<u8>, PackedLayer) {
    let mut blob = Vec::new();
    let layer = pack(src, opts, &mut blob).unwrap();
    assert_eq!(layer.size, blob.len() as u64);
    assert_eq!(layer.digest, Digest::of_bytes(&blob));
    (blob, layer)
}

fn info<'a>(layer: &'a PackedLayer) -> BlobInfo<'a> {
    BlobInfo {
        media_type: &layer.media_type,
        digest: &layer.digest,
        size: layer.size,
        diff_id: &layer.diff_id,
    }
}

#[test]
fn tree_round_trips_through_every_compression() {
    require_root("owners, device nodes and security.capability in the round trip");
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    fs::create_dir(&src).unwrap();
    build_full_tree(&src);
    let expected = snapshot(&src);
    assert!(expected.nodes.keys().any(|p| p.as_os_str().len() > 255));
    for compression in [Compression::Gzip, Compression::Zstd, Compression::None] {
        let (blob, layer) = pack_to_vec(
            LayerSource::Tree(&src),
            &PackOptions {
                compression,
                ..Default::default()
            },
        );
        assert_eq!(layer.media_type, compression.media_type());
        let tar_bytes = decompress(&layer.media_type, &blob);
        assert_eq!(Digest::of_bytes(&tar_bytes), layer.diff_id);
        assert_eq!(list_tar(&tar_bytes).len() as u64, layer.entries);
        let dst = tmp.path().join(format!("dst-{compression:?}"));
        fs::create_dir(&dst).unwrap();
        let report = apply_blob(&blob[..], &info(&layer), &dst, &ApplyOptions::default()).unwrap();
        assert_eq!(
            report.skipped_devices + report.skipped_owners + report.skipped_xattrs,
            0,
            "{report:?}"
        );
        assert_same(
            &expected,
            &snapshot(&dst),
            &format!("round trip {compression:?}"),
        );
    }
}

/// A small tree anyone can make; `order` changes the creation order.
fn simple_tree(root: &Path, reverse: bool) {
    let mut names = vec!["a", "b", "c/d", "c/e", "f/g/h"];
    if reverse {
        names.reverse();
    }
    for n in names {
        write(&root.join(n), n, 0o644);
    }
    symlink("a", root.join("link")).unwrap();
    fs::hard_link(root.join("a"), root.join("a2")).unwrap();
}

#[test]
fn packing_is_deterministic_with_source_date_epoch() {
    let tmp = tempfile::tempdir().unwrap();
    let (one, two) = (tmp.path().join("one"), tmp.path().join("two"));
    fs::create_dir(&one).unwrap();
    fs::create_dir(&two).unwrap();
    simple_tree(&one, false);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    simple_tree(&two, true);
    for d in [&one, &two] {
        fs::set_permissions(d, fs::Permissions::from_mode(0o755)).unwrap();
    }
    let opts = |compression| PackOptions {
        compression,
        source_date_epoch: Some(1_000_000),
        exclude: vec![],
    };
    let (_, a) = pack_to_vec(LayerSource::Tree(&one), &opts(Compression::Gzip));
    let (_, b) = pack_to_vec(LayerSource::Tree(&two), &opts(Compression::Gzip));
    let (_, a2) = pack_to_vec(LayerSource::Tree(&one), &opts(Compression::Gzip));
    assert_eq!(a, a2, "same tree twice");
    assert_eq!(a, b, "same content made in another order at another time");
    let (_, z) = pack_to_vec(LayerSource::Tree(&one), &opts(Compression::Zstd));
    assert_eq!(
        z.diff_id, a.diff_id,
        "the uncompressed stream does not depend on compression"
    );
    assert_ne!(z.digest, a.digest);
    // Without the epoch, mtimes differ, so do digests.
    let (_, c) = pack_to_vec(LayerSource::Tree(&one), &PackOptions::default());
    let (_, d) = pack_to_vec(LayerSource::Tree(&two), &PackOptions::default());
    assert_ne!(c.diff_id, d.diff_id);
    // Entries are sorted, whatever the directory order.
    let (blob, _) = pack_to_vec(LayerSource::Tree(&two), &opts(Compression::None));
    let names: Vec<String> = list_tar(&blob).into_iter().map(|e| e.0).collect();
    assert_eq!(
        names,
        ["./", "a", "a2", "b", "c/", "c/d", "c/e", "f/", "f/g/", "f/g/h", "link"]
    );
}

#[test]
fn excludes_drop_subtrees_or_content() {
    let tmp = tempfile::tempdir().unwrap();
    for n in [
        "var/log/syslog",
        "var/lib/keep",
        "tmp/x",
        "tmp/y/z",
        "root/.ansible/c",
    ] {
        write(&tmp.path().join(n), n, 0o644);
    }
    let opts = PackOptions {
        compression: Compression::None,
        exclude: vec!["var/log".into(), "/tmp/*".into(), "root/.ansible".into()],
        ..Default::default()
    };
    let (blob, _) = pack_to_vec(LayerSource::Tree(tmp.path()), &opts);
    let names: Vec<String> = list_tar(&blob).into_iter().map(|e| e.0).collect();
    assert_eq!(
        names,
        ["./", "root/", "tmp/", "var/", "var/lib/", "var/lib/keep"]
    );
    // The same excludes in a repack.
    let (blob2, _) = {
        let mut out = Vec::new();
        let l = repack_tar(
            &blob[..],
            &PackOptions {
                exclude: vec!["var/lib/keep".into()],
                ..opts
            },
            &mut out,
        )
        .unwrap();
        (out, l)
    };
    let names: Vec<String> = list_tar(&blob2).into_iter().map(|e| e.0).collect();
    assert_eq!(names, ["./", "root/", "tmp/", "var/", "var/lib/"]);
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

#[test]
fn blobs_are_verified_through_their_end() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    simple_tree(
        &{
            fs::create_dir(&src).unwrap();
            src.clone()
        },
        false,
    );
    let (blob, layer) = pack_to_vec(LayerSource::Tree(&src), &PackOptions::default());
    let tar_bytes = decompress(&layer.media_type, &blob);
    let target = |n: &str| {
        let d = tmp.path().join(n);
        fs::create_dir(&d).unwrap();
        d
    };
    let opts = ApplyOptions {
        owners: vauban_oci::layer::Owners::BestEffort,
        ..Default::default()
    };
    apply_blob(&blob[..], &info(&layer), &target("ok"), &opts).unwrap();

    let wrong = Digest::of_bytes(b"not it");
    let r = apply_blob(
        &blob[..],
        &BlobInfo {
            digest: &wrong,
            ..info(&layer)
        },
        &target("digest"),
        &opts,
    );
    assert!(matches!(r, Err(Error::DigestMismatch { .. })), "{r:?}");

    for size in [layer.size - 1, layer.size + 1] {
        let r = apply_blob(
            &blob[..],
            &BlobInfo {
                size,
                ..info(&layer)
            },
            &target(&format!("size{size}")),
            &opts,
        );
        assert!(matches!(r, Err(Error::SizeMismatch { .. })), "{r:?}");
    }

    // Trailing garbage: refused when announced (gzip cannot parse it), and a
    // size mismatch when not.
    let mut trailing = blob.clone();
    trailing.extend_from_slice(b"garbage after the last member");
    let d = Digest::of_bytes(&trailing);
    let r = apply_blob(
        &trailing[..],
        &BlobInfo {
            digest: &d,
            size: trailing.len() as u64,
            ..info(&layer)
        },
        &target("trail1"),
        &opts,
    );
    assert!(r.is_err(), "trailing garbage accepted");
    let r = apply_blob(&trailing[..], &info(&layer), &target("trail2"), &opts);
    assert!(matches!(r, Err(Error::SizeMismatch { .. })), "{r:?}");

    // Multi-member gzip, split at an odd place: fine.
    let mut multi = gzip(&tar_bytes[..777]);
    multi.extend(gzip(&tar_bytes[777..]));
    let d = Digest::of_bytes(&multi);
    apply_blob(
        &multi[..],
        &BlobInfo {
            digest: &d,
            size: multi.len() as u64,
            ..info(&layer)
        },
        &target("multi"),
        &opts,
    )
    .unwrap();

    // Wrong diff_id.
    let r = apply_blob(
        &blob[..],
        &BlobInfo {
            diff_id: &wrong,
            ..info(&layer)
        },
        &target("diffid"),
        &opts,
    );
    assert!(
        matches!(&r, Err(Error::DigestMismatch { what, .. }) if what.contains("diff_id")),
        "{r:?}"
    );

    // Padding after the end-of-archive marker counts in the diff_id.
    let mut padded = tar_bytes.clone();
    padded.extend_from_slice(&[0; 10240]);
    let gz = gzip(&padded);
    let (d, p) = (Digest::of_bytes(&gz), Digest::of_bytes(&padded));
    apply_blob(
        &gz[..],
        &BlobInfo {
            digest: &d,
            size: gz.len() as u64,
            diff_id: &p,
            media_type: &layer.media_type,
        },
        &target("padded"),
        &opts,
    )
    .unwrap();
}

fn rss_peak_kib() -> u64 {
    let s = fs::read_to_string("/proc/self/status").unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn debian_fixture_repacks_and_applies_like_tar() {
    require_root("the Debian tree has root-owned files and device nodes to compare with tar -x");
    let input = fixture("debian.tar");
    let mb = fs::metadata(&input).unwrap().len() as f64 / 1e6;
    let tmp = tempfile::tempdir_in(input.parent().unwrap()).unwrap();
    let mut layers = Vec::new();
    for compression in [Compression::Gzip, Compression::Zstd] {
        let out = tmp.path().join(format!("layer-{compression:?}"));
        let t = Instant::now();
        let layer = repack_tar(
            fs::File::open(&input).unwrap(),
            &PackOptions {
                compression,
                ..Default::default()
            },
            fs::File::create(&out).unwrap(),
        )
        .unwrap();
        let s = t.elapsed().as_secs_f64();
        eprintln!(
            "repack {compression:?}: {mb:.0} MB in {s:.2} s = {:.0} MB/s, blob {:.0} MB",
            mb / s,
            layer.size as f64 / 1e6
        );
        layers.push((out, layer));
    }
    assert_eq!(layers[0].1.diff_id, layers[1].1.diff_id);
    let expected = tmp.path().join("tar-x");
    fs::create_dir(&expected).unwrap();
    let st = std::process::Command::new("tar")
        .args(["--xattrs", "--xattrs-include=*", "--numeric-owner", "-xpf"])
        .arg(&input)
        .arg("-C")
        .arg(&expected)
        .status()
        .unwrap();
    assert!(st.success());
    let expected = snapshot(&expected);
    for (blob, layer) in &layers {
        let dst = tmp.path().join(format!("apply-{}", layer.digest.hex()));
        fs::create_dir(&dst).unwrap();
        let t = Instant::now();
        let report = apply_blob(
            fs::File::open(blob).unwrap(),
            &info(layer),
            &dst,
            &ApplyOptions::default(),
        )
        .unwrap();
        let s = t.elapsed().as_secs_f64();
        eprintln!(
            "apply {}: {} entries in {s:.2} s = {:.0} MB/s (uncompressed)",
            layer.media_type,
            report.entries,
            mb / s
        );
        assert_same(&expected, &snapshot(&dst), "Debian: apply vs tar -x");
    }
    eprintln!(
        "peak RSS of the test process: {} MiB",
        rss_peak_kib() / 1024
    );
}

#[test]
fn gnu_and_posix_tarballs_repack_like_the_tree() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    let long_dir = format!("{}/{}", "l".repeat(120), "m".repeat(120));
    write(&src.join(&long_dir).join("file"), "deep", 0o640);
    write(&src.join("x"), "x", 0o4755);
    set_xattr(&src.join("x"), "user.bin", b"a\nb=c\0");
    symlink(format!("/{long_dir}/file"), src.join("long-link")).unwrap();
    fs::hard_link(src.join(&long_dir).join("file"), src.join("hard-to-long")).unwrap();
    let snap = snapshot(&src);
    for (p, _) in snap.nodes.iter().rev() {
        set_mtime(&src.join(p), 1_600_000_000);
    }
    let expected = snapshot(&src);
    for format in ["--format=gnu", "--format=posix"] {
        let tarball = tmp.path().join("t.tar");
        let st = std::process::Command::new("tar")
            .args([
                format,
                "--xattrs",
                "--xattrs-include=user.*",
                "--numeric-owner",
                "-cf",
            ])
            .arg(&tarball)
            .arg("-C")
            .arg(&src)
            .arg(".")
            .status()
            .unwrap();
        assert!(st.success());
        let mut blob = Vec::new();
        let layer = repack_tar(
            vauban_oci::layer::open_tarball(&tarball).unwrap(),
            &PackOptions::default(),
            &mut blob,
        )
        .unwrap();
        let dst = tmp.path().join(format!("dst{format}"));
        fs::create_dir(&dst).unwrap();
        let opts = ApplyOptions {
            owners: vauban_oci::layer::Owners::BestEffort,
            ..Default::default()
        };
        apply_blob(&blob[..], &info(&layer), &dst, &opts).unwrap();
        let mut found = snapshot(&dst);
        let mut want = expected.clone();
        if format == "--format=gnu" {
            // GNU format carries no xattrs.
            for n in want.nodes.values_mut().chain(found.nodes.values_mut()) {
                n.xattrs.clear();
            }
        }
        // The root's mode comes from the tempdir; compare the content only.
        want.nodes.remove(Path::new(""));
        found.nodes.remove(Path::new(""));
        assert_same(&want, &found, format);
    }
}
