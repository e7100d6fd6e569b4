//! The base image of a release, made from its source and cached by its recipe:
//! `image:` pulled, `tarball:` checked against its digest then imported,
//! `mmdebstrap:` bootstrapped (`--mode=unshare` when not root), the original's
//! `url:` cloud image checked against `sha512sums:` and its root partition read
//! rootless with libguestfs' `virt-tar-out`, and a release named by its suite
//! bootstrapped as the original debootstrapped it.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest as _, Sha256, Sha512};
use vauban_oci::image::{import, ImportOptions};
use vauban_oci::registry::{RegistryOptions, RemoteReference};
use vauban_oci::store::Store;
use vauban_oci::Image;

use super::cache::StepKey;
use super::inputs::hex;
use crate::config::{Checksum, Mmdebstrap, Release, ReleaseSource, Sha512Sums, TarballLocation};
use crate::error::{Blame, Error, Result};

/// What makes a release's base, as text: the same recipe gives the same base.
pub(crate) fn recipe(release: &Release) -> String {
    match &release.source {
        ReleaseSource::Image(r) => format!("image {r}"),
        ReleaseSource::Tarball { tarball, checksum } => {
            format!("tarball {} {}", checksum.algorithm(), checksum.hex())
                + match tarball {
                    TarballLocation::Path(_) | TarballLocation::Url(_) => "",
                }
        }
        ReleaseSource::Mmdebstrap(m) | ReleaseSource::Suite(m) => {
            format!("mmdebstrap {}", mmdebstrap_argv(m, "OUT").join(" "))
        }
        ReleaseSource::CloudImage { url, sha512sums } => match sha512sums {
            Sha512Sums::Digest(d) => format!("cloud image sha512 {d}"),
            Sha512Sums::Url(sums) => format!("cloud image {url} sums {sums}"),
        },
    }
}

/// The cache key of the base of `release`: the same recipe gives the same base.
pub(crate) fn cache_key(release: &Release) -> StepKey {
    StepKey(hex(Sha256::digest(
        format!("release {}", recipe(release)).as_bytes(),
    )
    .as_slice()))
}

/// Where the base of `release` comes from, in words (`--check`).
pub fn describe(release: &Release) -> String {
    match &release.source {
        ReleaseSource::Image(r) => format!("image {r}"),
        ReleaseSource::Tarball { tarball, checksum } => match tarball {
            TarballLocation::Path(p) => {
                format!("tarball {} ({})", p.display(), checksum.algorithm())
            }
            TarballLocation::Url(u) => format!("tarball {u} ({})", checksum.algorithm()),
        },
        ReleaseSource::Mmdebstrap(m) => format!("mmdebstrap {}", m.suite),
        ReleaseSource::Suite(m) => format!(
            "mmdebstrap {} (the key's suite, the original's packages)",
            m.suite
        ),
        ReleaseSource::CloudImage { url, .. } => format!("cloud image {url}"),
    }
}

/// The mmdebstrap command line writing `m` as a tarball to `out`. An include
/// that is an apt pattern (`?...`) or a path gets an option of its own:
/// mmdebstrap would split it at its commas otherwise.
pub(crate) fn mmdebstrap_argv(m: &Mmdebstrap, out: &str) -> Vec<String> {
    let mut argv = vec!["mmdebstrap".to_string()];
    if !rustix::process::geteuid().is_root() {
        argv.push("--mode=unshare".into());
    }
    if let Some(v) = &m.variant {
        argv.push(format!("--variant={v}"));
    }
    let whole = |p: &&String| p.starts_with(['?', '!', '~', '(', '/', '.']);
    for pattern in m.include.iter().filter(whole) {
        argv.push(format!("--include={pattern}"));
    }
    let names: Vec<&str> = m
        .include
        .iter()
        .filter(|p| !whole(p))
        .map(String::as_str)
        .collect();
    if !names.is_empty() {
        argv.push(format!("--include={}", names.join(",")));
    }
    argv.push("--format=tar".into());
    argv.push(m.suite.clone());
    argv.push(out.into());
    if let Some(mirror) = &m.mirror {
        argv.push(mirror.clone());
    }
    argv
}

/// Makes the base of `release` into `store` (unnamed), working in `work`.
pub(crate) fn make(
    store: &Store,
    release: &Release,
    registry: &RegistryOptions,
    work: &Path,
) -> Result<Image> {
    let key = release.key().to_owned();
    let fail = |blame: Blame| {
        let key = key.clone();
        move |message: String| Error::Release {
            release: key,
            message,
            blame,
        }
    };
    match &release.source {
        ReleaseSource::Image(r) => {
            let remote = RemoteReference::parse(r)?;
            let runtime = super::publish::runtime()?;
            let temp = vauban_oci::Reference::parse(&format!(
                "vauban-cache/release-pull:{}",
                std::process::id()
            ))?;
            runtime.block_on(vauban_oci::registry::pull(
                store,
                &remote,
                Some(&temp),
                registry,
                std::sync::Arc::new(vauban_oci::registry::NoProgress),
            ))?;
            let image = store.image(&temp)?;
            store.untag(&temp)?;
            Ok(image)
        }
        ReleaseSource::Tarball { tarball, checksum } => {
            let path = match tarball {
                TarballLocation::Path(p) => p.clone(),
                TarballLocation::Url(u) => {
                    download(u, &work.join("release.tar")).map_err(fail(Blame::Environment))?
                }
            };
            verify(&path, checksum).map_err(fail(Blame::User))?;
            Ok(import(store, &path, &ImportOptions::default(), &|_| {})?)
        }
        ReleaseSource::Mmdebstrap(m) | ReleaseSource::Suite(m) => {
            let out = work.join("mmdebstrap.tar");
            let argv = mmdebstrap_argv(m, &out.to_string_lossy());
            let mut env = Vec::new();
            if argv.iter().any(|a| a == "--mode=unshare") {
                let candidates = [std::env::temp_dir(), "/tmp".into(), "/var/tmp".into()];
                let tmp = unshare_tmpdir(&candidates, |p| {
                    use std::os::unix::fs::PermissionsExt;
                    Some(std::fs::metadata(p).ok()?.permissions().mode())
                })
                .ok_or_else(|| {
                    format!(
                        "mmdebstrap --mode=unshare makes its chroot as one of your subordinate \
                         ids, which none of {} lets in: set TMPDIR to a directory of mode \
                         1777 (as /tmp)",
                        candidates.map(|c| c.display().to_string()).join(", ")
                    )
                })
                .map_err(fail(Blame::Environment))?;
                env.push(("TMPDIR", tmp));
            }
            run(&argv, &env, &work.join("mmdebstrap.log")).map_err(fail(Blame::Environment))?;
            Ok(import(store, &out, &ImportOptions::default(), &|_| {})?)
        }
        ReleaseSource::CloudImage { url, sha512sums } => {
            let name = url.rsplit('/').next().unwrap_or("image.raw").to_owned();
            let disk = download(url, &work.join(&name)).map_err(fail(Blame::Environment))?;
            let expected = match sha512sums {
                Sha512Sums::Digest(d) => d.clone(),
                Sha512Sums::Url(sums) => {
                    let file = download(sums, &work.join("SHA512SUMS"))
                        .map_err(fail(Blame::Environment))?;
                    let text = std::fs::read_to_string(&file)
                        .map_err(|e| format!("read {}: {e}", file.display()))
                        .map_err(fail(Blame::Environment))?;
                    sum_of(&text, &name)
                        .ok_or_else(|| format!("{sums} has no line for {name}"))
                        .map_err(fail(Blame::User))?
                }
            };
            verify(&disk, &Checksum::Sha512(expected)).map_err(fail(Blame::User))?;
            let tar = work.join("rootfs.tar");
            let argv = vec![
                "virt-tar-out".to_string(),
                "-a".into(),
                disk.to_string_lossy().into_owned(),
                "/".into(),
                tar.to_string_lossy().into_owned(),
            ];
            run(&argv, &[], &work.join("virt-tar-out.log")).map_err(fail(Blame::Environment))?;
            Ok(import(store, &tar, &ImportOptions::default(), &|_| {})?)
        }
    }
}

/// The digest of `name` in a `SHA512SUMS` text.
fn sum_of(text: &str, name: &str) -> Option<String> {
    text.lines().find_map(|l| {
        let mut parts = l.split_whitespace();
        let digest = parts.next()?;
        let file = parts.next()?.trim_start_matches('*');
        (file == name).then(|| digest.to_lowercase())
    })
}

/// Checks `path` against `checksum`, streaming.
pub(crate) fn verify(path: &Path, checksum: &Checksum) -> Result<(), String> {
    let mut file =
        std::fs::File::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let mut buf = vec![0u8; 1 << 20];
    let mut sha256 = Sha256::new();
    let mut sha512 = Sha512::new();
    loop {
        let n = file
            .read(&mut buf)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        if n == 0 {
            break;
        }
        match checksum {
            Checksum::Sha256(_) => sha256.update(&buf[..n]),
            Checksum::Sha512(_) => sha512.update(&buf[..n]),
        }
    }
    let found = match checksum {
        Checksum::Sha256(_) => hex(sha256.finalize().as_slice()),
        Checksum::Sha512(_) => hex(sha512.finalize().as_slice()),
    };
    if found != checksum.hex() {
        return Err(format!(
            "{} has {} {found}, the config says {}",
            path.display(),
            checksum.algorithm(),
            checksum.hex()
        ));
    }
    Ok(())
}

/// Downloads `url` to `dest` with curl (retries, redirects).
fn download(url: &str, dest: &Path) -> Result<PathBuf, String> {
    let argv = vec![
        "curl".to_string(),
        "-fsSL".into(),
        "--retry".into(),
        "3".into(),
        "-o".into(),
        dest.to_string_lossy().into_owned(),
        url.into(),
    ];
    run(&argv, &[], &dest.with_extension("curl.log"))?;
    Ok(dest.to_owned())
}

/// Where `mmdebstrap --mode=unshare` can make its chroot: it does so as root of
/// its user namespace, one of our subordinate ids, which a private `$TMPDIR`
/// (0700, as pam_tmpdir makes) shuts out. The first of `candidates` that every
/// user may write to, sticky as `/tmp` is, and reach through its parents.
fn unshare_tmpdir(
    candidates: &[PathBuf],
    mode_of: impl Fn(&Path) -> Option<u32>,
) -> Option<PathBuf> {
    let open_to_all = |dir: &Path| mode_of(dir).is_some_and(|m| m & 0o1003 == 0o1003);
    let reachable = |dir: &Path| {
        dir.ancestors()
            .skip(1)
            .all(|a| mode_of(a).is_some_and(|m| m & 0o001 != 0))
    };
    candidates
        .iter()
        .find(|dir| dir.is_absolute() && open_to_all(dir) && reachable(dir))
        .cloned()
}

/// Runs `argv` with `env` added, its output in `log`; an error says what to
/// install when the program is missing, else the log's last lines.
fn run(argv: &[String], env: &[(&str, PathBuf)], log: &Path) -> Result<(), String> {
    let program = &argv[0];
    let Some(path) = vauban_oci::program_path::which(program, std::env::var_os("PATH").as_deref())
    else {
        let package = match program.as_str() {
            "virt-tar-out" => "guestfs-tools",
            other => other,
        };
        return Err(format!(
            "{program} is not installed: install it (`apt-get install {package}`)"
        ));
    };
    tracing::debug!("running {}", argv.join(" "));
    let out =
        crate::private::create_file(log).map_err(|e| format!("create {}: {e}", log.display()))?;
    let err = out
        .try_clone()
        .map_err(|e| format!("create {}: {e}", log.display()))?;
    let mut cmd = Command::new(path);
    cmd.args(&argv[1..])
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(std::process::Stdio::null())
        .stdout(out)
        .stderr(err);
    // mmdebstrap HUPs its whole process group when its tarball fails: a
    // group of its own, so that vauban reports the failure instead of dying.
    crate::sandbox::own_group_dying_with_us(&mut cmd);
    let status = cmd
        .status()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    if !status.success() {
        return Err(format!(
            "{} failed ({status}); log {}:\n{}",
            argv.join(" "),
            log.display(),
            crate::export::runlog::tail(log, 15)
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mmdebstrap_takes_the_recipe() {
        let m = Mmdebstrap {
            suite: "bookworm".into(),
            variant: Some("minbase".into()),
            include: vec!["python3".into(), "systemd-sysv".into()],
            mirror: Some("http://deb.debian.org/debian".into()),
        };
        let argv = mmdebstrap_argv(&m, "/o.tar");
        let tail: Vec<&str> = argv.iter().map(String::as_str).rev().take(5).collect();
        assert_eq!(
            tail,
            [
                "http://deb.debian.org/debian",
                "/o.tar",
                "bookworm",
                "--format=tar",
                "--include=python3,systemd-sysv"
            ]
        );
    }

    #[test]
    fn a_suite_named_release_is_bootstrapped_as_the_original_did() {
        let m = Mmdebstrap::original("bookworm");
        let argv = mmdebstrap_argv(&m, "/o.tar");
        let args: Vec<&str> = argv
            .iter()
            .map(String::as_str)
            .skip_while(|a| *a != "--variant=required")
            .collect();
        assert_eq!(
            args,
            [
                "--variant=required",
                "--include=?and(?priority(important),?not(?name(^ifupdown$)))",
                "--include=debconf-utils,openssh-client,openssl,openssh-server,sudo,python3,\
                 bash-completion,unattended-upgrades,xz-utils,file,curl,ca-certificates",
                "--format=tar",
                "bookworm",
                "/o.tar"
            ]
        );
    }

    #[test]
    fn mmdebstrap_unshare_gets_a_temp_dir_its_subordinate_root_can_write() {
        let modes = |p: &Path| match p.to_str()? {
            "/" | "/home" | "/var" => Some(0o40755),
            "/home/me/tmp" => Some(0o40700),
            "/home/me" => Some(0o40711),
            "/tmp" | "/var/tmp" => Some(0o41777),
            "/srv/shut" => Some(0o41777),
            "/srv" => Some(0o40700),
            "/scratch" => Some(0o40777),
            _ => None,
        };
        let pick = |c: &[&str]| {
            let c: Vec<PathBuf> = c.iter().map(PathBuf::from).collect();
            unshare_tmpdir(&c, modes)
        };
        // A private TMPDIR is passed over for /tmp.
        assert_eq!(pick(&["/home/me/tmp", "/tmp"]), Some("/tmp".into()));
        // Open to all but behind a closed parent, or not sticky, or missing.
        assert_eq!(
            pick(&["/srv/shut", "/scratch", "/nowhere", "/var/tmp"]),
            Some("/var/tmp".into())
        );
        assert_eq!(pick(&["tmp", "/home/me/tmp"]), None);
    }

    #[test]
    fn a_checksum_is_checked() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("t");
        std::fs::write(&f, b"abc").unwrap();
        let good = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        verify(&f, &Checksum::Sha256(good.into())).unwrap();
        let err = verify(&f, &Checksum::Sha256("0".repeat(64))).unwrap_err();
        assert!(
            err.contains(good) && err.contains("the config says"),
            "{err}"
        );
    }

    #[test]
    fn sha512sums_lines_are_read() {
        let text = "abc  other.raw\nDEF *debian-12.raw\n";
        assert_eq!(sum_of(text, "debian-12.raw").as_deref(), Some("def"));
        assert_eq!(sum_of(text, "missing.raw"), None);
    }
}
