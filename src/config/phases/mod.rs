//! The typed configuration from resolved values, in named phases: project and globals
//! → presets → declared services → classify keys → secrets → services → environment
//! filter → cross-service checks. Each phase reports into [`Errors`] and the build
//! goes on, so one run lists every problem it can find.

mod classify;
mod names;
mod project;
mod secrets;
mod services;

use std::collections::BTreeMap;

pub(super) use classify::classify_keys;
#[cfg(test)]
pub(super) use classify::Unknown;
use classify::{ambiguous_keys, report_unknown};
use names::{Declared, EnabledPresets, ServiceNames};
use project::{check_stack_env, read_project};
use secrets::{probe_secret_names, secret_layer_keys, secret_names, secret_specs};
pub(super) use services::in_environment;
use services::{build_services, close_mailpit};

use super::globals::{read_server, Globals};
use super::keys::ServiceIndex;
use super::lookup::{Errors, Keys};
use super::model::*;
use super::presets;
use super::{service, validate, Options};
use crate::error::{Error, Result, Warning};
use crate::project::{Resolved, Sources};

/// Build the configuration of `sources` from its resolved values, or every error found.
pub(super) fn build(
    sources: &Sources,
    resolved: &Resolved,
    builtins: &BTreeMap<String, String>,
    options: &Options,
) -> Result<(Config, Vec<Warning>)> {
    let secret_layer = secret_layer_keys(resolved);
    let keys = Keys::new(
        resolved,
        builtins,
        probe_secret_names(resolved, builtins, &secret_layer),
    );
    let mut errors = Errors::default();
    let env = sources.env.as_str();
    check_stack_env(resolved, &mut errors);
    let project = read_project(&keys, &mut errors);
    let globals = Globals::read(&keys, &mut errors);
    let enabled = EnabledPresets::read(&keys, &mut errors);
    let preset_services = enabled.services(&keys);
    let declared = Declared::read(&keys, &enabled, globals.proxy.kind, &mut errors);
    let names = ServiceNames::new(&declared, &enabled);
    let index = ServiceIndex::new(&names.all).with_declared(&names.running);
    let classified = classify_keys(&resolved.settings, &index, &secret_layer);
    report_unknown(&classified.unknown, &index, &mut errors);
    let secret_names = secret_names(&keys, &enabled, &secret_layer, &mut errors);
    debug_assert_eq!(secret_names, keys.secrets);
    let secrets = secret_specs(&keys, &secret_names);
    let context = service::Context {
        keys: &keys,
        project_dir: &sources.dir,
        project: &project,
        env,
        domain: &globals.domain,
        target: globals.target,
    };
    let services = build_services(
        &context,
        &declared,
        &enabled,
        preset_services,
        classified.service_attrs,
        &mut errors,
    );
    let mut services = in_environment(services, env, options);
    presets::check_all(&keys, &enabled.list, &services, &mut errors);
    let mut warnings = close_mailpit(&mut services, env);
    warnings.extend(ambiguous_keys(&resolved.settings, &index));
    let server = read_server(&keys, &project, &mut errors);
    let notify = super::notify::read(&keys, &mut errors);
    keys.check_secret_reads(&mut errors);
    let mut config = assemble(sources, project, globals, services, secrets, server);
    config.notify = notify;
    super::notify::attach(&mut config);
    presets::attach_networks(&mut config);
    let (config, mut checked) = finish(config, errors)?;
    checked.append(&mut warnings);
    Ok((config, checked))
}

/// The configuration from the phases' results (volumes are filled by the checks).
fn assemble(
    sources: &Sources,
    project: String,
    globals: Globals,
    services: Vec<Service>,
    secrets: Vec<SecretSpec>,
    server: Option<Server>,
) -> Config {
    Config {
        project,
        env: sources.env.clone(),
        project_dir: sources.dir.clone(),
        domain: globals.domain,
        proxy: globals.proxy,
        tls: globals.tls,
        tls_email: globals.tls_email,
        acme: globals.acme,
        health_timeout: globals.health_timeout,
        drain: globals.drain,
        logging: globals.logging,
        hooks: globals.hooks,
        notify: Vec::new(),
        log_level: globals.log_level,
        keep_releases: globals.keep_releases,
        protected: globals.protected,
        target: globals.target,
        volumes: Vec::new(),
        networks: globals.networks,
        image_transfer: globals.image_transfer,
        swarm_publish: globals.swarm_publish,
        swarm_encrypt: globals.swarm_encrypt,
        registry_image: globals.registry_image,
        services,
        secrets,
        server,
        sources: sources.layers.iter().map(|l| l.name.to_string()).collect(),
        previews: globals.previews,
        preview: None,
    }
}

/// Run the cross-service checks when all else is valid; the config and its warnings,
/// or every error.
fn finish(mut config: Config, mut errors: Errors) -> Result<(Config, Vec<Warning>)> {
    if errors.is_empty() {
        validate::check(&mut config, &mut errors);
    }
    if !errors.is_empty() {
        return Err(Error::Invalid(errors.into_diagnostics()));
    }
    let warnings = validate::warnings(&config);
    Ok((config, warnings))
}
