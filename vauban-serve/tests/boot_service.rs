//! The boot service over HTTP on loopback, on a real store holding boot
//! artifacts written by vauban-core's own writer (small files stand for the
//! kernel, initramfs, rootfs and conffs: what is checked is which host gets
//! which file, how, and what is recorded, not what boots; the QEMU boot
//! test of `cargo xtask test` boots the real ones through these routes).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use reqwest::StatusCode;
use serde_json::{json, Value};
use vauban_core::vauban_oci::store::Store;
use vauban_core::vauban_oci::Reference;
use vauban_serve::boot::BootOptions;
use vauban_serve::{ServeOptions, Server, WorkerCommand};

const TOKEN: &str = "operator-token-0123456789";
const WEB01: &str = "52:54:00:00:00:01";
const WEB02: &str = "52:54:00:00:00:02";

/// A boot tree of master `m` whose rootfs holds `rootfs`, as a build
/// leaves it, written into `store` as an artifact named `m/boot:TAG`.
fn artifact(store: &Store, dir: &Path, rootfs: &[u8], tag: &str) -> String {
    let tree = dir.join(format!("tree-{tag}"));
    std::fs::create_dir_all(tree.join("linux")).unwrap();
    std::fs::create_dir_all(tree.join("m")).unwrap();
    std::fs::write(tree.join("linux/vmlinuz-6.1"), b"kernel of 6.1").unwrap();
    std::fs::write(tree.join("linux/initramfs-6.1.img"), b"initramfs of 6.1").unwrap();
    std::fs::write(tree.join("m/rootfs.img"), rootfs).unwrap();
    for host in ["web01", "web02", "new01"] {
        std::fs::write(
            tree.join(format!("m/conffs-{host}.tgz")),
            format!("secret keys of {host} ({tag})"),
        )
        .unwrap();
    }
    let info = json!({
        "master": "m", "kver": "6.1",
        "kernel": "linux/vmlinuz-6.1", "initramfs": "linux/initramfs-6.1.img",
        "rootfs": "m/rootfs.img", "kernel_args": ["console=ttyS0,115200"],
        "hosts": {
            "web01": {"conffs": "m/conffs-web01.tgz", "macs": [WEB01], "ip": "127.0.0.1",
                      "kernel_args": ["quiet"]},
            "web02": {"conffs": "m/conffs-web02.tgz", "macs": [WEB02], "ip": "127.0.0.2"},
            "new01": {"conffs": "m/conffs-new01.tgz", "discoverable": true},
        },
    });
    std::fs::write(tree.join("m/boot.json"), info.to_string()).unwrap();
    let files: Vec<String> = [
        "linux/vmlinuz-6.1",
        "linux/initramfs-6.1.img",
        "m/boot.json",
        "m/conffs-new01.tgz",
        "m/conffs-web01.tgz",
        "m/conffs-web02.tgz",
        "m/rootfs.img",
    ]
    .map(String::from)
    .to_vec();
    let image =
        vauban_core::build::write_boot_artifact(store, &tree, &files, "m", "6.1", None).unwrap();
    store
        .tag(
            &Reference::parse(&format!("m/boot:{tag}")).unwrap(),
            &image.descriptor(),
        )
        .unwrap();
    image.manifest_digest.to_string()
}

struct World {
    dir: tempfile::TempDir,
    store: Store,
}

impl World {
    fn new() -> World {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("store")).unwrap();
        std::fs::write(
            dir.path().join("config.yml"),
            "bookworm:\n  image: debian:12\n  m:\n    stages: [a.yml]\n    conffs: 'web*'\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("tokens"), format!("alice {TOKEN}\n")).unwrap();
        World { dir, store }
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    /// A server of this world's store with `boot` options, its address.
    async fn serve(&self, state: &str, boot: BootOptions) -> SocketAddr {
        let opts = ServeOptions {
            listen: "127.0.0.1:0".parse().unwrap(),
            config: self.path("config.yml"),
            state: self.path(state),
            token_file: Some(self.path("tokens")),
            user_header: None,
            jobs: 1,
            worker: WorkerCommand {
                program: "/bin/false".into(),
                global_args: vec![],
                build_args: vec![],
                env: vec![],
            },
            notify: vec![],
            notify_all: false,
            public_url: None,
            sentry_dsn: None,
            keep_days: None,
            store: self.store.root().to_path_buf(),
            boot,
            boot_only: true,
        };
        let server = Server::bind(opts).await.unwrap();
        let addr = server.local_addr().unwrap();
        tokio::spawn(server.run());
        addr
    }
}

/// The URL of the script's line starting with `first_word`.
fn line_url(script: &str, first_word: &str) -> String {
    script
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{first_word} ")))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no `{first_word}` line in:\n{script}"))
        .to_string()
}

fn arg_url(script: &str, key: &str) -> String {
    script
        .split_whitespace()
        .find_map(|w| w.strip_prefix(key))
        .unwrap_or_else(|| panic!("no {key} in:\n{script}"))
        .to_string()
}

async fn script(http: &reqwest::Client, addr: SocketAddr, mac: &str) -> String {
    let r = http
        .get(format!("http://{addr}/boot/ipxe"))
        .query(&[("mac", mac)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    r.text().await.unwrap()
}

async fn api(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = http.request(method, url).bearer_auth(TOKEN);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.unwrap();
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosts_boot_their_deployment_and_only_they_get_their_conffs() {
    let w = World::new();
    let rootfs_a: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let a = artifact(&w.store, w.dir.path(), &rootfs_a, "a");
    let b = artifact(&w.store, w.dir.path(), b"rootfs of build b", "b");
    let addr = w.serve("state", BootOptions::default()).await;
    let http = reqwest::Client::new();
    let base = format!("http://{addr}");

    // Nothing deployed: web01 is known by the latest build, and boots its disk.
    let s = script(&http, addr, "52-54-00-00-00-01").await;
    assert!(s.contains("exit") && s.contains("not deployed"), "{s}");

    let (st, d1) = api(
        &http,
        reqwest::Method::POST,
        format!("{base}/masters/m/deploy"),
        Some(json!({"from": "a"})),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{d1}");
    assert_eq!(d1["artifact"], a.as_str());
    assert_eq!(d1["by"], "alice");

    // web01's script names the files of a by digest, with its kernel args.
    let s = script(&http, addr, "52:54:00:00:00:01").await;
    assert!(s.starts_with("#!ipxe\n"), "{s}");
    assert!(s.contains("console=ttyS0,115200 quiet"), "{s}");
    assert!(s.contains(&format!("{base}/boot/blobs/sha256:")), "{s}");
    let kernel = line_url(&s, "kernel");
    let initrd = line_url(&s, "initrd");
    let rootfs = arg_url(&s, "root=live:");
    let conffs = arg_url(&s, "live.updates=");
    assert!(
        kernel.contains("/vmlinuz-6.1?boot=") && s.contains("initrd=initramfs-6.1.img"),
        "{s}"
    );

    // Range, ETag, HEAD, 304 on the rootfs.
    let r = http
        .get(&rootfs)
        .header("Range", "bytes=1000-1999")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(r.headers()["content-range"], "bytes 1000-1999/3000000");
    let etag = r.headers()["etag"].to_str().unwrap().to_string();
    assert!(etag.starts_with("\"sha256:"), "{etag}");
    assert!(r.headers().contains_key("last-modified"));
    assert_eq!(r.bytes().await.unwrap().as_ref(), &rootfs_a[1000..2000]);
    let r = http.head(&rootfs).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-length"], "3000000");
    let r = http
        .get(&rootfs)
        .header("If-None-Match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
    let r = http
        .get(&rootfs)
        .header("Range", "bytes=3000000-")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::RANGE_NOT_SATISFIABLE);

    // The boot, in order: every file whole.
    for (url, want) in [
        (&kernel, b"kernel of 6.1".to_vec()),
        (&initrd, b"initramfs of 6.1".to_vec()),
        (&rootfs, rootfs_a.clone()),
        (&conffs, b"secret keys of web01 (a)".to_vec()),
    ] {
        let r = http.get(url).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{url}");
        assert_eq!(r.bytes().await.unwrap().as_ref(), want.as_slice(), "{url}");
    }

    // The conffs URL again (someone who read it in /proc/cmdline): refused.
    let r = http.get(&conffs).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::GONE);
    // web02's conffs with web01's token: refused, whatever the name says.
    let s2 = script(&http, addr, WEB02).await;
    let conffs2 = arg_url(&s2, "live.updates=");
    let digest2 = conffs2.split('/').nth(5).unwrap().to_string();
    let token1 = conffs.rsplit("boot=").next().unwrap();
    // A conffs goes whole or not at all: a Range or a condition gets the
    // whole file (and spends it), never a part nor a 304.
    let r = http
        .get(&conffs2)
        .header("Range", "bytes=0-3")
        .header("If-None-Match", "*")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.text().await.unwrap(), "secret keys of web02 (a)");
    let r = http
        .get(&conffs2)
        .header("Range", "bytes=0-3")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::GONE);
    for url in [
        format!("{base}/boot/blobs/{digest2}/conffs-web01.tgz?boot={token1}"),
        format!("{base}/boot/blobs/{digest2}?boot={}", "0".repeat(64)),
    ] {
        let r = http.get(&url).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{url}");
    }
    // No token: 401; an operator's token opens the rootfs, never a conffs.
    let bare_rootfs = rootfs.split('?').next().unwrap().to_string();
    assert_eq!(
        http.get(&bare_rootfs).send().await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    let r = http
        .get(&bare_rootfs)
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let bare_conffs = format!("{base}/boot/blobs/{digest2}");
    let r = http
        .get(&bare_conffs)
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    // A path that is no digest reaches no file.
    let r = http
        .get(format!("{base}/boot/blobs/..%2F..%2Findex.json"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    // Unknown MACs: the first is bound to the discoverable host, the next
    // one boots its disk and is listed.
    let s = script(&http, addr, "52:54:00:00:00:99").await;
    assert!(s.contains("new01 boots m"), "{s}");
    let s = script(&http, addr, "52:54:00:00:00:98").await;
    assert!(s.ends_with("exit\n") && s.contains("no host"), "{s}");
    let r = http
        .get(format!("{base}/boot/ipxe?mac=nonsense"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    // /hosts: web01 booted a, whole; new01 is bound; the stray MAC listed.
    // (A fetch is recorded once its body is over: give the records a moment.)
    let mut hosts = Value::Null;
    for _ in 0..50 {
        let (st, h) = api(&http, reqwest::Method::GET, format!("{base}/hosts"), None).await;
        assert_eq!(st, StatusCode::OK);
        hosts = h;
        let web01 = hosts["hosts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["host"] == "web01")
            .cloned();
        if web01.is_some_and(|h| h["last_boot"]["state"] == "complete") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let host = |name: &str| {
        hosts["hosts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["host"] == name)
            .cloned()
            .unwrap()
    };
    assert_eq!(host("web01")["last_boot"]["state"], "complete", "{hosts:#}");
    assert_eq!(host("web01")["runs_deployed"], true);
    // Anyone may ask for web01's script: that proves no boot, and changes
    // what web01 runs in nobody's eyes.
    script(&http, addr, WEB01).await;
    let (_, again) = api(&http, reqwest::Method::GET, format!("{base}/hosts"), None).await;
    let web01 = again["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["host"] == "web01")
        .unwrap();
    assert_eq!(web01["runs_deployed"], true, "{web01:#}");
    assert_eq!(
        web01["last_complete_boot"]["id"],
        host("web01")["last_boot"]["id"]
    );
    assert!(
        web01["summary"].as_str().unwrap().contains("last asked"),
        "{web01:#}"
    );
    assert_eq!(host("new01")["macs"], json!(["52:54:00:00:00:99"]));
    assert_eq!(hosts["unknown"][0]["mac"], "52:54:00:00:00:98", "{hosts:#}");
    let (_, web01) = api(
        &http,
        reqwest::Method::GET,
        format!("{base}/hosts/web01"),
        None,
    )
    .await;
    // Newest first: the script asked for just now, then the whole boot.
    assert_eq!(web01["boots"][0]["state"], "in progress", "{web01:#}");
    let fetched: Vec<&str> = web01["boots"][1]["fetches"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["complete"] == true)
        .map(|f| f["file"].as_str().unwrap())
        .collect();
    assert!(
        fetched.ends_with(&["kernel", "initramfs", "rootfs", "conffs"]),
        "{web01:#}"
    );

    // Deploy b: web01 still runs a, says /hosts; then back to a.
    let (st, d2) = api(
        &http,
        reqwest::Method::POST,
        format!("{base}/masters/m/deploy"),
        Some(json!({"from": "b"})),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{d2}");
    assert_eq!(d2["artifact"], b.as_str());
    let (_, hosts) = api(&http, reqwest::Method::GET, format!("{base}/hosts"), None).await;
    let web01 = hosts["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["host"] == "web01")
        .unwrap();
    assert_eq!(web01["runs_deployed"], false);
    assert!(
        web01["summary"].as_str().unwrap().contains("still runs"),
        "{web01:#}"
    );
    let s = script(&http, addr, WEB01).await;
    let rootfs_b = arg_url(&s, "root=live:");
    assert_eq!(
        http.get(&rootfs_b)
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap()
            .as_ref(),
        b"rootfs of build b"
    );
    let (st, d3) = api(
        &http,
        reqwest::Method::POST,
        format!("{base}/masters/m/rollback"),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{d3}");
    assert_eq!(d3["artifact"], a.as_str());
    let (st, list) = api(
        &http,
        reqwest::Method::GET,
        format!("{base}/masters/m/deployments"),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    let ids: Vec<i64> = list["deployments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_i64().unwrap())
        .collect();
    assert_eq!(
        ids,
        [
            d3["id"].as_i64().unwrap(),
            d2["id"].as_i64().unwrap(),
            d1["id"].as_i64().unwrap()
        ]
    );
    let (st, e) = api(
        &http,
        reqwest::Method::POST,
        format!("{base}/masters/m/rollback"),
        None,
    )
    .await;
    assert_eq!(
        st,
        StatusCode::CONFLICT,
        "nothing before the first deployment: {e}"
    );
    let (st, e) = api(
        &http,
        reqwest::Method::POST,
        format!("{base}/masters/nope/deploy"),
        Some(json!({})),
    )
    .await;
    assert_eq!(st, StatusCode::NOT_FOUND, "{e}");
    // The store keeps what was deployed named.
    let names: Vec<String> = w
        .store
        .list()
        .unwrap()
        .iter()
        .map(|(r, _)| r.to_string())
        .collect();
    assert!(
        names
            .iter()
            .any(|n| n.ends_with(&format!("m/boot:deploy-{}", d3["id"]))),
        "{names:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_conffs_from_known_ip_a_conffs_goes_only_to_its_hosts_address() {
    let w = World::new();
    artifact(&w.store, w.dir.path(), b"rootfs", "a");
    let opts = BootOptions {
        conffs_from_known_ip: true,
        ..BootOptions::default()
    };
    let addr = w.serve("state", opts).await;
    let http = reqwest::Client::new();
    let (st, d) = api(
        &http,
        reqwest::Method::POST,
        format!("http://{addr}/masters/m/deploy"),
        Some(json!({"from": "a"})),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED);
    // new01 has no address: the deployment says nobody will get its conffs.
    let warning = d["warnings"][0].as_str().unwrap_or_default();
    assert!(
        warning.contains("new01") && warning.contains("no address"),
        "{d:#}"
    );
    // web02 is 127.0.0.2 in the inventory: from 127.0.0.1 its conffs is refused...
    let s = script(&http, addr, WEB02).await;
    let conffs = arg_url(&s, "live.updates=");
    assert_eq!(
        http.get(&conffs).send().await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
    // ...and handed over from 127.0.0.2.
    let from_02 = reqwest::Client::builder()
        .local_address(Some("127.0.0.2".parse().unwrap()))
        .build()
        .unwrap();
    let r = from_02.get(&conffs).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.text().await.unwrap(), "secret keys of web02 (a)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_build_is_deployed_when_it_asks_or_its_master_is_auto() {
    use vauban_serve::boot::BootService;
    use vauban_serve::model::{Build, BuildRequest, Status, Step, Trigger};
    let w = World::new();
    let a = artifact(&w.store, w.dir.path(), b"rootfs", "a");
    let db = w.path("history.db");
    let history = std::sync::Arc::new(vauban_serve::db::History::open(&db).unwrap());
    let boot = BootService::open(
        Store::open(w.store.root()).unwrap(),
        &db,
        history,
        BootOptions::default(),
    )
    .unwrap();
    let build = |id: &str, deploy: bool| Build {
        id: id.into(),
        request: BuildRequest {
            name: "m".into(),
            stage: "all".into(),
            build_parents: 0,
            conffs: None,
            branch: None,
            no_cache: false,
            rebuild_stale: false,
            deploy,
        },
        status: Status::Succeeded,
        requested_by: "ci".into(),
        trigger: Trigger::Api,
        created: "2026-12-06T00:00:00Z".into(),
        started: None,
        finished: None,
        seconds: None,
        error: None,
        failed_step: None,
        failed_host: None,
        steps: vec![Step {
            step: format!("{}m", vauban_serve::worker::BOOT_STEP_PREFIX),
            state: "built".into(),
            image: Some(a.clone()),
            seconds: None,
        }],
        tail: vec![],
    };
    let deployments = || boot.records.deployments("m", 10).unwrap();
    boot.after_build(&build("01AAAAAAAAAAAAAAAAAAAAAAAA", false), &[]);
    assert!(
        deployments().is_empty(),
        "a master's build is deployed only when asked"
    );
    let named = |tag: &str| {
        w.store
            .list()
            .unwrap()
            .iter()
            .any(|(r, _)| r.to_string() == format!("m/boot:{tag}"))
    };
    assert!(
        named("build-01AAAAAAAAAAAAAAAAAAAAAAAA"),
        "kept for `deploy --build`"
    );
    boot.after_build(&build("01BBBBBBBBBBBBBBBBBBBBBBBB", true), &[]);
    let d = deployments();
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].build_id.as_deref(), Some("01BBBBBBBBBBBBBBBBBBBBBBBB"));
    assert!(d[0].source.contains("--deploy"), "{:?}", d[0]);
    boot.after_build(
        &build("01CCCCCCCCCCCCCCCCCCCCCCCC", false),
        &["m".to_string()],
    );
    let d = deployments();
    assert_eq!(d.len(), 2);
    assert!(d[0].source.contains("deploy: auto"), "{:?}", d[0]);
    assert_eq!(d[0].previous, Some(d[1].id));
}

/// A tar of `files` (a path ending in `/` is a directory), root's, dated 0.
fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut t = tar::Builder::new(Vec::new());
    for (path, bytes) in files {
        let mut h = tar::Header::new_ustar();
        if path.ends_with('/') {
            h.set_entry_type(tar::EntryType::Directory);
            h.set_mode(0o755);
        } else {
            h.set_mode(0o644);
        }
        h.set_size(bytes.len() as u64);
        h.set_mtime(0);
        h.set_uid(0);
        h.set_gid(0);
        t.append_data(&mut h, path, *bytes).unwrap();
    }
    t.into_inner().unwrap()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut z = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    z.write_all(bytes).unwrap();
    z.finish().unwrap()
}

/// A master image (`/etc/motd`, `/etc/issue.net`) and a boot artifact made
/// from it, web01's conffs a real archive (`/etc/hostname`), named
/// `m/boot:drift`.
fn artifact_with_image(store: &Store, dir: &Path) -> String {
    artifact_with_conffs(store, dir, &[("etc/hostname", b"web01\n")])
}

/// [`artifact_with_image`], web01's conffs holding `conffs`.
fn artifact_with_conffs(store: &Store, dir: &Path, conffs: &[(&str, &[u8])]) -> String {
    use vauban_core::vauban_oci::layer::{PackedLayer, MEDIA_TYPE_TAR};
    let layer = tar_of(&[
        ("etc/", b""),
        ("etc/motd", b"welcome\n"),
        ("etc/issue.net", b"Debian GNU/Linux 12\n"),
    ]);
    let (digest, size) = store.write_blob(&layer).unwrap();
    let packed = PackedLayer {
        diff_id: digest.clone(),
        digest,
        size,
        media_type: MEDIA_TYPE_TAR.into(),
        entries: 3,
    };
    let history = vauban_core::vauban_oci::image::HistoryEntry {
        created_by: "test".into(),
        created: chrono::DateTime::UNIX_EPOCH,
        comment: None,
    };
    let image = vauban_core::vauban_oci::image::build(store, None, &[packed], &history).unwrap();
    let tree = dir.join("tree-drift");
    std::fs::create_dir_all(tree.join("linux")).unwrap();
    std::fs::create_dir_all(tree.join("m")).unwrap();
    std::fs::write(tree.join("linux/vmlinuz-6.1"), b"kernel").unwrap();
    std::fs::write(tree.join("linux/initramfs-6.1.img"), b"initramfs").unwrap();
    std::fs::write(tree.join("m/rootfs.img"), b"squashfs of the image").unwrap();
    std::fs::write(tree.join("m/conffs-web01.tgz"), gzip(&tar_of(conffs))).unwrap();
    let info = json!({
        "master": "m", "kver": "6.1",
        "kernel": "linux/vmlinuz-6.1", "initramfs": "linux/initramfs-6.1.img",
        "rootfs": "m/rootfs.img", "kernel_args": [],
        "hosts": { "web01": {"conffs": "m/conffs-web01.tgz", "macs": [WEB01]} },
    });
    std::fs::write(tree.join("m/boot.json"), info.to_string()).unwrap();
    let files: Vec<String> = [
        "linux/vmlinuz-6.1",
        "linux/initramfs-6.1.img",
        "m/boot.json",
        "m/conffs-web01.tgz",
        "m/rootfs.img",
    ]
    .map(String::from)
    .to_vec();
    let artifact = vauban_core::build::write_boot_artifact(
        store,
        &tree,
        &files,
        "m",
        "6.1",
        Some(&image.manifest_digest),
    )
    .unwrap();
    store
        .tag(
            &Reference::parse("m/boot:drift").unwrap(),
            &artifact.descriptor(),
        )
        .unwrap();
    artifact.manifest_digest.to_string()
}

/// Deploys `m/boot:drift` (see [`artifact_with_image`]).
async fn deploy_drift_artifact(http: &reqwest::Client, base: &str) {
    let (st, d) = api(
        http,
        reqwest::Method::POST,
        format!("{base}/masters/m/deploy"),
        Some(json!({"from": "drift"})),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{d}");
}

/// The boot token of an iPXE script.
fn boot_token(script: &str) -> String {
    arg_url(script, "root=live:")
        .split_once("?boot=")
        .map(|(_, t)| t.to_owned())
        .unwrap()
}

/// A host sends its drift with its boot token: only its own host's, only
/// a layer, only so large, only while its boot is its last; an operator
/// sees it against the tree the boot got (the image the artifact's rootfs
/// names, the host's conffs on top), and `vauban gc` keeps that image as
/// long as the artifact is named.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_sends_its_drift_and_an_operator_sees_it_against_its_boot() {
    let w = World::new();
    artifact_with_image(&w.store, w.dir.path());
    let gc = w.store.gc().unwrap();
    assert!(
        gc.blobs.is_empty(),
        "gc removed what the artifact names: {gc:?}"
    );
    let addr = w
        .serve(
            "state",
            BootOptions {
                max_drift: 4096,
                ..BootOptions::default()
            },
        )
        .await;
    let http = reqwest::Client::new();
    let base = format!("http://{addr}");
    deploy_drift_artifact(&http, &base).await;
    let token = boot_token(&script(&http, addr, WEB01).await);

    // What web01 changed: /etc/motd, /etc/issue.net removed, a new file.
    let drift = gzip(&tar_of(&[
        ("etc/", b""),
        ("etc/motd", b"welcome\nchanged after boot\n"),
        ("etc/.wh.issue.net", b""),
        ("root/", b""),
        ("root/notes", b"by hand\n"),
    ]));
    let post = |host: &str, token: Option<&str>, body: Vec<u8>| {
        let mut req = http.post(format!("{base}/hosts/{host}/drift")).body(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send()
    };
    let r = post("web01", None, drift.clone()).await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = post("web01", Some(&"0".repeat(64)), drift.clone())
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = post("web02", Some(&token), drift.clone()).await.unwrap();
    assert_eq!(
        r.status(),
        StatusCode::FORBIDDEN,
        "web01's token sent web02's drift"
    );
    let r = post("web01", Some(&token), b"not a layer".to_vec())
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let mut x = 88_172_645_463_325_252u64;
    let big: Vec<u8> = (0..20_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let r = post("web01", Some(&token), gzip(&tar_of(&[("big", &big)])))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let r = post("web01", Some(&token), drift.clone()).await.unwrap();
    let status = r.status();
    let sent: Value = r.json().await.unwrap();
    assert_eq!(status, StatusCode::CREATED, "{sent}");
    assert_eq!(sent["host"], "web01");
    assert_eq!(sent["paths"], 5);
    let r = post("web01", Some(&token), drift.clone()).await.unwrap();
    assert_eq!(
        r.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "a second within the minute"
    );
    // Nothing of the refused bodies is left in the state dir.
    let kept: Vec<String> = std::fs::read_dir(w.path("state/drifts"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(kept, [format!("{}.tar.gz", sent["id"].as_str().unwrap())]);

    // An operator's diff: against the image and web01's conffs.
    let diff = |query: &'static str| {
        http.get(format!("{base}/hosts/web01/drift/diff?{query}"))
            .bearer_auth(TOKEN)
            .send()
    };
    let r = diff("format=name-status").await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["x-vauban-differs"], "true");
    assert_eq!(
        r.text().await.unwrap(),
        "D\t/etc/issue.net\nM\t/etc/motd\nA\t/root\nA\t/root/notes\n"
    );
    let text = diff("path=/etc/motd").await.unwrap().text().await.unwrap();
    assert!(text.contains("+changed after boot"), "{text}");
    let r = diff("format=json&exclude=root").await.unwrap();
    let report: Value = r.json().await.unwrap();
    assert_eq!(report["changes"].as_array().unwrap().len(), 2, "{report:#}");
    assert_eq!(report["a"]["kind"], "served", "{report:#}");
    let r = http
        .get(format!("{base}/hosts/web01/drift/diff"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::UNAUTHORIZED,
        "a diff without a token"
    );
    let (st, list) = api(
        &http,
        reqwest::Method::GET,
        format!("{base}/hosts/web01/drifts"),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(list.as_array().unwrap().len(), 1);
    // The page: the hosts link to the drift, which shows its paths.
    let page = |path: &'static str| http.get(format!("{base}{path}")).bearer_auth(TOKEN).send();
    let hosts = page("/ui/hosts").await.unwrap().text().await.unwrap();
    assert!(hosts.contains("href=\"/ui/hosts/web01/drift\""), "{hosts}");
    let r = page("/ui/hosts/web01/drift").await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let html = r.text().await.unwrap();
    for wanted in [
        "/etc/issue.net",
        "/etc/motd",
        "+changed after boot",
        "What web01 changed",
    ] {
        assert!(
            html.contains(wanted),
            "no {wanted} in the drift page:\n{html}"
        );
    }

    // web01 boots again: the first boot's token sends nothing more, and
    // the new boot's sends at once (one a minute is per boot).
    let new_token = boot_token(&script(&http, addr, WEB01).await);
    let r = post("web01", Some(&token), drift.clone()).await.unwrap();
    assert_eq!(r.status(), StatusCode::GONE);
    assert_ne!(new_token, token);
    let r = post("web01", Some(&new_token), drift).await.unwrap();
    assert_eq!(r.status(), StatusCode::CREATED, "a new boot's first drift");
}

/// `(private key, public key line)` made by OpenSSH's ssh-keygen.
fn ssh_keygen(dir: &Path, name: &str) -> (std::path::PathBuf, String) {
    let key = dir.join(name);
    let made = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"])
        .arg(&key)
        .status()
        .expect("ssh-keygen (openssh-client)");
    assert!(made.success());
    let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    (key, public)
}

/// What `vauban-drift` sends in `X-Vauban-Signed-At` and
/// `X-Vauban-Signature`: `body` of `host`'s boot `token` signed at `at` with
/// `key` by ssh-keygen.
fn ssh_sign(key: &Path, host: &str, token: &str, at: u64, body: &[u8]) -> (u64, String) {
    use base64::Engine as _;
    use sha2::Digest as _;
    use std::io::Write as _;
    let sha: String = sha2::Sha256::digest(body)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let message = vauban_core::build::drift_signature::signed_message(host, token, at, &sha);
    let mut child = std::process::Command::new("ssh-keygen")
        .args(["-q", "-Y", "sign", "-n", "drift@vauban", "-f"])
        .arg(key)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&message).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    (
        at,
        base64::engine::general_purpose::STANDARD.encode(out.stdout),
    )
}

/// A host whose conffs holds an sshd ed25519 key sends its drift signed
/// with it. The attacks: a local user of the host reads the boot token on
/// `/proc/cmdline` and sends a drift of their own, unsigned, signed with
/// their own key, or garbage; someone who saw a signed drift on the wire
/// sends it again, or with the next boot's token: each is refused, nothing
/// of it kept, and a signature that fails its check costs the boot a
/// minute.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_boot_token_alone_sends_no_drift_of_a_host_with_an_sshd_key() {
    let w = World::new();
    let (host_key, host_pub) = ssh_keygen(w.dir.path(), "web01");
    let (user_key, _) = ssh_keygen(w.dir.path(), "local-user");
    artifact_with_conffs(
        &w.store,
        w.dir.path(),
        &[
            ("etc/hostname", b"web01\n"),
            ("etc/ssh/ssh_host_ed25519_key.pub", host_pub.as_bytes()),
        ],
    );
    let addr = w.serve("state", BootOptions::default()).await;
    let http = reqwest::Client::new();
    let base = format!("http://{addr}");
    deploy_drift_artifact(&http, &base).await;
    let token = boot_token(&script(&http, addr, WEB01).await);
    let drift = gzip(&tar_of(&[("etc/", b""), ("etc/motd", b"the host's\n")]));
    let forged = gzip(&tar_of(&[("etc/", b""), ("etc/motd", b"a user's\n")]));
    let post = |token: &str, signed: Option<(u64, String)>, body: Vec<u8>| {
        let mut req = http
            .post(format!("{base}/hosts/web01/drift"))
            .bearer_auth(token)
            .body(body);
        if let Some((at, signature)) = signed {
            req = req
                .header("X-Vauban-Signed-At", at.to_string())
                .header("X-Vauban-Signature", signature);
        }
        req.send()
    };
    let answer = |r: reqwest::Response| async move {
        let status = r.status();
        (status, r.text().await.unwrap())
    };
    let refused = |(status, text): (StatusCode, String), code: StatusCode, why: &str| {
        assert_eq!(status, code, "{why}: {text}");
        text
    };
    let text = refused(
        answer(post(&token, None, forged.clone()).await.unwrap()).await,
        StatusCode::FORBIDDEN,
        "unsigned",
    );
    assert!(text.contains("must be signed"), "{text}");
    let by_user = ssh_sign(&user_key, "web01", &token, 1000, &forged);
    let text = refused(
        answer(post(&token, Some(by_user), forged.clone()).await.unwrap()).await,
        StatusCode::FORBIDDEN,
        "signed by the user's key",
    );
    assert!(text.contains("not by this host's sshd key"), "{text}");
    refused(
        answer(
            post(
                &token,
                Some((1000, "bm90IGEgc2lnbmF0dXJl".into())),
                drift.clone(),
            )
            .await
            .unwrap(),
        )
        .await,
        StatusCode::FORBIDDEN,
        "garbage",
    );

    // The host's own: taken, its signer told.
    let by_host = ssh_sign(&host_key, "web01", &token, 1000, &drift);
    let r = post(&token, Some(by_host.clone()), drift.clone())
        .await
        .unwrap();
    let status = r.status();
    let sent: Value = r.json().await.unwrap();
    assert_eq!(status, StatusCode::CREATED, "{sent}");
    let fingerprint = String::from_utf8(
        std::process::Command::new("ssh-keygen")
            .arg("-lf")
            .arg(host_key.with_extension("pub"))
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let signer = sent["signer"].as_str().unwrap();
    assert!(
        fingerprint.contains(signer),
        "{signer} is not in {fingerprint}"
    );
    assert_eq!(sent["signed_at"], 1000);
    // Seen on the wire and sent again: taken once.
    let text = refused(
        answer(
            post(&token, Some(by_host.clone()), drift.clone())
                .await
                .unwrap(),
        )
        .await,
        StatusCode::FORBIDDEN,
        "a replay",
    );
    assert!(text.contains("taken once"), "{text}");

    // web01 boots again: the old boot's signature is no good for the new
    // token, even over the same body, and its failure costs the new boot a
    // minute.
    let new_token = boot_token(&script(&http, addr, WEB01).await);
    let text = refused(
        answer(
            post(&new_token, Some(by_host), drift.clone())
                .await
                .unwrap(),
        )
        .await,
        StatusCode::FORBIDDEN,
        "a signature of the last boot",
    );
    assert!(text.contains("does not match"), "{text}");
    let good = ssh_sign(&host_key, "web01", &new_token, 1001, &drift);
    let text = refused(
        answer(post(&new_token, Some(good), drift).await.unwrap()).await,
        StatusCode::TOO_MANY_REQUESTS,
        "right after a signature failed",
    );
    assert!(text.contains("failed its signature check"), "{text}");
    let kept: Vec<String> = std::fs::read_dir(w.path("state/drifts"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(kept, [format!("{}.tar.gz", sent["id"].as_str().unwrap())]);
}
