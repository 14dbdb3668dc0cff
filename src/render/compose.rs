//! `docker-compose.yml`: built as a value and serialised, so quoting is never a guess.
//! Every string goes through [`esc`], because Compose interpolates `$` in the file.

use std::path::Path;

use serde_json::{json, Map, Value};

use super::{header, relative, CADDY_FILE, NGINX_FILE, PROXY_SERVICE};
use crate::config::values::compose_duration;
use crate::config::{Config, HealthCheck, MountSource, ProxyKind, Service, Strategy, Tls};
use crate::error::{Error, Result};

/// Label keys stack puts on everything it renders.
pub const LABEL_PREFIX: &str = "dev.stack";

/// Compose interpolates `$VAR`; a literal `$` is written `$$`.
pub fn esc(text: &str) -> String {
    text.replace('$', "$$")
}

pub fn render(config: &Config, bundle_dir: &Path, proxied: bool) -> Result<String> {
    let mut services = Map::new();
    for service in config.services.iter().filter(|s| s.is_container()) {
        services.insert(
            service.name.clone(),
            render_service(config, service, bundle_dir),
        );
    }
    let mut volumes: Vec<String> = config.volumes.clone();
    if proxied {
        let (service, proxy_volumes) = render_proxy(config);
        services.insert(PROXY_SERVICE.into(), service);
        volumes.extend(proxy_volumes);
    }
    volumes.sort();
    volumes.dedup();
    let mut doc = Map::new();
    doc.insert("name".into(), json!(config.project));
    doc.insert("services".into(), Value::Object(services));
    doc.insert(
        "networks".into(),
        json!({"default": {"name": format!("{}_default", config.project)}}),
    );
    if !volumes.is_empty() {
        let mut map = Map::new();
        for volume in volumes {
            map.insert(volume, json!({}));
        }
        doc.insert("volumes".into(), Value::Object(map));
    }
    let yaml = serde_norway::to_string(&Value::Object(doc))
        .map_err(|e| Error::outside(format!("cannot serialise docker-compose.yml: {e}")))?;
    Ok(format!("# {}\n{yaml}", header(config)))
}

fn labels(config: &Config, service: &str, extra: &[(&str, String)]) -> Value {
    let mut map = Map::new();
    map.insert(format!("{LABEL_PREFIX}.project"), json!(config.project));
    map.insert(format!("{LABEL_PREFIX}.env"), json!(config.env));
    map.insert(format!("{LABEL_PREFIX}.service"), json!(service));
    for (key, value) in extra {
        map.insert(format!("{LABEL_PREFIX}.{key}"), json!(esc(value)));
    }
    Value::Object(map)
}

/// The image a `BUILD`-only service is tagged with.
pub fn build_image(config: &Config, service: &Service) -> String {
    format!("{}-{}:{}", config.project, service.name, config.env)
}

fn render_service(config: &Config, service: &Service, bundle_dir: &Path) -> Value {
    let mut out = Map::new();
    let image = service
        .image
        .clone()
        .unwrap_or_else(|| build_image(config, service));
    out.insert("image".into(), json!(esc(&image)));
    if let Some(build) = &service.build {
        let mut map = Map::new();
        // Absolute: images are built where `stack` runs, never on a server, and Compose
        // checks that the context exists.
        map.insert(
            "context".into(),
            json!(esc(&build.context.to_string_lossy())),
        );
        if let Some(dockerfile) = &build.dockerfile {
            map.insert("dockerfile".into(), json!(esc(dockerfile)));
        }
        out.insert("build".into(), Value::Object(map));
    }
    if let Some(command) = &service.command {
        out.insert(
            "command".into(),
            Value::Array(command.iter().map(|w| json!(esc(w))).collect()),
        );
    }
    if !service.env.is_empty() {
        let mut map = Map::new();
        for (key, value) in &service.env {
            // A secret is interpolated by Compose from the bundle's 0600 `.env` file, so
            // its value never appears here.
            let text = if value.secret {
                format!("${{{}}}", secret_var(&service.name, key))
            } else {
                esc(&value.value)
            };
            map.insert(key.clone(), json!(text));
        }
        out.insert("environment".into(), Value::Object(map));
    }
    if !service.publish.is_empty() {
        out.insert(
            "ports".into(),
            Value::Array(service.publish.iter().map(|p| json!(p.spec)).collect()),
        );
    }
    if let Some(port) = service.port {
        out.insert("expose".into(), json!([port.to_string()]));
    }
    if !service.volumes.is_empty() {
        let items = service
            .volumes
            .iter()
            .map(|mount| {
                let source = match &mount.source {
                    MountSource::Volume(name) => Some(name.clone()),
                    MountSource::Bind(path) => {
                        let rel = relative(bundle_dir, path);
                        let text = rel.to_string_lossy().into_owned();
                        Some(if rel.is_absolute() || text.starts_with("..") {
                            text
                        } else {
                            format!("./{text}")
                        })
                    }
                    MountSource::Anonymous => None,
                    MountSource::Bundle(rel) => Some(format!("./{rel}")),
                };
                let mut spec = match source {
                    Some(source) => format!("{source}:{}", mount.target),
                    None => mount.target.clone(),
                };
                if mount.read_only {
                    spec.push_str(":ro");
                }
                json!(esc(&spec))
            })
            .collect();
        out.insert("volumes".into(), Value::Array(items));
    }
    let containers: Vec<&Service> = config
        .services
        .iter()
        .filter(|s| s.is_container())
        .collect();
    if !service.depends_on.is_empty() {
        let mut map = Map::new();
        for dependency in &service.depends_on {
            let healthy = containers
                .iter()
                .find(|s| &s.name == dependency)
                .is_some_and(|s| s.health.is_some());
            let condition = if healthy {
                "service_healthy"
            } else {
                "service_started"
            };
            map.insert(dependency.clone(), json!({"condition": condition}));
        }
        out.insert("depends_on".into(), Value::Object(map));
    }
    if let Some(health) = &service.health {
        let test = match &health.check {
            HealthCheck::Http { path, port } => http_probe(*port, path),
            HealthCheck::Cmd(command) => command.clone(),
        };
        out.insert(
            "healthcheck".into(),
            json!({
                "test": ["CMD-SHELL", esc(&test)],
                "interval": compose_duration(health.interval),
                "timeout": compose_duration(health.timeout),
                "retries": health.retries,
                "start_period": compose_duration(health.start_period),
            }),
        );
    }
    out.insert("restart".into(), json!(service.restart));
    let mut deploy = Map::new();
    if service.replicas != 1 {
        deploy.insert("replicas".into(), json!(service.replicas));
    }
    let mut limits = Map::new();
    if let Some(memory) = service.memory_mb {
        limits.insert("memory".into(), json!(format!("{memory}M")));
    }
    if let Some(cpus) = service.cpus {
        limits.insert("cpus".into(), json!(format!("{cpus}")));
    }
    if !limits.is_empty() {
        deploy.insert("resources".into(), json!({"limits": limits}));
    }
    if !deploy.is_empty() {
        out.insert("deploy".into(), Value::Object(deploy));
    }
    let strategy = match service.strategy {
        Strategy::Rolling => "rolling",
        Strategy::Recreate => "recreate",
    };
    let routes: Vec<String> = service.routes.iter().map(|r| r.to_string()).collect();
    let mut extra = vec![("strategy", strategy.to_string())];
    if !routes.is_empty() {
        extra.push(("routes", routes.join(",")));
    }
    if let Some(HealthCheck::Http { path, port }) = service.health.as_ref().map(|h| &h.check) {
        extra.push(("health-http", format!("{port}{path}")));
    }
    out.insert("labels".into(), labels(config, &service.name, &extra));
    Value::Object(out)
}

/// A probe that works in images with busybox `wget` or with `curl`.
pub fn http_probe(port: u16, path: &str) -> String {
    let url = format!("http://127.0.0.1:{port}{path}");
    format!("wget -q -O /dev/null '{url}' || curl -fsS -o /dev/null '{url}' || exit 1")
}

fn render_proxy(config: &Config) -> (Value, Vec<String>) {
    let mut out = Map::new();
    out.insert("image".into(), json!(esc(&config.proxy.image)));
    let mut ports = vec![format!("{}:80", config.proxy.http_port)];
    if config.tls != Tls::Off {
        ports.push(format!("{}:443", config.proxy.https_port));
    }
    out.insert("ports".into(), json!(ports));
    let (volumes, named) = match config.proxy.kind {
        ProxyKind::Nginx => (
            vec![
                format!("./{NGINX_FILE}:/etc/nginx/nginx.conf:ro"),
                "nginx-certs:/etc/nginx/certs:ro".to_string(),
                "nginx-acme:/var/www/acme:ro".to_string(),
            ],
            vec!["nginx-certs".to_string(), "nginx-acme".to_string()],
        ),
        _ => (
            vec![
                format!("./{CADDY_FILE}:/etc/caddy/Caddyfile:ro"),
                "caddy-data:/data".to_string(),
                "caddy-config:/config".to_string(),
            ],
            vec!["caddy-data".to_string(), "caddy-config".to_string()],
        ),
    };
    out.insert("volumes".into(), json!(volumes));
    if config.services.iter().any(|s| s.upstream.is_some()) {
        out.insert(
            "extra_hosts".into(),
            json!(["host.docker.internal:host-gateway"]),
        );
    }
    out.insert("restart".into(), json!("unless-stopped"));
    out.insert(
        "labels".into(),
        labels(config, PROXY_SERVICE, &[("strategy", "recreate".into())]),
    );
    (Value::Object(out), named)
}

/// The name under which the secret `var` of `service` is kept in the `.env` file.
pub fn secret_var(service: &str, var: &str) -> String {
    format!("{}__{var}", crate::config::keys::service_key_name(service))
}

/// The bundle's `.env`: every secret container variable, `None` when there are none.
pub fn secrets_file(config: &Config) -> Option<String> {
    let mut lines = Vec::new();
    for service in config.services.iter().filter(|s| s.is_container()) {
        for (key, value) in service.env.iter().filter(|(_, v)| v.secret) {
            lines.push(format!(
                "{}={}\n",
                secret_var(&service.name, key),
                env_file_value(&value.value)
            ));
        }
    }
    if lines.is_empty() {
        return None;
    }
    Some(format!(
        "# {}\n# Secret values, read by Compose for interpolation. Keep this file mode 0600.\n{}",
        header(config),
        lines.concat()
    ))
}

/// A value for an env file: single-quoted when it can be, else double-quoted with escapes.
pub fn env_file_value(value: &str) -> String {
    if !value.contains('\'') && !value.contains('\n') && !value.contains('\r') {
        format!("'{value}'")
    } else {
        let mut out = String::from("\"");
        for c in value.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                '$' => out.push_str("\\$"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                c => out.push(c),
            }
        }
        out.push('"');
        out
    }
}
