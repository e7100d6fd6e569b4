//! The boot route row: the boot fixture's `rootfs.img` fetched whole by 20
//! `curl` clients at once on loopback, from `vauban serve --boot-only` (the
//! blob of the store's boot artifact, `GET /boot/blobs/sha256:HEX` with the
//! bench token) and from Debian's nginx serving the same bytes from disk with
//! `sendfile` (a hard link to the blob). A batch's wall time covers starting
//! every client to the last one done; throughput is clients × size / wall.
//!
//! Each server's peak RSS (`VmHWM` of its process) is read after a batch of
//! 1 client, then after the batch of 20: what streams a file must not hold
//! it, so the two are close. nginx runs as the current user with
//! `master_process off` (one process to measure) and every path of its
//! config inside its temp dir.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use sha2::{Digest as _, Sha256};

use super::build::{boot_build, BOOT_MASTER};
use super::serve::{Server, TOKEN};
use super::{Comparison, Ctx, Sample};
use crate::util;

/// Clients of the checked batch.
pub const CLIENTS: usize = 20;
/// The annotation naming an image in `index.json`.
const REF_NAME: &str = "org.opencontainers.image.ref.name";
/// The annotation naming a file of the boot artifact.
const TITLE: &str = "org.opencontainers.image.title";

/// A blob of the store: its hex digest, size and file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blob {
    /// The sha256 in lower-case hex.
    pub hex: String,
    /// Its size in bytes.
    pub size: u64,
    /// `STORE/blobs/sha256/HEX`.
    pub path: PathBuf,
}

/// One side of the row: what the clients fetch and the process to measure.
struct Side<'a> {
    url: String,
    token: Option<&'a str>,
    pid: u32,
}

/// `rootfs.img` to 1 client, then to [`CLIENTS`], by vauban and by nginx.
pub fn rootfs_to_clients(ctx: &mut Ctx) -> Result<Vec<Comparison>> {
    let (store, config) = {
        let build = boot_build(ctx)?;
        (build.store(), build.config())
    };
    let blob = rootfs_blob(&store, BOOT_MASTER)?;
    let root = ctx.fresh_dir("nginx-root")?;
    util::link_or_copy_readable(&blob.path, &root.join("rootfs.img"))?;
    let nginx = Nginx::start(&ctx.fresh_dir("nginx")?, &root)?;
    let mut cmd = ctx.vauban(&store);
    cmd.args(["serve", "--boot-only", "--listen", "127.0.0.1:0"])
        .arg("--config")
        .arg(&config);
    let server = Server::spawn(ctx, cmd)?;
    let ours = Side {
        url: format!("http://{}/boot/blobs/sha256:{}", server.addr, blob.hex),
        token: Some(TOKEN),
        pid: server.pid(),
    };
    let theirs = Side {
        url: format!("http://127.0.0.1:{}/rootfs.img", nginx.port),
        token: None,
        pid: nginx.child.id(),
    };
    // Untimed: both serve the right bytes, and the blob is in the page cache.
    check_download(&ours, &blob)?;
    check_download(&theirs, &blob)?;
    let (ours_one, theirs_one) = (batch(&ours, 1, &blob)?, batch(&theirs, 1, &blob)?);
    let ours_all = batch(&ours, CLIENTS, &blob)?;
    let theirs_all = batch(&theirs, CLIENTS, &blob)?;
    report(&blob, (ours_one, ours_all), (theirs_one, theirs_all));
    let peer = "nginx sendfile";
    Ok(vec![
        Comparison::new(
            &format!("boot: rootfs.img x{CLIENTS}"),
            ours_all,
            peer,
            theirs_all,
        ),
        Comparison {
            checked: false,
            ..Comparison::new("boot: rootfs.img x1", ours_one, peer, theirs_one)
        },
    ])
}

/// Prints each side's throughput, the ratio, and the peak RSS after 1 and
/// after [`CLIENTS`] clients.
fn report(blob: &Blob, ours: (Sample, Sample), theirs: (Sample, Sample)) {
    let rate = |s: Sample| throughput_mib_s(CLIENTS, blob.size, s.wall);
    let mib = |s: Sample| s.max_rss_kib as f64 / 1024.0;
    eprintln!(
        "    {CLIENTS} clients x {} MiB: vauban {:.0} MiB/s, nginx {:.0} MiB/s, vauban/nginx {:.2} (target >= 0.90)",
        blob.size >> 20,
        rate(ours.1),
        rate(theirs.1),
        rate(ours.1) / rate(theirs.1).max(1e-9)
    );
    eprintln!(
        "    peak RSS after 1 client, after {CLIENTS}: vauban {:.1} MiB, {:.1} MiB; nginx {:.1} MiB, {:.1} MiB",
        mib(ours.0),
        mib(ours.1),
        mib(theirs.0),
        mib(theirs.1)
    );
}

/// MiB/s of `clients` downloads of `size` bytes in `wall`.
pub fn throughput_mib_s(clients: usize, size: u64, wall: Duration) -> f64 {
    clients as f64 * size as f64 / (1024.0 * 1024.0) / wall.as_secs_f64().max(1e-9)
}

/// The `rootfs.img` layer of `<master>/boot:latest` in the store.
pub fn rootfs_blob(store: &Path, master: &str) -> Result<Blob> {
    let name = format!("{master}/boot:latest");
    let index = read_json(&store.join("index.json"))?;
    let manifest = blob_path(store, &manifest_digest(&index, &name)?)?;
    let manifest = read_json(&manifest).with_context(|| format!("the manifest of {name}"))?;
    let (digest, size) = layer_of(&manifest, &format!("{master}/rootfs.img"))
        .with_context(|| format!("in the manifest of {name}"))?;
    let path = blob_path(store, &digest)?;
    let hex = digest.trim_start_matches("sha256:").to_string();
    let on_disk = std::fs::metadata(&path)
        .with_context(|| format!("the rootfs.img blob {}", path.display()))?
        .len();
    if on_disk != size {
        bail!(
            "{}: {on_disk} bytes, the manifest says {size}",
            path.display()
        );
    }
    Ok(Blob { hex, size, path })
}

/// The digest of the manifest `index.json` names `name`.
pub fn manifest_digest(index: &serde_json::Value, name: &str) -> Result<String> {
    index["manifests"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|m| m["annotations"][REF_NAME] == name)
        .and_then(|m| m["digest"].as_str())
        .map(str::to_string)
        .with_context(|| {
            format!(
                "no {name} in the store's index.json (did `vauban build` make the boot artifact?)"
            )
        })
}

/// The digest and size of the layer titled `title`.
pub fn layer_of(manifest: &serde_json::Value, title: &str) -> Result<(String, u64)> {
    let layer = manifest["layers"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|l| l["annotations"][TITLE] == title)
        .with_context(|| format!("no layer titled {title}"))?;
    let digest = layer["digest"].as_str().context("a layer without digest")?;
    let size = layer["size"].as_u64().context("a layer without size")?;
    Ok((digest.to_string(), size))
}

/// `STORE/blobs/sha256/HEX` of a `sha256:HEX` digest, checked before it
/// becomes a path.
pub fn blob_path(store: &Path, digest: &str) -> Result<PathBuf> {
    let hex = digest
        .strip_prefix("sha256:")
        .filter(|h| h.len() == 64 && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
        .with_context(|| format!("bad digest {digest:?}"))?;
    Ok(store.join("blobs/sha256").join(hex))
}

fn read_json(path: &Path) -> Result<serde_json::Value> {
    let text = std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{}: not JSON", path.display()))
}

/// `curl -s -f [-H 'Authorization: Bearer TOKEN'] URL`.
fn curl(side: &Side) -> Command {
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "-f"]);
    if let Some(token) = side.token {
        cmd.arg("-H").arg(format!("Authorization: Bearer {token}"));
    }
    cmd.arg(&side.url).stdin(Stdio::null());
    cmd
}

/// One client of a batch: the body to `/dev/null`, the status and the size
/// received on stdout.
fn client(side: &Side) -> Command {
    let mut cmd = curl(side);
    cmd.args(["-o", "/dev/null", "-w", "%{http_code} %{size_download}"]);
    cmd
}

/// Downloads the blob once and checks its sha256.
fn check_download(side: &Side, blob: &Blob) -> Result<()> {
    let mut cmd = curl(side);
    let mut child = cmd
        .stdout(Stdio::piped())
        .spawn()
        .context("start curl (apt-get install curl)")?;
    let mut hasher = Sha256::new();
    let copied = std::io::copy(child.stdout.as_mut().context("curl's stdout")?, &mut hasher);
    let status = child.wait()?;
    copied.with_context(|| format!("read {}", side.url))?;
    if !status.success() {
        bail!("`{}` failed: {status}", util::display(&cmd));
    }
    let got = hex::encode(hasher.finalize());
    if got != blob.hex {
        bail!("GET {}: sha256 {got}, want {}", side.url, blob.hex);
    }
    Ok(())
}

/// `clients` downloads started at once; the batch's wall time and the
/// server's peak RSS after it. Every client must get a 200 and every byte.
fn batch(side: &Side, clients: usize, blob: &Blob) -> Result<Sample> {
    eprintln!("  $ {} (x{clients})", util::display(&client(side)));
    let started = Instant::now();
    let children: Vec<Child> = (0..clients)
        .map(|_| client(side).stdout(Stdio::piped()).spawn())
        .collect::<std::io::Result<_>>()
        .context("start curl (apt-get install curl)")?;
    let outputs = children
        .into_iter()
        .map(Child::wait_with_output)
        .collect::<std::io::Result<Vec<_>>>()?;
    let wall = started.elapsed();
    let want = format!("200 {}", blob.size);
    for out in outputs {
        let said = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() || said != want {
            bail!(
                "a client of {} got `{said}` ({}), want `{want}`",
                side.url,
                out.status
            );
        }
    }
    let max_rss_kib = peak_rss_kib(side.pid)?;
    eprintln!(
        "    {:.2}s, {:.0} MiB/s, peak RSS {} MiB",
        wall.as_secs_f64(),
        throughput_mib_s(clients, blob.size, wall),
        max_rss_kib / 1024
    );
    Ok(Sample { wall, max_rss_kib })
}

/// `VmHWM` of a running process, in KiB.
fn peak_rss_kib(pid: u32) -> Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("read {path}"))?;
    parse_vm_hwm(&status).with_context(|| format!("no VmHWM in {path}"))
}

/// The `VmHWM:  N kB` line of `/proc/PID/status`.
pub fn parse_vm_hwm(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// nginx in the foreground, one process, on a free loopback port, stopped on
/// drop.
struct Nginx {
    child: Child,
    port: u16,
}

impl Nginx {
    /// Serves `root` with its config, logs, pid and temp files in `dir`.
    fn start(dir: &Path, root: &Path) -> Result<Nginx> {
        let port = util::free_port()?;
        let conf = dir.join("nginx.conf");
        std::fs::write(&conf, nginx_conf(root, port))
            .with_context(|| format!("write {}", conf.display()))?;
        let mut cmd = nginx_command(dir);
        eprintln!("  $ {}", util::display(&cmd));
        let child = cmd
            .stdin(Stdio::null())
            .spawn()
            .context("start nginx (package nginx: cargo xtask deps)")?;
        let mut nginx = Nginx { child, port };
        let what = format!("nginx (log {})", dir.join("error.log").display());
        util::wait_listening(&mut nginx.child, port, &what, Duration::from_secs(10))?;
        Ok(nginx)
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `nginx -p DIR/ -c nginx.conf -e DIR/error.log`: the config's relative
/// paths are under `DIR`, and no log is opened outside it even at start.
fn nginx_command(dir: &Path) -> Command {
    let mut cmd = Command::new("nginx");
    cmd.arg("-p")
        .arg(format!("{}/", dir.display()))
        .args(["-c", "nginx.conf", "-e"])
        .arg(dir.join("error.log"));
    cmd
}

/// A minimal config: one process in the foreground, `sendfile`, every path
/// relative to the prefix but the served `root`.
pub fn nginx_conf(root: &Path, port: u16) -> String {
    format!(
        "daemon off;
master_process off;
worker_processes 1;
pid nginx.pid;
error_log error.log;
events {{
    worker_connections 256;
}}
http {{
    access_log access.log;
    client_body_temp_path client_body_temp;
    proxy_temp_path proxy_temp;
    fastcgi_temp_path fastcgi_temp;
    uwsgi_temp_path uwsgi_temp;
    scgi_temp_path scgi_temp;
    sendfile on;
    tcp_nopush on;
    default_type application/octet-stream;
    server {{
        listen 127.0.0.1:{port};
        root \"{}\";
    }}
}}
",
        root.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn the_rootfs_layer_is_found_through_the_index_and_the_manifest() {
        let index = serde_json::json!({"manifests": [
            {"digest": "sha256:aa", "annotations": {REF_NAME: "m:latest"}},
            {"digest": format!("sha256:{HEX}"), "annotations": {REF_NAME: "m/boot:latest"}},
        ]});
        assert_eq!(
            manifest_digest(&index, "m/boot:latest").unwrap(),
            format!("sha256:{HEX}")
        );
        assert!(manifest_digest(&index, "x/boot:latest").is_err());
        let manifest = serde_json::json!({"layers": [
            {"digest": "sha256:k", "size": 1, "annotations": {TITLE: "linux/vmlinuz-6.1"}},
            {"digest": "sha256:r", "size": 42, "annotations": {TITLE: "m/rootfs.img"}},
        ]});
        assert_eq!(
            layer_of(&manifest, "m/rootfs.img").unwrap(),
            ("sha256:r".to_string(), 42)
        );
        assert!(layer_of(&manifest, "m/conffs-web01.tgz").is_err());
    }

    #[test]
    fn a_digest_becomes_a_path_only_when_well_formed() {
        assert_eq!(
            blob_path(Path::new("/s"), &format!("sha256:{HEX}")).unwrap(),
            Path::new("/s/blobs/sha256").join(HEX)
        );
        for bad in [
            "sha256:../../etc/passwd",
            "sha512:ab",
            &format!("sha256:{}", HEX.to_uppercase()),
        ] {
            assert!(blob_path(Path::new("/s"), bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_client_sends_the_token_and_reports_status_and_size() {
        let side = Side {
            url: "http://127.0.0.1:1/boot/blobs/sha256:ab".into(),
            token: Some("t0123456789abcdef"),
            pid: 1,
        };
        assert_eq!(
            util::display(&client(&side)),
            "curl -s -f -H 'Authorization: Bearer t0123456789abcdef' \
             http://127.0.0.1:1/boot/blobs/sha256:ab -o /dev/null -w '%{http_code} %{size_download}'"
        );
    }

    #[test]
    fn nginx_writes_nothing_outside_its_dir() {
        let conf = nginx_conf(Path::new("/b/root"), 8088);
        for line in [
            "daemon off;",
            "master_process off;",
            "sendfile on;",
            "listen 127.0.0.1:8088;",
            "root \"/b/root\";",
        ] {
            assert!(conf.contains(line), "{line} missing:\n{conf}");
        }
        // Every path but the root is relative (to the prefix).
        assert_eq!(conf.matches(" /").count(), 0, "{conf}");
        assert_eq!(
            util::display(&nginx_command(Path::new("/d"))),
            "nginx -p /d/ -c nginx.conf -e /d/error.log"
        );
    }

    #[test]
    fn peak_rss_and_throughput() {
        let status = "Name:\tvauban\nVmPeak:\t  900 kB\nVmHWM:\t   12345 kB\nVmRSS:\t 100 kB\n";
        assert_eq!(parse_vm_hwm(status), Some(12345));
        assert_eq!(parse_vm_hwm("Name: x\n"), None);
        let rate = throughput_mib_s(20, 10 << 20, Duration::from_secs(2));
        assert!((rate - 100.0).abs() < 1e-9, "{rate}");
    }
}
