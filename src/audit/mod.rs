//! The audit behind `stack check ENV`, `stack secrets check` and the prod gate of
//! `deploy`: findings about a loaded environment. Pure apart from reading the secrets
//! file's mode and asking git whether it is tracked; printing is the commands' job.

mod shipping;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::config::attrs::image::{unpinned, DATA_STORES};
use crate::config::{Config, EnvValue, Loaded, Tls};
use crate::project::secrets_path;

/// Shortest value `check` accepts.
pub const MIN_LENGTH: usize = 16;

/// Values that are never a real secret.
pub const WEAK: &[&str] = &[
    "password",
    "passw0rd",
    "changeme",
    "change-me",
    "changeit",
    "secret",
    "admin",
    "root",
    "postgres",
    "redis",
    "minio",
    "minioadmin",
    "example",
    "test",
    "default",
    "letmein",
    "123456",
    "12345678",
    "qwerty",
    "dev",
    "development",
];

/// One line of an audit.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Finding {
    pub ok: bool,
    /// Passed, but worth a look: the user's choice (host devices, the host's namespaces).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub warning: bool,
    pub check: String,
    pub message: String,
}

impl Finding {
    pub fn pass(check: &str, message: impl Into<String>) -> Self {
        Finding {
            ok: true,
            warning: false,
            check: check.into(),
            message: message.into(),
        }
    }
    pub fn fail(check: &str, message: impl Into<String>) -> Self {
        Finding {
            ok: false,
            ..Finding::pass(check, message)
        }
    }
    /// Passed with a warning: it does not fail the audit.
    pub fn warn(check: &str, message: impl Into<String>) -> Self {
        Finding {
            warning: true,
            ..Finding::pass(check, message)
        }
    }
}

/// Presence and strength of every secret, and the privacy of the secrets file.
pub fn secrets(loaded: &Loaded) -> Vec<Finding> {
    let mut out = Vec::new();
    let env = &loaded.config.env;
    for secret in &loaded.config.secrets {
        let value = loaded.resolved.get(&secret.name).unwrap_or("");
        let finding = if value.is_empty() {
            Finding::fail(
                "secret",
                format!(
                    "`{}` is missing; run `stack secrets generate {env}`",
                    secret.name
                ),
            )
        } else if let Some(reason) = weakness(&secret.name, value) {
            Finding::fail("secret", format!("`{}` is weak: {reason}", secret.name))
        } else {
            Finding::pass("secret", format!("`{}` is set and strong", secret.name))
        };
        out.push(finding);
        if let Some(setting) = loaded.resolved.settings.get(&secret.name) {
            if setting.kind != crate::project::SourceKind::Secrets && !value.is_empty() {
                out.push(Finding::fail(
                    "secret",
                    format!(
                        "`{}` is set in `{}`, not in `{}`; move it there",
                        secret.name,
                        setting.span.source,
                        secrets_path(env)
                    ),
                ));
            }
        }
    }
    out.extend(file_checks(&loaded.config.project_dir, env));
    out
}

/// Why a value is weak, if it is.
pub fn weakness(name: &str, value: &str) -> Option<String> {
    let lower = value.to_ascii_lowercase();
    if WEAK.contains(&lower.as_str()) || lower == name.to_ascii_lowercase() {
        return Some("a well-known default".into());
    }
    if value.chars().count() < MIN_LENGTH {
        return Some(format!("shorter than {MIN_LENGTH} characters"));
    }
    let distinct: std::collections::BTreeSet<char> = value.chars().collect();
    if distinct.len() < 6 {
        return Some("too few distinct characters".into());
    }
    None
}

/// The secrets file is private (0600) and not tracked by git.
pub fn file_checks(dir: &Path, env: &str) -> Vec<Finding> {
    let rel = secrets_path(env);
    let path = dir.join(&rel);
    let mut out = Vec::new();
    if let Ok(meta) = std::fs::metadata(&path) {
        {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                out.push(Finding::fail(
                    "secrets-file",
                    format!("`{rel}` has mode {mode:04o}; run `chmod 600 {rel}`"),
                ));
            } else {
                out.push(Finding::pass(
                    "secrets-file",
                    format!("`{rel}` has mode {mode:04o}"),
                ));
            }
            if tracked_by_git(dir, &rel) {
                out.push(Finding::fail(
                    "secrets-file",
                    format!("`{rel}` is tracked by git; run `git rm --cached {rel}` and rotate its secrets"),
                ));
            }
        }
    }
    out
}

fn tracked_by_git(dir: &Path, rel: &str) -> bool {
    std::process::Command::new("git")
        .args(["ls-files", "--error-unmatch", "--", rel])
        .current_dir(dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Every audit finding for a loaded environment.
pub fn audit(loaded: &Loaded) -> Vec<Finding> {
    let config = &loaded.config;
    let mut out = secrets(loaded);
    out.extend(tls(config));
    out.extend(images(config));
    out.extend(published_databases(config));
    out.extend(debug_flags(loaded));
    out.extend(shipping::host_access(config));
    out.extend(shipping::host_privileges(config));
    out.extend(shipping::build_contexts(loaded));
    out.extend(shipping::wildcard_routes(config));
    out.extend(shipping::localhost_domain(config));
    if config.protected {
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
        Tls::Off if config.protected => vec![Finding::fail(
            "tls",
            "`STACK_TLS=off` in prod: traffic is not encrypted",
        )],
        _ => vec![Finding::pass(
            "tls",
            format!("TLS is `{:?}`", config.tls).to_lowercase(),
        )],
    }
}

fn images(config: &Config) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut all: Vec<(&str, &str)> = config
        .services
        .iter()
        .filter_map(|s| s.image.as_deref().map(|i| (s.name.as_str(), i)))
        .collect();
    if config.needs_proxy() {
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

fn published_databases(config: &Config) -> Vec<Finding> {
    let mut out = Vec::new();
    for service in &config.services {
        let image = service.image.as_deref().unwrap_or("");
        let name = image.rsplit('/').next().unwrap_or(image);
        let is_database =
            service.preset.is_some() || DATA_STORES.iter().any(|d| name.starts_with(d.name));
        if !is_database {
            continue;
        }
        for publish in &service.ports {
            let loopback = publish
                .host_ip
                .as_deref()
                .is_some_and(|ip| ip.starts_with("127.") || ip == "::1");
            if !loopback {
                out.push(Finding::fail(
                    "database",
                    format!(
                        "database `{}` publishes `{}` on every interface; bind it to 127.0.0.1 or remove `PUBLISH`",
                        service.name, publish
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
    if config.protected && matches!(config.log_level.as_str(), "debug" | "trace") {
        out.push(Finding::fail(
            "debug",
            format!("`STACK_LOG_LEVEL` is `{}` in prod", config.log_level),
        ));
    }
    for service in &config.services {
        for (var, value) in &service.env {
            let EnvValue::Plain(value) = value else {
                continue;
            };
            let v = value.to_ascii_lowercase();
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
                    format!("service `{}` sets `{var}={value}`", service.name),
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
