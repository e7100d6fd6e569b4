//! The original's `vault/HOST.tar.gpg`, made as it made them (`ssh-keygen -A
//! -f HOST`, `tar cvf HOST.tar HOST`, `gpg -c`) with the real tools, decrypted
//! by the real `gpg`.

use std::fs;
use std::path::{Path, PathBuf};

use super::super::gpg;
use super::{original, source_copy, source_files, HOSTS};
use crate::keys::tests::files_of;
use crate::keys::{ImportSource, Imported};
use crate::Error;

/// The passphrase of the test vaults.
const PASSPHRASE: &str = "correct horse battery staple";

/// A `vault/` of the original with the test hosts, and its passphrase file.
fn vault() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let (tmp, keys) = source_copy();
    let vault = tmp.path().join("vault");
    let passphrase = tmp.path().join("passphrase");
    fs::write(&passphrase, format!("{PASSPHRASE}\n")).unwrap();
    original::pack_vault(&keys, &HOSTS, &vault, &passphrase);
    fs::create_dir(tmp.path().join("elsewhere")).unwrap();
    (tmp, vault, passphrase)
}

#[test]
fn the_originals_vault_is_decrypted_and_read_byte_for_byte() {
    let (tmp, vault, passphrase) = vault();
    fs::write(vault.join("notes.txt"), "not a key\n").unwrap();
    let imported = Imported::read(ImportSource::Gpg {
        path: &vault,
        passphrase_file: &passphrase,
    })
    .unwrap();
    assert_eq!(imported.hosts().collect::<Vec<_>>(), HOSTS);
    let mut store = crate::keys::KeyStore::open(
        tmp.path().join("keys.age"),
        crate::keys::tests::new_identity(),
    )
    .unwrap();
    let report = store.import(imported, false);
    assert_eq!(report.added, HOSTS);
    assert_eq!(report.ignored.len(), 1);
    assert!(report.ignored[0].file.ends_with("vault/notes.txt"));
    for host in HOSTS {
        assert_eq!(files_of(store.get(host).unwrap()), source_files(host));
    }
    store.save().unwrap();

    // One file, the passphrase through a pipe read once for every host.
    let fifo = tmp.path().join("fifo");
    original::run_in(tmp.path(), "mkfifo", &[fifo.to_str().unwrap()]);
    let writer = std::thread::spawn({
        let fifo = fifo.clone();
        move || fs::write(fifo, format!("{PASSPHRASE}\n")).unwrap()
    });
    let one = vault.join("web02.tar.gpg");
    let imported = Imported::read(ImportSource::Gpg {
        path: &one,
        passphrase_file: &fifo,
    })
    .unwrap();
    writer.join().unwrap();
    assert_eq!(imported.hosts().collect::<Vec<_>>(), ["web02"]);
}

#[test]
fn a_wrong_or_empty_passphrase_and_bad_names_are_refused() {
    let (tmp, vault, _) = vault();
    let wrong = tmp.path().join("wrong");
    fs::write(&wrong, "not the passphrase\n").unwrap();
    let read = |path: &Path, passphrase_file: &Path| {
        Imported::read(ImportSource::Gpg {
            path,
            passphrase_file,
        })
        .expect_err("the import should be refused")
    };
    let err = read(&vault, &wrong);
    assert!(
        matches!(&err, Error::Gpg { file, .. } if *file == vault.join("web01.tar.gpg")),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(message.contains("; it said: "), "{message}");
    assert!(
        message.ends_with(": the passphrase is wrong (the original's VAULTED_SSHD_KEYS_KEY?)"),
        "{message}"
    );
    assert!(
        !message.contains("unsafe permissions"),
        "a private home: {message}"
    );

    let empty = tmp.path().join("empty");
    fs::write(&empty, "\nsecond line\n").unwrap();
    let err = read(&vault, &empty);
    assert!(matches!(err, Error::EmptyPassphrase { .. }), "{err:?}");

    // A bad host name is refused before gpg runs.
    for (file, host) in [("..tar.gpg", "."), ("web 03.tar.gpg", "web 03")] {
        let path = tmp.path().join(file);
        fs::write(&path, "not encrypted").unwrap();
        let err = read(&path, &wrong);
        assert!(
            matches!(&err, Error::InvalidHost { host: h } if h == host),
            "{file}: {err:?}"
        );
    }
    let err = read(&tmp.path().join("elsewhere"), &wrong);
    assert!(matches!(err, Error::NothingToImport { .. }), "{err:?}");
}

#[test]
fn gpg_decrypts_in_batch_with_a_home_of_its_own_and_no_agent() {
    let args = gpg::args(Path::new("/tmp/home"), Path::new("vault/-web01.tar.gpg"));
    let args: Vec<&str> = args.iter().map(|a| a.to_str().unwrap()).collect();
    assert_eq!(
        args,
        [
            "--homedir",
            "/tmp/home",
            "--batch",
            "--quiet",
            "--no-tty",
            "--no-autostart",
            "--no-symkey-cache",
            "--pinentry-mode",
            "loopback",
            "--passphrase-fd",
            "0",
            "--decrypt",
            "--",
            "vault/-web01.tar.gpg"
        ]
    );
}
