//! Interop with real `skopeo` both ways: what we push, `skopeo inspect` reads
//! and `skopeo copy` verifies into an OCI layout; what `skopeo copy` pushes,
//! we pull, with the same manifest digest. Also the skopeo-proxied transports.

mod registry_common;

use registry_common::*;
use vauban_oci::reference::Reference;
use vauban_oci::registry::{self, RemoteReference, Source};

/// `skopeo copy` of the OCI layout image `layout` (`oci:DIR:TAG`) to
/// `docker://dest` on the plain-HTTP test registry, with extra `flags`.
fn skopeo_push_layout(layout: &str, dest: &RemoteReference, flags: &[&str]) {
    let dest = format!("docker://{dest}");
    let mut args = vec!["copy", "--dest-tls-verify=false"];
    args.extend_from_slice(flags);
    args.extend([layout, dest.as_str()]);
    skopeo(&args);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skopeo_reads_what_we_push_and_we_pull_what_it_pushes() {
    let fx = RegistryFixture::open(300_000);
    let (imgs, opts) = (&fx.imgs, &fx.opts);
    let dest = fx.direct("vauban/app:1");
    push_local(&imgs.store, "app:1", &dest, opts).await.unwrap();

    // skopeo inspect sees our manifest digest and layers.
    let out = skopeo_inspect(&dest, &[]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["Digest"], imgs.app.manifest_digest.to_string());
    assert_eq!(v["Layers"].as_array().unwrap().len(), 2);

    // skopeo copy to an OCI layout verifies every blob.
    let work = tempfile::tempdir().unwrap();
    let layout = work.path().join("layout");
    let copied = format!("oci:{}:copied", layout.display());
    skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{dest}"),
        &copied,
    ]);
    let index = std::fs::read_to_string(layout.join("index.json")).unwrap();
    assert!(index.contains(imgs.app.manifest_digest.hex()), "{index}");

    // What skopeo pushes (from that layout, to another repository), we pull.
    let other = fx.direct("skopeo/pushed:v2");
    skopeo_push_layout(&copied, &other, &[]);
    let digest = skopeo_inspect(&other, &["--format", "{{.Digest}}"]);
    let (_d, store) = empty_store();
    let r = pull_into(&store, &other, opts).await.unwrap();
    assert_eq!(r.manifest_digest.to_string(), digest.trim());
    let img = store.image(&r.reference).unwrap();
    assert_eq!(img.layers().len(), 2);
    assert!(store.fsck().unwrap().is_ok());

    // A Docker schema 2 manifest (skopeo converts on request): pulled as is.
    let docker = fx.direct("skopeo/docker:v2s2");
    skopeo_push_layout(&copied, &docker, &["--format", "v2s2"]);
    let raw = skopeo_inspect(&docker, &["--raw"]);
    assert!(
        raw.contains("application/vnd.docker.distribution.manifest.v2+json"),
        "{raw}"
    );
    let r = pull_into(&store, &docker, opts).await.unwrap();
    assert_eq!(
        r.manifest_digest,
        vauban_oci::Digest::of_bytes(raw.as_bytes())
    );
    assert_eq!(store.image(&r.reference).unwrap().layers().len(), 2);

    // An OCI layout through skopeo's image proxy.
    let src = Source::parse(&copied).unwrap();
    let local = Reference::parse("from-layout:1").unwrap();
    let (_d3, store3) = empty_store();
    let r = registry::pull_any(&store3, &src, Some(&local), opts, quiet())
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
        &copied,
        &format!("docker-archive:{}:app:1", archive.display()),
    ]);
    let src = Source::parse(&format!("docker-archive:{}", archive.display())).unwrap();
    let local = Reference::parse("from-archive:1").unwrap();
    registry::pull_any(&store3, &src, Some(&local), opts, quiet())
        .await
        .unwrap();
    let img = store3.image(&local).unwrap();
    assert_eq!(img.layers().len(), 2);
    assert_eq!(img.diff_ids().unwrap(), imgs.app.diff_ids().unwrap());
    assert!(store3.fsck().unwrap().is_ok());
}
