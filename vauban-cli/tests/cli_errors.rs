//! User errors exit 1 with one clear line on stderr, never a panic: unknown
//! image, bad reference, missing file, corrupt tarball, usage errors; and no
//! escape sequence when the output is not a terminal.

mod cli_support;

use std::path::Path;

use cli_support::vauban;

/// Runs vauban and checks: exit code 1, exactly one stderr line containing
/// every `needles`, no panic text.
fn assert_user_error(store: &Path, args: &[&str], needles: &[&str]) {
    let out = vauban(store, args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "vauban {args:?}: {stderr}");
    assert!(
        !stderr.contains("panicked"),
        "vauban {args:?} panicked: {stderr}"
    );
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "vauban {args:?}: not one line:\n{stderr}");
    for n in needles {
        assert!(
            lines[0].contains(n),
            "vauban {args:?}: {n:?} not in {:?}",
            lines[0]
        );
    }
}

#[test]
fn unknown_image() {
    let store = tempfile::tempdir().unwrap();
    let s = store.path();
    assert_user_error(s, &["inspect", "nope"], &["nope:latest", "not found"]);
    assert_user_error(
        s,
        &["unpack", "nope:1", "/tmp/x-never"],
        &["nope:1", "not found"],
    );
    assert_user_error(s, &["tag", "nope", "other"], &["nope:latest", "not found"]);
    assert_user_error(s, &["rm", "nope"], &["nope:latest", "not found"]);
    assert!(!Path::new("/tmp/x-never").exists());
}

#[test]
fn bad_reference() {
    let store = tempfile::tempdir().unwrap();
    let s = store.path();
    assert_user_error(
        s,
        &["inspect", "Debian"],
        &["\"Debian\"", "invalid image reference"],
    );
    assert_user_error(s, &["rm", "a:b:c"], &["\"a:b:c\""]);
    assert_user_error(s, &["import", "/etc/hostname", "--tag", "x:"], &["\"x:\""]);
}

#[test]
fn missing_file() {
    let store = tempfile::tempdir().unwrap();
    assert_user_error(
        store.path(),
        &["import", "/nonexistent/rootfs.tar", "--tag", "x"],
        &["/nonexistent/rootfs.tar"],
    );
}

#[test]
fn corrupt_tarballs() {
    let store = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    // gzip magic followed by garbage; a tar header with a bad checksum;
    // a real tar cut in the middle of a file.
    let bad_gz = dir.path().join("bad.tar.gz");
    std::fs::write(&bad_gz, [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 1, 2, 3, 4, 5]).unwrap();
    let bad_tar = dir.path().join("bad.tar");
    std::fs::write(&bad_tar, vec![b'x'; 1024]).unwrap();
    let cut = dir.path().join("cut.tar");
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(100_000);
    h.set_mode(0o644);
    h.set_entry_type(tar::EntryType::Regular);
    b.append_data(&mut h, "etc/big", &vec![7u8; 100_000][..])
        .unwrap();
    let full = b.into_inner().unwrap();
    std::fs::write(&cut, &full[..50_000]).unwrap();
    for path in [&bad_gz, &bad_tar, &cut] {
        let p = path.to_str().unwrap();
        assert_user_error(store.path(), &["import", p, "--tag", "x"], &[p]);
    }
    // Nothing was named, nothing left behind.
    let out = cli_support::vauban_ok(store.path(), &["images"]);
    assert_eq!(out.lines().count(), 1, "{out}");
    assert_eq!(
        std::fs::read_dir(store.path().join("tmp")).unwrap().count(),
        0
    );
    assert_eq!(
        std::fs::read_dir(store.path().join("blobs/sha256"))
            .unwrap()
            .count(),
        0
    );
}

#[test]
fn usage_errors() {
    let store = tempfile::tempdir().unwrap();
    let out = vauban(store.path(), &["no-such-command"]);
    assert_eq!(out.status.code(), Some(1));
    let out = vauban(store.path(), &["import", "/etc/hostname"]);
    assert_eq!(out.status.code(), Some(1), "--tag is required");
    let out = vauban(
        store.path(),
        &[
            "import",
            "/etc/hostname",
            "--tag",
            "x",
            "--compression",
            "lz4",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let out = vauban(store.path(), &["--help"]);
    assert_eq!(out.status.code(), Some(0));
}

/// Help, usage errors, logs and error lines carry no escape sequence when
/// stdout and stderr are not terminals (clap's colours, tracing's, bars).
#[test]
fn no_escape_sequence_when_not_a_terminal() {
    let store = tempfile::tempdir().unwrap();
    let cases: [&[&str]; 5] = [
        &["--help"],
        &["build", "--help"],
        &["no-such-command"],
        &["import", "/etc/hostname"],
        &["-vv", "inspect", "nope"],
    ];
    for args in cases {
        let out = vauban(store.path(), args);
        for (name, bytes) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
            assert!(
                !bytes.contains(&0x1b),
                "vauban {args:?}: an escape sequence on {name}: {:?}",
                String::from_utf8_lossy(bytes)
            );
        }
        assert!(!out.stdout.is_empty() || !out.stderr.is_empty(), "{args:?}");
    }
}

#[test]
fn unpack_refuses_a_non_empty_directory() {
    let store = tempfile::tempdir().unwrap();
    let src = tempfile::tempdir().unwrap();
    std::fs::write(src.path().join("hello"), b"hi").unwrap();
    cli_support::vauban_ok(
        store.path(),
        &["import", src.path().to_str().unwrap(), "--tag", "small"],
    );
    let target = tempfile::tempdir().unwrap();
    std::fs::write(target.path().join("keep"), b"mine").unwrap();
    let t = target.path().to_str().unwrap();
    assert_user_error(store.path(), &["unpack", "small", t], &[t, "not empty"]);
    assert_eq!(std::fs::read(target.path().join("keep")).unwrap(), b"mine");
}
