//! The dry run's Jobs checked against the Kubernetes API's schema (strict:
//! no unknown field) by kubernetes-validate, for the oldest and newest
//! Kubernetes supported: with every option set, and with none.

mod common;

use vauban_core::executor::JobSpec;
use vauban_kube::{dry_run, KubeOptions};

fn specs() -> Vec<JobSpec> {
    let argv = |shards: &str| -> Vec<String> {
        [
            "vauban",
            "build",
            "--config",
            "/config/config.yml",
            "--name",
            "master-web",
            "--stage",
            "conffs",
            "--conffs-shards",
            shards,
            "--registry",
            "registry.example:5000/vauban",
            "--events",
            "json",
            "--images-only",
        ]
        .map(String::from)
        .to_vec()
    };
    vec![
        JobSpec {
            name: "vauban-01hx7k-conffs".into(),
            build_id: "01HX7K".into(),
            master: "master-web".into(),
            argv: argv("web01,web02;web03,web04"),
            env: vec![("RUST_LOG".into(), "info".into())],
            tasks: 2,
        },
        JobSpec {
            name: "vauban-01hx7k-conffs-db".into(),
            build_id: "01HX7K".into(),
            master: "master-db".into(),
            argv: argv("db01"),
            env: Vec::new(),
            tasks: 1,
        },
    ]
}

fn check(opts: &KubeOptions) {
    let yaml = dry_run(&specs(), opts).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("jobs.yaml");
    std::fs::write(&file, &yaml).unwrap();
    common::validate(&file);
}

#[test]
fn the_jobs_with_every_option_are_valid_kubernetes() {
    let mut opts = KubeOptions::new("vauban-builds", "registry.example/vauban:0.1.0");
    opts.service_account = Some("vauban-build".into());
    opts.registry_secret = Some("vauban-registry".into());
    opts.env_secret = Some("vauban-keystore".into());
    opts.config_map = Some("vauban-config".into());
    opts.parallelism = Some(8);
    opts.cpu_request = Some("2".into());
    opts.memory_request = Some("4Gi".into());
    opts.node_selector
        .insert("kubernetes.io/arch".into(), "amd64".into());
    check(&opts);
}

#[test]
fn the_jobs_with_the_defaults_are_valid_kubernetes() {
    check(&KubeOptions::new("default", "vauban:latest"));
}

#[test]
fn the_validator_is_not_a_yes_man() {
    // The same check refuses a Job with a field Kubernetes does not have.
    let yaml = dry_run(&specs(), &KubeOptions::new("default", "vauban:latest"))
        .unwrap()
        .replacen(
            "completionMode: Indexed",
            "completionMode: Indexed\n  completionz: 3",
            1,
        );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.yaml");
    std::fs::write(&file, &yaml).unwrap();
    let refused = std::panic::catch_unwind(|| common::validate(&file));
    assert!(refused.is_err(), "an unknown field passed:\n{yaml}");
}
