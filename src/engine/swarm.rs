//! `STACK_TARGET=swarm`: the same desired services as a Docker Swarm stack (replicated
//! services on an overlay network, start-first rolling updates that roll back on
//! failure), through the Engine API. Swarm schedules; stack only declares.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bollard::models::{
    EndpointPortConfig, EndpointPortConfigProtocolEnum, EndpointPortConfigPublishModeEnum,
    EndpointSpec, EndpointSpecModeEnum, Limit, Mount, MountTmpfsOptions, MountTypeEnum,
    NetworkAttachmentConfig, NetworkCreateRequest, Platform, ServiceSpec, ServiceSpecMode,
    ServiceSpecModeReplicated, ServiceSpecRollbackConfig, ServiceSpecUpdateConfig,
    ServiceSpecUpdateConfigFailureActionEnum, ServiceSpecUpdateConfigOrderEnum,
    ServiceUpdateStatusStateEnum, TaskSpec, TaskSpecContainerSpec, TaskSpecContainerSpecFile,
    TaskSpecContainerSpecPrivileges, TaskSpecContainerSpecSecrets, TaskSpecLogDriver,
    TaskSpecPlacement, TaskSpecResources, TaskSpecRestartPolicy,
    TaskSpecRestartPolicyConditionEnum,
};
use bollard::query_parameters::{ListServicesOptions, ListTasksOptions, UpdateServiceOptions};

use super::{clean_error, labels, spec, Engine};
use crate::error::{Error, Result};
use crate::model::{self, Desired, DesiredService, Placement, PublishMode, Restart, Secrets};
use crate::printer::Progress;

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

fn mounts(desired: &Desired, service: &DesiredService, placement: &Placement) -> Vec<Mount> {
    let volume = |source: Option<String>, target: &str, read_only: bool| Mount {
        target: Some(target.to_string()),
        source,
        typ: Some(MountTypeEnum::VOLUME),
        read_only: Some(read_only),
        ..Default::default()
    };
    service
        .mounts
        .iter()
        .map(|mount| match mount {
            model::Mount::Volume {
                name,
                target,
                read_only,
            } => volume(Some(desired.volume_name(name)), target, *read_only),
            model::Mount::Bind {
                source,
                target,
                read_only,
            } => Mount {
                target: Some(target.clone()),
                source: Some(placement.resolve(source).display().to_string()),
                typ: Some(MountTypeEnum::BIND),
                read_only: Some(*read_only),
                ..Default::default()
            },
            model::Mount::Anonymous { target } => volume(None, target, false),
        })
        .chain(tmpfs_mounts(&service.options))
        .collect()
}

/// `TMPFS`, and `SHM_MB` as a sized tmpfs on `/dev/shm` (swarm has no shm size).
fn tmpfs_mounts(options: &model::ContainerOptions) -> Vec<Mount> {
    let tmpfs = |target: &str, size: Option<u64>, mode: Option<u32>| Mount {
        target: Some(target.to_string()),
        typ: Some(MountTypeEnum::TMPFS),
        tmpfs_options: Some(MountTmpfsOptions {
            size_bytes: size.map(|s| s.min(i64::MAX as u64) as i64),
            mode: mode.map(i64::from),
            ..Default::default()
        }),
        ..Default::default()
    };
    let mut out: Vec<Mount> = options
        .tmpfs
        .iter()
        .map(|t| tmpfs(&t.path, t.size.map(|s| s.0), t.mode))
        .collect();
    if let Some(mb) = options.shm_mb {
        out.push(tmpfs(
            "/dev/shm",
            Some(mb.saturating_mul(1024 * 1024)),
            None,
        ));
    }
    out
}

/// `/etc/hosts` lines as swarm takes them: `address host`.
fn hosts(service: &DesiredService) -> Vec<String> {
    service
        .extra_hosts
        .iter()
        .map(|h| format!("{} {}", h.address, h.host))
        .collect()
}

fn restart_condition(restart: Restart) -> TaskSpecRestartPolicyConditionEnum {
    match restart {
        Restart::No => TaskSpecRestartPolicyConditionEnum::NONE,
        Restart::OnFailure(_) => TaskSpecRestartPolicyConditionEnum::ON_FAILURE,
        Restart::Always | Restart::UnlessStopped => TaskSpecRestartPolicyConditionEnum::ANY,
    }
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

/// What the service's spec was made from: the service's digest, and the publish mode,
/// which is the project's and changes the spec of every service.
fn spec_digest(desired: &Desired, service: &DesiredService) -> String {
    match desired.publish {
        PublishMode::Ingress => service.digest.clone(),
        PublishMode::Host => format!("{}+host", service.digest),
    }
}

/// The swarm service of one desired service: swarm's mapping of the model.
pub fn service_spec(
    desired: &Desired,
    service: &DesiredService,
    (placement, secrets): (&Placement, &Secrets),
    swarm_secrets: &SwarmSecrets,
) -> ServiceSpec {
    let mut service_labels: HashMap<String, String> = HashMap::new();
    service_labels.insert(NAMESPACE.into(), desired.project.clone());
    service_labels.insert(labels::DIGEST.into(), spec_digest(desired, service));
    let ports = endpoint_ports(service, desired.publish);
    ServiceSpec {
        name: Some(service_name(&desired.project, &service.name)),
        labels: Some(service_labels),
        task_template: Some(task(desired, service, (placement, secrets), swarm_secrets)),
        mode: Some(ServiceSpecMode {
            replicated: Some(ServiceSpecModeReplicated {
                replicas: Some(i64::from(service.replicas)),
            }),
            ..Default::default()
        }),
        update_config: Some(ServiceSpecUpdateConfig {
            parallelism: Some(1),
            order: Some(if ports.is_empty() {
                ServiceSpecUpdateConfigOrderEnum::START_FIRST
            } else {
                // Two tasks cannot hold one published port in host mode; ingress can,
                // but keep the operator's expectation of `recreate` for published ports.
                ServiceSpecUpdateConfigOrderEnum::STOP_FIRST
            }),
            failure_action: Some(ServiceSpecUpdateConfigFailureActionEnum::ROLLBACK),
            monitor: Some(5_000_000_000),
            ..Default::default()
        }),
        rollback_config: Some(ServiceSpecRollbackConfig {
            parallelism: Some(1),
            ..Default::default()
        }),
        endpoint_spec: Some(EndpointSpec {
            // Without the mesh, no virtual IP either (both are IPVS): names resolve to
            // every task's address.
            mode: (desired.publish == PublishMode::Host).then_some(EndpointSpecModeEnum::DNSRR),
            ports: Some(ports),
        }),
        ..Default::default()
    }
}

/// Published ports (swarm publishes only mappings with a host port), through the mesh
/// or on the nodes that run a task.
fn endpoint_ports(service: &DesiredService, publish: PublishMode) -> Vec<EndpointPortConfig> {
    service
        .ports
        .iter()
        .flat_map(|p| p.pairs().map(move |pair| (p, pair)))
        .filter_map(|(p, (host, container))| {
            Some(EndpointPortConfig {
                protocol: Some(match p.protocol.as_str() {
                    "udp" => EndpointPortConfigProtocolEnum::UDP,
                    "sctp" => EndpointPortConfigProtocolEnum::SCTP,
                    _ => EndpointPortConfigProtocolEnum::TCP,
                }),
                target_port: Some(i64::from(container)),
                published_port: Some(i64::from(host?)),
                publish_mode: Some(match publish {
                    PublishMode::Ingress => EndpointPortConfigPublishModeEnum::INGRESS,
                    PublishMode::Host => EndpointPortConfigPublishModeEnum::HOST,
                }),
                ..Default::default()
            })
        })
        .collect()
}

/// Where a service's tasks may run: its `PLACEMENT`, and the manager for a service that
/// bind-mounts files of the release (the proxy's configuration, a project file), which
/// exist on the manager only.
fn constraints(service: &DesiredService) -> Vec<String> {
    let mut constraints = service.options.placement.clone();
    let binds = service
        .mounts
        .iter()
        .any(|m| matches!(m, model::Mount::Bind { .. }));
    let manager = "node.role==manager".to_string();
    if binds && !constraints.contains(&manager) {
        constraints.push(manager);
    }
    constraints
}

/// The task template: container, resources, restart, placement, logs, network.
fn task(
    desired: &Desired,
    service: &DesiredService,
    (placement, secrets): (&Placement, &Secrets),
    swarm_secrets: &SwarmSecrets,
) -> TaskSpec {
    let mut container_spec = container(desired, service, (placement, secrets));
    container_spec.secrets = Some(
        service
            .secret_files
            .iter()
            .filter_map(|file| {
                let (name, id) = swarm_secrets.get(&file.key)?;
                Some(TaskSpecContainerSpecSecrets {
                    file: Some(TaskSpecContainerSpecFile {
                        name: Some(file.target.clone()),
                        uid: Some(secret_owner(service, |u| &u.user)),
                        gid: Some(secret_owner(service, |u| {
                            u.group.as_deref().unwrap_or(&u.user)
                        })),
                        mode: Some(file.mode),
                    }),
                    secret_id: Some(id.clone()),
                    secret_name: Some(name.clone()),
                })
            })
            .collect(),
    );
    TaskSpec {
        container_spec: Some(container_spec),
        resources: Some(TaskSpecResources {
            limits: Some(Limit {
                nano_cpus: service.resources.nano_cpus(),
                memory_bytes: service.resources.memory_bytes(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        restart_policy: Some(TaskSpecRestartPolicy {
            condition: Some(restart_condition(service.restart)),
            ..Default::default()
        }),
        // `GPUS` is refused with `STACK_TARGET=swarm` when the project is read.
        placement: (!constraints(service).is_empty() || service.options.platform.is_some()).then(
            || TaskSpecPlacement {
                constraints: Some(constraints(service)),
                platforms: service.options.platform.as_ref().map(|p| {
                    vec![Platform {
                        architecture: Some(p.architecture.clone()),
                        os: Some(p.os.clone()),
                    }]
                }),
                ..Default::default()
            },
        ),
        log_driver: Some(TaskSpecLogDriver {
            name: Some("json-file".into()),
            options: Some(spec::log_options(&service.logging)),
        }),
        networks: Some(
            desired
                .service_networks(service)
                .into_iter()
                .map(|network| NetworkAttachmentConfig {
                    target: Some(network),
                    aliases: Some(service.dns_names()),
                    ..Default::default()
                })
                .collect(),
        ),
        ..Default::default()
    }
}

/// `SECURITY_OPT` has `no-new-privileges` (`:true`): the one option swarm takes.
fn no_new_privileges(options: &crate::model::ContainerOptions) -> bool {
    options.security_opt.iter().any(|o| {
        o == "no-new-privileges" || o == "no-new-privileges:true" || o == "no-new-privileges=true"
    })
}

/// The numeric uid (or gid) a secret file is owned by: `USER`'s when it is numeric, else
/// root (the file's mode then lets a named user read it).
fn secret_owner(service: &DesiredService, part: impl Fn(&model::User) -> &str) -> String {
    service
        .options
        .user
        .as_ref()
        .map(part)
        .filter(|id| id.chars().all(|c| c.is_ascii_digit()))
        .unwrap_or("0")
        .to_string()
}

/// The container of each task.
fn container(
    desired: &Desired,
    service: &DesiredService,
    (placement, secrets): (&Placement, &Secrets),
) -> TaskSpecContainerSpec {
    let options = &service.options;
    let mut labels = spec::labels(desired, service, placement);
    labels.insert(NAMESPACE.to_string(), desired.project.clone());
    TaskSpecContainerSpec {
        // The pin's image ID, not its tag: the release tag exists on the manager only,
        // and a worker that has the same image (loaded, pulled) runs it by ID.
        image: Some(
            service
                .pinned
                .as_ref()
                .map_or(service.run_image(), |p| p.id.as_str())
                .to_string(),
        ),
        labels: Some(labels),
        // Swarm's `Command` is the entrypoint, `Args` the command.
        command: options.entrypoint.clone(),
        args: service.command.clone(),
        user: options.user.as_ref().map(|u| u.to_string()),
        dir: options.workdir.clone(),
        hostname: options.hostname.clone(),
        stop_signal: options.stop_signal.as_ref().map(|s| s.0.clone()),
        stop_grace_period: options.stop_grace.map(spec::ns),
        capability_add: spec::capabilities(&options.cap_add),
        capability_drop: spec::capabilities(&options.cap_drop),
        read_only: options.read_only.then_some(true),
        sysctls: spec::sysctls(options),
        ulimits: (!options.ulimits.is_empty()).then(|| spec::ulimits(&options.ulimits)),
        init: options.init.then_some(true),
        tty: options.tty.then_some(true),
        open_stdin: options.stdin_open.then_some(true),
        privileges: no_new_privileges(options).then(|| TaskSpecContainerSpecPrivileges {
            no_new_privileges: Some(true),
            ..Default::default()
        }),
        env: Some(secrets.environment(&service.env)),
        mounts: Some(mounts(desired, service, placement)),
        health_check: service.health.as_ref().map(spec::health),
        hosts: Some(hosts(service)),
        ..Default::default()
    }
}

impl Engine {
    /// Deploy `desired` as a swarm stack and wait until every service runs its wanted
    /// replicas of the new version.
    pub async fn converge_swarm(
        &self,
        desired: &Desired,
        place: (&Placement, &Secrets),
        progress: &Progress,
        run_releases: bool,
    ) -> Result<()> {
        let timeout = desired.rollout.health_timeout;
        let deadline = Instant::now() + timeout;
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
        self.ensure_overlays(desired).await?;
        let swarm_secrets = self.ensure_secrets(desired, place.1).await?;
        let existing = self.stack_services(&desired.project).await?;
        // In dependency order, so a release command finds its dependencies converged.
        for service in desired.levels().into_iter().flatten() {
            let name = service_name(&desired.project, &service.name);
            let spec = service_spec(desired, service, place, &swarm_secrets);
            let found = existing.iter().find(|(n, _, _)| *n == name);
            let unchanged = found.is_some_and(|(_, _, digest)| {
                digest.as_deref() == Some(spec_digest(desired, service).as_str())
            });
            if !unchanged && run_releases && service.release.is_some() {
                for dependency in &service.depends_on {
                    if let Some(dependency) = desired.service(&dependency.service) {
                        self.wait_swarm_service(desired, dependency, deadline, progress)
                            .await?;
                    }
                }
                super::converge::run_release(self, (desired, service), place, progress).await?;
            }
            match found {
                Some(_) if unchanged => {
                    progress.step(&service.name, "unchanged");
                }
                Some((_, version, _)) => {
                    progress.step(&service.name, "updating (start-first)");
                    self.docker
                        .update_service(
                            &name,
                            spec,
                            UpdateServiceOptions {
                                version: *version as i32,
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
                }
                None => {
                    progress.step(&service.name, "creating");
                    self.docker.create_service(spec, None).await.map_err(|e| {
                        outside(
                            &format!("service `{}`: cannot create `{name}`", service.name),
                            e,
                        )
                    })?;
                }
            }
        }
        for (name, _, _) in &existing {
            let wanted = desired
                .services
                .iter()
                .any(|s| service_name(&desired.project, &s.name) == *name);
            if !wanted {
                progress.step(name, "removing (no longer in the project)");
                self.docker
                    .delete_service(name)
                    .await
                    .map_err(|e| outside(&format!("cannot remove service `{name}`"), e))?;
            }
        }
        for service in desired.levels().into_iter().flatten() {
            self.wait_swarm_service(desired, service, deadline, progress)
                .await?;
        }
        Ok(())
    }

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
    async fn stack_services(&self, project: &str) -> Result<Vec<(String, u64, Option<String>)>> {
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

    async fn wait_swarm_service(
        &self,
        desired: &Desired,
        service: &DesiredService,
        deadline: Instant,
        progress: &Progress,
    ) -> Result<()> {
        let name = service_name(&desired.project, &service.name);
        progress.step(&service.name, "waiting for its tasks");
        loop {
            let inspect = self
                .docker
                .inspect_service(
                    &name,
                    None::<bollard::query_parameters::InspectServiceOptions>,
                )
                .await
                .map_err(|e| outside(&format!("cannot inspect service `{name}`"), e))?;
            let update = inspect.update_status.as_ref();
            let state = update.and_then(|u| u.state);
            if matches!(
                state,
                Some(ServiceUpdateStatusStateEnum::ROLLBACK_COMPLETED)
                    | Some(ServiceUpdateStatusStateEnum::ROLLBACK_STARTED)
                    | Some(ServiceUpdateStatusStateEnum::PAUSED)
                    | Some(ServiceUpdateStatusStateEnum::ROLLBACK_PAUSED)
            ) {
                let message = update.and_then(|u| u.message.clone()).unwrap_or_default();
                progress.fail(&service.name, "update failed");
                return Err(Error::No(format!(
                    "service `{}`: swarm rolled the update back: {message}",
                    service.name
                )));
            }
            let filters = HashMap::from([
                ("service".to_string(), vec![name.clone()]),
                ("desired-state".to_string(), vec!["running".to_string()]),
            ]);
            let tasks = self
                .docker
                .list_tasks(Some(ListTasksOptions {
                    filters: Some(filters),
                }))
                .await
                .map_err(|e| outside(&format!("cannot list the tasks of `{name}`"), e))?;
            let running = tasks
                .iter()
                .filter(|t| {
                    let spec_digest = t
                        .spec
                        .as_ref()
                        .and_then(|s| s.container_spec.as_ref())
                        .and_then(|c| c.labels.as_ref())
                        .and_then(|l| l.get(labels::CONFIG_HASH).cloned());
                    let state = t
                        .status
                        .as_ref()
                        .and_then(|s| s.state)
                        .map(|s| s.to_string());
                    state.as_deref() == Some("running")
                        && spec_digest.as_deref() == Some(service.digest.as_str())
                })
                .count() as u32;
            let settled = !matches!(state, Some(ServiceUpdateStatusStateEnum::UPDATING));
            if running >= service.replicas && settled {
                progress.done(&service.name, "running");
                return Ok(());
            }
            if Instant::now() >= deadline {
                progress.fail(&service.name, "not ready");
                let error = tasks
                    .iter()
                    .filter_map(|t| t.status.as_ref().and_then(|s| s.err.clone()))
                    .next()
                    .unwrap_or_else(|| format!("{running} of {} tasks running", service.replicas));
                return Err(Error::No(format!(
                    "service `{}` is not ready: {error}",
                    service.name
                )));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}
