//! Scheduled jobs, the pure part: when a job's schedule fires next (croner, in the
//! project's `STACK_TIMEZONE`), the record of one run as the server keeps it
//! (`SERVER_PATH/jobs/NAME.runs`, JSON lines), and the metrics of the last runs. No I/O.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};

use crate::config::JobSchedule;

/// Runs kept in a job's record.
pub const KEEP_RUNS: usize = 50;

/// The exit code of a run stopped at its `TIMEOUT`, as coreutils' `timeout` reports it.
pub const TIMED_OUT: i64 = 124;

/// The exit code of a run whose container could not be created or started (no image,
/// no network): the code Docker's CLI gives for the same failure.
pub const NOT_STARTED: i64 = 125;

/// How a run was started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Trigger {
    /// At a time of its schedule, by `stack supervise`.
    Schedule,
    /// By `stack jobs run`.
    Manual,
}

/// One finished run of a job: a line of its record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Run {
    /// Unix time (seconds) it started.
    pub start: u64,
    pub duration_ms: u64,
    pub exit_code: i64,
    /// The release it ran (`local` off a server).
    pub release: String,
    pub trigger: Trigger,
}

impl Run {
    pub fn ok(&self) -> bool {
        self.exit_code == 0
    }

    /// `2026-12-07T03:00:00Z`.
    pub fn start_text(&self) -> String {
        time_text(self.start)
    }
}

/// Unix seconds as `2026-12-07T03:00:00Z`.
pub fn time_text(seconds: u64) -> String {
    i64::try_from(seconds)
        .ok()
        .and_then(|s| Utc.timestamp_opt(s, 0).single())
        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|| seconds.to_string())
}

/// Unix seconds of `time`.
pub fn unix(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The first time strictly after `after` at which `schedule` fires, in UTC.
pub fn next_after(schedule: &JobSchedule, after: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    let cron: croner::Cron = schedule
        .cron
        .parse()
        .map_err(|e| format!("schedule `{}`: {e}", schedule.written))?;
    let zone: chrono_tz::Tz = schedule
        .timezone
        .parse()
        .map_err(|_| format!("`{}` is not a time zone", schedule.timezone))?;
    cron.find_next_occurrence(&after.with_timezone(&zone), false)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("schedule `{}`: {e}", schedule.written))
}

/// The runs of a record (JSON lines, oldest first); lines that do not read are skipped.
pub fn read_runs(text: &str) -> Vec<Run> {
    text.lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}

/// The record with `run` appended, the oldest dropped beyond [`KEEP_RUNS`].
pub fn append_run(text: &str, run: &Run) -> String {
    let mut runs = read_runs(text);
    runs.push(run.clone());
    let skip = runs.len().saturating_sub(KEEP_RUNS);
    runs.iter()
        .skip(skip)
        .filter_map(|r| serde_json::to_string(r).ok())
        .map(|line| line + "\n")
        .collect()
}

/// One sample's value from a job's runs.
type Sample = fn(&[Run]) -> Option<String>;

/// The Prometheus text of the last runs of each job (node-exporter's textfile format):
/// `stack_job_last_exit_code`, `stack_job_last_run_timestamp_seconds`,
/// `stack_job_last_duration_seconds` and `stack_job_last_success_timestamp_seconds`.
pub fn metrics(jobs: &[(String, Vec<Run>)]) -> String {
    let samples: [(&str, &str, Sample); 4] = [
        (
            "stack_job_last_exit_code",
            "Exit code of the job's last run (124: timed out, 125: did not start).",
            |runs| runs.last().map(|r| r.exit_code.to_string()),
        ),
        (
            "stack_job_last_run_timestamp_seconds",
            "Unix time the job's last run started.",
            |runs| runs.last().map(|r| r.start.to_string()),
        ),
        (
            "stack_job_last_duration_seconds",
            "How long the job's last run took.",
            |runs| {
                runs.last().map(|r| {
                    Duration::from_millis(r.duration_ms)
                        .as_secs_f64()
                        .to_string()
                })
            },
        ),
        (
            "stack_job_last_success_timestamp_seconds",
            "Unix time the job's last successful run started.",
            |runs| {
                runs.iter()
                    .rev()
                    .find(|r| r.ok())
                    .map(|r| r.start.to_string())
            },
        ),
    ];
    let mut out = String::new();
    for (name, help, value) in samples {
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} gauge\n"));
        for (job, runs) in jobs {
            if let Some(value) = value(runs) {
                out.push_str(&format!("{name}{{job=\"{job}\"}} {value}\n"));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Concurrency;

    fn schedule(written: &str, timezone: &str) -> JobSchedule {
        JobSchedule {
            cron: crate::config::presets::cron_schedule(written),
            written: written.into(),
            timezone: timezone.into(),
            concurrency: Concurrency::Forbid,
            timeout: Duration::from_secs(60),
        }
    }

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    #[test]
    fn next_times_follow_the_schedule() {
        let from = at("2026-12-07T08:31:10Z");
        let next = |s: &str| next_after(&schedule(s, "UTC"), from).unwrap().to_rfc3339();
        assert_eq!(next("@daily"), "2026-12-08T00:00:00+00:00");
        assert_eq!(next("every 15m"), "2026-12-07T08:45:00+00:00");
        assert_eq!(next("every 6h"), "2026-12-07T12:00:00+00:00");
        assert_eq!(next("30 2 * * 1"), "2026-12-14T02:30:00+00:00");
        // Strictly after: a time that is due now is the next one.
        let due = next_after(&schedule("@hourly", "UTC"), at("2026-12-07T09:00:00Z"));
        assert_eq!(due.unwrap().to_rfc3339(), "2026-12-07T10:00:00+00:00");
    }

    #[test]
    fn a_time_zone_moves_the_times_and_follows_daylight_saving() {
        let berlin = schedule("0 3 * * *", "Europe/Berlin");
        let winter = next_after(&berlin, at("2026-12-07T08:00:00Z")).unwrap();
        assert_eq!(winter.to_rfc3339(), "2026-12-08T02:00:00+00:00");
        let summer = next_after(&berlin, at("2026-07-07T08:00:00Z")).unwrap();
        assert_eq!(summer.to_rfc3339(), "2026-07-08T01:00:00+00:00");
    }

    #[test]
    fn the_record_keeps_the_last_runs() {
        let mut text = String::new();
        for i in 0..(KEEP_RUNS as u64 + 5) {
            let run = Run {
                start: i,
                duration_ms: 10,
                exit_code: i64::from(i % 2 == 0),
                release: "r1".into(),
                trigger: Trigger::Schedule,
            };
            text = append_run(&text, &run);
        }
        let runs = read_runs(&text);
        assert_eq!(runs.len(), KEEP_RUNS);
        assert_eq!(runs[0].start, 5);
        assert_eq!(runs.last().unwrap().start, KEEP_RUNS as u64 + 4);
        let prom = metrics(&[("report".into(), runs)]);
        assert!(
            prom.contains("stack_job_last_exit_code{job=\"report\"} 1\n"),
            "{prom}"
        );
        assert!(
            prom.contains("stack_job_last_success_timestamp_seconds{job=\"report\"} 53\n"),
            "{prom}"
        );
    }
}
