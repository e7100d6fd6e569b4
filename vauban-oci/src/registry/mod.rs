//! Registry client: push images of the store to any OCI registry and pull them
//! back, with no daemon. Other transports (`docker-archive:`, `oci-archive:`,
//! `oci:`, `containers-storage:`) go through skopeo's image proxy.
//!
//! The HTTP layer is our own small one on `reqwest` (the stack `oci-client`
//! is built on): `oci-client` 0.18 has no retry layer, turns statuses into
//! errors without the `Retry-After` header, does not let us check a resumed
//! download's `Content-Range`, follows redirects to any host and uploads from
//! memory. Every behaviour below needed one of those.
//!
//! Async (`tokio`) lives here only; filesystem work is the store's plain I/O.

pub mod auth;
mod authorize;
mod blobcache;
mod challenge;
pub mod manifest;
pub mod progress;
pub mod proxy;
mod pull;
mod push;
mod redirect;
pub mod reference;
mod response;
pub mod retry;
pub mod session;

use std::path::PathBuf;

pub use auth::{AuthEnv, AuthSource, Credentials};
pub use blobcache::BlobLocations;
pub use manifest::Platform;
pub use progress::{BlobOutcome, NoProgress, Progress};
pub use proxy::{pull_any, Source};
pub use pull::{default_local_name, pull, PullReport};
pub use push::{push, PushReport};
pub use reference::{RemoteReference, RemoteTarget};
pub use retry::RetryPolicy;

use crate::error::Result;

/// Options shared by push, pull and login.
#[derive(Debug, Clone)]
pub struct RegistryOptions {
    /// Verify TLS certificates (`--tls-verify`); `false` also allows plain HTTP.
    pub tls_verify: bool,
    /// Where credentials come from.
    pub auth: AuthSource,
    /// Retry policy.
    pub retry: RetryPolicy,
    /// Blobs moved at the same time.
    pub parallel: usize,
    /// The blob-location cache (for cross-repository mounts); `None`: none.
    pub blob_cache: Option<PathBuf>,
    /// Platform chosen from image indexes.
    pub platform: Platform,
}

impl Default for RegistryOptions {
    fn default() -> Self {
        RegistryOptions {
            tls_verify: true,
            auth: AuthSource {
                env: AuthEnv::from_process(),
                ..AuthSource::default()
            },
            retry: RetryPolicy::default(),
            parallel: 4,
            blob_cache: BlobLocations::default_path(),
            platform: Platform::default(),
        }
    }
}

impl RegistryOptions {
    /// Opens a session with `registry` using these options.
    pub async fn connect(&self, registry: &str) -> Result<session::Session> {
        let creds = self.auth.resolve(registry)?;
        session::Session::connect(registry, self.tls_verify, creds, self.retry.clone()).await
    }
}

/// Checks `creds` against `registry` and stores them in the auth file (the
/// `--authfile` of `auth`, else the first of the default search path).
/// Returns the file written.
pub async fn login(
    registry: &str,
    creds: &Credentials,
    tls_verify: bool,
    auth: &AuthSource,
    retry: RetryPolicy,
) -> Result<PathBuf> {
    let session =
        session::Session::connect(registry, tls_verify, Some(creds.clone()), retry).await?;
    // `GET /v2/` with the credentials: refused ones end in Error::Unauthorized.
    let url = session.url("v2/")?;
    let resp = session.send(&[], |c| Ok(c.get(url.clone()))).await?;
    if !resp.status().is_success() {
        return Err(session.status_error("GET /v2/", resp).await);
    }
    let file = match &auth.authfile {
        Some(f) => f.clone(),
        None => auth.env.login_file()?,
    };
    auth::write_auth_file(&file, registry, creds)?;
    Ok(file)
}
