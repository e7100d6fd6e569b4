//! Push: for each blob (config and layers, a bounded number at a time) a HEAD
//! in the target repository; if missing, a cross-repository mount from another
//! repository of the same registry where the blob was seen (an answer of 202
//! means "no mount, here is an upload session": we upload there); else a
//! monolithic upload streamed from the store. The manifest goes last, with its
//! own media type as `Content-Type`, once per tag.

use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use futures_util::{StreamExt, TryStreamExt};
use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE, LOCATION};
use reqwest::{Response, StatusCode, Url};

use super::blobcache::BlobLocations;
use super::manifest;
use super::progress::{BlobOutcome, Progress};
use super::reference::RemoteReference;
use super::session::{repo_scope, Session};
use super::RegistryOptions;
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::image::Image;
use crate::reference::Reference;
use crate::store::{Store, MANIFEST_LIMIT};

/// What a push did.
#[derive(Debug, Clone, Default)]
pub struct PushReport {
    /// Digest of the manifest pushed.
    pub manifest_digest: Option<Digest>,
    /// Blobs uploaded.
    pub uploaded: Vec<Digest>,
    /// Blobs mounted from another repository.
    pub mounted: Vec<Digest>,
    /// Blobs the repository already had.
    pub existing: Vec<Digest>,
    /// Bytes of blobs uploaded.
    pub bytes: u64,
    /// The references written (`HOST/REPO:TAG`).
    pub pushed: Vec<String>,
}

/// Chunk size of upload bodies.
const UPLOAD_CHUNK: usize = 1 << 20;

async fn blob_exists(
    session: &Session,
    scope: &[String],
    repo: &str,
    digest: &Digest,
) -> Result<bool> {
    let url = session.url(&format!("v2/{repo}/blobs/{digest}"))?;
    let resp = session.send(scope, |c| Ok(c.head(url.clone()))).await?;
    match resp.status() {
        s if s.is_success() => Ok(true),
        StatusCode::NOT_FOUND => Ok(false),
        _ => Err(session
            .status_error(&format!("HEAD blob {digest} in {repo}"), resp)
            .await),
    }
}

/// The upload session URL of a 202 answer.
fn upload_location(session: &Session, resp: &Response) -> Result<Url> {
    let loc = resp
        .headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| Error::Registry {
            registry: session.registry().to_string(),
            message: "upload session answered without a Location".to_string(),
        })?;
    session.resolve_location(resp.url(), loc)
}

/// Tries to mount `digest` from `from`; `Ok(Ok(()))` mounted, `Ok(Err(url))`
/// an upload session to use instead, `Err` when the request failed.
async fn try_mount(
    session: &Session,
    repo: &str,
    from: &str,
    digest: &Digest,
) -> Result<std::result::Result<(), Option<Url>>> {
    let mut url = session.url(&format!("v2/{repo}/blobs/uploads/"))?;
    url.query_pairs_mut()
        .append_pair("mount", &digest.to_string())
        .append_pair("from", from);
    let scope = [repo_scope(repo, true), repo_scope(from, false)];
    let resp = session
        .send(&scope, |c| {
            Ok(c.post(url.clone()).header(CONTENT_LENGTH, 0))
        })
        .await?;
    match resp.status() {
        StatusCode::CREATED => Ok(Ok(())),
        StatusCode::ACCEPTED => Ok(Err(Some(upload_location(session, &resp)?))),
        s => {
            tracing::debug!(%digest, from, status = %s, "mount refused");
            Ok(Err(None))
        }
    }
}

async fn start_upload(session: &Session, scope: &[String], repo: &str) -> Result<Url> {
    let url = session.url(&format!("v2/{repo}/blobs/uploads/"))?;
    let resp = session
        .send(scope, |c| Ok(c.post(url.clone()).header(CONTENT_LENGTH, 0)))
        .await?;
    if resp.status() != StatusCode::ACCEPTED {
        return Err(session
            .status_error(&format!("start upload to {repo}"), resp)
            .await);
    }
    upload_location(session, &resp)
}

/// A streaming body reading the blob from the store, counting bytes sent.
fn file_body(store: &Store, digest: &Digest, sent: Arc<AtomicU64>) -> Result<reqwest::Body> {
    let mut file = store.open_blob(digest)?;
    sent.store(0, Ordering::Relaxed);
    let stream = futures_util::stream::poll_fn(move |_| {
        let mut buf = vec![0u8; UPLOAD_CHUNK];
        match file.read(&mut buf) {
            Ok(0) => std::task::Poll::Ready(None),
            Ok(n) => {
                buf.truncate(n);
                sent.fetch_add(n as u64, Ordering::Relaxed);
                std::task::Poll::Ready(Some(Ok::<_, std::io::Error>(bytes::Bytes::from(buf))))
            }
            Err(e) => std::task::Poll::Ready(Some(Err(e))),
        }
    });
    Ok(reqwest::Body::wrap_stream(stream))
}

/// Uploads one blob monolithically to the session at `location`.
async fn upload(
    session: &Session,
    scope: &[String],
    store: &Store,
    location: Url,
    digest: &Digest,
    size: u64,
    progress: &dyn Progress,
) -> Result<()> {
    let mut url = location;
    url.query_pairs_mut()
        .append_pair("digest", &digest.to_string());
    let sent = Arc::new(AtomicU64::new(0));
    let fut = session.send(scope, |c| {
        Ok(c.put(url.clone())
            .header(CONTENT_TYPE, "application/octet-stream")
            .header(CONTENT_LENGTH, size)
            .body(file_body(store, digest, sent.clone())?))
    });
    tokio::pin!(fut);
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(200));
    let resp = loop {
        tokio::select! {
            r = &mut fut => break r?,
            _ = tick.tick() => progress.blob_progress(digest, sent.load(Ordering::Relaxed)),
        }
    };
    progress.blob_progress(digest, sent.load(Ordering::Relaxed));
    if resp.status() != StatusCode::CREATED {
        return Err(session
            .status_error(&format!("PUT blob {digest}"), resp)
            .await);
    }
    Ok(())
}

/// Moves one blob to the repository; returns what was done.
async fn push_blob(
    session: &Session,
    store: &Store,
    repo: &str,
    digest: &Digest,
    size: u64,
    candidates: Vec<String>,
    progress: &dyn Progress,
) -> Result<BlobOutcome> {
    let scope = [repo_scope(repo, true)];
    if blob_exists(session, &scope, repo, digest).await? {
        return Ok(BlobOutcome::Exists);
    }
    let mut location = None;
    for from in candidates.iter().take(3) {
        match try_mount(session, repo, from, digest).await? {
            Ok(()) => return Ok(BlobOutcome::Mounted),
            Err(Some(loc)) => {
                // Mount refused but an upload session was opened: use it.
                location = Some(loc);
                break;
            }
            Err(None) => {}
        }
    }
    progress.blob_start(digest, size);
    let first = match location {
        Some(l) => l,
        None => start_upload(session, &scope, repo).await?,
    };
    match upload(session, &scope, store, first, digest, size, progress).await {
        Ok(()) => Ok(BlobOutcome::Uploaded),
        Err(
            e @ (Error::Unauthorized { .. }
            | Error::RefusedRedirect { .. }
            | Error::BlobNotFound(_)),
        ) => Err(e),
        Err(e) => {
            // The upload session may be gone after a failure: one more in a new one.
            tracing::warn!(%digest, error = %e, "upload failed, retrying in a new session");
            let loc = start_upload(session, &scope, repo).await?;
            upload(session, &scope, store, loc, digest, size, progress).await?;
            Ok(BlobOutcome::Uploaded)
        }
    }
}

/// Pushes the store image `local` to `dest`, then the extra `tags` of the same
/// repository.
pub async fn push(
    store: &Store,
    local: &Reference,
    dest: &RemoteReference,
    tags: &[String],
    opts: &RegistryOptions,
    progress: Arc<dyn Progress>,
) -> Result<PushReport> {
    let image = Image::load(store, local)?;
    let manifest_bytes = store.read_blob(&image.manifest_digest, MANIFEST_LIMIT)?;
    let what = format!("manifest of {local}");
    let (media_type, config, layers) = manifest::parse_image_manifest(&manifest_bytes, &what)?;
    let mut targets = vec![dest.clone()];
    for t in tags {
        let r = dest.with_tag(t)?;
        if !targets.contains(&r) {
            targets.push(r);
        }
    }

    let session = opts.connect(&dest.registry).await?;
    let repo = dest.repository.as_str();
    let mut cache = BlobLocations::load(opts.blob_cache.as_deref());
    let mut blobs: Vec<(Digest, u64)> = Vec::new();
    for d in layers.iter().chain(std::iter::once(&config)) {
        let dg = manifest::descriptor_digest(d)?;
        if !blobs.iter().any(|(b, _)| *b == dg) {
            blobs.push((dg, d.size));
        }
    }
    let jobs: Vec<_> = blobs
        .iter()
        .map(|(d, size)| {
            (
                d.clone(),
                *size,
                cache.mount_candidates(d, &dest.registry, repo),
            )
        })
        .collect();
    let session_ref = &session;
    let outcomes: Vec<(Digest, u64, BlobOutcome)> = futures_util::stream::iter(jobs)
        .map(|(d, size, cands)| {
            let progress = progress.clone();
            async move {
                let o =
                    push_blob(session_ref, store, repo, &d, size, cands, progress.as_ref()).await?;
                progress.blob_done(&d, o);
                Ok::<_, Error>((d, size, o))
            }
        })
        .buffer_unordered(opts.parallel.max(1))
        .try_collect()
        .await?;

    let mut report = PushReport {
        manifest_digest: Some(image.manifest_digest.clone()),
        ..PushReport::default()
    };
    for (d, size, o) in outcomes {
        cache.record(&d, &dest.registry, repo);
        match o {
            BlobOutcome::Uploaded => {
                report.bytes += size;
                report.uploaded.push(d);
            }
            BlobOutcome::Mounted => report.mounted.push(d),
            _ => report.existing.push(d),
        }
    }
    if let Err(e) = cache.save() {
        tracing::warn!(error = %e, "cannot save the blob-location cache");
    }

    let scope = [repo_scope(repo, true)];
    for target in &targets {
        let url = session.url(&format!("v2/{repo}/manifests/{}", target.manifest_ref()))?;
        let body = bytes::Bytes::from(manifest_bytes.clone());
        let resp = session
            .send(&scope, |c| {
                Ok(c.put(url.clone())
                    .header(CONTENT_TYPE, media_type.as_str())
                    .body(body.clone()))
            })
            .await?;
        if resp.status() != StatusCode::CREATED {
            return Err(session
                .status_error(&format!("PUT manifest {target}"), resp)
                .await);
        }
        if let Some(h) = resp
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| Digest::parse(v).ok())
        {
            image
                .manifest_digest
                .verify(&h, format_args!("manifest pushed to {target}"))?;
        }
        progress.message(&format!("pushed {target}@{}", image.manifest_digest));
        report.pushed.push(target.to_string());
    }
    Ok(report)
}
