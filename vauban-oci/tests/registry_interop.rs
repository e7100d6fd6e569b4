//! Interop with real `skopeo` both ways: what we push, `skopeo inspect` reads
//! and `skopeo copy` verifies into an OCI layout; what `skopeo copy` pushes,
//! we pull, with the same manifest digest. Also the skopeo-proxied transports.

mod registry_common;

use std::sync::Arc;

use registry_common::*;
use vauban_oci::reference::Reference;
use vauban_oci::registry::{self, RemoteReference, Source};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skopeo_reads_what_we_push_and_we_pull_what_it_pushes() {
    let reg = Registry::open();
    let imgs = test_images(300_000);
    let cache = tempfile::tempdir().unwrap();
    let opts = options(cache.path());
    let dest = RemoteReference::parse(&format!("{}/vauban/app:1", reg.host())).unwrap();
    registry::push(
        &imgs.store,
        &Reference::parse("app:1").unwrap(),
        &dest,
        &[],
        &opts,
        quiet(),
    )
    .await
    .unwrap();

    // skopeo inspect sees our manifest digest and layers.
    let out = skopeo(&["inspect", "--tls-verify=false", &format!("docker://{dest}")]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["Digest"], imgs.app.manifest_digest.to_string());
    assert_eq!(v["Layers"].as_array().unwrap().len(), 2);

    // skopeo copy to an OCI layout verifies every blob.
    let work = tempfile::tempdir().unwrap();
    let layout = work.path().join("layout");
    skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{dest}"),
        &format!("oci:{}:copied", layout.display()),
    ]);
    let index = std::fs::read_to_string(layout.join("index.json")).unwrap();
    assert!(index.contains(imgs.app.manifest_digest.hex()), "{index}");

    // What skopeo pushes (from that layout, to another repository), we pull.
    let other = format!("{}/skopeo/pushed:v2", reg.host());
    skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        &format!("oci:{}:copied", layout.display()),
        &format!("docker://{other}"),
    ]);
    let digest = skopeo(&[
        "inspect",
        "--tls-verify=false",
        "--format",
        "{{.Digest}}",
        &format!("docker://{other}"),
    ]);
    let (_d, store) = empty_store();
    let r = registry::pull(
        &store,
        &RemoteReference::parse(&other).unwrap(),
        None,
        &opts,
        quiet(),
    )
    .await
    .unwrap();
    assert_eq!(r.manifest_digest.to_string(), digest.trim());
    let img = store.image(&r.reference).unwrap();
    assert_eq!(img.layers().len(), 2);
    assert!(store.fsck().unwrap().is_ok());

    // A Docker schema 2 manifest (skopeo converts on request): pulled as is.
    let docker = format!("{}/skopeo/docker:v2s2", reg.host());
    skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        "--format",
        "v2s2",
        &format!("oci:{}:copied", layout.display()),
        &format!("docker://{docker}"),
    ]);
    let raw = skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{docker}"),
    ]);
    assert!(
        raw.contains("application/vnd.docker.distribution.manifest.v2+json"),
        "{raw}"
    );
    let r = registry::pull(
        &store,
        &RemoteReference::parse(&docker).unwrap(),
        None,
        &opts,
        quiet(),
    )
    .await
    .unwrap();
    assert_eq!(
        r.manifest_digest,
        vauban_oci::Digest::of_bytes(raw.as_bytes())
    );
    assert_eq!(store.image(&r.reference).unwrap().layers().len(), 2);

    // An OCI layout through skopeo's image proxy.
    let src = Source::parse(&format!("oci:{}:copied", layout.display())).unwrap();
    let local = Reference::parse("from-layout:1").unwrap();
    let (_d3, store3) = empty_store();
    let r = registry::pull_any(
        &store3,
        &src,
        Some(&local),
        &opts,
        Arc::new(registry::NoProgress),
    )
    .await
    .unwrap();
    assert_eq!(r.manifest_digest, imgs.app.manifest_digest);
    assert_eq!(
        store3.image(&local).unwrap().manifest_digest,
        imgs.app.manifest_digest
    );

    // A docker-archive (manifest and config converted to OCI by skopeo).
    let archive = work.path().join("docker.tar");
    skopeo(&[
        "copy",
        &format!("oci:{}:copied", layout.display()),
        &format!("docker-archive:{}:app:1", archive.display()),
    ]);
    let src = Source::parse(&format!("docker-archive:{}", archive.display())).unwrap();
    let local = Reference::parse("from-archive:1").unwrap();
    registry::pull_any(
        &store3,
        &src,
        Some(&local),
        &opts,
        Arc::new(registry::NoProgress),
    )
    .await
    .unwrap();
    let img = store3.image(&local).unwrap();
    assert_eq!(img.layers().len(), 2);
    assert_eq!(img.diff_ids().unwrap(), imgs.app.diff_ids().unwrap());
    assert!(store3.fsck().unwrap().is_ok());
}
