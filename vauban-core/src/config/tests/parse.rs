//! Configs that load: the original's style, vauban's additions, anchors, defaults,
//! and finding masters in them.

use std::path::PathBuf;

use super::{chain, load, samples, FILE};
use crate::config::*;
use crate::stage::{AnsibleSource, Stage};

fn stages(master: &Master) -> Vec<String> {
    master.stage_list().map(Stage::to_string).collect()
}

fn strings(values: &[Located<String>]) -> Vec<&str> {
    values.iter().map(|v| v.as_str()).collect()
}

#[test]
fn the_original_style_parses_into_its_tree() {
    let config = load("original.yml");
    assert_eq!(config.path, samples().join("original.yml"));
    assert!(config.path.is_absolute());
    let keys: Vec<&str> = config.releases.iter().map(Release::key).collect();
    assert_eq!(
        keys,
        ["bullseye-cloud-amd64.raw", "bookworm-cloud-amd64.raw"]
    );
    assert_eq!(
        config.names(),
        [
            "debian-11/iso",
            "lab-sandbox",
            "debian-12/iso",
            "fleet-base",
            "fleet-web",
            "fleet-web-canary",
            "database"
        ]
    );

    let bookworm = &config.releases[1];
    assert_eq!(
        bookworm.source,
        ReleaseSource::CloudImage {
            url: "http://127.0.0.1:8080/bookworm/latest/bookworm-cloud-amd64.raw".into(),
            sha512sums: Sha512Sums::Url("http://127.0.0.1:8080/bookworm/latest/SHA512SUMS".into()),
        }
    );
    assert_eq!(
        (
            bookworm.source_location.line,
            bookworm.source_location.column
        ),
        (25, 8)
    );
    assert_eq!(bookworm.root.name, "debian-12/iso");
    assert!(bookworm.root.is_release() && bookworm.root.stages.is_empty());

    let base = config.find("fleet-base").unwrap();
    assert_eq!(stages(base), ["base.yml", "packages.yml"]);
    assert_eq!(
        base.schedule.as_deref().map(String::as_str),
        Some("30 2 * * 0")
    );
    let options = base.schedule_options.as_ref().unwrap();
    assert_eq!(
        (options.stage, options.build_parents),
        (ScheduledStage::Rootfs, 1)
    );
    assert_eq!(base.parent.as_deref(), Some("debian-12/iso"));
    assert_eq!(base.release, "bookworm-cloud-amd64.raw");
    assert_eq!(base.conffs, None);

    let web = config.find("fleet-web").unwrap();
    assert_eq!(web.branch.as_ref().unwrap().as_str(), "staging");
    assert_eq!(web.conffs.as_ref().unwrap().as_str(), "web-*");
    assert_eq!(
        web.location,
        Location {
            file: config.path.as_path().into(),
            line: 36,
            column: 5,
            key_path: "\"bookworm-cloud-amd64.raw\".fleet-base.fleet-web".into(),
        }
    );
    let children: Vec<&str> = web.children.iter().map(|m| m.key.as_str()).collect();
    assert_eq!(children, ["fleet-web-canary"]);

    let canary = config.find("fleet-web-canary").unwrap();
    let stage = &canary.stages[0];
    assert_eq!(
        (stage.branch.as_deref(), stage.playbook.as_str()),
        (Some("hotfix/42"), "web.yml")
    );
    assert_eq!((stage.location.line, stage.location.column), (43, 13));
    assert_eq!(
        stage.location.key_path,
        "\"bookworm-cloud-amd64.raw\".fleet-base.fleet-web.fleet-web-canary.stages[0]"
    );

    let db = config.find("database").unwrap();
    assert_eq!(
        (db.key.as_str(), db.conffs.as_ref().unwrap().as_str()),
        ("fleet-db", "db-*:&prod")
    );
    assert!(
        config.get("fleet-db").is_none(),
        "a master with `name:` is found by that name only"
    );

    let c = &config.configuration;
    let ignored: Vec<String> = c
        .ignore_stage_in_conffs
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(ignored, ["packages.yml"]);
    assert_eq!(strings(&c.never_upload), ["lab-sandbox"]);
    assert_eq!(c.always_apply_stage_in_conffs[0].playbook, "hostname.yml");
    assert_eq!(
        c.conffs_size_limit,
        configuration::DEFAULT_CONFFS_SIZE_LIMIT
    );
}

#[test]
fn chains_parents_and_the_depth_first_walk() {
    let config = load("original.yml");
    let canary = config.find("fleet-web-canary").unwrap();
    let names: Vec<&str> = config
        .chain(canary)
        .iter()
        .map(|m| m.name.as_str())
        .collect();
    assert_eq!(
        names,
        [
            "debian-12/iso",
            "fleet-base",
            "fleet-web",
            "fleet-web-canary"
        ]
    );
    let release = config.find("debian-12/iso").unwrap();
    assert_eq!(config.chain(release).len(), 1);
    assert!(config.parent(release).is_none());
    assert_eq!(config.parent(canary).unwrap().name, "fleet-web");
    assert_eq!(
        config.release_of(canary).unwrap().root.name,
        "debian-12/iso"
    );
    assert_eq!(config.masters().filter(|m| m.is_release()).count(), 2);

    let err = config.find("fleet-wbe").unwrap_err();
    assert_eq!(
        chain(&err),
        format!(
            "no master named `fleet-wbe` in {}; the masters are: debian-11/iso, lab-sandbox, \
             debian-12/iso, fleet-base, fleet-web, fleet-web-canary, database",
            config.path.display()
        )
    );
}

#[test]
fn vaubans_sources_and_settings() {
    let config = load("vauban.yml");
    let dir = samples();
    let c = &config.configuration;
    assert_eq!(
        c.ansible.as_ref().unwrap().value,
        AnsibleSource::Dir(dir.join("../ansible"))
    );
    assert_eq!(c.ansible_root.as_ref().unwrap().value, PathBuf::from("."));
    assert_eq!(c.conffs_size_limit, 20 * 1024 * 1024);
    assert_eq!(
        (
            c.locations["conffs_size_limit"].line,
            c.locations["conffs_size_limit"].column
        ),
        (5, 22)
    );
    let DracutConf::Text(text) = &c.dracut_conf.as_ref().unwrap().value else {
        panic!("dracut_conf is text");
    };
    assert!(
        text.starts_with("add_dracutmodules+=") && text.contains("hostonly=\"no\"\n"),
        "{text:?}"
    );
    assert_eq!(c.initramfs_release.as_ref().unwrap().as_str(), "trixie-oci");
    assert_eq!(strings(&c.kernel_args), ["console=ttyS0", "net.ifnames=0"]);
    assert_eq!(c.squashfs_compression, SquashfsCompression::Xz);
    assert_eq!(
        c.resolv_conf,
        PathBuf::from("/run/systemd/resolve/resolv.conf")
    );
    assert_eq!(
        c.boot_url.as_ref().unwrap().as_str(),
        "http://127.0.0.1:8080/boot"
    );

    let sources: Vec<&ReleaseSource> = config.releases.iter().map(|r| &r.source).collect();
    assert_eq!(
        sources[0],
        &ReleaseSource::Mmdebstrap(Mmdebstrap {
            suite: "bookworm".into(),
            variant: Some("minbase".into()),
            include: vec!["python3".into(), "systemd-sysv".into()],
            mirror: Some("http://127.0.0.1:3142/debian".into()),
        })
    );
    assert_eq!(
        sources[1],
        &ReleaseSource::Image("127.0.0.1:5000/debian:trixie".into())
    );
    assert_eq!(
        sources[2],
        &ReleaseSource::Tarball {
            tarball: TarballLocation::Path(dir.join("images/rootfs.tar.zst")),
            checksum: Checksum::Sha256(
                "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08".into()
            ),
        }
    );
    let ReleaseSource::Tarball { tarball, checksum } = sources[3] else {
        panic!("remote-rootfs is a tarball");
    };
    assert_eq!(
        tarball,
        &TarballLocation::Url("http://127.0.0.1:8080/rootfs.tar.gz".into())
    );
    assert_eq!(
        (checksum.algorithm(), checksum.hex().len()),
        ("sha512", 128)
    );

    // A release may carry stages and conffs of its own, as in the original.
    let trixie = config.find("trixie-oci").unwrap();
    assert!(trixie.is_release());
    assert_eq!(
        (stages(trixie), trixie.conffs.as_ref().unwrap().as_str()),
        (vec!["base.yml".to_owned()], "lab*")
    );
}

#[test]
fn anchors_aliases_and_merge_keys() {
    let config = load("anchors.yml");
    let fr = config.find("web-fr").unwrap();
    let de = config.find("web-de").unwrap();
    let us = config.find("web-us").unwrap();
    assert_eq!(stages(de), ["base.yml", "web.yml"]);
    assert_eq!(stages(us), stages(fr));
    assert_eq!(de.conffs.as_ref().unwrap().as_str(), "web-de-*");
    assert_eq!(de.branch.as_ref().unwrap().as_str(), "main");
    assert_eq!(us.branch.as_ref().unwrap().as_str(), "us");
    // A merged value is blamed where it is written (the anchor), under the key path
    // it is used at.
    let merged = &de.stages[0].location;
    assert_eq!(
        (merged.line, merged.column, merged.key_path.as_str()),
        (11, 9, "bookworm.web-de.stages[0]")
    );
    let c = &config.configuration;
    let values =
        |stages: &[Located<Stage>]| stages.iter().map(|s| s.value.clone()).collect::<Vec<_>>();
    assert_eq!(
        values(&c.ignore_stage_in_conffs),
        values(&c.always_apply_stage_in_conffs)
    );
    assert_eq!(c.ignore_stage_in_conffs[0].playbook, "hostname.yml");
}

#[test]
fn defaults_sizes_and_nulls() {
    let config = Config::parse(
        "r:\n  image: debian:12\n  m:\n    stages: [a.yml]\n    conffs:\n",
        FILE,
    )
    .unwrap();
    let c = &config.configuration;
    assert_eq!(c.conffs_size_limit, 50 * 1024 * 1024);
    assert_eq!(c.squashfs_compression, SquashfsCompression::Zstd);
    assert_eq!(c.resolv_conf, PathBuf::from("/run/resolvconf/resolv.conf"));
    assert!(c.ansible.is_none() && c.never_upload.is_empty() && c.locations.is_empty());
    assert_eq!(config.find("m").unwrap().conffs, None);
    assert_eq!(config.find("r").unwrap().name, "r");

    for (written, bytes) in [
        ("1048576", 1_048_576),
        ("2 MB", 2_000_000),
        ("1.5GiB", 1_610_612_736),
        ("512k", 512_000),
    ] {
        let text = format!("configuration:\n  conffs_size_limit: {written}\nr:\n  image: x\n");
        let config = Config::parse(&text, FILE).unwrap();
        assert_eq!(config.configuration.conffs_size_limit, bytes, "{written}");
    }

    let text = "configuration:\n  dracut_conf: extra/dracut.conf\nr:\n  url: http://127.0.0.1/i.raw\n  sha512sums: {}\n";
    let config = Config::parse(&text.replace("{}", &"AB".repeat(64)), FILE).unwrap();
    let conf = &config.configuration.dracut_conf.as_ref().unwrap().value;
    assert_eq!(
        conf,
        &DracutConf::File(PathBuf::from("/t/extra/dracut.conf"))
    );
    let ReleaseSource::CloudImage { sha512sums, .. } = &config.releases[0].source else {
        panic!("a cloud image");
    };
    assert_eq!(sha512sums, &Sha512Sums::Digest("ab".repeat(64)));
}

#[test]
fn notify_is_one_url_or_a_list() {
    let one = Config::parse(
        "configuration:\n  notify: https://hooks.slack.com/services/T/B/X\nr:\n  image: x\n",
        super::FILE,
    )
    .unwrap();
    assert_eq!(
        strings(&one.configuration.notify),
        ["https://hooks.slack.com/services/T/B/X"]
    );
    let two = Config::parse(
        "configuration:\n  notify:\n    - http://127.0.0.1:9/hook\n    - slack+https://chat.example/hooks/x\nr:\n  image: x\n",
        super::FILE,
    )
    .unwrap();
    assert_eq!(
        strings(&two.configuration.notify),
        [
            "http://127.0.0.1:9/hook",
            "slack+https://chat.example/hooks/x"
        ]
    );
}
