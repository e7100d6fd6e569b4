//! Open, generate, save, reopen: the keys survive, stay apart, and never reach
//! the disk in clear; the file is 0600 whatever the umask.

use std::collections::HashSet;
use std::fs;
use std::os::unix::fs::PermissionsExt;

use rustix::fs::Mode;

use super::{files_of, fixture, new_identity, private_key_lines, store_copy, FileData, HOSTS};
use crate::keys::{KeyStore, PRIVATE_MODE, PUBLIC_MODE};

#[test]
fn reopening_with_the_same_key_gives_the_same_keys() {
    let (_dir, path) = store_copy();
    let mut store = KeyStore::open(&path, fixture().secret.clone()).unwrap();
    assert_eq!(store.hosts().collect::<Vec<_>>(), HOSTS);
    for (host, files) in HOSTS.iter().zip(&fixture().files) {
        assert_eq!(&files_of(store.host_keys(host).unwrap()), files);
    }
    assert!(!store.is_changed(), "existing keys are not generated again");
    assert_eq!(store.ensure_hosts(HOSTS).unwrap(), Vec::<String>::new());
}

#[test]
fn no_two_hosts_and_no_two_kinds_share_a_key() {
    let files: Vec<&FileData> = fixture().files.iter().flatten().collect();
    assert_eq!(files.len(), 12);
    let private: HashSet<&[u8]> = files
        .iter()
        .filter(|(_, _, mode)| *mode == PRIVATE_MODE)
        .map(|(_, contents, _)| contents.as_slice())
        .collect();
    // The key blob of each `.pub` line: `TYPE BASE64 COMMENT`.
    let public: HashSet<&str> = files
        .iter()
        .filter(|(_, _, mode)| *mode == PUBLIC_MODE)
        .map(|(_, contents, _)| std::str::from_utf8(contents).unwrap())
        .map(|line| line.split(' ').nth(1).unwrap())
        .collect();
    assert_eq!((private.len(), public.len()), (6, 6));
}

#[test]
fn the_file_holds_no_key_nor_host_name_in_clear() {
    let bytes = &fixture().ciphertext;
    assert!(bytes.starts_with(b"age-encryption.org/v1\n"));
    let text = String::from_utf8_lossy(bytes);
    for needle in [
        "PRIVATE KEY",
        "b3BlbnNzaC1rZXktdjE",
        "ssh-",
        "ecdsa",
        "web-1",
        "hosts",
    ] {
        assert!(!text.contains(needle), "{needle} in the store file");
    }
    let lines = private_key_lines();
    assert!(lines.len() > 30, "{} private key lines", lines.len());
    for line in lines {
        assert!(
            !text.contains(&line),
            "a private key line is in the store file"
        );
    }
}

#[test]
fn the_file_is_0600_whatever_the_umask() {
    let (dir, path) = store_copy();
    let mut secret = fixture().secret.clone();
    for umask in [0o000, 0o277] {
        let mut store = KeyStore::open(&path, secret.clone()).unwrap();
        secret = new_identity();
        store.set_secret(secret.clone());
        // The umask is the process's: other tests may briefly create files with it.
        let old = rustix::process::umask(Mode::from_raw_mode(umask));
        let saved = store.save();
        rustix::process::umask(old);
        assert!(saved.unwrap());
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "umask {umask:03o}");
        drop(store);
    }
    let mut names: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["keys.age", "keys.age.lock"], "no temp file left");
}

#[test]
fn save_writes_only_when_something_changed() {
    let (dir, path) = store_copy();
    let mut store = KeyStore::open(&path, fixture().secret.clone()).unwrap();
    assert!(!store.save().unwrap());
    assert_eq!(fs::read(&path).unwrap(), fixture().ciphertext);
    assert!(store.get("db-1").is_none());
    assert!(!store.is_changed(), "get never generates");

    let empty = dir.path().join("state").join("empty.age");
    let mut store = KeyStore::open(&empty, fixture().secret.clone()).unwrap();
    assert_eq!(store.hosts().count(), 0);
    assert!(!store.save().unwrap());
    assert!(!empty.exists(), "an unchanged empty store writes no file");
}

#[test]
fn a_removed_host_is_gone_after_save() {
    let (_dir, path) = store_copy();
    let mut store = KeyStore::open(&path, fixture().secret.clone()).unwrap();
    assert!(!store.remove("db-1"));
    assert!(!store.is_changed());
    assert!(store.remove(HOSTS[0]));
    assert!(store.save().unwrap());
    drop(store);
    let store = KeyStore::open(&path, fixture().secret.clone()).unwrap();
    assert_eq!(store.hosts().collect::<Vec<_>>(), [HOSTS[1]]);
    assert_eq!(files_of(store.get(HOSTS[1]).unwrap()), fixture().files[1]);
}

#[test]
fn keys_of_the_first_format_and_older_sizes_are_kept_as_they_are() {
    use ssh_key::private::{EcdsaKeypair, Ed25519Keypair, KeypairData, RsaKeypair};
    use ssh_key::rand_core::OsRng;

    // vauban made ECDSA P-256 and RSA 3072 keys and stored private keys alone
    // (format 1); RSA 2048 stands for any size here, being quicker to make.
    let key = |data: KeypairData| {
        let key = ssh_key::PrivateKey::new(data, "root@old").unwrap();
        key.to_openssh(ssh_key::LineEnding::LF).unwrap().to_string()
    };
    let ed25519 = key(Ed25519Keypair::random(&mut OsRng).into());
    let ecdsa = key(
        EcdsaKeypair::random(&mut OsRng, ssh_key::EcdsaCurve::NistP256)
            .unwrap()
            .into(),
    );
    let rsa = key(RsaKeypair::random(&mut OsRng, 2048).unwrap().into());
    let plaintext = serde_json::json!({
        "version": 1,
        "hosts": { "old": { "ed25519": ed25519, "ecdsa": ecdsa, "rsa": rsa } },
    });
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys.age");
    let secret = fixture().secret.clone();
    let ciphertext =
        crate::keys::cipher::encrypt(&secret, plaintext.to_string().as_bytes(), &path).unwrap();
    fs::write(&path, ciphertext).unwrap();

    let mut store = KeyStore::open(&path, secret.clone()).unwrap();
    assert_eq!(
        store.ensure_hosts(["old"]).unwrap(),
        Vec::<String>::new(),
        "never made again"
    );
    let before = files_of(store.get("old").unwrap());
    let bits: Vec<u32> = store
        .get("old")
        .unwrap()
        .info()
        .iter()
        .map(|i| i.bits)
        .collect();
    assert_eq!(bits, [256, 256, 2048]);
    assert_eq!(before[0].1, ed25519.as_bytes());
    // Saved again (in the current format), the keys are the same files.
    store.set_secret(secret.clone());
    assert!(store.save().unwrap());
    drop(store);
    let store = KeyStore::open(&path, secret).unwrap();
    assert_eq!(files_of(store.get("old").unwrap()), before);
}
