//! The checks across services, once every service is read: dependencies and their
//! cycles, the bundle's variable names, host ports, routes; the named volumes; warnings.

use std::collections::{BTreeMap, BTreeSet};

use crate::config::lookup::Errors;
use crate::config::model::*;
use crate::error::{Diagnostic, Warning, WarningKind};

/// Checks across services, once every service is read without error.
pub(crate) fn check(config: &mut Config, errors: &mut Errors) {
    check_dependencies(config, errors);
    if !errors.is_empty() {
        return;
    }
    check_cycle(config, errors);
    check_stopped_dependencies(config, errors);
    check_jobs(config, errors);
    check_completed_dependencies(config, errors);
    check_secret_var_names(config, errors);
    check_host_ports(config, errors);
    check_routes(config, errors);
    super::networks::check_attachments(config, errors);
    config.volumes = named_volumes(&config.services);
}

/// No two container variables share a name in the bundle's `.env`: they would swap
/// secrets. Every variable is checked, secret or not here, since a value may be a secret
/// in another environment.
fn check_secret_var_names(config: &Config, errors: &mut Errors) {
    let mut seen: BTreeMap<String, (&Service, &str)> = BTreeMap::new();
    for service in config.services.iter().filter(|s| s.is_container()) {
        for var in service.env.keys() {
            let name = crate::config::keys::secret_var(&service.name, var);
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

/// A scheduled job (`SCHEDULE`) never runs as a long-running container: no service can
/// wait for it, and nothing can route or publish to it.
fn check_jobs(config: &Config, errors: &mut Errors) {
    for job in config.services.iter().filter(|s| s.schedule.is_some()) {
        for service in config.services.iter() {
            if service.depends_on.contains(&job.name) {
                errors.push(
                    Diagnostic::new(format!(
                        "service `{}` depends on `{}`, a scheduled job that never runs as a container",
                        service.name, job.name
                    ))
                    .with_span(service.span_of("DEPENDS_ON"))
                    .hint(format!("remove `{}` from `DEPENDS_ON`", job.name)),
                );
            }
        }
        let reached = [
            ("ROUTE", !job.routes.is_empty()),
            ("PUBLISH", !job.ports.is_empty()),
        ];
        for (attr, set) in reached {
            if set {
                errors.push(
                    Diagnostic::new(format!(
                        "job `{}` has `{attr}`, but a scheduled job has no long-running container to reach",
                        job.name
                    ))
                    .with_span(job.span_of(attr))
                    .hint("remove it, or make the service a long-running one (no `SCHEDULE`)"),
                );
            }
        }
    }
}

/// A `name:completed` dependency is a one-shot job: one container, never restarted,
/// waited for the same way by every service that depends on it, not on swarm.
fn check_completed_dependencies(config: &Config, errors: &mut Errors) {
    let mut reported: BTreeSet<&str> = BTreeSet::new();
    for service in &config.services {
        for name in &service.depends_completed {
            if config.target == Target::Swarm {
                errors.push(
                    Diagnostic::new(format!(
                        "service `{}` waits for `{name}` to complete (`{name}:completed`), which stack cannot do on swarm",
                        service.name
                    ))
                    .with_span(service.span_of("DEPENDS_ON"))
                    .hint("swarm restarts a task that exits and has no order of start; run the job with `stack run`, or use `STACK_TARGET=compose`"),
                );
                continue;
            }
            let Some(job) = config.services.iter().find(|s| &s.name == name) else {
                continue;
            };
            if !reported.insert(job.name.as_str()) {
                continue;
            }
            let key = crate::config::keys::service_key_name(&job.name);
            if job.replicas > 1 {
                errors.push(
                    Diagnostic::new(format!(
                        "service `{name}` has {} replicas, but `{}` waits for it to complete (`{name}:completed`)",
                        job.replicas, service.name
                    ))
                    .with_span(job.span_of("REPLICAS"))
                    .hint(format!("a job that runs to completion runs once: remove `SERVICE_{key}_REPLICAS` or set it to 1")),
                );
            }
            if job.restart != Restart::No {
                errors.push(
                    Diagnostic::new(format!(
                        "service `{name}` restarts (`{}`), but `{}` waits for it to complete (`{name}:completed`)",
                        job.restart, service.name
                    ))
                    .with_span(job.span_of("RESTART"))
                    .hint(format!("a job that is restarted never stays completed: add `SERVICE_{key}_RESTART=no`")),
                );
            }
            let ready: Vec<String> = config
                .services
                .iter()
                .filter(|s| s.depends_on.contains(name) && !s.depends_completed.contains(name))
                .map(|s| format!("`{}`", s.name))
                .collect();
            if !ready.is_empty() {
                errors.push(
                    Diagnostic::new(format!(
                        "`{}` waits for `{name}` to complete, but {} wait(s) for it to be ready",
                        service.name,
                        ready.join(", ")
                    ))
                    .with_span(service.span_of("DEPENDS_ON"))
                    .hint(format!("a job is waited for one way: write `{name}:completed` in every `DEPENDS_ON` that names it")),
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
        for publish in &service.ports {
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
        for mount in &service.mounts {
            if let Mount::Volume { name, .. } = mount {
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
pub(crate) fn warnings(config: &Config) -> Vec<Warning> {
    let mut out = Vec::new();
    for service in &config.services {
        if service.strategy == Strategy::Rolling && service.health.is_none() {
            let prefix = crate::config::keys::service_key_name(&service.name);
            out.push(Warning::new(
                WarningKind::RollingWithoutHealth,
                format!("SERVICE_{prefix}_STRATEGY"),
                Diagnostic::new(format!(
                    "service `{}` uses the `rolling` strategy without a health check; a new container counts as ready once it runs",
                    service.name
                ))
                .with_span(service.span_of("STRATEGY")),
            ));
        }
    }
    out
}
