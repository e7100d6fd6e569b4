//! `GET /metrics`: Prometheus' text format. Builds by state and the time
//! they took, the queue, the builds running, and each step outcome (of the
//! history's steps: `cached` over `cached` + `built` is the cache's hit
//! rate).

use std::fmt::Write;
use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use crate::app::App;
use crate::error::Result;

/// The metrics.
#[utoipa::path(get, path = "/metrics",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain", body = String)))]
pub async fn metrics(State(app): State<Arc<App>>) -> Result<impl IntoResponse> {
    let history = &app.runner.history;
    let mut out = String::new();
    let counts = history.counts()?;
    out.push_str(
        "# HELP vauban_builds Builds in the history, by state.\n# TYPE vauban_builds gauge\n",
    );
    for state in ["queued", "running", "succeeded", "failed", "cancelled"] {
        let n = counts.iter().find(|c| c.0 == state).map_or(0, |c| c.1);
        let _ = writeln!(out, "vauban_builds{{status=\"{state}\"}} {n}");
    }
    out.push_str("# HELP vauban_build_seconds Time builds took from start to end, by state.\n# TYPE vauban_build_seconds summary\n");
    for (state, n, secs) in &counts {
        if matches!(state.as_str(), "succeeded" | "failed" | "cancelled") {
            let _ = writeln!(
                out,
                "vauban_build_seconds_sum{{status=\"{state}\"}} {secs:.3}"
            );
            let _ = writeln!(out, "vauban_build_seconds_count{{status=\"{state}\"}} {n}");
        }
    }
    let _ = writeln!(
        out,
        "# HELP vauban_queue_length Builds waiting.\n# TYPE vauban_queue_length gauge\nvauban_queue_length {}",
        app.runner.queue_length()
    );
    let _ = writeln!(
        out,
        "# HELP vauban_running_builds Builds whose worker runs.\n# TYPE vauban_running_builds gauge\nvauban_running_builds {}",
        app.runner.running_count()
    );
    let outcomes = history.step_outcomes()?;
    out.push_str("# HELP vauban_steps Steps of the builds in the history, by outcome.\n# TYPE vauban_steps gauge\n");
    for (state, n) in &outcomes {
        let _ = writeln!(out, "vauban_steps{{outcome=\"{state}\"}} {n}");
    }
    let of = |s: &str| outcomes.iter().find(|o| o.0 == s).map_or(0, |o| o.1);
    let (cached, built) = (of("cached"), of("built"));
    if cached + built > 0 {
        let _ = writeln!(
            out,
            "# HELP vauban_step_cache_hit_ratio Steps the cache served, over steps run or served.\n# TYPE vauban_step_cache_hit_ratio gauge\nvauban_step_cache_hit_ratio {:.4}",
            cached as f64 / (cached + built) as f64
        );
    }
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    ))
}
