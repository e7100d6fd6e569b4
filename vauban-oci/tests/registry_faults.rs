//! Faults injected by a loopback proxy in front of a real `docker-registry`:
//! a 500 is retried, a connection dropped mid-blob resumes with a Range
//! request, a blob whose bytes do not match its digest fails the pull with a
//! digest error and leaves the store unchanged.

mod registry_common;

use registry_common::*;
use vauban_oci::Error;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_500_is_retried() {
    let fx = RegistryFixture::open(300_000);
    let (proxy, imgs, opts) = (&fx.proxy, &fx.imgs, &fx.opts);
    // One 500 on a manifest PUT and one on an upload session start.
    proxy.faults.lock().unwrap().fail =
        vec![("/manifests/".into(), 1), ("/blobs/uploads/".into(), 1)];
    let dest = fx.push_app_through_proxy().await;
    assert_eq!(proxy.seen().iter().filter(|s| s.status == 500).count(), 2);

    // And on pull: one 500 on a blob GET.
    let layer = imgs.app.layers()[0].digest().to_string();
    proxy.faults.lock().unwrap().fail = vec![(layer.clone(), 1)];
    let (_d, store) = empty_store();
    let r = pull_into(&store, &dest, opts).await.unwrap();
    assert_eq!(r.manifest_digest, imgs.app.manifest_digest);
    assert!(proxy
        .seen()
        .iter()
        .any(|s| s.status == 500 && s.path.contains(&layer)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_cut_short_is_sent_again() {
    let fx = RegistryFixture::open(1 << 20);
    let (proxy, imgs, opts) = (&fx.proxy, &fx.imgs, &fx.opts);
    let base = imgs.base.layers()[0].digest().to_string();
    proxy.faults.lock().unwrap().cut_request =
        vec![(format!("digest={}", base.replace(':', "%3A")), 300_000)];
    let dest = fx.push_app_through_proxy().await;
    let puts: Vec<_> = proxy
        .seen()
        .into_iter()
        .filter(|s| s.method == "PUT" && s.path.contains(&base.replace(':', "%3A")))
        .collect();
    assert!(puts.len() >= 2 && puts[0].status == 0, "{puts:#?}");
    assert_eq!(puts.last().unwrap().status, 201, "{puts:#?}");
    let (_d, store) = empty_store();
    let r = pull_into(&store, &dest, opts).await.unwrap();
    assert_eq!(r.manifest_digest, imgs.app.manifest_digest);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_waits_for_retry_after() {
    let fx = RegistryFixture::open(100_000);
    let (proxy, opts) = (&fx.proxy, &fx.opts);
    let dest = fx.push_app_through_proxy().await;
    proxy.faults.lock().unwrap().throttle = vec![("/manifests/".into(), 1)];
    let (_d, store) = empty_store();
    let start = std::time::Instant::now();
    pull_into(&store, &dest, opts).await.unwrap();
    // The policy's own backoff is 20 ms: only Retry-After explains a 1 s wait.
    assert!(
        start.elapsed() >= std::time::Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );
    assert!(proxy.seen().iter().any(|s| s.status == 429));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_connection_resumes_with_range() {
    let fx = RegistryFixture::open(1 << 20);
    let (proxy, imgs, opts) = (&fx.proxy, &fx.imgs, &fx.opts);
    let dest = fx.push_app_through_proxy().await;

    let base = imgs.base.layers()[0].digest().to_string();
    let cut = 400_000u64;
    proxy.faults.lock().unwrap().drop_after = vec![(base.clone(), cut)];
    proxy.reset();
    let (_d, store) = empty_store();
    let r = pull_into(&store, &dest, opts).await.unwrap();
    assert_eq!(r.manifest_digest, imgs.app.manifest_digest);
    let gets: Vec<_> = proxy
        .seen()
        .into_iter()
        .filter(|s| s.method == "GET" && s.path.contains(&base))
        .collect();
    assert_eq!(gets.len(), 2, "{gets:?}");
    assert_eq!(gets[1].status, 206, "the second GET resumed: {gets:?}");
    assert!(store.fsck().unwrap().is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupted_blob_fails_and_leaves_the_store_unchanged() {
    let fx = RegistryFixture::open(500_000);
    let (proxy, imgs, opts) = (&fx.proxy, &fx.imgs, &fx.opts);
    let dest = fx.push_app_through_proxy().await;

    let base = imgs.base.layers()[0].digest().to_string();
    proxy.faults.lock().unwrap().corrupt = vec![base.clone()];
    let (_d, store) = empty_store();
    let before = blobs_of(&store);
    let index_before = std::fs::read(store.root().join("index.json")).unwrap();
    let err = pull_into(&store, &dest, opts).await.unwrap_err();
    match &err {
        Error::DigestMismatch { what, expected, .. } => {
            assert_eq!(expected.to_string(), base);
            assert!(what.contains(&proxy.host()), "{what}");
        }
        other => panic!("expected a digest mismatch, got {other}"),
    }
    assert_eq!(blobs_of(&store), before, "no blob entered the store");
    assert_eq!(
        std::fs::read(store.root().join("index.json")).unwrap(),
        index_before
    );
    assert!(tmp_entries(&store).is_empty(), "{:?}", tmp_entries(&store));
    assert!(store.list().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_to_another_host_is_refused() {
    let fx = RegistryFixture::open(100_000);
    let (proxy, imgs, opts) = (&fx.proxy, &fx.imgs, &fx.opts);
    let dest = fx.push_app_through_proxy().await;
    let config = imgs.app.manifest.config().digest().to_string();
    let (_d, store) = empty_store();
    // Another port, another loopback address: refused, nothing stored.
    for location in [
        format!("http://{}/v2/vauban/app/blobs/{config}", fx.reg.host()),
        format!(
            "http://127.0.0.2:{}/v2/vauban/app/blobs/{config}",
            proxy.port
        ),
    ] {
        proxy.faults.lock().unwrap().redirect =
            vec![(format!("/blobs/{config}"), location.clone())];
        let err = pull_into(&store, &dest, opts).await.unwrap_err();
        assert!(
            matches!(err, Error::RefusedRedirect { .. }),
            "{location}: {err}"
        );
        assert!(store.list().unwrap().is_empty());
    }
    // The same host and port: followed.
    proxy.faults.lock().unwrap().redirect = vec![(
        format!("/blobs/{config}"),
        format!("/v2/vauban/app/blobs/{config}"),
    )];
    pull_into(&store, &dest, opts).await.unwrap();
    assert!(proxy.seen().iter().any(|s| s.status == 307));
}
