//! The decrypted tarball's entries: the original's layout is read, anything
//! else is refused with the entry's name. Tarballs are written header by header
//! here, so that a name the `tar` crate would refuse to write can be tested.

use std::path::Path;

use super::super::tarball;
use super::{source_file, source_files, HOSTS};
use crate::keys::tests::files_of;
use crate::Error;

/// An entry of a test tarball.
#[derive(Clone, Copy)]
enum Entry {
    Dir,
    File(&'static [u8]),
    Link(&'static str),
}

/// The tarball's path in messages.
const TARBALL: &str = "vault/web01.tar.gpg";

/// A tar archive of `entries`, each name written as it is.
fn tar_of(entries: &[(Vec<u8>, Entry)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, entry) in entries {
        let mut header = tar::Header::new_ustar();
        header.as_old_mut().name[..name.len()].copy_from_slice(name);
        let contents: &[u8] = match entry {
            Entry::Dir => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_mode(0o755);
                b""
            }
            Entry::File(contents) => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_mode(0o600);
                contents
            }
            Entry::Link(target) => {
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_link_name(target).unwrap();
                header.set_mode(0o777);
                b""
            }
        };
        header.set_size(contents.len() as u64);
        header.set_cksum();
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(contents);
        out.resize(out.len().next_multiple_of(512), 0);
    }
    out.resize(out.len() + 1024, 0);
    out
}

/// The entries `tar cvf web01.tar web01` wrote for the original, but `without`.
fn original(without: &str) -> Vec<(Vec<u8>, Entry)> {
    let host = HOSTS[0];
    let mut entries: Vec<(Vec<u8>, Entry)> = ["", "etc/", "etc/ssh/"]
        .iter()
        .map(|dir| (format!("{host}/{dir}").into_bytes(), Entry::Dir))
        .collect();
    for (name, _, _) in source_files(host) {
        if name != without {
            let contents: &'static [u8] = source_file(host, &name).leak();
            entries.push((
                format!("{host}/etc/ssh/{name}").into_bytes(),
                Entry::File(contents),
            ));
        }
    }
    entries
}

/// Reads `entries` as web01's decrypted tarball.
fn read(entries: &[(Vec<u8>, Entry)]) -> crate::Result<crate::keys::HostKeys> {
    let bytes = tar_of(entries);
    tarball::read(Path::new(TARBALL), HOSTS[0], &bytes)?
        .finish()
        .map(|(keys, _)| keys)
}

#[test]
fn the_originals_layout_is_read_byte_for_byte() {
    let keys = read(&original("")).unwrap();
    assert_eq!(files_of(&keys), source_files(HOSTS[0]));
    // `./web01/...`, as a tar made with `tar cf - .` names them, is the same.
    let dotted: Vec<_> = original("")
        .into_iter()
        .map(|(name, entry)| ([b"./".as_slice(), &name].concat(), entry))
        .collect();
    assert_eq!(files_of(&read(&dotted).unwrap()), source_files(HOSTS[0]));
}

#[test]
fn entries_outside_the_layout_are_refused_naming_them() {
    let rsa = "ssh_host_rsa_key";
    let key: &'static [u8] = source_file(HOSTS[0], rsa).leak();
    // (entry, the file of the original it stands for, what the error says)
    let cases: [(&str, Entry, &str, &str); 9] = [
        (
            "../web01/etc/ssh/ssh_host_rsa_key",
            Entry::File(key),
            rsa,
            "leads out",
        ),
        (
            "web01/etc/../../../etc/shadow",
            Entry::File(key),
            "",
            "leads out",
        ),
        (
            "/web01/etc/ssh/ssh_host_rsa_key",
            Entry::File(key),
            rsa,
            "absolute",
        ),
        (
            "web02/etc/ssh/ssh_host_rsa_key",
            Entry::File(key),
            rsa,
            "not under web01/",
        ),
        (
            "web01/etc/ssh/ssh_host_rsa_key",
            Entry::Link("/etc/shadow"),
            rsa,
            "not a regular file",
        ),
        (
            "web01/etc/ssh/ssh_host_rsa_key",
            Entry::File(key),
            "",
            "appears twice",
        ),
        (
            "web01/etc/passwd",
            Entry::File(b"root:x:0:0::/root:/bin/sh\n"),
            "",
            "not one of",
        ),
        (
            "web01/etc/ssh/sshd_config",
            Entry::File(b"Port 22\n"),
            "",
            "not one of",
        ),
        ("web01/etc/cron.d", Entry::Link("/etc"), "", "not one of"),
    ];
    for (name, entry, without, said) in cases {
        let mut entries = original(without);
        entries.push((name.as_bytes().to_vec(), entry));
        let err = read(&entries).expect_err(name);
        assert!(
            matches!(&err, Error::BadTarEntry { tarball, entry, reason }
                if tarball == Path::new(TARBALL) && entry == name && reason.contains(said)),
            "{name}: {err:?}"
        );
        let message = err.to_string();
        assert!(
            message.starts_with(&format!("{TARBALL}: entry \"{name}\"")),
            "{message}"
        );
    }
}

#[test]
fn a_tarball_missing_a_file_names_it_and_garbage_is_no_tarball() {
    let err = read(&original("ssh_host_ed25519_key.pub")).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{TARBALL}: web01/etc/ssh/ssh_host_ed25519_key.pub: missing (found \
             ssh_host_ed25519_key without it)"
        )
    );
    let err = tarball::read(Path::new(TARBALL), HOSTS[0], &[7u8; 1024])
        .err()
        .expect("garbage is refused");
    assert!(matches!(err, Error::BadTarball { .. }), "{err:?}");
}
