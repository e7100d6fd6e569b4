//! The page: server-rendered HTML (maud escapes every value), a style sheet
//! and a few lines of plain JavaScript served by the server itself (no
//! build step, no CDN; the Content-Security-Policy allows nothing else).
//! `/` lists builds newest first; `/ui/builds/ID` shows one, its steps and
//! its live log (Server-Sent Events); `/ui/masters` the masters with their
//! schedules and last results. A browser signs in with a token through
//! `/login`, which keeps it in an HttpOnly, SameSite=Strict cookie.

use std::sync::Arc;

use axum::extract::{Form, Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{html, Markup, DOCTYPE};
use serde::Deserialize;

use crate::api::{load, masters_view};
use crate::app::App;
use crate::auth::COOKIE;
use crate::db::Filter;
use crate::error::Result;
use crate::model::{Build, Status};

const STYLE: &str = r#"
:root { font-family: system-ui, sans-serif; color: #1d2327; background: #f6f7f7; }
body { margin: 0; }
header { background: #1d2327; color: #fff; padding: .6rem 1.2rem; display: flex; gap: 1.2rem; align-items: center; }
header a { color: #fff; text-decoration: none; }
header .brand { font-weight: 700; letter-spacing: .05em; }
header form { margin-left: auto; }
main { padding: 1rem 1.2rem; }
table { border-collapse: collapse; width: 100%; background: #fff; }
th, td { text-align: left; padding: .35rem .6rem; border-bottom: 1px solid #dcdcde; font-size: .92rem; }
th { background: #f0f0f1; }
code, pre { font-family: ui-monospace, monospace; font-size: .85rem; }
pre#log { background: #101517; color: #e6e6e6; padding: .8rem; max-height: 70vh; overflow: auto; white-space: pre-wrap; }
.state { display: inline-block; padding: .05rem .5rem; border-radius: .6rem; font-size: .8rem; color: #fff; background: #8c8f94; }
.succeeded, .built, .done { background: #00a32a; }
.failed { background: #d63638; }
.running { background: #2271b1; }
.cached { background: #3c8b8b; }
.cancelled, .queued { background: #8c8f94; }
.error { color: #d63638; }
.note { color: #996800; font-size: .85rem; }
dl { display: grid; grid-template-columns: max-content auto; gap: .2rem 1rem; }
dt { font-weight: 600; }
button { cursor: pointer; }
tr.added td:first-child { color: #00a32a; font-weight: 700; }
tr.removed td:first-child { color: #d63638; font-weight: 700; }
tr.changed td:first-child { color: #996800; font-weight: 700; }
pre.patch { background: #fff; border: 1px solid #dcdcde; padding: .6rem; overflow: auto; }
"#;

const SCRIPT: &str = r#"
// The live log of a build page, and its cancel and retry buttons.
(function () {
  var log = document.getElementById("log");
  if (log) {
    var source = new EventSource(log.dataset.src);
    source.onmessage = function (e) {
      var atEnd = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
      log.textContent += e.data + "\n";
      if (atEnd) { log.scrollTop = log.scrollHeight; }
    };
    source.addEventListener("end", function (e) {
      source.close();
      var state = JSON.parse(e.data).status;
      var badge = document.getElementById("state");
      if (badge) { badge.textContent = state; badge.className = "state " + state; }
      setTimeout(function () { location.reload(); }, 1000);
    });
  }
  var cancel = document.getElementById("cancel");
  if (cancel) {
    cancel.addEventListener("click", function () {
      if (!confirm("Cancel this build?")) { return; }
      fetch(cancel.dataset.url, { method: "DELETE", credentials: "same-origin" })
        .then(function (r) { return r.json(); })
        .then(function (j) { cancel.disabled = true; cancel.textContent = j.status || j.error; });
    });
  }
  var retry = document.getElementById("retry");
  if (retry) {
    retry.addEventListener("click", function () {
      retry.disabled = true;
      fetch(retry.dataset.url, { method: "POST", credentials: "same-origin" })
        .then(function (r) { return r.json(); })
        .then(function (j) {
          if (j.id) { location.href = "/ui/builds/" + j.id; } else { retry.textContent = j.error; }
        });
    });
  }
})();
"#;

fn layout(title: &str, refresh: Option<u32>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · vauban" }
                @if let Some(r) = refresh { meta http-equiv="refresh" content=(r); }
                link rel="stylesheet" href="/ui/style.css";
            }
            body {
                header {
                    a.brand href="/" { "vauban" }
                    a href="/" { "Builds" }
                    a href="/ui/masters" { "Masters" }
                    a href="/ui/hosts" { "Hosts" }
                    form method="post" action="/logout" { button type="submit" { "Sign out" } }
                }
                main { (body) }
                script src="/ui/app.js" {}
            }
        }
    }
}

fn state(s: Status) -> Markup {
    html! { span.state.(s.as_str()) { (s.as_str()) } }
}

fn seconds(s: Option<f64>) -> String {
    match s {
        None => String::new(),
        Some(s) if s < 90.0 => format!("{s:.1} s"),
        Some(s) => format!("{}m{:02}s", (s / 60.0) as u64, (s % 60.0) as u64),
    }
}

/// The filters of the builds page.
#[derive(Debug, Deserialize)]
pub struct ListQuery {
    master: Option<String>,
    status: Option<String>,
}

/// `/`: the builds, newest first (refreshed every 10 s).
pub async fn builds(State(app): State<Arc<App>>, Query(q): Query<ListQuery>) -> Result<Markup> {
    let builds = app.runner.history.list(&Filter {
        master: q.master.clone(),
        status: q.status.as_deref().and_then(Status::parse),
        limit: 200,
    })?;
    let body = html! {
        h1 { "Builds" }
        @if let Some(e) = app.config.error() { p.error { "config.yml cannot be used: " (e) } }
        table {
            thead { tr { th { "Build" } th { "State" } th { "Master" } th { "Stage" } th { "Asked by" } th { "Trigger" } th { "Asked" } th { "Took" } th { "Failed at" } } }
            tbody {
                @for b in &builds { (build_row(b)) }
            }
        }
        @if builds.is_empty() { p { "No build yet: POST /builds, or wait for a schedule." } }
    };
    Ok(layout("Builds", Some(10), body))
}

fn build_row(b: &Build) -> Markup {
    html! {
        tr {
            td { a href={ "/ui/builds/" (b.id) } { code { (b.id) } } }
            td { (state(b.status)) }
            td { a href={ "/?master=" (b.request.name) } { (b.request.name) } }
            td { (b.request.stage) }
            td { (b.requested_by) }
            td { (b.trigger.as_str()) }
            td { (b.created.get(..19).unwrap_or(&b.created).replace('T', " ")) }
            td { (seconds(b.seconds)) }
            td { (b.failed_host.clone().or(b.failed_step.clone()).unwrap_or_default()) }
        }
    }
}

/// `/ui/builds/ID`: a build, its steps, its live log.
pub async fn build(State(app): State<Arc<App>>, Path(id): Path<String>) -> Result<Markup> {
    let b = load(&app, &id)?;
    // The succeeded build of the same master before this one, to compare.
    let previous = (b.status == Status::Succeeded)
        .then(|| {
            app.runner.history.list(&Filter {
                master: Some(b.request.name.clone()),
                status: Some(Status::Succeeded),
                limit: 200,
            })
        })
        .transpose()?
        .and_then(|list| list.into_iter().find(|o| o.id < b.id));
    let r = &b.request;
    let body = html! {
        h1 { "Build " code { (b.id) } " " span #state .state.(b.status.as_str()) { (b.status.as_str()) } }
        @if !b.status.is_done() {
            p { button #cancel type="button" data-url={ "/builds/" (b.id) } { "Cancel" } }
        }
        @if matches!(b.status, Status::Failed | Status::Cancelled) {
            p { button #retry type="button" data-url={ "/builds/" (b.id) "/retry" } { "Retry" } }
        }
        dl {
            dt { "Master" } dd { (r.name) }
            dt { "Stage" } dd { (r.stage) }
            dt { "Parents built" } dd { (r.build_parents) }
            @if let Some(c) = &r.conffs { dt { "Hosts" } dd { code { (c) } } }
            @if let Some(br) = &r.branch { dt { "Branch" } dd { code { (br) } } }
            @if r.no_cache { dt { "Cache" } dd { "not used" } }
            @if r.rebuild_stale { dt { "Stale parents" } dd { "rebuilt first" } }
            dt { "Asked by" } dd { (b.requested_by) " (" (b.trigger.as_str()) ")" }
            dt { "Asked" } dd { (b.created) }
            @if let Some(s) = &b.started { dt { "Started" } dd { (s) } }
            @if let Some(f) = &b.finished { dt { "Ended" } dd { (f) " (" (seconds(b.seconds)) ")" } }
            @if let Some(e) = &b.error { dt { "Error" } dd.error { (e) } }
            @if let Some(h) = &b.failed_host { dt { "Failed host" } dd.error { (h) } }
            @if let Some(s) = &b.failed_step { dt { "Failed step" } dd.error { (s) } }
        }
        @if let Some(p) = previous {
            p { a #compare href={ "/ui/diff?a=" (p.id) "&b=" (b.id) } { "What differs from the build before" } " (" code { (p.id) } ")" }
        }
        h2 { "Steps" }
        table {
            thead { tr { th { "Step" } th { "State" } th { "Image" } th { "Took" } } }
            tbody {
                @for s in &b.steps {
                    tr {
                        td { (s.step) }
                        td { span.state.(s.state) { (s.state) } }
                        td { code { (s.image.as_deref().map(|i| i.get(..19).unwrap_or(i)).unwrap_or("")) } }
                        td { (seconds(s.seconds)) }
                    }
                }
            }
        }
        h2 { "Log" }
        pre #log data-src={ "/builds/" (b.id) "/log" } {}
        p { a href={ "/builds/" (b.id) "/log" } { "plain text" } " · " a href={ "/builds/" (b.id) "/events" } { "events" } " · " a href={ "/builds/" (b.id) } { "JSON" } }
    };
    Ok(layout(&format!("Build {}", b.id), None, body))
}

/// `/ui/masters`: the masters, their schedules and last results.
pub async fn masters(State(app): State<Arc<App>>) -> Result<Markup> {
    let view = masters_view(&app)?;
    let body = html! {
        h1 { "Masters" }
        p { "From " code { (view.config) } }
        @if let Some(e) = &view.config_error { p.error { "config.yml cannot be used (the last good one is): " (e) } }
        @for e in &view.schedule_errors { p.error { "schedule left out: " (e) } }
        table {
            thead { tr { th { "Master" } th { "Parent" } th { "Stages" } th { "Hosts" } th { "Schedule" } th { "Next run" } th { "Last build" } } }
            tbody {
                @for m in &view.masters {
                    tr {
                        td { a href={ "/?master=" (m.name) } { (m.name) } @if m.running { " " span.state.running { "running" } } }
                        td { (m.parent.as_deref().unwrap_or("")) }
                        td { (m.stages.join(", ")) }
                        td { code { (m.conffs.as_deref().unwrap_or("")) } }
                        td {
                            @if let Some(s) = &m.schedule {
                                code { (s) }
                                @if let Some(d) = &m.schedule_description { br; small { (d) } }
                                @if let Some(r) = &m.scheduled_request { br; small { "--stage " (r.stage) " --build-parents " (r.build_parents) } }
                                @if let Some(n) = &m.schedule_note { br; span.note { (n) } }
                            }
                        }
                        td { (m.next_run.as_deref().unwrap_or("")) }
                        td { @if let Some(l) = &m.last_build { a href={ "/ui/builds/" (l.id) } { (state(l.status)) } } }
                    }
                }
            }
        }
    };
    Ok(layout("Masters", Some(30), body))
}

/// `/ui/hosts`: each host's deployed build, last boot and whether it runs
/// the deployed build; the unknown MACs.
pub async fn hosts(State(app): State<Arc<App>>) -> Result<Markup> {
    let boot = app
        .boot
        .clone()
        .ok_or_else(|| crate::error::ServeError::Missing("no boot service".into()))?;
    let (view, drifts) = tokio::task::spawn_blocking(move || -> Result<_> {
        Ok((boot.hosts()?, boot.records.last_drifts()?))
    })
    .await
    .map_err(|e| crate::error::ServeError::Setup(e.to_string()))??;
    let build = |id: Option<&str>, artifact: &str| -> Markup {
        match id {
            Some(b) => html! { a href={ "/ui/builds/" (b) } { (b) } },
            None => html! { code { (&artifact[..artifact.len().min(19)]) } },
        }
    };
    let body = html! {
        h1 { "Hosts" }
        table {
            thead { tr { th { "Host" } th { "Master" } th { "MAC" } th { "Deployed" } th { "Last boot" } th { "State" } th { "" } th { "Drift" } } }
            tbody {
                @for h in &view.hosts {
                    tr {
                        td { (h.host) }
                        td { (h.master) }
                        td { code { (h.macs.join(" ")) } }
                        td { @if let Some(d) = &h.deployed { "#" (d.id) " " (build(d.build_id.as_deref(), &d.artifact)) } }
                        td { @if let Some(b) = &h.last_boot { (b.started) " " (build(b.build_id.as_deref(), &b.artifact)) } }
                        td { @if let Some(b) = &h.last_boot { (b.state) } }
                        td { @match h.runs_deployed { Some(true) => "runs the deployed build", Some(false) => span.error { "runs an older build" }, None => "" } }
                        td { @if let Some(d) = drifts.iter().find(|d| d.host == h.host) { a.drift href={ "/ui/hosts/" (h.host) "/drift" } { (d.received) } } }
                    }
                }
            }
        }
        @if !view.unknown.is_empty() {
            h2 { "Unknown MACs" }
            table {
                thead { tr { th { "MAC" } th { "Address" } th { "Asked" } th { "Last" } } }
                tbody { @for m in &view.unknown { tr { td { code { (m.mac) } } td { (m.ip) } td { (m.asked) } td { (m.last_seen) } } } }
            }
        }
    };
    Ok(layout("Hosts", Some(30), body))
}

/// The page of a diff of two builds (see [`crate::diffs`]).
pub fn diff_page(report: &vauban_core::diff::Report, image: &str, images: &[String]) -> Markup {
    layout(
        &format!("Diff of {image}"),
        None,
        crate::diffs::diff_body(report, image, images),
    )
}

/// The page of a host's drift (see [`crate::boot::drift`]).
pub fn drift_page(
    drift: &crate::boot::drift::Drift,
    report: &vauban_core::diff::Report,
    all: &[crate::boot::drift::Drift],
) -> Markup {
    let built = |d: &crate::boot::drift::Drift| -> Markup {
        match &d.build_id {
            Some(b) => html! { "build " a href={ "/ui/builds/" (b) } { code { (b) } } },
            None => html! { "artifact " code { (&d.artifact[..d.artifact.len().min(19)]) } },
        }
    };
    let heading = html! {
        h1 { "What " (drift.host) " changed since it booted" }
        p {
            "Drift " code { (drift.id) } " sent " (drift.received) " from " (drift.ip)
            ", against " (built(drift)) " (boot " code { (drift.boot_id) } "), "
            @match &drift.signer {
                Some(k) => { "signed by its sshd key " code { (k) } }
                None => { "unsigned (its conffs has no sshd key: its boot token sent it)" }
            }
            " · "
            (vauban_core::diff::render::summary(report))
        }
        @if all.len() > 1 {
            p {
                "Earlier drifts: "
                @for d in all.iter().filter(|d| d.id != drift.id) {
                    a href={ "/ui/hosts/" (d.host) "/drift?drift=" (d.id) } { (d.received) } " "
                }
            }
        }
    };
    // Host names are plain (letters, digits, `.`, `_`, `-`); ids are ULIDs.
    let json = format!(
        "/hosts/{}/drift/diff?drift={}&format=json",
        drift.host, drift.id
    );
    layout(
        &format!("Drift of {}", drift.host),
        None,
        crate::diffs::changes_body(heading, report, &json),
    )
}

/// The style sheet.
pub async fn style() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLE)
}

/// The script.
pub async fn script() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        SCRIPT,
    )
}

/// Where to go after signing in: a path of this server only.
fn local_path(next: Option<&str>) -> &str {
    match next {
        Some(p) if p.starts_with('/') && !p.starts_with("//") && !p.contains('\\') => p,
        _ => "/",
    }
}

/// The login page (also the answer to a browser without a token).
pub fn login(next: &str, error: Option<&str>, status: StatusCode) -> Response {
    let body = html! {
        (DOCTYPE)
        html lang="en" {
            head { meta charset="utf-8"; title { "Sign in · vauban" } link rel="stylesheet" href="/ui/style.css"; }
            body {
                header { span.brand { "vauban" } }
                main {
                    h1 { "Sign in" }
                    @if let Some(e) = error { p.error { (e) } }
                    form method="post" action="/login" {
                        input type="hidden" name="next" value=(local_path(Some(next)));
                        label { "Token " input type="password" name="token" autocomplete="current-password" required; }
                        " " button type="submit" { "Sign in" }
                    }
                    p { small { "A token of the server's --token-file." } }
                }
            }
        }
    };
    (status, body).into_response()
}

/// `GET /login`.
#[derive(Debug, Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
}

/// The login form.
pub async fn login_form(Query(q): Query<LoginQuery>) -> Response {
    login(local_path(q.next.as_deref()), None, StatusCode::OK)
}

/// What the login form sends.
#[derive(Debug, Deserialize)]
pub struct LoginForm {
    token: String,
    next: Option<String>,
}

/// Checks the token; keeps it in the cookie.
pub async fn login_submit(State(app): State<Arc<App>>, Form(f): Form<LoginForm>) -> Response {
    let next = local_path(f.next.as_deref()).to_string();
    if app.auth.tokens.check(f.token.trim()).is_none() {
        return login(
            &next,
            Some("That token is not known."),
            StatusCode::UNAUTHORIZED,
        );
    }
    let secure = app
        .public_url
        .as_deref()
        .is_some_and(|u| u.starts_with("https://"));
    let cookie = format!(
        "{COOKIE}={}; Path=/; HttpOnly; SameSite=Strict; Max-Age=2592000{}",
        crate::auth::cookie_value(f.token.trim()),
        if secure { "; Secure" } else { "" }
    );
    let mut resp = Redirect::to(&next).into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    resp
}

/// Forgets the cookie.
pub async fn logout() -> Response {
    let mut resp = Redirect::to("/login").into_response();
    resp.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("vauban_token=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    resp
}
