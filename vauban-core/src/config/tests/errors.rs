//! Each mistake a config can hold, and the message it gives: file, line, column, key
//! path, and what to change.

use rstest::rstest;

use super::{error_of, FILE};
use crate::config::Config;

const HEX64: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

#[rstest]
#[case::bad_yaml(
    "r:\n  image: x\n  m: [a.yml, b.yml\n",
    "/t/config.yml:4:1: invalid YAML: while parsing a flow sequence, expected ',' or ']'"
)]
#[case::tab_indent(
    "r:\n\timage: x\n",
    "/t/config.yml:2:2: invalid YAML: tabs disallowed within this context (block indentation)"
)]
fn bad_yaml_carries_the_parsers_position(#[case] text: &str, #[case] start: &str) {
    assert_eq!(error_of(text), start);
}

#[rstest]
#[case::mmdebstrap_key(
    "bookworm:\n  mmdebstrap:\n    suit: bookworm\n",
    "/t/config.yml:3:5 at `bookworm.mmdebstrap.suit`: unknown key `suit` in `mmdebstrap` (did you mean \
     `suite`?); valid keys here: suite, variant, include, mirror"
)]
#[case::release_key_on_a_master(
    "r:\n  image: x\n  m:\n    stages: [a.yml]\n    url: http://127.0.0.1/x.raw\n",
    "/t/config.yml:5:5 at `r.m.url`: `url` is only valid on a release (a top-level key), not on a master"
)]
#[case::reserved_name_is_no_child(
    "r:\n  image: x\n  m:\n    stages: [a.yml]\n    mmdebstrap: {suite: bookworm}\n",
    "/t/config.yml:5:5 at `r.m.mmdebstrap`: `mmdebstrap` is only valid on a release (a top-level key), not on a master"
)]
fn unknown_and_misplaced_keys(#[case] text: &str, #[case] expected: &str) {
    assert_eq!(error_of(text), expected);
}

#[rstest]
#[case::stages_string(
    "r:\n  image: x\n  m:\n    stages: a.yml\n",
    "/t/config.yml:4:13 at `r.m.stages`: expected a list, found a string"
)]
#[case::stage_mapping(
    "r:\n  image: x\n  m:\n    stages:\n      - {a: 1}\n",
    "/t/config.yml:5:9 at `r.m.stages[0]`: expected a string, found a mapping"
)]
#[case::release_scalar(
    "r: debian\n",
    "/t/config.yml:1:4 at `r`: expected a mapping (a release), found a string"
)]
#[case::top_level_list(
    "- a\n- b\n",
    "/t/config.yml:1:1: expected a mapping of releases, found a list"
)]
#[case::configuration_list(
    "configuration: [a]\nr:\n  image: x\n",
    "/t/config.yml:1:16 at `configuration`: expected a mapping, found a list"
)]
#[case::kernel_args_string(
    "configuration:\n  kernel_args: quiet\nr:\n  image: x\n",
    "/t/config.yml:2:16 at `configuration.kernel_args`: expected a list, found a string"
)]
fn wrong_types(#[case] text: &str, #[case] expected: &str) {
    assert_eq!(error_of(text), expected);
}

#[rstest]
#[case::duplicate_name(
    "r:\n  image: x\n  a:\n    stages: [a.yml]\n  b:\n    name: a\n    stages: [b.yml]\n",
    "/t/config.yml:6:11 at `r.b.name`: two masters are named `a`, this one and the one at \
     /t/config.yml:3:3 at `r.a`: rename one (the original silently built the first)"
)]
#[case::duplicate_name_across_releases(
    "r:\n  image: x\n  web:\n    stages: [a.yml]\ns:\n  image: y\n  web:\n    stages: [b.yml]\n",
    "/t/config.yml:7:3 at `s.web`: two masters are named `web`, this one and the one at \
     /t/config.yml:3:3 at `r.web`: rename one (the original silently built the first)"
)]
#[case::duplicate_key(
    "r:\n  image: x\n  m:\n    stages: [a.yml]\n    stages: [b.yml]\n",
    "/t/config.yml:5:5 at `r.m.stages`: duplicate key `stages`, first written at \
     /t/config.yml:4:5 at `r.m.stages` (the original silently kept the last)"
)]
#[case::no_source(
    "r:\n  name: debian-12/iso\n",
    "/t/config.yml:1:1 at `r`: release `r` has no source: give one of `image`, `tarball` (with `sha256` \
     or `sha512`), `mmdebstrap`, or `url` with `sha512sums`; or name the release by the Debian suite \
     to bootstrap, as the original did: a codename (jessie, stretch, buster, bullseye, bookworm, \
     trixie, forky, duke, sid), a suite (oldoldstable, oldstable, stable, testing, unstable) or \
     `debian-NN` (debian-8 to debian-15)"
)]
#[case::checksum_on_a_suite(
    "bookworm:\n  sha256: 00\n",
    "/t/config.yml:2:11 at `bookworm.sha256`: `sha256` goes with `tarball`, to check it"
)]
#[case::two_sources(
    "r:\n  image: x\n  mmdebstrap: {suite: bookworm}\n",
    "/t/config.yml:3:15 at `r.mmdebstrap`: release `r` has two sources, `image` and `mmdebstrap`: keep one"
)]
#[case::tarball_without_checksum(
    "r:\n  tarball: base.tar\n",
    "/t/config.yml:1:1 at `r`: missing `sha256`: a `tarball` is checked before use: give its `sha256` or \
     `sha512` digest"
)]
#[case::checksum_without_tarball(
    "r:\n  image: x\n  sha256: 00\n",
    "/t/config.yml:3:11 at `r.sha256`: `sha256` goes with `tarball`, to check it"
)]
#[case::url_without_sums(
    "r:\n  url: http://127.0.0.1/d.raw\n",
    "/t/config.yml:1:1 at `r`: missing `sha512sums`: a `url` image is checked against `sha512sums`: the URL \
     of its SHA512SUMS file, or its digest"
)]
#[case::mmdebstrap_without_suite(
    "r:\n  mmdebstrap:\n    variant: minbase\n",
    "/t/config.yml:3:5 at `r.mmdebstrap`: missing `suite`: mmdebstrap needs the suite to bootstrap \
     (`bookworm`, `trixie`, ...)"
)]
#[case::mmdebstrap_variant(
    "r:\n  mmdebstrap: {suite: bookworm, variant: minbsae}\n",
    "/t/config.yml:2:42 at `r.mmdebstrap.variant`: mmdebstrap has no variant `minbsae` (did you mean \
     `minbase`?); it has: extract, custom, essential, apt, required, minbase, buildd, important, \
     debootstrap, -, standard"
)]
#[case::initramfs_release(
    "configuration:\n  initramfs_release: bookwrm\nbookworm:\n  image: x\n  m:\n    stages: [a.yml]\n",
    "/t/config.yml:2:22 at `configuration.initramfs_release`: no master named `bookwrm`; the masters are: \
     bookworm, m"
)]
fn tree_and_source_errors(#[case] text: &str, #[case] expected: &str) {
    assert_eq!(error_of(text), expected);
}

#[rstest]
#[case::short(
    format!("r:\n  tarball: t.tar\n  sha256: {}\n", &HEX64[1..]),
    "/t/config.yml:3:11 at `r.sha256`: bad sha256 checksum: 63 hex digits, a sha256 digest has 64"
)]
#[case::not_hex(
    format!("r:\n  tarball: t.tar\n  sha256: {}z\n", &HEX64[1..]),
    "/t/config.yml:3:11 at `r.sha256`: bad sha256 checksum: `z` (character 64) is not a hex digit"
)]
#[case::sha256_given_as_sha512(
    format!("r:\n  tarball: t.tar\n  sha512: {HEX64}\n"),
    "/t/config.yml:3:11 at `r.sha512`: bad sha512 checksum: 64 hex digits, a sha512 digest has 128"
)]
#[case::sha512sums(
    "r:\n  url: http://127.0.0.1/d.raw\n  sha512sums: SHA512SUMS\n".to_owned(),
    "/t/config.yml:3:15 at `r.sha512sums`: bad sha512 checksum: `S` (character 1) is not a hex digit \
     (or give the http(s) URL of a SHA512SUMS file)"
)]
fn bad_checksums(#[case] text: String, #[case] expected: &str) {
    assert_eq!(error_of(&text), expected);
}

#[rstest]
#[case::stage(
    "r:\n  image: x\n  m:\n    stages: [a.yml, \"x@y@z.yml\"]\n",
    "/t/config.yml:4:21 at `r.m.stages[1]`: invalid stage: "
)]
#[case::branch(
    "r:\n  image: x\n  m:\n    stages: [a.yml]\n    branch: \"a..b\"\n",
    "/t/config.yml:5:13 at `r.m.branch`: \"a..b\" is not a valid git branch name"
)]
#[case::cron(
    "r:\n  image: x\n  m:\n    stages: [a.yml]\n    schedule: \"0 3 * *\"\n",
    "/t/config.yml:5:15 at `r.m.schedule`: a schedule is a cron expression of 5 fields"
)]
#[case::schedule_stage(
    "r:\n  image: x\n  m:\n    stages: [a.yml]\n    schedule_options: {stage: everything}\n",
    "/t/config.yml:5:31 at `r.m.schedule_options.stage`: unknown stage `everything`"
)]
#[case::no_source_for_a_cloud_image_name(
    "\"debian-12-generic-amd64.raw\":\n  name: debian-12/iso\n",
    "/t/config.yml:1:1 at `\"debian-12-generic-amd64.raw\"`: release `debian-12-generic-amd64.raw` has \
     no source: give one of"
)]
#[case::size(
    "configuration:\n  conffs_size_limit: 50 Mo\nr:\n  image: x\n",
    "/t/config.yml:2:22 at `configuration.conffs_size_limit`: `50 Mo` is not a size"
)]
#[case::compression(
    "configuration:\n  squashfs_compression: gzip\nr:\n  image: x\n",
    "/t/config.yml:2:25 at `configuration.squashfs_compression`: unknown compression `gzip`: `zstd` or `xz`"
)]
#[case::resolv_conf(
    "configuration:\n  resolv_conf: run/resolv.conf\nr:\n  image: x\n",
    "/t/config.yml:2:16 at `configuration.resolv_conf`: `resolv_conf` is an absolute path"
)]
#[case::boot_url(
    "configuration:\n  boot_url: ftp://127.0.0.1/boot\nr:\n  image: x\n",
    "/t/config.yml:2:13 at `configuration.boot_url`: `ftp://127.0.0.1/boot`: only http:// and https:// URLs"
)]
#[case::notify(
    "configuration:\n  notify: [http://127.0.0.1:9/hook, 'slack+ftp://127.0.0.1/x']\nr:\n  image: x\n",
    "/t/config.yml:2:37 at `configuration.notify[1]`: `ftp://127.0.0.1/x`: only http:// and https:// URLs"
)]
#[case::ansible_root(
    "configuration:\n  ansible_root: ../elsewhere\nr:\n  image: x\n",
    "/t/config.yml:2:17 at `configuration.ansible_root`: `ansible_root` is a directory inside the repository"
)]
fn invalid_values(#[case] text: &str, #[case] start: &str) {
    let err = error_of(text);
    assert!(err.starts_with(start), "{err}");
}

#[test]
fn empty_files_and_unreadable_ones() {
    assert_eq!(
        error_of(""),
        "/t/config.yml holds no release: a config needs at least one top-level release"
    );
    assert_eq!(
        error_of("configuration:\n  never_upload: []\n"),
        "/t/config.yml holds no release: a config needs at least one top-level release"
    );
    let missing = std::env::temp_dir().join("vauban-no-such-dir/config.yml");
    let err = Config::load(&missing).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("cannot read config file {}", missing.display())
    );
    assert!(std::error::Error::source(&err).is_some());
    // A relative path is made absolute against the working directory.
    let config = Config::parse("r:\n  image: x\n", "rel/config.yml").unwrap();
    assert_eq!(
        config.path,
        std::env::current_dir().unwrap().join("rel/config.yml")
    );
    assert_eq!(FILE, "/t/config.yml");
}
