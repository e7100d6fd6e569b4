//! The real `ssh-keygen` accepts the keys as sshd's host keys.

use std::fs;
use std::os::unix::fs::PermissionsExt;

use super::{fixture, ssh_keygen, store_copy, HOSTS};
use crate::keys::{KeyStore, SSH_DIR};

#[test]
fn ssh_keygen_reads_every_key_and_derives_the_pub_files() {
    // Keys read back from the store file, as a rebuild gets them.
    let (dir, path) = store_copy();
    let store = KeyStore::open(&path, fixture().secret.clone()).unwrap();
    let keys = store.get(HOSTS[0]).unwrap();
    let ssh_dir = dir.path().join("root").join(SSH_DIR);
    fs::create_dir_all(&ssh_dir).unwrap();
    for file in keys.files() {
        let target = ssh_dir.join(file.path);
        fs::write(&target, file.contents).unwrap();
        fs::set_permissions(&target, fs::Permissions::from_mode(file.mode)).unwrap();
    }
    for (kind, bits, label) in [
        ("ed25519", "256", "(ED25519)"),
        ("ecdsa", "384", "(ECDSA)"),
        ("rsa", "4096", "(RSA)"),
    ] {
        let private = ssh_dir.join(format!("ssh_host_{kind}_key"));
        let public = ssh_dir.join(format!("ssh_host_{kind}_key.pub"));
        let from_private = ssh_keygen(&["-l", "-f"], &private);
        let from_public = ssh_keygen(&["-l", "-f"], &public);
        assert_eq!(from_private, from_public, "{kind}: same fingerprint");
        let fields: Vec<&str> = from_public.split_whitespace().collect();
        assert_eq!(fields.len(), 4, "{from_public}");
        assert_eq!(
            (fields[0], fields[2], fields[3]),
            (bits, "root@web-1", label)
        );
        assert!(fields[1].starts_with("SHA256:"), "{from_public}");
        let derived = ssh_keygen(&["-y", "-f"], &private);
        assert_eq!(
            derived,
            fs::read_to_string(&public).unwrap(),
            "{kind}: ssh-keygen -y"
        );
    }
}
