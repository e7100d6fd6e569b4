//! [`KubeBackend`] against a recorded API exchange: a loopback server
//! replays the API server's answers from `tests/data/*.json`, in order, and
//! checks each request the backend makes (method, path, query, the parts
//! of its body the step names, the bearer token) before answering it; the
//! client finds the server through a kubeconfig written for the test.
//!
//! `lifecycle.json`: submit, then polls through pending, running, a failed
//! pod whose index Kubernetes retries (not final), its retry running, a
//! completed index; the logs of each index handed out once, a line only
//! once it is whole, the retried index's old and new pods; a cancel that
//! deletes the Job with background propagation and waits for its last pod.
//! `errors.json`: the API's refusals as vauban's errors.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use vauban_core::executor::{Backend, JobId, JobSpec, TaskState};
use vauban_core::Blame;
use vauban_kube::{KubeBackend, KubeOptions};

/// What the server was told to expect, and what went wrong.
struct Script {
    steps: Vec<Value>,
    next: usize,
    token: String,
    failures: Vec<String>,
}

/// `want` is in `got`: every key of an object with a matching value, arrays
/// and scalars equal.
fn contains(got: &Value, want: &Value) -> bool {
    match (got, want) {
        (Value::Object(g), Value::Object(w)) => w
            .iter()
            .all(|(k, wv)| g.get(k).is_some_and(|gv| contains(gv, wv))),
        _ => got == want,
    }
}

fn query_of(uri: &hyper::Uri) -> BTreeMap<String, String> {
    uri.query()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(k), decode(v))
        })
        .collect()
}

/// Percent-decoding of a query component (`+` is a space).
fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
                out.push(u8::from_str_radix(hex, 16).unwrap());
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).unwrap()
}

/// Checks `req` against the next step; returns its recorded answer.
fn answer(
    script: &Mutex<Script>,
    parts: &hyper::http::request::Parts,
    body: &[u8],
) -> Response<Full<Bytes>> {
    let mut s = script.lock().unwrap();
    let n = s.next;
    let what = format!("{} {}", parts.method, parts.uri);
    let Some(step) = s.steps.get(n).cloned() else {
        s.failures
            .push(format!("request {n} beyond the script: {what}"));
        return status(500, "beyond the script");
    };
    s.next += 1;
    let want = &step["request"];
    let mut wrong = Vec::new();
    if parts.method.as_str() != want["method"] {
        wrong.push(format!(
            "method {} instead of {}",
            parts.method, want["method"]
        ));
    }
    if parts.uri.path() != want["path"] {
        wrong.push(format!(
            "path {} instead of {}",
            parts.uri.path(),
            want["path"]
        ));
    }
    let want_query: BTreeMap<String, String> =
        serde_json::from_value(want["query"].clone()).unwrap_or_default();
    let got_query = query_of(&parts.uri);
    if got_query != want_query {
        wrong.push(format!("query {got_query:?} instead of {want_query:?}"));
    }
    let auth = parts
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok());
    if auth != Some(&format!("Bearer {}", s.token)) {
        wrong.push(format!("authorization {auth:?}"));
    }
    if let Some(want_body) = want.get("body") {
        match serde_json::from_slice::<Value>(body) {
            Ok(got) if contains(&got, want_body) => {}
            Ok(got) => wrong.push(format!("body {got} does not hold {want_body}")),
            Err(e) => wrong.push(format!(
                "body is not JSON ({e}): {}",
                String::from_utf8_lossy(body)
            )),
        }
    }
    if !wrong.is_empty() {
        let comment = step["comment"].as_str().unwrap_or("");
        let failure = format!("step {n} ({comment}): {what}: {}", wrong.join("; "));
        s.failures.push(failure.clone());
        return status(500, &format!("not the recorded request: {failure}"));
    }
    let res = &step["response"];
    let code = res["status"].as_u64().unwrap() as u16;
    let (kind, body) = match (&res.get("json"), &res.get("text")) {
        (Some(json), _) => ("application/json", json.to_string()),
        (None, Some(text)) => ("text/plain", text.as_str().unwrap().to_owned()),
        (None, None) => ("text/plain", String::new()),
    };
    Response::builder()
        .status(code)
        .header("content-type", kind)
        .body(Full::new(Bytes::from(body)))
        .unwrap()
}

fn status(code: u16, message: &str) -> Response<Full<Bytes>> {
    let body = serde_json::json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": "InternalError", "code": code,
    });
    Response::builder()
        .status(code)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap()
}

/// The replaying server on 127.0.0.1, on a thread of its own; it stops with
/// the test process.
fn serve(script: Arc<Mutex<Script>>) -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                let script = script.clone();
                tokio::spawn(async move {
                    let service =
                        hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                            let script = script.clone();
                            async move {
                                let (parts, body) = req.into_parts();
                                let body = body
                                    .collect()
                                    .await
                                    .map(|b| b.to_bytes())
                                    .unwrap_or_default();
                                Ok::<_, std::convert::Infallible>(answer(&script, &parts, &body))
                            }
                        });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
    });
    addr
}

/// A backend on the replay of `data/NAME.json`, and the script to check.
fn replay(name: &str) -> (KubeBackend, Arc<Mutex<Script>>, tempfile::TempDir) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name);
    let recorded: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let namespace = recorded["namespace"].as_str().unwrap().to_owned();
    let token = recorded["token"].as_str().unwrap().to_owned();
    let script = Arc::new(Mutex::new(Script {
        steps: recorded["steps"].as_array().unwrap().clone(),
        next: 0,
        token: token.clone(),
        failures: Vec::new(),
    }));
    let addr = serve(script.clone());
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\n\
             clusters:\n- name: recorded\n  cluster:\n    server: http://{addr}\n\
             users:\n- name: recorded\n  user:\n    token: {token}\n\
             contexts:\n- name: recorded\n  context:\n    cluster: recorded\n    user: recorded\n    namespace: {namespace}\n\
             current-context: recorded\n"
        ),
    )
    .unwrap();
    let mut opts = KubeOptions::new(namespace, "registry.example/vauban:0.1.0");
    opts.kubeconfig = Some(kubeconfig);
    let backend = KubeBackend::new(opts)
        .unwrap()
        .with_cancel_wait(Duration::from_secs(10), Duration::from_millis(10));
    (backend, script, dir)
}

/// Every step was asked for, as recorded.
fn assert_played(script: &Mutex<Script>) {
    let s = script.lock().unwrap();
    assert!(
        s.failures.is_empty(),
        "requests off the record:\n{}",
        s.failures.join("\n")
    );
    assert_eq!(
        s.next,
        s.steps.len(),
        "{} of {} recorded steps asked for",
        s.next,
        s.steps.len()
    );
}

fn spec() -> JobSpec {
    JobSpec {
        name: "vauban-01hx7k-conffs".into(),
        build_id: "01HX7K".into(),
        master: "master-web".into(),
        argv: [
            "vauban",
            "build",
            "--conffs-shards",
            "web01,web02;web03,web04",
        ]
        .map(String::from)
        .to_vec(),
        env: Vec::new(),
        tasks: 2,
    }
}

fn states(list: &[TaskState]) -> BTreeMap<usize, TaskState> {
    list.iter().cloned().enumerate().collect()
}

fn lines(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[test]
fn a_job_is_followed_from_submit_to_cancel() {
    use TaskState::*;
    let (mut backend, script, _dir) = replay("lifecycle.json");
    assert!(backend.retries_itself());
    let id = backend.submit(&spec()).unwrap();
    assert_eq!(id, JobId("vauban-01hx7k-conffs".into()));

    assert_eq!(backend.poll(&id).unwrap(), states(&[Pending, Pending]));
    assert_eq!(backend.poll(&id).unwrap(), states(&[Running, Pending]));
    assert_eq!(
        backend.output(&id, 0).unwrap(),
        lines(&[
            r#"{"event":"log","task":0,"message":"pulling"}"#,
            r#"{"event":"log","task":0,"message":"conffs web01"}"#,
        ])
    );
    assert_eq!(backend.output(&id, 1).unwrap(), lines(&[]));

    // Failed, but Kubernetes retries it: not final.
    assert_eq!(backend.poll(&id).unwrap(), states(&[Running, Pending]));
    assert_eq!(
        backend.output(&id, 1).unwrap(),
        lines(&[
            r#"{"event":"log","task":1,"message":"pulling"}"#,
            r#"{"event":"error","task":1,"message":"registry: 503"}"#,
        ])
    );
    assert_eq!(backend.poll(&id).unwrap(), states(&[Running, Running]));
    assert_eq!(
        backend.output(&id, 1).unwrap(),
        lines(&[r#"{"event":"log","task":1,"message":"pulling again"}"#])
    );
    assert_eq!(
        backend.output(&id, 0).unwrap(),
        lines(&[r#"{"event":"log","task":0,"message":"pushed"}"#])
    );
    assert_eq!(backend.poll(&id).unwrap(), states(&[Succeeded, Running]));

    backend.cancel(&id).unwrap();
    assert_played(&script);
}

#[test]
fn the_api_refusals_name_the_job_the_namespace_and_who_acts() {
    let (backend, script, _dir) = replay("errors.json");
    let mut backend = backend.with_cancel_wait(Duration::ZERO, Duration::from_millis(10));
    let id = JobId("vauban-01hx7k-conffs".into());

    let e = backend.submit(&spec()).unwrap_err();
    assert_eq!(e.blame(), Blame::User);
    let text = e.to_string();
    assert!(
        text.starts_with(
            "kubernetes: create Job vauban-01hx7k-conffs in namespace vauban-builds: \
             the API server answered 409 AlreadyExists: "
        ),
        "{text}"
    );

    let e = backend.poll(&id).unwrap_err();
    assert_eq!(e.blame(), Blame::Environment);
    assert!(e.to_string().contains("403 Forbidden: jobs.batch"), "{e}");

    // A Job already gone is no error; its pod still there after the wait is.
    let e = backend.cancel(&id).unwrap_err();
    assert_eq!(e.blame(), Blame::Environment);
    assert_eq!(
        e.to_string(),
        "kubernetes: Job vauban-01hx7k-conffs in namespace vauban-builds was deleted, \
         but after 0s its pods are still there: vauban-01hx7k-conffs-1-n8w3c"
    );
    assert!(backend.resubmit(&spec(), 1).is_err());
    assert_played(&script);
}
