//! The deploy target's values: the `ssh` host and user, and absolute paths on the server.

use super::{bad, checked};
use crate::config::values::Value;
use crate::error::Diagnostic;

/// A host for `ssh`: a DNS name, an address, or an alias from ~/.ssh/config.
pub fn ssh_host(value: &Value) -> Result<String, Diagnostic> {
    let text = value.text.trim();
    let ok = !text.is_empty()
        && !text.starts_with('-')
        && text.len() <= 253
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-_:[]".contains(c));
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
