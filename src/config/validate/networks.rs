//! Checks of what services are attached to, across the project: every network a service
//! joins is declared, a service that publishes ports can reach the outside, and a gate in
//! front of routes (`AUTH`, `BASIC_AUTH`) has routes to guard.

use crate::config::lookup::Errors;
use crate::config::model::*;
use crate::error::Diagnostic;

pub(super) fn check_attachments(config: &Config, errors: &mut Errors) {
    for service in config.services.iter().filter(|s| s.is_container()) {
        let prefix = crate::config::keys::service_key_name(&service.name);
        let mut all_internal = true;
        for name in &service.networks {
            let declared = config.networks.iter().find(|n| &n.name == name);
            if declared.is_none() && name != DEFAULT_NETWORK {
                errors.push(
                    Diagnostic::new(format!(
                        "service `{}` joins the network `{name}`, which `STACK_NETWORKS` does not declare",
                        service.name
                    ))
                    .with_span(service.span_of("NETWORKS"))
                    .hint(format!("add `{name}` to `STACK_NETWORKS` (e.g. `STACK_NETWORKS={name}` or `{name}:internal`)")),
                );
            }
            all_internal &= declared.is_some_and(|n| n.internal);
        }
        // A service with `NETWORK_MODE` is on none of them.
        if all_internal && !service.networks.is_empty() && !service.ports.is_empty() {
            errors.push(
                Diagnostic::new(format!(
                    "service `{}` publishes ports but is only on internal networks",
                    service.name
                ))
                .with_span(service.span_of("PUBLISH"))
                .hint(format!("an internal network has no way in or out; add a network that is not internal to `SERVICE_{prefix}_NETWORKS`, or drop `PUBLISH`")),
            );
        }
        for (attr, set) in [
            ("AUTH", service.auth.is_some()),
            ("BASIC_AUTH", service.basic_auth.is_some()),
        ] {
            if set && service.routes.is_empty() {
                errors.push(
                    Diagnostic::new(format!(
                        "`SERVICE_{prefix}_{attr}` is set but the service has no `ROUTE`"
                    ))
                    .with_span(service.span_of(attr))
                    .hint("the proxy checks requests on the routes it serves; add a `ROUTE` or drop the key"),
                );
            }
        }
        if let Some(auth) = &service.auth {
            check_auth_service(config, service, auth, errors);
        }
        if service.auth.is_some() && service.basic_auth.is_some() {
            errors.push(
                Diagnostic::new(format!(
                    "`SERVICE_{prefix}_AUTH` and `SERVICE_{prefix}_BASIC_AUTH` are both set"
                ))
                .with_span(service.span_of("BASIC_AUTH"))
                .hint("choose one gate: single sign-on (`AUTH`) or a password (`BASIC_AUTH`)"),
            );
        }
    }
}

/// `AUTH` names a service of the project that runs in this environment: the proxy asks it
/// by that name, and a name it cannot resolve fails every request at run time.
fn check_auth_service(config: &Config, service: &Service, auth: &ForwardAuth, errors: &mut Errors) {
    if config.services.iter().any(|s| s.name == auth.host) {
        return;
    }
    let prefix = crate::config::keys::service_key_name(&service.name);
    let names = config.services.iter().map(|s| s.name.as_str());
    let hint = match crate::error::nearest(&auth.host, names.clone()) {
        Some(near) => format!("did you mean `{near}`? `AUTH` is `service:port/path`"),
        None => format!(
            "declare the identity provider's service in `STACK_SERVICES` (services in `{}`: {})",
            config.env,
            names.collect::<Vec<_>>().join(", ")
        ),
    };
    errors.push(
        Diagnostic::new(format!(
            "`SERVICE_{prefix}_AUTH` names the service `{}`, which is not a service of the project in `{}`",
            auth.host, config.env
        ))
        .with_span(service.span_of("AUTH"))
        .hint(hint),
    );
}
