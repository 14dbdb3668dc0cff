//! The Docker Engine, through bollard. One wrapper that speaks our own types
//! ([`crate::plan`]) so no bollard type leaks upward.

mod context;
pub mod converge;
mod swarm;
pub use swarm::service_name as swarm_service_name;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use bollard::models::{
    ContainerCreateBody, EndpointSettings, HealthConfig, HostConfig, NetworkCreateRequest,
    NetworkingConfig, PortBinding, RestartPolicy, RestartPolicyNameEnum, VolumeCreateOptions,
};
use bollard::query_parameters::{
    CreateContainerOptions, CreateImageOptions, EventsOptions, ListContainersOptions,
    ListVolumesOptions, LogsOptions, RemoveContainerOptions, StopContainerOptions,
};
use bollard::Docker;
use futures_util::{Stream, StreamExt};

use crate::error::{Error, Result};
use crate::plan::{labels, ContainerSpec, Desired, Observed, ObservedContainer};

/// A connected engine.
#[derive(Clone)]
pub struct Engine {
    docker: Docker,
    /// Where we connected, for messages.
    pub endpoint: String,
}

/// A container's live state, for status and health.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ContainerState {
    pub id: String,
    pub name: String,
    pub service: String,
    pub number: u32,
    pub state: String,
    /// `healthy`, `unhealthy`, `starting`, or `none` without a health check.
    pub health: String,
    pub ports: Vec<String>,
    pub image: String,
    pub started_at: String,
    pub ip: Option<String>,
    /// The last health check's output.
    #[serde(skip)]
    pub health_log: Option<String>,
    pub exit_code: Option<i64>,
}

fn outside(what: &str, err: bollard::errors::Error) -> Error {
    Error::Outside {
        message: what.to_string(),
        causes: vec![clean_error(&err)],
        hint: None,
    }
}

/// The engine's message without bollard's wrapping.
pub fn clean_error(err: &bollard::errors::Error) -> String {
    match err {
        bollard::errors::Error::DockerResponseServerError { message, .. } => message.clone(),
        other => other.to_string(),
    }
}

fn is_not_found(err: &bollard::errors::Error) -> bool {
    matches!(
        err,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

impl Engine {
    /// Connect through `DOCKER_HOST` (unix or tcp) or the default socket, and agree on
    /// an API version the engine speaks (Debian's 20.10 is API 1.41).
    pub async fn connect() -> Result<Engine> {
        let endpoint =
            std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".into());
        Self::connect_to(&endpoint).await
    }

    pub async fn connect_to(endpoint: &str) -> Result<Engine> {
        let unreachable = |cause: String| Error::Outside {
            message: format!("cannot reach the Docker engine at `{endpoint}`"),
            causes: vec![cause],
            hint: Some(
                "start Docker (`systemctl start docker` or `dockerd`), or set DOCKER_HOST".into(),
            ),
        };
        let docker = if let Some(path) = endpoint.strip_prefix("unix://") {
            Docker::connect_with_unix(path, 120, bollard::API_DEFAULT_VERSION)
        } else if endpoint.starts_with("tcp://") || endpoint.starts_with("http://") {
            Docker::connect_with_http(endpoint, 120, bollard::API_DEFAULT_VERSION)
        } else if endpoint.starts_with('/') {
            Docker::connect_with_unix(endpoint, 120, bollard::API_DEFAULT_VERSION)
        } else {
            return Err(Error::usage(format!(
                "DOCKER_HOST `{endpoint}` is not supported; use unix:// or tcp://"
            )));
        }
        .map_err(|e| unreachable(clean_error(&e)))?;
        let docker = tokio::time::timeout(Duration::from_secs(10), docker.negotiate_version())
            .await
            .map_err(|_| unreachable("no answer within 10 s".into()))?
            .map_err(|e| unreachable(clean_error(&e)))?;
        Ok(Engine {
            docker,
            endpoint: endpoint.to_string(),
        })
    }

    fn project_filter(project: &str) -> HashMap<String, Vec<String>> {
        HashMap::from([(
            "label".to_string(),
            vec![format!("{}={project}", labels::PROJECT)],
        )])
    }

    /// Every container of the project (one-off containers aside).
    pub async fn containers(&self, project: &str) -> Result<Vec<ObservedContainer>> {
        let list = self
            .docker
            .list_containers(Some(ListContainersOptions {
                all: true,
                filters: Some(Self::project_filter(project)),
                ..Default::default()
            }))
            .await
            .map_err(|e| outside("cannot list containers", e))?;
        let mut out = Vec::new();
        for summary in list {
            let labels = summary.labels.unwrap_or_default();
            if labels.get(labels::ONEOFF).is_some_and(|v| v == "True") {
                continue;
            }
            let name = summary
                .names
                .and_then(|n| n.into_iter().next())
                .unwrap_or_default()
                .trim_start_matches('/')
                .to_string();
            out.push(ObservedContainer {
                id: summary.id.unwrap_or_default(),
                name,
                service: labels.get(labels::SERVICE).cloned().unwrap_or_default(),
                number: labels
                    .get(labels::NUMBER)
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0),
                digest: labels.get(labels::CONFIG_HASH).cloned().unwrap_or_default(),
                running: summary.state.map(|s| s.to_string()).as_deref() == Some("running"),
                image_id: summary.image_id.unwrap_or_default(),
            });
        }
        out.sort_by(|a, b| (&a.service, a.number).cmp(&(&b.service, b.number)));
        Ok(out)
    }

    /// Observe what the planner needs for `desired`.
    pub async fn observe(&self, desired: &Desired) -> Result<Observed> {
        let network = match self
            .docker
            .inspect_network(
                &desired.network,
                None::<bollard::query_parameters::InspectNetworkOptions>,
            )
            .await
        {
            Ok(_) => true,
            Err(e) if is_not_found(&e) => false,
            Err(e) => return Err(outside("cannot inspect the project network", e)),
        };
        let volumes = self
            .docker
            .list_volumes(None::<ListVolumesOptions>)
            .await
            .map_err(|e| outside("cannot list volumes", e))?
            .volumes
            .unwrap_or_default()
            .into_iter()
            .map(|v| v.name)
            .filter(|name| desired.volumes.iter().any(|(full, _)| full == name))
            .collect();
        let containers = self.containers(&desired.project).await?;
        let mut images = BTreeMap::new();
        let lookups = desired
            .services
            .iter()
            .map(|s| self.image_id(&s.spec.image));
        for (service, id) in desired
            .services
            .iter()
            .zip(futures_util::future::join_all(lookups).await)
        {
            if let Some(id) = id? {
                images.insert(service.spec.image.clone(), id);
            }
        }
        Ok(Observed {
            network,
            volumes,
            containers,
            images,
        })
    }

    /// The local ID of an image reference, `None` when it is not present.
    pub async fn image_id(&self, image: &str) -> Result<Option<String>> {
        match self.docker.inspect_image(image).await {
            Ok(inspect) => Ok(inspect.id),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(outside(&format!("cannot inspect image `{image}`"), e)),
        }
    }

    /// Pull an image; `progress` gets short status lines.
    pub async fn pull(&self, image: &str, progress: impl Fn(&str)) -> Result<()> {
        let (name, tag) = split_reference(image);
        let mut stream = self.docker.create_image(
            Some(CreateImageOptions {
                from_image: Some(name.to_string()),
                tag: Some(tag.to_string()),
                ..Default::default()
            }),
            None,
            None,
        );
        while let Some(item) = stream.next().await {
            let info = item.map_err(|e| Error::Outside {
                message: format!("cannot pull image `{image}`"),
                causes: vec![clean_error(&e)],
                hint: Some(
                    "check the image name and tag, and that the registry is reachable".into(),
                ),
            })?;
            if let Some(status) = info.status {
                progress(&status);
            }
        }
        Ok(())
    }

    pub async fn create_network(&self, project: &str, name: &str) -> Result<()> {
        let request = NetworkCreateRequest {
            name: name.to_string(),
            driver: Some("bridge".into()),
            labels: Some(HashMap::from([
                (labels::PROJECT.to_string(), project.to_string()),
                (labels::NETWORK.to_string(), "default".to_string()),
            ])),
            ..Default::default()
        };
        match self.docker.create_network(request).await {
            Ok(_) => Ok(()),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 409, ..
            }) => Ok(()),
            Err(e) => Err(outside(&format!("cannot create network `{name}`"), e)),
        }
    }

    pub async fn create_volume(&self, project: &str, name: &str, short: &str) -> Result<()> {
        let options = VolumeCreateOptions {
            name: Some(name.to_string()),
            labels: Some(HashMap::from([
                (labels::PROJECT.to_string(), project.to_string()),
                (labels::VOLUME.to_string(), short.to_string()),
            ])),
            ..Default::default()
        };
        self.docker
            .create_volume(options)
            .await
            .map(|_| ())
            .map_err(|e| outside(&format!("cannot create volume `{name}`"), e))
    }

    /// Create (not start) a container; refuses to touch one the project does not own.
    /// `in_dns`: join the network under the service's aliases now; a rolling update
    /// creates the new container without them and adds them with [`Engine::expose`] once
    /// it is ready, so no request reaches a container that is not.
    pub async fn create(
        &self,
        project: &str,
        network: &str,
        service: &str,
        number: u32,
        spec: &ContainerSpec,
        in_dns: bool,
    ) -> Result<String> {
        let name = crate::plan::container_name(project, service, number);
        if let Ok(existing) = self
            .docker
            .inspect_container(
                &name,
                None::<bollard::query_parameters::InspectContainerOptions>,
            )
            .await
        {
            let owner = existing
                .config
                .and_then(|c| c.labels)
                .and_then(|l| l.get(labels::PROJECT).cloned());
            if owner.as_deref() != Some(project) {
                return Err(Error::Outside {
                    message: format!(
                        "service `{service}`: a container named `{name}` exists and does not belong to project `{project}`"
                    ),
                    causes: Vec::new(),
                    hint: Some(format!("remove or rename it (`docker rm -f {name}`), or change `STACK_PROJECT`")),
                });
            }
            self.remove(
                &existing.id.unwrap_or(name.clone()),
                Duration::from_secs(10),
            )
            .await?;
        }
        let mut labels = spec.labels.clone();
        labels.insert(labels::NUMBER.into(), number.to_string());
        let mut port_bindings: HashMap<String, Option<Vec<PortBinding>>> = HashMap::new();
        let mut exposed: HashMap<String, HashMap<(), ()>> = HashMap::new();
        for port in &spec.exposed {
            exposed.insert(format!("{port}/tcp"), HashMap::new());
        }
        for port in &spec.ports {
            let key = format!("{}/{}", port.container_port, port.protocol);
            exposed.insert(key.clone(), HashMap::new());
            port_bindings
                .entry(key)
                .or_insert_with(|| Some(Vec::new()))
                .get_or_insert_with(Vec::new)
                .push(PortBinding {
                    host_ip: port.host_ip.clone(),
                    host_port: port.host_port.map(|p| p.to_string()),
                });
        }
        let restart = restart_policy(&spec.restart);
        let mut aliases = if in_dns {
            spec.aliases.clone()
        } else {
            Vec::new()
        };
        aliases.push(name.clone());
        let body = ContainerCreateBody {
            image: Some(spec.image.clone()),
            cmd: spec.command.clone(),
            env: Some(spec.env.clone()),
            labels: Some(labels.into_iter().collect()),
            exposed_ports: Some(exposed),
            healthcheck: spec.health.as_ref().map(|h| HealthConfig {
                test: Some(h.test.clone()),
                interval: Some(h.interval_ns),
                timeout: Some(h.timeout_ns),
                retries: Some(h.retries),
                start_period: Some(h.start_period_ns),
                ..Default::default()
            }),
            volumes: Some(
                spec.anonymous
                    .iter()
                    .map(|p| (p.clone(), HashMap::new()))
                    .collect(),
            ),
            host_config: Some(HostConfig {
                binds: Some(spec.binds.clone()),
                port_bindings: Some(port_bindings),
                restart_policy: Some(restart),
                memory: spec.memory_bytes,
                nano_cpus: spec.nano_cpus,
                extra_hosts: Some(spec.extra_hosts.clone()),
                network_mode: Some(network.to_string()),
                init: None,
                ..Default::default()
            }),
            networking_config: Some(NetworkingConfig {
                endpoints_config: Some(HashMap::from([(
                    network.to_string(),
                    EndpointSettings {
                        aliases: Some(aliases),
                        ..Default::default()
                    },
                )])),
            }),
            ..Default::default()
        };
        let created = self
            .docker
            .create_container(
                Some(CreateContainerOptions {
                    name: Some(name.clone()),
                    ..Default::default()
                }),
                body,
            )
            .await
            .map_err(|e| Error::Outside {
                message: format!("service `{service}`: cannot create container `{name}`"),
                causes: vec![clean_error(&e)],
                hint: None,
            })?;
        Ok(created.id)
    }

    pub async fn start(&self, service: &str, id: &str) -> Result<()> {
        self.docker
            .start_container(id, None::<bollard::query_parameters::StartContainerOptions>)
            .await
            .map_err(|e| {
                let cause = clean_error(&e);
                let hint = cause
                    .contains("port is already allocated")
                    .then(|| "another process or container holds that host port; free it or change `PUBLISH`".to_string())
                    .or_else(|| cause.contains("address already in use").then(|| "another process holds that host port; free it or change the port".to_string()));
                Error::Outside {
                    message: format!("service `{service}`: cannot start its container"),
                    causes: vec![cause],
                    hint,
                }
            })
    }

    pub async fn stop(&self, id: &str, grace: Duration) -> Result<()> {
        match self
            .docker
            .stop_container(
                id,
                Some(StopContainerOptions {
                    t: Some(grace.as_secs() as i32),
                    ..Default::default()
                }),
            )
            .await
        {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 304, ..
            }) => Ok(()),
            Err(e) => Err(outside(&format!("cannot stop container `{id}`"), e)),
        }
    }

    /// Stop (with its grace period) and remove a container.
    pub async fn remove(&self, id: &str, grace: Duration) -> Result<()> {
        self.stop(id, grace).await?;
        match self
            .docker
            .remove_container(
                id,
                Some(RemoveContainerOptions {
                    force: true,
                    v: false,
                    ..Default::default()
                }),
            )
            .await
        {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 409, ..
            }) => Ok(()), // removal already in progress
            Err(e) => Err(outside(&format!("cannot remove container `{id}`"), e)),
        }
    }

    pub async fn restart(&self, id: &str) -> Result<()> {
        self.docker
            .restart_container(
                id,
                None::<bollard::query_parameters::RestartContainerOptions>,
            )
            .await
            .map_err(|e| outside(&format!("cannot restart container `{id}`"), e))
    }

    /// Put a running container into DNS under `aliases` (and its own name): leave the
    /// network and join it again with them, since an endpoint's aliases are fixed.
    pub async fn expose(
        &self,
        network: &str,
        id: &str,
        name: &str,
        aliases: &[String],
    ) -> Result<()> {
        self.disconnect(network, id).await?;
        let mut all = aliases.to_vec();
        all.push(name.to_string());
        let request = bollard::models::NetworkConnectRequest {
            container: Some(id.to_string()),
            endpoint_config: Some(EndpointSettings {
                aliases: Some(all),
                ..Default::default()
            }),
        };
        self.docker
            .connect_network(network, request)
            .await
            .map_err(|e| {
                outside(
                    &format!("cannot put `{name}` into the network `{network}`"),
                    e,
                )
            })
    }

    /// Take a container out of the project network (and so out of DNS).
    pub async fn disconnect(&self, network: &str, id: &str) -> Result<()> {
        let request = bollard::models::NetworkDisconnectRequest {
            container: Some(id.to_string()),
            force: Some(true),
        };
        match self.docker.disconnect_network(network, request).await {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(outside(
                &format!("cannot disconnect `{id}` from `{network}`"),
                e,
            )),
        }
    }

    pub async fn remove_network(&self, name: &str) -> Result<()> {
        match self.docker.remove_network(name).await {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(outside(&format!("cannot remove network `{name}`"), e)),
        }
    }

    pub async fn remove_volume(&self, name: &str) -> Result<()> {
        match self
            .docker
            .remove_volume(name, None::<bollard::query_parameters::RemoveVolumeOptions>)
            .await
        {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(outside(&format!("cannot remove volume `{name}`"), e)),
        }
    }

    /// Volumes labelled as the project's.
    pub async fn project_volumes(&self, project: &str) -> Result<Vec<String>> {
        let list = self
            .docker
            .list_volumes(Some(ListVolumesOptions {
                filters: Some(Self::project_filter(project)),
            }))
            .await
            .map_err(|e| outside("cannot list volumes", e))?;
        Ok(list
            .volumes
            .unwrap_or_default()
            .into_iter()
            .map(|v| v.name)
            .collect())
    }

    /// Live state of one container.
    pub async fn state(&self, id: &str) -> Result<Option<ContainerState>> {
        let inspect = match self
            .docker
            .inspect_container(
                id,
                None::<bollard::query_parameters::InspectContainerOptions>,
            )
            .await
        {
            Ok(inspect) => inspect,
            Err(e) if is_not_found(&e) => return Ok(None),
            Err(e) => return Err(outside(&format!("cannot inspect container `{id}`"), e)),
        };
        let labels = inspect
            .config
            .as_ref()
            .and_then(|c| c.labels.clone())
            .unwrap_or_default();
        let state = inspect.state.clone().unwrap_or_default();
        let health = state.health.clone();
        let health_status = health
            .as_ref()
            .and_then(|h| h.status)
            .map(|s| s.to_string())
            .filter(|s| !s.is_empty() && s != "none")
            .unwrap_or_else(|| "none".into());
        let health_log = health
            .and_then(|h| h.log)
            .and_then(|log| log.last().cloned())
            .map(|entry| {
                format!(
                    "exit code {}: {}",
                    entry.exit_code.unwrap_or(-1),
                    entry.output.unwrap_or_default().trim()
                )
            });
        let network = inspect.network_settings.as_ref();
        let ip = network
            .and_then(|n| n.networks.as_ref())
            .and_then(|n| n.values().find_map(|e| e.ip_address.clone()))
            .filter(|ip| !ip.is_empty());
        let mut ports = Vec::new();
        if let Some(map) = network.and_then(|n| n.ports.as_ref()) {
            for (port, bindings) in map {
                for binding in bindings.iter().flatten() {
                    ports.push(format!(
                        "{}:{}->{port}",
                        binding.host_ip.as_deref().unwrap_or(""),
                        binding.host_port.as_deref().unwrap_or("")
                    ));
                }
            }
        }
        ports.sort();
        Ok(Some(ContainerState {
            id: inspect.id.unwrap_or_default(),
            name: inspect
                .name
                .unwrap_or_default()
                .trim_start_matches('/')
                .to_string(),
            service: labels.get(labels::SERVICE).cloned().unwrap_or_default(),
            number: labels
                .get(labels::NUMBER)
                .and_then(|n| n.parse().ok())
                .unwrap_or(0),
            state: state.status.map(|s| s.to_string()).unwrap_or_default(),
            health: health_status,
            ports,
            image: inspect.config.and_then(|c| c.image).unwrap_or_default(),
            started_at: state.started_at.unwrap_or_default(),
            ip,
            health_log,
            exit_code: state.exit_code,
        }))
    }

    /// The last `tail` log lines of a container.
    pub async fn tail(&self, id: &str, tail: usize) -> Result<Vec<String>> {
        let mut stream = self.logs(id, false, Some(tail));
        let mut lines = Vec::new();
        while let Some(item) = stream.next().await {
            let item = item?;
            lines.extend(item.lines().map(String::from));
        }
        Ok(lines)
    }

    /// A container's log as text chunks.
    pub fn logs(
        &self,
        id: &str,
        follow: bool,
        tail: Option<usize>,
    ) -> impl Stream<Item = Result<String>> + Send + 'static {
        let options = LogsOptions {
            follow,
            stdout: true,
            stderr: true,
            tail: tail.map_or_else(|| "all".to_string(), |t| t.to_string()),
            ..Default::default()
        };
        let id = id.to_string();
        self.docker.logs(&id, Some(options)).map(move |item| {
            item.map(|output| String::from_utf8_lossy(&output.into_bytes()).into_owned())
                .map_err(|e| outside(&format!("cannot read the log of `{id}`"), e))
        })
    }

    /// Container events of a project: (container id, action).
    pub fn events(&self, project: &str) -> impl Stream<Item = (String, String)> + Send + 'static {
        let mut filters = Self::project_filter(project);
        filters.insert("type".into(), vec!["container".into()]);
        self.docker
            .events(Some(EventsOptions {
                filters: Some(filters),
                ..Default::default()
            }))
            .filter_map(|event| async move {
                let event = event.ok()?;
                let id = event.actor.and_then(|a| a.id)?;
                Some((id, event.action.unwrap_or_default()))
            })
    }

    /// Build an image from a context directory (a tar honouring `.dockerignore`).
    pub async fn build(
        &self,
        service: &str,
        image: &str,
        build: &crate::plan::BuildSpec,
        progress: impl Fn(&str),
    ) -> Result<()> {
        let tar = context::tar(&build.context)?;
        let options = bollard::query_parameters::BuildImageOptions {
            dockerfile: build
                .dockerfile
                .clone()
                .unwrap_or_else(|| "Dockerfile".into()),
            t: Some(image.to_string()),
            rm: true,
            forcerm: true,
            ..Default::default()
        };
        let body = bollard::body_full(tar.into());
        let mut stream = self.docker.build_image(options, None, Some(body));
        let mut last = Vec::new();
        while let Some(item) = stream.next().await {
            let info = item.map_err(|e| Error::Outside {
                message: format!("service `{service}`: cannot build image `{image}`"),
                causes: vec![clean_error(&e)],
                hint: None,
            })?;
            if let Some(error) = info.error_detail.and_then(|d| d.message) {
                return Err(Error::Outside {
                    message: format!("service `{service}`: building `{image}` failed"),
                    causes: last.into_iter().chain([error]).collect(),
                    hint: None,
                });
            }
            if let Some(text) = info.stream {
                let text = text.trim_end().to_string();
                if !text.is_empty() {
                    progress(&text);
                    last.push(text);
                    if last.len() > 5 {
                        last.remove(0);
                    }
                }
            }
        }
        Ok(())
    }
}

impl Engine {
    /// Copy an image from this engine to `target` (export, then load): no registry needed.
    pub async fn send_image(&self, image: &str, target: &Engine) -> Result<()> {
        let mut bytes = Vec::new();
        let mut stream = self.docker.export_image(image);
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| outside(&format!("cannot export image `{image}`"), e))?;
            bytes.extend_from_slice(&chunk);
        }
        let mut load = target.docker.import_image(
            bollard::query_parameters::ImportImageOptions {
                quiet: true,
                ..Default::default()
            },
            bollard::body_full(bytes.into()),
            None,
        );
        while let Some(item) = load.next().await {
            let info = item
                .map_err(|e| outside(&format!("cannot load image `{image}` on the server"), e))?;
            if let Some(error) = info.error_detail.and_then(|d| d.message) {
                return Err(Error::outside(format!(
                    "cannot load image `{image}` on the server: {error}"
                )));
            }
        }
        Ok(())
    }
}

fn restart_policy(text: &str) -> RestartPolicy {
    let (name, count) = match text.split_once(':') {
        Some((name, count)) => (name, count.parse().ok()),
        None => (text, None),
    };
    let name = match name {
        "always" => RestartPolicyNameEnum::ALWAYS,
        "on-failure" => RestartPolicyNameEnum::ON_FAILURE,
        "unless-stopped" => RestartPolicyNameEnum::UNLESS_STOPPED,
        _ => RestartPolicyNameEnum::NO,
    };
    RestartPolicy {
        name: Some(name),
        maximum_retry_count: count,
    }
}

/// `repo[:tag]` → (repo, tag), `latest` when untagged; a digest stays in the name.
fn split_reference(image: &str) -> (&str, &str) {
    if image.contains('@') {
        return (image, "");
    }
    let last_slash = image.rfind('/').map_or(0, |i| i + 1);
    match image[last_slash..].rfind(':') {
        Some(i) => (&image[..last_slash + i], &image[last_slash + i + 1..]),
        None => (image, "latest"),
    }
}

#[cfg(test)]
mod tests {
    use super::split_reference;

    #[test]
    fn references() {
        assert_eq!(split_reference("postgres:16"), ("postgres", "16"));
        assert_eq!(split_reference("reg:5000/a/b"), ("reg:5000/a/b", "latest"));
        assert_eq!(split_reference("reg:5000/a/b:1"), ("reg:5000/a/b", "1"));
    }
}
