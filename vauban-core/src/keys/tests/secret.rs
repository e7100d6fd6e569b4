//! Reading the user's key: identity or passphrase, from text, a file or the
//! environment; empty secrets refused; loose file modes warned about.

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::sync::{Arc, Mutex};

use age::secrecy::ExposeSecret;
use rstest::rstest;

use crate::keys::{KeySecret, SecretKind};
use crate::Error;

#[test]
fn an_identity_file_as_age_keygen_writes_it_is_an_identity() {
    let identity = age::x25519::Identity::generate();
    let recipient = identity.to_public().to_string();
    let text = format!(
        "# created: 2026-01-01T00:00:00Z\n# public key: {recipient}\n{}\n",
        identity.to_string().expose_secret()
    );
    let secret = KeySecret::parse(&text, "test").unwrap();
    assert_eq!(secret.kind(), SecretKind::Identity);
    assert_eq!(secret.recipient().as_deref(), Some(recipient.as_str()));
}

#[rstest]
#[case::newline("zebra quartz 1729\n", "zebra quartz 1729")]
#[case::crlf("zebra quartz 1729\r\n", "zebra quartz 1729")]
#[case::inner_spaces_kept("  zebra  ", "  zebra  ")]
#[case::comment_like("# not a comment, a passphrase", "# not a comment, a passphrase")]
fn anything_else_is_a_passphrase(#[case] text: &str, #[case] passphrase: &str) {
    let secret = KeySecret::parse(text, "test").unwrap();
    assert_eq!(secret.kind(), SecretKind::Passphrase);
    assert_eq!(secret.recipient(), None);
    // The passphrase is the text less its line end: the explicit one opens its store.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys.age");
    let ciphertext =
        crate::keys::cipher::encrypt(&secret.with_work_factor(10), b"{}", &path).unwrap();
    let explicit = KeySecret::passphrase(passphrase).unwrap();
    let plaintext = crate::keys::cipher::decrypt(&explicit, &ciphertext, &path).unwrap();
    assert_eq!(&plaintext[..], b"{}");
}

#[rstest]
#[case::empty("")]
#[case::newline("\n")]
#[case::blank("  \n\t\n")]
fn an_empty_secret_is_an_error(#[case] text: &str) {
    let err = KeySecret::parse(text, "$VAUBAN_KEYSTORE_KEY").unwrap_err();
    assert!(matches!(&err, Error::EmptySecret { origin } if origin == "$VAUBAN_KEYSTORE_KEY"));
    assert!(matches!(
        KeySecret::passphrase("").unwrap_err(),
        Error::EmptySecret { .. }
    ));
}

#[rstest]
#[case::bad_checksum("AGE-SECRET-KEY-1QQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ")]
#[case::two_lines("AGE-SECRET-KEY-1AAA\nAGE-SECRET-KEY-1BBB")]
fn a_bad_identity_is_an_error_that_does_not_quote_it(#[case] text: &str) {
    let err = KeySecret::parse(text, "key.txt").unwrap_err();
    assert!(matches!(&err, Error::InvalidIdentity { origin } if origin == "key.txt"));
    for line in text.lines() {
        assert!(!err.to_string().contains(line), "{err}");
    }
    assert!(KeySecret::identity(text).is_err());
}

#[test]
fn from_env_var_reads_the_variable_and_an_unset_one_is_none() {
    // PATH is set in any test run; a passphrase is whatever is not an identity.
    let secret = KeySecret::from_env_var("PATH").unwrap().unwrap();
    assert_eq!(secret.kind(), SecretKind::Passphrase);
    let unset = "VAUBAN_TEST_KEYS_SURELY_UNSET_VARIABLE";
    assert!(std::env::var_os(unset).is_none());
    assert!(KeySecret::from_env_var(unset).unwrap().is_none());
    assert_eq!(crate::keys::KEY_ENV, "VAUBAN_KEYSTORE_KEY");
}

#[test]
fn from_file_reads_it_and_warns_when_group_or_others_may_read_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("passphrase");
    fs::write(&path, "zebra quartz 1729\n").unwrap();

    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    let (secret, log) = with_log(|| KeySecret::from_file(&path));
    assert_eq!(secret.unwrap().kind(), SecretKind::Passphrase);
    assert!(log.contains("WARN") && log.contains("chmod 600"), "{log}");
    assert!(
        log.contains(&path.display().to_string()) && log.contains("0644"),
        "{log}"
    );
    assert!(
        !log.contains("zebra"),
        "the warning shows the secret: {log}"
    );

    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
    let (secret, log) = with_log(|| KeySecret::from_file(&path));
    assert!(secret.is_ok());
    assert_eq!(log, "", "no warning for a 0600 file");

    let missing = dir.path().join("missing");
    let err = KeySecret::from_file(&missing).unwrap_err();
    assert!(matches!(&err, Error::ReadSecret { path, .. } if *path == missing));

    fs::write(&path, "\n").unwrap();
    let err = KeySecret::from_file(&path).unwrap_err();
    assert!(matches!(&err, Error::EmptySecret { origin } if *origin == path.display().to_string()));
}

/// Runs `f` with the tracing output of this thread captured; returns it too.
fn with_log<T>(f: impl FnOnce() -> T) -> (T, String) {
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);
    impl Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buffer = Buffer::default();
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let value = tracing::subscriber::with_default(subscriber, f);
    let log = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
    (value, log)
}
