//! The scheduler: each master's `schedule:` (five cron fields, in the
//! server's local time zone) with `schedule_options: {stage, build_parents}`
//! (defaults `all`, 0), as the original's. A slot that passes queues one
//! build (trigger `schedule`, asked by `scheduler`); slots missed while the
//! server was down are caught up by one build, never one per slot: the
//! history keeps, per master, when the scheduler last looked, and a build is
//! due when a slot falls between then and now. A master seen scheduled for
//! the first time waits for its next slot.
//!
//! The fields mean what cron(5) says: day of week 0 (or 7) is Sunday, and a
//! restricted day of month and day of week match either. The original's
//! scheduler (APScheduler's `CronTrigger`) read them differently: its day
//! of week 0 is Monday (`0 3 * * 1` ran on Tuesdays there) and both days
//! had to match. A schedule whose meaning differs carries a note saying so
//! (in `/masters`, on the page and in the server's log).

use chrono::{DateTime, Local, Utc};
use croner::parser::{CronParser, Seconds, Year};
use croner::Cron;
use vauban_core::config::{Config, ScheduledStage};

use crate::model::BuildRequest;

/// One master's schedule.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// The master.
    pub master: String,
    /// The five fields, as written.
    pub expr: String,
    cron: Cron,
    /// What its builds ask for.
    pub request: BuildRequest,
    /// How the original's scheduler read it differently, if it did.
    pub note: Option<String>,
}

impl Schedule {
    /// The first slot after `t`.
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron
            .find_next_occurrence(&t.with_timezone(&Local), false)
            .ok()
            .map(|d| d.with_timezone(&Utc))
    }

    /// Whether a slot falls in `(last, now]`.
    pub fn due(&self, last: DateTime<Utc>, now: DateTime<Utc>) -> bool {
        self.next_after(last).is_some_and(|next| next <= now)
    }

    /// The cron meaning, in words.
    pub fn describe(&self) -> String {
        self.cron.describe()
    }
}

/// The schedules of `config`, and what is wrong with those left out (each
/// naming the master).
pub fn schedules(config: &Config) -> (Vec<Schedule>, Vec<String>) {
    let parser = CronParser::builder()
        .seconds(Seconds::Disallowed)
        .year(Year::Disallowed)
        .build();
    let mut ok = Vec::new();
    let mut errors = Vec::new();
    for master in config.masters() {
        let Some(expr) = &master.schedule else {
            continue;
        };
        let expr = expr.value.trim().to_string();
        let options = master
            .schedule_options
            .as_ref()
            .map(|o| o.value.clone())
            .unwrap_or_default();
        let stage = match options.stage {
            ScheduledStage::Rootfs => "rootfs",
            ScheduledStage::Conffs => "conffs",
            ScheduledStage::Initramfs => "initramfs",
            ScheduledStage::All | ScheduledStage::TrueAll => "all",
            ScheduledStage::Kernel => {
                errors.push(format!(
                    "master {}: schedule_options stage `kernel` (the original's custom kernel build) is not a vauban stage: the boot files take the image's own kernel (use `initramfs`)",
                    master.name
                ));
                continue;
            }
        };
        let cron = match parser.parse(&expr) {
            Ok(c) => c,
            Err(e) => {
                errors.push(format!("master {}: schedule `{expr}`: {e}", master.name));
                continue;
            }
        };
        ok.push(Schedule {
            master: master.name.clone(),
            note: original_reading(&expr),
            expr,
            cron,
            request: BuildRequest {
                name: master.name.clone(),
                stage: stage.into(),
                build_parents: options.build_parents,
                conffs: None,
                branch: None,
                no_cache: false,
                rebuild_stale: false,
                deploy: false,
            },
        });
    }
    (ok, errors)
}

/// How the original's scheduler read `expr` differently, if it did.
fn original_reading(expr: &str) -> Option<String> {
    let fields: Vec<&str> = expr.split_whitespace().collect();
    let [_, _, day, _, weekday] = fields[..] else {
        return None;
    };
    let mut notes = Vec::new();
    if weekday.chars().any(|c| c.is_ascii_digit()) {
        notes.push(format!(
            "day of week `{weekday}` is read as cron reads it (0 and 7 are Sunday); the original's scheduler counted from Monday = 0, one day later"
        ));
    }
    if day != "*" && weekday != "*" {
        notes.push(
            "a day of month and a day of week: either matches (cron); the original's scheduler wanted both"
                .to_string(),
        );
    }
    (!notes.is_empty()).then(|| notes.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn config(text: &str) -> Config {
        Config::parse(text, "/tmp/config.yml").unwrap()
    }

    #[test]
    fn schedules_take_the_originals_keys_and_defaults() {
        let c = config(
            "debian:\n  image: debian:bookworm\n  stages: [a.yml]\n  web:\n    stages: [b.yml]\n    schedule: '0 3 * * 1'\n    schedule_options:\n      stage: conffs\n      build_parents: 1\n  db:\n    stages: [c.yml]\n    schedule: '*/15 * * * *'\n",
        );
        let (s, errors) = schedules(&c);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(s.len(), 2);
        assert_eq!(
            (s[0].request.stage.as_str(), s[0].request.build_parents),
            ("conffs", 1)
        );
        assert_eq!(
            (s[1].request.stage.as_str(), s[1].request.build_parents),
            ("all", 0)
        );
        assert!(s[0].note.as_deref().unwrap().contains("Monday = 0"));
        assert_eq!(s[1].note, None);
    }

    #[test]
    fn a_slot_between_two_looks_is_due_once() {
        let c = config(
            "debian:\n  image: debian:bookworm\n  stages: [a.yml]\n  schedule: '30 2 * * *'\n",
        );
        let (s, _) = schedules(&c);
        let s = &s[0];
        let local = |h, m| {
            Local
                .with_ymd_and_hms(2026, 3, 10, h, m, 0)
                .unwrap()
                .with_timezone(&Utc)
        };
        assert!(!s.due(local(1, 0), local(2, 29)));
        assert!(s.due(local(1, 0), local(2, 30)));
        // Down from 01:00 one day to 05:00 two days later: two slots
        // missed, one build, and nothing more until the next slot.
        let down = local(1, 0) - chrono::Duration::days(2);
        assert!(s.due(down, local(5, 0)));
        assert!(!s.due(local(5, 0), local(23, 0)));
        assert_eq!(
            s.next_after(local(5, 0)),
            Some(local(2, 30) + chrono::Duration::days(1))
        );
    }

    #[test]
    fn bad_schedules_are_named_and_left_out() {
        let c = config("debian:\n  image: debian:bookworm\n  stages: [a.yml]\n  schedule: '61 * * * *'\n  k:\n    stages: [b.yml]\n    schedule: '0 1 * * *'\n    schedule_options: {stage: kernel}\n");
        let (s, errors) = schedules(&c);
        assert!(s.is_empty());
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(
            errors[0].contains("master debian") && errors[0].contains("61"),
            "{}",
            errors[0]
        );
        assert!(errors[1].contains("kernel"), "{}", errors[1]);
    }
}
