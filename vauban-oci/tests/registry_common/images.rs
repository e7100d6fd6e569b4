//! Small test images built with the store API in a temp store, and views of
//! a store's blobs and temp dir.

use std::io::Write;
use std::path::PathBuf;
use vauban_oci::layer::PackedLayer;

use vauban_oci::digest::Digest;
use vauban_oci::image::{self, HistoryEntry, Image};
use vauban_oci::reference::Reference;
use vauban_oci::store::Store;

/// Deterministic incompressible bytes.
pub fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Stores a gzip layer holding `files` and returns it.
pub fn make_layer(store: &Store, files: &[(&str, Vec<u8>)]) -> PackedLayer {
    let mut tar = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(1_700_000_000);
        h.set_cksum();
        tar.append_data(&mut h, name, data.as_slice()).unwrap();
    }
    let raw = tar.into_inner().unwrap();
    let diff_id = Digest::of_bytes(&raw);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&raw).unwrap();
    let blob = gz.finish().unwrap();
    let (digest, size) = store.write_blob(&blob).unwrap();
    PackedLayer {
        entries: 0,
        digest,
        size,
        diff_id,
        media_type: "application/vnd.oci.image.layer.v1.tar+gzip".into(),
    }
}

/// Builds and names an image of `layers` on top of `base`.
pub fn make_image(
    store: &Store,
    base: Option<&Image>,
    layers: &[PackedLayer],
    name: &str,
) -> Image {
    let history = HistoryEntry {
        created_by: format!("test {name}"),
        created: chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
        comment: None,
    };
    image::commit(
        store,
        base,
        layers,
        &history,
        &Reference::parse(name).unwrap(),
    )
    .unwrap()
}

/// A base image (`base_size` bytes of noise) and an app image on top of it.
pub struct TestImages {
    /// The store holding them.
    pub store: Store,
    /// Temp dir of the store.
    pub dir: tempfile::TempDir,
    /// `base:1`.
    pub base: Image,
    /// `app:1` = base + one small layer.
    pub app: Image,
}

/// Makes [`TestImages`] in a fresh store.
pub fn test_images(base_size: usize) -> TestImages {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("store")).unwrap();
    let l1 = make_layer(
        &store,
        &[
            ("base.bin", noise(1, base_size)),
            ("etc/os", b"test\n".to_vec()),
        ],
    );
    let base = make_image(&store, None, &[l1], "base:1");
    let l2 = make_layer(&store, &[("app.bin", noise(2, 200_000))]);
    let app = make_image(&store, Some(&base), &[l2], "app:1");
    TestImages {
        store,
        dir,
        base,
        app,
    }
}

/// A fresh empty store.
pub fn empty_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("store")).unwrap();
    (dir, store)
}

/// Every blob digest of the store.
pub fn blobs_of(store: &Store) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(store.blobs_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// The store's temp dir entries (must be empty after any pull).
pub fn tmp_entries(store: &Store) -> Vec<PathBuf> {
    std::fs::read_dir(store.tmp_dir())
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default()
}
