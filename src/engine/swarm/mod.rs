//! `STACK_TARGET=swarm`: the same desired services as a Docker Swarm stack (replicated
//! services on an overlay network, start-first rolling updates that roll back on
//! failure), through the Engine API. Swarm schedules; stack only declares.

mod plan;
mod service;
mod wait;

pub use plan::SwarmAction;

use std::collections::HashMap;
use std::time::Instant;

use bollard::models::{NetworkCreateRequest, ServiceSpec};
use bollard::query_parameters::{ListServicesOptions, UpdateServiceOptions};

use super::{clean_error, labels, Engine};
use crate::error::{Error, Result};
use crate::model::{self, Desired, DesiredService, Placement, Secrets};
use crate::printer::Progress;
use service::service_spec;

/// The label Docker's own `docker stack` puts on a stack's objects.
const NAMESPACE: &str = "com.docker.stack.namespace";

fn outside(what: &str, err: bollard::errors::Error) -> Error {
    Error::Outside {
        message: what.to_string(),
        causes: vec![clean_error(&err)],
        hint: None,
    }
}

/// `<project>_<service>`, as `docker stack deploy` names services.
pub fn service_name(project: &str, service: &str) -> String {
    format!("{project}_{service}")
}

/// Swarm secret objects by secret key: (name, ID). Swarm secrets cannot change, so the
/// name carries a hash of the value and a new value is a new secret.
pub type SwarmSecrets = HashMap<String, (String, String)>;

/// The swarm secret name of the secret `key` with `value`.
fn swarm_secret_name(project: &str, key: &str, value: &str) -> String {
    use sha2::{Digest, Sha256};
    let hash = Sha256::digest(value.as_bytes());
    let short: String = hash.iter().take(6).map(|b| format!("{b:02x}")).collect();
    format!("{project}_{}_{short}", key.to_ascii_lowercase())
}

/// A service of the stack as the engine has it: name, spec version, stack's digest label.
type StackService = (String, u64, Option<String>);

impl Engine {
    /// The plan of a swarm deploy of `desired` against the stack the engine has, changing
    /// nothing ([`plan::plan`]).
    pub async fn swarm_plan(
        &self,
        desired: &Desired,
        run_releases: bool,
    ) -> Result<Vec<SwarmAction>> {
        self.check_swarm_manager().await?;
        let existing = self.stack_services(&desired.project).await?;
        Ok(plan::plan(desired, &existing, run_releases))
    }

    /// Deploy `desired` as a swarm stack: plan against the stack's services, apply the
    /// plan in order (dependencies first, so a release command finds them converged),
    /// then wait until every service runs its wanted replicas of the new version. The
    /// actions applied.
    pub async fn converge_swarm(
        &self,
        desired: &Desired,
        place: (&Placement, &Secrets),
        progress: &Progress,
        run_releases: bool,
    ) -> Result<Vec<SwarmAction>> {
        let timeout = desired.rollout.health_timeout;
        let deadline = Instant::now() + timeout;
        self.check_swarm_manager().await?;
        self.ensure_overlays(desired).await?;
        let swarm_secrets = self.ensure_secrets(desired, place.1).await?;
        let existing = self.stack_services(&desired.project).await?;
        let actions = plan::plan(desired, &existing, run_releases);
        for service in &desired.services {
            if !actions
                .iter()
                .any(|a| a.service() == Some(service.name.as_str()))
            {
                progress.step(&service.name, "unchanged");
            }
        }
        for action in &actions {
            let Some(service) = action.service().and_then(|s| desired.service(s)) else {
                if let SwarmAction::Remove { name } = action {
                    self.remove_swarm_service(name, progress).await?;
                }
                continue;
            };
            let spec = || service_spec(desired, service, place, &swarm_secrets);
            match action {
                SwarmAction::Release { .. } => {
                    self.release_swarm_service(desired, service, place, deadline, progress)
                        .await?
                }
                SwarmAction::Update { name, version, .. } => {
                    self.update_swarm_service(service, name, spec(), *version, progress)
                        .await?
                }
                SwarmAction::Create { name, .. } => {
                    self.create_swarm_service(service, name, spec(), progress)
                        .await?
                }
                SwarmAction::Remove { .. } => {}
            }
        }
        for service in desired.levels().into_iter().flatten() {
            self.wait_swarm_service(desired, service, deadline, progress)
                .await?;
        }
        Ok(actions)
    }

    /// Refuse an engine that is not an active swarm manager, saying how to make it one.
    async fn check_swarm_manager(&self) -> Result<()> {
        let info = self
            .docker
            .info()
            .await
            .map_err(|e| outside("cannot read the engine's info", e))?;
        let swarm = info.swarm.unwrap_or_default();
        let active = swarm.local_node_state.map(|s| s.to_string()).as_deref() == Some("active");
        if !active || swarm.control_available != Some(true) {
            return Err(Error::outside("the server's engine is not a swarm manager")
                .with_hint("run `docker swarm init` on the server (and join the other nodes), or set `STACK_TARGET=compose`"));
        }
        Ok(())
    }

    /// Run the release command of `service`, once the services it depends on run.
    async fn release_swarm_service(
        &self,
        desired: &Desired,
        service: &DesiredService,
        place: (&Placement, &Secrets),
        deadline: Instant,
        progress: &Progress,
    ) -> Result<()> {
        for dependency in &service.depends_on {
            if let Some(dependency) = desired.service(&dependency.service) {
                self.wait_swarm_service(desired, dependency, deadline, progress)
                    .await?;
            }
        }
        super::converge::run_release(self, (desired, service), place, progress).await
    }

    /// Update the swarm service `name` (at spec `version`) to `spec`; swarm rolls it
    /// start-first.
    async fn update_swarm_service(
        &self,
        service: &DesiredService,
        name: &str,
        spec: ServiceSpec,
        version: u64,
        progress: &Progress,
    ) -> Result<()> {
        progress.step(&service.name, "updating (start-first)");
        self.docker
            .update_service(
                name,
                spec,
                UpdateServiceOptions {
                    version: version as i32,
                    ..Default::default()
                },
                None,
            )
            .await
            .map_err(|e| {
                outside(
                    &format!("service `{}`: cannot update `{name}`", service.name),
                    e,
                )
            })?;
        Ok(())
    }

    /// Create the swarm service `name` from `spec`.
    async fn create_swarm_service(
        &self,
        service: &DesiredService,
        name: &str,
        spec: ServiceSpec,
        progress: &Progress,
    ) -> Result<()> {
        progress.step(&service.name, "creating");
        self.docker.create_service(spec, None).await.map_err(|e| {
            outside(
                &format!("service `{}`: cannot create `{name}`", service.name),
                e,
            )
        })?;
        Ok(())
    }

    /// Remove a service of the stack that is no longer in the project.
    async fn remove_swarm_service(&self, name: &str, progress: &Progress) -> Result<()> {
        progress.step(name, "removing (no longer in the project)");
        self.docker
            .delete_service(name)
            .await
            .map_err(|e| outside(&format!("cannot remove service `{name}`"), e))?;
        Ok(())
    }

    /// An overlay network for every network of the project; one that exists is kept.
    async fn ensure_overlays(&self, desired: &Desired) -> Result<()> {
        for network in desired.all_networks().iter().filter(|n| !n.external) {
            let name = desired.network_name(&network.name);
            let request = NetworkCreateRequest {
                name: name.clone(),
                driver: Some("overlay".into()),
                attachable: Some(true),
                options: desired
                    .encrypt
                    .then(|| HashMap::from([("encrypted".to_string(), "true".to_string())])),
                internal: Some(network.internal),
                labels: Some(HashMap::from([(
                    NAMESPACE.to_string(),
                    desired.project.clone(),
                )])),
                ..Default::default()
            };
            match self.docker.create_network(request).await {
                Ok(_) => {}
                Err(bollard::errors::Error::DockerResponseServerError {
                    status_code: 409, ..
                }) => {}
                Err(e) => {
                    return Err(outside(
                        &format!("cannot create the overlay network `{name}`"),
                        e,
                    ))
                }
            }
        }
        Ok(())
    }

    /// A swarm secret for every secret file, created when its value is new.
    async fn ensure_secrets(&self, desired: &Desired, secrets: &Secrets) -> Result<SwarmSecrets> {
        let mut out = SwarmSecrets::new();
        let files = desired.services.iter().flat_map(|s| &s.secret_files);
        for file in files {
            if out.contains_key(&file.key) {
                continue;
            }
            let var = model::secret_file_var(&file.key);
            let Some(value) = secrets.0.get(&var) else {
                return Err(Error::outside(format!(
                    "the secret `{}` is missing from the release's `.env`",
                    file.key
                )));
            };
            let name = swarm_secret_name(&desired.project, &file.key, value);
            let id = match self.docker.inspect_secret(&name).await {
                Ok(secret) => secret.id.unwrap_or_default(),
                Err(_) => {
                    use base64::Engine as _;
                    let spec = bollard::models::SecretSpec {
                        name: Some(name.clone()),
                        labels: Some(HashMap::from([(
                            NAMESPACE.to_string(),
                            desired.project.clone(),
                        )])),
                        data: Some(base64::engine::general_purpose::STANDARD.encode(value)),
                        ..Default::default()
                    };
                    self.docker
                        .create_secret(spec)
                        .await
                        .map_err(|e| {
                            outside(&format!("cannot create the swarm secret `{name}`"), e)
                        })?
                        .id
                }
            };
            out.insert(file.key.clone(), (name, id));
        }
        Ok(out)
    }

    /// The stack's services: name, spec version, stack's digest label.
    async fn stack_services(&self, project: &str) -> Result<Vec<StackService>> {
        let filters =
            HashMap::from([("label".to_string(), vec![format!("{NAMESPACE}={project}")])]);
        let list = self
            .docker
            .list_services(Some(ListServicesOptions {
                filters: Some(filters),
                ..Default::default()
            }))
            .await
            .map_err(|e| outside("cannot list swarm services", e))?;
        Ok(list
            .into_iter()
            .filter_map(|s| {
                let spec = s.spec?;
                let digest = spec
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(labels::DIGEST).cloned());
                Some((
                    spec.name?,
                    s.version.and_then(|v| v.index).unwrap_or(0),
                    digest,
                ))
            })
            .collect())
    }
}
