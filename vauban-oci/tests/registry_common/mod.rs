//! Test harness of the registry tests: Debian's real `docker-registry` on a free
//! 127.0.0.1 port (open, or with htpasswd basic auth), stopped in `Drop`; a
//! loopback HTTP proxy that injects faults and counts bytes; small test images
//! built in a temp store; a [`RegistryFixture`] bundling the three, and the
//! push, pull and skopeo calls the tests share.
#![allow(dead_code, unused_imports)]

mod fixture;
mod images;
mod proxy;
mod server;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

pub use fixture::*;
pub use images::*;
pub use proxy::*;
pub use server::*;
use vauban_oci::registry::{AuthEnv, AuthSource, RegistryOptions, RetryPolicy};

/// Options for a plain-HTTP loopback registry, no ambient credentials, fast
/// retries, a private blob-location cache in `cache_dir`.
pub fn options(cache_dir: &Path) -> RegistryOptions {
    RegistryOptions {
        tls_verify: false,
        auth: AuthSource {
            creds: None,
            authfile: None,
            env: AuthEnv::default(),
        },
        retry: RetryPolicy {
            max_attempts: 4,
            base_delay: Duration::from_millis(20),
            max_delay: Duration::from_millis(200),
            max_retry_after: Duration::from_secs(1),
        },
        parallel: 3,
        blob_cache: Some(cache_dir.join("blob-locations.json")),
        ..RegistryOptions::default()
    }
}

/// Runs skopeo with `args`; panics with its stderr on failure.
pub fn skopeo(args: &[&str]) -> String {
    let out = Command::new("skopeo")
        .args(args)
        .env("REGISTRY_AUTH_FILE", "/nonexistent/auth.json")
        .output()
        .expect("skopeo must be installed: run `cargo xtask deps`");
    assert!(
        out.status.success(),
        "skopeo {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `skopeo inspect --tls-verify=false FLAGS docker://IMAGE`; its output.
pub fn skopeo_inspect(image: impl std::fmt::Display, flags: &[&str]) -> String {
    let image = format!("docker://{image}");
    let mut args = vec!["inspect", "--tls-verify=false"];
    args.extend_from_slice(flags);
    args.push(&image);
    skopeo(&args)
}

/// A progress that records nothing.
pub fn quiet() -> Arc<dyn vauban_oci::registry::Progress> {
    Arc::new(vauban_oci::registry::NoProgress)
}
