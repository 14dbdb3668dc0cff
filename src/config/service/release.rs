//! `RELEASE` and `RELEASE_TIMEOUT`: the command a rollout runs once, in a one-off
//! container of the new version, before any container of that version starts.

use std::time::Duration;

use super::{command, get, AttrMap};
use crate::config::lookup::Errors;
use crate::config::model::Release;
use crate::error::Diagnostic;

/// How long a release command may run when `RELEASE_TIMEOUT` is not set.
pub const DEFAULT_RELEASE_TIMEOUT: Duration = Duration::from_secs(600);

/// `RELEASE` with its `RELEASE_TIMEOUT` (which needs `RELEASE`).
pub(super) fn read_release(map: &AttrMap, prefix: &str, errors: &mut Errors) -> Option<Release> {
    let timeout = get(map, "RELEASE_TIMEOUT").and_then(|v| {
        within_a_day(
            v,
            "write e.g. `10m`; a release command that runs longer is stopped and the rollout fails",
            errors,
        )
    });
    let Some(value) = get(map, "RELEASE") else {
        if let Some(v) = get(map, "RELEASE_TIMEOUT") {
            errors.push(
                Diagnostic::new(format!(
                    "`{}` is set but `SERVICE_{prefix}_RELEASE` is not",
                    v.key
                ))
                .with_span(v.span.cloned())
                .hint(format!(
                    "add `SERVICE_{prefix}_RELEASE=…` with the command to run before a rollout, or remove the timeout"
                )),
            );
        }
        return None;
    };
    let command = errors.take(command(value))?;
    Some(Release {
        command,
        timeout: timeout.unwrap_or(DEFAULT_RELEASE_TIMEOUT),
    })
}

/// A duration attribute from 1 s to 24 h (`RELEASE_TIMEOUT`, a job's `TIMEOUT`); out of
/// that range an error with `hint`.
pub(super) fn within_a_day(
    v: &crate::config::values::Value,
    hint: &str,
    errors: &mut Errors,
) -> Option<Duration> {
    let duration = errors.take(v.duration())?;
    if duration < Duration::from_secs(1) || duration > Duration::from_secs(24 * 3600) {
        errors.push(
            Diagnostic::new(format!(
                "`{}` must be from 1s to 24h, not `{}`",
                v.key,
                v.text.trim()
            ))
            .with_span(v.span.cloned())
            .hint(hint),
        );
        return None;
    }
    Some(duration)
}
