//! Desired state (from the configuration) + observed state (from the engine) →
//! the list of actions that converges one to the other. Pure: no Docker here; the
//! engine layer fills in [`Observed`] and executes [`Action`]s.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::{Config, HealthCheck, MountSource, ProxyKind, Service, Strategy, Tls};
use crate::render::{self, PROXY_SERVICE};

/// Compose's labels, so `docker-compose -p P ps/logs/down` see our containers.
pub mod labels {
    pub const PROJECT: &str = "com.docker.compose.project";
    pub const SERVICE: &str = "com.docker.compose.service";
    pub const NUMBER: &str = "com.docker.compose.container-number";
    pub const ONEOFF: &str = "com.docker.compose.oneoff";
    pub const CONFIG_HASH: &str = "com.docker.compose.config-hash";
    pub const WORKING_DIR: &str = "com.docker.compose.project.working_dir";
    pub const CONFIG_FILES: &str = "com.docker.compose.project.config_files";
    pub const VERSION: &str = "com.docker.compose.version";
    pub const NETWORK: &str = "com.docker.compose.network";
    pub const VOLUME: &str = "com.docker.compose.volume";
    /// stack's own: the environment and the digest of the desired service config.
    pub const ENV: &str = "dev.stack.env";
    pub const DIGEST: &str = "dev.stack.digest";
    pub const HEALTH_HTTP: &str = "dev.stack.health-http";
    pub const ROUTES: &str = "dev.stack.routes";
}

/// How a container is known to be ready.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "kind")]
pub enum Readiness {
    /// Running is enough.
    Running,
    /// Docker's health status turns `healthy`.
    Docker,
    /// Docker's health status, or an HTTP probe of the container's address.
    Http { port: u16, path: String },
}

/// One container as it should be created.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerSpec {
    pub image: String,
    pub command: Option<Vec<String>>,
    /// `KEY=VALUE`, sorted. Holds secret values: never print it; it is only serialised
    /// into a release's 0600 `desired.json`.
    pub env: Vec<String>,
    pub labels: BTreeMap<String, String>,
    pub health: Option<HealthSpec>,
    pub restart: String,
    /// `source:target[:ro]`: named volumes (full names) and absolute host paths.
    pub binds: Vec<String>,
    /// Anonymous volumes: container paths.
    pub anonymous: Vec<String>,
    pub ports: Vec<PortSpec>,
    pub exposed: Vec<u16>,
    pub memory_bytes: Option<i64>,
    pub nano_cpus: Option<i64>,
    pub aliases: Vec<String>,
    pub extra_hosts: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthSpec {
    pub test: Vec<String>,
    pub interval_ns: i64,
    pub timeout_ns: i64,
    pub retries: i64,
    pub start_period_ns: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortSpec {
    pub host_ip: Option<String>,
    /// `None`: Docker picks a host port.
    pub host_port: Option<u16>,
    pub container_port: u16,
    pub protocol: String,
}

/// One service as it should run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DesiredService {
    pub name: String,
    pub strategy: Strategy,
    pub depends_on: Vec<String>,
    pub replicas: u32,
    pub readiness: Readiness,
    /// Build this image from a context before starting.
    pub build: Option<BuildSpec>,
    pub spec: ContainerSpec,
    /// Digest of the spec: equal digests mean nothing to change.
    pub digest: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BuildSpec {
    pub context: PathBuf,
    pub dockerfile: Option<String>,
}

/// The whole project as it should run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Desired {
    pub project: String,
    pub network: String,
    /// Full names of named volumes (`<project>_<name>`), with the short name.
    pub volumes: Vec<(String, String)>,
    pub services: Vec<DesiredService>,
}

impl Desired {
    pub fn service(&self, name: &str) -> Option<&DesiredService> {
        self.services.iter().find(|s| s.name == name)
    }

    /// Services in dependency order, grouped in levels that can start in parallel.
    pub fn levels(&self) -> Vec<Vec<&DesiredService>> {
        let mut placed: BTreeSet<&str> = BTreeSet::new();
        let mut levels = Vec::new();
        let mut rest: Vec<&DesiredService> = self.services.iter().collect();
        while !rest.is_empty() {
            let (ready, waiting): (Vec<_>, Vec<_>) = rest.into_iter().partition(|s| {
                s.depends_on
                    .iter()
                    .all(|d| placed.contains(d.as_str()) || self.service(d).is_none())
            });
            if ready.is_empty() {
                // A cycle cannot pass config validation; start the rest together anyway.
                levels.push(waiting);
                break;
            }
            placed.extend(ready.iter().map(|s| s.name.as_str()));
            levels.push(ready);
            rest = waiting;
        }
        levels
    }
}

/// The name Compose gives a container.
pub fn container_name(project: &str, service: &str, number: u32) -> String {
    format!("{project}-{service}-{number}")
}

/// The desired state of `config`, whose rendered `bundle` is written in `bundle_dir`.
/// `root` is where the project's directory is on the engine's host: the project itself
/// locally, `SERVER_PATH` on a server (bind mounts inside the project move with it).
pub fn desired(
    config: &Config,
    bundle: &render::Bundle,
    bundle_dir: &Path,
    root: &Path,
) -> Desired {
    let project = &config.project;
    let mut services: Vec<DesiredService> = config
        .services
        .iter()
        .filter(|s| s.is_container())
        .map(|s| desired_service(config, s, bundle, bundle_dir, root))
        .collect();
    let mut volumes: BTreeSet<String> = config.volumes.iter().cloned().collect();
    if render::needs_proxy(config) {
        let (proxy, proxy_volumes) = desired_proxy(config, bundle, bundle_dir);
        services.push(proxy);
        volumes.extend(proxy_volumes);
    }
    Desired {
        project: project.clone(),
        network: format!("{project}_default"),
        volumes: volumes
            .into_iter()
            .map(|v| (format!("{project}_{v}"), v))
            .collect(),
        services,
    }
}

fn base_labels(config: &Config, service: &str, bundle_dir: &Path) -> BTreeMap<String, String> {
    let mut map = BTreeMap::new();
    map.insert(labels::PROJECT.into(), config.project.clone());
    map.insert(labels::SERVICE.into(), service.into());
    map.insert(labels::ONEOFF.into(), "False".into());
    map.insert(labels::WORKING_DIR.into(), bundle_dir.display().to_string());
    map.insert(
        labels::CONFIG_FILES.into(),
        bundle_dir.join(render::COMPOSE_FILE).display().to_string(),
    );
    map.insert(labels::VERSION.into(), "1.29.2".into());
    map.insert(labels::ENV.into(), config.env.clone());
    map
}

fn desired_service(
    config: &Config,
    service: &Service,
    bundle: &render::Bundle,
    bundle_dir: &Path,
    root: &Path,
) -> DesiredService {
    let mut labels = base_labels(config, &service.name, bundle_dir);
    if !service.routes.is_empty() {
        let routes: Vec<String> = service.routes.iter().map(|r| r.to_string()).collect();
        labels.insert(labels::ROUTES.into(), routes.join(","));
    }
    let image = service
        .image
        .clone()
        .unwrap_or_else(|| render::compose_build_image(config, service));
    let env: Vec<String> = service
        .env
        .iter()
        .map(|(k, v)| format!("{k}={}", v.value))
        .collect();
    let (health, readiness) = match &service.health {
        None => (None, Readiness::Running),
        Some(health) => {
            let test = match &health.check {
                HealthCheck::Http { path, port } => render::http_probe(*port, path),
                HealthCheck::Cmd(command) => command.clone(),
            };
            let readiness = match &health.check {
                HealthCheck::Http { path, port } => {
                    labels.insert(labels::HEALTH_HTTP.into(), format!("{port}{path}"));
                    Readiness::Http {
                        port: *port,
                        path: path.clone(),
                    }
                }
                HealthCheck::Cmd(_) => Readiness::Docker,
            };
            let ns = |d: std::time::Duration| d.as_nanos().min(i64::MAX as u128) as i64;
            (
                Some(HealthSpec {
                    test: vec!["CMD-SHELL".into(), test],
                    interval_ns: ns(health.interval),
                    timeout_ns: ns(health.timeout),
                    retries: health.retries as i64,
                    start_period_ns: ns(health.start_period),
                }),
                readiness,
            )
        }
    };
    let mut binds = Vec::new();
    let mut anonymous = Vec::new();
    for mount in &service.volumes {
        let suffix = if mount.read_only { ":ro" } else { "" };
        match &mount.source {
            MountSource::Volume(name) => binds.push(format!(
                "{}_{name}:{}{suffix}",
                config.project, mount.target
            )),
            MountSource::Bind(path) => {
                let host = match path.strip_prefix(&config.project_dir) {
                    Ok(rest) => root.join(rest),
                    Err(_) => path.clone(),
                };
                binds.push(format!("{}:{}{suffix}", host.display(), mount.target))
            }
            MountSource::Anonymous => anonymous.push(mount.target.clone()),
            MountSource::Bundle(rel) => binds.push(format!(
                "{}:{}{suffix}",
                bundle_dir.join(rel).display(),
                mount.target
            )),
        }
    }
    let mut ports = Vec::new();
    for publish in &service.publish {
        let container_ports = publish_container_ports(&publish.spec);
        for (index, container_port) in container_ports.iter().enumerate() {
            ports.push(PortSpec {
                host_ip: publish.host_ip.clone(),
                host_port: publish.host_ports.get(index).copied(),
                container_port: *container_port,
                protocol: publish.protocol.clone(),
            });
        }
    }
    // Files of the bundle mounted into the container: their contents are part of the
    // digest, so a changed config file recreates the container.
    let mut mounted = String::new();
    for mount in &service.volumes {
        if let MountSource::Bundle(rel) = &mount.source {
            for (path, file) in bundle.files.range(rel.clone()..) {
                if !path.starts_with(rel.as_str()) {
                    break;
                }
                mounted.push_str(path);
                mounted.push_str(file.contents.split_once('\n').map_or("", |(_, rest)| rest));
            }
        }
    }
    let spec = ContainerSpec {
        image,
        command: service.command.clone(),
        env,
        labels,
        health,
        restart: service.restart.clone(),
        binds,
        anonymous,
        ports,
        exposed: service.port.into_iter().collect(),
        memory_bytes: service.memory_mb.map(|m| (m * 1024 * 1024) as i64),
        nano_cpus: service.cpus.map(|c| (c * 1e9) as i64),
        aliases: vec![service.name.clone()],
        extra_hosts: Vec::new(),
    };
    finish(
        bundle_dir,
        service.name.clone(),
        service.strategy,
        service.depends_on.clone(),
        service.replicas,
        readiness,
        service.build.as_ref().map(|b| BuildSpec {
            context: b.context.clone(),
            dockerfile: b.dockerfile.clone(),
        }),
        spec,
        &mounted,
    )
}

/// The container ports of a Compose short-syntax mapping.
fn publish_container_ports(spec: &str) -> Vec<u16> {
    let without_proto = spec.rsplit_once('/').map_or(spec, |(rest, _)| rest);
    let container = without_proto.rsplit(':').next().unwrap_or(without_proto);
    let (a, b) = container.split_once('-').unwrap_or((container, container));
    match (a.parse::<u16>(), b.parse::<u16>()) {
        (Ok(a), Ok(b)) if a <= b => (a..=b).collect(),
        _ => Vec::new(),
    }
}

fn desired_proxy(
    config: &Config,
    bundle: &render::Bundle,
    bundle_dir: &Path,
) -> (DesiredService, Vec<String>) {
    let mut labels = base_labels(config, PROXY_SERVICE, bundle_dir);
    labels.insert(labels::ROUTES.into(), String::new());
    let (file, target, volumes) = match config.proxy.kind {
        ProxyKind::Nginx => (
            render::NGINX_FILE,
            "/etc/nginx/nginx.conf",
            vec![
                ("nginx-certs", "/etc/nginx/certs:ro"),
                ("nginx-acme", "/var/www/acme:ro"),
            ],
        ),
        _ => (
            render::CADDY_FILE,
            "/etc/caddy/Caddyfile",
            vec![("caddy-data", "/data"), ("caddy-config", "/config")],
        ),
    };
    let mut binds = vec![format!("{}:{target}:ro", bundle_dir.join(file).display())];
    binds.extend(
        volumes
            .iter()
            .map(|(name, target)| format!("{}_{name}:{target}", config.project)),
    );
    let mut ports = vec![PortSpec {
        host_ip: None,
        host_port: Some(config.proxy.http_port),
        container_port: 80,
        protocol: "tcp".into(),
    }];
    if config.tls != Tls::Off {
        ports.push(PortSpec {
            host_ip: None,
            host_port: Some(config.proxy.https_port),
            container_port: 443,
            protocol: "tcp".into(),
        });
    }
    let extra_hosts = if config.services.iter().any(|s| s.upstream.is_some()) {
        vec!["host.docker.internal:host-gateway".to_string()]
    } else {
        Vec::new()
    };
    let spec = ContainerSpec {
        image: config.proxy.image.clone(),
        command: None,
        env: Vec::new(),
        labels,
        health: None,
        restart: "unless-stopped".into(),
        binds,
        anonymous: Vec::new(),
        ports,
        exposed: Vec::new(),
        memory_bytes: None,
        nano_cpus: None,
        aliases: vec![PROXY_SERVICE.into()],
        extra_hosts,
    };
    // The proxy's config file is bind-mounted: a change to it must recreate the proxy.
    // Its first line says where it was generated from; only the rest matters.
    let rendered = bundle
        .files
        .get(file)
        .map(|f| f.contents.split_once('\n').map_or("", |(_, rest)| rest))
        .unwrap_or_default();
    let service = finish(
        bundle_dir,
        PROXY_SERVICE.into(),
        Strategy::Recreate,
        Vec::new(),
        1,
        Readiness::Running,
        None,
        spec,
        rendered,
    );
    (
        service,
        volumes.iter().map(|(name, _)| name.to_string()).collect(),
    )
}

#[allow(clippy::too_many_arguments)]
fn finish(
    bundle_dir: &Path,
    name: String,
    strategy: Strategy,
    depends_on: Vec<String>,
    replicas: u32,
    readiness: Readiness,
    build: Option<BuildSpec>,
    mut spec: ContainerSpec,
    extra: &str,
) -> DesiredService {
    // The digest leaves out where the bundle lives: a new release of the same config on a
    // server must not recreate anything.
    let mut hashed = spec.clone();
    hashed.labels.remove(labels::WORKING_DIR);
    hashed.labels.remove(labels::CONFIG_FILES);
    let dir = bundle_dir.display().to_string();
    for bind in &mut hashed.binds {
        if let Some(rest) = bind.strip_prefix(&dir) {
            *bind = format!("<bundle>{rest}");
        }
    }
    let mut hasher = Sha256::new();
    hasher.update(serde_json::to_vec(&hashed).unwrap_or_default());
    hasher.update(extra.as_bytes());
    let digest = hex(&hasher.finalize());
    spec.labels
        .insert(labels::CONFIG_HASH.into(), digest.clone());
    spec.labels
        .insert(labels::DIGEST.into(), digest[..12].to_string());
    DesiredService {
        name,
        strategy,
        depends_on,
        replicas,
        readiness,
        build,
        spec,
        digest,
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A container of the project as the engine reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ObservedContainer {
    pub id: String,
    pub name: String,
    pub service: String,
    pub number: u32,
    pub digest: String,
    pub running: bool,
    /// The image ID the container runs.
    pub image_id: String,
}

/// The engine's state for one project.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Observed {
    pub network: bool,
    pub volumes: BTreeSet<String>,
    pub containers: Vec<ObservedContainer>,
    /// Image reference → local image ID (absent: not present locally).
    pub images: BTreeMap<String, String>,
}

/// One step of convergence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum Action {
    CreateNetwork {
        name: String,
    },
    CreateVolume {
        name: String,
    },
    /// Start a stopped container that is already up to date.
    Start {
        service: String,
        container: String,
    },
    /// Create and start a new container with the given number.
    Create {
        service: String,
        number: u32,
    },
    /// Replace a container: `rolling` starts the new one first, else stop-then-start.
    Replace {
        service: String,
        container: String,
        number: u32,
        rolling: bool,
    },
    /// Remove a container the project no longer wants.
    Remove {
        service: String,
        container: String,
        reason: String,
    },
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Action::CreateNetwork { name } => write!(f, "create network `{name}`"),
            Action::CreateVolume { name } => write!(f, "create volume `{name}`"),
            Action::Start { service, container } => {
                write!(f, "{service}: start `{container}`")
            }
            Action::Create { service, number } => {
                write!(f, "{service}: create container {number}")
            }
            Action::Replace {
                service,
                container,
                rolling,
                ..
            } => {
                let how = if *rolling { "rolling" } else { "recreate" };
                write!(f, "{service}: replace `{container}` ({how})")
            }
            Action::Remove {
                service,
                container,
                reason,
            } => write!(f, "{service}: remove `{container}` ({reason})"),
        }
    }
}

/// The actions for `services` (all when empty), in execution order.
pub fn plan(desired: &Desired, observed: &Observed, only: &[String]) -> Vec<Action> {
    let mut actions = Vec::new();
    if !observed.network {
        actions.push(Action::CreateNetwork {
            name: desired.network.clone(),
        });
    }
    for (name, _) in &desired.volumes {
        if !observed.volumes.contains(name) {
            actions.push(Action::CreateVolume { name: name.clone() });
        }
    }
    let wanted = |service: &str| only.is_empty() || only.iter().any(|s| s == service);
    for level in desired.levels() {
        for service in level {
            if wanted(&service.name) {
                actions.extend(plan_service(service, observed));
            }
        }
    }
    if only.is_empty() {
        for container in &observed.containers {
            if desired.service(&container.service).is_none() {
                actions.push(Action::Remove {
                    service: container.service.clone(),
                    container: container.name.clone(),
                    reason: "orphan: no longer in the project".into(),
                });
            }
        }
    }
    actions
}

fn plan_service(service: &DesiredService, observed: &Observed) -> Vec<Action> {
    let image_id = observed.images.get(&service.spec.image);
    let current = |c: &ObservedContainer| {
        c.digest == service.digest && image_id.is_none_or(|id| *id == c.image_id)
    };
    let mut mine: Vec<&ObservedContainer> = observed
        .containers
        .iter()
        .filter(|c| c.service == service.name)
        .collect();
    // Up-to-date containers fill the slots first, so an interrupted update resumes.
    mine.sort_by_key(|c| (!current(c), !c.running, c.number));
    let mut used: BTreeSet<u32> = mine.iter().map(|c| c.number).collect();
    let mut next_number = || {
        let mut n = 1;
        while used.contains(&n) {
            n += 1;
        }
        used.insert(n);
        n
    };
    let mut actions = Vec::new();
    for slot in 0..service.replicas as usize {
        match mine.get(slot) {
            Some(container) if current(container) => {
                if !container.running {
                    actions.push(Action::Start {
                        service: service.name.clone(),
                        container: container.name.clone(),
                    });
                }
            }
            Some(container) => {
                let rolling = service.strategy == Strategy::Rolling && container.running;
                let number = if rolling {
                    next_number()
                } else {
                    container.number
                };
                actions.push(Action::Replace {
                    service: service.name.clone(),
                    container: container.name.clone(),
                    number,
                    rolling,
                });
            }
            None => actions.push(Action::Create {
                service: service.name.clone(),
                number: next_number(),
            }),
        }
    }
    for container in mine.iter().skip(service.replicas as usize) {
        actions.push(Action::Remove {
            service: service.name.clone(),
            container: container.name.clone(),
            reason: "beyond the wanted replicas".into(),
        });
    }
    actions
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(name: &str, replicas: u32, strategy: Strategy, deps: &[&str]) -> DesiredService {
        DesiredService {
            name: name.into(),
            strategy,
            depends_on: deps.iter().map(|d| d.to_string()).collect(),
            replicas,
            readiness: Readiness::Running,
            build: None,
            spec: ContainerSpec {
                image: format!("{name}:1"),
                command: None,
                env: vec![],
                labels: BTreeMap::new(),
                health: None,
                restart: "no".into(),
                binds: vec![],
                anonymous: vec![],
                ports: vec![],
                exposed: vec![],
                memory_bytes: None,
                nano_cpus: None,
                aliases: vec![],
                extra_hosts: vec![],
            },
            digest: format!("{name}-v2"),
        }
    }

    fn container(service: &str, number: u32, digest: &str, running: bool) -> ObservedContainer {
        ObservedContainer {
            id: format!("{service}{number}"),
            name: container_name("p", service, number),
            service: service.into(),
            number,
            digest: digest.into(),
            running,
            image_id: "sha256:x".into(),
        }
    }

    fn desired(services: Vec<DesiredService>) -> Desired {
        Desired {
            project: "p".into(),
            network: "p_default".into(),
            volumes: vec![("p_data".into(), "data".into())],
            services,
        }
    }

    #[test]
    fn cold_start_creates_everything_in_dependency_order() {
        let d = desired(vec![
            service("api", 1, Strategy::Rolling, &["db"]),
            service("db", 1, Strategy::Recreate, &[]),
        ]);
        let actions = plan(&d, &Observed::default(), &[]);
        let text: Vec<String> = actions.iter().map(|a| a.to_string()).collect();
        assert_eq!(
            text,
            [
                "create network `p_default`",
                "create volume `p_data`",
                "db: create container 1",
                "api: create container 1"
            ]
        );
    }

    #[test]
    fn nothing_changed_means_no_actions() {
        let d = desired(vec![service("api", 2, Strategy::Rolling, &[])]);
        let observed = Observed {
            network: true,
            volumes: ["p_data".to_string()].into(),
            containers: vec![
                container("api", 1, "api-v2", true),
                container("api", 2, "api-v2", true),
            ],
            images: BTreeMap::new(),
        };
        assert!(plan(&d, &observed, &[]).is_empty());
    }

    #[test]
    fn changed_service_is_replaced_alone_and_orphans_go() {
        let d = desired(vec![
            service("api", 1, Strategy::Rolling, &[]),
            service("db", 1, Strategy::Recreate, &[]),
        ]);
        let observed = Observed {
            network: true,
            volumes: ["p_data".to_string()].into(),
            containers: vec![
                container("api", 1, "api-v1", true),
                container("db", 1, "db-v2", true),
                container("old", 1, "x", true),
            ],
            images: BTreeMap::new(),
        };
        let actions = plan(&d, &observed, &[]);
        assert_eq!(
            actions,
            vec![
                Action::Replace {
                    service: "api".into(),
                    container: "p-api-1".into(),
                    number: 2,
                    rolling: true
                },
                Action::Remove {
                    service: "old".into(),
                    container: "p-old-1".into(),
                    reason: "orphan: no longer in the project".into()
                },
            ]
        );
    }

    #[test]
    fn recreate_keeps_number_and_stopped_containers_start() {
        let d = desired(vec![
            service("db", 1, Strategy::Recreate, &[]),
            service("web", 1, Strategy::Rolling, &[]),
        ]);
        let observed = Observed {
            network: true,
            volumes: ["p_data".to_string()].into(),
            containers: vec![
                container("db", 1, "db-v1", true),
                container("web", 1, "web-v2", false),
            ],
            images: BTreeMap::new(),
        };
        let actions = plan(&d, &observed, &[]);
        assert_eq!(
            actions[0],
            Action::Replace {
                service: "db".into(),
                container: "p-db-1".into(),
                number: 1,
                rolling: false
            }
        );
        assert_eq!(
            actions[1],
            Action::Start {
                service: "web".into(),
                container: "p-web-1".into()
            }
        );
    }

    #[test]
    fn interrupted_rolling_update_resumes() {
        // New container 2 is up to date, old container 1 is still there.
        let d = desired(vec![service("api", 1, Strategy::Rolling, &[])]);
        let observed = Observed {
            network: true,
            volumes: ["p_data".to_string()].into(),
            containers: vec![
                container("api", 1, "api-v1", true),
                container("api", 2, "api-v2", true),
            ],
            images: BTreeMap::new(),
        };
        let actions = plan(&d, &observed, &[]);
        assert_eq!(
            actions,
            vec![Action::Remove {
                service: "api".into(),
                container: "p-api-1".into(),
                reason: "beyond the wanted replicas".into()
            }]
        );
    }

    #[test]
    fn new_image_id_means_replace() {
        let d = desired(vec![service("api", 1, Strategy::Recreate, &[])]);
        let observed = Observed {
            network: true,
            volumes: ["p_data".to_string()].into(),
            containers: vec![container("api", 1, "api-v2", true)],
            images: [("api:1".to_string(), "sha256:new".to_string())].into(),
        };
        assert_eq!(plan(&d, &observed, &[]).len(), 1);
    }

    #[test]
    fn only_named_services_are_touched() {
        let d = desired(vec![
            service("api", 1, Strategy::Rolling, &[]),
            service("db", 1, Strategy::Recreate, &[]),
        ]);
        let observed = Observed {
            network: true,
            volumes: ["p_data".to_string()].into(),
            ..Default::default()
        };
        let actions = plan(&d, &observed, &["db".to_string()]);
        assert_eq!(
            actions,
            vec![Action::Create {
                service: "db".into(),
                number: 1
            }]
        );
    }
}
