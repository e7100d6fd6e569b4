//! Push → delete locally → pull against a real `docker-registry`: same manifest
//! digest, same blobs; a second push sharing the base layer sends none of its
//! bytes (same repository: HEAD; another repository: cross-repository mount).

mod registry_common;

use registry_common::*;
use vauban_oci::reference::Reference;
use vauban_oci::registry::{self, RemoteReference};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_delete_pull_gives_the_same_image() {
    let fx = RegistryFixture::open(1 << 20);
    let (reg, imgs, opts) = (&fx.reg, &fx.imgs, &fx.opts);
    let dest = RemoteReference::parse(&format!("docker://{}/vauban/app:1", reg.host())).unwrap();
    let local = Reference::parse("app:1").unwrap();

    let report = registry::push(
        &imgs.store,
        &local,
        &dest,
        &["latest".into(), "v1.0".into()],
        opts,
        quiet(),
    )
    .await
    .unwrap();
    assert_eq!(
        report.manifest_digest.as_ref(),
        Some(&imgs.app.manifest_digest)
    );
    assert_eq!(report.uploaded.len(), 3, "{report:?}");
    assert_eq!(report.pushed.len(), 3);

    // Pull into a fresh store: identical manifest digest and blobs.
    let (_d2, store2) = empty_store();
    let pulled = pull_into(&store2, &dest, opts).await.unwrap();
    assert_eq!(pulled.manifest_digest, imgs.app.manifest_digest);
    assert_eq!(
        pulled.reference.to_string(),
        format!("{}/vauban/app:1", reg.host())
    );
    let img2 = store2.image(&pulled.reference).unwrap();
    assert_eq!(img2.manifest, imgs.app.manifest);
    let mut want: Vec<String> = std::iter::once(imgs.app.manifest.config())
        .chain(imgs.app.layers())
        .map(|d| {
            d.digest()
                .to_string()
                .trim_start_matches("sha256:")
                .to_string()
        })
        .collect();
    want.push(imgs.app.manifest_digest.hex().to_string());
    want.sort();
    assert_eq!(blobs_of(&store2), want);
    assert!(tmp_entries(&store2).is_empty());
    assert!(store2.fsck().unwrap().is_ok());

    // Delete locally (untag + gc), pull back into the original store.
    imgs.store.untag(&local).unwrap();
    imgs.store
        .untag(&Reference::parse("base:1").unwrap())
        .unwrap();
    imgs.store.gc().unwrap();
    assert!(!imgs.store.has_blob(&imgs.app.manifest_digest));
    let again = registry::pull(
        &imgs.store,
        &dest.with_tag("v1.0").unwrap(),
        Some(&local),
        opts,
        quiet(),
    )
    .await
    .unwrap();
    assert_eq!(again.manifest_digest, imgs.app.manifest_digest);
    assert_eq!(
        imgs.store.image(&local).unwrap().manifest_digest,
        imgs.app.manifest_digest
    );

    // A pull of what is already there downloads nothing.
    let third = registry::pull(&imgs.store, &dest, Some(&local), opts, quiet())
        .await
        .unwrap();
    assert!(third.downloaded.is_empty(), "{third:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_base_layer_is_never_uploaded_twice() {
    let fx = RegistryFixture::open(2 << 20);
    let (proxy, imgs, opts) = (&fx.proxy, &fx.imgs, &fx.opts);
    let base_layer = imgs.base.layers()[0].clone();

    push_local(&imgs.store, "base:1", &fx.proxied("vauban/base:1"), opts)
        .await
        .unwrap();
    assert!(
        proxy.uploaded_bytes() >= base_layer.size(),
        "the base was uploaded once"
    );

    // Same repository: HEAD says the base is there.
    proxy.reset();
    let r = push_local(&imgs.store, "app:1", &fx.proxied("vauban/base:app"), opts)
        .await
        .unwrap();
    assert_base_layer_not_sent(proxy, base_layer.size());
    assert_eq!(r.existing.len(), 1, "{r:?}");

    // Another repository of the same registry: mounted, not uploaded.
    proxy.reset();
    let r = push_local(&imgs.store, "app:1", &fx.proxied("vauban/app:1"), opts)
        .await
        .unwrap();
    assert_base_layer_not_sent(proxy, base_layer.size());
    let base_digest = base_layer.digest().to_string();
    assert!(
        r.mounted.iter().any(|d| d.to_string() == base_digest),
        "{r:?}"
    );
    assert!(proxy
        .seen()
        .iter()
        .any(|s| s.method == "POST" && s.path.contains("mount=") && s.status == 201));
    // What was mounted is really there: skopeo reads it back.
    let out = skopeo_inspect(fx.direct("vauban/app:1"), &[]);
    assert!(out.contains(&base_digest), "{out}");
}

/// Far fewer bytes than the base layer's `base_size` went through `proxy`
/// since its last reset.
fn assert_base_layer_not_sent(proxy: &FaultProxy, base_size: u64) {
    let sent = proxy.uploaded_bytes();
    assert!(
        sent < base_size / 4,
        "{sent} bytes sent, base layer is {base_size}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mount_answered_202_falls_back_to_upload() {
    let fx = RegistryFixture::open(300_000);
    let (proxy, imgs, opts) = (&fx.proxy, &fx.imgs, &fx.opts);
    // A stale hint: the cache says the blobs are in a repository that lacks them.
    let mut hints = registry::BlobLocations::load(opts.blob_cache.as_deref());
    for d in imgs
        .app
        .layers()
        .iter()
        .chain(std::iter::once(imgs.app.manifest.config()))
    {
        let d = vauban_oci::Digest::parse(d.digest().as_ref()).unwrap();
        hints.record(&d, &proxy.host(), "elsewhere/empty");
    }
    hints.save().unwrap();
    let r = push_local(&imgs.store, "app:1", &fx.proxied("vauban/app:1"), opts)
        .await
        .unwrap();
    assert_eq!(r.uploaded.len(), 3, "{r:?}");
    let seen = proxy.seen();
    assert!(
        seen.iter()
            .any(|s| s.path.contains("mount=") && s.status == 202),
        "{seen:#?}"
    );
    let out = skopeo_inspect(fx.direct("vauban/app:1"), &[]);
    assert!(out.contains(&imgs.app.manifest_digest.to_string()), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_index_is_resolved_for_the_platform() {
    let fx = RegistryFixture::open(100_000);
    let (reg, imgs, opts) = (&fx.reg, &fx.imgs, &fx.opts);
    for (local, tag) in [("app:1", "amd"), ("base:1", "arm")] {
        let dest = fx.direct(&format!("vauban/multi:{tag}"));
        push_local(&imgs.store, local, &dest, opts).await.unwrap();
    }
    let entry = |img: &vauban_oci::Image, arch: &str| {
        serde_json::json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": img.manifest_digest.to_string(),
            "size": img.manifest_size,
            "platform": {"os": "linux", "architecture": arch},
        })
    };
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [entry(&imgs.base, "arm64"), entry(&imgs.app, "amd64")],
    });
    let resp = reqwest::Client::new()
        .put(format!(
            "http://{}/v2/vauban/multi/manifests/all",
            reg.host()
        ))
        .header("Content-Type", "application/vnd.oci.image.index.v1+json")
        .body(serde_json::to_vec(&index).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);

    let src = fx.direct("vauban/multi:all");
    let (_d, store) = empty_store();
    let r = pull_into(&store, &src, opts).await.unwrap();
    assert_eq!(
        r.manifest_digest, imgs.app.manifest_digest,
        "linux/amd64 by default"
    );
    let arm = registry::RegistryOptions {
        platform: "linux/arm64".parse().unwrap(),
        ..opts.clone()
    };
    let r = registry::pull(
        &store,
        &src,
        Some(&Reference::parse("arm:1").unwrap()),
        &arm,
        quiet(),
    )
    .await
    .unwrap();
    assert_eq!(r.manifest_digest, imgs.base.manifest_digest);
    let s390 = registry::RegistryOptions {
        platform: "linux/s390x".parse().unwrap(),
        ..opts.clone()
    };
    let err = pull_into(&store, &src, &s390).await.unwrap_err();
    assert!(
        err.to_string().contains("linux/arm64, linux/amd64"),
        "{err}"
    );
}
