//! Items of the list attributes: `LABELS`, `EXTRA_HOSTS`, `ALIASES` and the `ENV` list.

use super::{bad, pair, ExtraHost, HostAddress};
use crate::config::values::Value;
use crate::error::Diagnostic;

/// Label prefixes stack and Compose own; a project's label there would be overwritten.
const RESERVED_LABELS: &[&str] = &["dev.stack.", "com.docker.compose.", "com.docker.stack."];

/// `LABELS` items (as [`crate::config::values::split_escaped`] splits them): an item
/// without `=` continues the value before it, so a label's value written before `\,`
/// existed can hold a comma list (`…authResponseHeaders=Remote-User,Remote-Groups`).
pub fn label_entries(items: Vec<String>) -> Vec<String> {
    let mut entries: Vec<String> = Vec::new();
    for item in items {
        match entries.last_mut() {
            Some(last) if !item.contains('=') => {
                last.push(',');
                last.push_str(&item);
            }
            _ => entries.push(item),
        }
    }
    entries
}

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

/// One `ALIASES` item: a host name Docker's DNS answers for the service (letters,
/// digits, `_`, `-` and `.`, as Compose's `aliases` and `container_name` allow).
pub fn alias(value: &Value, item: &str) -> Result<String, Diagnostic> {
    let mut chars = item.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && item.len() <= 253
        && chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if !ok {
        return Err(bad(
            value,
            format!("`{}`: `{item}` is not a host name", value.key),
            "write letters, digits, `_`, `-` and `.`, starting with a letter or digit, e.g. `db_primary`",
        ));
    }
    Ok(item.to_string())
}

/// One `GROUP_ADD` item: a numeric gid, or a group name as the image's `/etc/group` spells
/// it (what `useradd` accepts: a letter or `_` first, then letters, digits, `_`, `-`).
pub fn group(value: &Value, item: &str) -> Result<String, Diagnostic> {
    let numeric = !item.is_empty() && item.len() <= 10 && item.bytes().all(|b| b.is_ascii_digit());
    let mut chars = item.chars();
    let named = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && item.len() <= 32
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_-".contains(c));
    if !(numeric && item.parse::<u32>().is_ok() || named) {
        return Err(bad(
            value,
            format!("`{}`: `{item}` is not a group name or gid", value.key),
            "write group names (`video`, `docker`) or numeric gids (`44`), separated by commas",
        ));
    }
    Ok(item.to_string())
}

/// One `SECURITY_OPT` item, as Docker takes it: `no-new-privileges` (`:true`/`:false`),
/// `label=…`, `apparmor=…`, `seccomp=unconfined`, `systempaths=unconfined`.
pub fn security_opt(value: &Value, item: &str) -> Result<String, Diagnostic> {
    let (key, rest) = match item.split_once(['=', ':']) {
        Some((key, rest)) => (key, Some(rest)),
        None => (item, None),
    };
    let ok = match (key, rest) {
        ("no-new-privileges", None | Some("true" | "false")) => true,
        ("label" | "apparmor", Some(rest)) => !rest.is_empty(),
        ("seccomp" | "systempaths", Some("unconfined")) => true,
        _ => false,
    };
    if !ok {
        let hint = if key == "seccomp" {
            "a seccomp profile file is read by the Docker CLI, not the engine: only `seccomp=unconfined` can be passed"
        } else {
            "write e.g. `no-new-privileges:true`, `label=disable`, `apparmor=unconfined`"
        };
        return Err(bad(
            value,
            format!(
                "`{}`: `{item}` is not a security option stack passes",
                value.key
            ),
            hint,
        ));
    }
    Ok(item.to_string())
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
            format!("`{}`: {} is not `name=value`", value.key, value.show(item)),
            "write e.g. `discovery.type=single-node`; names cannot be empty or hold `=`, blanks or control characters",
        )),
    }
}

/// The node attributes a swarm placement constraint may test.
const PLACEMENT_FIELDS: &[&str] = &[
    "node.id",
    "node.hostname",
    "node.role",
    "node.platform.os",
    "node.platform.arch",
];

/// One `PLACEMENT` item: `<node attribute>==<value>` or `!=`, where the attribute is one
/// of [`PLACEMENT_FIELDS`] or `node.labels.<label>` / `engine.labels.<label>`.
pub fn placement(value: &Value, item: &str) -> Result<String, Diagnostic> {
    let item = item.trim();
    let split = item
        .split_once("==")
        .map(|(f, v)| (f, "==", v))
        .or_else(|| item.split_once("!=").map(|(f, v)| (f, "!=", v)));
    let fine = |text: &str| {
        !text.is_empty()
            && text
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-/:".contains(c))
    };
    if let Some((field, op, expected)) = split {
        let (field, expected) = (field.trim(), expected.trim());
        let known = PLACEMENT_FIELDS.contains(&field)
            || ["node.labels.", "engine.labels."]
                .iter()
                .any(|p| field.strip_prefix(p).is_some_and(fine));
        if known && fine(expected) {
            return Ok(format!("{field}{op}{expected}"));
        }
    }
    Err(bad(
        value,
        format!(
            "`{}`: `{item}` is not a placement constraint",
            value.key
        ),
        format!(
            "write `<attribute>==<value>` or `!=`, e.g. `node.labels.role==db` or `node.role==manager`; attributes: {}, node.labels.<label>, engine.labels.<label>",
            PLACEMENT_FIELDS.join(", ")
        ),
    ))
}
