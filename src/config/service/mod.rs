//! One service from its `SERVICE_<NAME>_<ATTR>` keys and, for a preset, its defaults.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

mod attach;
mod checks;
mod health;
mod host;
mod job;
mod options;
mod preset;
mod release;

use checks::check_combinations;
use health::health;
use preset::{default_attrs, preset_attrs, preset_env, PresetAttr};

use super::keys::{service_key_name, ServiceAttr};
use super::lookup::{Errors, Keys};
use super::model::*;
use super::paths::normalize;
use super::presets::{Preset, PresetService};
use super::validate;
use super::values::Value;
use crate::error::{Diagnostic, Span};

/// Container variables while a service is read: name → (value, is or holds a secret).
type Variables = BTreeMap<String, (String, bool)>;

pub(crate) struct Context<'a> {
    pub keys: &'a Keys<'a>,
    pub project_dir: &'a Path,
    pub project: &'a str,
    pub env: &'a str,
    pub domain: &'a str,
    /// `STACK_TARGET` as read with the globals.
    pub target: Target,
}

/// An attribute's value: the project's, or the preset's default.
struct Attr<'a> {
    value: Value<'a>,
    from_project: bool,
}

/// Attributes by name: the preset's defaults, overridden by the project's keys.
type AttrMap<'a> = BTreeMap<&'static str, Attr<'a>>;

/// The value of `attr`, if the project or the preset sets it.
fn get<'m, 'a>(map: &'m AttrMap<'a>, attr: &str) -> Option<&'m Value<'a>> {
    map.get(attr).map(|a| &a.value)
}

/// Build one service from its keys (and its preset's defaults): read every attribute,
/// then check them together. `None` when any of it is wrong (the errors say why).
pub(crate) fn build(
    context: &Context,
    name: &str,
    preset: Option<(&'static Preset, &'static PresetService)>,
    attrs: &[(ServiceAttr, &str)],
    span: Option<Span>,
    errors: &mut Errors,
) -> Option<Service> {
    let before = errors.count();
    let prefix = service_key_name(name);
    let preset_service = preset.map(|(_, service)| service);
    let preset_defaults: Vec<PresetAttr> = preset_service
        .map(|service| preset_attrs(context, service, &prefix))
        .unwrap_or_default();
    let mut map = default_attrs(&preset_defaults);
    let mut env = preset_service
        .map(|service| preset_env(context, service))
        .unwrap_or_default();
    let mut build_args = project_attrs(context, attrs, &mut map, &mut env, errors);
    build_args_list(&map, &prefix, &mut build_args, errors);
    let mut service = read(context, name, &prefix, preset_service, &map, errors);
    // `ENV_<VAR>` wins over the same name in the `ENV` list.
    if let Some(list) = get(&map, "ENV") {
        let secret = list.secret;
        for (var, value) in options::read_env_list(&map, errors) {
            env.entry(var).or_insert((value, secret));
        }
    }
    for (var, (value, secret)) in env {
        service.set_env(var, value, secret);
    }
    if preset.is_some() {
        preset::secrets_as_files(&mut service);
    }
    match (&mut service.build, build_args) {
        (Some(build), args) => build.args = args,
        (None, args) if args.is_empty() => {}
        (None, _) => needs_build(
            &service,
            &prefix,
            "BUILD_ARG_<NAME>` or `BUILD_ARGS",
            errors,
        ),
    }
    let mode = service.secret_file_mode();
    for file in &mut service.secret_files {
        file.mode = mode;
    }
    service.preset = preset.map(|(p, _)| p.name);
    service.span = span;
    host::apply(&mut service, &prefix, &map, context.target, errors);
    check_combinations(&service, &prefix, &map, context.target, errors);
    if errors.count() > before {
        return None;
    }
    service.attr_spans = attr_spans(&map);
    Some(service)
}

/// The `BUILD_ARGS` list into `args` (`BUILD_ARG_<NAME>` wins); a secret is refused, as
/// build arguments stay readable in the image's history.
fn build_args_list(
    map: &AttrMap,
    prefix: &str,
    args: &mut BTreeMap<String, String>,
    errors: &mut Errors,
) {
    let Some(list) = get(map, "BUILD_ARGS") else {
        return;
    };
    if list.secret {
        errors.push(
            Diagnostic::new(format!(
                "`SERVICE_{prefix}_BUILD_ARGS` passes a secret as a build argument"
            ))
            .with_span(list.span.cloned())
            .hint("build arguments are kept in the image's history; pass the secret at run time with `ENV_<VAR>`"),
        );
        return;
    }
    for (name, value) in options::read_build_args(map, errors) {
        args.entry(name).or_insert(value);
    }
}

/// Lay the project's `SERVICE_<NAME>_…` keys over the preset's attributes and variables;
/// hand back the build arguments.
fn project_attrs<'a>(
    context: &Context<'a>,
    attrs: &[(ServiceAttr, &str)],
    map: &mut AttrMap<'a>,
    env: &mut Variables,
    errors: &mut Errors,
) -> BTreeMap<String, String> {
    let mut build_args = BTreeMap::new();
    for (attr, key) in attrs {
        match attr {
            ServiceAttr::Attr(attr) => {
                // The `ENV` list goes to the container's environment, like `ENV_<VAR>`:
                // a secret in it takes the secret path instead of being refused.
                let value = if *attr == "ENV" {
                    context.keys.for_container(key)
                } else {
                    context.keys.get_owned(key)
                };
                let Some(value) = value else {
                    continue;
                };
                let from_project = true;
                map.insert(
                    attr,
                    Attr {
                        value,
                        from_project,
                    },
                );
            }
            ServiceAttr::Env(var) => {
                let Some(value) = context.keys.for_container(key) else {
                    continue;
                };
                if errors.take(validate::env_value(&value)).is_none() {
                    continue;
                }
                let secret = value.secret;
                let value = value.text.to_string();
                env.insert(var.clone(), (value, secret));
            }
            ServiceAttr::BuildArg(arg) => {
                let Some(value) = context.keys.for_container(key) else {
                    continue;
                };
                // Build arguments stay readable in the image's history.
                if value.secret {
                    errors.push(
                        Diagnostic::new(format!("`{key}` passes a secret as a build argument"))
                            .with_span(value.span.cloned())
                            .hint("build arguments are kept in the image's history; pass the secret at run time with `ENV_<VAR>`"),
                    );
                    continue;
                }
                if let Some(text) = errors.take(value.line()) {
                    build_args.insert(arg.clone(), text);
                }
            }
        }
    }
    build_args
}

/// `attr` needs `BUILD`.
fn needs_build(service: &Service, prefix: &str, attr: &str, errors: &mut Errors) {
    errors.push(
        Diagnostic::new(format!(
            "`SERVICE_{prefix}_{attr}` is set but `SERVICE_{prefix}_BUILD` is not"
        ))
        .with_span(service.span_of(attr))
        .hint(format!(
            "add `SERVICE_{prefix}_BUILD=./path` with the build context"
        )),
    );
}

/// Every attribute, typed (the caller fills in the variables, preset and span).
fn read(
    context: &Context,
    name: &str,
    prefix: &str,
    preset: Option<&'static PresetService>,
    map: &AttrMap,
    errors: &mut Errors,
) -> Service {
    let (image, build) = read_image_and_build(context, map, prefix, errors);
    let command = get(map, "COMMAND").and_then(|v| errors.take(command(v)));
    let network = read_network(context, map, errors);
    let health = health(map, network.port, prefix, errors);
    let metrics = read_metrics(map, network.port, prefix, errors);
    let (depends_on, depends_completed) = read_depends_on(map, errors);
    let (volumes, mount_options) = read_volumes(context, map, preset, errors);
    let resources = read_resources(map, errors);
    let environments = get(map, "ENVIRONMENTS").map(|v| {
        v.list()
            .into_iter()
            .filter(|e| errors.take(v_env(v, e)).is_some())
            .collect::<Vec<_>>()
    });
    let frontend = get(map, "FRONTEND")
        .and_then(|v| errors.take(v.boolean()))
        .unwrap_or(false);
    let strategy = read_strategy(map, health.is_some(), &network.publish, errors);
    let labels = options::read_labels(map, errors);
    let extra_hosts = options::read_extra_hosts(map, errors);
    let mut options = options::read_options(map, errors);
    options.mount_options = mount_options;
    let release = release::read_release(map, prefix, errors);
    let drain = get(map, "DRAIN").and_then(|v| {
        release::within_a_day(
            v,
            "write e.g. `10m`: how long open connections may stay on the old container",
            errors,
        )
    });
    let schedule = job::read_schedule(context, map, prefix, errors);
    let attached = attach::read(context, map, errors);
    Service {
        release,
        schedule,
        networks: attached.networks,
        secret_files: attached.secret_files,
        secret_values: attached.secret_values,
        auth: attached.auth,
        basic_auth: attached.basic_auth,
        env_files: attached.env_files,
        labels,
        extra_hosts,
        options,
        attr_spans: BTreeMap::new(),
        name: name.to_string(),
        preset: None,
        image,
        build,
        command,
        port: network.port,
        ports: network.publish,
        routes: network.routes,
        route_strip: network.route_strip,
        health,
        metrics,
        depends_on,
        depends_completed,
        env: BTreeMap::new(),
        mounts: volumes,
        memory_mb: resources.memory_mb,
        cpus: resources.cpus,
        replicas: resources.replicas,
        restart: resources.restart,
        frontend,
        upstream: network.upstream,
        strategy,
        drain,
        environments,
        span: None,
    }
}

/// `METRICS`: an HTTP path Prometheus scrapes on `PORT`, or `off`.
fn read_metrics(
    map: &AttrMap,
    port: Option<u16>,
    prefix: &str,
    errors: &mut Errors,
) -> Option<Metrics> {
    let value = get(map, "METRICS")?;
    if value.text.trim().eq_ignore_ascii_case("off") {
        return Some(Metrics::Off);
    }
    let path = errors.take(validate::metrics_path(value))?;
    if port.is_none() {
        errors.push(
            Diagnostic::new(format!(
                "`SERVICE_{prefix}_METRICS` needs `SERVICE_{prefix}_PORT` to know where to scrape"
            ))
            .with_span(value.span.cloned())
            .hint(format!(
                "add `SERVICE_{prefix}_PORT`, or write `SERVICE_{prefix}_METRICS=off`"
            )),
        );
        return None;
    }
    Some(Metrics::Path(path))
}

/// `IMAGE`, and `BUILD` with its `DOCKERFILE` (which needs `BUILD`).
fn read_image_and_build(
    context: &Context,
    map: &AttrMap,
    prefix: &str,
    errors: &mut Errors,
) -> (Option<String>, Option<BuildSpec>) {
    let image = get(map, "IMAGE").and_then(|v| errors.take(validate::image(v)));
    let build = get(map, "BUILD").and_then(|v| {
        let rel = errors.take(validate::relative_path(v))?;
        let dockerfile =
            get(map, "DOCKERFILE").and_then(|d| errors.take(validate::dockerfile(d, v)));
        let target =
            get(map, "BUILD_TARGET").and_then(|t| errors.take(super::attrs::build_target(t)));
        Some(BuildSpec {
            context: normalize(&context.project_dir.join(&rel)),
            dockerfile,
            target,
            args: BTreeMap::new(),
        })
    });
    if build.is_none() {
        for attr in ["DOCKERFILE", "BUILD_TARGET"] {
            let Some(dockerfile) = get(map, attr) else {
                continue;
            };
            errors.push(
                Diagnostic::new(format!(
                    "`{}` is set but `SERVICE_{prefix}_BUILD` is not",
                    dockerfile.key
                ))
                .with_span(dockerfile.span.cloned())
                .hint(format!(
                    "add `SERVICE_{prefix}_BUILD=./path` with the build context"
                )),
            );
        }
    }
    (image, build)
}

/// How a service is reached: its port, published ports, routes and upstream.
struct Network {
    port: Option<u16>,
    publish: Vec<Port>,
    routes: Vec<Route>,
    route_strip: bool,
    upstream: Option<Upstream>,
}

/// `PORT`, `PUBLISH`, `ROUTE`, `ROUTE_STRIP` and `UPSTREAM`.
fn read_network(context: &Context, map: &AttrMap, errors: &mut Errors) -> Network {
    let port = get(map, "PORT").and_then(|v| errors.take(v.port()));
    let publish: Vec<Port> = get(map, "PUBLISH")
        .map(|v| {
            v.list()
                .iter()
                .filter_map(|item| errors.take(validate::publish(v, item)))
                .collect()
        })
        .unwrap_or_default();
    let routes: Vec<Route> = get(map, "ROUTE")
        .map(|v| {
            v.list()
                .iter()
                .filter_map(|item| errors.take(validate::route(v, item, context.domain)))
                .collect()
        })
        .unwrap_or_default();
    let route_strip = get(map, "ROUTE_STRIP")
        .and_then(|v| errors.take(v.boolean()))
        .unwrap_or(false);
    let upstream = get(map, "UPSTREAM").and_then(|v| errors.take(validate::upstream(v)));
    Network {
        port,
        publish,
        routes,
        route_strip,
        upstream,
    }
}

/// `DEPENDS_ON`: valid service names, each with an optional `:completed` (whether they
/// exist is checked across services). The names, and those to wait for until they exit.
fn read_depends_on(map: &AttrMap, errors: &mut Errors) -> (Vec<String>, BTreeSet<String>) {
    let mut names = Vec::new();
    let mut completed = BTreeSet::new();
    let Some(v) = get(map, "DEPENDS_ON") else {
        return (names, completed);
    };
    for item in v.list() {
        let (name, condition) = match item.split_once(':') {
            Some((name, condition)) => (name.to_string(), Some(condition)),
            None => (item.clone(), None),
        };
        if errors.take(v_named(v, &name)).is_none() {
            continue;
        }
        let is_completed = match condition {
            None => false,
            Some("completed") => true,
            Some(other) => {
                errors.push(
                    Diagnostic::new(format!(
                        "`{}`: unknown condition `{other}` in `{item}`",
                        v.key
                    ))
                    .with_span(v.span.cloned())
                    .hint(format!(
                        "write `{name}` to wait until it is ready, or `{name}:completed` to wait until it exits with code 0"
                    )),
                );
                continue;
            }
        };
        if names.contains(&name) {
            if completed.contains(&name) != is_completed {
                errors.push(
                    Diagnostic::new(format!(
                        "`{}` names `{name}` twice, once with `:completed`",
                        v.key
                    ))
                    .with_span(v.span.cloned())
                    .hint("keep one of them"),
                );
            }
            continue;
        }
        if is_completed {
            completed.insert(name.clone());
        }
        names.push(name);
    }
    (names, completed)
}

/// `VOLUMES`, plus the preset's configuration files rendered into the bundle.
fn read_volumes(
    context: &Context,
    map: &AttrMap,
    preset: Option<&'static PresetService>,
    errors: &mut Errors,
) -> (Vec<Mount>, BTreeMap<String, MountOptions>) {
    let mut volumes: Vec<Mount> = Vec::new();
    let mut mount_options = BTreeMap::new();
    if let Some(v) = get(map, "VOLUMES") {
        for item in validate::volume_entries(v.text) {
            let Some((mount, options)) =
                errors.take(validate::mount(v, &item, context.project_dir))
            else {
                continue;
            };
            if volumes.iter().any(|m| m.target() == mount.target()) {
                errors.push(
                    Diagnostic::new(format!(
                        "`{}` mounts two volumes at `{}`",
                        v.key,
                        mount.target()
                    ))
                    .with_span(v.span.cloned())
                    .hint("Docker refuses a duplicate mount point; keep one of them"),
                );
                continue;
            }
            if options != MountOptions::default() {
                mount_options.insert(mount.target().to_string(), options);
            }
            volumes.push(mount);
        }
    }
    for (rel, target) in preset.map(|s| s.mounts).unwrap_or_default() {
        volumes.retain(|m| m.target() != *target);
        mount_options.remove(*target);
        volumes.push(Mount::Bind {
            source: HostPath::Bundle(rel.to_string()),
            target: target.to_string(),
            read_only: true,
        });
    }
    (volumes, mount_options)
}

/// What a service may use and how it is kept running.
struct Resources {
    memory_mb: Option<u64>,
    cpus: Option<f64>,
    replicas: u32,
    restart: Restart,
}

/// `MEMORY_MB`, `CPUS`, `REPLICAS` and `RESTART`.
fn read_resources(map: &AttrMap, errors: &mut Errors) -> Resources {
    let memory_mb =
        get(map, "MEMORY_MB").and_then(|v| errors.take(v.number::<u64>(6, 16 * 1024 * 1024)));
    let cpus = get(map, "CPUS").and_then(|v| errors.take(v.cpus()));
    let replicas = get(map, "REPLICAS")
        .and_then(|v| errors.take(v.number::<u32>(0, 100)))
        .unwrap_or(1);
    let restart = get(map, "RESTART")
        .and_then(|v| errors.take(validate::restart(v)))
        .unwrap_or(Restart::UnlessStopped);
    Resources {
        memory_mb,
        cpus,
        replicas,
        restart,
    }
}

/// `STRATEGY`; unset, `rolling` for a health-checked service that publishes no port.
fn read_strategy(
    map: &AttrMap,
    has_health: bool,
    publish: &[Port],
    errors: &mut Errors,
) -> Strategy {
    match get(map, "STRATEGY").and_then(|v| errors.take(v.choice(&["rolling", "recreate"]))) {
        Some("rolling") => Strategy::Rolling,
        Some(_) => Strategy::Recreate,
        None if has_health && publish.is_empty() => Strategy::Rolling,
        None => Strategy::Recreate,
    }
}

/// Where each known attribute was set.
fn attr_spans(map: &AttrMap) -> BTreeMap<&'static str, Span> {
    map.iter()
        .filter_map(|(attr, a)| {
            let known = super::keys::attribute_names().find(|k| k == attr)?;
            a.value.span.cloned().map(|span| (known, span))
        })
        .collect()
}

fn v_named(value: &Value, name: &str) -> Result<(), Diagnostic> {
    Value {
        text: name,
        ..value.clone()
    }
    .name("service name", "-")
    .map(|_| ())
}

fn v_env(value: &Value, name: &str) -> Result<(), Diagnostic> {
    Value {
        text: name,
        ..value.clone()
    }
    .name("environment name", "-_")
    .map(|_| ())
}

/// `COMMAND`, `ENTRYPOINT`: the exec form (a JSON array: each word exactly), else one
/// line split into words like a shell would (no shell runs it).
fn command(value: &Value) -> Result<Vec<String>, Diagnostic> {
    if let Some(argv) = value.exec_form() {
        return argv;
    }
    value.line()?;
    let words = shell_words::split(value.text).map_err(|_| {
        Diagnostic::new(format!("`{}` has an unterminated quote", value.key))
            .with_span(value.span.cloned())
            .hint("close the quote; the command is split into words like a shell would")
    })?;
    if words.is_empty() {
        return Err(Diagnostic::new(format!("`{}` is empty", value.key))
            .with_span(value.span.cloned())
            .hint("remove the key to keep the image's command"));
    }
    Ok(words)
}
