//! gc removes exactly what no named image reaches (layer dirs by chain ID);
//! fsck finds a corrupted blob and a missing one and names them, and removes
//! the layer dirs that are not what was extracted.

use std::collections::BTreeSet;
use std::path::Path;

use vauban_oci::image;
use vauban_oci::store::Store;
use vauban_oci::{Digest, Image, Reference};

mod common;

use common::{fake_layer as layer, history};

fn names(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

fn blobs_of(img: &Image) -> BTreeSet<String> {
    let mut s: BTreeSet<String> = img
        .layers()
        .iter()
        .map(|l| l.digest().digest().to_string())
        .collect();
    s.insert(img.manifest_digest.hex().to_string());
    s.insert(img.manifest.config().digest().digest().to_string());
    s
}

#[test]
fn gc_removes_exactly_the_unreferenced() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let base_layer = layer(&store, b"base");
    let base = image::commit(
        &store,
        None,
        std::slice::from_ref(&base_layer),
        &history("base"),
        &Reference::parse("base").unwrap(),
    )
    .unwrap();
    let child_layer = layer(&store, b"child");
    let child = image::commit(
        &store,
        Some(&base),
        std::slice::from_ref(&child_layer),
        &history("child"),
        &Reference::parse("child:1").unwrap(),
    )
    .unwrap();
    assert_eq!(child.layers().len(), 2);
    assert_eq!(
        child.diff_ids().unwrap(),
        vec![base_layer.diff_id.clone(), child_layer.diff_id.clone()]
    );
    assert_eq!(child.config.history().as_ref().unwrap().len(), 2);
    let doomed = image::commit(
        &store,
        Some(&base),
        &[layer(&store, b"doomed")],
        &history("doomed"),
        &Reference::parse("doomed").unwrap(),
    )
    .unwrap();
    let stray = store.write_blob(b"stray").unwrap().0;
    // Layer dirs, by chain ID, with their records: two referenced, one of the
    // doomed image; one named by the child layer's diff_id (as an older vauban
    // named them: nothing reaches it), one stray name.
    let chains = child.chain_ids().unwrap();
    let doomed_chain = doomed.chain_ids().unwrap()[1].clone();
    assert_ne!(chains[1], doomed_chain);
    for c in [&chains[0], &chains[1], &doomed_chain] {
        std::fs::create_dir_all(store.layer_dir(c).join("etc")).unwrap();
        std::fs::write(store.layer_record(c), "record").unwrap();
    }
    std::fs::create_dir_all(store.layers_dir().join(child_layer.diff_id.hex())).unwrap();
    std::fs::create_dir_all(store.layers_dir().join("junk")).unwrap();
    // Extraction locks go (nobody holds one during a gc), others stay.
    drop(
        store
            .work_lock(&format!("layer-{}", chains[1].hex()))
            .unwrap(),
    );
    drop(store.work_lock("step-x").unwrap());
    std::fs::write(store.tmp_dir().join(".blob-leftover"), b"crash").unwrap();
    std::fs::create_dir_all(store.tmp_dir().join("extract-leftover/x")).unwrap();

    store.untag(&Reference::parse("doomed").unwrap()).unwrap();
    let before = names(&store.blobs_dir());
    let report = store.gc().unwrap();

    let expected: BTreeSet<String> = blobs_of(&base).union(&blobs_of(&child)).cloned().collect();
    assert_eq!(names(&store.blobs_dir()), expected);
    let removed: BTreeSet<String> = report.blobs.iter().map(|d| d.hex().to_string()).collect();
    assert_eq!(removed, before.difference(&expected).cloned().collect());
    assert!(removed.contains(stray.hex()));
    assert!(removed.contains(doomed.manifest_digest.hex()));
    assert_eq!(
        removed.len(),
        4,
        "doomed manifest, config, layer and the stray blob"
    );
    let kept = |c: &vauban_oci::ChainId| [c.hex().to_string(), format!("{}.tree", c.hex())];
    assert_eq!(
        names(&store.layers_dir()),
        kept(&chains[0])
            .into_iter()
            .chain(kept(&chains[1]))
            .collect()
    );
    assert_eq!(
        report.layer_dirs.iter().cloned().collect::<BTreeSet<_>>(),
        [
            doomed_chain.hex().to_string(),
            child_layer.diff_id.hex().to_string(),
            "junk".to_string()
        ]
        .into()
    );
    assert_eq!(
        names(&dir.path().join("locks")),
        ["step-x.lock".to_string()].into()
    );
    assert!(names(&store.tmp_dir()).is_empty());
    assert_eq!(report.tmp_entries, 2);
    // Still sound, and a second gc has nothing to do.
    assert!(store.fsck().unwrap().is_ok());
    let again = store.gc().unwrap();
    assert!(again.blobs.is_empty() && again.layer_dirs.is_empty());
}

#[test]
fn gc_with_uses_the_given_remover() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    std::fs::create_dir_all(store.layers_dir().join("junk/sub")).unwrap();
    let calls = std::cell::RefCell::new(Vec::new());
    store
        .gc_with(&|p: &Path| {
            calls.borrow_mut().push(p.to_path_buf());
            std::fs::remove_dir_all(p).map_err(|e| vauban_oci::Error::io("remove", p, e))
        })
        .unwrap();
    assert_eq!(calls.into_inner(), vec![store.layers_dir().join("junk")]);
    // A remover that leaves the directory is an error, not a silent success.
    std::fs::create_dir_all(store.layers_dir().join("stays")).unwrap();
    assert!(store.gc_with(&|_: &Path| Ok(())).is_err());
}

#[test]
fn fsck_finds_corrupt_and_missing_blobs_and_names_them() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let l1 = layer(&store, b"one");
    let l2 = layer(&store, b"two");
    let img = image::commit(
        &store,
        None,
        &[l1.clone(), l2.clone()],
        &history("x"),
        &Reference::parse("x").unwrap(),
    )
    .unwrap();
    let report = store.fsck().unwrap();
    assert!(report.is_ok(), "{:?}", report.problems);
    assert_eq!((report.blobs, report.images), (4, 1));

    // Corrupt layer 1 (same size, other bytes), delete layer 2.
    std::fs::write(store.blob_path(&l1.digest), b"eno").unwrap();
    std::fs::remove_file(store.blob_path(&l2.digest)).unwrap();
    let report = store.fsck().unwrap();
    let text: Vec<String> = report.problems.iter().map(|p| p.to_string()).collect();
    let text = text.join("\n");
    assert!(!report.is_ok());
    assert!(
        text.contains(&format!("blob {}: corrupt", l1.digest)),
        "corrupt blob not named:\n{text}"
    );
    assert!(
        text.contains(&format!(
            "image x:latest: layer 1 blob {} is missing",
            l2.digest
        )),
        "missing blob not named:\n{text}"
    );
    assert!(
        text.contains(&format!(
            "image x:latest: layer 0 blob {} is corrupt",
            l1.digest
        )),
        "image with a corrupt layer not named:\n{text}"
    );
    assert!(!text.contains(&img.manifest_digest.to_string()), "{text}");
}

#[test]
fn fsck_checks_diff_ids_against_layers() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let img = image::commit(
        &store,
        None,
        &[layer(&store, b"one")],
        &history("x"),
        &Reference::parse("bad").unwrap(),
    )
    .unwrap();
    // A manifest with the same config but an extra layer.
    let mut manifest = img.manifest.clone();
    let mut layers = manifest.layers().clone();
    layers.push(layers[0].clone());
    manifest.set_layers(layers);
    let (d, size) = store.write_json_blob(&manifest).unwrap();
    let desc = oci_spec::image::Descriptor::new(
        oci_spec::image::MediaType::ImageManifest,
        size,
        image::oci_digest(&d),
    );
    store.tag(&Reference::parse("bad").unwrap(), &desc).unwrap();
    let report = store.fsck().unwrap();
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    assert!(report.problems[0]
        .to_string()
        .starts_with("image bad:latest: config "));
    assert!(report.problems[0]
        .to_string()
        .ends_with("has 1 diff_ids for 2 layers"));
}

/// A new store is private to its owner whatever the umask (its layer dirs hold
/// images' setuid files); fsck warns about one that other users can enter.
#[test]
fn stores_are_private_and_fsck_warns_when_not() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("a/new/store");
    let old = rustix::process::umask(rustix::fs::Mode::empty());
    let store = Store::open(&root);
    rustix::process::umask(old);
    let store = store.unwrap();
    for d in [
        root.clone(),
        root.join("blobs"),
        root.join("blobs/sha256"),
        root.join("tmp"),
        root.join("layers"),
        dir.path().join("a"),
    ] {
        let mode = std::fs::metadata(&d).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "{} is {mode:o}", d.display());
    }
    assert!(store.fsck().unwrap().warnings.is_empty());
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).unwrap();
    let report = store.fsck().unwrap();
    assert!(report.is_ok());
    assert_eq!(report.warnings.len(), 1, "{:?}", report.warnings);
    assert!(report.warnings[0].contains("0755"), "{:?}", report.warnings);
    assert!(
        report.warnings[0].contains("chmod 700"),
        "{:?}",
        report.warnings
    );
}

/// fsck walks every layer dir against its record: one with a planted file or
/// without a record is removed with the remover given, the others stay; a
/// record without its dir goes, and so does a link put in a layer dir's place
/// (overlayfs would follow it). It needs the store to itself.
#[test]
fn fsck_removes_the_layer_dirs_that_differ_from_their_record() {
    use vauban_oci::layer::tree;
    use vauban_oci::store::Removal;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let chains =
        vauban_oci::ChainId::of_stack(&[b"a".as_slice(), b"b", b"c", b"d"].map(Digest::of_bytes));
    for c in &chains[..3] {
        let d = store.layer_dir(c);
        std::fs::create_dir_all(d.join("etc")).unwrap();
        std::fs::write(d.join("etc/motd"), c.hex()).unwrap();
        store
            .write_layer_record(c, &tree::walk(&d).unwrap())
            .unwrap();
    }
    std::fs::write(store.layer_dir(&chains[1]).join("etc/evil"), "x").unwrap();
    std::fs::remove_file(store.layer_record(&chains[2])).unwrap();
    std::fs::write(store.layer_record(&chains[3]), "stale").unwrap();
    let outside = dir.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    let link = "f".repeat(64);
    std::os::unix::fs::symlink(&outside, store.layers_dir().join(&link)).unwrap();
    std::fs::create_dir(store.layers_dir().join(".removing-x-1")).unwrap();

    let check = |dirs: &[vauban_oci::store::LayerDirToCheck]| {
        Ok(dirs
            .iter()
            .map(|d| tree::check(&d.dir, &d.record))
            .collect())
    };
    let removed = std::cell::RefCell::new(BTreeSet::new());
    let remove = |p: &Path| {
        removed.borrow_mut().insert(p.to_path_buf());
        std::fs::remove_dir_all(p).map_err(|e| vauban_oci::Error::io("remove", p, e))
    };
    // Another handle on the store: busy, nothing touched.
    let other = Store::open(dir.path()).unwrap();
    assert!(matches!(
        store.fsck_layer_dirs(&check, &remove),
        Err(vauban_oci::Error::StoreBusy { .. })
    ));
    drop(other);
    assert!(store.layer_dir(&chains[1]).exists());

    let report = store.fsck_layer_dirs(&check, &remove).unwrap();
    assert_eq!((report.checked, report.stale_records), (3, 1));
    let mut found: Vec<(String, Removal)> = report
        .removed
        .iter()
        .map(|r| (r.name.clone(), r.why.clone()))
        .collect();
    found.sort_by(|a, b| a.0.cmp(&b.0));
    let mut expected = vec![
        (
            chains[1].hex().to_string(),
            Removal::Tampered(vec!["etc/evil: not in the record (added)".into()]),
        ),
        (chains[2].hex().to_string(), Removal::Unrecorded),
        (link.clone(), Removal::NotADirectory),
    ];
    expected.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(found, expected);
    assert_eq!(report.tampered().count(), 2);
    let text = report
        .removed
        .iter()
        .find(|r| r.name == chains[1].hex())
        .unwrap()
        .to_string();
    assert_eq!(
        text,
        format!(
            "layer dir {} was tampered with (etc/evil: not in the record (added)): removed; \
             it is extracted again when next used",
            chains[1].hex()
        )
    );
    assert_eq!(
        *removed.borrow(),
        [store.layer_dir(&chains[1]), store.layer_dir(&chains[2])].into()
    );
    assert!(
        outside.is_dir(),
        "the link's target is not the store's to remove"
    );
    assert_eq!(
        names(&store.layers_dir()),
        [
            chains[0].hex().to_string(),
            format!("{}.tree", chains[0].hex()),
            ".removing-x-1".to_string()
        ]
        .into()
    );
    // Sound now.
    let again = store.fsck_layer_dirs(&check, &remove).unwrap();
    assert_eq!((again.checked, again.removed.len()), (1, 0));
}

/// A manifest whose layer names its source image (a boot artifact's
/// `rootfs.img`) keeps that image while it is named, not after; one naming
/// a blob that is no manifest (anyone can write an annotation) does not
/// stop the gc.
#[test]
fn gc_keeps_the_source_image_a_kept_layer_names() {
    use vauban_oci::oci_spec::image::{DescriptorBuilder, ImageManifestBuilder, MediaType};
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let source = image::build(
        &store,
        None,
        &[layer(&store, b"rootfs tree")],
        &history("s"),
    )
    .unwrap();
    let stray = layer(&store, b"not a manifest");
    let artifact = |names: &Digest, tag: &str| {
        let file = layer(&store, format!("squashfs {tag}").as_bytes());
        let config = store
            .write_json_blob(&serde_json::json!({
                "architecture": "amd64", "os": "linux",
                "rootfs": {"type": "layers", "diff_ids": [file.diff_id.to_string()]},
            }))
            .unwrap();
        let mut annotations = std::collections::HashMap::new();
        annotations.insert(
            image::SOURCE_IMAGE_ANNOTATION.to_string(),
            names.to_string(),
        );
        let manifest = ImageManifestBuilder::default()
            .schema_version(2u32)
            .media_type(MediaType::ImageManifest)
            .config(
                DescriptorBuilder::default()
                    .media_type(MediaType::ImageConfig)
                    .digest(image::oci_digest(&config.0))
                    .size(config.1)
                    .build()
                    .unwrap(),
            )
            .layers(vec![DescriptorBuilder::default()
                .media_type(MediaType::ImageLayer)
                .digest(image::oci_digest(&file.digest))
                .size(file.size)
                .annotations(annotations)
                .build()
                .unwrap()])
            .build()
            .unwrap();
        let (digest, size) = store.write_json_blob(&manifest).unwrap();
        let desc = vauban_oci::oci_spec::image::Descriptor::new(
            MediaType::ImageManifest,
            size,
            image::oci_digest(&digest),
        );
        store
            .tag(&Reference::parse(&format!("m/boot:{tag}")).unwrap(), &desc)
            .unwrap();
    };
    artifact(&source.manifest_digest, "kept");
    artifact(&stray.digest, "stray");
    let report = store.gc().unwrap();
    let left = names(&dir.path().join("blobs/sha256"));
    for b in blobs_of(&source) {
        assert!(
            left.contains(&b),
            "gc removed {b} of the source image: {report:?}"
        );
    }
    store
        .untag(&Reference::parse("m/boot:kept").unwrap())
        .unwrap();
    store.gc().unwrap();
    let left = names(&dir.path().join("blobs/sha256"));
    assert!(
        !left.contains(source.manifest_digest.hex()),
        "the source image outlived its artifact"
    );
}
