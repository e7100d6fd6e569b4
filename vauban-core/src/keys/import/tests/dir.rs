//! Imports of plain files laid out as `DIR/HOST/etc/ssh/ssh_host_*`, and the
//! refusals: each names the file at fault.

use std::fs;

use super::{source_copy, source_file, source_files, ssh_dir, write_private, HOSTS};
use crate::keys::tests::{files_of, new_identity, ssh_keygen};
use crate::keys::{ImportSource, Imported, KeyProblem, KeyStore};
use crate::Error;

/// Reads `dir` as an import, expecting an error.
fn read_err(dir: &std::path::Path) -> Error {
    Imported::read(ImportSource::Dir(dir)).expect_err("the import should be refused")
}

#[test]
fn a_dir_layout_is_imported_byte_for_byte_and_survives_a_save() {
    let (tmp, dir) = source_copy();
    // A copy of a host's whole /etc/ssh: what is not a host key is not read.
    fs::write(ssh_dir(&dir, HOSTS[0]).join("sshd_config"), "Port 22\n").unwrap();
    fs::write(dir.join("README"), "keys of the fleet\n").unwrap();
    let imported = Imported::read(ImportSource::Dir(&dir)).unwrap();
    assert_eq!(imported.hosts().collect::<Vec<_>>(), HOSTS);

    let path = tmp.path().join("store").join("keys.age");
    let secret = new_identity();
    let mut store = KeyStore::open(&path, secret.clone()).unwrap();
    let report = store.import(imported, false);
    assert_eq!(report.added, HOSTS);
    assert!(report.replaced.is_empty() && report.skipped.is_empty());
    assert_eq!(report.ignored.len(), 1, "{:?}", report.ignored);
    assert!(report.ignored[0].file.ends_with("/README"));
    assert!(store.save().unwrap());
    drop(store);

    let store = KeyStore::open(&path, secret).unwrap();
    for host in HOSTS {
        let files = files_of(store.get(host).unwrap());
        assert_eq!(files, source_files(host), "{host}: the very files");
        let info = store.get(host).unwrap().info();
        let bits: Vec<u32> = info.iter().map(|i| i.bits).collect();
        assert_eq!(bits, [256, 256, 3072], "ssh-keygen -A's sizes");
        // The fingerprints are ssh-keygen's.
        let public = ssh_dir(&dir, host).join("ssh_host_rsa_key.pub");
        let listed = ssh_keygen(&["-l", "-f"], &public);
        assert!(listed.contains(&info[2].fingerprint), "{listed}");
    }
}

#[test]
fn a_pub_that_is_not_the_keys_half_is_refused_naming_it() {
    let (_tmp, dir) = source_copy();
    let other = source_file(HOSTS[1], "ssh_host_ed25519_key.pub");
    let public = ssh_dir(&dir, HOSTS[0]).join("ssh_host_ed25519_key.pub");
    fs::write(&public, other).unwrap();
    let err = read_err(&dir);
    assert!(
        matches!(&err, Error::BadKeyFile { file, problem: KeyProblem::PublicMismatch }
            if *file == public.display().to_string()),
        "{err:?}"
    );
    assert!(err.to_string().contains("not the public half"), "{err}");
}

#[test]
fn a_missing_half_or_kind_is_refused_naming_the_file() {
    let cases = [
        ("ssh_host_rsa_key.pub", "ssh_host_rsa_key.pub: missing"),
        ("ssh_host_ecdsa_key", "ssh_host_ecdsa_key: missing"),
    ];
    for (removed, said) in cases {
        let (_tmp, dir) = source_copy();
        fs::remove_file(ssh_dir(&dir, HOSTS[1]).join(removed)).unwrap();
        let err = read_err(&dir);
        assert!(matches!(err, Error::MissingHalf { .. }), "{err:?}");
        let message = err.to_string();
        assert!(
            message.contains(&format!("{}/etc/ssh/{said}", HOSTS[1])),
            "{message}"
        );
    }

    let (_tmp, dir) = source_copy();
    for name in ["ssh_host_ecdsa_key", "ssh_host_ecdsa_key.pub"] {
        fs::remove_file(ssh_dir(&dir, HOSTS[0]).join(name)).unwrap();
    }
    let err = read_err(&dir);
    assert!(
        matches!(&err, Error::MissingKind { host, file: "ssh_host_ecdsa_key", .. }
            if host == HOSTS[0]),
        "{err:?}"
    );
}

#[test]
fn keys_that_are_no_usable_host_key_are_refused_naming_the_file() {
    // (file, how it is spoilt, the problem)
    type Spoil = fn(&std::path::Path);
    type Expected = fn(&KeyProblem) -> bool;
    let cases: [(&str, Spoil, Expected); 4] = [
        (
            "ssh_host_ecdsa_key",
            |key| {
                ssh_keygen(&["-p", "-q", "-P", "", "-N", "a passphrase", "-f"], key);
            },
            |p| *p == KeyProblem::Encrypted,
        ),
        (
            "ssh_host_rsa_key",
            |key| {
                ssh_keygen(&["-p", "-q", "-P", "", "-N", "", "-m", "PEM", "-f"], key);
            },
            |p| *p == KeyProblem::LegacyPem,
        ),
        (
            "ssh_host_rsa_key",
            |key| {
                let dir = key.parent().unwrap();
                for suffix in ["", ".pub"] {
                    let ed25519 = dir.join(format!("ssh_host_ed25519_key{suffix}"));
                    fs::copy(ed25519, dir.join(format!("ssh_host_rsa_key{suffix}"))).unwrap();
                }
            },
            |p| matches!(p, KeyProblem::WrongType { found, .. } if found == "ssh-ed25519"),
        ),
        (
            "ssh_host_ed25519_key",
            |key| write_private(key, b"\xff\xfe not a key"),
            |p| *p == KeyProblem::NotText,
        ),
    ];
    for (name, spoil, expected) in cases {
        let (_tmp, dir) = source_copy();
        let key = ssh_dir(&dir, HOSTS[0]).join(name);
        spoil(&key);
        let err = read_err(&dir);
        assert!(
            matches!(&err, Error::BadKeyFile { file, problem }
                if *file == key.display().to_string() && expected(problem)),
            "{name}: {err:?}"
        );
    }
}

#[test]
fn dsa_keys_are_left_out_and_other_key_names_refused() {
    let (_tmp, dir) = source_copy();
    let ssh = ssh_dir(&dir, HOSTS[0]);
    write_private(&ssh.join("ssh_host_dsa_key"), b"an old DSA key\n");
    fs::write(ssh.join("ssh_host_dsa_key.pub"), "ssh-dss AAAA root@old\n").unwrap();
    let imported = Imported::read(ImportSource::Dir(&dir)).unwrap();
    let mut store = KeyStore::open(dir.join("keys.age"), new_identity()).unwrap();
    let report = store.import(imported, false);
    assert_eq!(report.added, HOSTS);
    let ignored: Vec<&str> = report.ignored.iter().map(|i| i.file.as_str()).collect();
    assert_eq!(ignored.len(), 2, "{ignored:?}");
    assert!(
        ignored[0].ends_with("/web01/etc/ssh/ssh_host_dsa_key"),
        "{ignored:?}"
    );
    assert!(report.ignored[0].reason.contains("DSA"));
    store.save().unwrap();

    let (_tmp, dir) = source_copy();
    let cert = ssh_dir(&dir, HOSTS[1]).join("ssh_host_ed25519_key-cert.pub");
    fs::write(&cert, "ssh-ed25519-cert-v01@openssh.com AAAA\n").unwrap();
    let err = read_err(&dir);
    assert!(
        matches!(&err, Error::UnknownKeyFile { file } if *file == cert.display().to_string()),
        "{err:?}"
    );
}

#[test]
fn host_names_that_cannot_name_a_host_are_refused() {
    for bad in ["web 01", "tab\there", "new\nline"] {
        let (_tmp, dir) = source_copy();
        fs::rename(dir.join(HOSTS[0]), dir.join(bad)).unwrap();
        let err = read_err(&dir);
        assert!(
            matches!(&err, Error::InvalidHost { host } if host == bad),
            "{bad:?}: {err:?}"
        );
    }
    let empty = tempfile::tempdir().unwrap();
    let err = read_err(empty.path());
    assert!(matches!(err, Error::NothingToImport { .. }), "{err:?}");
}

#[test]
fn keys_with_blank_lines_around_them_are_read_and_kept_as_they_are() {
    // As the original wrote keys out of Vault (`jq -r` adds a line feed), or
    // without the last line feed (`vault kv get -field`).
    let (_tmp, dir) = source_copy();
    let ssh = ssh_dir(&dir, HOSTS[0]);
    let ed25519 = [
        source_file(HOSTS[0], "ssh_host_ed25519_key"),
        b"\n".to_vec(),
    ]
    .concat();
    write_private(&ssh.join("ssh_host_ed25519_key"), &ed25519);
    let rsa_pub = source_file(HOSTS[0], "ssh_host_rsa_key.pub");
    let rsa_pub = rsa_pub.strip_suffix(b"\n").unwrap().to_vec();
    fs::write(ssh.join("ssh_host_rsa_key.pub"), &rsa_pub).unwrap();
    let imported = Imported::read(ImportSource::Dir(&dir)).unwrap();
    let mut store = KeyStore::open(dir.join("keys.age"), new_identity()).unwrap();
    store.import(imported, false);
    let files = files_of(store.get(HOSTS[0]).unwrap());
    assert_eq!(files[0].1, ed25519);
    assert_eq!(files[5].1, rsa_pub);
    store.save().unwrap();
}
