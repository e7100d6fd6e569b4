//! What differs between two builds of the history, by the images they
//! made: `GET /diff?a=ID&b=ID&image=NAME` (the API, in `vauban diff`'s
//! forms: `format=full|stat|name-only|name-status|json`, `exclude=GLOB`,
//! `path=PATH`, both repeatable; `X-Vauban-Differs` says whether they
//! differ), and `/ui/diff` (the page, from a build's "compare" link). An
//! image of a build is a master (the image its boot files were made from,
//! else its last stage's) or `MASTER/HOST` (the host's conffs image, else
//! the master's image with the host's conffs of its boot files on top);
//! without `image`, the one master both builds asked for.

use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::response::Response;
use maud::{html, Markup};
use serde::Deserialize;
use vauban_core::diff::{self, render, Report, Side, SideKind, Status};
use vauban_core::vauban_oci::Digest;

use crate::app::App;
use crate::boot::drift::{compare, diff_response, rendered, DiffQuery};
use crate::boot::BootService;
use crate::error::{Result, ServeError};
use crate::model::Build;

/// The query of `/diff` and `/ui/diff`: the builds, the image, and the
/// diff's options.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Pair {
    /// The older build (side A).
    pub a: String,
    /// The newer build (side B).
    pub b: String,
    /// The image compared: a master, or `MASTER/HOST`.
    pub image: Option<String>,
    /// `full` (default), `stat`, `name-only`, `name-status`, `json`.
    #[serde(default)]
    #[param(value_type = Option<String>)]
    pub format: diff::Format,
    /// Globs of paths left out (repeatable).
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Only these paths (repeatable).
    #[serde(default)]
    pub path: Vec<String>,
}

impl Pair {
    fn options(&self) -> DiffQuery {
        DiffQuery {
            format: self.format,
            exclude: self.exclude.clone(),
            path: self.path.clone(),
            drift: None,
        }
    }
}

fn read_query(raw: Option<&str>) -> Result<Pair> {
    serde_html_form::from_str(raw.unwrap_or_default()).map_err(|e| ServeError::BadRequest {
        field: "query",
        message: format!(
            "{e} (a=BUILD&b=BUILD[&image=MASTER[/HOST]][&format=full|stat|name-only|\
             name-status|json][&exclude=GLOB][&path=PATH])"
        ),
    })
}

fn boot_service(app: &App) -> Result<&Arc<BootService>> {
    app.boot
        .as_ref()
        .ok_or_else(|| ServeError::Missing("this server has no image store".into()))
}

fn build(app: &App, id: &str) -> Result<Build> {
    crate::api::load(app, id)
}

/// The images a build made: each master, and each `MASTER/HOST` (the
/// steps that gave an image).
fn images_of(b: &Build) -> Vec<String> {
    let mut names: Vec<String> = b
        .steps
        .iter()
        .filter(|s| s.image.is_some())
        .filter_map(|s| {
            let subject = s.step.split(':').next()?;
            subject
                .strip_prefix("rootfs ")
                .or_else(|| subject.strip_prefix("conffs "))
                .or_else(|| s.step.strip_prefix(crate::worker::BOOT_STEP_PREFIX))
                .map(|n| n.trim().to_owned())
        })
        .filter(|n| !n.is_empty() && !n.contains(' '))
        .collect();
    names.sort();
    names.dedup();
    names
}

/// The image compared when none is named: the master both builds asked
/// for when both made it, else the first image both made (a conffs build
/// makes its hosts' images, not its master's).
fn default_image(a: &Build, b: &Build) -> Result<String> {
    let (ia, ib) = (images_of(a), images_of(b));
    let both = |i: &String| ia.contains(i) && ib.contains(i);
    if a.request.name == b.request.name && both(&a.request.name) {
        return Ok(a.request.name.clone());
    }
    if let Some(i) = ia.iter().find(|i| both(i)) {
        return Ok(i.clone());
    }
    Err(ServeError::BadRequest {
        field: "image",
        message: format!(
            "builds {} and {} made no image in common (one made: {}; the other: {}): say \
             which image to compare (image=MASTER or MASTER/HOST)",
            a.id,
            b.id,
            ia.join(", "),
            ib.join(", ")
        ),
    })
}

/// The image `b` made for `name` in its `kind` steps (`rootfs`,
/// `conffs`): its phase's (`rootfs master-web`, the master's final image),
/// else its last stage's (`rootfs master-web: web.yml`).
fn step_image(b: &Build, kind: &str, name: &str) -> Option<Digest> {
    let phase = format!("{kind} {name}");
    let stage = format!("{phase}:");
    let image = |s: &crate::model::Step| s.image.as_deref().and_then(|i| Digest::parse(i).ok());
    b.steps
        .iter()
        .filter(|s| s.step == phase)
        .find_map(image)
        .or_else(|| {
            b.steps
                .iter()
                .rev()
                .filter(|s| s.step.starts_with(&stage))
                .find_map(image)
        })
}

/// The side of `image` as build `b` made it.
fn side_of(svc: &BootService, b: &Build, image: &str) -> Result<Side> {
    let name = format!("{image} of build {}", b.id);
    let (master, host) = match image.split_once('/') {
        Some((m, h)) => (m, Some(h)),
        None => (image, None),
    };
    let artifact = b
        .boot_artifact(master)
        .and_then(|a| svc.artifact(a, Some(master)).ok());
    let open = |digest: &Digest| {
        Side::of_digest(&svc.store, &name, digest).map_err(|e| ServeError::Conflict(e.to_string()))
    };
    let missing = || {
        ServeError::Missing(format!(
            "build {} made no image {image} (it made: {})",
            b.id,
            images_of(b).join(", ")
        ))
    };
    match host {
        None => {
            let digest = artifact
                .as_ref()
                .and_then(|a| a.rootfs_image.clone())
                .or_else(|| step_image(b, "rootfs", master))
                .ok_or_else(missing)?;
            open(&digest)
        }
        Some(h) => {
            if let Some(d) = step_image(b, "conffs", image) {
                return open(&d);
            }
            let a = artifact.ok_or_else(missing)?;
            let (Some(root), Some(conffs)) = (
                a.rootfs_image.clone(),
                a.info.hosts.get(h).and_then(|i| a.file(&i.conffs)),
            ) else {
                return Err(missing());
            };
            let mut side = open(&root)?.stacked(&name, &svc.store.blob_path(&conffs.digest));
            side.what = SideKind::Served {
                image: root.to_string(),
                stacked: vec![format!("conffs of {h} ({})", conffs.digest)],
            };
            Ok(side)
        }
    }
}

/// The report of `pair` (and the image compared).
fn report(app: &App, pair: &Pair) -> Result<(Report, String)> {
    let q = pair.options();
    let (a, b) = (build(app, &pair.a)?, build(app, &pair.b)?);
    let image = match &pair.image {
        Some(i) if !i.is_empty() => i.clone(),
        _ => default_image(&a, &b)?,
    };
    let svc = boot_service(app)?;
    let (sa, sb) = (side_of(svc, &a, &image)?, side_of(svc, &b, &image)?);
    Ok((compare(&svc.store, &sa, &sb, &q.options())?, image))
}

/// `GET /diff?a=ID&b=ID[&image=NAME]`.
#[utoipa::path(get, path = "/diff", operation_id = "builds_diff",
    params(Pair),
    responses((status = 200, description = "The diff in the form asked for (text, or JSON of schema vauban.diff/1); header X-Vauban-Differs: true or false", body = String),
        (status = 400, body = crate::api::ErrorBody), (status = 401, body = crate::api::ErrorBody),
        (status = 404, body = crate::api::ErrorBody), (status = 409, body = crate::api::ErrorBody)),
    security(("bearer" = [])))]
pub async fn api(State(app): State<Arc<App>>, RawQuery(raw): RawQuery) -> Result<Response> {
    let q = read_query(raw.as_deref())?;
    let format = q.format;
    let (body, differs) = tokio::task::spawn_blocking(move || -> Result<(Vec<u8>, bool)> {
        let (report, _) = report(&app, &q)?;
        Ok((rendered(&report, format)?, report.differs()))
    })
    .await
    .map_err(|e| ServeError::Setup(e.to_string()))??;
    Ok(diff_response(body, differs, format))
}

/// `/ui/diff?a=ID&b=ID[&image=NAME]`: the page.
pub async fn page(State(app): State<Arc<App>>, RawQuery(raw): RawQuery) -> Result<Markup> {
    let q = read_query(raw.as_deref())?;
    let (report, image, images) = tokio::task::spawn_blocking(move || -> Result<_> {
        let (report, image) = report(&app, &q)?;
        let images = images_of(&build(&app, &q.b)?);
        Ok((report, image, images))
    })
    .await
    .map_err(|e| ServeError::Setup(e.to_string()))??;
    Ok(crate::page::diff_page(&report, &image, &images))
}

/// The body of the diff page of two builds: the sides, the other images,
/// a line per path, the text diffs.
pub fn diff_body(report: &Report, image: &str, images: &[String]) -> Markup {
    let (a, b) = (&report.a.name, &report.b.name);
    let build_of = |name: &str| name.rsplit(' ').next().unwrap_or_default().to_owned();
    let (ida, idb) = (build_of(a), build_of(b));
    let heading = html! {
        h1 { "What differs: " code { (image) } }
        p {
            "From " a href={ "/ui/builds/" (ida) } { code { (ida) } }
            " to " a href={ "/ui/builds/" (idb) } { code { (idb) } }
            " · " (render::summary(report))
        }
        @if images.len() > 1 {
            p {
                "Other images of the build: "
                @for i in images.iter().filter(|i| *i != image) {
                    a.image href=(pair_link("/ui/diff", &ida, &idb, i, None)) { code { (i) } } " "
                }
            }
        }
    };
    let json = pair_link("/diff", &ida, &idb, image, Some("json"));
    changes_body(heading, report, &json)
}

/// `route?a=…&b=…&image=…[&format=…]`, each value encoded.
fn pair_link(route: &str, a: &str, b: &str, image: &str, format: Option<&str>) -> String {
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    q.append_pair("a", a)
        .append_pair("b", b)
        .append_pair("image", image);
    if let Some(f) = format {
        q.append_pair("format", f);
    }
    format!("{route}?{}", q.finish())
}

/// A report's paths (a line each) and text diffs under `heading`, with a
/// link to its JSON.
pub fn changes_body(heading: Markup, report: &Report, json: &str) -> Markup {
    html! {
        (heading)
        @if report.changes.is_empty() {
            p #nodiff { "They do not differ." }
        } @else {
            table #changes {
                thead { tr { th { "" } th { "Path" } th { "What" } } }
                tbody {
                    @for c in &report.changes {
                        tr.(match c.status { Status::Added => "added", Status::Removed => "removed", Status::Changed => "changed" }) {
                            td { (c.status.letter()) }
                            td { code { (c.path) } }
                            td { (render::what_changed(c)) }
                        }
                    }
                }
            }
            @for c in report.changes.iter().filter(|c| c.text.is_some()) {
                h3 { code { (c.path) } }
                pre.patch { (c.text.as_ref().map(|t| t.unified.as_str()).unwrap_or_default()) }
            }
        }
        p { a href=(json) { "JSON" } }
    }
}
