//! A drift's signature: `vauban-drift` signs what it sends with the host's
//! sshd ed25519 key (`ssh-keygen -Y sign`, readable by root alone), and the
//! boot service checks it against the public key of the conffs that boot
//! got. The boot token is on `/proc/cmdline`, which every local user of the
//! host can read: with the signature, a token alone sends no drift.
//!
//! What is signed is a short text naming the host, the boot's token, the
//! time the host signed at and the body's sha256 ([`signed_message`]): a
//! signature is good for one body of one boot of one host, and the server
//! takes a boot's signed times increasing only, so a drift seen on the
//! wire (the boot service speaks plain HTTP) is not taken twice.
//!
//! The server checks what it can before it reads a body ([`precheck`]: the
//! header parses, names the host's key and the namespace), the signature
//! itself once the body's sha256 is known ([`Prechecked::verify`]).

use std::io::Read;
use std::path::Path;

use ssh_key::{HashAlg, PublicKey, SshSig};

/// The `sshsig` namespace of a drift's signature.
pub const NAMESPACE: &str = "drift@vauban";
/// The public key a drift is checked against, in a host's conffs.
pub const HOST_KEY_PUB: &str = "etc/ssh/ssh_host_ed25519_key.pub";
/// The most bytes of a signature (its PEM text) taken.
pub const MAX_SIGNATURE: usize = 4096;
/// The request header that carries it: the base64 of the PEM.
pub const HEADER: &str = "x-vauban-signature";
/// The request header that carries the time signed at (Unix seconds).
pub const TIME_HEADER: &str = "x-vauban-signed-at";

/// Why a drift's signature is refused.
#[derive(Debug, thiserror::Error)]
pub enum SignatureError {
    /// Not an `sshsig` PEM.
    #[error("not an SSH signature (ssh-keygen -Y sign's PEM): {0}")]
    Malformed(String),
    /// Made by another key than the host's.
    #[error("signed by {signer}, not by this host's sshd key {expected}")]
    OtherKey {
        /// The key that made it.
        signer: String,
        /// The host's.
        expected: String,
    },
    /// Made for something else.
    #[error("made for the namespace {0:?}, not {NAMESPACE:?}")]
    Namespace(String),
    /// Not over this body, token and host.
    #[error("it does not match this body of this boot of this host")]
    Mismatch,
    /// The host's key cannot be read.
    #[error("the host's public key {HOST_KEY_PUB} in its conffs: {0}")]
    HostKey(String),
    /// The conffs cannot be read.
    #[error("reading the conffs {path}: {source}")]
    Conffs {
        /// The archive.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// The text `vauban-drift` signs for a drift of `host` sent with boot
/// token `token` at `time` (Unix seconds, the host's clock), whose body's
/// sha256 is `sha256_hex` (64 hex digits).
pub fn signed_message(host: &str, token: &str, time: u64, sha256_hex: &str) -> Vec<u8> {
    format!("vauban-drift 2\nhost {host}\ntoken {token}\ntime {time}\nsha256 {sha256_hex}\n")
        .into_bytes()
}

/// A signature whose form, key and namespace are right: what is left is
/// to check it over the message.
#[derive(Debug)]
pub struct Prechecked {
    key: PublicKey,
    sig: SshSig,
}

impl Prechecked {
    /// Checks the signature over `message`; the key's fingerprint.
    pub fn verify(&self, message: &[u8]) -> Result<String, SignatureError> {
        self.key
            .verify(NAMESPACE, message, &self.sig)
            .map_err(|_| SignatureError::Mismatch)?;
        Ok(self.key.fingerprint(HashAlg::Sha256).to_string())
    }
}

/// Checks `signature` ([`HEADER`]'s value: the base64 of the PEM
/// `ssh-keygen -Y sign` writes) over `message` with `host_key` (an OpenSSH
/// public key line); the key's fingerprint.
pub fn verify(host_key: &str, signature: &str, message: &[u8]) -> Result<String, SignatureError> {
    precheck(host_key, signature)?.verify(message)
}

/// What can be checked of `signature` without the message: it parses, it
/// is by `host_key` (which must be an ed25519 key) and for [`NAMESPACE`].
pub fn precheck(host_key: &str, signature: &str) -> Result<Prechecked, SignatureError> {
    use base64::Engine as _;
    let key = PublicKey::from_openssh(host_key.trim())
        .map_err(|e| SignatureError::HostKey(e.to_string()))?;
    if key.algorithm() != ssh_key::Algorithm::Ed25519 {
        return Err(SignatureError::HostKey(format!(
            "an {} key, not ssh-ed25519",
            key.algorithm()
        )));
    }
    if signature.len() > MAX_SIGNATURE {
        return Err(SignatureError::Malformed(format!(
            "over {MAX_SIGNATURE} bytes"
        )));
    }
    let pem = base64::engine::general_purpose::STANDARD
        .decode(signature.trim())
        .map_err(|e| SignatureError::Malformed(format!("not base64: {e}")))?;
    let sig = SshSig::from_pem(pem).map_err(|e| SignatureError::Malformed(e.to_string()))?;
    if sig.public_key() != key.key_data() {
        return Err(SignatureError::OtherKey {
            signer: PublicKey::from(sig.public_key().clone())
                .fingerprint(HashAlg::Sha256)
                .to_string(),
            expected: key.fingerprint(HashAlg::Sha256).to_string(),
        });
    }
    if sig.namespace() != NAMESPACE {
        return Err(SignatureError::Namespace(sig.namespace().to_owned()));
    }
    Ok(Prechecked { key, sig })
}

/// The host's ed25519 public key line in `conffs` (a gzip tar, as vauban
/// makes them), if it has one.
pub fn host_key_of_conffs(conffs: &Path) -> Result<Option<String>, SignatureError> {
    let io = |source| SignatureError::Conffs {
        path: conffs.to_owned(),
        source,
    };
    let file = std::fs::File::open(conffs).map_err(io)?;
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
    for entry in archive.entries().map_err(io)? {
        let entry = entry.map_err(io)?;
        let path = entry.path().map_err(io)?;
        let name = path.to_string_lossy();
        let name = name.trim_start_matches("./").trim_start_matches('/');
        if name != HOST_KEY_PUB {
            continue;
        }
        if !entry.header().entry_type().is_file() {
            return Err(SignatureError::HostKey("not a file".into()));
        }
        let mut line = String::new();
        entry
            .take(MAX_SIGNATURE as u64)
            .read_to_string(&mut line)
            .map_err(|e| SignatureError::HostKey(e.to_string()))?;
        return Ok(Some(line));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An ed25519 key made by OpenSSH's own `ssh-keygen`: its file and
    /// its public line.
    fn keygen(dir: &Path, name: &str) -> (std::path::PathBuf, String) {
        keygen_of(dir, name, &["-t", "ed25519"])
    }

    /// A key of the type `kind` asks for (`-t TYPE`, `-b BITS`).
    fn keygen_of(dir: &Path, name: &str, kind: &[&str]) -> (std::path::PathBuf, String) {
        let key = dir.join(name);
        let status = std::process::Command::new("ssh-keygen")
            .args(kind)
            .args(["-q", "-N", "", "-C", "", "-f"])
            .arg(&key)
            .status()
            .expect("ssh-keygen (openssh-client)");
        assert!(status.success());
        let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
        (key, public)
    }

    fn sign(key: &Path, namespace: &str, message: &[u8]) -> String {
        use base64::Engine as _;
        use std::io::Write;
        let mut child = std::process::Command::new("ssh-keygen")
            .args(["-q", "-Y", "sign", "-n", namespace, "-f"])
            .arg(key)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(message).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        base64::engine::general_purpose::STANDARD.encode(out.stdout)
    }

    #[test]
    fn a_signature_by_the_host_key_over_its_drift_is_taken_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let (host, host_pub) = keygen(dir.path(), "host");
        let (other, _) = keygen(dir.path(), "other");
        let sha = "ab".repeat(32);
        let token = "cd".repeat(32);
        let message = signed_message("web01", &token, 1_800_000_000, &sha);
        let good = sign(&host, NAMESPACE, &message);
        let fingerprint = verify(&host_pub, &good, &message).unwrap();
        assert!(fingerprint.starts_with("SHA256:"), "{fingerprint}");

        // Another body, another boot's token, another host: refused.
        for other_message in [
            signed_message("web01", &token, 1_800_000_000, &"ef".repeat(32)),
            signed_message("web01", &"00".repeat(32), 1_800_000_000, &sha),
            signed_message("web02", &token, 1_800_000_000, &sha),
            signed_message("web01", &token, 1_800_000_001, &sha),
        ] {
            assert!(matches!(
                verify(&host_pub, &good, &other_message),
                Err(SignatureError::Mismatch)
            ));
        }
        // Another key (a local user's own), another namespace, garbage.
        let by_other = sign(&other, NAMESPACE, &message);
        let err = verify(&host_pub, &by_other, &message).unwrap_err();
        assert!(matches!(err, SignatureError::OtherKey { .. }), "{err}");
        let wrong_ns = sign(&host, "file", &message);
        assert!(matches!(
            verify(&host_pub, &wrong_ns, &message),
            Err(SignatureError::Namespace(_))
        ));
        assert!(matches!(
            verify(&host_pub, "LS0tLS1CRUdJTiBTU0ggU0lHTkFUVVJFLS0tLS0KQUFBQQotLS0tLUVORCBTU0ggU0lHTkFUVVJFLS0tLS0K", &message),
            Err(SignatureError::Malformed(_))
        ));
        // The host's key must be ed25519.
        let (rsa, rsa_pub) = keygen_of(dir.path(), "rsa", &["-t", "rsa", "-b", "2048"]);
        let by_rsa = sign(&rsa, NAMESPACE, &message);
        assert!(matches!(
            verify(&rsa_pub, &by_rsa, &message),
            Err(SignatureError::HostKey(_))
        ));
        assert!(matches!(
            verify(&host_pub, "not base64!", &message),
            Err(SignatureError::Malformed(_))
        ));
        assert!(matches!(
            verify(&host_pub, &"A".repeat(MAX_SIGNATURE + 1), &message),
            Err(SignatureError::Malformed(_))
        ));
    }

    /// The tool's own signing (`vauban-drift`'s `signature`, run by
    /// python3 with OpenSSH's ssh-keygen) is what the server checks.
    #[test]
    fn what_the_tool_signs_is_what_the_server_checks() {
        let dir = tempfile::tempdir().unwrap();
        let (host, host_pub) = keygen(dir.path(), "host");
        let tool = dir.path().join("vauban_drift.py");
        std::fs::write(&tool, super::super::drift_tool::TOOL).unwrap();
        let body = dir.path().join("drift.tgz");
        std::fs::write(&body, b"a drift's bytes").unwrap();
        let token = "5e".repeat(32);
        let script = format!(
            "import sys; sys.path.insert(0, {dir:?}); import vauban_drift as t\n\
             with open({body:?}, 'rb') as f: print(*t.signature(f, 'web01', {token:?}, key={key:?}))\n\
             print(t.signature(None, 'web01', {token:?}, key={none:?}))",
            dir = dir.path().to_str().unwrap(),
            body = body.to_str().unwrap(),
            key = host.to_str().unwrap(),
            none = dir.path().join("none").to_str().unwrap(),
        );
        let out = std::process::Command::new("python3")
            .args(["-c", &script])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = String::from_utf8(out.stdout).unwrap();
        let (signed, none) = out.trim().split_once('\n').unwrap();
        let (time, signed) = signed.split_once(' ').unwrap();
        let time: u64 = time.parse().unwrap();
        assert_eq!(none, "None", "a host without the key signs nothing");
        let sha: String = {
            use sha2::Digest as _;
            sha2::Sha256::digest(b"a drift's bytes")
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect()
        };
        verify(
            &host_pub,
            signed,
            &signed_message("web01", &token, time, &sha),
        )
        .unwrap();
    }

    #[test]
    fn the_host_key_is_read_from_a_conffs() {
        let dir = tempfile::tempdir().unwrap();
        let conffs = dir.path().join("conffs-web01.tgz");
        let write = |entries: &[(&str, &[u8])]| {
            let gz = flate2::write::GzEncoder::new(
                std::fs::File::create(&conffs).unwrap(),
                flate2::Compression::fast(),
            );
            let mut tar = tar::Builder::new(gz);
            for (path, bytes) in entries {
                let mut h = tar::Header::new_gnu();
                h.set_size(bytes.len() as u64);
                h.set_mode(0o644);
                h.set_entry_type(tar::EntryType::Regular);
                tar.append_data(&mut h, path, *bytes).unwrap();
            }
            tar.into_inner().unwrap().finish().unwrap();
        };
        write(&[
            ("etc/hostname", b"web01\n"),
            (
                "./etc/ssh/ssh_host_ed25519_key.pub",
                b"ssh-ed25519 AAAA web01\n",
            ),
        ]);
        assert_eq!(
            host_key_of_conffs(&conffs).unwrap().as_deref(),
            Some("ssh-ed25519 AAAA web01\n")
        );
        write(&[("etc/hostname", b"web01\n")]);
        assert_eq!(host_key_of_conffs(&conffs).unwrap(), None);
    }
}
