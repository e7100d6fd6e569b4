//! Telling people: a JSON POST to each `--notify` URL (and each of
//! `notify:` under config.yml's `configuration:`) when a build fails,
//! when a master's build succeeds after a failure, and (with `--notify-all`)
//! after every build. A URL of Slack's (`hooks.slack.com`), or one written
//! `slack+https://…` (Mattermost and others take Slack's payload), gets
//! Slack's `text` and `blocks`; any other gets vauban's own JSON. A webhook
//! that fails is retried with backoff and logged; it never fails a build.
//!
//! With a Sentry DSN (`--sentry-dsn`, `$SENTRY_DSN`), a failed build and an
//! internal error of the server are Sentry events too (the `sentry` crate),
//! tagged with the master, stage, step and host; no environment variable,
//! token or log line beyond the failed build's last ones goes into them.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use crate::config_file::ConfigFile;
use crate::model::{Build, Status};

/// How many times a webhook is tried.
const TRIES: u32 = 4;

/// Who hears about builds.
pub struct Notifier {
    urls: Vec<String>,
    /// config.yml, whose `notify:` URLs are read when a build ends.
    config: Option<Arc<ConfigFile>>,
    all: bool,
    /// The server's URL as people reach it (for links), if known.
    public_url: Option<String>,
    client: reqwest::Client,
    _sentry: Option<sentry::ClientInitGuard>,
}

/// Why a notification is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Why {
    Failed,
    Fixed,
    Ended,
}

impl Notifier {
    /// Notifies `urls` and the `notify:` URLs of `config` as it is when a
    /// build ends (all builds when `all`), links to `public_url`, reports to
    /// Sentry at `sentry_dsn`.
    pub fn new(
        urls: Vec<String>,
        config: Option<Arc<ConfigFile>>,
        all: bool,
        public_url: Option<String>,
        sentry_dsn: Option<&str>,
    ) -> Notifier {
        let sentry = sentry_dsn.filter(|d| !d.is_empty()).map(|dsn| {
            let mut options = sentry::ClientOptions::default();
            options.release = Some(concat!("vauban@", env!("CARGO_PKG_VERSION")).into());
            options.send_default_pii = false;
            sentry::init((dsn, options))
        });
        Notifier {
            urls,
            config,
            all,
            public_url,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(15))
                .build()
                .unwrap_or_default(),
            _sentry: sentry,
        }
    }

    /// A build ended; `previous` is how its master's build before it ended.
    pub fn build_ended(&self, build: &Build, previous: Option<Status>) {
        let why = match build.status {
            Status::Failed => Why::Failed,
            Status::Succeeded if previous == Some(Status::Failed) => Why::Fixed,
            _ if self.all => Why::Ended,
            _ => return,
        };
        if why == Why::Failed {
            report_to_sentry(build);
        }
        let mut urls = self.urls.clone();
        if let Some(config) = &self.config {
            for url in &config.get().configuration.notify {
                if !urls.contains(&url.value) {
                    urls.push(url.value.clone());
                }
            }
        }
        for url in &urls {
            let (target, body) = payload(url, build, why, self.public_url.as_deref());
            let client = self.client.clone();
            tokio::spawn(async move { post(&client, &target, &body).await });
        }
    }
}

/// An internal error of the server, for Sentry (when configured).
pub fn report_internal(error: &dyn std::error::Error) {
    sentry::capture_error(error);
}

fn report_to_sentry(build: &Build) {
    sentry::with_scope(
        |scope| {
            scope.set_tag("master", &build.request.name);
            scope.set_tag("stage", &build.request.stage);
            scope.set_tag("build", &build.id);
            if let Some(step) = &build.failed_step {
                scope.set_tag("step", step);
            }
            if let Some(host) = &build.failed_host {
                scope.set_tag("host", host);
            }
            scope.set_extra("tail", build.tail.join("\n").into());
        },
        || {
            sentry::capture_message(
                &format!(
                    "build of {} failed: {}",
                    build.request.name,
                    build.error.as_deref().unwrap_or("failed")
                ),
                sentry::Level::Error,
            )
        },
    );
}

/// Whether `url` takes Slack's payload; the URL to post to.
fn slack(url: &str) -> (bool, String) {
    if let Some(rest) = url.strip_prefix("slack+") {
        return (true, rest.to_string());
    }
    let host = url
        .split("://")
        .nth(1)
        .and_then(|r| r.split(['/', ':']).next())
        .unwrap_or_default();
    (host == "hooks.slack.com", url.to_string())
}

fn payload(
    url: &str,
    build: &Build,
    why: Why,
    public: Option<&str>,
) -> (String, serde_json::Value) {
    let (is_slack, target) = slack(url);
    let link = public.map(|p| format!("{}/builds/{}", p.trim_end_matches('/'), build.id));
    let what = match why {
        Why::Failed => "failed",
        Why::Fixed => "succeeded again",
        Why::Ended => build.status.as_str(),
    };
    if !is_slack {
        let event = match why {
            Why::Failed => "build_failed",
            Why::Fixed => "build_fixed",
            Why::Ended => "build_ended",
        };
        return (target, json!({"event": event, "build": build, "url": link}));
    }
    let mut text = format!(
        "vauban: build of *{}* (--stage {}) {what}, asked by {} ({})",
        build.request.name,
        build.request.stage,
        build.requested_by,
        build.trigger.as_str()
    );
    if let Some(step) = &build.failed_step {
        text.push_str(&format!("; step `{step}`"));
    }
    if let Some(host) = &build.failed_host {
        text.push_str(&format!(" on host `{host}`"));
    }
    let mut blocks = vec![json!({"type": "section", "text": {"type": "mrkdwn", "text": text}})];
    if let Some(error) = &build.error {
        blocks.push(json!({"type": "section", "text": {"type": "mrkdwn", "text": format!("```{}```", error)}}));
    }
    if why == Why::Failed && !build.tail.is_empty() {
        let tail = build.tail[build.tail.len().saturating_sub(12)..].join("\n");
        blocks.push(
            json!({"type": "section", "text": {"type": "mrkdwn", "text": format!("```{tail}```")}}),
        );
    }
    if let Some(link) = &link {
        blocks.push(json!({"type": "context", "elements": [{"type": "mrkdwn", "text": format!("<{link}|build {}>", build.id)}]}));
    }
    (target, json!({"text": text, "blocks": blocks}))
}

/// Posts `body`, retried with backoff (1 s, 4 s, 16 s); failures logged.
async fn post(client: &reqwest::Client, url: &str, body: &serde_json::Value) {
    let mut delay = Duration::from_secs(1);
    for attempt in 1..=TRIES {
        match client.post(url).json(body).send().await {
            Ok(r) if r.status().is_success() => return,
            Ok(r) => {
                tracing::warn!(url, attempt, status = %r.status(), "webhook refused the notification")
            }
            Err(e) => tracing::warn!(url, attempt, "webhook unreachable: {e}"),
        }
        if attempt < TRIES {
            tokio::time::sleep(delay).await;
            delay *= 4;
        }
    }
    tracing::error!(url, "webhook failed {TRIES} times: notification dropped");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{BuildRequest, Trigger};

    fn build(status: Status) -> Build {
        Build {
            id: "01X".into(),
            request: BuildRequest {
                name: "master-web".into(),
                stage: "conffs".into(),
                build_parents: 0,
                conffs: None,
                branch: None,
                no_cache: false,
                rebuild_stale: false,
                deploy: false,
            },
            status,
            requested_by: "alice".into(),
            trigger: Trigger::Api,
            created: "t".into(),
            started: None,
            finished: None,
            seconds: None,
            error: Some("task \"x\" failed on host web02".into()),
            failed_step: Some("conffs master-web/web02: web.yml".into()),
            failed_host: Some("web02".into()),
            steps: vec![],
            tail: vec!["fatal: [web02]: FAILED!".into()],
        }
    }

    #[test]
    fn slack_gets_text_and_blocks_others_vaubans_json() {
        let b = build(Status::Failed);
        let (url, body) = payload(
            "https://hooks.slack.com/services/T/B/X",
            &b,
            Why::Failed,
            Some("http://127.0.0.1:8080/"),
        );
        assert_eq!(url, "https://hooks.slack.com/services/T/B/X");
        let text = body["text"].as_str().unwrap();
        assert!(
            text.contains("master-web") && text.contains("alice") && text.contains("web02"),
            "{text}"
        );
        let blocks = body["blocks"].to_string();
        assert!(
            blocks.contains("fatal: [web02]")
                && blocks.contains("http://127.0.0.1:8080/builds/01X"),
            "{blocks}"
        );
        let (url, body) = payload("slack+http://127.0.0.1:9/h", &b, Why::Failed, None);
        assert_eq!(url, "http://127.0.0.1:9/h");
        assert!(body.get("blocks").is_some());
        let (_, body) = payload("http://127.0.0.1:9/h", &b, Why::Failed, None);
        assert_eq!(body["event"], "build_failed");
        assert_eq!(body["build"]["failed_host"], "web02");
    }
}
