//! What most registry tests start from: a real registry with a fault proxy in
//! front of it, the test images in a temp store, and options with a private
//! blob-location cache; plus the push and pull calls they all make.

use vauban_oci::reference::Reference;
use vauban_oci::registry::{self, PullReport, PushReport, RegistryOptions, RemoteReference};
use vauban_oci::store::Store;

use super::{options, quiet, test_images, FaultProxy, Registry, TestImages};

/// A registry, a [`FaultProxy`] in front of it (idle unless a test sends its
/// requests to [`RegistryFixture::proxied`] references), [`TestImages`] and
/// [`options`].
pub struct RegistryFixture {
    /// The registry.
    pub reg: Registry,
    /// The fault-injecting proxy in front of [`RegistryFixture::reg`].
    pub proxy: FaultProxy,
    /// `base:1` and `app:1` in a temp store.
    pub imgs: TestImages,
    /// Options for the registry, with a blob-location cache in `cache`.
    pub opts: RegistryOptions,
    /// Holds the blob-location cache of `opts`.
    _cache: tempfile::TempDir,
}

impl RegistryFixture {
    /// An open registry; the base image holds `base_size` bytes of noise.
    pub fn open(base_size: usize) -> RegistryFixture {
        Self::around(Registry::open(), base_size)
    }

    /// A registry with htpasswd basic auth (see [`super::USER`]); `opts`
    /// carries no credentials.
    pub fn with_auth(base_size: usize) -> RegistryFixture {
        Self::around(Registry::with_auth(), base_size)
    }

    fn around(reg: Registry, base_size: usize) -> RegistryFixture {
        let proxy = FaultProxy::start(reg.port);
        let imgs = test_images(base_size);
        let cache = tempfile::tempdir().unwrap();
        let opts = options(cache.path());
        RegistryFixture {
            reg,
            proxy,
            imgs,
            opts,
            _cache: cache,
        }
    }

    /// `path` (`REPOSITORY:TAG`) on the registry itself.
    pub fn direct(&self, path: &str) -> RemoteReference {
        remote(&self.reg.host(), path)
    }

    /// `path` (`REPOSITORY:TAG`) reached through the proxy.
    pub fn proxied(&self, path: &str) -> RemoteReference {
        remote(&self.proxy.host(), path)
    }

    /// Pushes `app:1` to `vauban/app:1` through the proxy; returns where.
    pub async fn push_app_through_proxy(&self) -> RemoteReference {
        let dest = self.proxied("vauban/app:1");
        push_local(&self.imgs.store, "app:1", &dest, &self.opts)
            .await
            .unwrap();
        dest
    }
}

/// `HOST/PATH` as a remote reference.
pub fn remote(host: &str, path: &str) -> RemoteReference {
    RemoteReference::parse(&format!("{host}/{path}")).unwrap()
}

/// Pushes the local image `local` of `store` to `dest`, no extra tags, no
/// progress.
pub async fn push_local(
    store: &Store,
    local: &str,
    dest: &RemoteReference,
    opts: &RegistryOptions,
) -> vauban_oci::Result<PushReport> {
    let local = Reference::parse(local).unwrap();
    registry::push(store, &local, dest, &[], opts, quiet()).await
}

/// Pulls `src` into `store` under its default local name, no progress.
pub async fn pull_into(
    store: &Store,
    src: &RemoteReference,
    opts: &RegistryOptions,
) -> vauban_oci::Result<PullReport> {
    registry::pull(store, src, None, opts, quiet()).await
}
