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

/// An image reference: `[registry/]name[:tag][@digest]`, no blanks or shell characters.
pub fn image(value: &Value) -> Result<String, Diagnostic> {
    let text = value.text.trim();
    let ok = !text.is_empty()
        && text.len() <= 512
        && text
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-/:@".contains(c))
        && !text.ends_with(':')
        && !text.ends_with('/');
    checked(
        value,
        ok,
        format!(
            "`{}` is not a valid image reference: {}",
            value.key,
            value.quoted()
        ),
        "write `repository:tag`, e.g. `postgres:16-alpine` or `ghcr.io/acme/api:1.4.2`",
    )
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
    let path = if path.len() > 1 {
        path.trim_end_matches('/').to_string()
    } else {
        path
    };
    Ok(Route { host, path })
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
    let read_only = match mode {
        None => false,
        Some(mode) => {
            let flags: Vec<&str> = mode.split(',').collect();
            if !flags.iter().all(|f| {
                [
                    "ro",
                    "rw",
                    "z",
                    "Z",
                    "cached",
                    "delegated",
                    "consistent",
                    "nocopy",
                ]
                .contains(f)
            }) {
                return Err(error("unknown mode; use `ro` or `rw`"));
            }
            flags.contains(&"ro")
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
        target: target.to_string(),
        read_only,
    })
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
