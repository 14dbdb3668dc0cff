//! Hosts, routes (`host/path`) and upstreams (`host:port` outside Docker).

use super::bad;
use crate::config::model::{Route, Upstream};
use crate::config::values::Value;
use crate::error::Diagnostic;

/// A DNS name: labels of `[a-z0-9-]`, optionally `*.` first.
pub fn is_hostname(text: &str) -> bool {
    let body = text.strip_prefix("*.").unwrap_or(text);
    !body.is_empty()
        && body.len() <= 253
        && body.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        })
}

pub fn hostname(value: &Value) -> Result<String, Diagnostic> {
    let text = value.text.trim().to_ascii_lowercase();
    if is_hostname(&text) && !text.starts_with("*.") {
        Ok(text)
    } else {
        Err(bad(
            value,
            format!("`{}` is not a valid domain: {}", value.key, value.quoted()),
            "write a host name such as `example.com` (letters, digits, `-` and `.`)",
        ))
    }
}

/// A route: `host`, `/path` on the base domain, or `host/path`.
pub fn route(value: &Value, item: &str, domain: &str) -> Result<Route, Diagnostic> {
    let error = |why: &str| {
        bad(
            value,
            format!(
                "`{}` has an invalid route {}: {why}",
                value.key,
                value.show(item)
            ),
            "write a host (`api.example.com`), a path (`/api`) or both (`example.com/api`)",
        )
    };
    if item.contains("://") {
        return Err(error("leave out the scheme; TLS follows `STACK_TLS`"));
    }
    let (host, path) = match item.find('/') {
        Some(0) => (domain.to_string(), item.to_string()),
        Some(i) => (item[..i].to_ascii_lowercase(), item[i..].to_string()),
        None => (item.to_ascii_lowercase(), "/".to_string()),
    };
    if !is_hostname(&host) {
        return Err(error("the host is not a valid DNS name"));
    }
    let path_ok = path.starts_with('/')
        && !path.contains("//")
        && path
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/-._~%".contains(c));
    if !path_ok {
        return Err(error("a path uses only letters, digits and `/-._~%`"));
    }
    if let Some(why) = path_escape(&path) {
        return Err(error(why));
    }
    let path = if path.len() > 1 {
        path.trim_end_matches('/').to_string()
    } else {
        path
    };
    Ok(Route { host, path })
}

/// Why a route path could leave its prefix once a proxy or an app decodes and cleans
/// it: a `.` or `..` segment, or `%` that is not an escape or hides `.`, `/`, `\`, `%`.
fn path_escape(path: &str) -> Option<&'static str> {
    let bytes = path.as_bytes();
    for (i, b) in bytes.iter().enumerate() {
        if *b != b'%' {
            continue;
        }
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
            None => return Some("`%` must start an escape such as `%20`"),
            Some(b'.' | b'/' | b'\\' | b'%') => {
                return Some("write `.` and `/` plainly, not as `%2e` or `%2f`")
            }
            Some(_) => {}
        }
    }
    if path
        .split('/')
        .any(|segment| segment == "." || segment == "..")
    {
        return Some("`.` and `..` segments are not allowed");
    }
    None
}

/// `host:port` of an app running outside Docker.
pub fn upstream(value: &Value) -> Result<Upstream, Diagnostic> {
    let text = value.text.trim();
    let error = || {
        bad(
            value,
            format!(
                "`{}` must be `host:port`, not {}",
                value.key,
                value.show(text)
            ),
            "write e.g. `localhost:3000` for an app on the host",
        )
    };
    let (host, port) = text.rsplit_once(':').ok_or_else(error)?;
    let port: u16 = port.parse().ok().filter(|p| *p > 0).ok_or_else(error)?;
    let host = host.to_ascii_lowercase();
    if !(is_hostname(&host) || host.parse::<std::net::Ipv4Addr>().is_ok()) || host.starts_with("*.")
    {
        return Err(error());
    }
    Ok(Upstream { host, port })
}
