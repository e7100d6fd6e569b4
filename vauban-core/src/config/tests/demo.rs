//! The demo's `testdata/demo/config.yml` (what `cargo xtask demo` builds): it loads,
//! its masters form the chain `bookworm → master-base → master-web`, the web master's
//! conffs pattern is `web*`, and every stage's playbook is in its Ansible repository.

use super::{chain, testdata};
use crate::config::*;
use crate::stage::{AnsibleSource, Stage};

fn demo() -> Config {
    let path = testdata()
        .join("demo/config.yml")
        .canonicalize()
        .expect("testdata/demo/config.yml exists");
    Config::load(&path).unwrap_or_else(|e| panic!("{}: {}", path.display(), chain(&e)))
}

fn stages(master: &Master) -> Vec<String> {
    master.stage_list().map(Stage::to_string).collect()
}

#[test]
fn the_demo_config_holds_one_release_and_two_masters() {
    let config = demo();
    assert_eq!(config.names(), ["bookworm", "master-base", "master-web"]);
    let release = &config.releases[0];
    assert_eq!(config.releases.len(), 1);
    let ReleaseSource::Mmdebstrap(spec) = &release.source else {
        panic!("bookworm is bootstrapped, not {:?}", release.source);
    };
    assert_eq!(spec.suite, "bookworm");
    assert_eq!(spec.variant.as_deref(), Some("minbase"));
    assert_eq!(spec.mirror, None);
    // The boot fixture's packages (xtask's BOOT_PACKAGES), which booted under QEMU.
    let mut include = spec.include.clone();
    include.sort();
    assert_eq!(
        include,
        [
            "curl",
            "dbus",
            "dracut",
            "dracut-live",
            "dracut-network",
            "isc-dhcp-client",
            "linux-image-amd64",
            "procps",
            "python3",
            "systemd-sysv",
        ]
    );
}

#[test]
fn master_web_is_built_from_master_base_and_has_web_conffs() {
    let config = demo();
    let web = config.find("master-web").unwrap();
    let chain: Vec<&str> = config.chain(web).iter().map(|m| m.name.as_str()).collect();
    assert_eq!(chain, ["bookworm", "master-base", "master-web"]);
    assert_eq!(stages(web), ["web.yml"]);
    assert_eq!(web.conffs.as_ref().map(|c| c.as_str()), Some("web*"));
    assert_eq!(web.branch, None);

    let base = config.find("master-base").unwrap();
    assert_eq!(stages(base), ["base.yml"]);
    assert_eq!(base.conffs, None);
    assert_eq!(base.parent.as_deref(), Some("bookworm"));
    assert!(config.find("bookworm").unwrap().stages.is_empty());
}

#[test]
fn the_demo_configuration_points_at_its_ansible_tree_and_the_guest_server() {
    let config = demo();
    let c = &config.configuration;
    let dir = config.path.parent().unwrap();
    assert_eq!(
        c.ansible.as_ref().map(|a| &a.value),
        Some(&AnsibleSource::Dir(dir.join("ansible")))
    );
    // The address QEMU forwards to the boot tree's server (xtask/src/boot/qemu.rs).
    assert_eq!(
        c.boot_url.as_ref().map(|u| u.as_str()),
        Some("http://10.0.2.100")
    );
    let args: Vec<&str> = c.kernel_args.iter().map(|a| a.as_str()).collect();
    assert_eq!(args, ["console=ttyS0,115200"]);
    assert!(c.ignore_stage_in_conffs.is_empty() && c.never_upload.is_empty());
    config
        .check_playbooks(&dir.join("ansible"))
        .unwrap_or_else(|e| panic!("{}", chain(&e)));
}
