//! `vauban stage` with the real binary, as an unprivileged user (run by
//! `cargo xtask test` as `vauban-test`): a playbook of the test Ansible
//! repository gives the image one more layer holding its change; a failing
//! playbook exits 1 naming the task and commits nothing.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::{Mutex, MutexGuard, OnceLock};

mod cli_support;

use cli_support::{fixture, stdout_if_ok, testdata, unprivileged, vauban_bin};

/// One build at a time: one shared store, two cores.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    unprivileged();
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn ansible_repo() -> PathBuf {
    let dir = testdata().join("ansible");
    assert!(
        dir.join("second.yml").is_file(),
        "test Ansible repository {} missing (set VAUBAN_TESTDATA)",
        dir.display()
    );
    dir
}

/// A store with the Debian fixture imported as `debian`, plus a home, cache and
/// log dir, all under one directory emptied first (static storage never drops
/// it: at most one is left behind) and removed inside the user namespace (it
/// holds files owned by subordinate ids).
struct Work {
    dir: PathBuf,
}

impl Work {
    fn shared() -> &'static Work {
        static WORK: OnceLock<Work> = OnceLock::new();
        WORK.get_or_init(|| {
            unprivileged();
            let dir = std::env::temp_dir().join("vauban-stage-cli");
            if dir.exists() {
                vauban_core::sandbox::remove_dir_all(
                    &dir,
                    &vauban_core::sandbox::Helper::at(cli_support::vauban_bin()),
                )
                .unwrap_or_else(|e| panic!("cannot remove {}: {e}", dir.display()));
            }
            for sub in ["home", "cache", "logs"] {
                std::fs::create_dir_all(dir.join(sub)).unwrap();
            }
            let work = Work { dir };
            let debian = fixture("debian.tar");
            work.ok(&["import", debian.to_str().unwrap(), "--tag", "debian"]);
            work
        })
    }

    fn store(&self) -> PathBuf {
        self.dir.join("store")
    }

    /// `vauban ARGS...` on the store, with a private home and none of the
    /// variables that change what `vauban stage` or Ansible do.
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(vauban_bin());
        c.args(args);
        for (k, _) in std::env::vars_os() {
            let k = k.to_string_lossy();
            if k.starts_with("ANSIBLE_") || k.starts_with("HOOK_") || k.starts_with("VAUBAN_") {
                c.env_remove(&*k);
            }
        }
        c.env_remove("RUST_LOG")
            .env("VAUBAN_STORE", self.store())
            .env("HOME", self.dir.join("home"))
            .env("XDG_CACHE_HOME", self.dir.join("cache"))
            .env("XDG_STATE_HOME", self.dir.join("home"));
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("cannot start vauban")
    }

    fn ok(&self, args: &[&str]) -> String {
        stdout_if_ok(args, self.run(args))
    }

    fn inspect(&self, image: &str) -> serde_json::Value {
        serde_json::from_str(&self.ok(&["inspect", image])).unwrap()
    }

    /// `vauban stage debian --ansible REPO --host web01 --commit COMMIT PLAYBOOK`.
    fn stage(&self, commit: &str, playbook: &str) -> Output {
        let repo = ansible_repo();
        let logs = self.dir.join("logs");
        self.run(&[
            "stage",
            "debian",
            "--ansible",
            repo.to_str().unwrap(),
            "--host",
            "web01",
            "--commit",
            commit,
            "--cache-dir",
            self.dir.join("cache").to_str().unwrap(),
            "--log-dir",
            logs.to_str().unwrap(),
            playbook,
        ])
    }

    /// The files of a layer blob, by path, with their content.
    fn layer_files(&self, layer: &serde_json::Value) -> BTreeMap<String, Vec<u8>> {
        let digest = layer["digest"].as_str().unwrap();
        let hex = digest.strip_prefix("sha256:").unwrap();
        let blob = std::fs::File::open(self.store().join("blobs/sha256").join(hex)).unwrap();
        let media_type = layer["mediaType"].as_str().unwrap();
        let tar = vauban_oci::layer::decompressor(media_type, std::io::BufReader::new(blob))
            .unwrap_or_else(|e| panic!("layer {digest}: {e}"));
        let mut archive = tar::Archive::new(tar);
        let mut out = BTreeMap::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let path = entry.path().unwrap().to_string_lossy().into_owned();
            let mut content = Vec::new();
            entry.read_to_end(&mut content).unwrap();
            out.insert(path.trim_end_matches('/').to_string(), content);
        }
        out
    }

    /// Entries of `STORE/tmp` (sandbox dirs, temp blobs).
    fn tmp_entries(&self) -> Vec<String> {
        std::fs::read_dir(self.store().join("tmp"))
            .map(|d| {
                d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }
}

#[test]
fn a_stage_adds_one_layer_with_the_playbook_change() {
    let _serial = serial();
    let work = Work::shared();
    let base = work.inspect("debian");
    let base_layers = base["layers"].as_array().unwrap().clone();

    let out = work.stage("web:1", "second.yml");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "vauban stage failed ({}):\n{stdout}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    // The last line names the image and its digest.
    let last = stdout.lines().last().unwrap_or_default();
    let built = work.inspect("web:1");
    assert_eq!(
        last,
        format!("web:1 {}", built["manifestDigest"].as_str().unwrap())
    );

    // One more layer, on top of the base's unchanged ones.
    let layers = built["layers"].as_array().unwrap();
    assert_eq!(layers.len(), base_layers.len() + 1, "{built:#}");
    assert_eq!(layers[..base_layers.len()], base_layers[..]);

    // That layer holds what the playbook wrote, for this host, and the metadata.
    let files = work.layer_files(layers.last().unwrap());
    let second = files
        .get("etc/vauban-second")
        .unwrap_or_else(|| panic!("etc/vauban-second not in the layer: {:?}", files.keys()));
    let second = String::from_utf8_lossy(second);
    assert!(second.contains("first_stage_seen=False"), "{second}");
    assert!(second.contains("greeting=hello from web01"), "{second}");
    let imginfo = String::from_utf8_lossy(files.get("imginfo").expect("imginfo in the layer"));
    assert!(
        imginfo.contains("second.yml") && imginfo.contains("web01"),
        "{imginfo}"
    );
    assert_eq!(
        work.tmp_entries(),
        Vec::<String>::new(),
        "STORE/tmp not empty"
    );
}

#[test]
fn a_failing_playbook_exits_1_naming_the_task() {
    let _serial = serial();
    let work = Work::shared();
    let images_before = work.ok(&["images"]);

    let out = work.stage("web:failed", "failing.yml");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let error = stderr
        .lines()
        .find(|l| l.starts_with("vauban: error:"))
        .unwrap_or_else(|| panic!("no error line:\n{stderr}"));
    assert!(error.contains("This task always fails"), "{error}");
    assert!(error.contains("web01"), "{error}");

    // Nothing committed, nothing left behind.
    assert_eq!(work.run(&["inspect", "web:failed"]).status.code(), Some(1));
    assert_eq!(work.ok(&["images"]), images_before);
    assert_eq!(
        work.tmp_entries(),
        Vec::<String>::new(),
        "STORE/tmp not empty"
    );
}
