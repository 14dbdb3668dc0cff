//! The typed, validated configuration: what every later stage consumes.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

pub use super::attrs::{
    ByteSize, Capability, ContainerOptions, Device, ExtraHost, Gpus, HostAddress, LogRotation,
    Namespace, Platform, Signal, Tmpfs, Ulimit, User,
};
pub use super::types::{
    http_probe, mount_suffix, secret_file_path, secret_file_var, BuildSpec, EnvValue, Health,
    HostPath, Mount, MountOptions, Port, Probe, PublishMode, SecretFile, Secrets, PROPAGATIONS,
};
use crate::error::Span;

#[derive(Debug, Clone, Serialize)]
pub struct Config {
    pub project: String,
    pub env: String,
    #[serde(skip)]
    pub project_dir: PathBuf,
    pub domain: String,
    pub proxy: Proxy,
    pub tls: Tls,
    pub tls_email: Option<String>,
    /// The ACME server of `STACK_TLS=auto` (`STACK_ACME_CA`, `STACK_ACME_CA_ROOT`).
    #[serde(skip_serializing_if = "Acme::is_unset")]
    pub acme: Acme,
    #[serde(serialize_with = "ser_duration")]
    pub health_timeout: Duration,
    /// How long a replaced container keeps serving after it left DNS (`STACK_DRAIN`).
    #[serde(serialize_with = "ser_duration")]
    pub drain: Duration,
    pub log_level: String,
    pub keep_releases: u32,
    /// `STACK_PROTECTED` (default: true for `prod` only): a deploy must pass the
    /// production audit first (`stack check`), and the audit holds it to prod's rules.
    pub protected: bool,
    pub target: Target,
    /// Log rotation of every container (`STACK_LOG_MAX_SIZE`, `STACK_LOG_MAX_FILES`).
    pub logging: LogRotation,
    /// `STACK_HOOK_*`: commands run on this machine around builds and deploys.
    pub hooks: Hooks,
    /// `STACK_NOTIFY`: endpoints told about deploys and failures (secret URLs).
    #[serde(skip)]
    pub notify: Vec<super::notify::NotifyTarget>,
    /// The services that run in this environment, in declaration order.
    pub services: Vec<Service>,
    /// `STACK_IMAGE_TRANSFER`: only missing layers through a temporary registry, or
    /// whole archives.
    pub image_transfer: ImageTransfer,
    /// `STACK_SWARM_PUBLISH`: how the swarm target publishes ports.
    pub swarm_publish: PublishMode,
    /// `STACK_SWARM_ENCRYPT`: the swarm's overlay networks encrypt their traffic (IPsec).
    pub swarm_encrypt: bool,
    /// `STACK_REGISTRY_IMAGE`: the temporary registry's image.
    pub registry_image: String,
    /// `STACK_NETWORKS`: networks beyond the implicit `default`.
    pub networks: Vec<NetworkSpec>,
    /// Named volumes, sorted.
    pub volumes: Vec<String>,
    /// Secret names the project needs, sorted, and which are missing.
    pub secrets: Vec<SecretSpec>,
    pub server: Option<Server>,
    /// The project files that were read, in precedence order (for generated headers).
    pub sources: Vec<String>,
    /// `STACK_PREVIEW_*`: the previews this environment hosts.
    pub previews: super::preview::Previews,
    /// Set by `stack preview up`: this configuration is a preview of its environment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preview: Option<super::preview::PreviewOf>,
}

/// Where a project lives on its server when `SERVER_PATH` is not set.
pub fn default_server_path(project: &str) -> String {
    format!("/opt/{project}")
}

impl Config {
    /// The project's folder on its server (`SERVER_PATH`, else the default).
    pub fn server_path(&self) -> String {
        self.server
            .as_ref()
            .map_or_else(|| default_server_path(&self.project), |s| s.path.clone())
    }

    /// A proxy container runs when the project has a proxy and at least one route.
    pub fn needs_proxy(&self) -> bool {
        self.proxy.kind != ProxyKind::None && self.services.iter().any(|s| !s.routes.is_empty())
    }
}

/// Shell commands run (with `sh -c`, on the machine that runs stack) around builds and
/// deploys.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Hooks {
    /// `STACK_HOOK_PRE_BUILD`: before the bundle is rendered or images are built.
    pub pre_build: Option<String>,
    /// `STACK_HOOK_PRE_DEPLOY`: before a deploy changes anything; a failure aborts it.
    pub pre_deploy: Option<String>,
    /// `STACK_HOOK_POST_DEPLOY`: after a successful deploy; a failure is reported.
    pub post_deploy: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SecretSpec {
    pub name: String,
    pub present: bool,
    /// Where the value is set, when it is.
    #[serde(skip)]
    pub span: Option<Span>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProxyKind {
    Caddy,
    Nginx,
    None,
}

#[derive(Debug, Clone, Serialize)]
pub struct Proxy {
    pub kind: ProxyKind,
    pub image: String,
    pub http_port: u16,
    pub https_port: u16,
    /// `STACK_CADDY_STREAM_CLOSE_DELAY`: how long Caddy (2.7 or later) keeps WebSockets
    /// open after a reload (none: Caddy closes them at once, as 2.6 always does).
    pub stream_close_delay: Option<std::time::Duration>,
}

/// Where `STACK_TLS=auto` gets certificates: the directory URL (none: the proxy's
/// default, Let's Encrypt) and a PEM file in the project to trust for it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Acme {
    pub ca: Option<String>,
    /// Relative to the project, normalized.
    pub ca_root: Option<PathBuf>,
    /// nginx's ACME client (`STACK_CERTBOT_IMAGE`; none: [`CERTBOT_IMAGE`]).
    pub certbot_image: Option<String>,
    /// How often certbot looks for missing and due certificates (`STACK_CERTBOT_INTERVAL`;
    /// none: 12 hours).
    #[serde(serialize_with = "ser_optional_duration")]
    pub certbot_interval: Option<Duration>,
}

/// certbot's image when `STACK_CERTBOT_IMAGE` is not set, pinned.
pub const CERTBOT_IMAGE: &str = "certbot/certbot:v2.11.0";

fn ser_optional_duration<S: serde::Serializer>(
    value: &Option<Duration>,
    serializer: S,
) -> std::result::Result<S::Ok, S::Error> {
    value.map(|d| d.as_secs()).serialize(serializer)
}

impl Acme {
    /// Neither key is set: the proxy's defaults.
    pub fn is_unset(&self) -> bool {
        self == &Acme::default()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tls {
    Auto,
    Internal,
    Off,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    Compose,
    Swarm,
}

/// A restart policy, checked when the project is read; written as Docker spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restart {
    No,
    Always,
    UnlessStopped,
    /// With an optional maximum retry count.
    OnFailure(Option<u32>),
}

impl std::fmt::Display for Restart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Restart::No => f.write_str("no"),
            Restart::Always => f.write_str("always"),
            Restart::UnlessStopped => f.write_str("unless-stopped"),
            Restart::OnFailure(None) => f.write_str("on-failure"),
            Restart::OnFailure(Some(count)) => write!(f, "on-failure:{count}"),
        }
    }
}

impl std::str::FromStr for Restart {
    type Err = ();

    /// `no`, `always`, `unless-stopped`, `on-failure` or `on-failure:N`.
    fn from_str(text: &str) -> Result<Self, ()> {
        match text {
            "no" => Ok(Restart::No),
            "always" => Ok(Restart::Always),
            "unless-stopped" => Ok(Restart::UnlessStopped),
            "on-failure" => Ok(Restart::OnFailure(None)),
            _ => text
                .strip_prefix("on-failure:")
                .and_then(|n| n.parse().ok())
                .map(|n| Restart::OnFailure(Some(n)))
                .ok_or(()),
        }
    }
}

impl Serialize for Restart {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Restart {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse()
            .map_err(|()| serde::de::Error::custom(format!("not a restart policy: {text}")))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    Rolling,
    Recreate,
}

#[derive(Debug, Clone, Serialize)]
pub struct Server {
    pub host: String,
    pub user: String,
    pub port: u16,
    pub path: String,
    pub ssh_key: Option<String>,
    pub docker_socket: String,
    /// `stack server setup`: a firewall allowing SSH, 80 and 443 only.
    pub firewall: bool,
    /// `stack server setup`: unattended security upgrades.
    pub unattended_upgrades: bool,
    /// `SERVER_NODES`: the swarm's other machines (same user, port, key and socket),
    /// which get the images of `BUILD` services too.
    pub nodes: Vec<String>,
}

/// `METRICS`: an HTTP path on the service's `PORT`, or `off`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Metrics {
    Path(String),
    Off,
}

#[derive(Debug, Clone, Serialize)]
pub struct Service {
    pub name: String,
    /// The preset that made this service, if any.
    pub preset: Option<&'static str>,
    pub image: Option<String>,
    pub build: Option<BuildSpec>,
    pub command: Option<Vec<String>>,
    pub port: Option<u16>,
    /// `PUBLISH`: host port mappings.
    pub ports: Vec<Port>,
    pub routes: Vec<Route>,
    pub route_strip: bool,
    pub health: Option<Health>,
    /// `METRICS`: where Prometheus scrapes it (unset: the preset's services at
    /// `/metrics`, the project's own not at all).
    pub metrics: Option<Metrics>,
    pub depends_on: Vec<String>,
    /// The dependencies written `name:completed`: waited for until they exit with code 0
    /// (Compose's `service_completed_successfully`), not until they are ready.
    pub depends_completed: BTreeSet<String>,
    /// Variable → value; a secret as a reference to its `.env` variable, whose value is
    /// in `secret_values`.
    pub env: BTreeMap<String, EnvValue>,
    /// `VOLUMES` (and a preset's bundle files).
    pub mounts: Vec<Mount>,
    pub memory_mb: Option<u64>,
    pub cpus: Option<f64>,
    pub replicas: u32,
    pub restart: Restart,
    pub frontend: bool,
    pub upstream: Option<Upstream>,
    pub strategy: Strategy,
    /// `DRAIN`: how long a replaced container keeps its open connections in a rolling
    /// update (instead of `STOP_GRACE` when longer).
    pub drain: Option<std::time::Duration>,
    /// Environments the service exists in; `None`: all.
    pub environments: Option<Vec<String>>,
    /// `LABELS`, the project's own (stack's labels are added in the model, and win).
    pub labels: BTreeMap<String, String>,
    /// `EXTRA_HOSTS`.
    pub extra_hosts: Vec<ExtraHost>,
    /// `ENTRYPOINT`, `USER`, `CAP_ADD` and the other container options.
    pub options: ContainerOptions,
    /// `NETWORKS`: the networks it joins (short names; `default` unless set).
    pub networks: Vec<String>,
    /// `SECRET_FILES`: secrets delivered as read-only files.
    pub secret_files: Vec<SecretFile>,
    /// The values of its secret variables and secret files, by their `.env` name
    /// ([`crate::config::keys::secret_var`], [`secret_file_var`]). Never shown.
    #[serde(skip)]
    pub secret_values: Secrets,
    /// `AUTH`: a forward-auth endpoint in front of its routes.
    pub auth: Option<ForwardAuth>,
    /// `BASIC_AUTH`: a user and password in front of its routes.
    pub basic_auth: Option<BasicAuth>,
    /// `ENV_FILE`: files of `KEY=VALUE` lines, relative to the project, read by
    /// [`crate::config::load`] into `env` (the service's own variables win).
    pub env_files: Vec<String>,
    /// `RELEASE`: run once per rollout before the new version starts.
    pub release: Option<Release>,
    /// `SCHEDULE`, `CONCURRENCY`, `TIMEOUT`: a scheduled job, run in one-off containers
    /// and never started as a long-running one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schedule: Option<JobSchedule>,
    /// Where the service is declared, for errors found later.
    #[serde(skip)]
    pub span: Option<Span>,
    /// Where each attribute was set, for errors found across services.
    #[serde(skip)]
    pub attr_spans: BTreeMap<&'static str, Span>,
}

impl Service {
    /// Where `attr` was set, else where the service is declared.
    pub fn span_of(&self, attr: &str) -> Option<Span> {
        self.attr_spans
            .get(attr)
            .cloned()
            .or_else(|| self.span.clone())
    }

    /// No `USER`, or `USER` root: what a secret file's mode depends on.
    pub fn runs_as_root(&self) -> bool {
        self.options
            .user
            .as_ref()
            .is_none_or(|u| u.user == "root" || u.user == "0")
    }

    /// The mode of its secret files: 0400 as root, 0444 when its user must read them.
    pub fn secret_file_mode(&self) -> u32 {
        if self.runs_as_root() {
            0o400
        } else {
            0o444
        }
    }

    /// Set the container variable `var`; a secret's value goes to `secret_values`, and
    /// `env` refers to it by its `.env` name.
    pub fn set_env(&mut self, var: String, value: String, secret: bool) {
        let value = if secret {
            let name = super::keys::secret_var(&self.name, &var);
            self.secret_values.0.insert(name.clone(), value);
            EnvValue::Secret(name)
        } else {
            EnvValue::Plain(value)
        };
        self.env.insert(var, value);
    }

    /// The value of the container variable `var`, a secret's too.
    pub fn env_value(&self, var: &str) -> Option<&str> {
        match self.env.get(var)? {
            EnvValue::Plain(text) => Some(text),
            EnvValue::Secret(name) => self.secret_values.0.get(name).map(String::as_str),
        }
    }

    /// A container the engine runs (not an `UPSTREAM` on the host).
    pub fn is_container(&self) -> bool {
        self.upstream.is_none()
    }
}

/// How a deploy ships `BUILD` images to the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageTransfer {
    Registry,
    Archive,
}

/// `RELEASE` and `RELEASE_TIMEOUT`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Release {
    /// Split into words like `COMMAND`; run with the image's entrypoint.
    pub command: Vec<String>,
    /// Past this, the one-off container is killed and the rollout fails.
    pub timeout: Duration,
}

/// `SCHEDULE` with its `CONCURRENCY`, `TIMEOUT` and the project's `STACK_TIMEZONE`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct JobSchedule {
    /// Five cron fields, after `@daily` and `every 15m` are written as fields.
    pub cron: String,
    /// As the project file writes it, for messages.
    pub written: String,
    /// An IANA time zone name (`UTC` unless `STACK_TIMEZONE`).
    pub timezone: String,
    pub concurrency: Concurrency,
    /// Past this, the run's container is stopped and the run fails (exit code 124).
    pub timeout: Duration,
}

/// What a job's run does when another run of the job is still going.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Concurrency {
    /// The new run is refused.
    Forbid,
    /// Both run.
    Allow,
    /// The running one is stopped, then the new one runs.
    Replace,
}

/// The network every service joins unless `NETWORKS` says otherwise.
pub const DEFAULT_NETWORK: &str = "default";

/// A network of `STACK_NETWORKS`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NetworkSpec {
    pub name: String,
    /// No route out of the network (Docker's `internal`): for databases.
    pub internal: bool,
    /// Created outside the project (`name:external`): joined by its own name, never
    /// created or removed by stack.
    pub external: bool,
}

/// `AUTH`: where the proxy asks whether a request may pass.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct ForwardAuth {
    pub host: String,
    pub port: u16,
    /// Path (and query) of the verification endpoint.
    pub path: String,
}

/// `BASIC_AUTH`: one user and the bcrypt hash of its password (a secret).
#[derive(Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct BasicAuth {
    pub user: String,
    /// The secret key that holds the hash.
    pub key: String,
    #[serde(skip)]
    pub hash: String,
}

impl std::fmt::Debug for BasicAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BasicAuth({} <- {})", self.user, self.key)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Route {
    pub host: String,
    /// `/` for the whole host, else a prefix without a trailing slash (`/api`).
    pub path: String,
}

impl std::fmt::Display for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.path == "/" {
            write!(f, "{}", self.host)
        } else {
            write!(f, "{}{}", self.host, self.path)
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Upstream {
    pub host: String,
    pub port: u16,
}

pub(crate) fn ser_duration<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&super::values::compose_duration(*d))
}

/// What a secret looks like in any output.
pub const REDACTED: &str = "********";
