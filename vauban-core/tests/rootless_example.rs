//! The embedder's example (`examples/embed.rs`) runs for real as an
//! unprivileged user: it imports the Debian fixture, applies a stage of the
//! test repository in the sandbox (serving as its own helper) and reads the
//! events. `cargo xtask test` builds and stages it (`$VAUBAN_EXAMPLES`).

#[path = "sandbox_common/prelude.rs"]
mod prelude;

use std::process::Command;

#[test]
fn rootless_embedder_example_imports_stages_and_reads_events() {
    prelude::unprivileged();
    let examples = std::env::var_os("VAUBAN_EXAMPLES")
        .map(std::path::PathBuf::from)
        .expect("VAUBAN_EXAMPLES names the staged examples: run through `cargo xtask test`");
    let exe = examples.join("embed");
    assert!(exe.is_file(), "{} missing", exe.display());
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let out = Command::new(&exe)
        .arg(&store)
        .arg(prelude::fixture("debian.tar"))
        .arg(prelude::testdata().join("ansible"))
        .arg("second.yml")
        .arg("web01")
        .env_remove("VAUBAN_HELPER")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "embed failed ({}):\n{stdout}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("imported sha256:"), "{stdout}");
    assert!(stdout.contains("started second.yml for web01"), "{stdout}");
    let built = stdout
        .lines()
        .find_map(|l| l.strip_prefix("built "))
        .unwrap();
    assert!(
        stdout.contains(&format!("finished second.yml: {built}")),
        "{stdout}"
    );
    let lines: u32 = stdout
        .lines()
        .find_map(|l| l.strip_suffix(" lines of Ansible"))
        .unwrap()
        .parse()
        .unwrap();
    assert!(lines > 3, "{stdout}");
    let helper = vauban_core::sandbox::Helper::at(exe);
    vauban_core::sandbox::remove_dir_all(&store, &helper).unwrap();
}
