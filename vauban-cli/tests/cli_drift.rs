//! `vauban drift` and a drift stacked on an image in `vauban diff`: an
//! upper dir with a changed file, a new one, a secret and an excluded path
//! packed as a layer (the secret and the excluded path left out, the file
//! private), then compared with `IMAGE+DRIFT` against the image.

use std::os::unix::fs::PermissionsExt;

mod cli_support;

use cli_support::{fixture, vauban, vauban_ok};

#[test]
fn a_drift_is_packed_without_its_secrets_and_diffs_over_its_image() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let busybox = fixture("busybox.tar");
    vauban_ok(
        &store,
        &["import", busybox.to_str().unwrap(), "--tag", "bb:1"],
    );

    let upper = dir.path().join("upper");
    let write = |rel: &str, text: &str| {
        let p = upper.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    };
    write("etc/motd", "changed since boot\n");
    write("etc/new.conf", "a=1\n");
    write("etc/shadow", "root:$6$secret:1::::::\n");
    write("var/spool/private/x", "left out\n");
    let drift = dir.path().join("web01.drift.tgz");
    let out = vauban(
        &store,
        &[
            "drift",
            "--upper",
            upper.to_str().unwrap(),
            "-o",
            drift.to_str().unwrap(),
            "--exclude",
            "/var/spool/private",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mode = std::fs::metadata(&drift).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "a drift holds what the host's users wrote");

    let names = vauban_ok(
        &store,
        &[
            "diff",
            "--name-status",
            "bb:1",
            &format!("bb:1+{}", drift.display()),
        ],
    );
    let names: Vec<&str> = names.lines().collect();
    assert!(names.contains(&"A\t/etc/new.conf"), "{names:?}");
    assert!(
        !names
            .iter()
            .any(|l| l.contains("shadow") || l.contains("spool/private")),
        "a secret or an excluded path in the drift: {names:?}"
    );

    // A limit it cannot fit: refused, nothing left behind.
    let small = dir.path().join("small.tgz");
    let out = vauban(
        &store,
        &[
            "drift",
            "--upper",
            upper.to_str().unwrap(),
            "-o",
            small.to_str().unwrap(),
            "--max-size",
            "10",
        ],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--max-size"), "{err}");
    assert!(!small.exists());
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(".drift-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // No upper dir: a clear error naming it.
    let out = vauban(&store, &["drift", "--upper", "/no/such/dir", "-o", "x.tgz"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/no/such/dir"));
}
