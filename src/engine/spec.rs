//! The engine's mapping of a [`DesiredService`]: the one place that decides how each
//! attribute of the model becomes part of a container.

use std::collections::HashMap;

use bollard::models::{
    ContainerCreateBody, DeviceMapping, DeviceRequest, EndpointSettings, HealthConfig, HostConfig,
    HostConfigCgroupnsModeEnum, HostConfigLogConfig, NetworkingConfig, PortBinding,
    ResourcesUlimits, RestartPolicy, RestartPolicyNameEnum,
};

use super::labels;
use crate::model::{
    ContainerOptions, Desired, DesiredService, Device, Gpus, Health, Mount, Namespace, Placement,
    Restart, Secrets, Ulimit,
};
use crate::render::COMPOSE_FILE;

/// A container's exposed ports, as the engine takes them: `port/protocol` → nothing.
type ExposedPorts = HashMap<String, HashMap<(), ()>>;
/// A container's published ports: `port/protocol` → its host bindings.
type PortBindings = HashMap<String, Option<Vec<PortBinding>>>;

/// Whole seconds for the fields the engine takes only in seconds (`StopTimeout`),
/// rounded up: `STOP_GRACE=400ms` waits 1 s, never 0 s (an immediate SIGKILL).
pub fn engine_seconds(duration: std::time::Duration) -> i64 {
    let whole = duration
        .as_secs()
        .saturating_add(u64::from(duration.subsec_nanos() > 0));
    i64::try_from(whole).unwrap_or(i64::MAX)
}

/// Nanoseconds for the Engine API.
pub fn ns(duration: std::time::Duration) -> i64 {
    duration.as_nanos().min(i64::MAX as u128) as i64
}

/// Docker's health check of a service: exactly the fields the rendered compose file's
/// `healthcheck` carries, so the file and the live container agree.
///
/// No `start_interval` (API 1.44): Compose v1 refuses the key in a file, so the file
/// cannot carry it; stack's own probe right after the start is what makes readiness fast.
pub fn health(health: &Health) -> HealthConfig {
    HealthConfig {
        test: Some(health.probe.test()),
        interval: Some(ns(health.interval)),
        timeout: Some(ns(health.timeout)),
        retries: Some(i64::from(health.retries)),
        start_period: Some(ns(health.start_period)),
        start_interval: None,
    }
}

/// The labels of a container (or a swarm task) of `service`.
pub fn labels(
    desired: &Desired,
    service: &DesiredService,
    placement: &Placement,
) -> HashMap<String, String> {
    let mut out: HashMap<String, String> = service
        .labels
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let bundle = placement.bundle.display().to_string();
    let config_files = placement.bundle.join(COMPOSE_FILE).display().to_string();
    for (key, value) in [
        (labels::PROJECT, desired.project.as_str()),
        (labels::SERVICE, service.name.as_str()),
        (labels::ONEOFF, "False"),
        (labels::WORKING_DIR, bundle.as_str()),
        (labels::CONFIG_FILES, config_files.as_str()),
        (labels::VERSION, "1.29.2"),
        (labels::CONFIG_HASH, service.digest.as_str()),
        (
            labels::DIGEST,
            &service.digest[..12.min(service.digest.len())],
        ),
    ] {
        out.insert(key.to_string(), value.to_string());
    }
    out
}

/// An anonymous volume of a replaced container that its replacement mounts at the same
/// path, as Compose does on a recreate: data in an image's `VOLUME` (or an anonymous
/// `VOLUMES` entry) outlives the container that wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inherited {
    /// The engine's name of the volume (its generated ID).
    pub volume: String,
    /// The path in the container.
    pub target: String,
    pub read_only: bool,
}

/// `source:target[:ro]` binds (named volumes by their engine name, host paths resolved,
/// inherited anonymous volumes by name) and the targets of new anonymous volumes. An
/// inherited volume gives way to a named volume, bind, secret file or tmpfs at its path.
pub fn binds(
    desired: &Desired,
    service: &DesiredService,
    placement: &Placement,
    inherited: &[Inherited],
) -> (Vec<String>, Vec<String>) {
    let mut binds = Vec::new();
    let mut anonymous = Vec::new();
    for mount in &service.mounts {
        let options = service.options.mount_options.get(mount.target());
        let suffix = |read_only: bool| crate::model::mount_suffix(read_only, options);
        match mount {
            Mount::Volume {
                name,
                target,
                read_only,
            } => binds.push(format!(
                "{}:{target}{}",
                desired.volume_name(name),
                suffix(*read_only)
            )),
            Mount::Bind {
                source,
                target,
                read_only,
            } => binds.push(format!(
                "{}:{target}{}",
                placement.resolve(source).display(),
                suffix(*read_only)
            )),
            Mount::Anonymous { target } => anonymous.push(target.clone()),
        }
    }
    let taken = |target: &str| {
        service
            .mounts
            .iter()
            .any(|m| !matches!(m, Mount::Anonymous { .. }) && same_path(m.target(), target))
            || service
                .secret_files
                .iter()
                .any(|f| same_path(&f.target, target))
            || service
                .options
                .tmpfs
                .iter()
                .any(|t| same_path(&t.path, target))
    };
    for volume in inherited.iter().filter(|v| !taken(&v.target)) {
        anonymous.retain(|target| !same_path(target, &volume.target));
        let suffix = if volume.read_only { ":ro" } else { "" };
        binds.push(format!("{}:{}{suffix}", volume.volume, volume.target));
    }
    // A secret file is the bundle's `secrets/<KEY>`, read-only, as Compose mounts it.
    for file in &service.secret_files {
        binds.push(format!(
            "{}:{}:ro",
            placement.bundle.join(file.bundle_path()).display(),
            file.target
        ));
    }
    (binds, anonymous)
}

/// Two container paths name the same place (`/data` and `/data/`).
fn same_path(a: &str, b: &str) -> bool {
    let clean = |p: &str| p.trim_end_matches('/').to_string();
    clean(a) == clean(b)
}

/// The service's log driver and its options (containers and swarm tasks).
pub fn log_driver(service: &DesiredService) -> (String, HashMap<String, String>) {
    let (driver, options) = service.log_driver();
    (driver, options.into_iter().collect())
}

/// Resource limits as the Engine API takes them.
pub fn ulimits(ulimits: &[Ulimit]) -> Vec<ResourcesUlimits> {
    ulimits
        .iter()
        .map(|u| ResourcesUlimits {
            name: Some(u.name.clone()),
            soft: Some(u.soft),
            hard: Some(u.hard),
        })
        .collect()
}

/// Capability names, `None` when there are none (the engine's and swarm's form).
pub fn capabilities(caps: &[crate::model::Capability]) -> Option<Vec<String>> {
    (!caps.is_empty()).then(|| caps.iter().map(|c| c.to_string()).collect())
}

/// Sysctls as the API takes them, `None` when there are none (the engine's and swarm's
/// form).
pub fn sysctls(options: &ContainerOptions) -> Option<std::collections::HashMap<String, String>> {
    (!options.sysctls.is_empty()).then(|| {
        options
            .sysctls
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    })
}

/// The container options that live in `HostConfig`, over `base`.
fn host_options(base: HostConfig, project: &str, options: &ContainerOptions) -> HostConfig {
    let namespace = |n: &Option<Namespace>| n.as_ref().map(|n| namespace_mode(project, n));
    let mb = |mb: u64| mb.saturating_mul(1024 * 1024).min(i64::MAX as u64) as i64;
    HostConfig {
        devices: (!options.devices.is_empty()).then(|| devices(&options.devices)),
        network_mode: namespace(&options.network_mode).or(base.network_mode.clone()),
        dns: (!options.dns.is_empty()).then(|| options.dns.clone()),
        dns_search: (!options.dns_search.is_empty()).then(|| options.dns_search.clone()),
        dns_options: (!options.dns_opt.is_empty()).then(|| options.dns_opt.clone()),
        pids_limit: options.pids_limit,
        memory_reservation: options.memory_reservation_mb.map(mb),
        memory_swap: options
            .memory_swap_mb
            .map(|m| u64::try_from(m).map_or(-1, mb)),
        memory_swappiness: options.memory_swappiness.map(i64::from),
        cpu_shares: options.cpu_shares.map(i64::from),
        cpuset_cpus: options.cpuset.clone(),
        oom_score_adj: options.oom_score_adj.map(i64::from),
        pid_mode: namespace(&options.pid),
        ipc_mode: namespace(&options.ipc),
        runtime: options.runtime.clone(),
        userns_mode: options.userns_mode.clone(),
        cgroupns_mode: options.cgroup.as_deref().map(|mode| match mode {
            "host" => HostConfigCgroupnsModeEnum::HOST,
            _ => HostConfigCgroupnsModeEnum::PRIVATE,
        }),
        cap_add: capabilities(&options.cap_add),
        cap_drop: capabilities(&options.cap_drop),
        readonly_rootfs: options.read_only.then_some(true),
        tmpfs: (!options.tmpfs.is_empty()).then(|| {
            options
                .tmpfs
                .iter()
                .map(|t| (t.path.clone(), t.options()))
                .collect()
        }),
        sysctls: sysctls(options),
        ulimits: (!options.ulimits.is_empty()).then(|| ulimits(&options.ulimits)),
        init: options.init.then_some(true),
        privileged: options.privileged.then_some(true),
        security_opt: (!options.security_opt.is_empty()).then(|| options.security_opt.clone()),
        group_add: (!options.group_add.is_empty()).then(|| options.group_add.clone()),
        shm_size: options
            .shm_mb
            .map(|mb| mb.saturating_mul(1024 * 1024).min(i64::MAX as u64) as i64),
        device_requests: options.gpus.map(|gpus| {
            vec![DeviceRequest {
                driver: Some("nvidia".into()),
                count: Some(match gpus {
                    Gpus::All => -1,
                    Gpus::Count(count) => i64::from(count),
                }),
                capabilities: Some(vec![vec!["gpu".into()]]),
                ..Default::default()
            }]
        }),
        ..base
    }
}

/// A namespace as the engine takes it: another service's is its first container's.
pub fn namespace_mode(project: &str, namespace: &Namespace) -> String {
    match namespace.service() {
        Some(service) => format!(
            "container:{}",
            crate::model::container_name(project, service, 1)
        ),
        None => namespace.to_string(),
    }
}

/// Host devices as the engine maps them (the same path, `rwm`, unless given).
fn devices(devices: &[Device]) -> Vec<DeviceMapping> {
    devices
        .iter()
        .map(|d| DeviceMapping {
            path_on_host: Some(d.host.clone()),
            path_in_container: Some(d.target().to_string()),
            cgroup_permissions: Some(d.permissions.clone().unwrap_or_else(|| "rwm".into())),
        })
        .collect()
}

fn restart_policy(restart: Restart) -> RestartPolicy {
    let (name, count) = match restart {
        Restart::No => (RestartPolicyNameEnum::NO, None),
        Restart::Always => (RestartPolicyNameEnum::ALWAYS, None),
        Restart::UnlessStopped => (RestartPolicyNameEnum::UNLESS_STOPPED, None),
        Restart::OnFailure(count) => (RestartPolicyNameEnum::ON_FAILURE, count.map(i64::from)),
    };
    RestartPolicy {
        name: Some(name),
        maximum_retry_count: count,
    }
}

/// The container `number` of `service`. `in_dns`: join the network under the service's
/// name now (a rolling update adds it once the container is ready). `inherited`: the
/// anonymous volumes of the container it replaces.
pub fn container(
    desired: &Desired,
    service: &DesiredService,
    number: u32,
    (placement, secrets): (&Placement, &Secrets),
    (in_dns, inherited): (bool, &[Inherited]),
) -> ContainerCreateBody {
    let name = crate::model::container_name(&desired.project, &service.name, number);
    let mut labels = labels(desired, service, placement);
    labels.insert(labels::NUMBER.into(), number.to_string());
    let (exposed, port_bindings) = ports(service);
    let (binds, anonymous) = binds(desired, service, placement, inherited);
    let network = primary_network(desired, service);
    let options = &service.options;
    let host_config = HostConfig {
        binds: Some(binds),
        port_bindings: Some(port_bindings),
        restart_policy: Some(restart_policy(service.restart)),
        memory: service.resources.memory_bytes(),
        nano_cpus: service.resources.nano_cpus(),
        extra_hosts: Some(service.extra_hosts.iter().map(|h| h.to_string()).collect()),
        network_mode: Some(network.clone()),
        log_config: Some(HostConfigLogConfig {
            typ: Some(log_driver(service).0),
            config: Some(log_driver(service).1),
        }),
        ..Default::default()
    };
    ContainerCreateBody {
        image: Some(service.run_image().to_string()),
        entrypoint: options.entrypoint.clone(),
        cmd: service.command.clone(),
        user: options.user.as_ref().map(|u| u.to_string()),
        working_dir: options.workdir.clone(),
        hostname: options.hostname.clone(),
        stop_signal: options.stop_signal.as_ref().map(|s| s.0.clone()),
        stop_timeout: options.stop_grace.map(engine_seconds),
        env: Some(secrets.environment(&service.env)),
        labels: Some(labels),
        // The engine publishes only exposed ports: a network of its own (a project's or
        // the engine's bridge) exposes them; another's network or none has nothing to publish.
        exposed_ports: matches!(options.network_mode, None | Some(Namespace::Bridge))
            .then_some(exposed),
        healthcheck: service.health.as_ref().map(health),
        tty: options.tty.then_some(true),
        open_stdin: options.stdin_open.then_some(true),
        volumes: Some(anonymous.into_iter().map(|p| (p, HashMap::new())).collect()),
        domainname: options.domainname.clone(),
        // The container's field for engines before API 1.44, the endpoint's (below) after.
        mac_address: options.mac_address.clone(),
        host_config: Some(host_options(host_config, &desired.project, options)),
        // With `NETWORK_MODE`, the container is on no network of the project.
        networking_config: options
            .network_mode
            .is_none()
            .then(|| networking(service, name, network, in_dns)),
        ..Default::default()
    }
}

/// The ports a container exposes (its `EXPOSE` ports and the published ones' container
/// sides) and the host bindings of the published ones.
fn ports(service: &DesiredService) -> (ExposedPorts, PortBindings) {
    let mut port_bindings: PortBindings = HashMap::new();
    let mut exposed: ExposedPorts = HashMap::new();
    for port in &service.expose {
        exposed.insert(format!("{port}/tcp"), HashMap::new());
    }
    for port in &service.ports {
        for (host, container) in port.pairs() {
            let key = format!("{container}/{}", port.protocol);
            exposed.insert(key.clone(), HashMap::new());
            port_bindings
                .entry(key)
                .or_insert_with(|| Some(Vec::new()))
                .get_or_insert_with(Vec::new)
                .push(PortBinding {
                    host_ip: port.host_ip.clone(),
                    host_port: host.map(|p| p.to_string()),
                });
        }
    }
    (exposed, port_bindings)
}

/// The container's primary network; `Engine::create` connects the others before the
/// start.
fn primary_network(desired: &Desired, service: &DesiredService) -> String {
    desired
        .service_networks(service)
        .into_iter()
        .next()
        .unwrap_or_else(|| desired.network())
}

/// The container on its primary `network`, under its own `name` and, when `in_dns`,
/// the service's.
fn networking(
    service: &DesiredService,
    name: String,
    network: String,
    in_dns: bool,
) -> NetworkingConfig {
    let mut aliases = if in_dns {
        service.dns_names()
    } else {
        Vec::new()
    };
    aliases.push(name);
    NetworkingConfig {
        endpoints_config: Some(HashMap::from([(
            network,
            EndpointSettings {
                aliases: Some(aliases),
                mac_address: service.options.mac_address.clone(),
                ..Default::default()
            },
        )])),
    }
}

/// A one-off container of `service` (a release command, `stack run`): the service's own
/// mapping ([`container`]) with `command` as its command, and none of what belongs to a
/// serving replica: no published ports, no health check, no restart, no DNS name of the
/// service, and labelled one-off so the planner never counts it as a replica. With
/// `stdin`, it reads ours (`Some(true)`: through a TTY).
pub fn oneoff(
    desired: &Desired,
    service: &DesiredService,
    command: &[String],
    place: (&Placement, &Secrets),
    stdin: Option<bool>,
) -> ContainerCreateBody {
    let mut body = container(desired, service, 0, place, (false, &[]));
    body.cmd = Some(command.to_vec());
    body.exposed_ports = None;
    // `NONE` switches off a HEALTHCHECK the image may declare.
    body.healthcheck = Some(HealthConfig {
        test: Some(vec!["NONE".into()]),
        ..Default::default()
    });
    if let Some(labels) = body.labels.as_mut() {
        labels.remove(labels::NUMBER);
        labels.insert(labels::ONEOFF.into(), "True".into());
    }
    if let Some(host) = body.host_config.as_mut() {
        host.port_bindings = None;
        host.restart_policy = Some(restart_policy(Restart::No));
    }
    if let Some(endpoints) = body
        .networking_config
        .as_mut()
        .and_then(|n| n.endpoints_config.as_mut())
    {
        for endpoint in endpoints.values_mut() {
            endpoint.aliases = None;
        }
    }
    if let Some(tty) = stdin {
        body.tty = Some(tty);
        body.open_stdin = Some(true);
        body.stdin_once = Some(true);
        body.attach_stdin = Some(true);
        body.attach_stdout = Some(true);
        body.attach_stderr = Some(true);
    }
    body
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::model::{Health, Probe};

    fn check(interval: u64) -> Health {
        Health {
            probe: Probe::Cmd("true".into()),
            interval: Duration::from_millis(interval),
            timeout: Duration::from_secs(1),
            retries: 3,
            start_period: Duration::from_secs(10),
        }
    }

    #[test]
    fn the_compose_file_carries_every_health_field_the_engine_gets() {
        let health = check(500);
        let engine = serde_json::to_value(super::health(&health)).unwrap();
        let mut engine: Vec<String> = engine
            .as_object()
            .unwrap()
            .iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, _)| {
                // `StartPeriod` → `start_period`: the compose file's spelling.
                let mut snake = String::new();
                for (i, c) in k.chars().enumerate() {
                    if c.is_ascii_uppercase() && i > 0 {
                        snake.push('_');
                    }
                    snake.push(c.to_ascii_lowercase());
                }
                snake
            })
            .collect();
        let compose = crate::render::compose::healthcheck(&health);
        let mut compose: Vec<String> = compose.as_object().unwrap().keys().cloned().collect();
        engine.sort();
        compose.sort();
        assert_eq!(engine, compose);
    }

    #[test]
    fn sub_second_and_fractional_graces_round_up_to_whole_seconds() {
        let ms = Duration::from_millis;
        assert_eq!(super::engine_seconds(ms(400)), 1);
        assert_eq!(super::engine_seconds(ms(1500)), 2);
        assert_eq!(super::engine_seconds(ms(2000)), 2);
        assert_eq!(super::engine_seconds(Duration::ZERO), 0);
        assert_eq!(super::engine_seconds(Duration::MAX), i64::MAX);
    }
}
