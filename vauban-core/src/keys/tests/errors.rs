//! A key that does not match, a damaged file, stored keys that do not parse:
//! each gives an error that says so, names the file and quotes no key material.

use std::fs;
use std::path::Path;

use super::{fixture, new_identity, passphrase, private_key_lines, store_copy, HOSTS};
use crate::keys::{cipher, KeyKind, KeySecret, KeyStore, SecretKind};
use crate::Error;

/// Opens `path` with `secret`, expecting an error.
fn open_err(path: &Path, secret: KeySecret) -> Error {
    KeyStore::open(path, secret).expect_err("the open should fail")
}

/// Asserts that `err` is `WrongKey` for `path` with these kinds, and says so.
fn assert_wrong_key(err: &Error, path: &Path, store: SecretKind, given: SecretKind) {
    assert!(
        matches!(err, Error::WrongKey { path: p, store: s, given: g }
            if p == path && *s == store && *g == given),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(
        message.starts_with(&path.display().to_string()),
        "{message}"
    );
    assert!(message.contains("does not match"), "{message}");
}

#[test]
fn another_identity_is_a_wrong_key() {
    let (_dir, path) = store_copy();
    let err = open_err(&path, new_identity());
    assert_wrong_key(&err, &path, SecretKind::Identity, SecretKind::Identity);
}

#[test]
fn a_passphrase_store_opens_with_its_passphrase_only() {
    let (_dir, path) = store_copy();
    let mut store = KeyStore::open(&path, fixture().secret.clone()).unwrap();
    store.set_secret(passphrase("zebra quartz 1729"));
    assert!(store.save().unwrap());
    drop(store);
    assert!(fs::read(&path).unwrap().windows(6).any(|w| w == b"scrypt"));

    let err = open_err(&path, fixture().secret.clone());
    assert_wrong_key(&err, &path, SecretKind::Passphrase, SecretKind::Identity);
    assert!(
        err.to_string().contains("encrypted with a passphrase"),
        "{err}"
    );
    let err = open_err(&path, passphrase("zebra quartz 1730"));
    assert_wrong_key(&err, &path, SecretKind::Passphrase, SecretKind::Passphrase);

    let store = KeyStore::open(&path, passphrase("zebra quartz 1729")).unwrap();
    assert_eq!(
        super::files_of(store.get(HOSTS[0]).unwrap()),
        fixture().files[0]
    );
}

#[test]
fn an_identity_store_opened_with_a_passphrase_is_a_wrong_key() {
    let (_dir, path) = store_copy();
    let err = open_err(&path, passphrase("zebra quartz 1729"));
    assert_wrong_key(&err, &path, SecretKind::Identity, SecretKind::Passphrase);
}

#[test]
fn a_damaged_file_is_corrupt() {
    let (_dir, path) = store_copy();
    let whole = fs::read(&path).unwrap();
    let cases: [(&str, Vec<u8>); 3] = [
        ("garbage", b"this is not an age file\n".to_vec()),
        ("truncated", whole[..whole.len() - 40].to_vec()),
        ("flipped byte", {
            let mut bytes = whole.clone();
            let last = bytes.len() - 1;
            bytes[last] ^= 1;
            bytes
        }),
    ];
    for (case, bytes) in cases {
        fs::write(&path, bytes).unwrap();
        let err = open_err(&path, fixture().secret.clone());
        assert!(
            matches!(&err, Error::CorruptKeyStore { path: p, .. } if *p == path),
            "{case}: {err:?}"
        );
    }
}

#[test]
fn plaintext_that_is_not_a_store_is_corrupt_and_not_quoted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys.age");
    let secret = fixture().secret.clone();
    let cases = [
        ("not json", r#"MARKER-1729 is not JSON"#, "line 1, column 1"),
        (
            "wrong type",
            r#"{"version":1,"hosts":{"a":"MARKER-1729"}}"#,
            "line 1",
        ),
        (
            "unknown field",
            r#"{"version":1,"hosts":{},"MARKER-1729":1}"#,
            "line 1",
        ),
        (
            "version",
            r#"{"version":3,"hosts":{}}"#,
            "unknown format version 3",
        ),
        (
            "host name",
            r#"{"version":1,"hosts":{"a b":{"ed25519":"","ecdsa":"","rsa":""}}}"#,
            "invalid host name",
        ),
        (
            "version 2, a key without its .pub",
            r#"{"version":2,"hosts":{"a":{"ed25519":"MARKER-1729","ecdsa":"","rsa":""}}}"#,
            "line 1",
        ),
        (
            "version 2, host name",
            r#"{"version":2,"hosts":{"../a":{"ed25519":{"private":"","public":""},
                "ecdsa":{"private":"","public":""},"rsa":{"private":"","public":""}}}}"#,
            "invalid host name",
        ),
    ];
    for (case, plaintext, what) in cases {
        let ciphertext = cipher::encrypt(&secret, plaintext.as_bytes(), &path).unwrap();
        fs::write(&path, ciphertext).unwrap();
        let err = open_err(&path, secret.clone());
        let message = err.to_string();
        assert!(
            matches!(err, Error::CorruptKeyStore { .. }),
            "{case}: {err:?}"
        );
        assert!(message.contains(what), "{case}: {message}");
        assert!(
            !message.contains("MARKER"),
            "{case} quotes the plaintext: {message}"
        );
    }
}

#[test]
fn a_stored_key_that_is_invalid_or_of_the_wrong_type_names_the_host_and_kind() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys.age");
    let secret = fixture().secret.clone();
    let (_copy_dir, copy) = store_copy();
    let store = KeyStore::open(&copy, secret.clone()).unwrap();
    let keys = store.get(HOSTS[0]).unwrap();
    let [ed25519, ecdsa, rsa] = KeyKind::ALL.map(|kind| keys.private_key(kind).to_owned());
    let cases = [
        ([ed25519.as_str(), ecdsa.as_str(), "garbage"], "rsa"),
        ([ecdsa.as_str(), ecdsa.as_str(), rsa.as_str()], "ed25519"),
        ([ed25519.as_str(), rsa.as_str(), rsa.as_str()], "ecdsa"),
    ];
    for ([a, b, c], kind) in cases {
        let plaintext = serde_json::json!({
            "version": 1,
            "hosts": { "web-9": { "ed25519": a, "ecdsa": b, "rsa": c } },
        });
        let ciphertext = cipher::encrypt(&secret, plaintext.to_string().as_bytes(), &path).unwrap();
        fs::write(&path, ciphertext).unwrap();
        let err = open_err(&path, secret.clone());
        assert!(
            matches!(&err, Error::BadStoredKey { host, kind: k, .. } if host == "web-9" && *k == kind),
            "{err:?}"
        );
        assert_quotes_no_key(&err);
    }
}

#[test]
fn a_stored_pub_that_is_not_its_keys_half_names_the_host_and_kind() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys.age");
    let secret = fixture().secret.clone();
    let files = &fixture().files[0];
    let text = |i: usize| std::str::from_utf8(&files[i].1).unwrap();
    let pair = |private: usize, public: usize| serde_json::json!({ "private": text(private), "public": text(public) });
    let plaintext = serde_json::json!({
        "version": 2,
        "hosts": { "web-9": { "ed25519": pair(0, 1), "ecdsa": pair(2, 3), "rsa": pair(4, 1) } },
    });
    let ciphertext = cipher::encrypt(&secret, plaintext.to_string().as_bytes(), &path).unwrap();
    fs::write(&path, ciphertext).unwrap();
    let err = open_err(&path, secret);
    assert!(
        matches!(&err, Error::BadStoredKey { host, kind: "rsa", .. } if host == "web-9"),
        "{err:?}"
    );
    assert_quotes_no_key(&err);
}

/// Asserts that neither the message nor the `Debug` of `err` holds a private key line.
fn assert_quotes_no_key(err: &Error) {
    let message = format!("{err} {err:?}");
    for line in private_key_lines() {
        assert!(
            !message.contains(&line),
            "the error quotes a key: {message}"
        );
    }
}
