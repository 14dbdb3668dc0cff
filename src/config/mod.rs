//! The typed, validated model (SPEC §1.3–1.6). Reading the project files is the only
//! I/O; everything after that is pure, and every bad input is caught here, before
//! any command writes or starts anything.

pub mod keys;
pub mod model;
pub mod presets;
mod service;
mod validate;
pub mod values;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

pub use model::*;

use crate::error::{nearest, Diagnostic, Error, Result};
use crate::project::{self, Resolved, SourceKind, Sources};
use keys::{ServiceAttr, GLOBAL_KEYS, SERVER_KEYS};
use presets::{Preset, PresetService, When, PRESETS};
use values::Value;

/// What a command asks of the configuration.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Keep `FRONTEND` services in prod.
    pub include_frontends: bool,
}

/// A loaded project: sources, resolved values and the typed configuration.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub sources: Sources,
    pub resolved: Resolved,
    pub config: Config,
    pub warnings: Vec<Diagnostic>,
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
    let sources = project::load(dir, env, sets)?;
    from_sources(sources, options, process_env)
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
    let (config, mut warnings) = build(&sources, &resolved, &builtins, options)?;
    let secret_names: BTreeSet<&str> = config.secrets.iter().map(|s| s.name.as_str()).collect();
    // An unset secret is reported as a missing secret, not as an empty interpolation.
    warnings.extend(
        resolved
            .warnings
            .iter()
            .filter(|w| {
                !secret_names
                    .iter()
                    .any(|name| w.message.starts_with(&format!("`{name}`")))
            })
            .cloned(),
    );
    Ok(Loaded {
        sources,
        resolved,
        config,
        warnings,
        defaults: builtins,
    })
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
    ]
}

/// Default proxy images, pinned.
pub const CADDY_IMAGE: &str = "caddy:2.8.4-alpine";
pub const NGINX_IMAGE: &str = "nginx:1.27.3-alpine";

/// Lookup of resolved values with their spans; values fall back to the built-ins.
pub(crate) struct Keys<'a> {
    pub resolved: &'a Resolved,
    pub builtins: &'a BTreeMap<String, String>,
}

impl<'a> Keys<'a> {
    pub fn get(&self, key: &'a str) -> Option<Value<'a>> {
        if let Some(setting) = self.resolved.settings.get(key) {
            return Some(Value {
                key,
                text: &setting.value,
                span: Some(&setting.span),
            });
        }
        self.builtins.get(key).map(|text| Value {
            key,
            text,
            span: None,
        })
    }

    /// Set to a non-empty value in the project (not a built-in default).
    pub fn is_set(&self, key: &str) -> bool {
        self.resolved
            .settings
            .get(key)
            .is_some_and(|s| !s.value.is_empty())
    }
}

/// Collects diagnostics so one run reports every problem it can.
#[derive(Default)]
pub(crate) struct Errors(pub Vec<Diagnostic>);

impl Errors {
    pub fn take<T>(&mut self, result: std::result::Result<T, Diagnostic>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(diagnostic) => {
                self.0.push(diagnostic);
                None
            }
        }
    }
    pub fn push(&mut self, diagnostic: Diagnostic) {
        self.0.push(diagnostic);
    }
}

fn build(
    sources: &Sources,
    resolved: &Resolved,
    builtins: &BTreeMap<String, String>,
    options: &Options,
) -> Result<(Config, Vec<Diagnostic>)> {
    let keys = Keys { resolved, builtins };
    let mut errors = Errors::default();
    let env = sources.env.as_str();

    if let Some(setting) = resolved.settings.get("STACK_ENV") {
        errors.push(
            Diagnostic::new("`STACK_ENV` cannot be set in a project file")
                .at(&setting.span)
                .hint("choose the environment with `--env NAME` or the `STACK_ENV` variable"),
        );
    }

    let project = match keys.get("STACK_PROJECT") {
        Some(value) => errors
            .take(value.name("project name", "_-"))
            .unwrap_or_default(),
        None => {
            errors.push(
                Diagnostic::new("`STACK_PROJECT` is not set")
                    .hint("add `STACK_PROJECT=myapp` to `stack.env`"),
            );
            String::new()
        }
    };
    let globals = Globals::read(&keys, &mut errors);

    // Presets that are on.
    let mut enabled: Vec<&'static Preset> = Vec::new();
    let mut enabled_spans = BTreeMap::new();
    for preset in PRESETS {
        let key = presets::enabled_key(preset);
        let Some(value) = keys.get_owned(&key) else {
            continue;
        };
        if errors.take(value.boolean()) == Some(true) {
            enabled.push(preset);
            enabled_spans.insert(preset.name, value.span.cloned());
        }
    }
    for preset in &enabled {
        for required in preset.requires {
            if !enabled.iter().any(|p| p.name == *required) {
                errors.push(
                    Diagnostic::new(format!(
                        "the `{}` preset needs the `{required}` preset, which is not enabled",
                        preset.name
                    ))
                    .with_span(enabled_spans[preset.name].clone())
                    .hint(format!(
                        "set `{required}_ENABLED=true`, or remove `{}`",
                        presets::enabled_key(preset)
                    )),
                );
            }
        }
    }
    // The services of the enabled presets that exist with this configuration.
    let preset_services: Vec<(&'static Preset, &'static PresetService)> = enabled
        .iter()
        .flat_map(|preset| preset.services.iter().map(move |s| (*preset, s)))
        .filter(|(_, service)| match service.when {
            When::Always => true,
            When::Preset(name) => enabled.iter().any(|p| p.name == name),
            When::KeyPrefix(key, prefix) => keys
                .get_owned(key)
                .map(|v| v.text.trim().to_string())
                .or_else(|| presets::key_default(key).map(str::to_string))
                .is_some_and(|v| v.starts_with(prefix)),
        })
        .collect();

    // Declared services: the project's own, then the presets'.
    let mut declared: Vec<String> = Vec::new();
    let mut declared_spans = BTreeMap::new();
    if let Some(value) = keys.get("STACK_SERVICES") {
        for name in value.list() {
            let item = Value {
                key: "STACK_SERVICES",
                text: &name,
                span: value.span,
            };
            if errors.take(item.name("service name", "-")).is_none() {
                continue;
            }
            if declared.contains(&name) {
                errors.push(
                    Diagnostic::new(format!(
                        "service `{name}` is listed twice in `STACK_SERVICES`"
                    ))
                    .with_span(value.span.cloned()),
                );
                continue;
            }
            let reserved = PRESETS.iter().find(|p| {
                p.service() == name
                    || enabled.iter().any(|e| e.name == p.name)
                        && p.services.iter().any(|s| s.name == name)
            });
            if let Some(preset) = reserved {
                errors.push(
                    Diagnostic::new(format!(
                        "service name `{name}` is reserved for the `{}` preset",
                        preset.name
                    ))
                    .with_span(value.span.cloned())
                    .hint(format!(
                        "set `{}=true` instead, or pick another name",
                        presets::enabled_key(preset)
                    )),
                );
                continue;
            }
            if name == "proxy" && globals.proxy_kind != ProxyKind::None {
                errors.push(
                    Diagnostic::new("service name `proxy` is reserved for the proxy stack runs")
                        .with_span(value.span.cloned())
                        .hint("pick another name, or set `STACK_PROXY=none`"),
                );
                continue;
            }
            declared_spans.insert(name.clone(), value.span.cloned());
            declared.push(name);
        }
    }
    // Services that exist here: for the "declared services" of a hint.
    let mut running_names = declared.clone();
    for preset in &enabled {
        running_names.extend(preset.services.iter().map(|s| s.name.to_string()));
    }
    // Keys of a preset's main service are accepted even while the preset is off.
    let mut all_names = running_names.clone();
    all_names.extend(PRESETS.iter().map(|p| p.service().to_string()));
    all_names.sort();
    all_names.dedup();

    // Classify every key; group service attributes.
    let mut attrs: BTreeMap<String, Vec<(ServiceAttr, &str)>> = BTreeMap::new();
    let secret_layer_keys: BTreeSet<&str> = resolved
        .settings
        .iter()
        .filter(|(_, s)| s.kind == SourceKind::Secrets)
        .map(|(k, _)| k.as_str())
        .collect();
    let index = keys::ServiceIndex::new(&all_names).with_declared(&running_names);
    for (key, setting) in &resolved.settings {
        let span = Some(&setting.span);
        if key.starts_with("SERVICE_") {
            match index.split(key, span) {
                Ok((service, attr)) => attrs.entry(service).or_default().push((attr, key)),
                Err(diagnostic) => errors.push(diagnostic),
            }
        } else if key.starts_with("STACK_") {
            if !GLOBAL_KEYS.contains(&key.as_str()) && key != "STACK_ENV" {
                errors.push(unknown_key(key, GLOBAL_KEYS, span, "global keys"));
            }
        } else if key.starts_with("SERVER_") {
            if !SERVER_KEYS.contains(&key.as_str()) {
                errors.push(unknown_key(key, SERVER_KEYS, span, "server keys"));
            }
        } else if let Some(preset) = presets::owner_of(key) {
            let known = presets::preset_keys(preset);
            if !known.iter().any(|k| k == key) && !secret_layer_keys.contains(key.as_str()) {
                let names: Vec<&str> = known.iter().map(String::as_str).collect();
                errors.push(unknown_key(key, &names, span, "its keys"));
            }
        }
    }

    // Secrets: declared names, the presets' and whatever the secrets file holds.
    let mut secret_names: BTreeSet<String> = BTreeSet::new();
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
            secret_names.insert(name);
        }
    }
    for preset in &enabled {
        secret_names.extend(preset.secrets.iter().map(|s| s.to_string()));
    }
    secret_names.extend(secret_layer_keys.iter().map(|s| s.to_string()));
    presets::check(&keys, &enabled, &secret_names, &mut errors);
    let secrets: Vec<SecretSpec> = secret_names
        .iter()
        .map(|name| SecretSpec {
            name: name.clone(),
            present: keys.is_set(name),
            span: resolved.settings.get(name).map(|s| s.span.clone()),
        })
        .collect();

    // Secrets may reach a container only through ENV_ variables.
    for (key, setting) in &resolved.settings {
        let rendered = key.starts_with("STACK_") && key != "STACK_SECRETS"
            || key.starts_with("SERVICE_") && !key.contains("_ENV_");
        if let Some(secret) = setting.refs.iter().find(|r| secret_names.contains(*r)) {
            if rendered {
                errors.push(
                    Diagnostic::new(format!("`{key}` uses the secret `{secret}`"))
                        .at(&setting.span)
                        .hint(format!(
                            "secrets reach a container only through `SERVICE_<NAME>_ENV_<VAR>`; \
                             to use it in a command, write `$${secret}` so the container's shell expands it"
                        )),
                );
            }
        }
    }

    let context = service::Context {
        keys: &keys,
        project_dir: &sources.dir,
        project: &project,
        env,
        domain: &globals.domain,
        secret_names: &secret_names,
        target: globals.target,
    };
    let mut services = Vec::new();
    for name in &declared {
        let service_attrs = attrs.remove(name).unwrap_or_default();
        if let Some(service) = service::build(
            &context,
            name,
            None,
            &service_attrs,
            declared_spans.get(name).cloned().flatten(),
            &mut errors,
        ) {
            services.push(service);
        }
    }
    for (preset, preset_service) in preset_services {
        let service_attrs = attrs.remove(preset_service.name).unwrap_or_default();
        if let Some(service) = service::build(
            &context,
            preset_service.name,
            Some((preset, preset_service)),
            &service_attrs,
            enabled_spans[preset.name].clone(),
            &mut errors,
        ) {
            services.push(service);
        }
    }

    // Which services run in this environment.
    let services: Vec<Service> = services
        .into_iter()
        .filter(|service| {
            let in_env = service
                .environments
                .as_ref()
                .is_none_or(|envs| envs.iter().any(|e| e == env));
            let frontend_ok = !service.frontend || env != "prod" || options.include_frontends;
            in_env && frontend_ok
        })
        .collect();

    let server = read_server(&keys, &project, &mut errors);
    let proxy = Proxy {
        kind: globals.proxy_kind,
        image: globals.proxy_image.clone(),
        http_port: globals.http_port,
        https_port: globals.https_port,
    };
    let mut config = Config {
        project,
        env: env.to_string(),
        project_dir: sources.dir.clone(),
        domain: globals.domain,
        proxy,
        tls: globals.tls,
        tls_email: globals.tls_email,
        health_timeout: globals.health_timeout,
        drain: globals.drain,
        log_level: globals.log_level,
        keep_releases: globals.keep_releases,
        target: globals.target,
        volumes: Vec::new(),
        services,
        secrets,
        server,
        sources: sources.layers.iter().map(|l| l.name.to_string()).collect(),
    };
    if errors.0.is_empty() {
        validate::check(&mut config, &mut errors);
    }
    if !errors.0.is_empty() {
        return Err(Error::Invalid(errors.0));
    }
    let warnings = validate::warnings(&config);
    Ok((config, warnings))
}

fn placeholder_span() -> crate::error::Span {
    crate::error::Span {
        source: "STACK_SECRETS".into(),
        line: 0,
        col: 0,
        len: 0,
        line_text: "".into(),
    }
}

fn unknown_key(
    key: &str,
    known: &[&str],
    span: Option<&crate::error::Span>,
    what: &str,
) -> Diagnostic {
    let diagnostic = Diagnostic::new(format!("unknown key `{key}`")).with_span(span.cloned());
    match nearest(key, known.iter().copied()) {
        Some(near) => diagnostic.hint(format!("did you mean `{near}`?")),
        None => diagnostic.hint(format!("{what}: {}", known.join(", "))),
    }
}

impl<'a> Keys<'a> {
    /// [`Keys::get`] for a key built at run time.
    pub fn get_owned(&self, key: &str) -> Option<Value<'a>> {
        if let Some((k, setting)) = self.resolved.settings.get_key_value(key) {
            return Some(Value {
                key: k,
                text: &setting.value,
                span: Some(&setting.span),
            });
        }
        self.builtins.get_key_value(key).map(|(k, text)| Value {
            key: k,
            text,
            span: None,
        })
    }
}

/// The global keys, typed.
struct Globals {
    domain: String,
    proxy_kind: ProxyKind,
    proxy_image: String,
    http_port: u16,
    https_port: u16,
    tls: Tls,
    tls_email: Option<String>,
    health_timeout: Duration,
    drain: Duration,
    log_level: String,
    keep_releases: u32,
    target: Target,
}

impl Globals {
    fn read(keys: &Keys, errors: &mut Errors) -> Globals {
        let get = |key: &'static str| keys.get(key).expect("built-in default");
        let domain = errors
            .take(validate::hostname(&get("STACK_DOMAIN")))
            .unwrap_or_default();
        let proxy_kind = match errors.take(get("STACK_PROXY").choice(&["caddy", "nginx", "none"])) {
            Some("nginx") => ProxyKind::Nginx,
            Some("none") => ProxyKind::None,
            _ => ProxyKind::Caddy,
        };
        let proxy_image = match keys.get("STACK_PROXY_IMAGE") {
            Some(value) => errors.take(validate::image(&value)).unwrap_or_default(),
            None => match proxy_kind {
                ProxyKind::Nginx => NGINX_IMAGE.into(),
                _ => CADDY_IMAGE.into(),
            },
        };
        let http_port = errors.take(get("STACK_HTTP_PORT").port()).unwrap_or(80);
        let https_port = errors.take(get("STACK_HTTPS_PORT").port()).unwrap_or(443);
        if http_port == https_port {
            errors.push(
                Diagnostic::new(format!(
                    "`STACK_HTTP_PORT` and `STACK_HTTPS_PORT` are both {http_port}"
                ))
                .with_span(get("STACK_HTTPS_PORT").span.cloned()),
            );
        }
        let tls = match errors.take(get("STACK_TLS").choice(&["auto", "internal", "off"])) {
            Some("internal") => Tls::Internal,
            Some("off") => Tls::Off,
            _ => Tls::Auto,
        };
        let tls_email = keys.get("STACK_TLS_EMAIL").and_then(|value| {
            let text = value.text.trim();
            if text.is_empty() {
                return None;
            }
            let valid = text.contains('@')
                && !text.starts_with('@')
                && !text.ends_with('@')
                && text
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "@._+-".contains(c));
            if valid {
                Some(text.to_string())
            } else {
                errors.push(
                    Diagnostic::new(format!(
                        "`STACK_TLS_EMAIL` is not an email address: `{text}`"
                    ))
                    .with_span(value.span.cloned())
                    .hint("write e.g. `ops@example.com`"),
                );
                None
            }
        });
        let health_timeout = errors
            .take(get("STACK_HEALTH_TIMEOUT").duration())
            .unwrap_or(Duration::from_secs(120));
        let log_level = errors
            .take(get("STACK_LOG_LEVEL").line())
            .unwrap_or_default();
        let keep_releases = errors
            .take(get("STACK_KEEP_RELEASES").number::<u32>(1, 1000))
            .unwrap_or(5);
        let target = match errors.take(get("STACK_TARGET").choice(&["compose", "swarm"])) {
            Some("swarm") => Target::Swarm,
            _ => Target::Compose,
        };
        let drain = errors
            .take(get("STACK_DRAIN").duration())
            .unwrap_or(Duration::from_secs(2));
        Globals {
            drain,
            domain,
            proxy_kind,
            proxy_image,
            http_port,
            https_port,
            tls,
            tls_email,
            health_timeout,
            log_level,
            keep_releases,
            target,
        }
    }
}

fn read_server(keys: &Keys, project: &str, errors: &mut Errors) -> Option<Server> {
    let any = SERVER_KEYS.iter().any(|k| keys.is_set(k));
    if !any {
        return None;
    }
    let Some(host_value) = keys
        .get("SERVER_HOST")
        .filter(|v| !v.text.trim().is_empty())
    else {
        let span = SERVER_KEYS
            .iter()
            .find_map(|k| keys.get(k).and_then(|v| v.span.cloned()));
        errors.push(
            Diagnostic::new("`SERVER_HOST` is not set")
                .with_span(span)
                .hint(
                    "add `SERVER_HOST=203.0.113.10` (or a host from ~/.ssh/config) to server.env",
                ),
        );
        return None;
    };
    let host = errors.take(validate::ssh_host(&host_value))?;
    let user = match keys.get("SERVER_USER") {
        Some(value) => errors.take(validate::ssh_user(&value))?,
        None => "deploy".into(),
    };
    let port = match keys.get("SERVER_PORT") {
        Some(value) => errors.take(value.port())?,
        None => 22,
    };
    let path = match keys.get("SERVER_PATH") {
        Some(value) => errors.take(validate::server_path(&value))?,
        None => format!("/opt/{project}"),
    };
    let ssh_key = keys
        .get("SERVER_SSH_KEY")
        .filter(|v| !v.text.is_empty())
        .and_then(|v| errors.take(v.line()));
    let docker_socket = match keys.get("SERVER_DOCKER_SOCKET") {
        Some(value) => errors.take(validate::server_path(&value))?,
        None => "/var/run/docker.sock".into(),
    };
    Some(Server {
        host,
        user,
        port,
        path,
        ssh_key,
        docker_socket,
    })
}

/// Lexically clean a path (`a/./b/../c` → `a/c`).
pub fn normalize_path(path: &Path) -> std::path::PathBuf {
    service::normalize(path)
}

/// A domain name as `STACK_DOMAIN` accepts it.
pub fn validate_hostname(text: &str) -> bool {
    validate::is_hostname(text) && !text.starts_with("*.")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_text(text: &str, env: &str) -> Result<Loaded> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("stack.env"), text).unwrap();
        load(dir.path(), env, &[], &Options::default(), |_| None)
    }

    fn diagnostics(result: Result<Loaded>) -> Vec<Diagnostic> {
        match result {
            Err(Error::Invalid(diagnostics)) => diagnostics,
            Err(other) => panic!("not a configuration error: {other:?}"),
            Ok(_) => panic!("the configuration was accepted"),
        }
    }

    fn names(loaded: &Loaded) -> Vec<&str> {
        loaded
            .config
            .services
            .iter()
            .map(|s| s.name.as_str())
            .collect()
    }

    #[test]
    fn preset_defaults_can_be_interpolated() {
        let loaded = load_text(
            "STACK_PROJECT=my-app\nSTACK_SERVICES=web\nPOSTGRES_ENABLED=true\n\
             SERVICE_WEB_IMAGE=web:1\nSERVICE_WEB_ENV_DB=${POSTGRES_USER}@postgres/${POSTGRES_DB}:${POSTGRES_VERSION}\n",
            "dev",
        )
        .unwrap();
        let web = &loaded.config.services[0];
        assert_eq!(web.env["DB"].value, "my_app@postgres/my_app:16");
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    }

    #[test]
    fn backup_without_postgres_names_the_line() {
        let errors = diagnostics(load_text(
            "STACK_PROJECT=app\nREDIS_ENABLED=true\nBACKUP_ENABLED=true\n",
            "dev",
        ));
        let error = errors
            .iter()
            .find(|d| {
                d.message
                    .contains("`BACKUP` preset needs the `POSTGRES` preset")
            })
            .unwrap_or_else(|| panic!("{errors:?}"));
        let span = error.span.as_ref().expect("a location");
        assert_eq!(span.line, 3);
        assert!(span.line_text.contains("BACKUP_ENABLED"));
        assert!(error
            .hint
            .as_deref()
            .unwrap()
            .contains("POSTGRES_ENABLED=true"));
    }

    #[test]
    fn monitoring_adds_its_services_and_the_exporters_of_enabled_presets() {
        let loaded = load_text(
            "STACK_PROJECT=app\nMONITORING_ENABLED=true\nPOSTGRES_ENABLED=true\n\
             SERVICE_PROMETHEUS_IMAGE=prom/prometheus:v3.0.0\n",
            "dev",
        )
        .unwrap();
        let services = names(&loaded);
        for name in [
            "prometheus",
            "alertmanager",
            "grafana",
            "loki",
            "promtail",
            "node-exporter",
            "cadvisor",
            "postgres-exporter",
        ] {
            assert!(services.contains(&name), "{name} missing from {services:?}");
        }
        assert!(!services.contains(&"redis-exporter"));
        let prometheus = &loaded
            .config
            .services
            .iter()
            .find(|s| s.name == "prometheus");
        let prometheus = prometheus.unwrap();
        assert_eq!(prometheus.image.as_deref(), Some("prom/prometheus:v3.0.0"));
        assert!(prometheus
            .volumes
            .iter()
            .any(|m| m.source == MountSource::Bundle("prometheus".into())
                && m.target == "/etc/prometheus"
                && m.read_only));
        let exporter = loaded
            .config
            .services
            .iter()
            .find(|s| s.name == "postgres-exporter")
            .unwrap();
        assert!(exporter.env["DATA_SOURCE_PASS"].secret);
        assert!(!exporter.env["DATA_SOURCE_USER"].secret);
        let grafana = loaded
            .config
            .services
            .iter()
            .find(|s| s.name == "grafana")
            .unwrap();
        assert!(grafana.routes.is_empty());
        assert!(grafana.env["GF_SECURITY_ADMIN_PASSWORD"].secret);
    }

    #[test]
    fn grafana_route_comes_from_its_key() {
        let loaded = load_text(
            "STACK_PROJECT=app\nSTACK_DOMAIN=example.com\nMONITORING_ENABLED=true\n\
             MONITORING_GRAFANA_ROUTE=grafana.${STACK_DOMAIN}\n",
            "dev",
        )
        .unwrap();
        let grafana = loaded
            .config
            .services
            .iter()
            .find(|s| s.name == "grafana")
            .unwrap();
        assert_eq!(grafana.routes[0].host, "grafana.example.com");
        let errors = diagnostics(load_text(
            "STACK_PROJECT=app\nMONITORING_ENABLED=true\nMONITORING_GRAFANA_ROUTE=bad host\n",
            "dev",
        ));
        assert!(
            errors
                .iter()
                .any(|d| d.span.as_ref().is_some_and(|s| s.line == 3)),
            "{errors:?}"
        );
    }

    #[test]
    fn a_preset_service_name_is_free_while_the_preset_is_off() {
        let text = "STACK_PROJECT=app\nSTACK_SERVICES=grafana\nSERVICE_GRAFANA_IMAGE=grafana/grafana:11.3.0\n";
        let loaded = load_text(text, "dev").unwrap();
        assert_eq!(names(&loaded), ["grafana"]);
        let errors = diagnostics(load_text(
            &format!("{text}MONITORING_ENABLED=true\n"),
            "dev",
        ));
        assert!(
            errors
                .iter()
                .any(|d| d.message.contains("reserved for the `MONITORING` preset")),
            "{errors:?}"
        );
    }

    #[test]
    fn backup_keys_are_checked() {
        let base = "STACK_PROJECT=app\nPOSTGRES_ENABLED=true\nBACKUP_ENABLED=true\n";
        for (line, message) in [
            ("BACKUP_SCHEDULE=0 3 * *", "4 fields instead of 5"),
            ("BACKUP_SCHEDULE=0 25 * * *", "hour"),
            ("BACKUP_KEEP_DAILY=many", "whole number"),
            ("BACKUP_TARGET=backups", "neither"),
            ("BACKUP_TARGET=s3://B", "bucket"),
            ("BACKUP_TARGET=s3://bucket/db", "BACKUP_S3_ACCESS_KEY"),
        ] {
            let errors = diagnostics(load_text(&format!("{base}{line}\n"), "dev"));
            let error = errors
                .iter()
                .find(|d| d.message.contains(message))
                .unwrap_or_else(|| panic!("{line}: {errors:?}"));
            assert_eq!(error.span.as_ref().map(|s| s.line), Some(4), "{line}");
        }
    }

    #[test]
    fn backup_to_s3_adds_the_upload_sidecar() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("stack.env"),
            "STACK_PROJECT=app\nPOSTGRES_ENABLED=true\nBACKUP_ENABLED=true\n\
             BACKUP_TARGET=s3://backups-bucket/app/db\nBACKUP_S3_ENDPOINT=https://s3.example.com\n",
        )
        .unwrap();
        std::fs::create_dir_all(dir.path().join("environments/dev")).unwrap();
        std::fs::write(
            dir.path().join("environments/dev/secrets.env"),
            "POSTGRES_PASSWORD=pw\nBACKUP_S3_ACCESS_KEY=AKIA1\nBACKUP_S3_SECRET_KEY=se/cr+et\n",
        )
        .unwrap();
        let loaded = load(dir.path(), "dev", &[], &Options::default(), |_| None).unwrap();
        let sidecar = loaded
            .config
            .services
            .iter()
            .find(|s| s.name == "backup-s3")
            .expect("backup-s3");
        let host = &sidecar.env["MC_HOST_backup"];
        assert!(host.secret);
        assert_eq!(host.value, "https://AKIA1:se%2Fcr%2Bet@s3.example.com");
        assert_eq!(
            sidecar.command.as_ref().unwrap().last().unwrap(),
            "backup/backups-bucket/app/db"
        );
        let backup = loaded
            .config
            .services
            .iter()
            .find(|s| s.name == "backup")
            .unwrap();
        assert!(backup
            .volumes
            .iter()
            .any(|m| m.source == MountSource::Volume("backup-data".into())));
    }
}
