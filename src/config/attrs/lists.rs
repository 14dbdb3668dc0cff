//! Items of the list attributes: `LABELS`, `EXTRA_HOSTS` and the `ENV` list.

use super::{bad, pair, ExtraHost, HostAddress};
use crate::config::values::Value;
use crate::error::Diagnostic;

/// Label prefixes stack and Compose own; a project's label there would be overwritten.
const RESERVED_LABELS: &[&str] = &["dev.stack.", "com.docker.compose.", "com.docker.stack."];

/// One `LABELS` item: `key=value`, outside the prefixes stack and Compose own.
pub fn label(value: &Value, item: &str) -> Result<(String, String), Diagnostic> {
    let parsed = pair(item, '=').filter(|(key, _)| {
        !key.chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '"')
    });
    let Some((key, text)) = parsed else {
        return Err(bad(
            value,
            format!("`{}`: `{item}` is not `key=value`", value.key),
            "write e.g. `com.example.team=payments`",
        ));
    };
    if let Some(prefix) = RESERVED_LABELS.iter().find(|p| key.starts_with(**p)) {
        return Err(bad(
            value,
            format!(
                "`{}`: label `{key}` is under `{prefix}`, which stack sets itself",
                value.key
            ),
            "choose a key under your own prefix, e.g. `com.example.`",
        ));
    }
    Ok((key.to_string(), text.to_string()))
}

/// One `EXTRA_HOSTS` item: `host:ip` or `host:host-gateway` (also `host=ip`).
pub fn extra_host(value: &Value, item: &str) -> Result<ExtraHost, Diagnostic> {
    let parsed = pair(item, '=').or_else(|| pair(item, ':'));
    let host_ok = |host: &str| {
        host.len() <= 253
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || ".-_".contains(c))
    };
    let address = parsed.and_then(|(host, address)| {
        let address = address.trim_start_matches('[').trim_end_matches(']');
        let address = if address == "host-gateway" {
            HostAddress::HostGateway
        } else {
            HostAddress::Ip(address.parse().ok()?)
        };
        host_ok(host).then(|| ExtraHost {
            host: host.to_string(),
            address,
        })
    });
    address.ok_or_else(|| {
        bad(
            value,
            format!("`{}`: `{item}` is not `host:ip`", value.key),
            "write e.g. `db.internal:10.0.0.5` or `host.docker.internal:host-gateway`",
        )
    })
}

/// A container variable name as Docker takes it: not empty, no `=`, no NUL or control
/// characters (dots and lower case are fine: `discovery.type`, `http_proxy`).
pub fn env_name(name: &str) -> bool {
    !name.is_empty() && !name.contains('=') && !name.chars().any(|c| c.is_control() || c == ' ')
}

/// One item of the `ENV` list: `name=value`.
pub fn env_entry(value: &Value, item: &str) -> Result<(String, String), Diagnostic> {
    match item.split_once('=') {
        Some((name, text)) if env_name(name.trim()) => {
            Ok((name.trim().to_string(), text.trim().to_string()))
        }
        _ => Err(bad(
            value,
            format!("`{}`: `{item}` is not `name=value`", value.key),
            "write e.g. `discovery.type=single-node`; names cannot be empty or hold `=`, blanks or control characters",
        )),
    }
}
