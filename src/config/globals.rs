//! The global (`STACK_`) and server (`SERVER_`) keys, typed.

use std::time::Duration;

use super::keys::SERVER_KEYS;
use super::lookup::{Errors, Keys};
use super::model::*;
use super::validate;
use super::values::Value;
use super::{CADDY_IMAGE, NGINX_IMAGE};
use crate::error::Diagnostic;

/// The global keys, typed.
pub(super) struct Globals {
    pub domain: String,
    pub proxy: Proxy,
    pub tls: Tls,
    pub tls_email: Option<String>,
    pub acme: Acme,
    pub health_timeout: Duration,
    pub drain: Duration,
    pub log_level: String,
    pub keep_releases: u32,
    pub target: Target,
    pub logging: LogRotation,
    pub networks: Vec<NetworkSpec>,
    pub image_transfer: ImageTransfer,
    pub swarm_publish: super::PublishMode,
    pub swarm_encrypt: bool,
    pub registry_image: String,
    pub hooks: Hooks,
    pub protected: bool,
    pub previews: super::preview::Previews,
}

/// A global key that always has a value (a built-in default).
fn global<'a>(keys: &Keys<'a>, key: &'static str) -> Value<'a> {
    keys.get(key).expect("built-in default")
}

impl Globals {
    /// Read every `STACK_` key (but the services and secrets lists).
    pub fn read(keys: &Keys, errors: &mut Errors) -> Globals {
        let get = |key: &'static str| global(keys, key);
        let domain = errors
            .take(validate::hostname(&get("STACK_DOMAIN")))
            .unwrap_or_default();
        let proxy = read_proxy(keys, errors);
        let tls = read_tls(keys, errors);
        let tls_email = read_tls_email(keys, errors);
        let acme = read_acme(keys, errors);
        let health_timeout = duration(&get("STACK_HEALTH_TIMEOUT"), 120, errors);
        let log_level = errors
            .take(get("STACK_LOG_LEVEL").line())
            .unwrap_or_default();
        let keep_releases = errors
            .take(get("STACK_KEEP_RELEASES").number::<u32>(1, 1000))
            .unwrap_or(5);
        let target = read_target(keys, errors);
        let drain = duration(&get("STACK_DRAIN"), 2, errors);
        let logging = read_logging(keys, errors);
        let networks = keys
            .get("STACK_NETWORKS")
            .map(|v| read_networks(&v, errors))
            .unwrap_or_default();
        let image_transfer = read_image_transfer(keys, errors);
        let swarm_publish = read_swarm_publish(keys, errors);
        let swarm_encrypt = read_swarm_encrypt(keys, target, errors);
        let registry_image = errors
            .take(validate::image(&get("STACK_REGISTRY_IMAGE")))
            .unwrap_or_default();
        let hooks = Hooks {
            pre_build: hook(keys, "STACK_HOOK_PRE_BUILD", errors),
            pre_deploy: hook(keys, "STACK_HOOK_PRE_DEPLOY", errors),
            post_deploy: hook(keys, "STACK_HOOK_POST_DEPLOY", errors),
        };
        errors.take(timezone(keys.get("STACK_TIMEZONE")));
        let protected = errors
            .take(get("STACK_PROTECTED").boolean())
            .unwrap_or(true);
        let previews = super::preview::read(keys, errors);
        Globals {
            previews,
            protected,
            image_transfer,
            swarm_publish,
            swarm_encrypt,
            registry_image,
            hooks,
            networks,
            logging,
            drain,
            domain,
            proxy,
            tls,
            tls_email,
            acme,
            health_timeout,
            log_level,
            keep_releases,
            target,
        }
    }
}

/// `STACK_TLS`: `auto` (the default), `internal` or `off`.
fn read_tls(keys: &Keys, errors: &mut Errors) -> Tls {
    match errors.take(global(keys, "STACK_TLS").choice(&["auto", "internal", "off"])) {
        Some("internal") => Tls::Internal,
        Some("off") => Tls::Off,
        _ => Tls::Auto,
    }
}

/// `STACK_TARGET`: `compose` (the default) or `swarm`.
fn read_target(keys: &Keys, errors: &mut Errors) -> Target {
    match errors.take(global(keys, "STACK_TARGET").choice(&["compose", "swarm"])) {
        Some("swarm") => Target::Swarm,
        _ => Target::Compose,
    }
}

/// `STACK_LOG_MAX_SIZE` and `STACK_LOG_MAX_FILES`: the rotation of container logs.
fn read_logging(keys: &Keys, errors: &mut Errors) -> LogRotation {
    LogRotation {
        max_size: errors
            .take(super::attrs::size(&global(keys, "STACK_LOG_MAX_SIZE")))
            .unwrap_or(LogRotation::default().max_size),
        max_files: errors
            .take(global(keys, "STACK_LOG_MAX_FILES").number::<u32>(1, 100))
            .unwrap_or(3),
    }
}

/// `STACK_IMAGE_TRANSFER`: `registry` (the default) or `archive`.
fn read_image_transfer(keys: &Keys, errors: &mut Errors) -> ImageTransfer {
    match errors.take(global(keys, "STACK_IMAGE_TRANSFER").choice(&["registry", "archive"])) {
        Some("archive") => ImageTransfer::Archive,
        _ => ImageTransfer::Registry,
    }
}

/// `STACK_SWARM_PUBLISH`: `ingress` (the default) or `host`.
fn read_swarm_publish(keys: &Keys, errors: &mut Errors) -> super::PublishMode {
    match errors.take(global(keys, "STACK_SWARM_PUBLISH").choice(&["ingress", "host"])) {
        Some("host") => super::PublishMode::Host,
        _ => super::PublishMode::Ingress,
    }
}

/// `STACK_SWARM_ENCRYPT`, which only swarm's overlay networks honour.
fn read_swarm_encrypt(keys: &Keys, target: Target, errors: &mut Errors) -> bool {
    let encrypt = global(keys, "STACK_SWARM_ENCRYPT");
    let swarm_encrypt = errors.take(encrypt.boolean()).unwrap_or(false);
    if swarm_encrypt && target != Target::Swarm {
        errors.push(
            Diagnostic::new("`STACK_SWARM_ENCRYPT=true` needs `STACK_TARGET=swarm`")
                .with_span(encrypt.span.cloned())
                .hint("encryption is an option of swarm's overlay networks; remove it, or set `STACK_TARGET=swarm`"),
        );
    }
    swarm_encrypt
}

/// `STACK_NETWORKS`: `name`, `name:internal` or `name:external`, comma-separated.
fn read_networks(v: &Value, errors: &mut Errors) -> Vec<NetworkSpec> {
    let mut out: Vec<NetworkSpec> = Vec::new();
    for item in v.list() {
        let (name, internal, external) = match item.split_once(':') {
            Some((name, "internal")) => (name.trim(), true, false),
            Some((name, "external")) => (name.trim(), false, true),
            Some(_) => {
                errors.push(
                    Diagnostic::new(format!(
                        "`STACK_NETWORKS`: `{item}` is not `name`, `name:internal` or `name:external`"
                    ))
                    .with_span(v.span.cloned())
                    .hint("write e.g. `STACK_NETWORKS=frontend,backend:internal,shared:external`"),
                );
                continue;
            }
            None => (item.as_str(), false, false),
        };
        if !super::values::check_name(name, "_.-") {
            errors.push(
                Diagnostic::new(format!(
                    "`STACK_NETWORKS`: `{name}` is not a valid network name"
                ))
                .with_span(v.span.cloned())
                .hint("a network name has lower-case letters, digits, `_`, `.` and `-`"),
            );
        } else if name == DEFAULT_NETWORK && (internal || external) {
            errors.push(
                Diagnostic::new("`STACK_NETWORKS`: the `default` network cannot be internal or external")
                    .with_span(v.span.cloned())
                    .hint("the proxy publishes its ports from `default`; declare another network, e.g. `backend:internal`, for services that must not reach out"),
            );
        } else if out.iter().any(|n| n.name == name) {
            errors.push(
                Diagnostic::new(format!("`STACK_NETWORKS` names `{name}` twice"))
                    .with_span(v.span.cloned())
                    .hint("keep one of them"),
            );
        } else {
            out.push(NetworkSpec {
                name: name.to_string(),
                internal,
                external,
            });
        }
    }
    out
}

/// A hook: one line of shell, when set and not empty.
fn hook(keys: &Keys, key: &'static str, errors: &mut Errors) -> Option<String> {
    let value = keys.get(key)?;
    if value.text.trim().is_empty() {
        return None;
    }
    errors.take(value.line())
}

/// `STACK_PROXY`, `STACK_PROXY_IMAGE` and the two host ports it listens on.
fn read_proxy(keys: &Keys, errors: &mut Errors) -> Proxy {
    let get = |key: &'static str| global(keys, key);
    let kind = match errors.take(get("STACK_PROXY").choice(&["caddy", "nginx", "none"])) {
        Some("nginx") => ProxyKind::Nginx,
        Some("none") => ProxyKind::None,
        _ => ProxyKind::Caddy,
    };
    let image = match keys.get("STACK_PROXY_IMAGE") {
        Some(value) => errors.take(validate::image(&value)).unwrap_or_default(),
        None => match kind {
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
    let stream_close_delay = keys
        .get("STACK_CADDY_STREAM_CLOSE_DELAY")
        .and_then(|value| match kind {
            ProxyKind::Caddy => errors.take(value.duration()),
            _ => {
                errors.push(
                    Diagnostic::new(format!(
                        "`STACK_CADDY_STREAM_CLOSE_DELAY` is Caddy's, and the proxy is {}",
                        get("STACK_PROXY").quoted()
                    ))
                    .with_span(value.span.cloned())
                    .hint("remove it: nginx keeps a reload's open connections on its old workers anyway"),
                );
                None
            }
        })
        .filter(|delay| !delay.is_zero());
    Proxy {
        kind,
        image,
        http_port,
        https_port,
        stream_close_delay,
    }
}

/// `STACK_ACME_CA` (an `https://` directory URL) and `STACK_ACME_CA_ROOT` (a PEM file
/// in the project), when set.
fn read_acme(keys: &Keys, errors: &mut Errors) -> Acme {
    let ca = keys.get("STACK_ACME_CA").and_then(|value| {
        let text = value.text.trim();
        if text.is_empty() {
            return None;
        }
        let host = text.strip_prefix("https://").unwrap_or("");
        let valid = !host.is_empty()
            && !host.starts_with('/')
            && text.chars().all(|c| c.is_ascii_graphic() && !"\"'{}\\`".contains(c));
        if valid {
            return Some(text.to_string());
        }
        errors.push(
            Diagnostic::new(format!(
                "`STACK_ACME_CA` is not an `https://` URL: {}",
                value.show(text)
            ))
            .with_span(value.span.cloned())
            .hint("write the ACME directory URL, e.g. `https://acme-staging-v02.api.letsencrypt.org/directory`; leave it out for Let's Encrypt"),
        );
        None
    });
    let ca_root = keys.get("STACK_ACME_CA_ROOT").and_then(|value| {
        if value.text.trim().is_empty() {
            return None;
        }
        let rel = errors.take(validate::relative_path(&value))?;
        let path = super::normalize_path(std::path::Path::new(&rel));
        if path.starts_with("..") {
            errors.push(
                Diagnostic::new(format!(
                    "`STACK_ACME_CA_ROOT` points outside the project: {}",
                    value.quoted()
                ))
                .with_span(value.span.cloned())
                .hint("copy the PEM file into the project and write e.g. `./acme-root.pem`"),
            );
            return None;
        }
        Some(path)
    });
    let certbot_image = keys
        .get("STACK_CERTBOT_IMAGE")
        .filter(|v| !v.text.trim().is_empty())
        .and_then(|v| errors.take(validate::image(&v)));
    let certbot_interval = keys
        .get("STACK_CERTBOT_INTERVAL")
        .filter(|v| !v.text.trim().is_empty())
        .map(|v| duration(&v, 12 * 3600, errors));
    Acme {
        ca,
        ca_root,
        certbot_image,
        certbot_interval,
    }
}

/// `STACK_TLS_EMAIL`, when set and an email address.
fn read_tls_email(keys: &Keys, errors: &mut Errors) -> Option<String> {
    let value = keys.get("STACK_TLS_EMAIL")?;
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
        return Some(text.to_string());
    }
    errors.push(
        Diagnostic::new(format!(
            "`STACK_TLS_EMAIL` is not an email address: {}",
            value.show(text)
        ))
        .with_span(value.span.cloned())
        .hint("write e.g. `ops@example.com`"),
    );
    None
}

/// The `SERVER_` keys, when any is set.
pub(super) fn read_server(keys: &Keys, project: &str, errors: &mut Errors) -> Option<Server> {
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
        None => super::default_server_path(project),
    };
    let ssh_key = keys
        .get("SERVER_SSH_KEY")
        .filter(|v| !v.text.is_empty())
        .and_then(|v| errors.take(v.line()));
    let docker_socket = match keys.get("SERVER_DOCKER_SOCKET") {
        Some(value) => errors.take(validate::server_path(&value))?,
        None => "/var/run/docker.sock".into(),
    };
    let flag = |key: &str, errors: &mut Errors| {
        keys.get(key)
            .and_then(|v| errors.take(v.boolean()))
            .unwrap_or(false)
    };
    let firewall = flag("SERVER_FIREWALL", errors);
    let unattended_upgrades = flag("SERVER_UNATTENDED_UPGRADES", errors);
    let nodes = keys
        .get("SERVER_NODES")
        .and_then(|v| errors.take(validate::ssh_hosts(&v)))
        .unwrap_or_default();
    Some(Server {
        host,
        user,
        port,
        path,
        ssh_key,
        docker_socket,
        firewall,
        unattended_upgrades,
        nodes,
    })
}

/// A duration key, `default_seconds` when it does not read (the error is pushed).
fn duration(value: &Value, default_seconds: u64, errors: &mut Errors) -> Duration {
    errors
        .take(value.duration())
        .unwrap_or(Duration::from_secs(default_seconds))
}

/// `STACK_TIMEZONE`, when set: an IANA time zone name, as the schedules of jobs are read
/// in it.
fn timezone(value: Option<Value>) -> Result<(), Diagnostic> {
    let Some(value) = value else {
        return Ok(());
    };
    match value.text.trim().parse::<chrono_tz::Tz>() {
        Ok(_) => Ok(()),
        Err(_) => Err(Diagnostic::new(format!(
            "`{}` is not a time zone: {}",
            value.key,
            value.quoted()
        ))
        .with_span(value.span.cloned())
        .hint("write an IANA name such as `UTC`, `Europe/Berlin` or `America/New_York`")),
    }
}
