//! Image sources other than a registry (`docker-archive:F`, `oci-archive:F`,
//! `oci:DIR[:REF]`, `containers-storage:REF`, `dir:DIR`) read through skopeo's
//! image proxy (`containers-image-proxy`), when `skopeo` is installed.
//! Every blob is verified before it enters the store, as with a registry pull.

use std::ffi::OsStr;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use containers_image_proxy::{ImageProxy, ImageProxyConfig};
use oci_spec::image::{Descriptor, MediaType};
use tokio::io::AsyncReadExt;

use super::manifest;
use super::progress::{BlobOutcome, Progress};
use super::pull::{pull, PullReport};
use super::reference::RemoteReference;
use super::RegistryOptions;
use crate::digest::Digest;
use crate::error::{Error, IoContext, Result};
use crate::image::oci_digest;
use crate::reference::Reference;
use crate::store::{Store, CONFIG_LIMIT};

/// Transports handed to skopeo.
const PROXY_TRANSPORTS: &[&str] = &[
    "docker-archive",
    "oci-archive",
    "oci",
    "containers-storage",
    "dir",
];

/// Where to pull from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A registry, spoken to directly.
    Registry(RemoteReference),
    /// Another transport, through skopeo: `TRANSPORT:REST`.
    Proxy {
        /// e.g. `docker-archive`.
        transport: String,
        /// Everything after the first `:`.
        reference: String,
    },
}

impl Source {
    /// Parses a pull source: a known `TRANSPORT:` prefix goes to skopeo,
    /// anything else (with or without `docker://`) is a registry reference.
    pub fn parse(s: &str) -> Result<Source> {
        if let Some((t, rest)) = s.split_once(':') {
            if PROXY_TRANSPORTS.contains(&t) && !rest.starts_with("//") {
                if rest.is_empty() {
                    return Err(Error::InvalidReference {
                        reference: s.to_string(),
                        reason: format!("{t}: needs a path or reference after the colon"),
                    });
                }
                return Ok(Source::Proxy {
                    transport: t.to_string(),
                    reference: rest.to_string(),
                });
            }
        }
        RemoteReference::parse(s)
            .map(Source::Registry)
            .map_err(|e| {
                // `docker-daemon:x`, `ostree:x`, ...: say which transports there are.
                match s.split_once(':') {
                    Some((t, rest)) if looks_like_transport(t, rest) => Error::InvalidReference {
                        reference: s.to_string(),
                        reason: format!(
                            "unknown transport \"{t}:\" (vauban pulls from \
                         docker://HOST[:PORT]/REPOSITORY[:TAG] and, through skopeo, from {}:)",
                            PROXY_TRANSPORTS.join(":, ")
                        ),
                    },
                    _ => e,
                }
            })
    }
}

/// Whether `t` in `t:rest` reads as a transport name (a lowercase word) rather
/// than a host followed by a port.
fn looks_like_transport(t: &str, rest: &str) -> bool {
    t.starts_with(|c: char| c.is_ascii_lowercase())
        && t.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !rest.starts_with("//")
        && !rest.starts_with(|c: char| c.is_ascii_digit())
}

/// The path of `skopeo` in `path_var`, or [`Error::MissingTool`] saying what to install.
pub fn require_skopeo(transport: &str, path_var: Option<&OsStr>) -> Result<PathBuf> {
    crate::program_path::which("skopeo", path_var).ok_or_else(|| Error::MissingTool {
        transport: format!("{transport}:"),
        tool: "skopeo".into(),
        hint: "install it (Debian: apt-get install skopeo), or pull from a registry with docker://"
            .into(),
    })
}

/// Reads a small blob (a config) whole through the proxy.
async fn read_small_blob(
    proxy: &ImageProxy,
    img: &containers_image_proxy::OpenedImage,
    digest: &Digest,
    size: u64,
) -> std::result::Result<Vec<u8>, String> {
    let (mut reader, driver) = proxy
        .get_blob(img, &oci_digest(digest), size)
        .await
        .map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    let read = async {
        (&mut reader)
            .take(CONFIG_LIMIT + 1)
            .read_to_end(&mut buf)
            .await
            .map_err(|e| e.to_string())
    };
    let (r, d) = tokio::join!(read, driver);
    r?;
    d.map_err(|e| e.to_string())?;
    Ok(buf)
}

/// The proxy configuration for these options (a pure function, tested).
pub fn proxy_config(opts: &RegistryOptions) -> ImageProxyConfig {
    let mut config = ImageProxyConfig::default();
    config.authfile = opts.auth.authfile.clone();
    config.insecure_skip_tls_verification = Some(!opts.tls_verify);
    config
}

/// Pulls from any [`Source`]: registries directly, other transports through skopeo.
pub async fn pull_any(
    store: &Store,
    src: &Source,
    local: Option<&Reference>,
    opts: &RegistryOptions,
    progress: Arc<dyn Progress>,
) -> Result<PullReport> {
    match src {
        Source::Registry(r) => pull(store, r, local, opts, progress).await,
        Source::Proxy {
            transport,
            reference,
        } => {
            let local = local.ok_or_else(|| Error::InvalidReference {
                reference: format!("{transport}:{reference}"),
                reason: "pulling from this transport needs a local name (--tag NAME[:TAG])".into(),
            })?;
            pull_proxy(store, transport, reference, local, opts, progress.as_ref()).await
        }
    }
}

fn proxy_err(transport: &str, e: impl std::fmt::Display) -> Error {
    Error::Registry {
        registry: format!("skopeo ({transport})"),
        message: e.to_string(),
    }
}

async fn pull_proxy(
    store: &Store,
    transport: &str,
    reference: &str,
    local: &Reference,
    opts: &RegistryOptions,
    progress: &dyn Progress,
) -> Result<PullReport> {
    require_skopeo(transport, std::env::var_os("PATH").as_deref())?;
    let full = format!("{transport}:{reference}");
    let proxy = ImageProxy::new_with_config(proxy_config(opts))
        .await
        .map_err(|e| proxy_err(transport, e))?;
    let img = proxy
        .open_image(&full)
        .await
        .map_err(|e| proxy_err(transport, e))?;
    let (_, manifest_bytes) = proxy
        .fetch_manifest_raw_oci(&img)
        .await
        .map_err(|e| proxy_err(transport, e))?;
    let what = format!("manifest of {full}");
    let (media_type, config, layers) = manifest::parse_image_manifest(&manifest_bytes, &what)?;
    let mut writers = Vec::new();
    let mut downloaded = Vec::new();
    let mut cached = Vec::new();
    let mut bytes_total = 0;
    // The config as a raw blob (GetFullConfig re-serialises it); when the
    // manifest was converted to OCI (docker-archive), its converted config is
    // not a blob of the source: then GetFullConfig is the converted one.
    let config_digest = manifest::descriptor_digest(&config)?;
    let config_what = format!("config {config_digest} of {full}");
    let config_bytes = match read_small_blob(&proxy, &img, &config_digest, config.size).await {
        Ok(b) => b,
        Err(e) => {
            tracing::debug!(error = %e, "config is not a source blob: asking for the full config");
            proxy
                .fetch_config_raw(&img)
                .await
                .map_err(|e| proxy_err(transport, e))?
        }
    };
    if config_bytes.len() as u64 > CONFIG_LIMIT {
        return Err(Error::TooLarge {
            what: config_what,
            size: config_bytes.len() as u64,
            limit: CONFIG_LIMIT,
        });
    }
    config_digest.verify(&Digest::of_bytes(&config_bytes), &config_what)?;
    for layer in &layers {
        let digest = manifest::descriptor_digest(layer)?;
        if store.has_blob(&digest) || downloaded.contains(&digest) {
            progress.blob_done(&digest, BlobOutcome::Cached);
            cached.push(digest);
            continue;
        }
        progress.blob_start(&digest, layer.size);
        let (mut reader, driver) = proxy
            .get_blob(&img, &oci_digest(&digest), layer.size)
            .await
            .map_err(|e| proxy_err(transport, e))?;
        let mut writer = store.blob_writer()?;
        let tmp = store.tmp_dir();
        let copy = async {
            let mut buf = vec![0u8; 1 << 20];
            let mut done = 0u64;
            loop {
                let n = reader
                    .read(&mut buf)
                    .await
                    .at("read blob from skopeo", Path::new(&full))?;
                if n == 0 {
                    break;
                }
                writer.write_all(&buf[..n]).at("write", &tmp)?;
                done += n as u64;
                progress.blob_progress(&digest, done);
            }
            Ok::<u64, Error>(done)
        };
        let (done, finished) = tokio::join!(copy, driver);
        finished.map_err(|e| proxy_err(transport, e))?;
        let done = done?;
        if done != layer.size {
            return Err(Error::SizeMismatch {
                what: format!("blob {digest} of {full}"),
                expected: layer.size,
                found: done,
            });
        }
        // The writer hashed it: checked at the commit, named like this.
        writers.push((digest.clone(), writer));
        downloaded.push(digest);
        bytes_total += layer.size;
    }
    proxy
        .finalize()
        .await
        .map_err(|e| proxy_err(transport, e))?;

    for (d, w) in writers {
        w.commit_as(Some(&d), &format!("blob {d} of {full}"))?;
        progress.blob_done(&d, BlobOutcome::Downloaded);
    }
    store.write_blob(&config_bytes)?;
    let (digest, size) = store.write_blob(&manifest_bytes)?;
    let media = if media_type == manifest::OCI_MANIFEST {
        MediaType::ImageManifest
    } else {
        MediaType::Other(media_type)
    };
    store.tag(local, &Descriptor::new(media, size, oci_digest(&digest)))?;
    Ok(PullReport {
        reference: local.clone(),
        manifest_digest: digest,
        downloaded,
        cached,
        bytes: bytes_total,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources() {
        assert_eq!(
            Source::parse("docker-archive:/tmp/a.tar").unwrap(),
            Source::Proxy {
                transport: "docker-archive".into(),
                reference: "/tmp/a.tar".into()
            }
        );
        assert_eq!(
            Source::parse("oci:/tmp/layout:app:v1").unwrap(),
            Source::Proxy {
                transport: "oci".into(),
                reference: "/tmp/layout:app:v1".into()
            }
        );
        assert!(matches!(
            Source::parse("docker://127.0.0.1:5000/a:b").unwrap(),
            Source::Registry(_)
        ));
        assert!(matches!(
            Source::parse("localhost:5000/a").unwrap(),
            Source::Registry(_)
        ));
        assert!(Source::parse("oci-archive:").is_err());
        for unknown in ["docker-daemon:busybox:latest", "ostree:x@/repo"] {
            let err = Source::parse(unknown).unwrap_err().to_string();
            assert!(err.contains("unknown transport"), "{err}");
            assert!(err.contains("docker-archive:"), "{err}");
        }
        // A host with a port, a scheme, a plain name: not taken for transports.
        let err = Source::parse("localhost:5000").unwrap_err().to_string();
        assert!(!err.contains("transport"), "{err}");
        let err = Source::parse("ftp://x/y").unwrap_err().to_string();
        assert!(!err.contains("transport"), "{err}");
    }

    #[test]
    fn config_from_options() {
        let opts = RegistryOptions {
            tls_verify: false,
            ..RegistryOptions::default()
        };
        let c = proxy_config(&opts);
        assert_eq!(c.insecure_skip_tls_verification, Some(true));
    }
}
