//! `SCHEDULE`, `CONCURRENCY` and `TIMEOUT`: a service that is a scheduled job, run to
//! completion in one-off containers at the times of its schedule.

use std::time::Duration;

use super::{get, AttrMap, Context};
use crate::config::lookup::Errors;
use crate::config::model::{Concurrency, JobSchedule};
use crate::error::Diagnostic;

/// How long a job's run may take when `TIMEOUT` is not set.
pub const DEFAULT_JOB_TIMEOUT: Duration = Duration::from_secs(3600);

/// The time zone of schedules when `STACK_TIMEZONE` is not set.
pub const DEFAULT_TIMEZONE: &str = "UTC";

/// `SCHEDULE` with its `CONCURRENCY` and `TIMEOUT` (which need `SCHEDULE`). The job runs
/// its `COMMAND`, else the image's own command.
pub(super) fn read_schedule(
    context: &Context,
    map: &AttrMap,
    prefix: &str,
    errors: &mut Errors,
) -> Option<JobSchedule> {
    let concurrency = get(map, "CONCURRENCY").and_then(|v| {
        match errors.take(v.choice(&["forbid", "allow", "replace"]))? {
            "allow" => Some(Concurrency::Allow),
            "replace" => Some(Concurrency::Replace),
            _ => Some(Concurrency::Forbid),
        }
    });
    let timeout = get(map, "TIMEOUT").and_then(|v| {
        super::release::within_a_day(
            v,
            "write e.g. `30m`; a run that takes longer is stopped and recorded as failed",
            errors,
        )
    });
    let Some(value) = get(map, "SCHEDULE") else {
        for attr in ["CONCURRENCY", "TIMEOUT"] {
            if let Some(v) = get(map, attr) {
                errors.push(
                    Diagnostic::new(format!(
                        "`{}` is set but `SERVICE_{prefix}_SCHEDULE` is not",
                        v.key
                    ))
                    .with_span(v.span.cloned())
                    .hint(format!(
                        "add `SERVICE_{prefix}_SCHEDULE=…` (e.g. `@daily`) to make the service a job, or remove `{}`",
                        v.key
                    )),
                );
            }
        }
        return None;
    };
    errors.take(crate::config::presets::check_cron(value))?;
    let cron = crate::config::presets::cron_schedule(value.text);
    if let Err(e) = cron.parse::<croner::Cron>() {
        errors.push(
            Diagnostic::new(format!(
                "`{}` is not a cron schedule ({}): {e}",
                value.key,
                value.quoted()
            ))
            .with_span(value.span.cloned())
            .hint(
                "write five fields: minute hour day-of-month month day-of-week, e.g. `30 2 * * *`",
            ),
        );
        return None;
    }
    // `STACK_TIMEZONE` is checked once, with the globals; a bad one is reported there.
    let timezone = context
        .keys
        .get("STACK_TIMEZONE")
        .map(|v| v.text.trim().to_string())
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| DEFAULT_TIMEZONE.to_string());
    Some(JobSchedule {
        cron,
        written: value.text.trim().to_string(),
        timezone,
        concurrency: concurrency.unwrap_or(Concurrency::Forbid),
        timeout: timeout.unwrap_or(DEFAULT_JOB_TIMEOUT),
    })
}
