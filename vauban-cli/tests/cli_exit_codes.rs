//! The exit codes of the CLI, as a table of real cases: a command missing from
//! the image (127) or not executable (126), a hostile layer met by `run` (in
//! the sandbox helper) and by `unpack` (in vauban itself) with the same code, a
//! registry refusing an anonymous push (1) and a corrupt store (2, vauban's).

mod cli_support;

#[path = "../../vauban-oci/tests/registry_common/server.rs"]
#[allow(dead_code)]
mod registry_server;

use std::path::Path;
use std::process::{Command, Stdio};
use vauban_oci::layer::PackedLayer;

use cli_support::{fixture, vauban_bin};
use vauban_oci::image::HistoryEntry;
use vauban_oci::store::Store;
use vauban_oci::Reference;

fn vauban(store: &Path, args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(vauban_bin())
        .arg("--store")
        .arg(store)
        .args(args)
        .env_remove("RUST_LOG")
        .env_remove("VAUBAN_STORE")
        .env("HOME", store.parent().unwrap())
        .env("XDG_RUNTIME_DIR", store.parent().unwrap())
        .env("XDG_CACHE_HOME", store.parent().unwrap())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A tar stream whose one entry climbs out of the root (`../escaped`): written
/// by hand, the `tar` crate refuses to make one.
fn hostile_tar() -> Vec<u8> {
    let mut header = tar::Header::new_ustar();
    header.as_old_mut().name[..10].copy_from_slice(b"../escaped");
    header.set_size(5);
    header.set_mode(0o644);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_cksum();
    let mut out = header.as_bytes().to_vec();
    out.extend_from_slice(b"evil\n");
    out.resize(out.len() + (512 - 5), 0);
    out.extend_from_slice(&[0u8; 1024]);
    out
}

/// Adds an uncompressed layer holding `tar` on top of `base` as image `name`.
fn add_raw_layer(store: &Store, base: &str, tar: &[u8], name: &str) {
    let base = store.image(&Reference::parse(base).unwrap()).unwrap();
    let (digest, size) = store.write_blob(tar).unwrap();
    let layer = PackedLayer {
        entries: 0,
        digest: digest.clone(),
        size,
        diff_id: digest,
        media_type: "application/vnd.oci.image.layer.v1.tar".into(),
    };
    let history = HistoryEntry {
        created_by: "a hostile layer".into(),
        created: vauban_oci::image::created_now(),
        comment: None,
    };
    vauban_oci::image::commit(
        store,
        Some(&base),
        &[layer],
        &history,
        &Reference::parse(name).unwrap(),
    )
    .unwrap();
}

#[test]
fn exit_codes_table() {
    let dir = tempfile::tempdir().unwrap();
    let store_dir = dir.path().join("store");
    let bb = fixture("busybox.tar");
    let (code, err) = vauban(&store_dir, &["import", bb.to_str().unwrap(), "-t", "bb"]);
    assert_eq!(code, Some(0), "{err}");
    {
        let store = Store::open(&store_dir).unwrap();
        add_raw_layer(&store, "bb", &hostile_tar(), "hostile");
        add_raw_layer(&store, "bb", &hostile_tar(), "hostile2");
    }
    let registry = registry_server::Registry::with_auth();
    let anonymous = format!("{}/vauban/bb:1", registry.host());
    let unpack_dir = dir.path().join("unpacked");
    let cases: Vec<(&str, Vec<&str>, i32, &str)> = vec![
        (
            "a command missing from the image",
            vec!["run", "bb", "--", "/no/such"],
            127,
            "/no/such",
        ),
        (
            "a command that is not executable",
            vec!["run", "bb", "--", "/etc/passwd"],
            126,
            "/etc/passwd",
        ),
        (
            "a hostile layer met by run",
            vec!["run", "hostile", "--", "true"],
            1,
            "../escaped",
        ),
        (
            "the same layer met by unpack",
            vec!["unpack", "hostile2", unpack_dir.to_str().unwrap()],
            1,
            "../escaped",
        ),
        (
            "a registry refusing an anonymous push",
            vec!["push", "bb", &anonymous, "--tls-verify=false"],
            1,
            "asks for credentials",
        ),
    ];
    for (what, args, want, needle) in &cases {
        let (code, err) = vauban(&store_dir, args);
        assert_eq!(code, Some(*want), "{what}: {err}");
        assert!(err.contains(needle), "{what}: {needle:?} not in {err}");
        assert!(!err.contains("panicked"), "{what}: {err}");
    }
    // A corrupt blob of the store is vauban's problem, not the input's.
    let image = {
        let store = Store::open(&store_dir).unwrap();
        store.image(&Reference::parse("bb").unwrap()).unwrap()
    };
    let layer = vauban_oci::image::digest_of(&image.layers()[0]).unwrap();
    let blob = store_dir.join("blobs/sha256").join(layer.hex());
    let mut bytes = std::fs::read(&blob).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&blob, bytes).unwrap();
    let (code, err) = vauban(
        &store_dir,
        &["unpack", "bb", dir.path().join("u2").to_str().unwrap()],
    );
    assert_eq!(code, Some(2), "a corrupt store: {err}");
}
