//! The Docker Engine, through bollard. One wrapper that speaks our own types
//! ([`crate::model`], [`crate::plan`]) so no bollard type leaks upward. Split by concern:
//! containers, images and transfer, logs and events, and the one mapping of a desired
//! service to a container ([`spec`]).

pub mod attach;
pub mod build;
pub mod certificates;
mod containers;
pub mod context;
pub mod converge;
mod images;
mod info;
pub mod jobs;
pub mod labels;
pub mod layers;
mod logs;
pub mod oneoff;
pub mod proxy;
pub mod readiness;
pub mod registry;
mod rolling;
pub mod scheduler;
mod spec;
mod swarm;
mod teardown;
pub use containers::{Grace, Volumes};
pub use images::split_reference;
pub use info::EngineInfo;
pub use swarm::service_name as swarm_service_name;
pub use swarm::SwarmAction;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use bollard::models::{NetworkCreateRequest, VolumeCreateOptions};
use bollard::query_parameters::{ListContainersOptions, ListVolumesOptions};
use bollard::Docker;

use crate::error::{Error, Result};
use crate::model::Desired;
use crate::plan::{Observed, ObservedContainer};

/// A connected engine.
#[derive(Clone)]
pub struct Engine {
    docker: Docker,
    /// Where we connected, for messages.
    pub endpoint: String,
    /// The engine runs on this machine (its local socket), so its containers' addresses
    /// can be reached from here. A server's engine through the SSH connection is not:
    /// there an HTTP readiness probe runs inside the container instead, because the
    /// same address here could be another container entirely.
    pub here: bool,
    /// The token one-off containers are labelled with ([`labels::LEASH`]), when the
    /// engine is a server's and its connection holds a leash.
    pub leash: Option<String>,
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
        other => {
            let mut text = other.to_string();
            let mut source = std::error::Error::source(other);
            while let Some(cause) = source {
                let more = cause.to_string();
                if !text.contains(&more) {
                    text = format!("{text}: {more}");
                }
                source = cause.source();
            }
            text
        }
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
        let here = endpoint.starts_with("unix://") || endpoint.starts_with('/');
        Self::open(&endpoint, here).await
    }

    /// Another machine's engine (a server's, through its forwarded socket).
    pub async fn connect_to(endpoint: &str) -> Result<Engine> {
        Self::open(endpoint, false).await
    }

    async fn open(endpoint: &str, here: bool) -> Result<Engine> {
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
            here,
            leash: None,
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
                unhealthy: summary
                    .status
                    .as_ref()
                    .is_some_and(|status| status.contains("(unhealthy)")),
                healthy: summary
                    .status
                    .as_ref()
                    .is_some_and(|status| status.contains("(healthy)")),
                completed: summary
                    .status
                    .as_ref()
                    .is_some_and(|status| status.starts_with("Exited (0)")),
                image_id: summary.image_id.unwrap_or_default(),
            });
        }
        out.sort_by(|a, b| (&a.service, a.number).cmp(&(&b.service, b.number)));
        Ok(out)
    }

    /// Observe what the planner needs for `desired`. The networks, volumes, containers
    /// and images are asked for at once (the wait of one round trip, not of one per
    /// question), each image once however many services run it, and the volumes only
    /// when the project has some, by name (not every volume on the engine).
    pub async fn observe(&self, desired: &Desired) -> Result<Observed> {
        let (networks, volumes, containers, images) = tokio::try_join!(
            self.observe_networks(desired),
            self.observe_volumes(desired),
            self.containers(&desired.project),
            self.observe_images(desired),
        )?;
        Ok(Observed {
            networks,
            volumes,
            containers,
            images,
            // The engine does not know the host's files: [`Converger::observe`] does.
            stale_files: Default::default(),
        })
    }

    /// The engine's names of `desired`'s networks that exist.
    async fn observe_networks(&self, desired: &Desired) -> Result<BTreeSet<String>> {
        let names: Vec<String> = desired
            .all_networks()
            .iter()
            .map(|network| desired.network_name(&network.name))
            .collect();
        let inspects = names.into_iter().map(|name| async move {
            let options = None::<bollard::query_parameters::InspectNetworkOptions>;
            match self.docker.inspect_network(&name, options).await {
                Ok(_) => Ok(Some(name)),
                Err(e) if is_not_found(&e) => Ok(None),
                Err(e) => Err(outside(&format!("cannot inspect the network `{name}`"), e)),
            }
        });
        let found = futures_util::future::try_join_all(inspects).await?;
        Ok(found.into_iter().flatten().collect())
    }

    /// The engine's names of `desired`'s volumes that exist.
    async fn observe_volumes(&self, desired: &Desired) -> Result<BTreeSet<String>> {
        let wanted: BTreeSet<String> = desired
            .volumes
            .iter()
            .map(|volume| desired.volume_name(volume))
            .collect();
        if wanted.is_empty() {
            return Ok(BTreeSet::new());
        }
        // The engine matches `name` as a pattern (a superset): the exact names are kept.
        let filters = HashMap::from([("name".to_string(), wanted.iter().cloned().collect())]);
        let options = ListVolumesOptions {
            filters: Some(filters),
        };
        let list = self
            .docker
            .list_volumes(Some(options))
            .await
            .map_err(|e| outside("cannot list volumes", e))?;
        let names = list.volumes.unwrap_or_default().into_iter().map(|v| v.name);
        Ok(names.filter(|name| wanted.contains(name)).collect())
    }

    /// Image reference → local image ID, for every image `desired`'s services run.
    async fn observe_images(&self, desired: &Desired) -> Result<BTreeMap<String, String>> {
        let references: BTreeSet<&str> = desired.services.iter().map(|s| s.run_image()).collect();
        let lookups = references.into_iter().map(|reference| async move {
            let id = self.image_id(reference).await?;
            Ok::<_, Error>(id.map(|id| (reference.to_string(), id)))
        });
        let found = futures_util::future::try_join_all(lookups).await?;
        Ok(found.into_iter().flatten().collect())
    }

    pub async fn create_network(&self, project: &str, name: &str, internal: bool) -> Result<()> {
        let short = name
            .strip_prefix(&format!("{project}_"))
            .unwrap_or(name)
            .to_string();
        let request = NetworkCreateRequest {
            name: name.to_string(),
            driver: Some("bridge".into()),
            internal: Some(internal),
            labels: Some(HashMap::from([
                (labels::PROJECT.to_string(), project.to_string()),
                (labels::NETWORK.to_string(), short),
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

    /// Volumes labelled as the project's.
    /// The networks stack created for `project` (by label), and its default network.
    pub async fn project_networks(&self, project: &str) -> Result<Vec<String>> {
        let list = self
            .docker
            .list_networks(Some(bollard::query_parameters::ListNetworksOptions {
                filters: Some(Self::project_filter(project)),
            }))
            .await
            .map_err(|e| outside("cannot list networks", e))?;
        let mut names: Vec<String> = list.into_iter().filter_map(|n| n.name).collect();
        let default = crate::model::default_network(project);
        if !names.contains(&default) {
            names.push(default);
        }
        Ok(names)
    }

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

    /// Does the network `name` exist?
    pub async fn network_exists(&self, name: &str) -> Result<bool> {
        match self
            .docker
            .inspect_network(
                name,
                None::<bollard::query_parameters::InspectNetworkOptions>,
            )
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if is_not_found(&e) => Ok(false),
            Err(e) => Err(outside(&format!("cannot inspect network `{name}`"), e)),
        }
    }
}
