//! `Desired`: the one typed model of what should run, built once from the validated
//! [`Config`](crate::config::Config) by [`desired`]. Pure: no Docker, no files.
//!
//! Every consumer is a function of it: the compose renderer serialises it, the engine
//! creates containers from it, swarm builds service specs from it, status and health read
//! it, and a release saves it as `desired.json`. Nothing here is a string for another
//! module to parse back: mounts, ports, routes and probes are typed. Secrets stay
//! references ([`EnvValue::Secret`]); their values live only in the bundle's 0600 `.env`
//! (see [`Secrets`]).

mod build;
mod certbot;
pub mod preview;
mod settings;

pub use build::{
    build_image, bundle_input, bundle_secrets, desired, seal, secret_entries, secrets, unsealed,
    BundleInput, BundleSecrets,
};
pub use certbot::{acme_hosts, wants_certbot, CERTBOT_FILE, CERTBOT_INTERVAL, CERTBOT_SERVICE};
pub use settings::{
    Alertmanager, Backup, Monitoring, Prometheus, Routed, Routing, ScrapeJob, ServerFacts,
};

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use crate::config::{
    http_probe, mount_suffix, secret_file_path, secret_file_var, BuildSpec, ByteSize, Capability,
    ContainerOptions, Device, EnvValue, ExtraHost, Gpus, Health, HostAddress, HostPath,
    LogRotation, Mount, MountOptions, Namespace, Platform, Port, Probe, ProxyKind, PublishMode,
    Release, Restart, Route, SecretFile, Secrets, Signal, Strategy, Tls, Tmpfs, Ulimit, User,
};

/// Grace period between the stop signal and SIGKILL when `STOP_GRACE` is not set.
pub const DEFAULT_STOP_GRACE: Duration = Duration::from_secs(10);

/// The bundle file of Caddy's configuration (the proxy mounts it).
pub const CADDY_FILE: &str = "Caddyfile";
/// The bundle file of nginx's configuration (the proxy mounts it).
pub const NGINX_FILE: &str = "nginx/nginx.conf";

/// The folder of the maintenance switch, under the state that outlives releases.
pub const MAINTENANCE_DIR: &str = "maintenance";
/// Where the proxy sees the maintenance folder (read-only).
pub const MAINTENANCE_TARGET: &str = "/etc/stack-maintenance";

/// The folder, under the state that outlives releases, of the copies of the bundle's
/// files that the proxy reloads ([`HostPath::Proxy`]).
pub const PROXY_DIR: &str = "proxy";

/// The service name the proxy runs under.
pub const PROXY_SERVICE: &str = "proxy";

/// The command, run in the Caddy proxy's container, that reloads its configuration
/// gracefully (what maintenance mode and previews' routes use).
const CADDY_RELOAD: [&str; 6] = [
    "caddy",
    "reload",
    "--config",
    "/etc/caddy/Caddyfile",
    "--adapter",
    "caddyfile",
];

/// nginx's reload is a signal: the master starts workers with the new configuration, then
/// tells the old ones to finish (each retitles itself "is shutting down" and closes its
/// listening sockets, keeping its open connections until they end or
/// `worker_shutdown_timeout`). Wait (at most 10 s) until a new worker runs and no old one
/// still takes connections, so the new settings answer the next request. The titles are
/// read from `/proc`: the image may have no `ps`.
const NGINX_RELOAD: &str = r#"workers() { for d in /proc/[0-9]*; do case "$(tr '\0' ' ' < "$d/cmdline" 2>/dev/null)" in "nginx: worker process is"*) ;; "nginx: worker process"*) echo "${d#/proc/}";; esac; done; }
old=" $(workers | tr '\n' ' ') "
nginx -s reload || exit 1
i=0
while [ $i -lt 100 ]; do
  now=" $(workers | tr '\n' ' ') "; fresh=0; stale=0
  for p in $now; do case "$old" in *" $p "*) stale=1;; *) fresh=1;; esac; done
  [ $fresh = 1 ] && [ $stale = 0 ] && exit 0
  sleep 0.1; i=$((i + 1))
done
echo 'the reloaded nginx did not replace its workers within 10 s' >&2; exit 1"#;

/// The commands, run in turn in a running proxy container, that make it read its
/// configuration again without a restart: nginx checks it first (`nginx -t`), then
/// reloads gracefully; Caddy swaps its configuration in place. Empty for a service that
/// is not a proxy.
pub fn proxy_reload(service: &DesiredService) -> Vec<Vec<String>> {
    let target = |path: &str| service.mounts.iter().any(|m| m.target() == path);
    if target("/etc/nginx/nginx.conf") {
        reload_commands(crate::config::ProxyKind::Nginx)
    } else if target("/etc/caddy/Caddyfile") {
        reload_commands(crate::config::ProxyKind::Caddy)
    } else {
        Vec::new()
    }
}

/// The commands, run in turn in a running proxy of `kind`, that reload its configuration
/// gracefully (one definition for converge, maintenance mode and previews' routes).
pub fn reload_commands(kind: crate::config::ProxyKind) -> Vec<Vec<String>> {
    let owned = |words: &[&str]| words.iter().map(|w| w.to_string()).collect::<Vec<_>>();
    match kind {
        crate::config::ProxyKind::Nginx => vec![
            owned(&["nginx", "-t", "-q"]),
            owned(&["sh", "-c", NGINX_RELOAD]),
        ],
        crate::config::ProxyKind::Caddy => vec![owned(&CADDY_RELOAD)],
        crate::config::ProxyKind::None => Vec::new(),
    }
}

/// Where the proxy finds `STACK_ACME_CA_ROOT` (mounted read-only from the project).
pub const ACME_CA_ROOT_TARGET: &str = "/etc/stack/acme-ca-root.pem";
/// The MONITORING preset's volume node-exporter reads `*.prom` files from (textfile
/// collector), and where the services that write certificate metrics mount it.
pub const METRICS_VOLUME: &str = "metrics-textfile";
pub const METRICS_TARGET: &str = "/metrics";

/// The whole project as it should run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Desired {
    pub project: String,
    pub env: String,
    /// Short names of the named volumes (the engine's are `<project>_<name>`), sorted.
    pub volumes: Vec<String>,
    pub services: Vec<DesiredService>,
    pub rollout: Rollout,
    /// The networks the services join (short names; the engine's are
    /// `<project>_<name>`). Empty in a release written before networks were typed:
    /// then just `default`.
    #[serde(default)]
    pub networks: Vec<Network>,
    /// How the swarm target publishes ports (`STACK_SWARM_PUBLISH`).
    #[serde(default)]
    pub publish: PublishMode,
    /// The swarm's overlay networks encrypt their traffic (`STACK_SWARM_ENCRYPT`).
    #[serde(default)]
    pub encrypt: bool,
    /// The project files it was read from, as the bundle's headers name them.
    #[serde(default)]
    pub sources: Vec<String>,
    /// What the proxy's configuration routes, when a proxy runs.
    #[serde(default)]
    pub routing: Option<Routing>,
    /// The MONITORING preset's configuration files.
    #[serde(default)]
    pub monitoring: Monitoring,
    /// The BACKUP preset, when it runs.
    #[serde(default)]
    pub backup: Option<Backup>,
    /// Where the release lives on the server and who runs it (the systemd unit).
    #[serde(default)]
    pub server: ServerFacts,
}

/// A network of the project.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Network {
    pub name: String,
    /// No way in or out but through other networks.
    pub internal: bool,
    /// Created outside the project: joined by its own name, never created or removed.
    #[serde(default)]
    pub external: bool,
}

/// Where the proxy finds the `BASIC_AUTH` user of `service`: (bundle path, path in the
/// proxy container). Both proxies read it relative to their configuration file.
pub fn basic_auth_file(proxy: crate::config::ProxyKind, service: &str) -> (String, String) {
    match proxy {
        crate::config::ProxyKind::Nginx => (
            format!("nginx/auth/{service}"),
            format!("/etc/nginx/auth/{service}"),
        ),
        _ => (
            format!("auth/{service}"),
            format!("/etc/caddy/auth/{service}"),
        ),
    }
}

fn default_networks() -> Vec<String> {
    vec![crate::config::DEFAULT_NETWORK.to_string()]
}

/// How changes roll out (`STACK_HEALTH_TIMEOUT`, `STACK_DRAIN`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Rollout {
    /// How long a container may take to turn ready.
    pub health_timeout: Duration,
    /// How long old and new containers both serve during a rolling update.
    pub drain: Duration,
}

/// One service as it should run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DesiredService {
    pub name: String,
    /// The image reference containers are created from.
    pub image: String,
    /// Build `image` from a context before starting.
    pub build: Option<BuildSpec>,
    pub command: Option<Vec<String>>,
    /// Variable → value; secrets as references.
    pub env: BTreeMap<String, EnvValue>,
    pub mounts: Vec<Mount>,
    pub ports: Vec<Port>,
    /// Container ports reachable from the project network only.
    pub expose: Vec<u16>,
    pub routes: Vec<Route>,
    pub health: Option<Health>,
    pub restart: Restart,
    pub resources: Resources,
    pub replicas: u32,
    pub strategy: Strategy,
    /// `DRAIN`: the grace a replaced container gets in a rolling update, for long-lived
    /// connections. Left out of the JSON when unset, so digests of other services stay.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drain: Option<Duration>,
    pub depends_on: Vec<Dependency>,
    /// A job: another service depends on it with `:completed`, so it runs to completion
    /// (exit code 0) instead of staying up. Left out of the JSON when false, so digests of
    /// other services stay.
    #[serde(default, skip_serializing_if = "is_false")]
    pub job: bool,
    /// The project's `LABELS`, then stack's own (`dev.stack.*`, which win), as every
    /// consumer writes them, in order.
    pub labels: indexmap::IndexMap<String, String>,
    /// Entries for `/etc/hosts`.
    pub extra_hosts: Vec<ExtraHost>,
    /// The networks it joins, short names, the first one primary.
    #[serde(default = "default_networks")]
    pub networks: Vec<String>,
    /// Secrets delivered as files.
    #[serde(default)]
    pub secret_files: Vec<SecretFile>,
    /// `ENTRYPOINT`, `USER`, `CAP_ADD`, `TMPFS` and the other container options.
    #[serde(default)]
    pub options: ContainerOptions,
    /// Log rotation (json-file driver).
    #[serde(default)]
    pub logging: LogRotation,
    /// `RELEASE`: run in a one-off container of this version before its first container
    /// starts. Left out of the JSON when unset, so digests of services without one stay.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<Release>,
    /// `SCHEDULE`: a job `stack supervise` runs in one-off containers (none long-running).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<crate::config::JobSchedule>,
    /// For a proxy that caches DNS answers: a command run in its containers once a
    /// replaced container is gone, so it forgets that address at once.
    pub refresh: Option<Vec<String>>,
    /// Digest of everything above plus the values of its secrets and the contents of the
    /// bundle files it mounts: equal digests mean nothing to change.
    pub digest: String,
    /// The exact image a deployed release runs, set by `deploy` (not part of the digest:
    /// the planner compares image IDs).
    #[serde(default)]
    pub pinned: Option<Pinned>,
}

/// An image pinned for a release: a tag of that release and the image ID it names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pinned {
    /// `<project>-<service>:<release-id>`: no later build or pull can move it.
    pub reference: String,
    /// `sha256:…`
    pub id: String,
    /// `repo@sha256:…` of a registry image, when the engine knows it.
    pub repo_digest: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Resources {
    pub memory_mb: Option<u64>,
    pub cpus: Option<f64>,
}

impl Resources {
    pub fn memory_bytes(&self) -> Option<i64> {
        self.memory_mb
            .map(|m| m.saturating_mul(1024 * 1024).min(i64::MAX as u64) as i64)
    }

    pub fn nano_cpus(&self) -> Option<i64> {
        self.cpus.map(|c| (c * 1e9) as i64)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dependency {
    pub service: String,
    /// Wait until it is healthy (it has a health check), not only started.
    pub healthy: bool,
    /// Wait until it exited with code 0 (`name:completed`, Compose's
    /// `service_completed_successfully`). Left out of the JSON when false, so digests
    /// stay.
    #[serde(default, skip_serializing_if = "is_false")]
    pub completed: bool,
}

fn is_false(value: &bool) -> bool {
    !*value
}

/// How a container is known to be ready.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    /// Running is enough.
    Running,
    /// Its health check passes: Docker's health status turns `healthy`, or stack's own
    /// run of the probe (an HTTP probe of the container's address where stack reaches it).
    Healthy(Probe),
    /// A job: its container exited with code 0.
    Completed,
}

impl DesiredService {
    /// `PULL_POLICY` `always` or `build`: its image is fetched at every `start` and `deploy`.
    pub fn fetched_every_run(&self) -> bool {
        use crate::config::attrs::image::PullPolicy;
        matches!(
            self.options.pull_policy,
            Some(PullPolicy::Always | PullPolicy::Build)
        )
    }

    /// The names Docker's DNS answers with the service's containers: its own, then its
    /// `ALIASES`.
    pub fn dns_names(&self) -> Vec<String> {
        let mut names = vec![self.name.clone()];
        names.extend(self.options.aliases.iter().cloned());
        names
    }

    /// How long a container gets between the stop signal and SIGKILL.
    pub fn stop_grace(&self) -> Duration {
        self.options.stop_grace.unwrap_or(DEFAULT_STOP_GRACE)
    }

    /// The image reference containers are created from: the release's pin, else `image`.
    pub fn run_image(&self) -> &str {
        self.pinned.as_ref().map_or(&self.image, |p| &p.reference)
    }

    /// The log driver and its options: the service's own (`LOGGING`), else json-file with
    /// the project's rotation. Every writer (compose, engine, swarm) takes it from here.
    pub fn log_driver(&self) -> (String, Vec<(String, String)>) {
        match &self.options.logging {
            Some(own) => (
                own.driver.clone(),
                own.options.clone().into_iter().collect(),
            ),
            None => (
                "json-file".into(),
                vec![
                    ("max-size".into(), self.logging.max_size.to_string()),
                    ("max-file".into(), self.logging.max_files.to_string()),
                ],
            ),
        }
    }

    /// How to tell that one of its containers is ready.
    pub fn readiness(&self) -> Readiness {
        if self.job {
            return Readiness::Completed;
        }
        match &self.health {
            None => Readiness::Running,
            Some(health) => Readiness::Healthy(health.probe.clone()),
        }
    }

    /// Ready when at least the wanted replicas exist and each is ready: the one rule that
    /// `start`, `status` and `health` share. `ready` answers for one container.
    pub fn is_ready<T>(&self, containers: &[T], ready: impl Fn(&T) -> bool) -> bool {
        if self.replicas == 0 {
            return true;
        }
        containers.len() >= self.replicas as usize && containers.iter().all(ready)
    }
}

/// Where the project and the bundle are on the engine's host: the project itself and
/// `.stack/<env>` locally; `SERVER_PATH` and its `current` release on a server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    pub root: PathBuf,
    pub bundle: PathBuf,
}

impl Placement {
    /// The host path of `path` under this placement.
    pub fn resolve(&self, path: &HostPath) -> PathBuf {
        match path {
            HostPath::Project(rel) => self.root.join(rel),
            HostPath::Bundle(rel) => self.bundle.join(rel),
            HostPath::Host(path) => path.clone(),
            HostPath::State(rel) => self.state_dir().join(rel),
            HostPath::Proxy(rel) => self.state_dir().join(PROXY_DIR).join(rel),
        }
    }

    /// The folder of state that outlives releases: `SERVER_PATH` for a release of a
    /// server (the bundle's parent, or its grandparent under `releases/`); locally
    /// `.stack`.
    pub fn state_dir(&self) -> PathBuf {
        let bundle = &self.bundle;
        let parent = bundle.parent().unwrap_or(bundle);
        match parent.file_name() {
            Some(name) if name == "releases" => parent.parent().unwrap_or(parent),
            _ => parent,
        }
        .to_path_buf()
    }
}

impl Desired {
    pub fn service(&self, name: &str) -> Option<&DesiredService> {
        self.services.iter().find(|s| s.name == name)
    }

    /// The host folders that hold database dumps (the BACKUP preset's `/backups` binds):
    /// created 0700 before the containers that write them start, so they belong to the
    /// deploy user and no other account on the machine reads them.
    pub fn private_dirs(&self) -> Vec<&HostPath> {
        self.services
            .iter()
            .filter(|s| s.name == "backup" || s.name == "backup-offsite")
            .flat_map(|s| &s.mounts)
            .filter_map(|m| match m {
                Mount::Bind { source, target, .. } if target == "/backups" => Some(source),
                _ => None,
            })
            .collect()
    }

    /// The folders of state the services bind (the maintenance switch): created 0755 by
    /// the deploy user before a container binds them (the engine would make them root's).
    pub fn state_dirs(&self) -> Vec<&HostPath> {
        let mut out: Vec<&HostPath> = Vec::new();
        for mount in self.services.iter().flat_map(|s| &s.mounts) {
            if let Mount::Bind {
                source: source @ HostPath::State(_),
                ..
            } = mount
            {
                if !out.contains(&source) {
                    out.push(source);
                }
            }
        }
        out
    }

    /// The project network's name.
    pub fn network(&self) -> String {
        default_network(&self.project)
    }

    /// The engine's name of the network `short` (an external one keeps its own).
    pub fn network_name(&self, short: &str) -> String {
        if self.networks.iter().any(|n| n.name == short && n.external) {
            return short.to_string();
        }
        format!("{}_{short}", self.project)
    }

    /// Every network the services join (`default` alone for an older release).
    pub fn all_networks(&self) -> Vec<Network> {
        if self.networks.is_empty() {
            return vec![Network {
                name: crate::config::DEFAULT_NETWORK.to_string(),
                internal: false,
                external: false,
            }];
        }
        self.networks.clone()
    }

    /// The engine's names of the networks `service` joins, the primary one first.
    pub fn service_networks(&self, service: &DesiredService) -> Vec<String> {
        service
            .networks
            .iter()
            .map(|short| self.network_name(short))
            .collect()
    }

    /// The engine's name of a named volume.
    pub fn volume_name(&self, short: &str) -> String {
        format!("{}_{short}", self.project)
    }

    /// Services in dependency order, grouped in levels that can start in parallel; not
    /// scheduled jobs (no long-running container to converge, roll or wait for).
    pub fn levels(&self) -> Vec<Vec<&DesiredService>> {
        let mut placed: BTreeSet<&str> = BTreeSet::new();
        let mut levels = Vec::new();
        let mut rest: Vec<&DesiredService> = self
            .services
            .iter()
            .filter(|s| s.schedule.is_none())
            .collect();
        while !rest.is_empty() {
            let (ready, waiting): (Vec<_>, Vec<_>) = rest.into_iter().partition(|s| {
                s.depends_on.iter().all(|d| {
                    placed.contains(d.service.as_str()) || self.service(&d.service).is_none()
                })
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

/// The project network: Compose's default network name.
pub fn default_network(project: &str) -> String {
    format!("{project}_default")
}

/// The name Compose gives a container.
pub fn container_name(project: &str, service: &str, number: u32) -> String {
    format!("{project}-{service}-{number}")
}
