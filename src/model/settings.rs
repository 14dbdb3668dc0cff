//! The parts of [`Desired`] that are not containers: what the proxy's configuration
//! routes (domain, TLS, gates, ACME), what the MONITORING and BACKUP presets' files say,
//! and the server facts the systemd unit needs. Built once from the validated
//! [`Config`], every default applied here, so the renderers only format.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::*;
use crate::config::{presets, BasicAuth, Config, ForwardAuth, ProxyKind, Tls, Upstream};

/// What the reverse proxy's configuration says (the proxy container itself is one of
/// [`Desired::services`]). Present when a proxy runs: a proxy kind and a route.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Routing {
    pub kind: ProxyKind,
    pub tls: Tls,
    /// `STACK_TLS_EMAIL`, the ACME account.
    pub email: Option<String>,
    /// `STACK_ACME_CA`: the ACME directory (none: the proxy's default, Let's Encrypt).
    pub acme_ca: Option<String>,
    /// `STACK_ACME_CA_ROOT` is set: the proxy trusts the file mounted at
    /// [`ACME_CA_ROOT_TARGET`].
    pub acme_ca_root: bool,
    /// How often certbot looks for missing and due certificates.
    pub certbot_interval: Duration,
    /// The services the proxy routes to or holds a password file for, in project order.
    pub services: Vec<Routed>,
    /// The proxy also routes the environment's previews (`STACK_PREVIEW_DOMAIN`, Caddy or nginx):
    /// it imports their route files.
    #[serde(default)]
    pub previews: bool,
    /// `STACK_PREVIEW_TTL` of an environment that hosts previews: `supervise` removes
    /// the previews idle longer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview_ttl: Option<Duration>,
    /// `STACK_CADDY_STREAM_CLOSE_DELAY` (Caddy only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_close_delay: Option<Duration>,
}

impl Routing {
    /// nginx serves HTTPS with certificates certbot gets from an ACME server.
    pub fn certbot(&self) -> bool {
        self.kind == ProxyKind::Nginx && self.tls == Tls::Auto
    }
}

/// A service as the proxy sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Routed {
    pub name: String,
    pub routes: Vec<Route>,
    /// The container port the proxy forwards to.
    pub port: Option<u16>,
    /// An app outside Docker (`UPSTREAM`), instead of a container.
    pub upstream: Option<Upstream>,
    /// `ROUTE_STRIP`: the route's path prefix is removed before forwarding.
    pub route_strip: bool,
    /// `AUTH`: a forward-auth endpoint asked first.
    pub auth: Option<ForwardAuth>,
    /// `BASIC_AUTH`: a user and its password hash (the hash is never serialised).
    pub basic_auth: Option<BasicAuth>,
}

/// The MONITORING preset's configuration files: which of its services run, and their
/// settings with defaults applied.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Monitoring {
    pub prometheus: Option<Prometheus>,
    pub alertmanager: Option<Alertmanager>,
    pub grafana: bool,
    pub loki: bool,
    pub promtail: bool,
    pub docker_proxy: bool,
}

/// `prometheus.yml` and the alert rules.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prometheus {
    /// `MONITORING_SCRAPE_INTERVAL`.
    pub scrape_interval: String,
    /// `MONITORING_ALERT_FOR`, when set.
    pub alert_for: Option<String>,
    /// `MONITORING_DISK_PERCENT`.
    pub disk_percent: String,
    /// Where Prometheus sends alerts: `alertmanager:<port>`.
    pub alertmanager: String,
    pub jobs: Vec<ScrapeJob>,
}

/// One Prometheus scrape job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScrapeJob {
    pub name: String,
    pub host: String,
    pub port: u16,
    pub path: String,
    pub replicas: u32,
}

/// `alertmanager.yml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alertmanager {
    /// A plain webhook URL.
    pub webhook: Option<String>,
    /// A secret webhook: the file Alertmanager reads it from.
    pub webhook_file: Option<String>,
    /// `MONITORING_GROUP_WAIT`.
    pub group_wait: String,
}

/// The BACKUP preset runs (its `backup` service).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Backup {
    /// `BACKUP_VERIFY_MAX_AGE` in hours: the alert's threshold.
    pub verify_max_age_hours: u64,
}

/// What the systemd unit needs to know about the server.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerFacts {
    /// `SERVER_PATH` (default `/opt/<project>`).
    pub path: String,
    /// `SERVER_USER`, when the environment has a server.
    pub user: Option<String>,
}

/// The proxy's routing, when a proxy runs.
pub(super) fn routing(config: &Config) -> Option<Routing> {
    if !config.needs_proxy() {
        return None;
    }
    let services = config
        .services
        .iter()
        .filter(|s| !s.routes.is_empty() || s.basic_auth.is_some())
        .map(|s| Routed {
            name: s.name.clone(),
            routes: s.routes.clone(),
            port: s.port,
            upstream: s.upstream.clone(),
            route_strip: s.route_strip,
            auth: s.auth.clone(),
            basic_auth: s.basic_auth.clone(),
        })
        .collect();
    Some(Routing {
        kind: config.proxy.kind,
        tls: config.tls,
        email: config.tls_email.clone(),
        acme_ca: config.acme.ca.clone(),
        acme_ca_root: config.acme.ca_root.is_some(),
        certbot_interval: config.acme.certbot_interval.unwrap_or(CERTBOT_INTERVAL),
        services,
        previews: super::preview::hosts_previews(config),
        preview_ttl: super::preview::hosts_previews(config).then_some(config.previews.ttl),
        stream_close_delay: config.proxy.stream_close_delay,
    })
}

fn preset_service<'a>(
    config: &'a Config,
    name: &str,
    preset: &str,
) -> Option<&'a crate::config::Service> {
    config
        .services
        .iter()
        .find(|s| s.name == name && s.preset == Some(preset))
}

/// A setting a preset service carries in its environment from the preset key `key`
/// (checked at input), else the key's default in the preset's table (an empty value is
/// unset): the one place that default applies.
fn setting(service: &crate::config::Service, var: &str, key: &str) -> Option<String> {
    service
        .env_value(var)
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .or_else(|| presets::key_default(key).map(str::to_string))
}

/// An attribute of a preset's service as the preset's table defines it.
fn preset_attribute(service: &str, attribute: &str) -> Option<&'static str> {
    presets::PRESETS
        .iter()
        .flat_map(|preset| preset.services)
        .find(|s| s.name == service)?
        .attrs
        .iter()
        .find(|(name, _)| *name == attribute)
        .map(|(_, value)| *value)
}

/// The MONITORING preset's files.
pub(super) fn monitoring(config: &Config) -> Monitoring {
    let on = |name: &str| preset_service(config, name, presets::PRESET_MONITORING);
    let prometheus = on("prometheus").map(|service| Prometheus {
        scrape_interval: setting(
            service,
            "STACK_SCRAPE_INTERVAL",
            "MONITORING_SCRAPE_INTERVAL",
        )
        .unwrap_or_default(),
        alert_for: setting(service, "STACK_ALERT_FOR", "MONITORING_ALERT_FOR"),
        disk_percent: setting(service, "STACK_DISK_PERCENT", "MONITORING_DISK_PERCENT")
            .unwrap_or_default(),
        alertmanager: format!(
            "alertmanager:{}",
            on("alertmanager")
                .and_then(|s| s.port.map(|port| port.to_string()))
                .or_else(|| preset_attribute("alertmanager", "PORT").map(str::to_string))
                .unwrap_or_default()
        ),
        jobs: scrape_jobs(config),
    });
    let alertmanager = on("alertmanager").map(|service| Alertmanager {
        webhook: service
            .env
            .get("STACK_ALERT_WEBHOOK")
            .and_then(|v| match v {
                EnvValue::Plain(text) if !text.is_empty() => Some(text.clone()),
                _ => None,
            }),
        webhook_file: service
            .secret_files
            .iter()
            .find(|f| f.key == "MONITORING_ALERT_WEBHOOK")
            .map(|f| f.target.clone()),
        group_wait: setting(service, "STACK_GROUP_WAIT", "MONITORING_GROUP_WAIT")
            .unwrap_or_default(),
    });
    Monitoring {
        prometheus,
        alertmanager,
        grafana: on("grafana").is_some(),
        loki: on("loki").is_some(),
        promtail: on("promtail").is_some(),
        docker_proxy: on("docker-proxy").is_some(),
    }
}

/// Scrape jobs: the monitoring services (the exporters included), then each of the
/// project's own containers whose `METRICS` names a path (`presets::scrape_path`).
fn scrape_jobs(config: &Config) -> Vec<ScrapeJob> {
    let preset = Some(presets::PRESET_MONITORING);
    let ours = config.services.iter().filter(|s| s.preset == preset);
    let theirs = config.services.iter().filter(|s| s.preset.is_none());
    ours.chain(theirs)
        .filter_map(|s| {
            let path = presets::scrape_path(s)?;
            let host = if s.name == "prometheus" {
                "localhost".to_string()
            } else {
                s.name.clone()
            };
            Some(ScrapeJob {
                name: s.name.clone(),
                host,
                port: s.port?,
                path,
                replicas: s.replicas,
            })
        })
        .collect()
}

/// The BACKUP preset, when its `backup` service runs.
pub(super) fn backup(config: &Config) -> Option<Backup> {
    let service = preset_service(config, "backup", "BACKUP")?;
    let age = setting(service, "BACKUP_VERIFY_MAX_AGE", "BACKUP_VERIFY_MAX_AGE");
    Some(Backup {
        verify_max_age_hours: age
            .as_deref()
            .and_then(presets::retention_hours)
            .unwrap_or_default(),
    })
}

/// The server facts of the environment (`server.env`), defaults applied.
pub(super) fn server(config: &Config) -> ServerFacts {
    ServerFacts {
        path: config.server_path(),
        user: config.server.as_ref().map(|s| s.user.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MONITORED: &str = "STACK_PROJECT=app\nSTACK_DOMAIN=example.com\nSTACK_SERVICES=api\n\
         SERVICE_API_IMAGE=api:1\nSERVICE_API_PORT=8080\nSERVICE_API_METRICS=/metrics\n\
         SERVICE_API_ROUTE=api.${STACK_DOMAIN}\nMONITORING_ENABLED=true\n";

    fn desired(text: &str) -> Desired {
        let loaded = crate::config::tests::load_text(text, "dev").unwrap();
        super::super::unsealed(&loaded.config)
    }

    /// An empty preset key takes the preset table's default: the model applies it, the
    /// renderer only formats.
    #[test]
    fn monitoring_defaults_come_from_the_preset_table_once() {
        let empty =
            "MONITORING_SCRAPE_INTERVAL=\nMONITORING_DISK_PERCENT=\nMONITORING_GROUP_WAIT=\n";
        for text in [MONITORED.to_string(), format!("{MONITORED}{empty}")] {
            let monitoring = desired(&text).monitoring;
            let prometheus = monitoring.prometheus.unwrap();
            assert_eq!(prometheus.scrape_interval, "15s");
            assert_eq!(prometheus.disk_percent, "80");
            assert_eq!(prometheus.alert_for, None);
            assert_eq!(prometheus.alertmanager, "alertmanager:9093");
            assert!(prometheus
                .jobs
                .iter()
                .any(|j| j.name == "api" && j.port == 8080));
            assert_eq!(monitoring.alertmanager.unwrap().group_wait, "30s");
        }
        let set = desired(&format!(
            "{MONITORED}MONITORING_SCRAPE_INTERVAL=30s\nMONITORING_GROUP_WAIT=1m\n"
        ));
        let monitoring = set.monitoring;
        assert_eq!(monitoring.prometheus.unwrap().scrape_interval, "30s");
        assert_eq!(monitoring.alertmanager.unwrap().group_wait, "1m");
        assert!(desired(MONITORED).backup.is_none());
    }

    #[test]
    fn routing_and_server_facts_carry_their_defaults() {
        let routed = desired(MONITORED);
        let routing = routed.routing.as_ref().unwrap();
        assert_eq!(routing.kind, ProxyKind::Caddy);
        assert_eq!(routing.certbot_interval, CERTBOT_INTERVAL);
        assert!(!routing.certbot());
        let api = routing.services.iter().find(|s| s.name == "api").unwrap();
        assert_eq!(api.port, Some(8080));
        assert_eq!(api.routes[0].host, "api.example.com");
        assert_eq!(routed.server.path, "/opt/app");
        assert_eq!(routed.server.user, None);
        let unrouted = desired("STACK_PROJECT=app\nSTACK_SERVICES=api\nSERVICE_API_IMAGE=api:1\n");
        assert!(unrouted.routing.is_none());
    }

    /// `desired.json` keeps the new parts but never a password hash; an older release's
    /// file (without them) still reads.
    #[test]
    fn the_json_of_a_release_never_holds_a_password_hash() {
        let hash = bcrypt::hash("open-sesame", 4).unwrap();
        let hash = hash.as_str();
        let loaded = crate::config::tests::load_files(
            &[
                (
                    "stack.env",
                    &format!(
                        "{MONITORED}STACK_SECRETS=API_HASH\nSERVICE_API_BASIC_AUTH=team:API_HASH\n"
                    ),
                ),
                (
                    "environments/dev/secrets.env",
                    &format!("API_HASH='{hash}'\n"),
                ),
            ],
            "dev",
        )
        .unwrap();
        let model = super::super::unsealed(&loaded.config);
        let api = &model.routing.as_ref().unwrap().services[0];
        assert_eq!(api.basic_auth.as_ref().unwrap().hash, hash);
        let json = serde_json::to_string(&model).unwrap();
        assert!(!json.contains(hash), "{json}");
        let read: Desired = serde_json::from_str(&json).unwrap();
        assert_eq!(read.monitoring, model.monitoring);
        assert_eq!(read.server, model.server);
        let mut old: serde_json::Value = serde_json::from_str(&json).unwrap();
        for key in ["sources", "routing", "monitoring", "backup", "server"] {
            old.as_object_mut().unwrap().remove(key);
        }
        let old: Desired = serde_json::from_value(old).unwrap();
        assert!(old.routing.is_none() && old.monitoring.prometheus.is_none());
    }
}
