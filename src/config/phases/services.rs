//! The services: built from their attributes, filtered to the environment, and
//! Mailpit's routes closed where nothing guards them.

use std::collections::BTreeMap;

use super::names::{Declared, EnabledPresets};
use crate::config::keys::ServiceAttr;
use crate::config::lookup::Errors;
use crate::config::model::Service;
use crate::config::presets::{Preset, PresetService};
use crate::config::{service, Options};
use crate::error::{Diagnostic, Warning, WarningKind};

/// Every service: the declared ones in order, then the enabled presets'.
pub(super) fn build_services(
    context: &service::Context,
    declared: &Declared,
    enabled: &EnabledPresets,
    preset_services: Vec<(&'static Preset, &'static PresetService)>,
    mut attrs: BTreeMap<String, Vec<(ServiceAttr, &str)>>,
    errors: &mut Errors,
) -> Vec<Service> {
    let mut services = Vec::new();
    for name in &declared.names {
        let service_attrs = attrs.remove(name).unwrap_or_default();
        let span = declared.spans.get(name).cloned().flatten();
        services.extend(service::build(
            context,
            name,
            None,
            &service_attrs,
            span,
            errors,
        ));
    }
    for (preset, preset_service) in preset_services {
        let service_attrs = attrs.remove(preset_service.name).unwrap_or_default();
        services.extend(service::build(
            context,
            preset_service.name,
            Some((preset, preset_service)),
            &service_attrs,
            enabled.spans[preset.name].clone(),
            errors,
        ));
    }
    services
}

/// The services that run in `env`: `ENVIRONMENTS` lists it (or is unset), and a
/// `FRONTEND` service runs in prod only when the command asks for it.
pub(in crate::config) fn in_environment(
    services: Vec<Service>,
    env: &str,
    options: &Options,
) -> Vec<Service> {
    services
        .into_iter()
        .filter(|service| {
            let in_env = service
                .environments
                .as_ref()
                .is_none_or(|envs| envs.iter().any(|e| e == env));
            let frontend_ok = !service.frontend || env != "prod" || options.include_frontends;
            in_env && frontend_ok
        })
        .collect()
}

/// Mailpit's UI shows every mail the environment sends (password resets, invitations):
/// outside dev it is routed only behind a gate of its own (`AUTH` or `BASIC_AUTH`).
/// Without one its routes are dropped, with a warning saying how to open them.
pub(super) fn close_mailpit(services: &mut [Service], env: &str) -> Vec<Warning> {
    let mut out = Vec::new();
    if env == "dev" {
        return out;
    }
    for service in services.iter_mut().filter(|s| s.preset == Some("MAILPIT")) {
        if service.routes.is_empty() || service.auth.is_some() || service.basic_auth.is_some() {
            continue;
        }
        let prefix = crate::config::keys::service_key_name(&service.name);
        let routes: Vec<String> = service.routes.iter().map(|r| format!("`{r}`")).collect();
        out.push(Warning::new(
            WarningKind::UnguardedMailpit,
            format!("SERVICE_{prefix}_ROUTE"),
            Diagnostic::new(format!(
                "`{}` is not routed in `{env}`: its UI shows every mail the environment sends, and no login guards it ({} left out)",
                service.name,
                routes.join(", ")
            ))
            .with_span(service.span_of("ROUTE"))
            .hint(format!(
                "to reach it, set `SERVICE_{prefix}_BASIC_AUTH=user:KEY` (a bcrypt hash in secrets.env) or `SERVICE_{prefix}_AUTH` in `environments/{env}/stack.env`; or reach it through an SSH tunnel"
            )),
        ));
        service.routes.clear();
    }
    out
}
