//! What the namespaces and host attributes (`NETWORK_MODE`, `PID`, `IPC`, `DEVICES`, …)
//! change in a service, and the combinations they refuse: a container in another
//! network namespace has no network of the project, so it cannot be routed, publish
//! ports or have aliases; swarm has none of most of them.

use super::*;
use crate::config::attrs::Namespace;

/// Apply `NETWORK_MODE`, `PID` and `IPC` to the service (another service's namespace is a
/// dependency on it; a network mode takes the service off the project's networks) and
/// refuse what cannot go with them.
pub(super) fn apply(
    service: &mut Service,
    prefix: &str,
    map: &AttrMap,
    target: Target,
    errors: &mut Errors,
) {
    let options = &service.options;
    let shared: Vec<String> = [&options.network_mode, &options.pid, &options.ipc]
        .into_iter()
        .flatten()
        .filter_map(|n| n.service().map(str::to_string))
        .collect();
    for name in shared {
        if !service.depends_on.contains(&name) {
            service.depends_on.push(name);
        }
    }
    let decl = |attr: &str| {
        map.get(attr)
            .and_then(|a| a.value.span.cloned())
            .or_else(|| service.span.clone())
    };
    if target == Target::Swarm {
        swarm_refusals(service, prefix, &decl, errors);
    }
    swap_needs_memory(service, prefix, &decl, errors);
    let Some(mode) = service.options.network_mode.clone() else {
        return;
    };
    network_mode_conflicts(service, prefix, map, &mode, errors);
    service.networks.clear();
    if get(map, "STRATEGY").is_none() {
        // A rolling update hands the service's DNS name over on a network it is not on.
        service.strategy = Strategy::Recreate;
    }
}

/// The attributes that cannot go with `NETWORK_MODE=mode`.
fn network_mode_conflicts(
    service: &Service,
    prefix: &str,
    map: &AttrMap,
    mode: &Namespace,
    errors: &mut Errors,
) {
    let joins_other = matches!(mode, Namespace::Service(_) | Namespace::Container(_));
    let mut conflicts: Vec<(&str, &str)> = vec![
        ("NETWORKS", "it is on no network of the project"),
        (
            "ALIASES",
            "it is on no network of the project, so no name reaches it",
        ),
        ("MAC_ADDRESS", "it has no network endpoint of its own"),
        (
            "ROUTE",
            "the proxy reaches services by name on the project's networks",
        ),
    ];
    if get(map, "STRATEGY").is_some() && service.strategy == Strategy::Rolling {
        conflicts.push((
            "STRATEGY",
            "a rolling update moves the service's name on the project's networks",
        ));
    }
    if *mode != Namespace::Bridge {
        conflicts.push((
            "PUBLISH",
            "only a container with a network of its own publishes ports (with `host`, it listens on the host's ports already)",
        ));
    }
    if joins_other {
        for attr in [
            "HOSTNAME",
            "DOMAINNAME",
            "DNS",
            "DNS_SEARCH",
            "DNS_OPT",
            "EXTRA_HOSTS",
        ] {
            conflicts.push((
                attr,
                "it shares the other container's network, host name and resolver",
            ));
        }
    }
    for (attr, why) in conflicts {
        let Some(set) = map.get(attr).filter(|a| a.from_project) else {
            continue;
        };
        errors.push(
            Diagnostic::new(format!(
                "service `{}` has `SERVICE_{prefix}_NETWORK_MODE={mode}`, which cannot go with `{attr}`: {why}",
                service.name
            ))
            .with_span(set.value.span.cloned().or_else(|| service.span.clone()))
            .hint(format!(
                "remove `SERVICE_{prefix}_{attr}`, or `NETWORK_MODE` to put the service on the project's networks"
            )),
        );
    }
}

/// `MEMORY_SWAP_MB` is memory plus swap: it needs `MEMORY_MB`, and at least as much.
fn swap_needs_memory(
    service: &Service,
    prefix: &str,
    decl: &dyn Fn(&str) -> Option<Span>,
    errors: &mut Errors,
) {
    let Some(swap) = service.options.memory_swap_mb.filter(|s| *s != -1) else {
        return;
    };
    let memory = service.memory_mb.and_then(|m| i64::try_from(m).ok());
    if memory.is_some_and(|m| swap >= m) {
        return;
    }
    errors.push(
        Diagnostic::new(format!(
            "service `{}` has `SERVICE_{prefix}_MEMORY_SWAP_MB={swap}`, which is memory plus swap and needs `MEMORY_MB` at most that much",
            service.name
        ))
        .with_span(decl("MEMORY_SWAP_MB"))
        .hint(format!(
            "set `SERVICE_{prefix}_MEMORY_MB` (the engine refuses swap without a memory limit), or `-1` for unlimited swap"
        )),
    );
}

/// The attributes swarm has no field for: refused at their line.
fn swarm_refusals(
    service: &Service,
    prefix: &str,
    decl: &dyn Fn(&str) -> Option<Span>,
    errors: &mut Errors,
) {
    let options = &service.options;
    let relabelled = options
        .mount_options
        .iter()
        .find(|(_, o)| o.relabel.is_some());
    if let Some((target, _)) = relabelled {
        errors.push(
            Diagnostic::new(format!(
                "service `{}` relabels its mount at `{target}` (`z`/`Z` in `SERVICE_{prefix}_VOLUMES`), which swarm cannot apply",
                service.name
            ))
            .with_span(decl("VOLUMES"))
            .hint("swarm mounts have no SELinux relabelling: label the host folder yourself (`chcon -Rt container_file_t DIR`) and remove `z`/`Z`, or use `STACK_TARGET=compose`"),
        );
    }
    let set = [
        ("DEVICES", !options.devices.is_empty()),
        ("NETWORK_MODE", options.network_mode.is_some()),
        ("CPU_SHARES", options.cpu_shares.is_some()),
        ("CPUSET", options.cpuset.is_some()),
        ("MEMORY_SWAP_MB", options.memory_swap_mb.is_some()),
        ("MEMORY_SWAPPINESS", options.memory_swappiness.is_some()),
        ("PID", options.pid.is_some()),
        ("IPC", options.ipc.is_some()),
        ("DOMAINNAME", options.domainname.is_some()),
        ("MAC_ADDRESS", options.mac_address.is_some()),
        ("RUNTIME", options.runtime.is_some()),
        ("USERNS_MODE", options.userns_mode.is_some()),
        ("CGROUP", options.cgroup.is_some()),
    ];
    for (attr, _) in set.iter().filter(|(_, set)| *set) {
        errors.push(
            Diagnostic::new(format!(
                "service `{}` has `SERVICE_{prefix}_{attr}`, which swarm cannot apply",
                service.name
            ))
            .with_span(decl(attr))
            .hint(format!(
                "swarm services have no `{attr}`; remove it or use `STACK_TARGET=compose`"
            )),
        );
    }
}

#[cfg(test)]
mod tests {
    use crate::config::attrs::Namespace;
    use crate::error::{Diagnostic, Error};

    const BASE: &str = "STACK_PROJECT=shop\nSTACK_SERVICES=vpn,app\n\
        SERVICE_VPN_IMAGE=vpn:1\nSERVICE_APP_IMAGE=app:1\n";

    fn errors(extra: &str) -> Vec<Diagnostic> {
        match crate::config::tests::load_text(&format!("{BASE}{extra}"), "dev") {
            Err(Error::Invalid(diagnostics)) => diagnostics,
            other => panic!("accepted or another error: {:?}", other.map(|_| ())),
        }
    }

    /// `service:NAME` is a dependency on NAME, takes the service off the project's
    /// networks and makes it `recreate`.
    #[test]
    fn another_services_network_is_a_dependency_and_no_network() {
        let loaded = crate::config::tests::load_text(
            &format!("{BASE}SERVICE_APP_NETWORK_MODE=service:vpn\nSERVICE_APP_PID=service:vpn\nSERVICE_APP_HEALTH_CMD=true\n"),
            "dev",
        )
        .unwrap();
        let app = loaded
            .config
            .services
            .iter()
            .find(|s| s.name == "app")
            .unwrap();
        assert_eq!(
            app.options.network_mode,
            Some(Namespace::Service("vpn".into()))
        );
        assert_eq!(app.depends_on, ["vpn"]);
        assert!(app.networks.is_empty());
        assert_eq!(app.strategy, crate::config::Strategy::Recreate);
    }

    /// What cannot go with a network mode is refused at its own line, saying why.
    #[test]
    fn a_network_mode_refuses_ports_routes_and_aliases_at_their_line() {
        let errors = errors(
            "SERVICE_APP_NETWORK_MODE=host\nSERVICE_APP_PUBLISH=80:80\nSERVICE_APP_ALIASES=web\n",
        );
        assert_eq!(errors.len(), 2, "{errors:?}");
        let line = |attr: &str| {
            let error = errors.iter().find(|e| e.message.contains(attr)).unwrap();
            error.span.as_ref().unwrap().line
        };
        assert_eq!(line("cannot go with `PUBLISH`"), 6);
        assert_eq!(line("cannot go with `ALIASES`"), 7);
        let shared =
            self::errors("SERVICE_APP_NETWORK_MODE=container:gw\nSERVICE_APP_DNS=1.1.1.1\n");
        assert!(
            shared[0].message.contains("cannot go with `DNS`"),
            "{shared:?}"
        );
        // The engine's bridge publishes ports.
        crate::config::tests::load_text(
            &format!("{BASE}SERVICE_APP_NETWORK_MODE=bridge\nSERVICE_APP_PUBLISH=80:80\n"),
            "dev",
        )
        .unwrap();
    }

    #[test]
    fn another_services_namespace_must_exist() {
        let errors = errors("SERVICE_APP_IPC=service:nothing\n");
        assert!(
            errors.iter().any(|e| e.message.contains("nothing")),
            "{errors:?}"
        );
    }

    #[test]
    fn swap_needs_a_memory_limit_below_it() {
        let errors = errors("SERVICE_APP_MEMORY_SWAP_MB=512\n");
        assert!(
            errors[0].message.contains("needs `MEMORY_MB`"),
            "{errors:?}"
        );
        let errors = self::errors("SERVICE_APP_MEMORY_MB=1024\nSERVICE_APP_MEMORY_SWAP_MB=512\n");
        assert_eq!(errors[0].span.as_ref().unwrap().line, 6, "{errors:?}");
        crate::config::tests::load_text(&format!("{BASE}SERVICE_APP_MEMORY_SWAP_MB=-1\n"), "dev")
            .unwrap();
    }

    /// Swarm has no field for most of them: each is refused at its line.
    #[test]
    fn swarm_refuses_what_it_cannot_apply() {
        let errors = errors(
            "STACK_TARGET=swarm\nSERVICE_APP_CPUSET=0-1\nSERVICE_APP_PID=host\nSERVICE_APP_DNS=1.1.1.1\n",
        );
        let messages: Vec<&str> = errors.iter().map(|e| e.message.as_str()).collect();
        assert_eq!(messages.len(), 2, "{messages:?}");
        assert!(messages[0].contains("`SERVICE_APP_CPUSET`, which swarm cannot apply"));
        assert!(messages[1].contains("`SERVICE_APP_PID`, which swarm cannot apply"));
        let errors = self::errors(
            "STACK_TARGET=swarm\nSERVICE_APP_CGROUP=host\nSERVICE_APP_PULL_POLICY=never\n",
        );
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors[0]
            .message
            .contains("`SERVICE_APP_CGROUP`, which swarm cannot apply"));
        assert!(errors[1]
            .message
            .contains("`SERVICE_APP_PULL_POLICY=never` cannot hold on swarm"));
        assert_eq!(errors[1].span.as_ref().unwrap().line, 7, "{errors:?}");
    }

    /// `PULL_POLICY=build` needs `BUILD`; a built service pulls nothing, so `always` and
    /// `never` are refused there, at the key's line.
    #[test]
    fn pull_policy_fits_how_the_image_is_made() {
        let errors = errors("SERVICE_APP_PULL_POLICY=build\n");
        assert!(errors[0].message.contains("has no `BUILD`"), "{errors:?}");
        assert_eq!(errors[0].span.as_ref().unwrap().line, 5);
        let errors = self::errors("SERVICE_APP_BUILD=.\nSERVICE_APP_PULL_POLICY=always\n");
        assert!(
            errors[0].message.contains("the service is built"),
            "{errors:?}"
        );
        let loaded = crate::config::tests::load_text(
            &format!("{BASE}SERVICE_APP_PULL_POLICY=never\nSERVICE_VPN_CGROUP=private\n"),
            "dev",
        )
        .unwrap();
        let service = |name: &str| {
            loaded
                .config
                .services
                .iter()
                .find(|s| s.name == name)
                .unwrap()
                .options
                .clone()
        };
        assert_eq!(
            service("app").pull_policy,
            Some(crate::config::attrs::image::PullPolicy::Never)
        );
        assert_eq!(service("vpn").cgroup.as_deref(), Some("private"));
    }
}
