//! `drift_report:` on a master: the image gets `vauban-drift`, the one-shot
//! tool a live host runs to send what it changed since it booted (its
//! overlay's upper dir, as one OCI layer) to `vauban serve`, or to write it
//! to a file. A Python script, not a vauban binary: the build machine's
//! binary may not run on the image's C library, and every image vauban
//! builds has Ansible's Python. One layer on top of the master's stages:
//! the script, its settings (`/etc/vauban/drift.json`: the secrets, the
//! master's `exclude`, `max_size`) and a oneshot systemd unit to run it
//! (not enabled: a timer or a shutdown hook is the site's choice). The
//! layer is the same bytes for the same settings, and the image's date is
//! its base's, so a build with nothing changed makes the same image.

use vauban_oci::image::HistoryEntry;
use vauban_oci::layer::{PackedLayer, MEDIA_TYPE_TAR};
use vauban_oci::store::Store;
use vauban_oci::Image;

use crate::config::DriftReport;
use crate::error::{Error, Result};

/// What is never packed into a drift, as globs from the root (`*` within
/// one name; a directory with what is under it): password hashes, private
/// keys (sshd's, users' ssh keys, TLS, Kerberos), saved network secrets,
/// shell histories.
pub const SECRETS: [&str; 14] = [
    "etc/shadow",
    "etc/shadow-",
    "etc/gshadow",
    "etc/gshadow-",
    "etc/security/opasswd",
    "etc/ssh/ssh_host_*_key",
    "etc/ssl/private",
    "etc/krb5.keytab",
    "etc/NetworkManager/system-connections",
    "etc/wpa_supplicant",
    "root/.ssh/id_*",
    "home/*/.ssh/id_*",
    "root/.*_history",
    "home/*/.*_history",
];

/// The paths under `upper` that [`SECRETS`] names (for a packer that takes
/// paths, not globs).
pub fn secrets_in(upper: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for pattern in SECRETS {
        let full = upper.join(pattern);
        let Ok(paths) = glob::glob(&full.to_string_lossy()) else {
            continue;
        };
        found.extend(
            paths
                .flatten()
                .filter_map(|p| p.strip_prefix(upper).ok().map(std::path::Path::to_path_buf)),
        );
    }
    found
}

/// The tool, as installed at [`TOOL_PATH`].
pub const TOOL: &str = include_str!("vauban-drift.py");
/// Where the tool goes in the image.
pub const TOOL_PATH: &str = "usr/local/sbin/vauban-drift";
/// Where its settings go.
pub const SETTINGS_PATH: &str = "etc/vauban/drift.json";
/// Its systemd unit.
const UNIT_PATH: &str = "etc/systemd/system/vauban-drift.service";
const UNIT: &str = "[Unit]\n\
Description=Send what this live host changed since boot to vauban serve\n\
After=network-online.target\n\
Wants=network-online.target\n\
\n\
[Service]\n\
Type=oneshot\n\
TimeoutStartSec=15min\n\
ExecStart=/usr/local/sbin/vauban-drift\n";

/// The settings file of `report`.
fn settings(report: &DriftReport) -> Vec<u8> {
    let mut json = serde_json::to_vec_pretty(&serde_json::json!({
        "upper": "/run/overlayfs",
        "secrets": SECRETS,
        "exclude": report.exclude,
        "max_size": report.max_size,
    }))
    .expect("plain JSON values");
    json.push(b'\n');
    json
}

/// The tar of the tool's files, owned by root, dated 0.
fn layer_tar(report: &DriftReport) -> std::io::Result<Vec<u8>> {
    let mut tar = tar::Builder::new(Vec::new());
    let mut dir = |path: &str| -> std::io::Result<()> {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o755);
        h.set_size(0);
        h.set_mtime(0);
        h.set_uid(0);
        h.set_gid(0);
        tar.append_data(&mut h, path, std::io::empty())
    };
    dir("etc/vauban/")?;
    let files: [(&str, &[u8], u32); 3] = [
        (SETTINGS_PATH, &settings(report), 0o644),
        (UNIT_PATH, UNIT.as_bytes(), 0o644),
        (TOOL_PATH, TOOL.as_bytes(), 0o755),
    ];
    for (path, bytes, mode) in files {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(mode);
        h.set_size(bytes.len() as u64);
        h.set_mtime(0);
        h.set_uid(0);
        h.set_gid(0);
        tar.append_data(&mut h, path, bytes)?;
    }
    tar.into_inner()
}

/// `image` with the tool's layer on top.
pub(crate) fn with_tool(store: &Store, image: &Image, report: &DriftReport) -> Result<Image> {
    let bytes =
        layer_tar(report).map_err(|e| Error::internal(format!("the drift tool's layer: {e}")))?;
    let (digest, size) = store.write_blob(&bytes)?;
    let layer = PackedLayer {
        diff_id: digest.clone(),
        digest,
        size,
        media_type: MEDIA_TYPE_TAR.into(),
        entries: 4,
    };
    // The base's date: the same base and settings make the same image.
    let created = image
        .config
        .created()
        .as_deref()
        .and_then(|c| chrono::DateTime::parse_from_rfc3339(c).ok())
        .map_or(chrono::DateTime::UNIX_EPOCH, |c| c.to_utc());
    let history = HistoryEntry {
        created_by: "vauban: drift_report (/usr/local/sbin/vauban-drift)".into(),
        created,
        comment: None,
    };
    Ok(vauban_oci::image::build(
        store,
        Some(image),
        &[layer],
        &history,
    )?)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    /// The tool's own list of secrets (applied even without its settings
    /// file) is this one.
    #[test]
    fn the_tool_knows_the_same_secrets() {
        let start = TOOL
            .find("SECRETS = [")
            .expect("the tool lists its secrets");
        let list = &TOOL[start..];
        let list = &list[..list.find(']').unwrap()];
        let theirs: Vec<&str> = list
            .lines()
            .skip(1)
            .map(|l| l.trim().trim_end_matches(',').trim_matches('"'))
            .filter(|l| !l.is_empty())
            .collect();
        assert_eq!(theirs, SECRETS);
    }

    #[test]
    fn the_layer_is_the_same_bytes_for_the_same_settings() {
        let r = DriftReport {
            exclude: vec!["var/lib/app".into()],
            max_size: 1 << 20,
        };
        assert_eq!(layer_tar(&r).unwrap(), layer_tar(&r).unwrap());
        let text = String::from_utf8(settings(&r)).unwrap();
        assert!(text.contains("\"var/lib/app\"") && text.contains("etc/shadow"));
        assert_ne!(
            layer_tar(&r).unwrap(),
            layer_tar(&DriftReport::default()).unwrap()
        );
    }

    /// The tool itself, run by `python3` on an upper dir: what it packs,
    /// what it leaves out, and a drift past `max_size` refused with nothing
    /// written. (Whiteouts, character devices 0/0, need root to make: the
    /// QEMU boot test removes a file on a live host and sees it.)
    #[test]
    fn the_tool_packs_an_upper_dir_without_its_secrets_and_within_its_size() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let tool = dir.path().join("vauban-drift");
        std::fs::write(&tool, TOOL).unwrap();
        let upper = dir.path().join("upper");
        for d in ["etc/ssh", "etc/app", "var/lib/big", "root"] {
            std::fs::create_dir_all(upper.join(d)).unwrap();
        }
        std::fs::write(upper.join("etc/motd"), "changed\n").unwrap();
        std::fs::write(upper.join("etc/shadow"), "root:$6$secret:::\n").unwrap();
        std::fs::write(upper.join("etc/ssh/ssh_host_ed25519_key"), "PRIVATE").unwrap();
        std::fs::write(upper.join("etc/ssh/ssh_host_ed25519_key.pub"), "public").unwrap();
        std::fs::write(upper.join("etc/app/token"), "excluded").unwrap();
        std::fs::write(upper.join("root/notes"), "by hand\n").unwrap();
        std::fs::hard_link(upper.join("root/notes"), upper.join("root/again")).unwrap();
        std::os::unix::fs::symlink("notes", upper.join("root/link")).unwrap();
        std::fs::write(upper.join("etc/ssh/ssh_host_dsa_key"), "PRIVATE").unwrap();
        std::fs::write(upper.join("root/.bash_history"), "mysql -p hunter2").unwrap();
        // A user's file named as a whiteout would read as a removal.
        std::fs::write(upper.join("root/.wh.notes"), "").unwrap();
        // A FIFO is packed as one, never opened (the tool would block).
        let made = std::process::Command::new("mkfifo")
            .arg(upper.join("root/pipe"))
            .status()
            .unwrap();
        assert!(made.success());
        let run = |report: &DriftReport, out: &Path| {
            let config = dir.path().join("drift.json");
            std::fs::write(&config, settings(report)).unwrap();
            std::process::Command::new("python3")
                .arg(&tool)
                .args(["--config".as_ref(), config.as_os_str()])
                .args(["--upper".as_ref(), upper.as_os_str()])
                .args(["-o".as_ref(), out.as_os_str()])
                .output()
                .expect("python3 runs (Ansible's, in every image)")
        };
        let report = DriftReport {
            exclude: vec!["/etc/app/".into()],
            max_size: 1 << 20,
        };
        let out = dir.path().join("web01.drift.tgz");
        let done = run(&report, &out);
        assert!(
            done.status.success(),
            "{}",
            String::from_utf8_lossy(&done.stderr)
        );
        let warned = String::from_utf8_lossy(&done.stderr);
        assert!(warned.contains("root/.wh.notes left out"), "{warned}");
        assert_eq!(
            std::fs::metadata(&out).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let mut names = Vec::new();
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(
            std::fs::File::open(&out).unwrap(),
        ));
        for e in archive.entries().unwrap() {
            let e = e.unwrap();
            let kind = match e.header().entry_type() {
                tar::EntryType::Link => "hardlink",
                tar::EntryType::Symlink => "symlink",
                tar::EntryType::Directory => "dir",
                tar::EntryType::Fifo => "fifo",
                _ => "file",
            };
            names.push(format!("{} {kind}", e.path().unwrap().display()));
        }
        names.sort();
        assert_eq!(
            names,
            [
                "etc/ dir",
                "etc/motd file",
                "etc/ssh/ dir",
                "etc/ssh/ssh_host_ed25519_key.pub file",
                "root/ dir",
                "root/again file",
                "root/link symlink",
                "root/notes hardlink",
                "root/pipe fifo",
                "var/ dir",
                "var/lib/ dir",
                "var/lib/big/ dir",
            ]
        );
        let limits = crate::diff::ArchiveLimits {
            bytes: 1 << 20,
            entries: 100,
            record: 4096,
        };
        assert_eq!(crate::diff::check_archive(&out, &limits).unwrap(), 12);

        // Without its settings file the secrets are left out all the same.
        let bare = dir.path().join("bare.tgz");
        let done = std::process::Command::new("python3")
            .arg(&tool)
            .args(["--config", "/nonexistent/drift.json", "--upper"])
            .arg(&upper)
            .arg("-o")
            .arg(&bare)
            .output()
            .unwrap();
        assert!(
            done.status.success(),
            "{}",
            String::from_utf8_lossy(&done.stderr)
        );
        let listed = std::process::Command::new("tar")
            .arg("tzf")
            .arg(&bare)
            .output()
            .unwrap();
        let listed = String::from_utf8_lossy(&listed.stdout);
        assert!(
            listed.contains("etc/motd") && listed.contains("etc/app/token"),
            "{listed}"
        );
        for secret in [
            "etc/shadow",
            "ssh_host_ed25519_key\n",
            "ssh_host_dsa_key",
            "bash_history",
        ] {
            assert!(
                !listed.contains(secret),
                "{secret} sent without settings:\n{listed}"
            );
        }

        // Past max_size: refused, nothing written, no temp file left.
        std::fs::write(
            upper.join("var/lib/big/blob"),
            crate::export::conffs::tests::noise(200_000),
        )
        .unwrap();
        let small = DriftReport {
            exclude: Vec::new(),
            max_size: 50_000,
        };
        let refused = dir.path().join("refused.tgz");
        let done = run(&small, &refused);
        assert!(!done.status.success());
        assert!(
            String::from_utf8_lossy(&done.stderr).contains("larger than 50000 bytes"),
            "{}",
            String::from_utf8_lossy(&done.stderr)
        );
        assert!(!refused.exists());
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with(".vauban-drift-")
            })
            .collect();
        assert!(left.is_empty(), "temp files left: {left:?}");
    }
}
