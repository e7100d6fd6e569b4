//! What the original ignored and vauban ignores with a warning (file, line, the
//! closest key), `--strict` making them errors; and releases named by their suite.

use rstest::rstest;

use super::{chain, FILE};
use crate::config::*;

/// The warnings `text` gives, as printed.
fn warnings_of(text: &str) -> Vec<String> {
    let config = Config::parse(text, FILE).unwrap_or_else(|e| panic!("{}", chain(&e)));
    config.warnings.iter().map(ToString::to_string).collect()
}

#[rstest]
#[case::master_key(
    "r:\n  image: x\n  web:\n    stage: [a.yml]\n    stages: [a.yml]\n",
    "/t/config.yml:4:5 at `r.web.stage`: unknown key `stage` in a master, ignored (did you mean `stages`?)"
)]
#[case::release_key(
    "r:\n  image: x\n  imgae: y\n",
    "/t/config.yml:3:3 at `r.imgae`: unknown key `imgae` in a release, ignored (did you mean `image`?)"
)]
#[case::a_stranger(
    "r:\n  image: x\n  m:\n    stages: [a.yml]\n    description: the web servers\n",
    "/t/config.yml:5:5 at `r.m.description`: unknown key `description` in a master, ignored; valid keys \
     here: name, stages, conffs, branch, schedule, schedule_options, kernel_args, deploy, drift_report"
)]
#[case::null_is_no_master(
    "r:\n  image: x\n  web:\n",
    "/t/config.yml:3:3 at `r.web`: unknown key `web` in a release, ignored (a child master is a \
     mapping: `web: {stages: [...]}`)"
)]
#[case::configuration_key(
    "configuration:\n  never_uplaod: [x]\nr:\n  image: x\n",
    "/t/config.yml:2:3 at `configuration.never_uplaod`: unknown key `never_uplaod` in `configuration`, \
     ignored (did you mean `never_upload`?)"
)]
#[case::configuration_mapping(
    "configuration:\n  extra: {a: 1}\nr:\n  image: x\n",
    "/t/config.yml:2:3 at `configuration.extra`: unknown key `extra` in `configuration`, ignored; valid \
     keys here: ignore_stage_in_conffs, never_upload, always_apply_stage_in_conffs, ansible, \
     ansible_root, conffs_size_limit, dracut_conf, initramfs_release, kernel_args, \
     squashfs_compression, resolv_conf, boot_url, network, network_allow, notify, executor"
)]
#[case::no_stages(
    "r:\n  image: x\n  m:\n    conffs: web*\n",
    "/t/config.yml:3:3 at `r.m`: master `m` has neither `stages` nor child masters: its image is \
     its parent's"
)]
fn ignored_with_a_warning(#[case] text: &str, #[case] expected: &str) {
    assert_eq!(warnings_of(text), [expected]);
}

#[test]
fn warnings_come_in_file_order_and_strict_refuses_them() {
    let text = "configuration:\n  never_uplaod: [m]\nr:\n  image: x\n  m:\n    stage: [a.yml]\n";
    let config = Config::parse(text, FILE).unwrap();
    let lines: Vec<usize> = config.warnings.iter().map(|w| w.location().line).collect();
    // The misspelt key, then the master it left without stages.
    assert_eq!(lines, [2, 5, 6]);
    let err = config.strict().unwrap_err();
    let message = err.to_string();
    assert!(
        message.starts_with(
            "/t/config.yml holds 3 warning(s), errors with --strict; the first: \
             /t/config.yml:2:3 at `configuration.never_uplaod`"
        ),
        "{message}"
    );
    assert_eq!(err.blame(), crate::error::Blame::User);
    let clean = Config::parse("r:\n  image: x\n  m:\n    stages: [a.yml]\n", FILE).unwrap();
    assert!(clean.warnings.is_empty());
    clean.strict().unwrap();
}

#[test]
fn what_the_original_refused_stays_an_error() {
    for (text, wanted) in [
        ("r: debian\n", "expected a mapping (a release)"),
        (
            "r:\n  image: x\n  m:\n    stages: a.yml\n",
            "expected a list",
        ),
        (
            "r:\n  image: x\n  m:\n    stages: [a.yml]\n    schedule: '0 3 * * 1'\n    \
             schedule_options: {stge: all}\n",
            "unknown key",
        ),
        (
            "r:\n  mmdebstrap: {suite: bookworm, varient: minbase}\n",
            "unknown key `varient`",
        ),
        (
            "r:\n  image: x\n  m:\n    stages: [a.yml]\n    url: http://h/x\n",
            "only valid on a release",
        ),
    ] {
        let err = super::error_of(text);
        assert!(err.contains(wanted), "{text:?}: {err}");
    }
}

#[rstest]
#[case::codename("bookworm", "bookworm")]
#[case::sid("sid", "sid")]
#[case::a_suite("testing", "testing")]
#[case::numbered("debian-12", "bookworm")]
#[case::older("debian-10", "buster")]
fn a_release_without_source_is_its_suite(#[case] key: &str, #[case] suite: &str) {
    let text = format!("{key}:\n  m:\n    stages: [a.yml]\n");
    let config = Config::parse(&text, FILE).unwrap();
    let release = &config.releases[0];
    assert_eq!(
        release.source,
        ReleaseSource::Suite(Mmdebstrap::original(suite))
    );
    assert_eq!(release.source_location.line, 1);
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
    let ReleaseSource::Suite(m) = &release.source else {
        unreachable!()
    };
    // debootstrap's set (required and important, but ifupdown) and the original's packages.
    assert_eq!(m.variant.as_deref(), Some("required"));
    assert!(m.include.contains(&"openssh-server".to_owned()));
    assert!(m.include.contains(&"python3".to_owned()));
}

#[test]
fn the_sample_of_the_originals_style_has_no_warning() {
    let config = super::load("original.yml");
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
}
