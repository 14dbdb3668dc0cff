//! Checks across a service's attributes: combinations that cannot go together, and
//! attributes that only an upstream (a route's target) may have.

use super::*;

/// Attributes that cannot go together, or that need another one.
pub(super) fn check_combinations(
    service: &Service,
    prefix: &str,
    map: &AttrMap,
    target: Target,
    errors: &mut Errors,
) {
    let name = &service.name;
    // Where `attr` is set, else where the service is declared.
    let decl = |attr: &str| {
        map.get(attr)
            .and_then(|a| a.value.span.cloned())
            .or_else(|| service.span.clone())
    };
    if service.upstream.is_some() {
        check_upstream_only(service, prefix, map, errors);
    } else if service.image.is_none()
        && service.build.is_none()
        && get(map, "IMAGE").is_none()
        && get(map, "BUILD").is_none()
    {
        errors.push(
            Diagnostic::new(format!(
                "service `{name}` has none of `SERVICE_{prefix}_IMAGE`, `SERVICE_{prefix}_BUILD` or `SERVICE_{prefix}_UPSTREAM`"
            ))
            .with_span(service.span.clone())
            .hint(format!("add `SERVICE_{prefix}_IMAGE=repository:tag`")),
        );
    }
    if !service.routes.is_empty() && service.port.is_none() && service.upstream.is_none() {
        errors.push(
            Diagnostic::new(format!(
                "service `{name}` has a route but no port for the proxy to reach"
            ))
            .with_span(decl("ROUTE"))
            .hint(format!(
                "add `SERVICE_{prefix}_PORT` with the port the container listens on"
            )),
        );
    }
    // Swarm's routing mesh lets several tasks share a published port; one VM cannot.
    let swarm = target == Target::Swarm;
    if service.strategy == Strategy::Rolling && !service.ports.is_empty() && !swarm {
        errors.push(
            Diagnostic::new(format!(
                "service `{name}` publishes host ports, so it cannot use the `rolling` strategy"
            ))
            .with_span(decl("STRATEGY"))
            .hint("two containers cannot hold one host port: route it through the proxy, or use `recreate`"),
        );
    }
    check_drain(service, prefix, swarm, decl("DRAIN"), errors);
    check_pull_policy(service, prefix, swarm, decl("PULL_POLICY"), errors);
    if swarm && service.options.gpus.is_some() {
        errors.push(
            Diagnostic::new(format!(
                "service `{name}` has `SERVICE_{prefix}_GPUS`, which stack cannot apply on swarm"
            ))
            .with_span(decl("GPUS"))
            .hint("swarm reserves GPUs as generic node resources, which stack does not configure; remove `GPUS` or use `STACK_TARGET=compose`"),
        );
    }
    if swarm {
        options::swarm_refusals(service, prefix, &decl, errors);
    }
    let fixed_ports = service.ports.iter().any(|p| !p.host_ports.is_empty());
    if service.replicas > 1 && !swarm && fixed_ports {
        errors.push(
            Diagnostic::new(format!(
                "service `{name}` has {} replicas but publishes fixed host ports",
                service.replicas
            ))
            .with_span(decl("REPLICAS"))
            .hint("route it through the proxy instead of publishing, or use one replica"),
        );
    }
}

/// An `UPSTREAM` service is not a container: the project cannot set container attributes.
pub(super) fn check_upstream_only(
    service: &Service,
    prefix: &str,
    map: &AttrMap,
    errors: &mut Errors,
) {
    let container_only = crate::config::catalogue::ATTRIBUTES
        .iter()
        .filter(|k| k.container)
        .flat_map(|k| k.names.iter().copied())
        .filter(|n| !n.contains('<'));
    for attr in container_only {
        let Some(set) = map.get(attr).filter(|a| a.from_project) else {
            continue;
        };
        errors.push(
            Diagnostic::new(format!(
                "service `{}` has `SERVICE_{prefix}_UPSTREAM`, so it is not a container and cannot have `{attr}`",
                service.name
            ))
            .with_span(set.value.span.cloned().or_else(|| service.span.clone()))
            .hint(format!("remove `SERVICE_{prefix}_{attr}` or `SERVICE_{prefix}_UPSTREAM`")),
        );
    }
}

/// `PULL_POLICY=build` needs `BUILD`, which pulls nothing (`always`, `never` refused);
/// swarm's nodes pull an image they lack, so `never` cannot hold there.
fn check_pull_policy(
    service: &Service,
    prefix: &str,
    swarm: bool,
    span: Option<Span>,
    errors: &mut Errors,
) {
    use crate::config::attrs::image::PullPolicy;
    let Some(policy) = service.options.pull_policy else {
        return;
    };
    let key = format!("SERVICE_{prefix}_PULL_POLICY");
    let refusal = match (policy, service.build.is_some()) {
        (PullPolicy::Build, false) => Some((
            format!("`{key}=build` builds the image, but the service has no `BUILD`"),
            format!("add `SERVICE_{prefix}_BUILD=./path`, or write `always` or `missing` for an image from a registry"),
        )),
        (PullPolicy::Always | PullPolicy::Never, true) => Some((
            format!("`{key}={}` is for a pulled image, and the service is built (`BUILD`)", policy.compose()),
            "write `build` to build at every `start` and `deploy`, or remove it: a built image is built when it is missing".to_string(),
        )),
        (PullPolicy::Never, false) if swarm => Some((
            format!("`{key}=never` cannot hold on swarm: a node pulls an image it lacks"),
            "remove it (the manager pulls a missing image and the release pins it), or use `STACK_TARGET=compose`".to_string(),
        )),
        _ => None,
    };
    if let Some((message, hint)) = refusal {
        errors.push(
            Diagnostic::new(format!("service `{}`: {message}", service.name))
                .with_span(span)
                .hint(hint),
        );
    }
}

/// `DRAIN` is a rolling update's, on one engine: refused with `recreate` and on swarm.
fn check_drain(
    service: &Service,
    prefix: &str,
    swarm: bool,
    span: Option<Span>,
    errors: &mut Errors,
) {
    if service.drain.is_none() || (service.strategy == Strategy::Rolling && !swarm) {
        return;
    }
    let (why, hint) = if swarm {
        (
            "swarm stops a replaced task with its `STOP_GRACE`".to_string(),
            "set `STOP_GRACE` to how long open connections may stay, and remove `DRAIN`"
                .to_string(),
        )
    } else {
        (
            "it is replaced by `recreate`, which stops the old container first".to_string(),
            format!(
                "set `SERVICE_{prefix}_STRATEGY=rolling` (it needs `HEALTH` and no `PUBLISH`), or remove `DRAIN`"
            ),
        )
    };
    errors.push(
        Diagnostic::new(format!(
            "service `{}` has `SERVICE_{prefix}_DRAIN`, which only a rolling update on one engine uses: {why}",
            service.name
        ))
        .with_span(span)
        .hint(hint),
    );
}
