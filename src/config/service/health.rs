//! A service's health check: `HEALTH` (an HTTP path) or `HEALTH_CMD`, and its timing.

use std::time::Duration;

use super::AttrMap;
use crate::config::lookup::Errors;
use crate::config::model::*;
use crate::config::validate;
use crate::config::values::Value;
use crate::error::Diagnostic;

/// The health check the attributes describe, with its timing, if any.
pub(super) fn health(
    map: &AttrMap,
    port: Option<u16>,
    prefix: &str,
    errors: &mut Errors,
) -> Option<Health> {
    let probe = check(map, port, prefix, errors)?;
    let duration = |attr: &str, default: u64, errors: &mut Errors| {
        map.get(attr)
            .and_then(|a| errors.take(a.value.duration()))
            .unwrap_or(Duration::from_secs(default))
    };
    let interval = duration("HEALTH_INTERVAL", 10, errors);
    let timeout = duration("HEALTH_TIMEOUT", 5, errors);
    let start_period = duration("HEALTH_START_PERIOD", 0, errors);
    let retries = map
        .get("HEALTH_RETRIES")
        .and_then(|a| errors.take(a.value.number::<u32>(1, 1000)))
        .unwrap_or(3);
    for (attr, value) in [("HEALTH_INTERVAL", interval), ("HEALTH_TIMEOUT", timeout)] {
        if value < Duration::from_millis(100) {
            errors.push(
                Diagnostic::new(format!("`SERVICE_{prefix}_{attr}` must be at least 100ms"))
                    .with_span(map.get(attr).and_then(|a| a.value.span.cloned())),
            );
        }
    }
    Some(Health {
        probe,
        interval,
        timeout,
        retries,
        start_period,
    })
}

/// `HEALTH` or `HEALTH_CMD` (a preset's default gives way to the project's choice).
fn check(map: &AttrMap, port: Option<u16>, prefix: &str, errors: &mut Errors) -> Option<Probe> {
    match (map.get("HEALTH"), map.get("HEALTH_CMD")) {
        (Some(h), Some(c)) if h.from_project && c.from_project => {
            errors.push(
                Diagnostic::new(format!(
                    "`SERVICE_{prefix}_HEALTH` and `SERVICE_{prefix}_HEALTH_CMD` are both set"
                ))
                .with_span(c.value.span.cloned())
                .hint("keep one: an HTTP path, or a command run in the container"),
            );
            None
        }
        (Some(h), Some(c)) if !h.from_project => health_cmd(&c.value, errors),
        (Some(h), _) => {
            let path = errors.take(validate::health_path(&h.value))?;
            let Some(port) = port else {
                errors.push(
                    Diagnostic::new(format!(
                        "`SERVICE_{prefix}_HEALTH` needs `SERVICE_{prefix}_PORT` to know where to probe"
                    ))
                    .with_span(h.value.span.cloned())
                    .hint(format!("add `SERVICE_{prefix}_PORT`, or use `SERVICE_{prefix}_HEALTH_CMD`")),
                );
                return None;
            };
            Some(Probe::Http { port, path })
        }
        (None, Some(c)) => health_cmd(&c.value, errors),
        (None, None) => {
            check_no_timing(map, prefix, errors);
            None
        }
    }
}

/// Without a health check, its timing attributes have nothing to time.
fn check_no_timing(map: &AttrMap, prefix: &str, errors: &mut Errors) {
    for attr in [
        "HEALTH_INTERVAL",
        "HEALTH_TIMEOUT",
        "HEALTH_RETRIES",
        "HEALTH_START_PERIOD",
    ] {
        if let Some(a) = map.get(attr).filter(|a| a.from_project) {
            errors.push(
                Diagnostic::new(format!(
                    "`{}` is set but the service has no health check",
                    a.value.key
                ))
                .with_span(a.value.span.cloned())
                .hint(format!(
                    "add `SERVICE_{prefix}_HEALTH` or `SERVICE_{prefix}_HEALTH_CMD`"
                )),
            );
        }
    }
}

/// `HEALTH_CMD`: the exec form (a JSON array, run without a shell), else one non-empty
/// line run by `/bin/sh -c`.
fn health_cmd(value: &Value, errors: &mut Errors) -> Option<Probe> {
    if let Some(argv) = value.exec_form() {
        return errors.take(argv).map(Probe::Exec);
    }
    let text = errors.take(value.line())?;
    if text.trim().is_empty() {
        errors.push(
            Diagnostic::new(format!("`{}` is empty", value.key)).with_span(value.span.cloned()),
        );
        return None;
    }
    Some(Probe::Cmd(text))
}
