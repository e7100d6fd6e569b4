//! The Job made of a [`JobSpec`], field by field.

use super::*;

fn spec(tasks: usize) -> JobSpec {
    JobSpec {
        name: "vauban-01hx-conffs".into(),
        build_id: "01HX".into(),
        master: "master-web".into(),
        argv: vec![
            "vauban".into(),
            "build".into(),
            "--name".into(),
            "master-web".into(),
        ],
        env: vec![("RUST_LOG".into(), "info".into())],
        tasks,
    }
}

fn opts() -> KubeOptions {
    let mut o = KubeOptions::new("builds", "registry.example/vauban:0.1.0");
    o.registry_secret = Some("registry".into());
    o.config_map = Some("vauban-config".into());
    o.service_account = Some("vauban-build".into());
    o
}

fn pod_of(job: &Job) -> &PodSpec {
    job.spec.as_ref().unwrap().template.spec.as_ref().unwrap()
}

#[test]
fn one_indexed_job_of_all_tasks_retried_once_by_kubernetes() {
    let job = job(&spec(3), &opts()).unwrap();
    let s = job.spec.as_ref().unwrap();
    assert_eq!(s.completion_mode.as_deref(), Some("Indexed"));
    assert_eq!(s.completions, Some(3));
    assert_eq!(s.parallelism, Some(3));
    assert_eq!(s.backoff_limit_per_index, Some(1));
    assert_eq!(s.ttl_seconds_after_finished, Some(3600));
    assert_eq!(s.active_deadline_seconds, Some(21600));
    assert_eq!(s.pod_replacement_policy.as_deref(), Some("Failed"));
    let meta = &job.metadata;
    assert_eq!(meta.name.as_deref(), Some("vauban-01hx-conffs"));
    assert_eq!(meta.namespace.as_deref(), Some("builds"));
}

#[test]
fn parallelism_is_at_most_the_tasks() {
    let mut o = opts();
    o.parallelism = Some(2);
    assert_eq!(
        job(&spec(5), &o).unwrap().spec.unwrap().parallelism,
        Some(2)
    );
    o.parallelism = Some(10);
    assert_eq!(
        job(&spec(5), &o).unwrap().spec.unwrap().parallelism,
        Some(5)
    );
}

#[test]
fn no_tasks_or_no_command_is_refused() {
    assert!(matches!(
        job(&spec(0), &opts()),
        Err(KubeError::InvalidJob { .. })
    ));
    let mut s = spec(1);
    s.argv.clear();
    assert!(matches!(
        job(&s, &opts()),
        Err(KubeError::InvalidJob { .. })
    ));
}

#[test]
fn job_and_pods_carry_the_original_label_and_the_recommended_ones() {
    let job = job(&spec(1), &opts()).unwrap();
    let want = BTreeMap::from([
        ("vauban-job-id".to_owned(), "01HX".to_owned()),
        ("app.kubernetes.io/name".to_owned(), "vauban".to_owned()),
        ("app.kubernetes.io/component".to_owned(), "build".to_owned()),
        ("vauban.io/master".to_owned(), "master-web".to_owned()),
    ]);
    assert_eq!(job.metadata.labels.as_ref(), Some(&want));
    let template = job.spec.unwrap().template.metadata.unwrap();
    assert_eq!(template.labels, Some(want));
}

#[test]
fn label_values_are_made_valid() {
    assert_eq!(label_value("master-web"), "master-web");
    assert_eq!(label_value("a b/c"), "a-b-c");
    assert_eq!(label_value("-x-"), "x");
    assert_eq!(label_value(&"a".repeat(70)).len(), 63);
}

#[test]
fn the_pod_runs_argv_with_the_store_home_and_registry_auth() {
    let job = job(&spec(1), &opts()).unwrap();
    let pod = pod_of(&job);
    assert_eq!(pod.restart_policy.as_deref(), Some("Never"));
    assert_eq!(pod.host_users, Some(false));
    assert_eq!(pod.automount_service_account_token, Some(false));
    assert_eq!(pod.service_account_name.as_deref(), Some("vauban-build"));
    let c = &pod.containers[0];
    assert_eq!(c.name, "vauban");
    assert_eq!(c.command.as_ref().unwrap()[0], "vauban");
    let env: Vec<(&str, &str)> = c
        .env
        .as_ref()
        .unwrap()
        .iter()
        .map(|e| (e.name.as_str(), e.value.as_deref().unwrap()))
        .collect();
    assert_eq!(
        env,
        [
            ("VAUBAN_STORE", STORE_DIR),
            ("HOME", HOME_DIR),
            ("REGISTRY_AUTH_FILE", REGISTRY_AUTH_FILE),
            ("RUST_LOG", "info"),
        ]
    );
    let mounts: Vec<(&str, &str, Option<bool>)> = c
        .volume_mounts
        .as_ref()
        .unwrap()
        .iter()
        .map(|m| (m.name.as_str(), m.mount_path.as_str(), m.read_only))
        .collect();
    assert_eq!(
        mounts,
        [
            ("work", WORK_DIR, None),
            ("tmp", "/tmp", None),
            ("registry-auth", REGISTRY_AUTH_DIR, Some(true)),
            ("config", CONFIG_DIR, Some(true)),
        ]
    );
}

#[test]
fn without_secret_or_config_map_nothing_is_mounted_for_them() {
    let o = KubeOptions::new("builds", "vauban:1");
    let job = job(&spec(1), &o).unwrap();
    let pod = pod_of(&job);
    let names: Vec<&str> = pod
        .volumes
        .as_ref()
        .unwrap()
        .iter()
        .map(|v| v.name.as_str())
        .collect();
    assert_eq!(names, ["work", "tmp"]);
    let env = pod.containers[0].env.as_ref().unwrap();
    assert!(env.iter().all(|e| e.name != "REGISTRY_AUTH_FILE"));
}

#[test]
fn the_container_has_the_sandbox_capabilities_and_mount_rights_only() {
    let job = job(&spec(1), &opts()).unwrap();
    let sc = pod_of(&job).containers[0].security_context.clone().unwrap();
    let caps = sc.capabilities.unwrap();
    assert_eq!(caps.drop, Some(vec!["ALL".to_owned()]));
    let add = caps.add.unwrap();
    for cap in [
        "SYS_ADMIN",
        "NET_ADMIN",
        "CHOWN",
        "SETUID",
        "SETFCAP",
        "SYS_CHROOT",
    ] {
        assert!(add.iter().any(|c| c == cap), "{cap} missing from {add:?}");
    }
    for cap in [
        "MKNOD",
        "NET_RAW",
        "SYS_PTRACE",
        "SYS_MODULE",
        "DAC_READ_SEARCH",
    ] {
        assert!(!add.iter().any(|c| c == cap), "{cap} given");
    }
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    assert_eq!(sc.privileged, Some(false));
    assert_eq!(sc.run_as_user, Some(0));
    assert_eq!(sc.proc_mount.as_deref(), Some("Unmasked"));
    assert_eq!(sc.read_only_root_filesystem, Some(true));
}

#[test]
fn proc_stays_masked_without_a_user_namespace() {
    let mut o = opts();
    o.host_users = None;
    let job = job(&spec(1), &o).unwrap();
    let sc = pod_of(&job).containers[0].security_context.clone().unwrap();
    assert_eq!(sc.proc_mount.as_deref(), Some("Default"));
    assert_eq!(pod_of(&job).host_users, None);
}

#[test]
fn the_dry_run_is_one_document_per_job_with_kind_and_api_version() {
    let mut second = spec(2);
    second.name = "vauban-01hx-conffs-2".into();
    let yaml = dry_run(&[spec(1), second], &opts()).unwrap();
    assert_eq!(yaml.matches("---\n").count(), 2, "{yaml}");
    assert_eq!(yaml.matches("apiVersion: batch/v1").count(), 2, "{yaml}");
    assert_eq!(yaml.matches("kind: Job").count(), 2, "{yaml}");
    assert!(yaml.contains("completionMode: Indexed"), "{yaml}");
}
