//! Pull: manifest (OCI or Docker schema 2; an index resolved for the platform),
//! then only the blobs the store lacks, in parallel, each hashed and sized while
//! downloaded and resumed with `Range: bytes=N-` after a dropped connection.
//! Nothing enters the store until every blob is verified; then blobs are
//! committed (the store re-verifies), the manifest last, and the image named.

use std::io::Write;
use std::sync::Arc;

use futures_util::{StreamExt, TryStreamExt};
use oci_spec::image::{Descriptor, MediaType};
use reqwest::header::{ACCEPT, CONTENT_RANGE, CONTENT_TYPE, RANGE};
use reqwest::StatusCode;
use sha2::Digest as _;

use super::blobcache::BlobLocations;
use super::manifest::{self, Document};
use super::progress::{BlobOutcome, Progress};
use super::reference::{RemoteReference, RemoteTarget};
use super::response::read_capped;
use super::retry::{content_range_resumes_at, is_retryable_transport};
use super::session::{repo_scope, Session};
use super::RegistryOptions;
use crate::digest::Digest;
use crate::error::{Error, IoContext, Result};
use crate::image::oci_digest;
use crate::reference::Reference;
use crate::store::{BlobWriter, Store, MANIFEST_LIMIT};

/// What a pull did.
#[derive(Debug, Clone)]
pub struct PullReport {
    /// The local name given to the image.
    pub reference: Reference,
    /// Digest of the manifest stored (the platform's, for an index).
    pub manifest_digest: Digest,
    /// Blobs downloaded.
    pub downloaded: Vec<Digest>,
    /// Blobs already in the store.
    pub cached: Vec<Digest>,
    /// Bytes downloaded.
    pub bytes: u64,
}

/// The local name of a pulled image when none is given: `HOST[:PORT]/REPO:TAG`
/// (`digest-<12 hex>` as the tag of a digest reference).
pub fn default_local_name(src: &RemoteReference) -> Result<Reference> {
    let tag = match &src.target {
        RemoteTarget::Tag(t) => t.clone(),
        RemoteTarget::Digest(d) => format!("digest-{}", &d.hex()[..12]),
    };
    Reference::new(&format!("{}/{}", src.registry, src.repository), &tag)
}

/// Fetches a manifest or index by tag or digest; returns bytes, digest and
/// the `Content-Type`.
async fn fetch_manifest(
    session: &Session,
    repo: &str,
    reference: &str,
) -> Result<(Vec<u8>, Digest, Option<String>)> {
    let url = session.url(&format!("v2/{repo}/manifests/{reference}"))?;
    let scope = [repo_scope(repo, false)];
    let resp = session
        .send(&scope, |c| {
            Ok(c.get(url.clone())
                .header(ACCEPT, manifest::ACCEPT_MANIFESTS))
        })
        .await?;
    if !resp.status().is_success() {
        return Err(session
            .status_error(&format!("GET manifest {repo}:{reference}"), resp)
            .await);
    }
    let ct = resp
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let header_digest = resp
        .headers()
        .get("docker-content-digest")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| Digest::parse(v).ok());
    let what = format!("manifest {}/{repo}:{reference}", session.registry());
    let bytes = read_capped(session, &what, resp, MANIFEST_LIMIT).await?;
    let digest = Digest::of_bytes(&bytes);
    if let Ok(expected) = Digest::parse(reference) {
        expected.verify(&digest, &what)?;
    }
    if let Some(h) = header_digest {
        h.verify(&digest, &what)?;
    }
    Ok((bytes, digest, ct))
}

/// Downloads one blob into a fresh [`BlobWriter`], verifying its size and
/// digest; resumes with a `Range` request after a broken transfer.
async fn download_blob(
    session: &Session,
    store: &Store,
    repo: &str,
    digest: &Digest,
    size: u64,
    progress: &dyn Progress,
) -> Result<BlobWriter> {
    let what = format!("blob {digest} from {}/{repo}", session.registry());
    let url = session.url(&format!("v2/{repo}/blobs/{digest}"))?;
    let scope = [repo_scope(repo, false)];
    let policy = session.retry_policy().clone();
    let mut writer = store.blob_writer()?;
    let mut hasher = sha2::Sha256::new();
    let mut done: u64 = 0;
    let mut failures = 0u32;
    progress.blob_start(digest, size);
    loop {
        let offset = done;
        let resp = session
            .send(&scope, |c| {
                let rb = c.get(url.clone());
                Ok(if offset > 0 {
                    rb.header(RANGE, format!("bytes={offset}-"))
                } else {
                    rb
                })
            })
            .await?;
        let status = resp.status();
        let resumed = offset > 0
            && status == StatusCode::PARTIAL_CONTENT
            && content_range_resumes_at(
                resp.headers()
                    .get(CONTENT_RANGE)
                    .and_then(|v| v.to_str().ok()),
                offset,
            );
        if status == StatusCode::OK || (status == StatusCode::PARTIAL_CONTENT && !resumed) {
            if offset > 0 {
                tracing::info!(%digest, offset, %status, "no usable range answer: restarting the blob");
                writer = store.blob_writer()?;
                hasher = sha2::Sha256::new();
                done = 0;
                progress.blob_progress(digest, 0);
            }
            if status == StatusCode::PARTIAL_CONTENT {
                // A 206 we did not ask for, or not at our offset: ask again in full.
                failures += 1;
                if failures >= policy.max_attempts {
                    return Err(Error::Registry {
                        registry: session.registry().to_string(),
                        message: format!("{what}: answered 206 with a wrong Content-Range"),
                    });
                }
                continue;
            }
        } else if !resumed {
            return Err(session.status_error(&format!("GET {what}"), resp).await);
        }
        let mut resp = resp;
        let broken = loop {
            match resp.chunk().await {
                Ok(Some(chunk)) => {
                    if done + chunk.len() as u64 > size {
                        return Err(Error::SizeMismatch {
                            what,
                            expected: size,
                            found: done + chunk.len() as u64,
                        });
                    }
                    writer.write_all(&chunk).at("write", store.tmp_dir())?;
                    hasher.update(&chunk);
                    done += chunk.len() as u64;
                    progress.blob_progress(digest, done);
                }
                Ok(None) => break None,
                Err(e) => break Some(e),
            }
        };
        match broken {
            None if done == size => break,
            None => {
                tracing::warn!(%digest, done, size, "blob body ended early");
            }
            Some(e) if is_retryable_transport(&e) => {
                tracing::warn!(%digest, done, size, error = %e, "blob transfer broken");
            }
            Some(e) => return Err(session.transport_error(&url, e)),
        }
        failures += 1;
        if failures >= policy.max_attempts {
            return Err(Error::Registry {
                registry: session.registry().to_string(),
                message: format!("{what}: transfer kept breaking ({done} of {size} bytes)"),
            });
        }
        tokio::time::sleep(policy.delay(failures, None)).await;
    }
    let found = Digest::from_hasher(hasher);
    digest.verify(&found, &what)?;
    Ok(writer)
}

/// Pulls `src` into `store` and names it `local` (default:
/// [`default_local_name`]).
pub async fn pull(
    store: &Store,
    src: &RemoteReference,
    local: Option<&Reference>,
    opts: &RegistryOptions,
    progress: Arc<dyn Progress>,
) -> Result<PullReport> {
    let local = match local {
        Some(r) => r.clone(),
        None => default_local_name(src)?,
    };
    let session = opts.connect(&src.registry).await?;
    let repo = src.repository.as_str();
    let (mut bytes, mut digest, mut ct) =
        fetch_manifest(&session, repo, &src.manifest_ref()).await?;
    let mut doc = parse_document(&bytes, ct.as_deref(), src)?;
    if let Document::Index { manifests } = &doc {
        let entry = manifest::choose_platform(manifests, &opts.platform, &src.to_string())?;
        let d = manifest::descriptor_digest(entry)?;
        (bytes, digest, ct) = fetch_manifest(&session, repo, &d.to_string()).await?;
        doc = parse_document(&bytes, ct.as_deref(), src)?;
    }
    let Document::Manifest {
        media_type,
        config,
        layers,
    } = doc
    else {
        return Err(Error::UnsupportedMediaType(format!(
            "{src}: an index inside an index"
        )));
    };
    progress.message(&format!("{src}: manifest {digest}"));

    let mut wanted: Vec<(Digest, u64)> = Vec::new();
    for d in std::iter::once(&config).chain(layers.iter()) {
        let dg = manifest::descriptor_digest(d)?;
        if !wanted.iter().any(|(w, _)| *w == dg) {
            wanted.push((dg, d.size));
        }
    }
    let (cached, missing): (Vec<_>, Vec<_>) =
        wanted.into_iter().partition(|(d, _)| store.has_blob(d));
    for (d, _) in &cached {
        progress.blob_done(d, BlobOutcome::Cached);
    }
    let session_ref = &session;
    let writers: Vec<(Digest, u64, BlobWriter)> = futures_util::stream::iter(missing.clone())
        .map(|(d, size)| {
            let progress = progress.clone();
            async move {
                let w =
                    download_blob(session_ref, store, repo, &d, size, progress.as_ref()).await?;
                Ok::<_, Error>((d, size, w))
            }
        })
        .buffer_unordered(opts.parallel.max(1))
        .try_collect()
        .await?;

    // Everything verified: now the store changes, manifest last.
    let mut bytes_total = 0;
    for (d, size, w) in writers {
        w.commit(Some(&d))?;
        bytes_total += size;
        progress.blob_done(&d, BlobOutcome::Downloaded);
    }
    let (stored, size) = store.write_blob(&bytes)?;
    digest.verify(&stored, format_args!("manifest of {src}"))?;
    let media = if media_type == manifest::OCI_MANIFEST {
        MediaType::ImageManifest
    } else {
        MediaType::Other(media_type.clone())
    };
    store.tag(&local, &Descriptor::new(media, size, oci_digest(&digest)))?;

    let mut cache = BlobLocations::load(opts.blob_cache.as_deref());
    for d in std::iter::once(&config).chain(layers.iter()) {
        if let Ok(dg) = manifest::descriptor_digest(d) {
            cache.record(&dg, &src.registry, repo);
        }
    }
    if let Err(e) = cache.save() {
        tracing::warn!(error = %e, "cannot save the blob-location cache");
    }
    progress.message(&format!("{src}: stored as {local}"));
    Ok(PullReport {
        reference: local,
        manifest_digest: digest,
        downloaded: missing.into_iter().map(|(d, _)| d).collect(),
        cached: cached.into_iter().map(|(d, _)| d).collect(),
        bytes: bytes_total,
    })
}

fn parse_document(bytes: &[u8], ct: Option<&str>, src: &RemoteReference) -> Result<Document> {
    manifest::parse_document(bytes, ct, &format!("manifest of {src}"))
}
