//! OpenSSH writes an ECDSA private key's scalar as an mpint: one byte short
//! (or more) when its top byte is zero, about one key in 256. `ssh-key` 0.6
//! reads only the curve's size, or one more with a leading zero, and refuses
//! the others ("length invalid"): a site's keys made by `ssh-keygen` would
//! fail now and then. [`padded`] rewrites such a key (unencrypted, as host
//! keys are) with the scalar left-padded to the curve's size: the same key,
//! in the form `ssh-key` reads. Only what is read is rewritten; a key file
//! is kept as it was written.

use base64::Engine as _;
use zeroize::Zeroizing;

const BEGIN: &str = "-----BEGIN OPENSSH PRIVATE KEY-----";
const END: &str = "-----END OPENSSH PRIVATE KEY-----";
const MAGIC: &[u8] = b"openssh-key-v1\0";

/// `pem` with its ECDSA scalar padded to the curve's size; `None` when it
/// is not an unencrypted OpenSSH ECDSA key with a short scalar.
pub(super) fn padded(pem: &str) -> Option<Zeroizing<String>> {
    rewrite_scalar(pem, |scalar, size| {
        (scalar.len() < size).then(|| {
            let mut out = vec![0u8; size - scalar.len()];
            out.extend_from_slice(scalar);
            out
        })
    })
}

/// `pem` with its ECDSA scalar replaced by what `change` makes of it (given
/// the curve's size); `None` when `change` keeps it or the key is not an
/// unencrypted OpenSSH ECDSA key.
fn rewrite_scalar(
    pem: &str,
    change: impl Fn(&[u8], usize) -> Option<Vec<u8>>,
) -> Option<Zeroizing<String>> {
    let body: String = pem
        .trim()
        .strip_prefix(BEGIN)?
        .strip_suffix(END)?
        .split_whitespace()
        .collect();
    let blob = Zeroizing::new(
        base64::engine::general_purpose::STANDARD
            .decode(body)
            .ok()?,
    );
    let mut r = Reader(blob.strip_prefix(MAGIC)?);
    let (cipher, kdf, kdf_options) = (r.string()?, r.string()?, r.string()?);
    if cipher != b"none" || r.u32()? != 1 {
        return None;
    }
    let public = r.string()?;
    let mut p = Reader(r.string()?);
    let (check1, check2) = (p.u32()?, p.u32()?);
    let key_type = p.string()?;
    let curve = p.string()?;
    let size = match curve {
        b"nistp256" => 32,
        b"nistp384" => 48,
        b"nistp521" => 66,
        _ => return None,
    };
    if !key_type.starts_with(b"ecdsa-sha2-") {
        return None;
    }
    let point = p.string()?;
    let scalar = Zeroizing::new(change(p.string()?, size)?);
    let comment = p.string()?;
    let mut private = Zeroizing::new(Vec::new());
    private.extend_from_slice(&check1.to_be_bytes());
    private.extend_from_slice(&check2.to_be_bytes());
    for field in [key_type, curve, point, &scalar, comment] {
        put_string(&mut private, field);
    }
    // The private section is padded to the cipher's block (8 for none)
    // with 1, 2, 3...
    let mut pad = 1u8;
    while private.len() % 8 != 0 {
        private.push(pad);
        pad += 1;
    }
    let mut out = Zeroizing::new(MAGIC.to_vec());
    for field in [cipher, kdf, kdf_options] {
        put_string(&mut out, field);
    }
    out.extend_from_slice(&1u32.to_be_bytes());
    put_string(&mut out, public);
    put_string(&mut out, &private);
    let encoded = Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(&*out));
    let mut text = Zeroizing::new(format!("{BEGIN}\n"));
    for chunk in encoded.as_bytes().chunks(70) {
        text.push_str(std::str::from_utf8(chunk).ok()?);
        text.push('\n');
    }
    text.push_str(END);
    text.push('\n');
    Some(text)
}

fn put_string(out: &mut Vec<u8>, field: &[u8]) {
    out.extend_from_slice(&(field.len() as u32).to_be_bytes());
    out.extend_from_slice(field);
}

/// The SSH wire format's reader: big-endian u32, length-prefixed strings.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn u32(&mut self) -> Option<u32> {
        let (head, rest) = self.0.split_first_chunk::<4>()?;
        self.0 = rest;
        Some(u32::from_be_bytes(*head))
    }

    fn string(&mut self) -> Option<&'a [u8]> {
        let len = self.u32()? as usize;
        if len > self.0.len() {
            return None;
        }
        let (field, rest) = self.0.split_at(len);
        self.0 = rest;
        Some(field)
    }
}

#[cfg(test)]
mod tests {
    use ssh_key::private::{EcdsaKeypair, KeypairData};
    use ssh_key::{EcdsaCurve, LineEnding, PrivateKey};

    use super::*;

    /// A P-256 key whose scalar's top byte is zero, as OpenSSH writes it:
    /// 31 bytes.
    fn short_scalar_key() -> (PrivateKey, Zeroizing<String>) {
        let mut rng = ssh_key::rand_core::OsRng;
        loop {
            let pair = EcdsaKeypair::random(&mut rng, EcdsaCurve::NistP256).unwrap();
            let EcdsaKeypair::NistP256 { private, .. } = &pair else {
                unreachable!()
            };
            if private.as_slice()[0] != 0 {
                continue;
            }
            let key = PrivateKey::new(KeypairData::from(pair), "web01").unwrap();
            let pem = key.to_openssh(LineEnding::LF).unwrap();
            let short = rewrite_scalar(&pem, |s, _| {
                Some(s.strip_prefix(&[0]).unwrap_or(s).to_vec())
            })
            .unwrap();
            return (key, short);
        }
    }

    #[test]
    fn a_short_scalar_is_padded_into_the_same_key() {
        let (key, short) = short_scalar_key();
        let refused = PrivateKey::from_openssh(short.as_bytes()).unwrap_err();
        assert!(refused.to_string().contains("length"), "{refused}");
        let read = PrivateKey::from_openssh(padded(&short).unwrap().as_bytes()).unwrap();
        assert_eq!(read.public_key(), key.public_key());
        assert_eq!(read.key_data(), key.key_data());
        // A full-size scalar, an Ed25519 key, text that is no key: untouched.
        let pem = key.to_openssh(LineEnding::LF).unwrap();
        assert!(padded(&pem).is_none());
        assert!(padded("not a key").is_none());
    }
}
