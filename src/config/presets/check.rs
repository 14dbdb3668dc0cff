//! Checks of the preset keys that no service attribute checks.

use super::{backup_volumes, retention_hours, s3_target, Preset};
use crate::config::lookup::{Errors, Keys};
use crate::config::model::{Mount, Service};
use crate::config::values::{quote, Value};
use crate::error::Diagnostic;

/// Check the keys of the enabled presets that a service attribute does not check.
pub(crate) fn check(keys: &Keys, enabled: &[&'static Preset], errors: &mut Errors) {
    let on = |name: &str| enabled.iter().any(|p| p.name == name);
    if on("MONITORING") {
        check_monitoring(keys, errors);
    }
    if on("BACKUP") {
        check_backup(keys, errors);
    }
}

/// The value of `key` when it is set to something other than blanks.
fn set<'a>(keys: &Keys<'a>, key: &'static str) -> Option<Value<'a>> {
    keys.get_owned(key).filter(|v| !v.text.trim().is_empty())
}

/// The monitoring preset's retention, alert webhook, durations and disk threshold.
fn check_monitoring(keys: &Keys, errors: &mut Errors) {
    if let Some(value) = set(keys, "MONITORING_RETENTION") {
        if retention_hours(value.text).is_none() {
            errors.push(
                Diagnostic::new(format!(
                    "`MONITORING_RETENTION` must be a number and a unit (h, d, w, y), at most 100 years, not {}",
                    value.quoted()
                ))
                .with_span(value.span.cloned())
                .hint("write e.g. `15d` or `6w`"),
            );
        }
    }
    // Checked only: a secret webhook reaches Alertmanager as a file (`url_file`).
    let hook = keys
        .peek("MONITORING_ALERT_WEBHOOK")
        .filter(|v| !v.text.trim().is_empty());
    if let Some(value) = hook {
        errors.take(webhook(&value));
    }
    for key in [
        "MONITORING_SCRAPE_INTERVAL",
        "MONITORING_ALERT_FOR",
        "MONITORING_GROUP_WAIT",
    ] {
        if let Some(value) = set(keys, key) {
            errors.take(prometheus_duration(&value));
        }
    }
    if let Some(value) = set(keys, "MONITORING_DISK_PERCENT") {
        errors.take(value.number::<u32>(0, 100));
    }
}

/// The backup preset's schedules, ages, counts and target (with its S3 settings).
fn check_backup(keys: &Keys, errors: &mut Errors) {
    for key in ["BACKUP_SCHEDULE", "BACKUP_VERIFY_SCHEDULE"] {
        if let Some(value) = set(keys, key) {
            errors.take(cron(&value));
        }
    }
    if let Some(value) = set(keys, "BACKUP_VERIFY_MAX_AGE") {
        if retention_hours(value.text).is_none() {
            errors.push(
                Diagnostic::new(format!(
                    "`BACKUP_VERIFY_MAX_AGE` must be a number and a unit (h, d, w, y), not {}",
                    value.quoted()
                ))
                .with_span(value.span.cloned())
                .hint("write e.g. `8d` or `2w`"),
            );
        }
    }
    if let Some(value) = set(keys, "BACKUP_KEEP_DAILY") {
        errors.take(value.number::<u32>(1, 3650));
    }
    if let Some(value) = set(keys, "BACKUP_KEEP_MONTHLY") {
        errors.take(value.number::<u32>(0, 1200));
    }
    let target = set(keys, "BACKUP_TARGET");
    if let Some(value) = &target {
        errors.take(backup_target(value));
    }
    let s3 = target.is_some_and(|v| v.text.trim().starts_with("s3://"));
    if s3 {
        if let Some(value) = set(keys, "BACKUP_S3_ENDPOINT") {
            errors.take(endpoint(&value));
        }
        check_s3_credentials(keys, errors);
    }
}

/// The S3 credentials of an `s3://` backup target: set, and secrets.
fn check_s3_credentials(keys: &Keys, errors: &mut Errors) {
    for key in ["BACKUP_S3_ACCESS_KEY", "BACKUP_S3_SECRET_KEY"] {
        // Credentials go to the container through the secret path only.
        let value = keys
            .for_container(key)
            .filter(|v| !v.text.trim().is_empty());
        let problem = match &value {
            None => Some(format!(
                "`{key}` is not set, and `BACKUP_TARGET` is an S3 URL"
            )),
            Some(_) if !keys.secrets.contains(key) => {
                Some(format!("`{key}` is a credential but not a secret"))
            }
            Some(_) => None,
        };
        if let Some(message) = problem {
            let span = value
                .and_then(|v| v.span.cloned())
                .or_else(|| keys.get("BACKUP_TARGET").and_then(|v| v.span.cloned()));
            errors.push(Diagnostic::new(message).with_span(span).hint(format!(
                "put `{key}` in `environments/<env>/secrets.env` (or list it in `STACK_SECRETS`)"
            )));
        }
    }
}

/// [`check`], then the checks that need the services of the environment.
pub(crate) fn check_all(
    keys: &Keys,
    enabled: &[&'static Preset],
    services: &[Service],
    errors: &mut Errors,
) {
    check(keys, enabled, errors);
    if enabled.iter().any(|p| p.name == "BACKUP") {
        if let Some(value) = keys.get_owned("BACKUP_VOLUMES_PAUSE") {
            errors.take(value.boolean().map(|_| ()));
        }
        if let Some(value) = keys.get_owned("BACKUP_VOLUMES") {
            for diagnostic in volumes(&value, services) {
                errors.push(diagnostic);
            }
        }
    }
}

/// Each volume of `BACKUP_VOLUMES` is a named volume of a service of this environment
/// (the backup service's own mounts of them aside).
fn volumes(value: &Value, services: &[Service]) -> Vec<Diagnostic> {
    let named: std::collections::BTreeSet<&str> = services
        .iter()
        .filter(|s| s.preset != Some("BACKUP"))
        .flat_map(|s| &s.mounts)
        .filter_map(|m| match m {
            Mount::Volume { name, .. } => Some(name.as_str()),
            _ => None,
        })
        .collect();
    let known = if named.is_empty() {
        "no service of this environment has a named volume".to_string()
    } else {
        let list: Vec<String> = named.iter().map(|n| format!("`{n}`")).collect();
        format!("the named volumes here: {}", list.join(", "))
    };
    backup_volumes(value.text)
        .into_iter()
        .filter(|volume| !named.contains(volume))
        .map(|volume| {
            Diagnostic::new(format!(
                "`BACKUP_VOLUMES` names `{}`, which is not a named volume of any service",
                crate::printer::escape(volume)
            ))
            .with_span(value.span.cloned())
            .hint(format!(
                "name volumes a service mounts by name in its `VOLUMES` (`name:/path`); {known}"
            ))
        })
        .collect()
}

/// A Prometheus duration: a number and one unit (`ms`, `s`, `m`, `h`, `d`, `w`).
pub(crate) fn is_prometheus_duration(text: &str) -> bool {
    let text = text.trim();
    let Some(split) = text.find(|c: char| !c.is_ascii_digit()) else {
        return false;
    };
    let (number, unit) = text.split_at(split);
    !number.is_empty() && number.len() <= 6 && matches!(unit, "ms" | "s" | "m" | "h" | "d" | "w")
}

fn prometheus_duration(value: &Value) -> Result<(), Diagnostic> {
    if is_prometheus_duration(value.text) {
        return Ok(());
    }
    Err(Diagnostic::new(format!(
        "`{}` must be a number and a unit (ms, s, m, h, d, w), not {}",
        value.key,
        value.quoted()
    ))
    .with_span(value.span.cloned())
    .hint("write e.g. `15s` or `2m`"))
}

fn webhook(value: &Value) -> Result<(), Diagnostic> {
    let text = value.text.trim();
    let rest = text
        .strip_prefix("https://")
        .or_else(|| text.strip_prefix("http://"));
    let valid = rest.is_some_and(|r| {
        !r.is_empty()
            && r.chars()
                .all(|c| c.is_ascii_graphic() && !"\"'\\`{}<>".contains(c))
    });
    if !valid {
        return Err(Diagnostic::new(format!(
            "`{}` must be an http:// or https:// URL, not {}",
            value.key,
            value.quoted()
        ))
        .with_span(value.span.cloned())
        .hint("write e.g. `https://hooks.example.com/alertmanager`"));
    }
    Ok(())
}

/// Schedules people write, as five cron fields: `@hourly`, `@daily` (`daily`,
/// `@midnight`), `@weekly`, `@monthly`, `@yearly` (`@annually`), `every 15m`, `every 6h`;
/// anything else is returned as written (five fields, checked by [`cron`]).
pub fn cron_schedule(text: &str) -> String {
    let text = text.trim();
    let named = match text.trim_start_matches('@') {
        "hourly" => Some("0 * * * *"),
        "daily" | "midnight" => Some("0 0 * * *"),
        "weekly" => Some("0 0 * * 0"),
        "monthly" => Some("0 0 1 * *"),
        "yearly" | "annually" => Some("0 0 1 1 *"),
        _ => None,
    };
    if let Some(fields) = named {
        return fields.to_string();
    }
    let every = text.strip_prefix("every ").map(str::trim).and_then(|rest| {
        let (number, unit) = rest.split_at(rest.find(|c: char| !c.is_ascii_digit())?);
        Some((number.parse::<u32>().ok()?, unit.trim()))
    });
    match every {
        Some((n, "m" | "min" | "minutes")) if (1..=59).contains(&n) => format!("*/{n} * * * *"),
        Some((n, "h" | "hours")) if (1..=23).contains(&n) => format!("0 */{n} * * *"),
        Some((1, "d" | "day")) => "0 0 * * *".to_string(),
        _ => text.to_string(),
    }
}

/// Five cron fields, as busybox `crond` reads them (after [`cron_schedule`]).
pub fn cron(value: &Value) -> Result<(), Diagnostic> {
    const FIELDS: [(&str, u32, u32); 5] = [
        ("minute", 0, 59),
        ("hour", 0, 23),
        ("day of month", 1, 31),
        ("month", 1, 12),
        ("day of week", 0, 7),
    ];
    let bad = |why: String| {
        Diagnostic::new(format!(
            "`{}` is not a cron schedule ({}): {why}",
            value.key,
            value.quoted()
        ))
        .with_span(value.span.cloned())
        .hint("write `@hourly`, `@daily`, `@weekly`, `@monthly`, `every 6h`, `every 15m`, or five fields: minute hour day-of-month month day-of-week, e.g. `0 3 * * *`")
    };
    let schedule = cron_schedule(value.text);
    let fields: Vec<&str> = schedule.split_whitespace().collect();
    if fields.len() != 5 {
        return Err(bad(format!("{} fields instead of 5", fields.len())));
    }
    for (field, (name, min, max)) in fields.iter().zip(FIELDS) {
        for part in field.split(',') {
            let (range, step) = match part.split_once('/') {
                Some((range, step)) => (range, Some(step)),
                None => (part, None),
            };
            if let Some(step) = step {
                if !step.parse::<u32>().is_ok_and(|s| s >= 1 && s <= max.max(1)) {
                    return Err(bad(format!(
                        "bad step {} in the {name} field",
                        quote(step, value.secret)
                    )));
                }
            }
            if range == "*" {
                continue;
            }
            let (low, high) = range.split_once('-').unwrap_or((range, range));
            for number in [low, high] {
                let in_range = number.parse::<u32>().is_ok_and(|n| n >= min && n <= max);
                if !in_range {
                    return Err(bad(format!(
                        "{} in the {name} field is not a number from {min} to {max}",
                        quote(number, value.secret)
                    )));
                }
            }
        }
    }
    Ok(())
}

fn backup_target(value: &Value) -> Result<(), Diagnostic> {
    let text = value.text.trim();
    let bad = |why: &str| {
        Diagnostic::new(format!(
            "`{}` must be an absolute path, a `./` path or an `s3://bucket/prefix` URL: {why}",
            value.key
        ))
        .with_span(value.span.cloned())
        .hint("write e.g. `/srv/backups`, `./backups` or `s3://my-bucket/db`")
    };
    if text.starts_with("s3://") {
        return match s3_target(text) {
            Some(_) => Ok(()),
            None => Err(bad(
                "the bucket uses 3 to 63 of `a-z 0-9 . -`, the prefix `A-Z a-z 0-9 - _ . /`",
            )),
        };
    }
    if !(text.starts_with('/') || text.starts_with("./")) {
        return Err(bad(&format!("{} is neither", quote(text, value.secret))));
    }
    if text
        .chars()
        .any(|c| c.is_control() || c == ':' || c == ',' || c.is_whitespace())
    {
        return Err(bad("the path cannot hold `:`, `,` or spaces"));
    }
    if text == "/" {
        return Err(bad("not the root directory"));
    }
    Ok(())
}

fn endpoint(value: &Value) -> Result<(), Diagnostic> {
    let text = value.text.trim();
    let host = text
        .strip_prefix("https://")
        .or_else(|| text.strip_prefix("http://"));
    let valid = host.is_some_and(|h| {
        !h.is_empty()
            && h.chars()
                .all(|c| c.is_ascii_alphanumeric() || ".-:".contains(c))
    });
    if valid {
        Ok(())
    } else {
        Err(Diagnostic::new(format!(
            "`{}` must be `https://host[:port]` without a path, not {}",
            value.key,
            quote(text, value.secret)
        ))
        .with_span(value.span.cloned())
        .hint("write e.g. `https://s3.eu-central-1.amazonaws.com` or `http://minio:9000`"))
    }
}
