//! The one translation: validated [`Config`] (+ the rendered files that services mount)
//! → [`Desired`]. Each container attribute is decided here, once.

use std::collections::BTreeMap;

use indexmap::IndexMap;
use sha2::{Digest, Sha256};

use super::*;
use crate::config::{self, Config, ProxyKind, Service, Target, Tls};

/// Label keys stack puts on everything it runs.
pub const LABEL_PREFIX: &str = "dev.stack";

/// The desired state of `config`. `files` are the bundle's rendered files by path: the
/// contents of those a service mounts join its digest, so a changed file recreates it.
pub fn desired(config: &Config, files: &BTreeMap<&str, &str>) -> Desired {
    let mut desired = unsealed(config);
    seal(&mut desired, &secrets(config), files);
    desired
}

/// The desired state of `config` before the bundle's files exist: every service's
/// digest is empty until [`seal`].
pub fn unsealed(config: &Config) -> Desired {
    let mut services: Vec<DesiredService> = config
        .services
        .iter()
        .filter(|s| s.is_container())
        .map(|s| service(config, s))
        .collect();
    let mut volumes: BTreeSet<String> = config.volumes.iter().cloned().collect();
    if config.needs_proxy() {
        let proxy = proxy(config);
        volumes.extend(proxy.mounts.iter().filter_map(|m| match m {
            Mount::Volume { name, .. } => Some(name.clone()),
            _ => None,
        }));
        services.push(proxy);
    }
    if let Some(certbot) = super::certbot::certbot(config) {
        volumes.extend(certbot.mounts.iter().filter_map(|m| match m {
            Mount::Volume { name, .. } => Some(name.clone()),
            _ => None,
        }));
        services.push(certbot);
    }
    super::preview::adapt(config, &mut services);
    volumes.extend(super::preview::volumes(config));
    let networks = super::preview::networks(config, networks(config, &services));
    Desired {
        networks,
        publish: config.swarm_publish,
        encrypt: config.swarm_encrypt,
        project: config.project.clone(),
        env: config.env.clone(),
        volumes: volumes.into_iter().collect(),
        services,
        rollout: Rollout {
            health_timeout: config.health_timeout,
            drain: config.drain,
        },
        sources: config.sources.clone(),
        routing: super::settings::routing(config),
        monitoring: super::settings::monitoring(config),
        backup: super::settings::backup(config),
        server: super::settings::server(config),
    }
}

/// Every service's digest, from its model, the values of its secrets and the bundle's
/// `files` it mounts.
pub fn seal(desired: &mut Desired, secrets: &Secrets, files: &BTreeMap<&str, &str>) {
    for service in &mut desired.services {
        service.digest = digest(service, secrets, files);
    }
}

/// `default` when some service joins it, then every network of `STACK_NETWORKS`, in its
/// order: one no service joins as written is declared too (a variable may choose it when
/// the bundle is built, as Compose declares it).
fn networks(config: &Config, services: &[DesiredService]) -> Vec<Network> {
    let used = |name: &str| {
        services
            .iter()
            .any(|s| s.networks.iter().any(|n| n == name))
    };
    let mut out = Vec::new();
    if used(config::DEFAULT_NETWORK) {
        out.push(Network {
            name: config::DEFAULT_NETWORK.to_string(),
            internal: false,
            external: false,
        });
    }
    for network in &config.networks {
        if network.name != config::DEFAULT_NETWORK {
            out.push(Network {
                name: network.name.clone(),
                internal: network.internal,
                external: network.external,
            });
        }
    }
    out
}

/// The image a `BUILD`-only service is tagged with.
pub fn build_image(config: &Config, service: &Service) -> String {
    format!("{}-{}:{}", config.project, service.name, config.env)
}

/// Every secret container variable of `config` as (`.env` name, value), in declaration
/// order: what the bundle's `.env` holds.
pub fn secret_entries<'a>(config: &'a Config) -> impl Iterator<Item = (String, &'a str)> {
    let containers = || config.services.iter().filter(|s| s.is_container());
    let value = |service: &'a Service, var: &str| -> &'a str {
        service.secret_values.0.get(var).map_or("", String::as_str)
    };
    let variables = containers().flat_map(move |service| {
        service.env.values().filter_map(move |env| match env {
            EnvValue::Secret(var) => Some((var.clone(), value(service, var))),
            EnvValue::Plain(_) => None,
        })
    });
    // A key several services mount as a file is kept once.
    let mut seen = BTreeSet::new();
    let files = containers()
        .flat_map(|service| service.secret_files.iter().map(move |file| (service, file)))
        .filter(move |(_, file)| seen.insert(file.key.as_str()))
        .map(move |(service, file)| {
            let var = secret_file_var(&file.key);
            let text = value(service, &var);
            (var, text)
        });
    variables.chain(files)
}

/// The secret values the bundle carries beside [`Desired`] (which holds references
/// only): the `.env` entries and the notification endpoints. Never printed.
#[derive(Clone, Default)]
pub struct BundleSecrets {
    /// `.env` name → value, in declaration order.
    pub entries: Vec<(String, String)>,
    /// `STACK_NOTIFY`'s endpoints, for the server's `stack supervise`.
    pub notify: Option<String>,
}

impl std::fmt::Debug for BundleSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set()
            .entries(self.entries.iter().map(|(var, _)| var))
            .finish()
    }
}

impl BundleSecrets {
    /// The values by `.env` name.
    pub fn values(&self) -> Secrets {
        Secrets(self.entries.iter().cloned().collect())
    }
}

/// What the bundle at `bundle` is rendered from, all built from `config` here: the
/// desired state (its digests still empty: they cover the files services mount, so
/// `render::bundle` seals them once it has rendered those), the secret values the
/// bundle's files hold, and where the project and the bundle are.
pub struct BundleInput {
    pub desired: Desired,
    pub secrets: BundleSecrets,
    pub placement: Placement,
}

/// The [`BundleInput`] of `config` for a bundle at `bundle`.
pub fn bundle_input(config: &Config, bundle: &std::path::Path) -> BundleInput {
    BundleInput {
        desired: unsealed(config),
        secrets: bundle_secrets(config),
        placement: Placement {
            root: config.project_dir.clone(),
            bundle: bundle.to_path_buf(),
        },
    }
}

/// The secret values of `config` the bundle writes.
pub fn bundle_secrets(config: &Config) -> BundleSecrets {
    let items: Vec<String> = config.notify.iter().map(|t| t.item()).collect();
    BundleSecrets {
        entries: secret_entries(config)
            .map(|(var, value)| (var, value.to_string()))
            .collect(),
        notify: (!items.is_empty()).then(|| items.join(",")),
    }
}

/// Every secret container variable of `config`, by its `.env` name.
pub fn secrets(config: &Config) -> Secrets {
    Secrets(
        secret_entries(config)
            .map(|(var, value)| (var, value.to_string()))
            .collect(),
    )
}

pub(super) fn labels(
    config: &Config,
    service: &str,
    strategy: Strategy,
) -> IndexMap<String, String> {
    let strategy = match strategy {
        Strategy::Rolling => "rolling",
        Strategy::Recreate => "recreate",
    };
    [
        ("project", config.project.as_str()),
        ("env", config.env.as_str()),
        ("service", service),
        ("strategy", strategy),
    ]
    .into_iter()
    .map(|(key, value)| (format!("{LABEL_PREFIX}.{key}"), value.to_string()))
    .collect()
}

fn service(config: &Config, service: &Service) -> DesiredService {
    // The project's labels first; stack's own are inserted after and win.
    let mut labels: IndexMap<String, String> = service.labels.clone().into_iter().collect();
    labels.extend(self::labels(config, &service.name, service.strategy));
    let health = service.health.clone();
    if let Some(Probe::Http { port, path }) = health.as_ref().map(|h| &h.probe) {
        let http = format!("{port}{path}");
        labels.insert(format!("{LABEL_PREFIX}.health-http"), http);
    }
    let depends_on = service
        .depends_on
        .iter()
        .map(|dependency| Dependency {
            service: dependency.clone(),
            completed: service.depends_completed.contains(dependency),
            healthy: config
                .services
                .iter()
                .find(|s| s.is_container() && &s.name == dependency)
                .is_some_and(|s| s.health.is_some()),
        })
        .collect();
    DesiredService {
        name: service.name.clone(),
        image: service
            .image
            .clone()
            .unwrap_or_else(|| build_image(config, service)),
        build: service.build.clone(),
        command: service.command.clone(),
        env: service.env.clone(),
        mounts: service.mounts.clone(),
        ports: service.ports.clone(),
        expose: service.port.into_iter().collect(),
        routes: service.routes.clone(),
        health,
        restart: service.restart,
        resources: Resources {
            memory_mb: service.memory_mb,
            cpus: service.cpus,
        },
        replicas: service.replicas,
        strategy: service.strategy,
        drain: service.drain,
        depends_on,
        job: config
            .services
            .iter()
            .any(|s| s.depends_completed.contains(&service.name)),
        labels,
        extra_hosts: service.extra_hosts.clone(),
        networks: service.networks.clone(),
        secret_files: service.secret_files.clone(),
        options: service.options.clone(),
        logging: config.logging,
        release: service.release.clone(),
        schedule: service.schedule.clone(),
        refresh: None,
        digest: String::new(),
        pinned: None,
    }
}

/// `default` (where the proxy publishes its ports) and every network a routed service
/// or a forward-auth endpoint is on, but the MONITORING preset's own network when the
/// service is on another one too (Grafana: the proxy reaches it on `default` and stays
/// off the network of Alertmanager, Loki and docker-proxy).
fn proxy_networks(config: &Config) -> Vec<String> {
    let mut out = vec![config::DEFAULT_NETWORK.to_string()];
    let gates: BTreeSet<&str> = config
        .services
        .iter()
        .filter_map(|s| s.auth.as_ref().map(|a| a.host.as_str()))
        .collect();
    for service in config.services.iter().filter(|s| s.is_container()) {
        if service.routes.is_empty() && !gates.contains(service.name.as_str()) {
            continue;
        }
        let private = |network: &String| {
            network == config::presets::MONITORING_NETWORK
                && service.preset == Some(config::presets::PRESET_MONITORING)
                && service.networks.iter().any(|n| n != network)
        };
        for network in &service.networks {
            if !out.contains(network) && !private(network) {
                out.push(network.clone());
            }
        }
    }
    out
}

/// The proxy's mounts: its configuration file, the basic-auth files, its state volumes.
fn proxy_mounts(config: &Config) -> Vec<Mount> {
    let (file, target, volumes) = match config.proxy.kind {
        ProxyKind::Nginx => (
            NGINX_FILE,
            "/etc/nginx/nginx.conf",
            [
                ("nginx-certs", "/etc/nginx/certs", true),
                ("nginx-acme", "/var/www/acme", true),
            ],
        ),
        _ => (
            CADDY_FILE,
            "/etc/caddy/Caddyfile",
            [
                ("caddy-data", "/data", false),
                ("caddy-config", "/config", false),
            ],
        ),
    };
    // On the engine, the proxy binds copies it reloads in place (a new route or host
    // keeps its open connections); a swarm service's spec changes with its files instead.
    let reloadable = |rel: String| match config.target {
        Target::Swarm => HostPath::Bundle(rel),
        Target::Compose => HostPath::Proxy(rel),
    };
    let mut mounts = vec![Mount::Bind {
        source: reloadable(file.to_string()),
        target: target.to_string(),
        read_only: true,
    }];
    // The maintenance switch (`stack maintenance`): state outside the release, so a
    // deploy, a restart of the proxy and a reboot keep it.
    mounts.push(Mount::Bind {
        source: HostPath::State(MAINTENANCE_DIR.to_string()),
        target: MAINTENANCE_TARGET.to_string(),
        read_only: true,
    });
    for service in config.services.iter().filter(|s| s.basic_auth.is_some()) {
        let (file, target) = basic_auth_file(config.proxy.kind, &service.name);
        mounts.push(Mount::Bind {
            source: reloadable(file),
            target,
            read_only: true,
        });
    }
    let caddy_acme = config.tls == Tls::Auto && config.proxy.kind == ProxyKind::Caddy;
    if let Some(root) = config.acme.ca_root.as_ref().filter(|_| caddy_acme) {
        mounts.push(Mount::Bind {
            source: HostPath::Project(root.clone()),
            target: ACME_CA_ROOT_TARGET.to_string(),
            read_only: true,
        });
    }
    for (name, target, read_only) in volumes {
        mounts.push(Mount::Volume {
            name: name.to_string(),
            target: target.to_string(),
            read_only,
        });
    }
    // stack writes the expiry of Caddy's certificates there (certbot writes nginx's).
    if caddy_acme && super::certbot::monitors(config) {
        mounts.push(Mount::Volume {
            name: METRICS_VOLUME.to_string(),
            target: METRICS_TARGET.to_string(),
            read_only: false,
        });
    }
    mounts
}

/// The proxy's published ports: HTTP, and HTTPS unless TLS is off.
fn proxy_ports(config: &Config) -> Vec<Port> {
    let port = |host: u16, container: u16| Port {
        host_ip: None,
        host_ports: vec![host],
        container_ports: vec![container],
        protocol: "tcp".into(),
    };
    let mut ports = vec![port(config.proxy.http_port, 80)];
    if config.tls != Tls::Off {
        ports.push(port(config.proxy.https_port, 443));
    }
    ports
}

/// `host.docker.internal` when a service is an upstream on the host.
fn proxy_extra_hosts(config: &Config) -> Vec<ExtraHost> {
    if config.services.iter().any(|s| s.upstream.is_some()) {
        vec![ExtraHost {
            host: "host.docker.internal".into(),
            address: HostAddress::HostGateway,
        }]
    } else {
        Vec::new()
    }
}

/// The reverse proxy in front of the routed services.
fn proxy(config: &Config) -> DesiredService {
    let mounts = proxy_mounts(config);
    let ports = proxy_ports(config);
    let extra_hosts = proxy_extra_hosts(config);
    DesiredService {
        name: PROXY_SERVICE.into(),
        image: config.proxy.image.clone(),
        build: None,
        command: None,
        env: BTreeMap::new(),
        mounts,
        ports,
        expose: Vec::new(),
        routes: Vec::new(),
        health: None,
        restart: Restart::UnlessStopped,
        resources: Resources::default(),
        replicas: 1,
        strategy: Strategy::Recreate,
        drain: None,
        depends_on: Vec::new(),
        job: false,
        labels: labels(config, PROXY_SERVICE, Strategy::Recreate),
        extra_hosts,
        networks: proxy_networks(config),
        secret_files: Vec::new(),
        options: ContainerOptions::default(),
        logging: config.logging,
        release: None,
        schedule: None,
        // nginx keeps a resolved address for its `valid=` time (rounded up to whole
        // seconds): a container that just stopped would still get requests, each
        // stalling for the connect timeout. A graceful reload starts workers with an
        // empty cache. Caddy's dynamic upstreams mark a dead address failed at once.
        refresh: (config.proxy.kind == ProxyKind::Nginx)
            .then(|| vec!["nginx".into(), "-s".into(), "reload".into()]),
        digest: String::new(),
        pinned: None,
    }
}

/// The digest of a service: its model, the values of its secrets, and the contents of
/// the bundle files it mounts (without their first line, which names the stack version).
fn digest(service: &DesiredService, secrets: &Secrets, files: &BTreeMap<&str, &str>) -> String {
    let mut hasher = Sha256::new();
    // A service's routes are the proxy's configuration, not its container's: a change of
    // them alone reloads the proxy in place and leaves the routed service running.
    let container = DesiredService {
        routes: Vec::new(),
        ..service.clone()
    };
    hasher.update(serde_json::to_vec(&container).unwrap_or_default());
    let file_vars = service.secret_files.iter().map(|f| secret_file_var(&f.key));
    let env_vars = service.env.values().filter_map(|value| match value {
        EnvValue::Secret(var) => Some(var.clone()),
        EnvValue::Plain(_) => None,
    });
    for var in env_vars.chain(file_vars) {
        hasher.update(var.as_bytes());
        hasher.update([0]);
        hasher.update(secrets.0.get(&var).map_or(&[][..], |v| v.as_bytes()));
        hasher.update([0]);
    }
    for mount in &service.mounts {
        if let Mount::Bind {
            source: HostPath::Bundle(rel),
            ..
        } = mount
        {
            for (path, contents) in files.range(rel.as_str()..) {
                if !path.starts_with(rel.as_str()) {
                    break;
                }
                hasher.update(path.as_bytes());
                hasher.update(contents.split_once('\n').map_or("", |(_, rest)| rest));
            }
        }
    }
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_proxy_reaches_grafana_on_default_and_stays_off_monitoring() {
        let loaded = crate::config::tests::load_text(
            "STACK_PROJECT=app\nSTACK_DOMAIN=example.com\nSTACK_NETWORKS=backend:internal,edge\n\
             STACK_SERVICES=api,worker,db\n\
             SERVICE_API_IMAGE=api:1\nSERVICE_API_PORT=8080\nSERVICE_API_METRICS=/metrics\n\
             SERVICE_API_NETWORKS=backend\n\
             SERVICE_WORKER_IMAGE=worker:1\nSERVICE_WORKER_NETWORKS=edge\n\
             SERVICE_DB_IMAGE=db:1\nSERVICE_DB_PORT=5432\nSERVICE_DB_NETWORKS=backend\n\
             MONITORING_ENABLED=true\nMONITORING_GRAFANA_ROUTE=grafana.${STACK_DOMAIN}\n",
            "dev",
        )
        .unwrap();
        let desired = desired(&loaded.config, &BTreeMap::new());
        let proxy = desired.service(PROXY_SERVICE).unwrap();
        assert!(
            !proxy.networks.iter().any(|n| n == "monitoring"),
            "{:?}",
            proxy.networks
        );
    }

    #[test]
    fn depends_on_completed_marks_a_job() {
        let loaded = crate::config::tests::load_text(
            &format!(
                "{}SERVICE_MIGRATE_RESTART=no\nSERVICE_APP_DEPENDS_ON=migrate:completed\n",
                crate::config::tests::JOB
            ),
            "dev",
        )
        .unwrap();
        let desired = desired(&loaded.config, &BTreeMap::new());
        let migrate = desired.service("migrate").unwrap();
        assert!(migrate.job);
        assert_eq!(migrate.readiness(), Readiness::Completed);
        let dependency = &desired.service("app").unwrap().depends_on[0];
        assert!(dependency.completed && !desired.service("app").unwrap().job);
    }

    #[test]
    fn a_change_of_routes_alone_keeps_the_routed_service_digest() {
        let sealed = |extra: &str| {
            let loaded = crate::config::tests::load_text(
                &format!(
                    "STACK_PROJECT=app\nSTACK_DOMAIN=example.com\nSTACK_SERVICES=web\n\
                     SERVICE_WEB_IMAGE=web:1\nSERVICE_WEB_PORT=8080\n{extra}"
                ),
                "dev",
            )
            .unwrap();
            let mut desired = desired(&loaded.config, &BTreeMap::new());
            seal(&mut desired, &Secrets::default(), &BTreeMap::new());
            let web = desired.service("web").unwrap();
            (web.digest.clone(), web.routes.len())
        };
        let one = sealed("SERVICE_WEB_ROUTE=example.com\n");
        let other = sealed("SERVICE_WEB_ROUTE=www.example.com/app\n");
        assert_eq!(
            one,
            (other.0.clone(), 1),
            "a route change rolls the service"
        );
        let changed = sealed("SERVICE_WEB_ROUTE=example.com\nSERVICE_WEB_ENV_FOO=1\n");
        assert_ne!(
            changed.0, one.0,
            "an environment change keeps the container"
        );
    }
}
