//! Exit codes: which errors are the user's (bad input, unknown image, missing
//! file, corrupt tarball) and which are vauban's or the machine's (a corrupt
//! store, a failed disk, a bug).

use std::io::ErrorKind;

use vauban_oci::Error as OciError;

/// The user asked for something that cannot be done: fix the input and retry.
pub const USER_ERROR: u8 = 1;
/// Something broke inside vauban, in its store or on the machine.
pub const INTERNAL_ERROR: u8 = 2;

/// The exit code for `err`: the first library error of the chain decides;
/// messages written by the commands themselves (`bail!`) are user errors.
pub fn code_for(err: &anyhow::Error) -> u8 {
    for cause in err.chain() {
        if let Some(e) = cause.downcast_ref::<OciError>() {
            return oci_code(e);
        }
        if let Some(e) = cause.downcast_ref::<std::io::Error>() {
            return io_code(e.kind());
        }
    }
    USER_ERROR
}

/// The error chain on one line, like `{:#}`, but without repeating a cause
/// whose text its parent's message already ends with (library errors that
/// embed their source in their message).
pub fn message(err: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if out.ends_with(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out.replace('\n', " ")
}

fn oci_code(e: &OciError) -> u8 {
    match e {
        OciError::Io { source, .. } => io_code(source.kind()),
        OciError::InvalidReference { .. }
        | OciError::ImageNotFound(_)
        | OciError::InvalidDigest(_)
        | OciError::UnsafeEntry { .. }
        | OciError::Tar { .. }
        | OciError::UnsupportedMediaType(_)
        | OciError::Registry { .. }
        | OciError::Unauthorized { .. }
        | OciError::MissingTool { .. }
        | OciError::StoreBusy { .. } => USER_ERROR,
        _ => INTERNAL_ERROR,
    }
}

fn io_code(kind: ErrorKind) -> u8 {
    match kind {
        ErrorKind::NotFound
        | ErrorKind::PermissionDenied
        | ErrorKind::AlreadyExists
        | ErrorKind::InvalidInput
        | ErrorKind::InvalidData
        | ErrorKind::UnexpectedEof
        | ErrorKind::NotADirectory
        | ErrorKind::IsADirectory
        | ErrorKind::DirectoryNotEmpty
        | ErrorKind::ReadOnlyFilesystem
        | ErrorKind::StorageFull
        | ErrorKind::QuotaExceeded => USER_ERROR,
        _ => INTERNAL_ERROR,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_and_internal_errors() {
        let e = anyhow::Error::new(OciError::ImageNotFound("x:latest".into()));
        assert_eq!(code_for(&e), USER_ERROR);
        let e = anyhow::Error::new(OciError::BlobNotFound("sha256:00".into()))
            .context("reading image x");
        assert_eq!(code_for(&e), INTERNAL_ERROR);
        let e = anyhow::Error::new(OciError::io(
            "open",
            "/nope",
            std::io::Error::from(ErrorKind::NotFound),
        ));
        assert_eq!(code_for(&e), USER_ERROR);
        assert_eq!(
            code_for(&anyhow::anyhow!("directory not empty")),
            USER_ERROR
        );
    }

    #[test]
    fn message_does_not_repeat_embedded_causes() {
        let e = anyhow::Error::new(OciError::io(
            "open",
            "/nope",
            std::io::Error::new(ErrorKind::NotFound, "gone"),
        ))
        .context("cannot import /nope");
        assert_eq!(message(&e), "cannot import /nope: open /nope: gone");
    }
}
