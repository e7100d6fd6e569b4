//! Auth against a real `docker-registry` with htpasswd basic auth: a wrong
//! password is a clear error naming the registry; the right one works, given
//! as `--creds`, in `--authfile`, and found in each default auth-file location;
//! `login` checks then writes the auth file (mode 0600).

mod registry_common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use registry_common::*;
use vauban_oci::registry::{self, AuthEnv, AuthSource, Credentials, RegistryOptions};
use vauban_oci::Error;

/// (variable, environment for a dir, file path in that dir)
type Case = (&'static str, fn(&Path) -> AuthEnv, &'static str);

fn creds(password: &str) -> Credentials {
    Credentials {
        username: USER.into(),
        password: password.into(),
    }
}

/// `base` with credentials taken from `auth`.
fn with_auth(base: &RegistryOptions, auth: AuthSource) -> RegistryOptions {
    RegistryOptions {
        auth,
        ..base.clone()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_from_every_source() {
    let fx = RegistryFixture::with_auth(100_000);
    let (reg, store) = (&fx.reg, &fx.imgs.store);
    let dest = fx.direct("vauban/app:1");

    // No credentials at all.
    let err = push_local(store, "app:1", &dest, &fx.opts)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unauthorized { .. }), "{err}");
    assert!(err.to_string().contains(&reg.host()), "{err}");

    // A wrong password: an error naming the registry and the user.
    let wrong = with_auth(
        &fx.opts,
        AuthSource {
            creds: Some(creds("wrong")),
            ..AuthSource::default()
        },
    );
    let err = push_local(store, "app:1", &dest, &wrong).await.unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::Unauthorized { .. }), "{msg}");
    assert!(msg.contains(&reg.host()) && msg.contains(USER), "{msg}");

    // The right one as --creds.
    let right = with_auth(
        &fx.opts,
        AuthSource {
            creds: Some(creds(PASSWORD)),
            ..AuthSource::default()
        },
    );
    push_local(store, "app:1", &dest, &right).await.unwrap();

    // login: a wrong password is refused and writes nothing; the right one writes 0600.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("auth.json");
    let src = AuthSource {
        authfile: Some(file.clone()),
        ..AuthSource::default()
    };
    let err = registry::login(
        &reg.host(),
        &creds("wrong"),
        false,
        &src,
        Default::default(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, Error::Unauthorized { .. }), "{err}");
    assert!(!file.exists());
    let written = registry::login(
        &reg.host(),
        &creds(PASSWORD),
        false,
        &src,
        Default::default(),
    )
    .await
    .unwrap();
    assert_eq!(written, file);
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );

    // --authfile.
    let (_d, pulled) = empty_store();
    let o = with_auth(&fx.opts, src.clone());
    pull_into(&pulled, &dest, &o).await.unwrap();

    // Each default location, alone.
    let auth_json = std::fs::read(&file).unwrap();
    let cases: [Case; 3] = [
        (
            "REGISTRY_AUTH_FILE",
            |d| AuthEnv {
                registry_auth_file: Some(d.join("a.json")),
                ..AuthEnv::default()
            },
            "a.json",
        ),
        (
            "XDG_RUNTIME_DIR",
            |d| AuthEnv {
                xdg_runtime_dir: Some(d.to_path_buf()),
                ..AuthEnv::default()
            },
            "containers/auth.json",
        ),
        (
            "HOME",
            |d| AuthEnv {
                home: Some(d.to_path_buf()),
                ..AuthEnv::default()
            },
            ".docker/config.json",
        ),
    ];
    for (name, env, rel) in cases {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &auth_json).unwrap();
        let o = with_auth(
            &fx.opts,
            AuthSource {
                env: env(d.path()),
                ..AuthSource::default()
            },
        );
        let (_sd, pulled) = empty_store();
        pull_into(&pulled, &dest, &o)
            .await
            .unwrap_or_else(|e| panic!("credentials from {name} ({rel}) not used: {e}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_token_is_fetched_and_refreshed_mid_push() {
    let fx = RegistryFixture::open(200_000);
    {
        let mut f = fx.proxy.faults.lock().unwrap();
        f.bearer = true;
        // The token "expires" when the config blob's upload is committed.
        f.expire_on = vec![("digest=".into(), 1)];
    }
    let dest = fx.push_app_through_proxy().await;
    let seen = fx.proxy.seen();
    let tokens = seen.iter().filter(|s| s.path.starts_with("/token")).count();
    assert!(
        tokens >= 2,
        "a token was fetched, then a fresh one: {seen:#?}"
    );
    assert!(
        seen.iter().any(|s| s.status == 401 && s.method == "PUT"),
        "a PUT was refused with the expired token: {seen:#?}"
    );
    let (_d, store) = empty_store();
    let r = pull_into(&store, &dest, &fx.opts).await.unwrap();
    assert_eq!(r.manifest_digest, fx.imgs.app.manifest_digest);
}
