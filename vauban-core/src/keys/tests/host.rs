//! The files of a host's keys and what their `Debug` shows.

use super::super::{KeyKind, PRIVATE_MODE, PUBLIC_MODE};
use super::{fixture, private_key_lines, store_copy, HOSTS};
use crate::keys::KeyStore;
use crate::Error;

#[test]
fn files_are_the_six_that_sshd_expects_with_their_modes() {
    let files = &fixture().files[0];
    let names: Vec<(&str, u32)> = files.iter().map(|(p, _, m)| (p.as_str(), *m)).collect();
    assert_eq!(
        names,
        [
            ("ssh_host_ed25519_key", PRIVATE_MODE),
            ("ssh_host_ed25519_key.pub", PUBLIC_MODE),
            ("ssh_host_ecdsa_key", PRIVATE_MODE),
            ("ssh_host_ecdsa_key.pub", PUBLIC_MODE),
            ("ssh_host_rsa_key", PRIVATE_MODE),
            ("ssh_host_rsa_key.pub", PUBLIC_MODE),
        ]
    );
    assert_eq!((PRIVATE_MODE, PUBLIC_MODE), (0o600, 0o644));
    for (path, contents, mode) in files {
        let text = std::str::from_utf8(contents).unwrap();
        if *mode == PRIVATE_MODE {
            assert!(
                text.starts_with("-----BEGIN OPENSSH PRIVATE KEY-----\n"),
                "{path}"
            );
            assert!(
                text.ends_with("-----END OPENSSH PRIVATE KEY-----\n"),
                "{path}"
            );
        } else {
            assert_eq!(text.lines().count(), 1, "{path}");
            assert!(text.ends_with(" root@web-1\n"), "{path}: {text}");
        }
    }
    let prefix = |i: usize| {
        std::str::from_utf8(&files[i].1)
            .unwrap()
            .split(' ')
            .next()
            .unwrap()
    };
    assert_eq!(
        [prefix(1), prefix(3), prefix(5)],
        ["ssh-ed25519", "ecdsa-sha2-nistp384", "ssh-rsa"]
    );
}

#[test]
fn public_key_is_the_pub_file_line() {
    let (_dir, path) = store_copy();
    let store = KeyStore::open(&path, fixture().secret.clone()).unwrap();
    let keys = store.get(HOSTS[1]).unwrap();
    for (kind, i) in [
        (KeyKind::Ed25519, 1),
        (KeyKind::Ecdsa, 3),
        (KeyKind::Rsa, 5),
    ] {
        let line = std::str::from_utf8(&fixture().files[1][i].1).unwrap();
        assert_eq!(format!("{}\n", keys.public_key(kind)), line);
    }
    assert_eq!(keys.host(), HOSTS[1]);
}

#[test]
fn debug_never_shows_private_key_material() {
    let (_dir, path) = store_copy();
    let secret = fixture().secret.clone();
    let identity = &fixture().identity;
    let store = KeyStore::open(&path, secret.clone()).unwrap();
    let keys = store.get(HOSTS[0]).unwrap();
    let shown = [
        format!("{keys:?}"),
        format!("{keys:#?}"),
        format!("{:?}", keys.files()),
        format!("{store:?}"),
        format!("{secret:?}"),
    ];
    let private_lines = private_key_lines();
    assert!(!private_lines.is_empty());
    for text in &shown {
        assert!(!text.contains("PRIVATE KEY"), "{text}");
        assert!(!text.contains(identity.as_str()), "{text}");
        for line in &private_lines {
            assert!(!text.contains(line.as_str()), "{text} shows {line}");
        }
    }
    // What Debug does show: the host and its public keys.
    assert!(shown[0].contains("web-1") && shown[0].contains(keys.public_key(KeyKind::Rsa)));
    assert!(shown[2].contains("ssh_host_rsa_key") && shown[2].contains("0600"));
}

#[test]
fn host_names_that_cannot_name_keys_are_refused() {
    let (_dir, path) = store_copy();
    let mut store = KeyStore::open(&path, fixture().secret.clone()).unwrap();
    for host in ["", "web 1", "web\n1", "web\t1"] {
        let err = store.host_keys(host).unwrap_err();
        assert!(
            matches!(&err, Error::InvalidHost { host: h } if h == host),
            "{err}"
        );
    }
    assert!(store.ensure_hosts(["web-3", ""]).is_err());
    assert!(!store.is_changed(), "a refused name generates nothing");
}
