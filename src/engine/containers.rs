//! Containers: create from the desired model, start, stop, remove, network membership,
//! and their live state.

use bollard::models::EndpointSettings;
use bollard::query_parameters::{
    CreateContainerOptions, RemoveContainerOptions, StopContainerOptions,
};

use super::{clean_error, is_not_found, labels, outside, spec, ContainerState, Engine};
use crate::error::{Error, Result};
use crate::model::{Desired, DesiredService, Placement, Secrets};

/// How long a stop waits between the stop signal and SIGKILL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grace {
    /// The container's own: its service's `STOP_GRACE`, given to the engine when the
    /// container was created ([`spec::engine_seconds`]), else the engine's 10 s. One
    /// definition: nothing looks the grace up again at stop time.
    Own,
    /// SIGKILL at once: a container that never served (a failed start, a registry).
    None,
    /// This long, for this stop only: a replaced container's `DRAIN` for its open
    /// connections (whole seconds, rounded up, as the engine counts them).
    For(std::time::Duration),
}

/// What becomes of a container's anonymous volumes when it is removed (Compose's rules).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Volumes {
    /// Kept: a replacement mounts them, and `down` without `--volumes` keeps data.
    Keep,
    /// Removed with the container, as `docker rm -v` does: the ones the engine created
    /// for it, never one it mounted by name (one it inherited, which another container
    /// may use). For a container that never served: a failed start, a one-off.
    Own,
    /// Every anonymous volume it mounts, inherited ones too (`down --volumes`).
    All,
}

/// An engine-made anonymous volume: its name is a generated 64-digit hex ID, which no
/// named volume of a project (`<project>_<name>`) can be.
fn is_anonymous(name: &str) -> bool {
    name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit())
}

impl Engine {
    /// Create (not start) a container; refuses to touch one the project does not own.
    /// `in_dns`: join the network under the service's aliases now; a rolling update
    /// creates the new container without them and adds them with [`Engine::expose`] once
    /// it is ready, so no request reaches a container that is not. `inherited`: the
    /// anonymous volumes of the container it replaces ([`Engine::inheritance`]).
    pub async fn create(
        &self,
        desired: &Desired,
        service: &DesiredService,
        number: u32,
        place: (&Placement, &Secrets),
        (in_dns, inherited): (bool, &[spec::Inherited]),
    ) -> Result<String> {
        let project = desired.project.as_str();
        let name = crate::model::container_name(project, &service.name, number);
        let mut body = spec::container(desired, service, number, place, (in_dns, inherited));
        let extra_sysctls = self.proxy_sysctls(service).await?;
        if !extra_sysctls.is_empty() {
            let host = body.host_config.get_or_insert_with(Default::default);
            host.sysctls
                .get_or_insert_with(Default::default)
                .extend(extra_sysctls);
        }
        let platform = service.options.platform.as_ref().map(|p| p.to_string());
        let extra_networks: Vec<String> = desired
            .service_networks(service)
            .into_iter()
            .skip(1)
            .collect();
        let mut aliases = if in_dns {
            service.dns_names()
        } else {
            Vec::new()
        };
        aliases.push(name.clone());
        let service = service.name.as_str();
        self.clear_name(project, service, &name).await?;
        let created = self
            .docker
            .create_container(
                Some(CreateContainerOptions {
                    name: Some(name.clone()),
                    platform: platform.unwrap_or_default(),
                }),
                body,
            )
            .await
            .map_err(|e| Error::Outside {
                message: format!("service `{service}`: cannot create container `{name}`"),
                causes: vec![clean_error(&e)],
                hint: None,
            })?;
        // The API takes one network at creation; the others are joined before the start.
        for network in &extra_networks {
            let request = bollard::models::NetworkConnectRequest {
                container: Some(created.id.clone()),
                endpoint_config: Some(EndpointSettings {
                    aliases: Some(aliases.clone()),
                    ..Default::default()
                }),
            };
            if let Err(e) = self.docker.connect_network(network, request).await {
                let _ = self.remove(&created.id, Grace::None, Volumes::Own).await;
                return Err(outside(
                    &format!(
                        "service `{service}`: cannot put `{name}` into the network `{network}`"
                    ),
                    e,
                ));
            }
        }
        Ok(created.id)
    }

    /// Remove a leftover container of the project that holds `name` (a replacement is
    /// created under the same name); refuse when a container outside the project has it.
    async fn clear_name(&self, project: &str, service: &str, name: &str) -> Result<()> {
        if let Ok(existing) = self
            .docker
            .inspect_container(
                name,
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
                &existing.id.unwrap_or(name.to_string()),
                Grace::Own,
                Volumes::Keep,
            )
            .await?;
        }
        Ok(())
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

    pub async fn stop(&self, id: &str, grace: Grace) -> Result<()> {
        match self
            .docker
            .stop_container(
                id,
                Some(StopContainerOptions {
                    t: match grace {
                        // The engine's default: the container's own `StopTimeout`.
                        Grace::Own => None,
                        Grace::None => Some(0),
                        Grace::For(duration) => {
                            Some(i32::try_from(spec::engine_seconds(duration)).unwrap_or(i32::MAX))
                        }
                    },
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

    /// Stop (with `grace`) and remove a container, and with it its anonymous
    /// `volumes` as asked.
    pub async fn remove(&self, id: &str, grace: Grace, volumes: Volumes) -> Result<()> {
        // Named before the container goes: the engine forgets which ones it mounted.
        let inherited = match volumes {
            Volumes::All => self.anonymous_volumes(id).await?,
            Volumes::Keep | Volumes::Own => Vec::new(),
        };
        self.stop(id, grace).await?;
        match self
            .docker
            .remove_container(
                id,
                Some(RemoveContainerOptions {
                    force: true,
                    v: volumes != Volumes::Keep,
                    ..Default::default()
                }),
            )
            .await
        {
            Ok(()) => {}
            Err(e) if is_not_found(&e) => {}
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 409, ..
            }) => {} // removal already in progress
            Err(e) => return Err(outside(&format!("cannot remove container `{id}`"), e)),
        }
        for volume in inherited {
            self.remove_anonymous_volume(&volume.volume).await?;
        }
        Ok(())
    }

    /// The anonymous volumes a container mounts (none when it is gone).
    async fn anonymous_volumes(&self, id: &str) -> Result<Vec<spec::Inherited>> {
        let inspect = match self
            .docker
            .inspect_container(
                id,
                None::<bollard::query_parameters::InspectContainerOptions>,
            )
            .await
        {
            Ok(inspect) => inspect,
            Err(e) if is_not_found(&e) => return Ok(Vec::new()),
            Err(e) => return Err(outside(&format!("cannot inspect container `{id}`"), e)),
        };
        Ok(inspect
            .mounts
            .unwrap_or_default()
            .into_iter()
            .filter(|m| m.typ == Some(bollard::models::MountPointTypeEnum::VOLUME))
            .filter_map(|m| {
                let volume = m.name.filter(|name| is_anonymous(name))?;
                Some(spec::Inherited {
                    volume,
                    target: m.destination?,
                    read_only: m.rw == Some(false),
                })
            })
            .collect())
    }

    /// The anonymous volumes of the container `old` that its replacement of `service`
    /// mounts at the same paths, as Compose does: those at a path the image declares a
    /// `VOLUME` for or the service an anonymous volume at (the planner's model wins where
    /// it mounts something else there: see [`spec::binds`]).
    pub async fn inheritance(
        &self,
        old: &str,
        service: &DesiredService,
    ) -> Result<Vec<spec::Inherited>> {
        let volumes = self.anonymous_volumes(old).await?;
        if volumes.is_empty() {
            return Ok(volumes);
        }
        let image = service.run_image();
        let declared: Vec<String> = match self.docker.inspect_image(image).await {
            Ok(inspect) => inspect
                .config
                .and_then(|c| c.volumes)
                .map(|v| v.into_keys().collect())
                .unwrap_or_default(),
            Err(e) if is_not_found(&e) => Vec::new(),
            Err(e) => return Err(outside(&format!("cannot inspect image `{image}`"), e)),
        };
        let clean = |p: &str| p.trim_end_matches('/').to_string();
        let wanted = |target: &str| {
            declared.iter().any(|d| clean(d) == clean(target))
                || service.mounts.iter().any(|m| {
                    matches!(m, crate::model::Mount::Anonymous { .. })
                        && clean(m.target()) == clean(target)
                })
        };
        Ok(volumes.into_iter().filter(|v| wanted(&v.target)).collect())
    }

    /// Remove an anonymous volume; one still in use elsewhere is left, as `docker rm -v`
    /// leaves it.
    async fn remove_anonymous_volume(&self, name: &str) -> Result<()> {
        match self
            .docker
            .remove_volume(name, None::<bollard::query_parameters::RemoveVolumeOptions>)
            .await
        {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 409, ..
            }) => Ok(()),
            Err(e) => Err(outside(&format!("cannot remove volume `{name}`"), e)),
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

    /// Freeze a container's processes (the cgroup freezer): its files stay as they are
    /// while a volume it writes is archived.
    pub async fn pause(&self, id: &str) -> Result<()> {
        self.docker
            .pause_container(id)
            .await
            .map_err(|e| outside(&format!("cannot pause container `{id}`"), e))
    }

    /// Send `signal` (`SIGUSR1`) to a container's main process: a wake-up, not a stop.
    pub async fn signal(&self, id: &str, signal: &str) -> Result<()> {
        let options = bollard::query_parameters::KillContainerOptions {
            signal: signal.to_string(),
        };
        self.docker
            .kill_container(id, Some(options))
            .await
            .map_err(|e| outside(&format!("cannot signal container `{id}`"), e))
    }

    pub async fn unpause(&self, id: &str) -> Result<()> {
        match self.docker.unpause_container(id).await {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(outside(&format!("cannot unpause container `{id}`"), e)),
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

    /// Where the engine keeps volume `name` on its host (none when there is no such
    /// volume).
    pub async fn volume_mountpoint(&self, name: &str) -> Result<Option<String>> {
        match self.docker.inspect_volume(name).await {
            Ok(volume) => Ok(Some(volume.mountpoint)),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(outside(&format!("cannot inspect volume `{name}`"), e)),
        }
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

    /// Run `command` in a running container and wait for it: (exit code, output).
    pub async fn exec(&self, id: &str, command: &[String]) -> Result<(i64, String)> {
        use bollard::exec::{CreateExecOptions, StartExecResults};
        use futures_util::StreamExt;
        let what = || format!("cannot run `{}` in `{id}`", command.join(" "));
        let exec = self
            .docker
            .create_exec(
                id,
                CreateExecOptions {
                    cmd: Some(command.to_vec()),
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| outside(&what(), e))?;
        let mut output = String::new();
        if let StartExecResults::Attached {
            output: mut stream, ..
        } = self
            .docker
            .start_exec(&exec.id, None)
            .await
            .map_err(|e| outside(&what(), e))?
        {
            while let Some(Ok(chunk)) = stream.next().await {
                output.push_str(&String::from_utf8_lossy(&chunk.into_bytes()));
            }
        }
        let inspect = self
            .docker
            .inspect_exec(&exec.id)
            .await
            .map_err(|e| outside(&what(), e))?;
        Ok((inspect.exit_code.unwrap_or(-1), output))
    }
}
