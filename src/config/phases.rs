//! The typed configuration from resolved values, in named phases: project and globals
//! → presets → declared services → classify keys → secrets → services → environment
//! filter → cross-service checks. Each phase reports into [`Errors`] and the build
//! goes on, so one run lists every problem it can find.

use std::collections::{BTreeMap, BTreeSet};

use super::globals::{read_server, Globals};
use super::keys::{global_names, ServiceAttr, ServiceIndex, SERVER_KEYS};
use super::lookup::{Errors, Keys};
use super::model::*;
use super::presets::{self, Preset, PresetService, When, PRESETS};
use super::values::Value;
use super::{service, validate, Options};
use crate::error::{nearest, Diagnostic, Error, Result, Span};
use crate::project::{Resolved, Setting, SourceKind, Sources};

/// Build the configuration of `sources` from its resolved values, or every error found.
pub(super) fn build(
    sources: &Sources,
    resolved: &Resolved,
    builtins: &BTreeMap<String, String>,
    options: &Options,
) -> Result<(Config, Vec<Diagnostic>)> {
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
    presets::check(&keys, &enabled.list, &mut errors);
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

/// Mailpit's UI shows every mail the environment sends (password resets, invitations):
/// outside dev it is routed only behind a gate of its own (`AUTH` or `BASIC_AUTH`).
/// Without one its routes are dropped, with a warning saying how to open them.
fn close_mailpit(services: &mut [Service], env: &str) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    if env == "dev" {
        return out;
    }
    for service in services.iter_mut().filter(|s| s.preset == Some("MAILPIT")) {
        if service.routes.is_empty() || service.auth.is_some() || service.basic_auth.is_some() {
            continue;
        }
        let prefix = super::keys::service_key_name(&service.name);
        let routes: Vec<String> = service.routes.iter().map(|r| format!("`{r}`")).collect();
        out.push(
            Diagnostic::new(format!(
                "`{}` is not routed in `{env}`: its UI shows every mail the environment sends, and no login guards it ({} left out)",
                service.name,
                routes.join(", ")
            ))
            .with_span(service.span_of("ROUTE"))
            .hint(format!(
                "to reach it, set `SERVICE_{prefix}_BASIC_AUTH=user:KEY` (a bcrypt hash in secrets.env) or `SERVICE_{prefix}_AUTH` in `environments/{env}/stack.env`; or reach it through an SSH tunnel"
            )),
        );
        service.routes.clear();
    }
    out
}

/// A warning for every `SERVICE_` key that reads two ways because one service's name
/// continues another's (`web` and `web-env`: `SERVICE_WEB_ENV_PORT`), naming both
/// readings; the longer service name wins.
fn ambiguous_keys(
    settings: &indexmap::IndexMap<String, Setting>,
    index: &ServiceIndex,
) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for (key, setting) in settings {
        let readings = index.readings(key);
        let [(service, attr), others @ ..] = readings.as_slice() else {
            continue;
        };
        if others.is_empty() {
            continue;
        }
        let also: Vec<String> = others
            .iter()
            .map(|(other, attr)| format!("{} of service `{other}`", attr.describe()))
            .collect();
        out.push(
            Diagnostic::new(format!(
                "`{key}` is ambiguous: it is read as {} of service `{service}`, but could be {}",
                attr.describe(),
                also.join(" or ")
            ))
            .at(&setting.span)
            .hint(format!(
                "rename one of the services so neither name continues the other (`{service}` and {})",
                others
                    .iter()
                    .map(|(o, _)| format!("`{o}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        );
    }
    out
}

/// `STACK_ENV` names the environment the command chose; a project file cannot set it.
fn check_stack_env(resolved: &Resolved, errors: &mut Errors) {
    if let Some(setting) = resolved.settings.get("STACK_ENV") {
        errors.push(
            Diagnostic::new("`STACK_ENV` cannot be set in a project file")
                .at(&setting.span)
                .hint("choose the environment with `--env NAME` or the `STACK_ENV` variable"),
        );
    }
}

/// `STACK_PROJECT`, which must be set and a valid name.
fn read_project(keys: &Keys, errors: &mut Errors) -> String {
    match keys.get("STACK_PROJECT") {
        Some(value) => errors
            .take(value.name("project name", "_-").and_then(|name| {
                shadowed_unit(&name).map_or(Ok(name.clone()), |unit| {
                    Err(Diagnostic::new(format!(
                        "project name `{name}` would install `{name}.service`, which shadows the system's `{unit}`"
                    ))
                    .with_span(value.span.cloned())
                    .hint("pick another `STACK_PROJECT`, e.g. `{name}-app`".replace("{name}", &name)))
                })
            }))
            .unwrap_or_default(),
        None => {
            errors.push(
                Diagnostic::new("`STACK_PROJECT` is not set")
                    .hint("add `STACK_PROJECT=myapp` to `stack.env`"),
            );
            String::new()
        }
    }
}

/// The system unit a project's `<project>.service` would shadow, if any.
fn shadowed_unit(name: &str) -> Option<&'static str> {
    const UNITS: &[&str] = &[
        "docker",
        "containerd",
        "ssh",
        "sshd",
        "network",
        "networking",
        "cron",
        "crond",
        "dbus",
        "getty",
        "rsyslog",
        "syslog",
        "ufw",
        "firewalld",
        "nftables",
        "iptables",
        "chrony",
        "chronyd",
        "apparmor",
        "polkit",
        "udev",
        "snapd",
        "multipathd",
        "unattended-upgrades",
        "nginx",
        "caddy",
        "apache2",
        "httpd",
        "postgresql",
        "redis",
        "redis-server",
        "mysql",
        "mariadb",
        "fail2ban",
        "sudo",
        "login",
        "user",
        "init",
        "emergency",
        "rescue",
        "kubelet",
        "k3s",
        "podman",
    ];
    if name.starts_with("systemd-") || name == "systemd" {
        return Some("systemd-*");
    }
    UNITS.iter().find(|u| **u == name).copied()
}

/// The presets that are on, with the line that turned each on.
pub(super) struct EnabledPresets {
    pub list: Vec<&'static Preset>,
    pub spans: BTreeMap<&'static str, Option<Span>>,
}

impl EnabledPresets {
    /// Read every `<PRESET>_ENABLED`, then check each enabled preset's requirements.
    fn read(keys: &Keys, errors: &mut Errors) -> EnabledPresets {
        let mut enabled = EnabledPresets {
            list: Vec::new(),
            spans: BTreeMap::new(),
        };
        for preset in PRESETS {
            let key = presets::enabled_key(preset);
            let Some(value) = keys.get_owned(&key) else {
                continue;
            };
            if errors.take(value.boolean()) == Some(true) {
                enabled.list.push(preset);
                enabled.spans.insert(preset.name, value.span.cloned());
            }
        }
        enabled.check_requires(errors);
        enabled
    }

    /// Whether the preset called `name` is on.
    fn contains(&self, name: &str) -> bool {
        self.list.iter().any(|p| p.name == name)
    }

    /// Every enabled preset needs the presets it requires enabled too.
    fn check_requires(&self, errors: &mut Errors) {
        for preset in &self.list {
            for required in preset.requires {
                if self.contains(required) {
                    continue;
                }
                errors.push(
                    Diagnostic::new(format!(
                        "the `{}` preset needs the `{required}` preset, which is not enabled",
                        preset.name
                    ))
                    .with_span(self.spans[preset.name].clone())
                    .hint(format!(
                        "set `{required}_ENABLED=true`, or remove `{}`",
                        presets::enabled_key(preset)
                    )),
                );
            }
        }
    }

    /// The services of the enabled presets that exist with this configuration.
    fn services(&self, keys: &Keys) -> Vec<(&'static Preset, &'static PresetService)> {
        self.list
            .iter()
            .flat_map(|preset| preset.services.iter().map(move |s| (*preset, s)))
            .filter(|(_, service)| match service.when {
                When::Always => true,
                When::Preset(name) => self.contains(name),
                When::KeyPrefix(key, prefix) => keys
                    .get_owned(key)
                    .map(|v| v.text.trim().to_string())
                    .or_else(|| presets::key_default(key).map(str::to_string))
                    .is_some_and(|v| v.starts_with(prefix)),
            })
            .collect()
    }
}

/// The project's own services (`STACK_SERVICES`), in order, with the line declaring them.
pub(super) struct Declared {
    pub names: Vec<String>,
    pub spans: BTreeMap<String, Option<Span>>,
}

impl Declared {
    /// Read `STACK_SERVICES`, dropping (and reporting) bad, repeated or reserved names.
    fn read(
        keys: &Keys,
        enabled: &EnabledPresets,
        proxy: ProxyKind,
        errors: &mut Errors,
    ) -> Declared {
        let mut declared = Declared {
            names: Vec::new(),
            spans: BTreeMap::new(),
        };
        let Some(value) = keys.get("STACK_SERVICES") else {
            return declared;
        };
        for name in value.list() {
            let item = Value {
                key: "STACK_SERVICES",
                text: &name,
                span: value.span,
                secret: value.secret,
            };
            if errors.take(item.name("service name", "-")).is_none() {
                continue;
            }
            if let Some(error) = declared.refuse(&name, enabled, proxy) {
                errors.push(error.with_span(value.span.cloned()));
                continue;
            }
            declared.spans.insert(name.clone(), value.span.cloned());
            declared.names.push(name);
        }
        declared
    }

    /// Why `name` cannot be declared: listed twice, or taken by a preset or the proxy.
    fn refuse(&self, name: &str, enabled: &EnabledPresets, proxy: ProxyKind) -> Option<Diagnostic> {
        if self.names.iter().any(|n| n == name) {
            return Some(Diagnostic::new(format!(
                "service `{name}` is listed twice in `STACK_SERVICES`"
            )));
        }
        // A preset's names are reserved only while it is enabled: a project's own
        // `redis` or `postgres` (as imported Compose files name theirs) keeps its name.
        let reserved = PRESETS.iter().find(|p| {
            enabled.contains(p.name)
                && (p.service() == name || p.services.iter().any(|s| s.name == name))
        });
        if let Some(preset) = reserved {
            return Some(
                Diagnostic::new(format!(
                    "service name `{name}` is reserved for the `{}` preset",
                    preset.name
                ))
                .hint(format!(
                    "set `{}=true` instead, or pick another name",
                    presets::enabled_key(preset)
                )),
            );
        }
        if name == "certbot" && proxy == ProxyKind::Nginx {
            return Some(
                Diagnostic::new(
                    "service name `certbot` is reserved while `STACK_PROXY=nginx` (stack runs certbot with `STACK_TLS=auto`)",
                )
                .hint("pick another name"),
            );
        }
        if name == "proxy" && proxy != ProxyKind::None {
            return Some(
                Diagnostic::new("service name `proxy` is reserved for the proxy stack runs")
                    .hint("pick another name, or set `STACK_PROXY=none`"),
            );
        }
        None
    }
}

/// The service names `SERVICE_` keys may use.
pub(super) struct ServiceNames {
    /// Services that exist here (declared, and the enabled presets'): what hints list.
    pub running: Vec<String>,
    /// Those, plus every preset's main service, whose keys are accepted while it is off.
    pub all: Vec<String>,
}

impl ServiceNames {
    /// The names of the declared services and the presets' services.
    pub fn new(declared: &Declared, enabled: &EnabledPresets) -> ServiceNames {
        let mut running = declared.names.clone();
        for preset in &enabled.list {
            running.extend(preset.services.iter().map(|s| s.name.to_string()));
        }
        let mut all = running.clone();
        all.extend(PRESETS.iter().map(|p| p.service().to_string()));
        all.sort();
        all.dedup();
        ServiceNames { running, all }
    }
}

/// Keys set by the environment's secrets file.
fn secret_layer_keys(resolved: &Resolved) -> BTreeSet<&str> {
    resolved
        .settings
        .iter()
        .filter(|(_, s)| s.kind == SourceKind::Secrets)
        .map(|(k, _)| k.as_str())
        .collect()
}

/// Every project key, by what it configures.
#[derive(Debug, Default)]
pub(super) struct Classified<'a> {
    /// `SERVICE_` keys grouped by service, with the attribute each sets.
    pub service_attrs: BTreeMap<String, Vec<(ServiceAttr, &'a str)>>,
    /// Known `STACK_` keys.
    pub globals: Vec<&'a str>,
    /// Known `SERVER_` keys.
    pub server: Vec<&'a str>,
    /// Keys of a preset: its own, or any set in the secrets file.
    pub preset: Vec<&'a str>,
    /// Keys of no kind: variables other values interpolate.
    pub other: Vec<&'a str>,
    /// Keys with a known prefix that name nothing, in key order.
    pub unknown: Vec<Unknown<'a>>,
}

/// A key that looks like a configuration key but names nothing.
#[derive(Debug, Clone)]
pub(super) enum Unknown<'a> {
    /// A `SERVICE_` key of no known service or attribute.
    Service(&'a str, &'a Span),
    /// A `STACK_` key that is no global key.
    Global(&'a str, &'a Span),
    /// A `SERVER_` key that is no server key.
    Server(&'a str, &'a Span),
    /// A key with a preset's prefix that is none of its keys.
    Preset(&'a str, &'a Span, &'static Preset),
}

/// Sort every key by its prefix; pure, and cheap even for unknown keys (no hints yet).
pub(super) fn classify_keys<'a>(
    settings: &'a indexmap::IndexMap<String, Setting>,
    index: &ServiceIndex,
    secret_layer: &BTreeSet<&str>,
) -> Classified<'a> {
    let mut out = Classified::default();
    for (key, setting) in settings {
        let (key, span) = (key.as_str(), &setting.span);
        if key.starts_with("SERVICE_") {
            match index.parse(key) {
                Some((service, attr)) => out
                    .service_attrs
                    .entry(service)
                    .or_default()
                    .push((attr, key)),
                None => out.unknown.push(Unknown::Service(key, span)),
            }
        } else if key.starts_with("STACK_") {
            if global_names().any(|k| k == key) || key == "STACK_ENV" {
                out.globals.push(key);
            } else {
                out.unknown.push(Unknown::Global(key, span));
            }
        } else if key.starts_with("SERVER_") {
            if SERVER_KEYS.contains(&key) {
                out.server.push(key);
            } else {
                out.unknown.push(Unknown::Server(key, span));
            }
        } else if let Some(preset) = presets::owner_of(key) {
            let known = presets::preset_keys(preset);
            if known.iter().any(|k| k == key) || secret_layer.contains(key) {
                out.preset.push(key);
            } else {
                out.unknown.push(Unknown::Preset(key, span, preset));
            }
        } else {
            out.other.push(key);
        }
    }
    out
}

/// Report every unknown key, with the nearest known one as a hint (searched for only
/// while errors are still reported).
fn report_unknown(unknown: &[Unknown], index: &ServiceIndex, errors: &mut Errors) {
    for key in unknown {
        errors.push_with(|| match *key {
            Unknown::Service(key, span) => index.unknown(key, Some(span)),
            Unknown::Global(key, span) => unknown_key(
                key,
                &global_names().collect::<Vec<_>>(),
                span,
                "global keys",
            ),
            Unknown::Server(key, span) => unknown_key(key, SERVER_KEYS, span, "server keys"),
            Unknown::Preset(key, span, preset) => {
                let known = presets::preset_keys(preset);
                let names: Vec<&str> = known.iter().map(String::as_str).collect();
                unknown_key(key, &names, span, "its keys")
            }
        });
    }
}

/// `unknown key`, with the nearest of `known` or else the list of them.
fn unknown_key(key: &str, known: &[&str], span: &Span, what: &str) -> Diagnostic {
    let diagnostic = Diagnostic::new(format!("unknown key `{key}`")).at(span);
    match nearest(key, known.iter().copied()) {
        Some(near) => diagnostic.hint(format!("did you mean `{near}`?")),
        None => diagnostic.hint(format!("{what}: {}", known.join(", "))),
    }
}

/// The secret names, known before any value is read so every read knows whether its
/// value is secret; the phases read the same keys again and report their errors.
fn probe_secret_names(
    resolved: &Resolved,
    builtins: &BTreeMap<String, String>,
    secret_layer: &BTreeSet<&str>,
) -> BTreeSet<String> {
    let probe = Keys::new(resolved, builtins, BTreeSet::new());
    let mut ignored = Errors::default();
    let enabled = EnabledPresets::read(&probe, &mut ignored);
    secret_names(&probe, &enabled, secret_layer, &mut ignored)
}

/// Secret names: those `STACK_SECRETS` declares, the presets' and the secrets file's keys.
fn secret_names(
    keys: &Keys,
    enabled: &EnabledPresets,
    secret_layer: &BTreeSet<&str>,
    errors: &mut Errors,
) -> BTreeSet<String> {
    let mut names: BTreeSet<String> = BTreeSet::new();
    if let Some(value) = keys.get("STACK_SECRETS") {
        for name in value.list() {
            let span = value.span.cloned();
            if let Err(diagnostic) = crate::project::syntax::check_key(
                &name,
                span.as_ref().unwrap_or(&placeholder_span()),
            ) {
                errors.push(diagnostic.with_span(span));
                continue;
            }
            names.insert(name);
        }
    }
    for preset in &enabled.list {
        names.extend(preset.secrets.iter().map(|s| s.to_string()));
    }
    names.extend(secret_layer.iter().map(|s| s.to_string()));
    names
}

/// Where a bad `STACK_SECRETS` item is reported when the list has no line (never shown).
fn placeholder_span() -> Span {
    Span {
        source: "STACK_SECRETS".into(),
        line: 0,
        col: 0,
        len: 0,
        line_text: "".into(),
    }
}

/// Each secret, whether it has a value, and where it is set.
fn secret_specs(keys: &Keys, names: &BTreeSet<String>) -> Vec<SecretSpec> {
    names
        .iter()
        .map(|name| SecretSpec {
            name: name.clone(),
            present: keys.is_set(name),
            span: keys.resolved.settings.get(name).map(|s| s.span.clone()),
        })
        .collect()
}

/// Every service: the declared ones in order, then the enabled presets'.
fn build_services(
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
pub(super) fn in_environment(services: Vec<Service>, env: &str, options: &Options) -> Vec<Service> {
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
    }
}

/// Run the cross-service checks when all else is valid; the config and its warnings,
/// or every error.
fn finish(mut config: Config, mut errors: Errors) -> Result<(Config, Vec<Diagnostic>)> {
    if errors.is_empty() {
        validate::check(&mut config, &mut errors);
    }
    if !errors.is_empty() {
        return Err(Error::Invalid(errors.into_diagnostics()));
    }
    let warnings = validate::warnings(&config);
    Ok((config, warnings))
}
