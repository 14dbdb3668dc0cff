//! Image references (`[registry/]name[:tag][@digest]`): the registry host and the
//! repository path components.

use super::bad;
use crate::config::values::Value;
use crate::error::Diagnostic;

/// An image reference: `[registry/]name[:tag][@digest]`, as the Docker distribution
/// reference grammar has it (Docker refuses anything else when it pulls).
pub fn image(value: &Value) -> Result<String, Diagnostic> {
    let text = value.text.trim();
    match image_reference(text) {
        Ok(()) => Ok(text.to_string()),
        Err(why) => Err(bad(
            value,
            format!(
                "`{}` is not a valid image reference {}: {why}",
                value.key,
                value.quoted()
            ),
            "write `repository:tag`, e.g. `postgres:16-alpine` or `ghcr.io/acme/api:1.4.2`",
        )),
    }
}

/// Why `text` is not an image reference, if it is not one.
pub fn image_reference(text: &str) -> Result<(), &'static str> {
    let (rest, digest) = match text.split_once('@') {
        Some((rest, digest)) => (rest, Some(digest)),
        None => (text, None),
    };
    if let Some(digest) = digest {
        let hex = |h: &str, n: usize| {
            h.len() == n
                && h.chars()
                    .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
        };
        let ok = match digest.split_once(':') {
            Some(("sha256", h)) => hex(h, 64),
            Some(("sha512", h)) => hex(h, 128),
            _ => false,
        };
        if !ok {
            return Err("a digest is `sha256:` and 64 lowercase hex digits");
        }
    }
    let (name, tag) = match rest.rfind(':') {
        Some(i) if !rest[i..].contains('/') => (&rest[..i], Some(&rest[i + 1..])),
        _ => (rest, None),
    };
    if let Some(tag) = tag {
        let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
        let ok = (1..=128).contains(&tag.len())
            && tag.chars().next().is_some_and(word)
            && tag.chars().all(|c| word(c) || c == '.' || c == '-');
        if !ok {
            return Err("a tag is up to 128 of `A-Z a-z 0-9 _ . -`, not starting with `.` or `-`");
        }
    }
    if name.is_empty() || name.len() > 255 {
        return Err("the repository name is empty or longer than 255 characters");
    }
    let mut components: Vec<&str> = name.split('/').collect();
    let first = components[0];
    let is_registry = components.len() > 1
        && (first.contains(['.', ':'])
            || first == "localhost"
            || first.chars().any(|c| c.is_ascii_uppercase()));
    if is_registry {
        if !registry_host(first) {
            return Err("the registry is `host[:port]`");
        }
        components.remove(0);
    }
    if !components.iter().all(|c| path_component(c)) {
        return Err("repository names are lowercase `a-z 0-9`, separated by `.`, `_`, `__` or `-`, between `/`");
    }
    Ok(())
}

/// `host[:port]` of a registry: DNS labels (any case), or an IPv6 address in brackets.
fn registry_host(text: &str) -> bool {
    let (host, port) = match text.rsplit_once(':') {
        Some((host, port)) if !port.contains(']') => (host, Some(port)),
        _ => (text, None),
    };
    if port.is_some_and(|p| p.parse::<u16>().is_err()) {
        return false;
    }
    if let Some(ip) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return ip.parse::<std::net::Ipv6Addr>().is_ok();
    }
    !host.is_empty()
        && host.split('.').all(|label| {
            !label.is_empty()
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

/// `[a-z0-9]+` runs joined by `.`, `_`, `__` or any number of `-`.
fn path_component(text: &str) -> bool {
    let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    if !text.starts_with(alnum) || !text.ends_with(alnum) {
        return false;
    }
    let mut separator = String::new();
    for c in text.chars() {
        if alnum(c) {
            let ok = separator.is_empty()
                || matches!(separator.as_str(), "." | "_" | "__")
                || separator.chars().all(|s| s == '-');
            if !ok {
                return false;
            }
            separator.clear();
        } else if ".-_".contains(c) {
            separator.push(c);
        } else {
            return false;
        }
    }
    true
}
