//! Crash safety of the store: blobs appear only when verified and committed,
//! `index.json` is replaced whole, the index lock excludes a second locker and
//! gc refuses to run while another handle has the store open.

use std::io::Write;
use std::path::Path;
use vauban_oci::layer::PackedLayer;

use vauban_oci::image::{self, HistoryEntry};
use vauban_oci::store::Store;
use vauban_oci::{Digest, Error, Reference};

fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn new_image(store: &Store, name: &str, content: &[u8]) -> vauban_oci::Image {
    let (digest, size) = store.write_blob(content).unwrap();
    let layer = PackedLayer {
        entries: 0,
        digest,
        size,
        diff_id: Digest::of_bytes(&[content, b"-plain"].concat()),
        media_type: "application/vnd.oci.image.layer.v1.tar+gzip".into(),
    };
    let history = HistoryEntry {
        created_by: format!("test {name}"),
        created: chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
        comment: None,
    };
    let r = Reference::parse(name).unwrap();
    image::commit(store, None, &[layer], &history, &r).unwrap()
}

#[test]
fn dropped_writer_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    {
        let mut w = store.blob_writer().unwrap();
        w.write_all(&vec![7u8; 1 << 20]).unwrap();
        assert_eq!(
            entries(&store.tmp_dir()).len(),
            1,
            "the temp file exists while writing"
        );
    }
    assert!(entries(&store.blobs_dir()).is_empty());
    assert!(entries(&store.tmp_dir()).is_empty());
}

#[test]
fn wrong_digest_is_refused_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut w = store.blob_writer().unwrap();
    w.write_all(b"hello").unwrap();
    let wrong = Digest::of_bytes(b"hullo");
    match w.commit(Some(&wrong)) {
        Err(Error::DigestMismatch {
            expected, found, ..
        }) => {
            assert_eq!(expected, wrong);
            assert_eq!(found, Digest::of_bytes(b"hello"));
        }
        other => panic!("expected a digest mismatch, got {other:?}"),
    }
    assert!(entries(&store.blobs_dir()).is_empty());
    assert!(entries(&store.tmp_dir()).is_empty());
    assert!(!store.has_blob(&wrong));
}

#[test]
fn committed_blob_is_verified_and_readable() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut w = store.blob_writer().unwrap();
    w.write_all(b"hello").unwrap();
    let right = Digest::of_bytes(b"hello");
    let (d, n) = w.commit(Some(&right)).unwrap();
    assert_eq!((d.clone(), n), (right.clone(), 5));
    assert_eq!(entries(&store.blobs_dir()), vec![right.hex().to_string()]);
    assert!(entries(&store.tmp_dir()).is_empty());
    assert_eq!(store.read_blob(&d, 5).unwrap(), b"hello");
    assert!(matches!(
        store.read_blob(&d, 4),
        Err(Error::TooLarge { .. })
    ));
    // Writing the same content again is harmless.
    assert_eq!(store.write_blob(b"hello").unwrap(), (right, 5));
    assert!(entries(&store.tmp_dir()).is_empty());
}

#[test]
fn layout_is_an_oci_image_layout() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let layout: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("oci-layout")).unwrap()).unwrap();
    assert_eq!(layout["imageLayoutVersion"], "1.0.0");
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("index.json")).unwrap()).unwrap();
    assert_eq!(index["schemaVersion"], 2);
    assert_eq!(index["manifests"], serde_json::json!([]));
    new_image(&store, "a/b:1", b"x");
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("index.json")).unwrap()).unwrap();
    assert_eq!(
        index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"],
        "a/b:1"
    );
    drop(store);
    // Reopening keeps everything.
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.list().unwrap().len(), 1);
}

#[test]
fn index_is_replaced_whole_under_concurrent_taggers() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let store = Store::open(&root).unwrap();
    let img = new_image(&store, "base", b"base");
    let desc = img.descriptor();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    // A reader that must never see a partial index.json.
    let reader = {
        let (root, stop) = (root.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut reads = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let bytes = std::fs::read(root.join("index.json")).unwrap();
                serde_json::from_slice::<serde_json::Value>(&bytes)
                    .unwrap_or_else(|e| panic!("partial index.json seen: {e}"));
                reads += 1;
            }
            reads
        })
    };
    let writers: Vec<_> = (0..4)
        .map(|t| {
            let (root, desc) = (root.clone(), desc.clone());
            std::thread::spawn(move || {
                // A separate handle per thread, as separate processes would have.
                let store = Store::open(&root).unwrap();
                for i in 0..25 {
                    let r = Reference::parse(&format!("t{t}:v{i}")).unwrap();
                    store.tag(&r, &desc).unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(reader.join().unwrap() > 0);
    // No update was lost: every tag of every thread is there.
    assert_eq!(store.list().unwrap().len(), 1 + 4 * 25);
    assert!(entries(&store.tmp_dir()).is_empty());
}

#[test]
fn lock_excludes_a_second_locker() {
    let dir = tempfile::tempdir().unwrap();
    let a = Store::open(dir.path()).unwrap();
    let b = Store::open(dir.path()).unwrap();
    let guard = a.index_lock().unwrap();
    assert!(
        b.try_index_lock().unwrap().is_none(),
        "second locker got the lock"
    );
    assert!(
        a.try_index_lock().unwrap().is_none(),
        "a second lock from the same handle too"
    );
    // A blocked locker proceeds once the first lets go.
    let waiter = std::thread::spawn(move || {
        let _g = b.index_lock().unwrap();
        std::time::Instant::now()
    });
    std::thread::sleep(std::time::Duration::from_millis(200));
    let released = std::time::Instant::now();
    drop(guard);
    assert!(waiter.join().unwrap() >= released);
    assert!(a.try_index_lock().unwrap().is_some());
}

#[test]
fn gc_refuses_while_another_handle_is_open() {
    let dir = tempfile::tempdir().unwrap();
    let a = Store::open(dir.path()).unwrap();
    let b = Store::open(dir.path()).unwrap();
    assert!(matches!(a.gc(), Err(Error::StoreBusy { .. })));
    // The failed attempt kept a's shared lock: b still cannot gc either.
    assert!(matches!(b.gc(), Err(Error::StoreBusy { .. })));
    drop(b);
    a.gc().unwrap();
}

#[test]
fn untag_and_resolve_unknown() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let img = new_image(&store, "x", b"x");
    let r = Reference::parse("x").unwrap();
    assert_eq!(
        store.resolve(&r).unwrap(),
        img.descriptor().clone().tap_name("x:latest")
    );
    store.untag(&r).unwrap();
    assert!(matches!(store.resolve(&r), Err(Error::ImageNotFound(n)) if n == "x:latest"));
    assert!(matches!(store.untag(&r), Err(Error::ImageNotFound(_))));
}

trait TapName {
    fn tap_name(self, name: &str) -> Self;
}

impl TapName for oci_spec::image::Descriptor {
    fn tap_name(mut self, name: &str) -> Self {
        let mut a = std::collections::HashMap::new();
        a.insert(
            "org.opencontainers.image.ref.name".to_string(),
            name.to_string(),
        );
        self.set_annotations(Some(a));
        self
    }
}
