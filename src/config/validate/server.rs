//! The deploy target's values: the `ssh` host and user, and absolute paths on the server.

use super::{bad, checked};
use crate::config::values::Value;
use crate::error::Diagnostic;

/// A host for `ssh`: a DNS name, an address, or an alias from ~/.ssh/config.
/// A host name, an IP address or an ssh_config alias, and no option in disguise.
fn host_ok(text: &str) -> bool {
    !text.is_empty()
        && !text.starts_with('-')
        && text.len() <= 253
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-_:[]".contains(c))
}

/// `SERVER_NODES`: the swarm's other machines, each a host as `SERVER_HOST` is written.
pub fn ssh_hosts(value: &Value) -> Result<Vec<String>, Diagnostic> {
    let hosts = value.list();
    match hosts.iter().find(|h| !host_ok(h.trim())) {
        Some(bad) => Err(Diagnostic::new(format!(
            "`{}`: `{}` is not a valid host",
            value.key,
            value.show(bad.trim())
        ))
        .with_span(value.span.cloned())
        .hint("write host names or IP addresses, separated by commas: `SERVER_NODES=10.0.0.2,10.0.0.3`")),
        None => Ok(hosts.iter().map(|h| h.trim().to_string()).collect()),
    }
}

pub fn ssh_host(value: &Value) -> Result<String, Diagnostic> {
    let text = value.text.trim();
    let ok = host_ok(text);
    checked(
        value,
        ok,
        format!("`{}` is not a valid host: {}", value.key, value.show(text)),
        "write a host name, an IP address, or a `Host` alias from ~/.ssh/config",
    )
}

pub fn ssh_user(value: &Value) -> Result<String, Diagnostic> {
    let text = value.text.trim();
    let ok = !text.is_empty()
        && !text.starts_with('-')
        && text.len() <= 32
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    checked(
        value,
        ok,
        format!(
            "`{}` is not a valid user name: {}",
            value.key,
            value.show(text)
        ),
        "use letters, digits, `.`, `_` and `-`",
    )
}

/// An absolute path on the server; it is quoted in remote commands, but kept plain anyway.
pub fn server_path(value: &Value) -> Result<String, Diagnostic> {
    let text = value.text.trim();
    let ok = text.starts_with('/')
        && text.len() > 1
        && !text.contains("..")
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-".contains(c));
    if ok {
        Ok(text.trim_end_matches('/').to_string())
    } else {
        Err(bad(
            value,
            format!(
                "`{}` must be an absolute path, not {}",
                value.key,
                value.show(text)
            ),
            "write e.g. `/opt/myapp`, with letters, digits and `/._-`",
        ))
    }
}
