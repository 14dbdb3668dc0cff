//! One service from its `SERVICE_<NAME>_<ATTR>` keys and, for a preset, its defaults.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use super::keys::{service_key_name, ServiceAttr};
use super::lookup::{Errors, Keys};
use super::model::*;
use super::paths::normalize;
use super::presets::{self, EnvSource, Preset, PresetService};
use super::validate;
use super::values::Value;
use crate::error::{Diagnostic, Span};

pub(crate) struct Context<'a> {
    pub keys: &'a Keys<'a>,
    pub project_dir: &'a Path,
    pub project: &'a str,
    pub env: &'a str,
    pub domain: &'a str,
    pub secret_names: &'a BTreeSet<String>,
    /// `STACK_TARGET` as read with the globals.
    pub target: Target,
}

/// An attribute's value: the project's, or the preset's default.
struct Attr<'a> {
    value: Value<'a>,
    from_project: bool,
}

pub(crate) fn build(
    context: &Context,
    name: &str,
    preset: Option<(&'static Preset, &'static PresetService)>,
    attrs: &[(ServiceAttr, &str)],
    span: Option<Span>,
    errors: &mut Errors,
) -> Option<Service> {
    let before = errors.0.len();
    let prefix = service_key_name(name);
    let preset_defaults: Vec<PresetAttr> = preset
        .map(|(_, service)| preset_attrs(context, service, &prefix))
        .unwrap_or_default();
    let mut map: BTreeMap<&str, Attr> = BTreeMap::new();
    for default in &preset_defaults {
        map.insert(
            default.attr,
            Attr {
                value: Value {
                    key: &default.key,
                    text: &default.text,
                    span: default.span,
                },
                from_project: false,
            },
        );
    }
    let mut env: BTreeMap<String, EnvValue> = BTreeMap::new();
    if let Some((_, service)) = preset {
        for (var, source) in service.env {
            let (value, secret) = match source {
                EnvSource::Fixed(text) => (text.to_string(), false),
                EnvSource::Key(key) => {
                    let secret = context.secret_names.contains(*key);
                    let value = preset_key_value(context, key);
                    if value.is_empty() && !secret {
                        continue;
                    }
                    (value, secret)
                }
                EnvSource::Template(template) => {
                    let (value, refs) = fill(context, template);
                    let secret = refs.iter().any(|r| context.secret_names.contains(r));
                    (value, secret)
                }
                EnvSource::Secret(template) => (fill(context, template).0, true),
            };
            env.insert(var.to_string(), EnvValue { value, secret });
        }
    }
    for (attr, key) in attrs {
        let Some(value) = context.keys.get_owned(key) else {
            continue;
        };
        match attr {
            ServiceAttr::Attr(attr) => {
                map.insert(
                    attr,
                    Attr {
                        value,
                        from_project: true,
                    },
                );
            }
            ServiceAttr::Env(var) => {
                let setting = &context.keys.resolved.settings[*key];
                let secret = context.secret_names.contains(*key)
                    || setting
                        .refs
                        .iter()
                        .any(|r| context.secret_names.contains(r));
                env.insert(
                    var.clone(),
                    EnvValue {
                        value: value.text.to_string(),
                        secret,
                    },
                );
            }
        }
    }
    let get = |attr: &str| map.get(attr).map(|a| &a.value);

    let image = get("IMAGE").and_then(|v| errors.take(validate::image(v)));
    let build = get("BUILD").and_then(|v| {
        let rel = errors.take(validate::relative_path(v))?;
        let dockerfile = get("DOCKERFILE").and_then(|d| errors.take(validate::relative_path(d)));
        Some(Build {
            context: normalize(&context.project_dir.join(&rel)),
            context_rel: rel,
            dockerfile,
        })
    });
    if build.is_none() {
        if let Some(dockerfile) = get("DOCKERFILE") {
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
    let command = get("COMMAND").and_then(|v| errors.take(command(v)));
    let port = get("PORT").and_then(|v| errors.take(v.port()));
    let publish: Vec<Publish> = get("PUBLISH")
        .map(|v| {
            v.list()
                .iter()
                .filter_map(|item| errors.take(validate::publish(v, item)))
                .collect()
        })
        .unwrap_or_default();
    let routes: Vec<Route> = get("ROUTE")
        .map(|v| {
            v.list()
                .iter()
                .filter_map(|item| errors.take(validate::route(v, item, context.domain)))
                .collect()
        })
        .unwrap_or_default();
    let route_strip = get("ROUTE_STRIP")
        .and_then(|v| errors.take(v.boolean()))
        .unwrap_or(false);
    let upstream = get("UPSTREAM").and_then(|v| errors.take(validate::upstream(v)));
    let health = health(&map, port, &prefix, errors);
    let depends_on: Vec<String> = get("DEPENDS_ON")
        .map(|v| {
            v.list()
                .into_iter()
                .filter(|d| errors.take(v_named(v, d)).is_some())
                .collect()
        })
        .unwrap_or_default();
    let mut volumes: Vec<Mount> = get("VOLUMES")
        .map(|v| {
            v.list()
                .iter()
                .filter_map(|item| errors.take(validate::mount(v, item, context.project_dir)))
                .collect()
        })
        .unwrap_or_default();
    // The preset's configuration files, rendered into the bundle.
    if let Some((_, service)) = preset {
        for (rel, target) in service.mounts {
            volumes.retain(|m| m.target != *target);
            volumes.push(Mount {
                source: MountSource::Bundle(rel.to_string()),
                target: target.to_string(),
                read_only: true,
            });
        }
    }
    let memory_mb =
        get("MEMORY_MB").and_then(|v| errors.take(v.number::<u64>(6, 16 * 1024 * 1024)));
    let cpus = get("CPUS").and_then(|v| errors.take(v.cpus()));
    let replicas = get("REPLICAS")
        .and_then(|v| errors.take(v.number::<u32>(0, 100)))
        .unwrap_or(1);
    let restart = get("RESTART")
        .and_then(|v| errors.take(validate::restart(v)))
        .unwrap_or_else(|| "unless-stopped".into());
    let environments = get("ENVIRONMENTS").map(|v| {
        v.list()
            .into_iter()
            .filter(|e| errors.take(v_env(v, e)).is_some())
            .collect::<Vec<_>>()
    });
    let frontend = get("FRONTEND")
        .and_then(|v| errors.take(v.boolean()))
        .unwrap_or(false);
    let strategy =
        match get("STRATEGY").and_then(|v| errors.take(v.choice(&["rolling", "recreate"]))) {
            Some("rolling") => Strategy::Rolling,
            Some(_) => Strategy::Recreate,
            None if health.is_some() && publish.is_empty() => Strategy::Rolling,
            None => Strategy::Recreate,
        };

    // Attribute combinations.
    let decl = |attr: &str| {
        map.get(attr)
            .and_then(|a| a.value.span.cloned())
            .or_else(|| span.clone())
    };
    if upstream.is_some() {
        for attr in [
            "IMAGE",
            "BUILD",
            "COMMAND",
            "PUBLISH",
            "VOLUMES",
            "HEALTH_CMD",
            "REPLICAS",
        ] {
            if map.get(attr).is_some_and(|a| a.from_project) {
                errors.push(
                    Diagnostic::new(format!(
                        "service `{name}` has `SERVICE_{prefix}_UPSTREAM`, so it is not a container and cannot have `{attr}`"
                    ))
                    .with_span(decl(attr))
                    .hint(format!("remove `SERVICE_{prefix}_{attr}` or `SERVICE_{prefix}_UPSTREAM`")),
                );
            }
        }
    } else if image.is_none() && build.is_none() && get("IMAGE").is_none() && get("BUILD").is_none()
    {
        errors.push(
            Diagnostic::new(format!(
                "service `{name}` has none of `SERVICE_{prefix}_IMAGE`, `SERVICE_{prefix}_BUILD` or `SERVICE_{prefix}_UPSTREAM`"
            ))
            .with_span(span.clone())
            .hint(format!("add `SERVICE_{prefix}_IMAGE=repository:tag`")),
        );
    }
    if !routes.is_empty() && port.is_none() && upstream.is_none() {
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
    let swarm = context.target == Target::Swarm;
    if strategy == Strategy::Rolling && !publish.is_empty() && !swarm {
        errors.push(
            Diagnostic::new(format!(
                "service `{name}` publishes host ports, so it cannot use the `rolling` strategy"
            ))
            .with_span(decl("STRATEGY"))
            .hint("two containers cannot hold one host port: route it through the proxy, or use `recreate`"),
        );
    }
    if replicas > 1 && !swarm && publish.iter().any(|p: &Publish| !p.host_ports.is_empty()) {
        errors.push(
            Diagnostic::new(format!(
                "service `{name}` has {replicas} replicas but publishes fixed host ports"
            ))
            .with_span(decl("REPLICAS"))
            .hint("route it through the proxy instead of publishing, or use one replica"),
        );
    }
    if errors.0.len() > before {
        return None;
    }
    let attr_spans = map
        .iter()
        .filter_map(|(attr, a)| {
            let known = super::keys::ATTRIBUTES.iter().find(|k| *k == attr)?;
            a.value.span.cloned().map(|span| (*known, span))
        })
        .collect();
    Some(Service {
        attr_spans,
        name: name.to_string(),
        preset: preset.map(|(p, _)| p.name),
        image,
        build,
        command,
        port,
        publish,
        routes,
        route_strip,
        health,
        depends_on,
        env,
        volumes,
        memory_mb,
        cpus,
        replicas,
        restart,
        frontend,
        upstream,
        strategy,
        environments,
        span,
    })
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

fn command(value: &Value) -> Result<Vec<String>, Diagnostic> {
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

fn health(
    map: &BTreeMap<&str, Attr>,
    port: Option<u16>,
    prefix: &str,
    errors: &mut Errors,
) -> Option<Health> {
    let http = map.get("HEALTH");
    let cmd = map.get("HEALTH_CMD");
    let check = match (http, cmd) {
        (Some(h), Some(c)) if h.from_project && c.from_project => {
            errors.push(
                Diagnostic::new(format!(
                    "`SERVICE_{prefix}_HEALTH` and `SERVICE_{prefix}_HEALTH_CMD` are both set"
                ))
                .with_span(c.value.span.cloned())
                .hint("keep one: an HTTP path, or a command run in the container"),
            );
            return None;
        }
        (Some(h), Some(c)) if !h.from_project => health_cmd(&c.value, errors)?,
        (Some(h), _) => {
            let path = errors.take(validate::health_path(&h.value))?;
            let Some(port) = port else {
                errors.push(
                    Diagnostic::new(format!(
                        "`SERVICE_{prefix}_HEALTH` needs `SERVICE_{prefix}_PORT` to know where to probe"
                    ))
                    .with_span(h.value.span.cloned())
                    .hint(format!("add `SERVICE_{prefix}_PORT`, or use `SERVICE_{prefix}_HEALTH_CMD`")),
                );
                return None;
            };
            HealthCheck::Http { path, port }
        }
        (None, Some(c)) => health_cmd(&c.value, errors)?,
        (None, None) => {
            for attr in [
                "HEALTH_INTERVAL",
                "HEALTH_TIMEOUT",
                "HEALTH_RETRIES",
                "HEALTH_START_PERIOD",
            ] {
                if let Some(a) = map.get(attr).filter(|a| a.from_project) {
                    errors.push(
                        Diagnostic::new(format!(
                            "`{}` is set but the service has no health check",
                            a.value.key
                        ))
                        .with_span(a.value.span.cloned())
                        .hint(format!(
                            "add `SERVICE_{prefix}_HEALTH` or `SERVICE_{prefix}_HEALTH_CMD`"
                        )),
                    );
                }
            }
            return None;
        }
    };
    let duration = |attr: &str, default: u64, errors: &mut Errors| {
        map.get(attr)
            .and_then(|a| errors.take(a.value.duration()))
            .unwrap_or(Duration::from_secs(default))
    };
    let interval = duration("HEALTH_INTERVAL", 10, errors);
    let timeout = duration("HEALTH_TIMEOUT", 5, errors);
    let start_period = duration("HEALTH_START_PERIOD", 0, errors);
    let retries = map
        .get("HEALTH_RETRIES")
        .and_then(|a| errors.take(a.value.number::<u32>(1, 1000)))
        .unwrap_or(3);
    for (attr, value) in [("HEALTH_INTERVAL", interval), ("HEALTH_TIMEOUT", timeout)] {
        if value < Duration::from_millis(100) {
            errors.push(
                Diagnostic::new(format!("`SERVICE_{prefix}_{attr}` must be at least 100ms"))
                    .with_span(map.get(attr).and_then(|a| a.value.span.cloned())),
            );
        }
    }
    Some(Health {
        check,
        interval,
        timeout,
        retries,
        start_period,
    })
}

fn health_cmd(value: &Value, errors: &mut Errors) -> Option<HealthCheck> {
    let text = errors.take(value.line())?;
    if text.trim().is_empty() {
        errors.push(
            Diagnostic::new(format!("`{}` is empty", value.key)).with_span(value.span.cloned()),
        );
        return None;
    }
    Some(HealthCheck::Cmd(text))
}

/// A preset's default attribute, its placeholders filled in.
struct PresetAttr<'a> {
    attr: &'static str,
    /// `SERVICE_<NAME>_<ATTR>`, or the preset key when the default is that key alone
    /// (`{MONITORING_GRAFANA_ROUTE}`), so an error points at the line that set it.
    key: String,
    text: String,
    span: Option<&'a Span>,
}

/// The preset's default attributes with `{KEY}` placeholders filled in; those that come
/// out empty are left out.
fn preset_attrs<'a>(
    context: &Context<'a>,
    service: &'static PresetService,
    prefix: &str,
) -> Vec<PresetAttr<'a>> {
    service
        .attrs
        .iter()
        .filter_map(|(attr, template)| {
            let (text, refs) = fill(context, template);
            if text.trim().is_empty() {
                return None;
            }
            let whole = template.strip_prefix('{').and_then(|t| t.strip_suffix('}'));
            let set = whole.and_then(|key| {
                context
                    .keys
                    .resolved
                    .settings
                    .get_key_value(key)
                    .filter(|_| refs.len() == 1)
            });
            Some(match set {
                Some((key, setting)) => PresetAttr {
                    attr,
                    key: key.clone(),
                    text,
                    span: Some(&setting.span),
                },
                None => PresetAttr {
                    attr,
                    key: format!("SERVICE_{prefix}_{attr}"),
                    text,
                    span: None,
                },
            })
        })
        .collect()
}

/// `template` with every `{NAME}` replaced, and the names it used.
fn fill(context: &Context, template: &str) -> (String, Vec<String>) {
    let mut out = String::new();
    let mut refs = Vec::new();
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        let Some(end) = rest[start..].find('}') else {
            break;
        };
        out.push_str(&rest[..start]);
        let key = &rest[start + 1..start + end];
        out.push_str(&placeholder(context, key));
        refs.push(key.to_string());
        rest = &rest[start + end + 1..];
    }
    out.push_str(rest);
    (out, refs)
}

/// A placeholder's value: a computed one, else a preset key's.
fn placeholder(context: &Context, name: &str) -> String {
    let value = |key: &str| preset_key_value(context, key);
    match name {
        "STACK_DOMAIN" => context.domain.to_string(),
        // Where the backup job writes its dumps: the target directory, or a volume the
        // S3 sidecar uploads from.
        "BACKUP_STORE" => {
            let target = value("BACKUP_TARGET");
            if target.starts_with("s3://") {
                "backup-data".into()
            } else {
                target
            }
        }
        "BACKUP_S3_PATH" => {
            let target = value("BACKUP_TARGET");
            match presets::s3_target(&target) {
                Some((bucket, "")) => bucket.to_string(),
                Some((bucket, prefix)) => format!("{bucket}/{prefix}"),
                None => String::new(),
            }
        }
        // `MC_HOST_<alias>`: `https://ACCESS:SECRET@host`, credentials percent-encoded.
        "BACKUP_S3_MC_HOST" => {
            let endpoint = value("BACKUP_S3_ENDPOINT");
            let (scheme, host) = endpoint
                .split_once("://")
                .unwrap_or(("https", endpoint.as_str()));
            format!(
                "{scheme}://{}:{}@{host}",
                percent_encode(&value("BACKUP_S3_ACCESS_KEY")),
                percent_encode(&value("BACKUP_S3_SECRET_KEY"))
            )
        }
        // Loki deletes by whole days of index.
        "LOKI_RETENTION" => {
            let hours = presets::retention_hours(&value("MONITORING_RETENTION")).unwrap_or(360);
            format!("{}h", hours.div_ceil(24) * 24)
        }
        key => value(key),
    }
}

fn percent_encode(text: &str) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// A preset key's value: the project's, else the preset's default.
fn preset_key_value(context: &Context, key: &str) -> String {
    if let Some(text) = context.keys.resolved.get(key) {
        return text.to_string();
    }
    match presets::key_default(key).unwrap_or("") {
        "{PROJECT_IDENT}" => context.project.replace('-', "_"),
        "{MEILI_ENV}" => if context.env == "prod" {
            "production"
        } else {
            "development"
        }
        .into(),
        other => other.to_string(),
    }
}
