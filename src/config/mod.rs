//! The typed, validated model (SPEC §1.3–1.6). Reading the project files is the only
//! I/O; everything after that is pure, and every bad input is caught here, before
//! any command writes or starts anything.

pub mod attrs;
pub mod catalogue;
pub mod env_files;
mod globals;
pub mod keys;
mod lookup;
pub mod model;
pub mod notify;
mod paths;
mod phases;
pub mod presets;
pub mod preview;
mod service;
mod types;
mod validate;
pub use validate::{continues_volume_entry, volume_entries};
pub mod values;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

pub use model::*;
pub use notify::{NotifyFormat, NotifyTarget};

use crate::error::{Diagnostic, Error, Result, Warning};
use crate::project::{self, Resolved, Sources};
use presets::PRESETS;

/// What a command asks of the configuration.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Keep `FRONTEND` services in prod.
    pub include_frontends: bool,
    /// Run `STACK_SECRETS_COMMAND` (commands that need the environment's secrets).
    pub secrets_command: bool,
}

/// A loaded project: sources, resolved values and the typed configuration.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub sources: Sources,
    pub resolved: Resolved,
    pub config: Config,
    pub warnings: Vec<Warning>,
    /// Values names have without being set: `STACK_ENV`, global and preset defaults.
    pub defaults: BTreeMap<String, String>,
}

/// Read, merge, interpolate and validate the project in `dir` for `env`.
pub fn load(
    dir: &Path,
    env: &str,
    sets: &[String],
    options: &Options,
    process_env: impl Fn(&str) -> Option<String>,
) -> Result<Loaded> {
    load_with(dir, env, sets, options, process_env, None)
}

/// [`load`] with `secrets` in place of the secrets file: what the project would be once
/// they are written (so nothing is written before everything has passed).
pub fn load_with(
    dir: &Path,
    env: &str,
    sets: &[String],
    options: &Options,
    process_env: impl Fn(&str) -> Option<String>,
    secrets: Option<project::Layer>,
) -> Result<Loaded> {
    let mut sources = project::load(dir, env, sets)?;
    if let Some(layer) = secrets {
        sources.replace_secrets(layer);
    }
    // The secrets command is I/O like reading a file: its output is one more layer.
    if options.secrets_command {
        if let Some(command) = project::command::command(&sources) {
            project::command::apply(&mut sources, &command)?;
        }
    }
    let mut loaded = from_sources(sources, options, process_env)?;
    // `ENV_FILE`s are named by the configuration, so they are read once it is known.
    let files = env_files::read(&loaded)?;
    env_files::apply(&mut loaded.config, &files)?;
    Ok(loaded)
}

/// The pure half of [`load`].
pub fn from_sources(
    sources: Sources,
    options: &Options,
    process_env: impl Fn(&str) -> Option<String>,
) -> Result<Loaded> {
    let mut builtins = builtins(&sources.env);
    // Preset keys with defaults (`POSTGRES_USER`, `POSTGRES_DB`, …) can be interpolated
    // without being set; some defaults derive from the project name.
    if let Some(project) = project_name(&sources, &builtins, &process_env) {
        builtins.extend(preset_defaults(&sources.env, &project));
    }
    let resolved =
        project::resolve(&sources.layers, &builtins, &process_env).map_err(Error::Invalid)?;
    let secret_values = secret_values(&resolved);
    let (config, mut warnings) =
        phases::build(&sources, &resolved, &builtins, options).map_err(|e| match e {
            Error::Invalid(diagnostics) => Error::Invalid(
                diagnostics
                    .into_iter()
                    .map(|d| redact(d, &secret_values))
                    .collect(),
            ),
            other => other,
        })?;
    for warning in &mut warnings {
        warning.diagnostic = redact(warning.diagnostic.clone(), &secret_values);
    }
    warnings.extend(project::duplicate_keys(&sources.layers));
    let secret_names: BTreeSet<&str> = config.secrets.iter().map(|s| s.name.as_str()).collect();
    // An unset secret is reported as a missing secret, not as an empty interpolation.
    warnings.extend(
        resolved
            .unset
            .iter()
            .filter(|u| !secret_names.contains(u.name.as_str()))
            .map(|u| u.warning.clone()),
    );
    Ok(Loaded {
        sources,
        resolved,
        config,
        warnings,
        defaults: builtins,
    })
}

/// The values set in a secrets layer (the file or `STACK_SECRETS_COMMAND`) that are long
/// enough to be recognised in a text, longest first.
fn secret_values(resolved: &project::Resolved) -> Vec<String> {
    let mut values: Vec<String> = resolved
        .settings
        .values()
        .filter(|s| s.kind == project::SourceKind::Secrets && s.value.chars().count() >= 4)
        .map(|s| s.value.clone())
        .collect();
    values.sort_by_key(|v| std::cmp::Reverse(v.len()));
    values.dedup();
    values
}

/// `diagnostic` with every secret value in its message and hint replaced by a mask: the
/// last guard, whatever a check quoted, so no diagnostic shows a secret.
fn redact(mut diagnostic: Diagnostic, secrets: &[String]) -> Diagnostic {
    let hide = |text: &mut String| {
        for secret in secrets {
            if text.contains(secret.as_str()) {
                *text = text.replace(secret.as_str(), "********");
            }
        }
    };
    hide(&mut diagnostic.message);
    if let Some(hint) = &mut diagnostic.hint {
        hide(hint);
    }
    diagnostic
}

/// `STACK_PROJECT`: the literal of its last assignment, else a first resolution.
fn project_name(
    sources: &Sources,
    builtins: &BTreeMap<String, String>,
    process_env: &impl Fn(&str) -> Option<String>,
) -> Option<String> {
    let last = sources
        .layers
        .iter()
        .flat_map(|l| &l.entries)
        .rfind(|e| e.key == "STACK_PROJECT")?;
    if let [project::syntax::Piece::Literal(text)] = last.value.pieces.as_slice() {
        return Some(text.trim().to_string());
    }
    let resolved = project::resolve(&sources.layers, builtins, process_env).ok()?;
    resolved.get("STACK_PROJECT").map(str::to_string)
}

/// The defaults of every preset key that has one, placeholders filled in.
fn preset_defaults(env: &str, project: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for preset in PRESETS {
        for (key, default) in preset.keys {
            let Some(default) = default else { continue };
            let value = match *default {
                "{PROJECT_IDENT}" => project.replace('-', "_"),
                "{MEILI_ENV}" => if env == "prod" {
                    "production"
                } else {
                    "development"
                }
                .to_string(),
                other if other.contains('{') => continue,
                other => other.to_string(),
            };
            out.push((key.to_string(), value));
        }
    }
    out
}

/// Names every value can use without setting them: `STACK_ENV` and the defaults of the
/// global keys that do not depend on other keys.
pub fn builtins(env: &str) -> BTreeMap<String, String> {
    let mut map = BTreeMap::new();
    map.insert("STACK_ENV".into(), env.into());
    for (key, value) in global_defaults(env) {
        map.insert(key.into(), value);
    }
    map
}

fn global_defaults(env: &str) -> Vec<(&'static str, String)> {
    // `prod` is protected unless its overlay says `STACK_PROTECTED=false`.
    let protected = if env == "prod" { "true" } else { "false" };
    let (tls, log) = match env {
        "dev" => ("internal", "debug"),
        "prod" => ("auto", "warning"),
        _ => ("auto", "info"),
    };
    vec![
        ("STACK_DOMAIN", "localhost".into()),
        ("STACK_PROXY", "caddy".into()),
        ("STACK_HTTP_PORT", "80".into()),
        ("STACK_HTTPS_PORT", "443".into()),
        ("STACK_TLS", tls.into()),
        ("STACK_HEALTH_TIMEOUT", "120s".into()),
        ("STACK_LOG_LEVEL", log.into()),
        ("STACK_KEEP_RELEASES", "5".into()),
        ("STACK_TARGET", "compose".into()),
        ("STACK_DRAIN", "2s".into()),
        ("STACK_LOG_MAX_SIZE", "10m".into()),
        ("STACK_LOG_MAX_FILES", "3".into()),
        ("STACK_IMAGE_TRANSFER", "registry".into()),
        ("STACK_SWARM_PUBLISH", "ingress".into()),
        ("STACK_SWARM_ENCRYPT", "false".into()),
        ("STACK_REGISTRY_IMAGE", REGISTRY_IMAGE.into()),
        ("STACK_PROTECTED", protected.into()),
    ]
}

/// The temporary registry a deploy runs on the server to ship only missing layers.
pub const REGISTRY_IMAGE: &str = "registry:2.8.3";

/// Default proxy images, pinned.
pub const CADDY_IMAGE: &str = "caddy:2.8.4-alpine";
pub const NGINX_IMAGE: &str = "nginx:1.27.3-alpine";

/// Lexically clean a path (`a/./b/../c` → `a/c`).
pub use paths::repository_root;

pub fn normalize_path(path: &Path) -> std::path::PathBuf {
    paths::normalize(path)
}

/// An image reference as `SERVICE_<NAME>_IMAGE` accepts it; the error names `key`.
pub fn check_image(key: &str, text: &str) -> std::result::Result<(), Diagnostic> {
    validate::image(&values::Value {
        key,
        text,
        span: None,
        secret: false,
    })
    .map(|_| ())
}

/// A port as `SERVICE_<NAME>_PORT` accepts it; the error names `key`.
pub fn check_port(key: &str, text: &str) -> std::result::Result<u16, Diagnostic> {
    values::Value {
        key,
        text,
        span: None,
        secret: false,
    }
    .port()
}

/// A domain name as `STACK_DOMAIN` accepts it.
pub fn validate_hostname(text: &str) -> bool {
    validate::is_hostname(text) && !text.starts_with("*.")
}

#[cfg(test)]
pub(crate) mod tests;
