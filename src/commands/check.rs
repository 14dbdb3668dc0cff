//! `stack check ENV`: the production audit (SPEC §3).

mod shipping;

use super::secrets::{self, Finding};
use super::Context;
use crate::cli::EnvArg;
use crate::config::{Config, Loaded, Tls};
use crate::error::Result;

pub fn run(context: &Context, args: &EnvArg) -> Result<()> {
    let env = context.env_or(&args.env);
    let loaded = context.load(&env)?;
    let findings = audit(&loaded);
    secrets::report(context, &env, "audit", &findings)
}

/// Every audit finding for a loaded environment.
pub fn audit(loaded: &Loaded) -> Vec<Finding> {
    let config = &loaded.config;
    let mut out = secrets::check(loaded);
    out.extend(tls(config));
    out.extend(images(config));
    out.extend(published_databases(config));
    out.extend(debug_flags(loaded));
    out.extend(shipping::host_access(config));
    out.extend(shipping::build_contexts(config));
    out.extend(shipping::wildcard_routes(config));
    out.extend(shipping::localhost_domain(config));
    if config.env == "prod" {
        for service in &config.services {
            if service.frontend {
                out.push(Finding::fail(
                    "prod",
                    format!("frontend `{}` runs in prod", service.name),
                ));
            }
            if service.preset == Some("MAILPIT") {
                out.push(Finding::fail(
                    "prod",
                    "mailpit runs in prod; it catches real mail",
                ));
            }
        }
    }
    out
}

fn tls(config: &Config) -> Vec<Finding> {
    match config.tls {
        Tls::Auto if config.tls_email.is_none() => vec![Finding::fail(
            "tls",
            "`STACK_TLS=auto` without `STACK_TLS_EMAIL`: ACME expiry notices go nowhere",
        )],
        Tls::Off if config.env == "prod" => vec![Finding::fail(
            "tls",
            "`STACK_TLS=off` in prod: traffic is not encrypted",
        )],
        _ => vec![Finding::pass(
            "tls",
            format!("TLS is `{:?}`", config.tls).to_lowercase(),
        )],
    }
}

/// An image without a tag, or tagged `latest`, changes under you.
pub fn unpinned(image: &str) -> bool {
    if image.contains('@') {
        return false;
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    match last.split_once(':') {
        None => true,
        Some((_, tag)) => tag == "latest",
    }
}

fn images(config: &Config) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut all: Vec<(&str, &str)> = config
        .services
        .iter()
        .filter_map(|s| s.image.as_deref().map(|i| (s.name.as_str(), i)))
        .collect();
    if crate::render::needs_proxy(config) {
        all.push(("proxy", &config.proxy.image));
    }
    for (service, image) in all {
        if unpinned(image) {
            out.push(Finding::fail(
                "image",
                format!("service `{service}` uses `{image}`, which is not pinned; use a version tag or a digest"),
            ));
        }
    }
    if out.is_empty() {
        out.push(Finding::pass("image", "every image is pinned"));
    }
    out
}

const DATABASE_IMAGES: &[&str] = &[
    "postgres",
    "mysql",
    "mariadb",
    "redis",
    "mongo",
    "valkey",
    "memcached",
    "elasticsearch",
    "opensearch",
    "clickhouse",
    "minio",
    "meilisearch",
    "rabbitmq",
];

fn published_databases(config: &Config) -> Vec<Finding> {
    let mut out = Vec::new();
    for service in &config.services {
        let image = service.image.as_deref().unwrap_or("");
        let name = image.rsplit('/').next().unwrap_or(image);
        let is_database =
            service.preset.is_some() || DATABASE_IMAGES.iter().any(|d| name.starts_with(d));
        if !is_database {
            continue;
        }
        for publish in &service.publish {
            let loopback = publish
                .host_ip
                .as_deref()
                .is_some_and(|ip| ip.starts_with("127.") || ip == "::1");
            if !loopback {
                out.push(Finding::fail(
                    "database",
                    format!(
                        "database `{}` publishes `{}` on every interface; bind it to 127.0.0.1 or remove `PUBLISH`",
                        service.name, publish.spec
                    ),
                ));
            }
        }
    }
    out
}

fn debug_flags(loaded: &Loaded) -> Vec<Finding> {
    let config = &loaded.config;
    let mut out = Vec::new();
    if config.env == "prod" && matches!(config.log_level.as_str(), "debug" | "trace") {
        out.push(Finding::fail(
            "debug",
            format!("`STACK_LOG_LEVEL` is `{}` in prod", config.log_level),
        ));
    }
    for service in &config.services {
        for (var, value) in &service.env {
            if value.secret {
                continue;
            }
            let v = value.value.to_ascii_lowercase();
            let debug_var = var == "DEBUG" || var.ends_with("_DEBUG");
            let flagged = (debug_var && matches!(v.as_str(), "1" | "true" | "yes" | "on" | "*"))
                || (matches!(
                    var.as_str(),
                    "NODE_ENV" | "APP_ENV" | "RAILS_ENV" | "FLASK_ENV" | "ENVIRONMENT"
                ) && matches!(v.as_str(), "development" | "dev" | "debug"))
                || (matches!(var.as_str(), "RUST_LOG" | "LOG_LEVEL")
                    && matches!(v.as_str(), "debug" | "trace"));
            if flagged && config.env != "dev" {
                out.push(Finding::fail(
                    "debug",
                    format!("service `{}` sets `{var}={}`", service.name, value.value),
                ));
            }
        }
    }
    if out.is_empty() {
        out.push(Finding::pass("debug", "no debug flags"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::unpinned;

    #[test]
    fn pinning() {
        assert!(unpinned("nginx"));
        assert!(unpinned("nginx:latest"));
        assert!(unpinned("registry:5000/acme/api"));
        assert!(!unpinned("registry:5000/acme/api:1.2"));
        assert!(!unpinned("postgres:16-alpine"));
        assert!(!unpinned("acme/api@sha256:abc"));
    }
}
