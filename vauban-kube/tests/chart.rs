//! The Helm chart (`contrib/helm/vauban`): linted (strict) and rendered by
//! Helm's own Go SDK (helm-python-sdk: Debian 12 has no `helm` binary), for
//! several sets of values, and each rendering checked against the
//! Kubernetes API's schema by kubernetes-validate, as the dry run's Jobs
//! are. The server's capabilities are the build pods'.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};

/// Lints and renders a chart with Helm's SDK: `CHART VALUES.json NAMESPACE
/// OUT.yaml`; the lint's report on stdout; exit 3 on a lint warning.
const RENDER: &str = r##"
import json, sys
from helm_python import chart as hc
chart_dir, values_file, namespace, out = sys.argv[1:5]
values = json.load(open(values_file))
report = hc.lint(chart_dir, values, strict=True, namespace=namespace)
print(json.dumps(report, indent=1))
if report.get("errors") or any(m["severity"] >= 2 for m in report.get("messages", [])):
    sys.exit(3)
with hc.Chart.load(chart_dir) as c:
    manifests = c.render(values, name="vauban", namespace=namespace, is_install=True)
docs = []
for path in sorted(manifests):
    text = manifests[path].strip()
    if path.endswith(".yaml") and text:
        docs.append(f"# Source: {path}\n{text}\n")
open(out, "w").write("---\n" + "---\n".join(docs))
"##;

fn chart_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../contrib/helm/vauban")
}

/// The chart rendered with `values` into the release namespace `vauban`.
fn render(values: &Value) -> String {
    let python = common::tool("python");
    let dir = tempfile::tempdir().unwrap();
    let values_file = dir.path().join("values.json");
    std::fs::write(&values_file, values.to_string()).unwrap();
    let out = dir.path().join("rendered.yaml");
    let run = Command::new(&python)
        .arg("-c")
        .arg(RENDER)
        .arg(chart_dir())
        .arg(&values_file)
        .arg("vauban")
        .arg(&out)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
    assert!(
        run.status.success(),
        "helm lint or render failed ({}) with {values}:\n{}{}\n(helm_python missing? {})",
        run.status,
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr),
        common::HOW
    );
    common::validate(&out);
    std::fs::read_to_string(&out).unwrap()
}

fn kinds(yaml: &str) -> Vec<&str> {
    yaml.lines()
        .filter_map(|l| l.strip_prefix("kind: "))
        .collect()
}

#[test]
fn every_value_set_renders_valid_kubernetes() {
    let yaml = render(&json!({
        "serve": {"registry": "registry.example:5000/vauban", "tlsVerify": false,
                  "resources": {"requests": {"cpu": "1", "memory": "2Gi"}},
                  "extraArgs": ["--keep-days", "30"]},
        "config": {"configYml": "releases:\n  - name: bookworm\n"},
        "token": {"create": true, "tokens": "ci 0123456789abcdef0123"},
        "registryAuth": {"create": true, "dockerconfigjson": "{\"auths\":{}}"},
        "envSecret": "vauban-keystore",
        "persistence": {"enabled": true, "storageClass": "fast"},
        "builds": {"namespace": "vauban-builds", "parallelism": 8, "cpuRequest": "2",
                   "memoryRequest": "4Gi", "nodeSelector": {"kubernetes.io/arch": "amd64"}},
    }));
    let mut got = kinds(&yaml);
    got.sort();
    assert_eq!(
        got,
        [
            "ConfigMap",
            "ConfigMap",
            "Deployment",
            "PersistentVolumeClaim",
            "Role",
            "RoleBinding",
            "Secret",
            "Secret",
            "Secret",
            "Service",
            "ServiceAccount",
            "ServiceAccount",
        ]
    );
    assert!(
        yaml.contains("value: \"kubernetes.io/arch=amd64\""),
        "{yaml}"
    );
    assert!(yaml.contains("- --tls-verify=false"), "{yaml}");
}

#[test]
fn the_least_values_render_valid_kubernetes() {
    let yaml = render(&json!({
        "serve": {"registry": "registry.example/vauban"},
        "config": {"existingConfigMap": "site-config"},
    }));
    let mut got = kinds(&yaml);
    got.sort();
    assert_eq!(
        got,
        [
            "Deployment",
            // The server's data on a volume by default: its key store.
            "PersistentVolumeClaim",
            "Role",
            "RoleBinding",
            "Service",
            "ServiceAccount",
            "ServiceAccount"
        ]
    );
    assert!(yaml.contains("emptyDir: {}"), "{yaml}");
}

#[test]
fn a_server_without_sandbox_keeps_no_capability() {
    let yaml = render(&json!({
        "serve": {"registry": "registry.example/vauban", "sandbox": false},
        "config": {"existingConfigMap": "site-config"},
    }));
    assert!(!yaml.contains("SYS_ADMIN"), "{yaml}");
    assert!(yaml.contains("runAsNonRoot: true"), "{yaml}");
}

#[test]
fn the_server_has_the_capabilities_of_the_build_pods() {
    let yaml = render(&json!({
        "serve": {"registry": "registry.example/vauban"},
        "config": {"existingConfigMap": "site-config"},
    }));
    let quoted: Vec<String> = vauban_kube::manifests::capabilities()
        .iter()
        .map(|c| format!("\"{c}\""))
        .collect();
    let line = format!("add: [{}]", quoted.join(", "));
    assert!(
        yaml.contains(&line),
        "the Deployment lacks `{line}`:\n{yaml}"
    );
}
