//! Checks of single values that end up in generated files (hosts, paths, images), and
//! the checks across services (dependencies, ports, routes).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use super::lookup::Errors;
use super::model::*;
use super::paths::normalize;
use super::values::Value;
use crate::error::Diagnostic;

/// The trimmed value when `ok`, else the error `message` with `hint`.
fn checked(value: &Value, ok: bool, message: String, hint: &str) -> Result<String, Diagnostic> {
    if ok {
        Ok(value.text.trim().to_string())
    } else {
        Err(bad(value, message, hint))
    }
}

fn bad(value: &Value, message: String, hint: &str) -> Diagnostic {
    Diagnostic::new(message)
        .with_span(value.span.cloned())
        .hint(hint.to_string())
}

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

/// A path relative to the project (build context, Dockerfile).
pub fn relative_path(value: &Value) -> Result<String, Diagnostic> {
    let text = value.text.trim();
    let ok =
        !text.is_empty() && !text.chars().any(|c| c.is_control()) && !Path::new(text).is_absolute();
    checked(
        value,
        ok,
        format!(
            "`{}` must be a path relative to the project: {}",
            value.key,
            value.quoted()
        ),
        "write e.g. `./api`",
    )
}

/// Compose short syntax: `[ip:][host:]container[/protocol]`, ranges allowed.
pub fn publish(value: &Value, item: &str) -> Result<Publish, Diagnostic> {
    let error =
        || {
            bad(
            value,
            format!("`{}` has an invalid port mapping {}", value.key, value.show(item)),
            "write `HOST:CONTAINER`, `IP:HOST:CONTAINER` or `CONTAINER`, optionally with `/udp`",
        )
        };
    let (rest, protocol) = match item.rsplit_once('/') {
        Some((rest, proto)) if ["tcp", "udp", "sctp"].contains(&proto) => (rest, proto),
        Some(_) => return Err(error()),
        None => (item, "tcp"),
    };
    let (ip, rest) = if let Some(stripped) = rest.strip_prefix('[') {
        let (ip, after) = stripped.split_once("]:").ok_or_else(error)?;
        (Some(ip.to_string()), after)
    } else {
        let parts: Vec<&str> = rest.split(':').collect();
        match parts.len() {
            3 => (Some(parts[0].to_string()), &rest[parts[0].len() + 1..]),
            1 | 2 => (None, rest),
            _ => return Err(error()),
        }
    };
    if let Some(ip) = &ip {
        if ip.parse::<std::net::IpAddr>().is_err() {
            return Err(error());
        }
    }
    let ports = |text: &str| -> Option<Vec<u16>> {
        let (a, b) = text.split_once('-').unwrap_or((text, text));
        let (a, b) = (a.parse::<u16>().ok()?, b.parse::<u16>().ok()?);
        (a >= 1 && a <= b && b - a < 1000).then(|| (a..=b).collect())
    };
    let (host_ports, container) = match rest.split_once(':') {
        Some(("", container)) => (Vec::new(), container),
        Some((host, container)) => (ports(host).ok_or_else(error)?, container),
        None => (Vec::new(), rest),
    };
    let container_ports = ports(container).ok_or_else(error)?;
    if !host_ports.is_empty() && host_ports.len() != container_ports.len() {
        return Err(error());
    }
    Ok(Publish {
        spec: item.to_string(),
        host_ip: ip,
        host_ports,
        container_ports,
        protocol: protocol.to_string(),
    })
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

/// An HTTP path for a health probe; it is placed in a shell command, so it is strict.
pub fn health_path(value: &Value) -> Result<String, Diagnostic> {
    let text = value.text.trim();
    let ok = text.starts_with('/')
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/-._~%?=&".contains(c));
    checked(
        value,
        ok,
        format!(
            "`{}` must be an HTTP path such as `/health`, not {}",
            value.key,
            value.show(text)
        ),
        "start with `/`; use letters, digits and `/-._~%?=&`",
    )
}

/// Compose short volume syntax.
pub fn mount(value: &Value, item: &str, project_dir: &Path) -> Result<Mount, Diagnostic> {
    let error = |why: &str| {
        bad(
            value,
            format!(
                "`{}` has an invalid volume {}: {why}",
                value.key,
                value.show(item)
            ),
            "write `name:/path`, `./dir:/path[:ro]` or `/path`",
        )
    };
    if item.chars().any(|c| c.is_control()) {
        return Err(error("control characters"));
    }
    let parts: Vec<&str> = item.split(':').collect();
    let (source, target, mode) = match parts.as_slice() {
        [target] => (None, *target, None),
        [source, target] => (Some(*source), *target, None),
        [source, target, mode] => (Some(*source), *target, Some(*mode)),
        _ => return Err(error("too many `:`")),
    };
    if !target.starts_with('/') {
        return Err(error("the path in the container must be absolute"));
    }
    let target = normalize(Path::new(target));
    if target == Path::new("/") {
        return Err(error("cannot mount over the container's `/`"));
    }
    if target
        .components()
        .any(|c| c == std::path::Component::ParentDir)
    {
        return Err(error("the path in the container cannot hold `..`"));
    }
    let target = target.to_string_lossy().into_owned();
    let read_only = match mode {
        None | Some("rw") => false,
        Some("ro") => true,
        Some(_) => {
            return Err(error(
                "stack supports the modes `ro` and `rw` only (not `z`, `Z`, `cached`, `delegated`, `consistent` or `nocopy`)",
            ))
        }
    };
    let source = match source {
        None => MountSource::Anonymous,
        Some(s) if s.starts_with('~') => {
            return Err(error("`~` is not expanded; write an absolute or `./` path"))
        }
        Some(s) if s.starts_with('/') => MountSource::Bind(normalize(Path::new(s))),
        Some(s) if s.starts_with("./") || s.starts_with("../") || s == "." || s == ".." => {
            MountSource::Bind(normalize(&project_dir.join(s)))
        }
        Some(s) => {
            let ok = s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
                && s.len() <= 128
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
            if !ok {
                return Err(error("a volume name uses letters, digits and `_.-`"));
            }
            MountSource::Volume(s.to_string())
        }
    };
    Ok(Mount {
        source,
        target,
        read_only,
    })
}

/// A container variable's value: tab and line feed pass (Compose keeps them), other
/// control characters are refused (Compose, the engine or the bundle's `.env` mangle them).
pub fn env_value(value: &Value) -> Result<(), Diagnostic> {
    let control = value
        .text
        .chars()
        .find(|c| c.is_control() && *c != '\t' && *c != '\n');
    match control {
        None => Ok(()),
        Some(c) => Err(bad(
            value,
            format!(
                "`{}` holds the control character U+{:04X}",
                value.key, c as u32
            ),
            "remove it; a value may hold tabs (`\\t`) and line breaks (`\\n`) only",
        )),
    }
}

pub fn restart(value: &Value) -> Result<String, Diagnostic> {
    let text = value.text.trim();
    let ok = matches!(text, "no" | "always" | "unless-stopped" | "on-failure")
        || text
            .strip_prefix("on-failure:")
            .is_some_and(|n| n.parse::<u32>().is_ok());
    checked(
        value,
        ok,
        format!(
            "`{}` must be a restart policy, not {}",
            value.key,
            value.show(text)
        ),
        "use `no`, `always`, `unless-stopped` or `on-failure[:N]`",
    )
}

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

/// Checks across services, once every service is read without error.
pub(crate) fn check(config: &mut Config, errors: &mut Errors) {
    check_dependencies(config, errors);
    if !errors.is_empty() {
        return;
    }
    check_cycle(config, errors);
    check_stopped_dependencies(config, errors);
    check_secret_var_names(config, errors);
    check_host_ports(config, errors);
    check_routes(config, errors);
    config.volumes = named_volumes(&config.services);
}

/// No two container variables share a name in the bundle's `.env`: they would swap
/// secrets. Every variable is checked, secret or not here, since a value may be a secret
/// in another environment.
fn check_secret_var_names(config: &Config, errors: &mut Errors) {
    let mut seen: BTreeMap<String, (&Service, &str)> = BTreeMap::new();
    for service in config.services.iter().filter(|s| s.is_container()) {
        for var in service.env.keys() {
            let name = super::keys::secret_var(&service.name, var);
            match seen.get(&name) {
                Some((other, other_var)) if other.name != service.name => {
                    errors.push(
                        Diagnostic::new(format!(
                            "services `{}` and `{}` both keep a variable as `{name}` in the bundle's `.env` (`{other_var}` and `{var}`)",
                            other.name, service.name
                        ))
                        .with_span(service.span.clone().or_else(|| other.span.clone()))
                        .hint("rename one of the services (avoid `--`) or one of the variables (avoid `__`)"),
                    );
                }
                Some(_) => {}
                None => {
                    seen.insert(name, (service, var));
                }
            }
        }
    }
}

/// Every `DEPENDS_ON` names another service of this environment that runs in Docker.
fn check_dependencies(config: &Config, errors: &mut Errors) {
    let names: BTreeSet<&str> = config.services.iter().map(|s| s.name.as_str()).collect();
    let upstreams: BTreeSet<&str> = config
        .services
        .iter()
        .filter(|s| !s.is_container())
        .map(|s| s.name.as_str())
        .collect();
    for service in &config.services {
        for dependency in &service.depends_on {
            let hint = || match crate::error::nearest(dependency, names.iter().copied()) {
                Some(near) => format!("did you mean `{near}`?"),
                None => format!(
                    "services in `{}`: {}",
                    config.env,
                    names.iter().copied().collect::<Vec<_>>().join(", ")
                ),
            };
            if dependency == &service.name {
                errors.push(
                    Diagnostic::new(format!("service `{}` depends on itself", service.name))
                        .with_span(service.span_of("DEPENDS_ON")),
                );
            } else if !names.contains(dependency.as_str()) {
                errors.push(
                    Diagnostic::new(format!(
                        "service `{}` depends on unknown service `{dependency}` (not a service in `{}`)",
                        service.name, config.env
                    ))
                    .with_span(service.span_of("DEPENDS_ON"))
                    .hint(hint()),
                );
            } else if upstreams.contains(dependency.as_str()) {
                errors.push(
                    Diagnostic::new(format!(
                        "service `{}` depends on `{dependency}`, which is an `UPSTREAM` outside Docker",
                        service.name
                    ))
                    .with_span(service.span_of("DEPENDS_ON"))
                    .hint("remove it from `DEPENDS_ON`; stack cannot start or watch it"),
                );
            }
        }
    }
}

/// A service with `REPLICAS=0` never becomes ready, so no service can wait for it.
fn check_stopped_dependencies(config: &Config, errors: &mut Errors) {
    for dependency in config.services.iter().filter(|s| s.replicas == 0) {
        let waiting: Vec<String> = config
            .services
            .iter()
            .filter(|s| s.depends_on.contains(&dependency.name))
            .map(|s| format!("`{}`", s.name))
            .collect();
        if waiting.is_empty() {
            continue;
        }
        errors.push(
            Diagnostic::new(format!(
                "service `{}` has 0 replicas, but {} depend(s) on it and would wait forever",
                dependency.name,
                waiting.join(", ")
            ))
            .with_span(dependency.span_of("REPLICAS"))
            .hint(format!(
                "give `{}` a replica, or remove it from `DEPENDS_ON` of {}",
                dependency.name,
                waiting.join(", ")
            )),
        );
    }
}

/// `DEPENDS_ON` has no cycle.
fn check_cycle(config: &Config, errors: &mut Errors) {
    if let Some(cycle) = dependency_cycle(&config.services) {
        let first = config.services.iter().find(|s| s.name == cycle[0]);
        errors.push(
            Diagnostic::new(format!(
                "dependency cycle: {}",
                cycle
                    .iter()
                    .map(|s| format!("`{s}`"))
                    .collect::<Vec<_>>()
                    .join(" → ")
            ))
            .with_span(first.and_then(|s| s.span_of("DEPENDS_ON")))
            .hint("remove one of these from `DEPENDS_ON`"),
        );
    }
}

/// Host ports: the proxy's and every published one, each held once.
fn check_host_ports(config: &Config, errors: &mut Errors) {
    let mut held: BTreeMap<(u16, String), String> = BTreeMap::new();
    let proxied = config.services.iter().any(|s| !s.routes.is_empty());
    if config.proxy.kind != ProxyKind::None && proxied {
        held.insert(
            (config.proxy.http_port, "tcp".into()),
            "the proxy (`STACK_HTTP_PORT`)".into(),
        );
        if config.tls != Tls::Off {
            held.insert(
                (config.proxy.https_port, "tcp".into()),
                "the proxy (`STACK_HTTPS_PORT`)".into(),
            );
        }
    }
    for service in &config.services {
        for publish in &service.publish {
            for port in &publish.host_ports {
                let key = (*port, publish.protocol.clone());
                if let Some(owner) = held.get(&key) {
                    errors.push(
                        Diagnostic::new(format!(
                            "host port {port} of service `{}` is already published by {owner}",
                            service.name
                        ))
                        .with_span(service.span_of("PUBLISH"))
                        .hint("give one of them another host port"),
                    );
                } else {
                    held.insert(key, format!("service `{}`", service.name));
                }
            }
        }
    }
}

/// Routes: each host+path belongs to one service, and routes need a proxy.
fn check_routes(config: &Config, errors: &mut Errors) {
    let mut routes: BTreeMap<String, &str> = BTreeMap::new();
    for service in &config.services {
        for route in &service.routes {
            let key = route.to_string();
            if let Some(owner) = routes.get(&key) {
                errors.push(
                    Diagnostic::new(format!(
                        "route `{key}` of service `{}` is already claimed by service `{owner}`",
                        service.name
                    ))
                    .with_span(service.span_of("ROUTE"))
                    .hint("give one of them another host or path"),
                );
            } else {
                routes.insert(key, &service.name);
            }
        }
    }
    if config.proxy.kind == ProxyKind::None {
        if let Some(service) = config.services.iter().find(|s| !s.routes.is_empty()) {
            errors.push(
                Diagnostic::new(format!(
                    "service `{}` has routes but `STACK_PROXY` is `none`",
                    service.name
                ))
                .with_span(service.span_of("ROUTE"))
                .hint("set `STACK_PROXY=caddy` (or nginx), or publish the port with `PUBLISH`"),
            );
        }
    }
}

/// The named volumes the services mount, sorted.
fn named_volumes(services: &[Service]) -> Vec<String> {
    let mut volumes = BTreeSet::new();
    for service in services {
        for mount in &service.volumes {
            if let MountSource::Volume(name) = &mount.source {
                volumes.insert(name.clone());
            }
        }
    }
    volumes.into_iter().collect()
}

/// The first cycle in `DEPENDS_ON`, as a path that returns to its start.
fn dependency_cycle(services: &[Service]) -> Option<Vec<String>> {
    let graph: BTreeMap<&str, &[String]> = services
        .iter()
        .map(|s| (s.name.as_str(), s.depends_on.as_slice()))
        .collect();
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Active,
        Done,
    }
    let mut marks: BTreeMap<&str, Mark> = graph.keys().map(|k| (*k, Mark::New)).collect();
    fn visit<'a>(
        node: &'a str,
        graph: &BTreeMap<&'a str, &'a [String]>,
        marks: &mut BTreeMap<&'a str, Mark>,
        path: &mut Vec<&'a str>,
    ) -> Option<Vec<String>> {
        marks.insert(node, Mark::Active);
        path.push(node);
        for next in graph.get(node).copied().unwrap_or_default() {
            match marks.get(next.as_str()).copied() {
                Some(Mark::Active) => {
                    let start = path.iter().position(|p| *p == next).unwrap_or(0);
                    let mut cycle: Vec<String> =
                        path[start..].iter().map(|s| s.to_string()).collect();
                    cycle.push(next.clone());
                    return Some(cycle);
                }
                Some(Mark::New) => {
                    if let Some(cycle) = visit(next, graph, marks, path) {
                        return Some(cycle);
                    }
                }
                _ => {}
            }
        }
        path.pop();
        marks.insert(node, Mark::Done);
        None
    }
    for service in services {
        if marks.get(service.name.as_str()) == Some(&Mark::New) {
            if let Some(cycle) = visit(&service.name, &graph, &mut marks, &mut Vec::new()) {
                return Some(cycle);
            }
        }
    }
    None
}

/// Findings that do not stop a build.
pub(crate) fn warnings(config: &Config) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for service in &config.services {
        if service.strategy == Strategy::Rolling && service.health.is_none() {
            out.push(Diagnostic::new(format!(
                "service `{}` uses the `rolling` strategy without a health check; a new container counts as ready once it runs",
                service.name
            )));
        }
    }
    out
}
