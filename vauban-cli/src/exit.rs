//! Exit codes: the libraries say who is to blame for an error
//! ([`Blame`]); this maps it. 1: the user's input or machine (fix it and retry),
//! 2: vauban's own failure or a broken store. A command that cannot be started
//! in the sandbox exits 127 (not found) or 126 (not executable), as shells and
//! podman do; an interrupted command 128 + the signal (130, 143).

use vauban_core::{Blame, Error as CoreError};
use vauban_oci::Error as OciError;

/// The user asked for something that cannot be done: fix the input and retry.
pub const USER_ERROR: u8 = 1;
/// Something broke inside vauban, in its store or on the machine.
pub const INTERNAL_ERROR: u8 = 2;

/// The exit code for `err`: the first library error of the chain decides;
/// messages written by the commands themselves (`bail!`) are user errors.
pub fn code_for(err: &anyhow::Error) -> u8 {
    for cause in err.chain() {
        if let Some(e) = cause.downcast_ref::<CoreError>() {
            return core_code(e);
        }
        if let Some(e) = cause.downcast_ref::<OciError>() {
            return blame_code(e.blame());
        }
        if let Some(e) = cause.downcast_ref::<std::io::Error>() {
            return blame_code(Blame::of_io(e.kind()));
        }
    }
    USER_ERROR
}

fn core_code(e: &CoreError) -> u8 {
    match e {
        CoreError::Interrupted { signal } | CoreError::BuildInterrupted { signal } => {
            (128 + signal) as u8
        }
        CoreError::Exec { source, .. } if source.kind() == std::io::ErrorKind::NotFound => 127,
        CoreError::Exec { .. } => 126,
        other => blame_code(other.blame()),
    }
}

fn blame_code(blame: Blame) -> u8 {
    match blame {
        Blame::User | Blame::Environment => USER_ERROR,
        Blame::Internal => INTERNAL_ERROR,
    }
}

/// The error chain on one line: each error says its own words once, so the
/// chain is joined as it is. Escaped ([`vauban_core::printable`]): an error
/// may quote a build's output or an image's path.
pub fn message(err: &anyhow::Error) -> String {
    vauban_core::printable::escape(&format!("{err:#}").replace('\n', " ")).into_owned()
}

/// What to do about `err`, in the CLI's own terms (flags, commands), when the
/// error says something a flag fixes.
pub fn hint(err: &anyhow::Error) -> Option<&'static str> {
    use vauban_oci::Unreachable;
    for cause in err.chain() {
        match registry_error(cause) {
            Some(OciError::Unreachable {
                reason: Unreachable::PlainHttp,
                ..
            }) => return Some("a plain-HTTP registry needs --tls-verify=false"),
            Some(OciError::Unreachable {
                reason: Unreachable::Refused,
                ..
            }) => return Some("check the registry's address and port: nothing listens there"),
            Some(OciError::Unreachable {
                reason: Unreachable::Tls,
                ..
            }) => {
                return Some(
                    "for a registry with a self-signed certificate, --tls-verify=false \
                     (or add its CA to the system's)",
                )
            }
            Some(OciError::Unauthorized { user: None, .. }) => {
                return Some(
                    "give credentials: --creds USER:PASS, --authfile FILE or `vauban login`",
                )
            }
            _ => {}
        }
    }
    None
}

/// The registry error `cause` is or wraps. The `#[error(transparent)]`
/// wrapper `CoreError::Oci` hands its inner error's *source* to the chain,
/// never the inner error itself, so the chain alone would not show it
/// (`vauban build --registry` and `vauban deploy` lost their hints that way).
fn registry_error<'a>(cause: &'a (dyn std::error::Error + 'static)) -> Option<&'a OciError> {
    if let Some(e) = cause.downcast_ref::<OciError>() {
        return Some(e);
    }
    match cause.downcast_ref::<CoreError>() {
        Some(CoreError::Oci(e)) => Some(e),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::ErrorKind;

    fn io(kind: ErrorKind) -> std::io::Error {
        std::io::Error::from(kind)
    }

    fn s(text: &str) -> String {
        text.to_owned()
    }

    /// Every variant of `vauban_oci::Error`, with its exit code.
    fn oci_table() -> Vec<(OciError, u8)> {
        vec![
            (
                OciError::io("open", "/nope", io(ErrorKind::NotFound)),
                USER_ERROR,
            ),
            (
                OciError::io("write", "/s", io(ErrorKind::Other)),
                INTERNAL_ERROR,
            ),
            (OciError::InvalidDigest(s("sha256:x")), USER_ERROR),
            (
                OciError::DigestMismatch {
                    what: s("blob"),
                    expected: vauban_oci::Digest::of_bytes(b"a"),
                    found: vauban_oci::Digest::of_bytes(b"b"),
                },
                INTERNAL_ERROR,
            ),
            (
                OciError::SizeMismatch {
                    what: s("blob"),
                    expected: 1,
                    found: 2,
                },
                INTERNAL_ERROR,
            ),
            (
                OciError::Json {
                    what: s("index.json"),
                    source: serde_json::from_str::<u8>("x").unwrap_err(),
                },
                INTERNAL_ERROR,
            ),
            (
                OciError::TooLarge {
                    what: s("manifest"),
                    size: 9,
                    limit: 1,
                },
                INTERNAL_ERROR,
            ),
            (
                OciError::UnsafeEntry {
                    entry: s("../x"),
                    reason: s("escapes"),
                },
                USER_ERROR,
            ),
            (
                OciError::Tar {
                    what: s("rootfs.tar"),
                    source: io(ErrorKind::InvalidData),
                },
                USER_ERROR,
            ),
            (OciError::UnsupportedMediaType(s("x/y")), USER_ERROR),
            (
                OciError::InvalidReference {
                    reference: s("A"),
                    reason: s("upper case"),
                },
                USER_ERROR,
            ),
            (OciError::ImageNotFound(s("x:latest")), USER_ERROR),
            (
                OciError::BlobNotFound(vauban_oci::Digest::of_bytes(b"")),
                INTERNAL_ERROR,
            ),
            (OciError::StoreBusy { path: "/s".into() }, USER_ERROR),
            (
                OciError::BadStore {
                    path: "/s".into(),
                    reason: s("no oci-layout"),
                },
                INTERNAL_ERROR,
            ),
            (
                OciError::Registry {
                    registry: s("r:5000"),
                    message: s("unreachable"),
                },
                USER_ERROR,
            ),
            (
                OciError::Unauthorized {
                    registry: s("r:5000"),
                    user: Some(s("u")),
                    message: s("401"),
                },
                USER_ERROR,
            ),
            (OciError::InvalidCredentials(s("no colon")), USER_ERROR),
            (
                OciError::RegistryStatus {
                    registry: s("r:5000"),
                    request: s("GET /v2/"),
                    status: 500,
                    detail: s("boom"),
                },
                USER_ERROR,
            ),
            (
                OciError::Unreachable {
                    registry: s("127.0.0.1:5001"),
                    url: s("http://127.0.0.1:5001/v2/"),
                    reason: vauban_oci::Unreachable::Refused,
                    source: Box::new(io(ErrorKind::ConnectionRefused)),
                },
                USER_ERROR,
            ),
            (OciError::NoStoreDir, USER_ERROR),
            (
                OciError::BadImage {
                    manifest: vauban_oci::Digest::of_bytes(b"m"),
                    reason: s("2 layers but 1 diff_ids"),
                },
                INTERNAL_ERROR,
            ),
            (
                OciError::NotRemoved {
                    path: "/s/layers/x".into(),
                },
                INTERNAL_ERROR,
            ),
            (
                OciError::RefusedRedirect {
                    registry: s("r:5000"),
                    location: s("http://127.0.0.2/"),
                    reason: s("private address of another host"),
                },
                USER_ERROR,
            ),
            (
                OciError::PlatformNotFound {
                    reference: s("r/x:1"),
                    platform: s("linux/s390x"),
                    available: s("linux/amd64"),
                },
                USER_ERROR,
            ),
            (
                OciError::MissingTool {
                    transport: s("oci-archive"),
                    tool: s("skopeo"),
                    hint: s("apt-get install skopeo"),
                },
                USER_ERROR,
            ),
        ]
    }

    /// Every variant of `vauban_core::Error`, with its exit code.
    fn core_table() -> Vec<(CoreError, u8)> {
        let failure = vauban_core::error::AnsibleFailure {
            stage: s("second.yml"),
            host: s("web01"),
            status: s("exit status: 2"),
            failure: Some(s("TASK [boom]")),
            log: "/log".into(),
            tail: s("fatal"),
        };
        vec![
            (
                CoreError::io("mount", "/m", io(ErrorKind::PermissionDenied)),
                USER_ERROR,
            ),
            (
                CoreError::io("read", "/m", io(ErrorKind::Other)),
                INTERNAL_ERROR,
            ),
            (CoreError::Oci(OciError::ImageNotFound(s("x"))), USER_ERROR),
            (
                CoreError::Oci(OciError::BlobNotFound(vauban_oci::Digest::of_bytes(b"d"))),
                INTERNAL_ERROR,
            ),
            (
                CoreError::NoSubIdRange {
                    kind: "uid",
                    user: s("u"),
                    file: "/etc/subuid".into(),
                    free: 100_000,
                },
                USER_ERROR,
            ),
            (
                CoreError::BadSubIdLine {
                    file: "/etc/subuid".into(),
                    line: 1,
                    text: s("u"),
                },
                USER_ERROR,
            ),
            (CoreError::UidmapMissing { tool: "newuidmap" }, USER_ERROR),
            (
                CoreError::UserNamespacesDisabled {
                    hint: s("sysctl"),
                    source: io(ErrorKind::PermissionDenied),
                },
                USER_ERROR,
            ),
            // The machine (kernel, tools, namespaces) cannot do it: the user's to fix.
            (CoreError::sys("fork", io(ErrorKind::Other)), USER_ERROR),
            (
                CoreError::Mount {
                    what: s("proc"),
                    target: "/m/proc".into(),
                    source: io(ErrorKind::Other),
                },
                USER_ERROR,
            ),
            (
                CoreError::OverlayRefused {
                    target: "/m".into(),
                    layers: 3,
                    hint: s("?"),
                    source: io(ErrorKind::Other),
                },
                USER_ERROR,
            ),
            (
                CoreError::Command {
                    command: s("newuidmap 1"),
                    status: s("exit status: 1"),
                    stderr: s("no"),
                },
                USER_ERROR,
            ),
            // A helper's error keeps the blame it had in the helper.
            (
                CoreError::InSandbox {
                    what: s("extract"),
                    source: Box::new(vauban_core::error::RemoteError {
                        blame: Blame::User,
                        message: s("layer entry \"../x\": escapes"),
                        source: None,
                    }),
                },
                USER_ERROR,
            ),
            (
                CoreError::InSandbox {
                    what: s("extract"),
                    source: Box::new(vauban_core::error::RemoteError {
                        blame: Blame::Internal,
                        message: s("digest mismatch"),
                        source: None,
                    }),
                },
                INTERNAL_ERROR,
            ),
            (
                CoreError::ChildDied {
                    what: s("run"),
                    status: s("signal 9"),
                    stderr: String::new(),
                },
                INTERNAL_ERROR,
            ),
            (CoreError::Interrupted { signal: 15 }, 143),
            (CoreError::Interrupted { signal: 2 }, 130),
            (
                CoreError::Exec {
                    program: s("/no/such"),
                    source: io(ErrorKind::NotFound),
                },
                127,
            ),
            (
                CoreError::Exec {
                    program: s("/etc/passwd"),
                    source: io(ErrorKind::PermissionDenied),
                },
                126,
            ),
            (CoreError::EmptyCommand, USER_ERROR),
            (
                CoreError::BadStage {
                    spec: s("@"),
                    reason: s("empty"),
                },
                USER_ERROR,
            ),
            (
                CoreError::BadHost {
                    host: s("a b"),
                    reason: s("space"),
                },
                USER_ERROR,
            ),
            (
                CoreError::ToolMissing {
                    tool: s("ansible-playbook"),
                    hint: "apt-get install ansible",
                },
                USER_ERROR,
            ),
            (
                CoreError::Git {
                    repo: s("file:///r"),
                    command: s("git fetch"),
                    status: s("exit status: 128"),
                    stderr: s("no repo"),
                },
                USER_ERROR,
            ),
            (
                CoreError::NoSuchBranch {
                    repo: s("r"),
                    branch: s("b"),
                },
                USER_ERROR,
            ),
            (
                CoreError::BranchOfDirectory {
                    stage: s("b@x.yml"),
                    branch: s("b"),
                    dir: "/r".into(),
                },
                USER_ERROR,
            ),
            (
                CoreError::NoPlaybook {
                    playbook: s("x.yml"),
                    root: "/r".into(),
                    branch: s("main"),
                    suggestion: Some(s("y.yml")),
                },
                USER_ERROR,
            ),
            (
                CoreError::NoInventory {
                    inventory: "/r/inventry".into(),
                },
                USER_ERROR,
            ),
            (
                CoreError::PlaybookSyntax {
                    playbooks: s("x.yml"),
                    root: "/r".into(),
                    message: s("ERROR! bad"),
                },
                USER_ERROR,
            ),
            (
                CoreError::NoHostMatched {
                    stage: s("x.yml"),
                    host: s("web03"),
                    patterns: vec![s("web")],
                    groups: vec![],
                },
                USER_ERROR,
            ),
            (
                CoreError::NoPython {
                    image: s("busybox"),
                    interpreter: s("python3"),
                },
                USER_ERROR,
            ),
            (
                CoreError::StageStep {
                    stage: s("x.yml"),
                    step: "dpkg-query",
                    status: s("exit status: 1"),
                },
                INTERNAL_ERROR,
            ),
            (
                CoreError::HookFailed {
                    stage: s("x.yml"),
                    hook: "pre-ansible",
                    status: s("exit status: 1"),
                    log: "/log".into(),
                },
                USER_ERROR,
            ),
            (CoreError::AnsibleFailed(Box::new(failure)), USER_ERROR),
            (
                CoreError::Internal {
                    what: s("a host without keys after ensure_hosts"),
                },
                INTERNAL_ERROR,
            ),
            // The other sections: config.yml, key store, boot files, conffs, builds.
            (
                CoreError::ReadConfig {
                    path: "/c.yml".into(),
                    source: io(ErrorKind::NotFound),
                },
                USER_ERROR,
            ),
            (
                CoreError::EmptyConfig {
                    file: "/c.yml".into(),
                },
                USER_ERROR,
            ),
            (
                CoreError::NoDefaultPath {
                    var: "XDG_DATA_HOME",
                },
                USER_ERROR,
            ),
            (
                CoreError::RunGpg {
                    file: "/k.tar.gpg".into(),
                    source: io(ErrorKind::NotFound),
                },
                USER_ERROR,
            ),
            (
                CoreError::NoKernel {
                    image: s("x"),
                    modules: vec![],
                    kernels: vec![],
                    packages: "linux-image-amd64",
                },
                USER_ERROR,
            ),
            (
                CoreError::WrongKeys {
                    host: s("web01"),
                    keys_host: s("web02"),
                },
                INTERNAL_ERROR,
            ),
            (
                CoreError::Release {
                    release: s("debian-12"),
                    message: s("?"),
                    blame: Blame::Internal,
                },
                INTERNAL_ERROR,
            ),
            (
                CoreError::HostsFailed {
                    master: s("master-web"),
                    failures: vec![
                        (s("web01"), CoreError::EmptyCommand),
                        (s("web02"), CoreError::Internal { what: s("?") }),
                    ],
                },
                INTERNAL_ERROR,
            ),
            (CoreError::BuildInterrupted { signal: 2 }, 130),
        ]
    }

    #[test]
    fn every_oci_error_has_its_code() {
        for (err, code) in oci_table() {
            let text = err.to_string();
            // Bare, and under a command's context.
            let e = anyhow::Error::new(err).context("pushing x");
            assert_eq!(code_for(&e), code, "{text}");
        }
    }

    #[test]
    fn every_core_error_has_its_code() {
        for (err, code) in core_table() {
            let text = err.to_string();
            let e = anyhow::Error::new(err).context("applying 1 stage(s)");
            assert_eq!(code_for(&e), code, "{text}");
        }
    }

    #[test]
    fn chains_without_library_errors() {
        // Commands' own messages are user errors; bare io errors by their kind.
        assert_eq!(
            code_for(&anyhow::anyhow!("directory not empty")),
            USER_ERROR
        );
        let e = anyhow::Error::new(io(ErrorKind::NotFound)).context("reading the password");
        assert_eq!(code_for(&e), USER_ERROR);
        let e = anyhow::Error::new(io(ErrorKind::Other)).context("starting the runtime");
        assert_eq!(code_for(&e), INTERNAL_ERROR);
    }

    #[test]
    fn message_says_each_cause_once() {
        let e = anyhow::Error::new(OciError::io(
            "open",
            "/nope",
            std::io::Error::new(ErrorKind::NotFound, "gone"),
        ))
        .context("cannot import /nope");
        assert_eq!(message(&e), "cannot import /nope: open /nope: gone");
    }

    #[test]
    fn message_shows_control_characters_escaped() {
        let e = anyhow::anyhow!("last lines:\n-\x1b]0;pwned\x07\u{9b}2J\tok");
        assert_eq!(message(&e), "last lines: -\\x1b]0;pwned\\x07\\x9b2J\tok");
    }

    #[test]
    fn registry_errors_point_at_the_flag() {
        let e = anyhow::Error::new(OciError::Unauthorized {
            registry: s("r:5000"),
            user: None,
            message: s("401"),
        });
        assert!(hint(&e).unwrap().contains("--creds"));
        assert_eq!(
            message(&e),
            "registry r:5000 asks for credentials and none were given: 401"
        );
        let e = anyhow::Error::new(OciError::Unauthorized {
            registry: s("r:5000"),
            user: Some(s("me")),
            message: s("401"),
        });
        assert_eq!(hint(&e), None);
        assert_eq!(
            message(&e),
            "registry r:5000 refused the credentials of me: 401"
        );
    }

    #[test]
    fn the_plain_http_hint_fires_through_a_build_and_a_deploy() {
        let plain = || OciError::Unreachable {
            registry: s("127.0.0.1:5001"),
            url: s("https://127.0.0.1:5001/v2/"),
            reason: vauban_oci::Unreachable::PlainHttp,
            source: Box::new(io(ErrorKind::InvalidData)),
        };
        let wanted = Some("a plain-HTTP registry needs --tls-verify=false");
        // `vauban push`: the registry's error itself.
        assert_eq!(hint(&anyhow::Error::new(plain())), wanted);
        // `vauban deploy`: through the core's error, with the command's context.
        let deploy = anyhow::Error::new(CoreError::Oci(plain())).context("deploy master-web");
        assert_eq!(hint(&deploy), wanted);
        // `vauban build --registry`: the same, under the build's context.
        let build = anyhow::Error::new(CoreError::Oci(plain())).context("build of master-web");
        assert_eq!(hint(&build), wanted);
        assert_eq!(code_for(&build), USER_ERROR);
    }
}
