//! The sandbox scenarios shared by `sandbox_run` (root in CI) and
//! `rootless_sandbox` (the unprivileged test user).

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use vauban_core::sandbox::{exit_code, CommitOptions, Program, Sandbox, SandboxOptions};
use vauban_oci::image::{HistoryEntry, NewLayer};
use vauban_oci::layer::{repack_tar, PackOptions};
use vauban_oci::store::Store;
use vauban_oci::Reference;

fn fixture(name: &str) -> PathBuf {
    let dir = std::env::var_os("VAUBAN_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/fixtures"));
    let path = dir.join(name);
    assert!(
        path.is_file(),
        "fixture {} missing: run `cargo xtask fixtures`",
        path.display()
    );
    path
}

fn import_busybox(store: &Store) -> Reference {
    let tar = std::fs::File::open(fixture("busybox.tar")).unwrap();
    let mut w = store.blob_writer().unwrap();
    let packed = repack_tar(
        std::io::BufReader::new(tar),
        &PackOptions::default(),
        &mut w,
    )
    .unwrap();
    w.commit(Some(&packed.digest)).unwrap();
    let layer = NewLayer {
        digest: packed.digest,
        size: packed.size,
        diff_id: packed.diff_id,
        media_type: packed.media_type,
    };
    let history = HistoryEntry {
        created_by: "test import".into(),
        created: vauban_oci::image::created_now(),
        comment: None,
    };
    let name = Reference::parse("bb").unwrap();
    vauban_oci::image::commit(store, None, &[layer], &history, &name).unwrap();
    name
}

fn sh(script: &str) -> Program {
    Program::Chroot(vec!["sh".into(), "-c".into(), script.into()])
}

/// Path -> (uid, gid, content) of the last layer of `image`.
fn last_layer(store: &Store, image: &vauban_oci::Image) -> BTreeMap<String, (u64, u64, Vec<u8>)> {
    let digest = vauban_oci::image::digest_of(image.layers().last().unwrap()).unwrap();
    let blob = std::io::BufReader::new(store.open_blob(&digest).unwrap());
    let mut archive = tar::Archive::new(flate2::read::MultiGzDecoder::new(blob));
    let mut out = BTreeMap::new();
    for e in archive.entries().unwrap() {
        let mut e = e.unwrap();
        let path = e
            .path()
            .unwrap()
            .to_string_lossy()
            .trim_end_matches('/')
            .to_string();
        let (uid, gid) = (e.header().uid().unwrap(), e.header().gid().unwrap());
        let mut content = Vec::new();
        e.read_to_end(&mut content).unwrap();
        out.insert(path, (uid, gid, content));
    }
    out
}

/// Prepare, two runs, a host program, a failing run, commit; checks the layer.
pub fn run_twice_then_commit() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let base = import_busybox(&store);
    let opts = SandboxOptions {
        hostname: "web01".into(),
        env: vec![("MARK".into(), "m1".into())],
    };
    let sandbox = Sandbox::prepare(&store, &base, opts).unwrap();

    let first = "set -e; test \"$(hostname)\" = web01; test \"$MARK\" = m1; \
                 echo one > /created; chown 2001:2001 /created; rm /etc/group; \
                 rm -rf /root; mkdir /root; echo x > /root/new; echo built > /etc/hostname";
    let status = sandbox.run(&sh(first)).unwrap();
    assert!(status.success(), "{status}");
    // A second run: fresh namespaces, same upper dir.
    let status = sandbox
        .run(&sh(
            "set -e; test \"$(cat /created)\" = one; echo two >> /created",
        ))
        .unwrap();
    assert!(status.success(), "{status}");
    // A host program sees the overlay at merged_dir().
    let merged = sandbox.merged_dir();
    let check = format!(
        "test -f {0}/bin/busybox && test -f {0}/created",
        merged.display()
    );
    let status = sandbox
        .run(&Program::Host(vec!["/bin/sh".into(), "-c".into(), check]))
        .unwrap();
    assert!(
        status.success(),
        "the host program did not see the overlay: {status}"
    );
    let status = sandbox.run(&sh("exit 5")).unwrap();
    assert_eq!(exit_code(status), 5);

    let name = Reference::parse("bb-changed").unwrap();
    let image = sandbox
        .commit(&CommitOptions::new(name.clone(), "test"))
        .unwrap();
    assert_eq!(image.layers().len(), 2);
    let layer = last_layer(&store, &image);
    let names: Vec<&String> = layer.keys().collect();
    assert_eq!(layer["created"], (2001, 2001, b"one\ntwo\n".to_vec()));
    assert!(layer.contains_key("etc/.wh.group"), "{names:?}");
    assert!(layer.contains_key("root/.wh..wh..opq"), "{names:?}");
    assert_eq!(layer["root/new"].2, b"x\n");
    assert_eq!(layer["etc/hostname"].2, b"built\n");
    for absent in ["dev", "proc", "sys", "run", "etc/hosts", "etc/resolv.conf"] {
        assert!(!layer.contains_key(absent), "{absent} in {names:?}");
    }
    let history = image.config.history().as_ref().unwrap();
    assert_eq!(
        history.last().unwrap().created_by().as_deref(),
        Some("test")
    );
    let tmp: Vec<_> = std::fs::read_dir(store.tmp_dir()).unwrap().collect();
    assert!(tmp.is_empty(), "sandbox dir left in STORE/tmp");
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(&dir.path().to_string_lossy().into_owned()));
    drop(store);
    let path = dir.keep();
    vauban_core::sandbox::in_user_namespace("remove the test store", || {
        std::fs::remove_dir_all(&path).map_err(|e| vauban_core::Error::io("remove", &path, e))
    })
    .unwrap();
}

/// A missing image is named in the error and leaves nothing in STORE/tmp.
pub fn failed_prepare_leaves_nothing_and_missing_image_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let err = Sandbox::prepare(
        &store,
        &Reference::parse("nope").unwrap(),
        SandboxOptions::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("nope"), "{err}");
    assert_eq!(std::fs::read_dir(store.tmp_dir()).unwrap().count(), 0);
}
