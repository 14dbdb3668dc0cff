//! The swarm service spec of one desired service: swarm's mapping of the model
//! (task, container, mounts, published ports, update and rollback policy). Pure.

use std::collections::HashMap;

use bollard::models::{
    EndpointPortConfig, EndpointPortConfigProtocolEnum, EndpointPortConfigPublishModeEnum,
    EndpointSpec, EndpointSpecModeEnum, Limit, Mount, MountBindOptions,
    MountBindOptionsPropagationEnum, MountTmpfsOptions, MountTypeEnum, MountVolumeOptions,
    NetworkAttachmentConfig, Platform, ResourceObject, ServiceSpec, ServiceSpecMode,
    ServiceSpecModeReplicated, ServiceSpecRollbackConfig, ServiceSpecUpdateConfig,
    ServiceSpecUpdateConfigFailureActionEnum, ServiceSpecUpdateConfigOrderEnum, TaskSpec,
    TaskSpecContainerSpec, TaskSpecContainerSpecDnsConfig, TaskSpecContainerSpecFile,
    TaskSpecContainerSpecPrivileges, TaskSpecContainerSpecSecrets, TaskSpecLogDriver,
    TaskSpecPlacement, TaskSpecResources, TaskSpecRestartPolicy,
    TaskSpecRestartPolicyConditionEnum,
};

use super::{service_name, SwarmSecrets, NAMESPACE};
use crate::engine::{labels, spec};
use crate::model::{self, Desired, DesiredService, Placement, PublishMode, Restart, Secrets};

fn mounts(desired: &Desired, service: &DesiredService, placement: &Placement) -> Vec<Mount> {
    let volume = |source: Option<String>, target: &str, read_only: bool| Mount {
        target: Some(target.to_string()),
        source,
        typ: Some(MountTypeEnum::VOLUME),
        read_only: Some(read_only),
        ..Default::default()
    };
    // `z`/`Z` are refused on swarm by the configuration: swarm has no relabelling.
    let options = |target: &str| service.options.mount_options.get(target);
    service
        .mounts
        .iter()
        .map(|mount| match mount {
            model::Mount::Volume {
                name,
                target,
                read_only,
            } => Mount {
                volume_options: options(target)
                    .filter(|o| o.nocopy)
                    .map(|_| MountVolumeOptions {
                        no_copy: Some(true),
                        ..Default::default()
                    }),
                ..volume(Some(desired.volume_name(name)), target, *read_only)
            },
            model::Mount::Bind {
                source,
                target,
                read_only,
            } => Mount {
                target: Some(target.clone()),
                source: Some(placement.resolve(source).display().to_string()),
                typ: Some(MountTypeEnum::BIND),
                read_only: Some(*read_only),
                bind_options: options(target)
                    .and_then(|o| o.propagation.as_deref())
                    .map(|p| MountBindOptions {
                        propagation: Some(propagation(p)),
                        ..Default::default()
                    }),
                ..Default::default()
            },
            model::Mount::Anonymous { target } => volume(None, target, false),
        })
        .chain(tmpfs_mounts(&service.options))
        .collect()
}

/// A bind's propagation mode as the engine's enum (the configuration checked the word).
fn propagation(mode: &str) -> MountBindOptionsPropagationEnum {
    use MountBindOptionsPropagationEnum as P;
    match mode {
        "private" => P::PRIVATE,
        "rshared" => P::RSHARED,
        "shared" => P::SHARED,
        "rslave" => P::RSLAVE,
        "slave" => P::SLAVE,
        _ => P::RPRIVATE,
    }
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

/// What the service's spec was made from: the service's digest, and the publish mode,
/// which is the project's and changes the spec of every service.
pub(super) fn spec_digest(desired: &Desired, service: &DesiredService) -> String {
    match desired.publish {
        PublishMode::Ingress => service.digest.clone(),
        PublishMode::Host => format!("{}+host", service.digest),
    }
}

/// The swarm service of one desired service: swarm's mapping of the model.
pub(super) fn service_spec(
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
                // Swarm's "no limit" is 0 where the engine's is -1.
                pids: service.options.pids_limit.map(|p| p.max(0)),
            }),
            reservations: service
                .options
                .memory_reservation_mb
                .map(|mb| ResourceObject {
                    memory_bytes: Some(mb.saturating_mul(1024 * 1024).min(i64::MAX as u64) as i64),
                    ..Default::default()
                }),
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
            name: Some(spec::log_driver(service).0),
            options: Some(spec::log_driver(service).1),
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

/// `DNS`, `DNS_SEARCH`, `DNS_OPT` as swarm takes them, `None` when all are unset.
fn dns_config(options: &model::ContainerOptions) -> Option<TaskSpecContainerSpecDnsConfig> {
    let list = |items: &Vec<String>| (!items.is_empty()).then(|| items.clone());
    let config = TaskSpecContainerSpecDnsConfig {
        nameservers: list(&options.dns),
        search: list(&options.dns_search),
        options: list(&options.dns_opt),
    };
    (config != TaskSpecContainerSpecDnsConfig::default()).then_some(config)
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
        groups: (!options.group_add.is_empty()).then(|| options.group_add.clone()),
        dns_config: dns_config(options),
        oom_score_adj: options.oom_score_adj.map(i64::from),
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

#[cfg(test)]
mod tests {
    use bollard::models::MountBindOptionsPropagationEnum;

    use crate::model::{Desired, Placement, Secrets};

    /// One project's mapping by each consumer of the one model: its compose file and
    /// desired state (rendered for `/srv/shop`), with the placement and (no) secrets the
    /// engine's and swarm's mappings take.
    struct Mapped {
        compose: String,
        desired: Desired,
        placement: Placement,
        secrets: Secrets,
    }

    impl Mapped {
        fn of(text: &str) -> Mapped {
            let loaded = crate::config::tests::load_text(text, "dev").unwrap();
            let (bundle, desired) = crate::render::tests::rendered(&loaded.config, "/srv/shop");
            Mapped {
                compose: bundle.files[crate::render::COMPOSE_FILE].contents.clone(),
                desired,
                placement: Placement {
                    root: "/srv/shop".into(),
                    bundle: "/srv/shop".into(),
                },
                secrets: Secrets::default(),
            }
        }

        fn place(&self) -> (&Placement, &Secrets) {
            (&self.placement, &self.secrets)
        }

        fn service(&self, name: &str) -> &crate::model::DesiredService {
            self.desired.service(name).unwrap()
        }

        /// The engine's container of `name`'s first replica.
        fn engine(&self, name: &str) -> bollard::models::ContainerCreateBody {
            let service = self.service(name);
            crate::engine::spec::container(&self.desired, service, 1, self.place(), (true, &[]))
        }

        /// Swarm's task container of `name`.
        fn swarm(&self, name: &str) -> bollard::models::TaskSpecContainerSpec {
            super::container(&self.desired, self.service(name), self.place())
        }
    }

    /// `HOSTNAME` and `GROUP_ADD` reach each consumer of the one model: the compose file, the engine's
    /// container and swarm's task.
    #[test]
    fn hostname_reaches_compose_the_engine_and_swarm() {
        let mapped = Mapped::of(
            "STACK_PROJECT=shop\nSTACK_SERVICES=web\nSERVICE_WEB_IMAGE=web:1\n\
             SERVICE_WEB_HOSTNAME=web-01.internal\nSERVICE_WEB_GROUP_ADD=video,2001\n",
        );
        let compose = &mapped.compose;
        assert!(
            compose.contains("\n    hostname: web-01.internal\n"),
            "{compose}"
        );
        let engine = mapped.engine("web");
        assert_eq!(engine.hostname.as_deref(), Some("web-01.internal"));
        let groups = vec!["video".to_string(), "2001".to_string()];
        let host = engine.host_config.as_ref().unwrap();
        assert_eq!(host.group_add.as_ref(), Some(&groups));
        assert!(
            compose.contains("\n    group_add:\n    - video\n    - '2001'\n"),
            "{compose}"
        );
        let swarm = mapped.swarm("web");
        assert_eq!(swarm.hostname.as_deref(), Some("web-01.internal"));
        assert_eq!(swarm.groups.as_ref(), Some(&groups));
    }

    /// `VOLUMES` options reach the compose file, the engine's binds and swarm's mounts.
    #[test]
    fn mount_options_reach_compose_the_engine_and_swarm() {
        let mapped = Mapped::of(
            "STACK_PROJECT=shop\nSTACK_SERVICES=web\nSERVICE_WEB_IMAGE=web:1\n\
             SERVICE_WEB_VOLUMES=/srv/data:/data:ro,Z,rshared,cache:/cache:nocopy\n",
        );
        let compose = &mapped.compose;
        assert!(
            compose.contains("- ../data:/data:ro,Z,rshared\n"),
            "{compose}"
        );
        assert!(compose.contains("- cache:/cache:nocopy\n"), "{compose}");
        let binds = mapped.engine("web").host_config.unwrap().binds.unwrap();
        assert_eq!(
            binds,
            ["/srv/data:/data:ro,Z,rshared", "shop_cache:/cache:nocopy"]
        );
        let swarm = super::mounts(&mapped.desired, mapped.service("web"), &mapped.placement);
        let propagation = swarm[0].bind_options.as_ref().and_then(|b| b.propagation);
        assert_eq!(propagation, Some(MountBindOptionsPropagationEnum::RSHARED));
        let no_copy = swarm[1].volume_options.as_ref().and_then(|v| v.no_copy);
        assert_eq!(no_copy, Some(true));
    }

    /// The host attributes reach each consumer of the one model: the compose file, the
    /// engine's container (another service's namespace by its first container) and
    /// swarm's task where swarm has a field.
    #[test]
    fn host_attributes_reach_compose_the_engine_and_swarm() {
        let mapped = Mapped::of(
            "STACK_PROJECT=shop\nSTACK_SERVICES=web,side\nSERVICE_WEB_IMAGE=web:1\n\
             SERVICE_WEB_DEVICES=/dev/net/tun,/dev/dri:/dev/dri:rw\nSERVICE_WEB_DNS=1.1.1.1\n\
             SERVICE_WEB_DNS_SEARCH=example.internal\nSERVICE_WEB_DNS_OPT=ndots:2\n\
             SERVICE_WEB_PIDS_LIMIT=-1\nSERVICE_WEB_MEMORY_RESERVATION_MB=64\n\
             SERVICE_WEB_OOM_SCORE_ADJ=-500\nSERVICE_WEB_IPC=shareable\n\
             SERVICE_SIDE_IMAGE=side:1\nSERVICE_SIDE_NETWORK_MODE=service:web\n\
             SERVICE_SIDE_IPC=service:web\n",
        );
        let compose = &mapped.compose;
        for line in [
            "\n    devices:\n    - /dev/net/tun\n    - /dev/dri:/dev/dri:rw\n",
            "\n    dns:\n    - 1.1.1.1\n",
            "\n    pids_limit: -1\n",
            "\n    mem_reservation: 64m\n",
            "\n    network_mode: service:web\n",
            "\n    ipc: service:web\n",
        ] {
            assert!(compose.contains(line), "{line} in {compose}");
        }
        let engine = mapped.engine("web");
        let host = engine.host_config.as_ref().unwrap();
        let devices = host.devices.as_ref().unwrap();
        assert_eq!(
            devices[0].path_in_container.as_deref(),
            Some("/dev/net/tun")
        );
        assert_eq!(devices[0].cgroup_permissions.as_deref(), Some("rwm"));
        assert_eq!(devices[1].cgroup_permissions.as_deref(), Some("rw"));
        assert_eq!(host.dns_options.as_ref().unwrap(), &["ndots:2"]);
        assert_eq!(host.pids_limit, Some(-1));
        assert_eq!(host.memory_reservation, Some(64 << 20));
        assert_eq!(host.oom_score_adj, Some(-500));
        assert_eq!(host.ipc_mode.as_deref(), Some("shareable"));
        assert_eq!(mapped.service("side").depends_on[0].service, "web");
        let engine = mapped.engine("side");
        let host = engine.host_config.as_ref().unwrap();
        assert_eq!(host.network_mode.as_deref(), Some("container:shop-web-1"));
        assert_eq!(host.ipc_mode.as_deref(), Some("container:shop-web-1"));
        assert!(engine.networking_config.is_none());
        let swarm = mapped.swarm("web");
        let dns = swarm.dns_config.unwrap();
        assert_eq!(dns.nameservers.unwrap(), ["1.1.1.1"]);
        assert_eq!(dns.search.unwrap(), ["example.internal"]);
        assert_eq!(swarm.oom_score_adj, Some(-500));
    }

    /// `LOGGING` replaces the project's json-file rotation in the compose file, the
    /// engine's `LogConfig` and swarm's `LogDriver`; a service without it keeps the rotation.
    #[test]
    fn logging_reaches_compose_the_engine_and_swarm() {
        let mapped = Mapped::of(
            "STACK_PROJECT=shop\nSTACK_SERVICES=web,db\nSERVICE_WEB_IMAGE=web:1\n\
             SERVICE_WEB_LOGGING=syslog,syslog-address=udp://10.0.0.5:514,tag=web\n\
             SERVICE_DB_IMAGE=db:1\n",
        );
        let compose = &mapped.compose;
        assert!(
            compose.contains("logging:\n      driver: syslog\n      options:\n        syslog-address: udp://10.0.0.5:514\n        tag: web\n"),
            "{compose}"
        );
        assert!(compose.contains("driver: json-file"), "{compose}");
        let log = mapped
            .engine("web")
            .host_config
            .unwrap()
            .log_config
            .unwrap();
        assert_eq!(log.typ.as_deref(), Some("syslog"));
        assert_eq!(log.config.unwrap()["tag"], "web");
        let web = mapped.service("web");
        let swarm = super::service_spec(&mapped.desired, web, mapped.place(), &Default::default());
        let driver = swarm.task_template.unwrap().log_driver.unwrap();
        assert_eq!(driver.name.as_deref(), Some("syslog"));
        let log = mapped.engine("db").host_config.unwrap().log_config.unwrap();
        assert_eq!(log.typ.as_deref(), Some("json-file"));
        assert_eq!(log.config.unwrap()["max-file"], "3");
    }
}
