//! Desired state (from the configuration) + observed state (from the engine) →
//! the list of actions that converges one to the other. Pure: no Docker here; the
//! engine layer fills in [`Observed`] and executes [`Action`]s.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::model::{Desired, DesiredService, Secrets, Strategy};

/// A container of the project as the engine reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ObservedContainer {
    pub id: String,
    pub name: String,
    pub service: String,
    pub number: u32,
    pub digest: String,
    pub running: bool,
    /// Docker's health check says unhealthy.
    pub unhealthy: bool,
    /// Docker's health check says healthy.
    pub healthy: bool,
    /// It exited with code 0 (what a job's container does).
    pub completed: bool,
    /// The image ID the container runs.
    pub image_id: String,
}

/// The engine's state for one project.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Observed {
    /// The engine's names of the project's networks that exist.
    pub networks: BTreeSet<String>,
    pub volumes: BTreeSet<String>,
    pub containers: Vec<ObservedContainer>,
    /// Image reference → local image ID (absent: not present locally).
    pub images: BTreeMap<String, String>,
    /// The services (the proxy) whose configuration files on the engine's host differ
    /// from the bundle's, or were not read yet (the engine's `HostFiles::stale`).
    pub stale_files: BTreeSet<String>,
}

/// One step of convergence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum Action {
    CreateNetwork {
        name: String,
        internal: bool,
    },
    CreateVolume {
        name: String,
    },
    /// Run the service's `RELEASE` command in a one-off container of the new version,
    /// before any container of that version starts.
    Release {
        service: String,
        /// The command, as shown.
        command: String,
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
    /// Let the running proxy read its changed configuration in place (a graceful
    /// reload): its container stays, and so do the connections open through it.
    Reload {
        service: String,
    },
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Action::CreateNetwork { name, internal } => write!(
                f,
                "create {}network `{name}`",
                if *internal { "internal " } else { "" }
            ),
            Action::CreateVolume { name } => write!(f, "create volume `{name}`"),
            Action::Release { service, command } => {
                write!(
                    f,
                    "{service}: run release command `{command}` (one-off container)"
                )
            }
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
            Action::Reload { service } => {
                write!(f, "{service}: reload its configuration in place")
            }
        }
    }
}

/// The actions for `services` (all when empty), in execution order.
pub fn plan(desired: &Desired, observed: &Observed, only: &[String]) -> Vec<Action> {
    let mut actions = Vec::new();
    // An external network is the user's: joined, never created. When every service has a
    // network mode of its own (`host`, `none`, another's), no network is joined: none is
    // created.
    let joined = desired.services.iter().any(|s| !s.networks.is_empty());
    let networks = desired.all_networks();
    for network in networks.iter().filter(|n| !n.external && joined) {
        let name = desired.network_name(&network.name);
        if !observed.networks.contains(&name) {
            actions.push(Action::CreateNetwork {
                name,
                internal: network.internal,
            });
        }
    }
    for short in &desired.volumes {
        let name = desired.volume_name(short);
        if !observed.volumes.contains(&name) {
            actions.push(Action::CreateVolume { name });
        }
    }
    let wanted = |service: &str| only.is_empty() || only.iter().any(|s| s == service);
    // A container in another service's namespace (`NETWORK_MODE=service:NAME`, `PID`,
    // `IPC`) holds the container it joined: when that one is replaced, so is it, even
    // when not asked for. A namespace's owner is recreated in place (same number), so the
    // name its users join by stays.
    let owners: BTreeSet<&str> = desired.services.iter().flat_map(namespace_owners).collect();
    let mut replaced: BTreeSet<String> = BTreeSet::new();
    for level in desired.levels() {
        for service in level {
            let forced = namespace_owners(service).any(|o| replaced.contains(o));
            if wanted(&service.name) || forced {
                let owner = owners.contains(service.name.as_str());
                let planned = plan_service(service, observed, (forced, owner));
                if planned
                    .iter()
                    .any(|a| matches!(a, Action::Create { .. } | Action::Replace { .. }))
                {
                    replaced.insert(service.name.clone());
                }
                actions.extend(planned);
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

/// Whether a rolling update of `service` keeps old and new containers serving together
/// for `STACK_DRAIN` before the old one stops: when something may hold the old one's
/// address from a DNS answer, that is the proxy (the service has routes) or another
/// service that depends on it or names it in its command or environment (a URL such
/// as `postgres://db:5432`; `secrets` resolves secret values). With nothing reaching it
/// by name, the old container can stop as soon as the new one is ready.
pub fn needs_drain(desired: &Desired, service: &DesiredService, secrets: &Secrets) -> bool {
    let named = |text: &str| {
        text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
            .any(|word| word == service.name)
    };
    !service.routes.is_empty()
        || desired
            .services
            .iter()
            .filter(|other| other.name != service.name)
            .any(|other| {
                other.depends_on.iter().any(|d| d.service == service.name)
                    || other.command.iter().flatten().any(|arg| named(arg))
                    || other
                        .options
                        .entrypoint
                        .iter()
                        .flatten()
                        .any(|arg| named(arg))
                    || secrets
                        .environment(&other.env)
                        .iter()
                        .any(|pair| pair.split_once('=').is_some_and(|(_, v)| named(v)))
            })
}

/// The services whose namespaces `service` joins.
fn namespace_owners(service: &DesiredService) -> impl Iterator<Item = &str> {
    let options = &service.options;
    [&options.network_mode, &options.pid, &options.ipc]
        .into_iter()
        .flatten()
        .filter_map(|n| n.service())
}

/// The actions for one service. `forced`: a namespace it joins is being replaced, so
/// its containers are replaced too. `owner`: another service joins its namespaces, so
/// it is recreated in place rather than rolled.
fn plan_service(
    service: &DesiredService,
    observed: &Observed,
    (forced, owner): (bool, bool),
) -> Vec<Action> {
    let image_id = observed.images.get(service.run_image());
    let current = |c: &ObservedContainer| {
        !forced && c.digest == service.digest && image_id.is_none_or(|id| *id == c.image_id)
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
        let n = (1..).find(|n| !used.contains(n)).unwrap_or(1);
        used.insert(n);
        n
    };
    let mut actions = Vec::new();
    for slot in 0..service.replicas as usize {
        match mine.get(slot) {
            Some(container) if current(container) => {
                // A job done in this version runs again in the next (a failed one now).
                let done = service.job && container.completed;
                if !container.running && !done {
                    actions.push(Action::Start {
                        service: service.name.clone(),
                        container: container.name.clone(),
                    });
                }
            }
            Some(container) => {
                let rolling = service.strategy == Strategy::Rolling && container.running && !owner;
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
    // A version's containers start only after its release command succeeded (it ran).
    let starts_new = actions
        .iter()
        .any(|a| matches!(a, Action::Create { .. } | Action::Replace { .. }));
    if let Some(release) = service.release.as_ref() {
        if starts_new && !mine.iter().any(|c| current(c)) {
            actions.insert(
                0,
                Action::Release {
                    service: service.name.clone(),
                    command: shell_words::join(&release.command),
                },
            );
        }
    }
    for container in mine.iter().skip(service.replicas as usize) {
        actions.push(Action::Remove {
            service: service.name.clone(),
            container: container.name.clone(),
            reason: "beyond the wanted replicas".into(),
        });
    }
    actions.extend(reload(service, observed, &mine, &actions));
    actions
}

/// The reload of `service`'s changed files by its running container, when nothing else
/// of it changes: a new or started container reads them when it starts.
fn reload(
    service: &DesiredService,
    observed: &Observed,
    mine: &[&ObservedContainer],
    actions: &[Action],
) -> Option<Action> {
    (actions.is_empty()
        && observed.stale_files.contains(&service.name)
        && mine.iter().any(|c| c.running))
    .then(|| Action::Reload {
        service: service.name.clone(),
    })
}

/// What `stop` and `down` find of a project on the engine.
#[derive(Debug, Clone, Default)]
pub struct Present {
    pub containers: Vec<ObservedContainer>,
    /// The engine's names of the project's networks.
    pub networks: Vec<String>,
    /// The engine's names of the project's volumes (looked up for `down --volumes` only).
    pub volumes: Vec<String>,
}

/// One step of stopping, restarting or taking down a project.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum Teardown {
    /// Stop a container with its own grace, keeping it.
    Stop {
        service: String,
        container: String,
    },
    /// Stop a container with its own grace and start it again (`stack restart`).
    Restart {
        service: String,
        container: String,
    },
    /// Stop and remove a container; `volumes`: its anonymous volumes too.
    Remove {
        service: String,
        container: String,
        volumes: bool,
    },
    RemoveNetwork {
        name: String,
    },
    RemoveVolume {
        name: String,
    },
}

impl std::fmt::Display for Teardown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Teardown::Stop { service, container } => write!(f, "{service}: stop `{container}`"),
            Teardown::Restart { service, container } => {
                write!(f, "{service}: restart `{container}`")
            }
            Teardown::Remove {
                service,
                container,
                volumes,
            } => write!(
                f,
                "{service}: remove `{container}`{}",
                if *volumes {
                    " and its anonymous volumes"
                } else {
                    ""
                }
            ),
            Teardown::RemoveNetwork { name } => write!(f, "remove network `{name}`"),
            Teardown::RemoveVolume { name } => write!(f, "remove volume `{name}`"),
        }
    }
}

/// `stop`: every container of `only` (all when empty), running or not (stopping a
/// stopped container changes nothing), in the engine's order.
pub fn stop(containers: &[ObservedContainer], only: &[String]) -> Vec<Teardown> {
    each(containers, only, |service, container| Teardown::Stop {
        service,
        container,
    })
}

/// `restart`: every container of `only` (all when empty), running or not (a stopped one
/// starts), in the engine's order.
pub fn restart(containers: &[ObservedContainer], only: &[String]) -> Vec<Teardown> {
    each(containers, only, |service, container| Teardown::Restart {
        service,
        container,
    })
}

/// One step per container of `only` (all when empty), from its service and name.
fn each(
    containers: &[ObservedContainer],
    only: &[String],
    step: impl Fn(String, String) -> Teardown,
) -> Vec<Teardown> {
    containers
        .iter()
        .filter(|c| only.is_empty() || only.contains(&c.service))
        .map(|c| step(c.service.clone(), c.name.clone()))
        .collect()
}

/// `down`: every container, then the networks, then (with `volumes`) the volumes, which
/// `--volumes` takes with the containers' anonymous ones, as `docker compose down
/// --volumes` does.
pub fn down(present: &Present, volumes: bool) -> Vec<Teardown> {
    let containers = present.containers.iter().map(|c| Teardown::Remove {
        service: c.service.clone(),
        container: c.name.clone(),
        volumes,
    });
    let networks = present
        .networks
        .iter()
        .map(|name| Teardown::RemoveNetwork { name: name.clone() });
    let named = present
        .volumes
        .iter()
        .filter(|_| volumes)
        .map(|name| Teardown::RemoveVolume { name: name.clone() });
    containers.chain(networks).chain(named).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(name: &str, replicas: u32, strategy: Strategy, deps: &[&str]) -> DesiredService {
        DesiredService {
            networks: vec!["default".into()],
            secret_files: Vec::new(),
            name: name.into(),
            image: format!("{name}:1"),
            build: None,
            command: None,
            env: BTreeMap::new(),
            mounts: vec![],
            ports: vec![],
            expose: vec![],
            routes: vec![],
            health: None,
            restart: crate::model::Restart::No,
            resources: Default::default(),
            replicas,
            strategy,
            drain: None,
            depends_on: deps
                .iter()
                .map(|d| crate::model::Dependency {
                    service: d.to_string(),
                    healthy: false,
                    completed: false,
                })
                .collect(),
            job: false,
            labels: Default::default(),
            extra_hosts: vec![],
            options: Default::default(),
            logging: Default::default(),
            release: None,
            schedule: None,
            refresh: None,
            digest: format!("{name}-v2"),
            pinned: None,
        }
    }

    fn container(service: &str, number: u32, digest: &str, running: bool) -> ObservedContainer {
        ObservedContainer {
            id: format!("{service}{number}"),
            name: crate::model::container_name("p", service, number),
            service: service.into(),
            number,
            digest: digest.into(),
            running,
            unhealthy: false,
            healthy: false,
            completed: false,
            image_id: "sha256:x".into(),
        }
    }

    fn desired(services: Vec<DesiredService>) -> Desired {
        Desired {
            networks: Vec::new(),
            publish: Default::default(),
            encrypt: false,
            project: "p".into(),
            env: "dev".into(),
            volumes: vec!["data".into()],
            services,
            rollout: crate::model::Rollout {
                health_timeout: std::time::Duration::from_secs(60),
                drain: std::time::Duration::from_secs(2),
            },
            sources: Vec::new(),
            routing: None,
            monitoring: Default::default(),
            backup: None,
            server: Default::default(),
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
    fn a_completed_job_is_not_run_again_until_its_version_changes() {
        let mut job = service("migrate", 1, Strategy::Recreate, &[]);
        job.job = true;
        let observed = |digest: &str, completed: bool| Observed {
            networks: ["p_default".to_string()].into(),
            volumes: ["p_data".to_string()].into(),
            containers: vec![ObservedContainer {
                completed,
                ..container("migrate", 1, digest, false)
            }],
            images: Default::default(),
            stale_files: BTreeSet::new(),
        };
        let d = desired(vec![job.clone()]);
        let text = |o: &Observed| -> Vec<String> {
            plan(&d, o, &[]).iter().map(|a| a.to_string()).collect()
        };
        assert!(text(&observed("migrate-v2", true)).is_empty());
        // Failed last time: run again.
        assert_eq!(
            text(&observed("migrate-v2", false)),
            ["migrate: start `p-migrate-1`"]
        );
        // A new version: recreated, so run again.
        assert_eq!(
            text(&observed("migrate-v1", true)),
            ["migrate: replace `p-migrate-1` (recreate)"]
        );
        // A service that is not a job is started again when it exited.
        job.job = false;
        let d = desired(vec![job]);
        assert_eq!(
            plan(&d, &observed("migrate-v2", true), &[])
                .iter()
                .map(|a| a.to_string())
                .collect::<Vec<_>>(),
            ["migrate: start `p-migrate-1`"]
        );
    }

    /// Services that all have a network mode of their own join no network: none is made.
    #[test]
    fn no_network_is_created_when_no_service_joins_one() {
        let mut host = service("agent", 1, Strategy::Recreate, &[]);
        host.options.network_mode = Some(crate::config::attrs::Namespace::Host);
        host.networks.clear();
        let d = desired(vec![host]);
        let text: Vec<String> = plan(&d, &Observed::default(), &[])
            .iter()
            .map(|a| a.to_string())
            .collect();
        assert_eq!(
            text,
            ["create volume `p_data`", "agent: create container 1"]
        );
    }

    /// A container in another service's network namespace is replaced with it (even when
    /// only that service is asked for), and that service is recreated in place.
    #[test]
    fn a_namespace_users_containers_are_replaced_with_its_owner() {
        let vpn = service("vpn", 1, Strategy::Rolling, &[]);
        let mut app = service("app", 1, Strategy::Recreate, &["vpn"]);
        app.options.network_mode = Some(crate::config::attrs::Namespace::Service("vpn".into()));
        let other = service("other", 1, Strategy::Recreate, &[]);
        let d = desired(vec![vpn, app, other]);
        let observed = |vpn_digest: &str| Observed {
            networks: ["p_default".to_string()].into(),
            volumes: ["p_data".to_string()].into(),
            containers: vec![
                container("vpn", 1, vpn_digest, true),
                container("app", 1, "app-v2", true),
                container("other", 1, "other-v2", true),
            ],
            images: BTreeMap::new(),
            stale_files: BTreeSet::new(),
        };
        let text = |o: &Observed, only: &[String]| -> Vec<String> {
            plan(&d, o, only).iter().map(|a| a.to_string()).collect()
        };
        assert!(text(&observed("vpn-v2"), &[]).is_empty());
        let replaced = [
            "vpn: replace `p-vpn-1` (recreate)",
            "app: replace `p-app-1` (recreate)",
        ];
        assert_eq!(text(&observed("vpn-v1"), &[]), replaced);
        assert_eq!(text(&observed("vpn-v1"), &["vpn".to_string()]), replaced);
    }

    #[test]
    fn nothing_changed_means_no_actions() {
        let d = desired(vec![service("api", 2, Strategy::Rolling, &[])]);
        let observed = Observed {
            networks: ["p_default".to_string()].into(),
            volumes: ["p_data".to_string()].into(),
            containers: vec![
                container("api", 1, "api-v2", true),
                container("api", 2, "api-v2", true),
            ],
            images: BTreeMap::new(),
            stale_files: BTreeSet::new(),
        };
        assert!(plan(&d, &observed, &[]).is_empty());
    }

    #[test]
    fn a_running_proxy_with_changed_files_is_reloaded_in_place() {
        let d = desired(vec![service("proxy", 1, Strategy::Recreate, &[])]);
        let observed = |digest: &str, running: bool| Observed {
            networks: ["p_default".to_string()].into(),
            volumes: ["p_data".to_string()].into(),
            containers: vec![container("proxy", 1, digest, running)],
            images: BTreeMap::new(),
            stale_files: ["proxy".to_string()].into(),
        };
        let reload = vec![Action::Reload {
            service: "proxy".into(),
        }];
        assert_eq!(plan(&d, &observed("proxy-v2", true), &[]), reload);
        assert_eq!(
            reload[0].to_string(),
            "proxy: reload its configuration in place"
        );
        // A stopped or replaced proxy reads its files when it starts: no reload.
        let started = plan(&d, &observed("proxy-v2", false), &[]);
        assert!(matches!(started[..], [Action::Start { .. }]), "{started:?}");
        let replaced = plan(&d, &observed("proxy-v1", true), &[]);
        assert!(
            matches!(replaced[..], [Action::Replace { .. }]),
            "{replaced:?}"
        );
    }

    #[test]
    fn changed_service_is_replaced_alone_and_orphans_go() {
        let d = desired(vec![
            service("api", 1, Strategy::Rolling, &[]),
            service("db", 1, Strategy::Recreate, &[]),
        ]);
        let observed = Observed {
            networks: ["p_default".to_string()].into(),
            volumes: ["p_data".to_string()].into(),
            containers: vec![
                container("api", 1, "api-v1", true),
                container("db", 1, "db-v2", true),
                container("old", 1, "x", true),
            ],
            images: BTreeMap::new(),
            stale_files: BTreeSet::new(),
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
            networks: ["p_default".to_string()].into(),
            volumes: ["p_data".to_string()].into(),
            containers: vec![
                container("db", 1, "db-v1", true),
                container("web", 1, "web-v2", false),
            ],
            images: BTreeMap::new(),
            stale_files: BTreeSet::new(),
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
            networks: ["p_default".to_string()].into(),
            volumes: ["p_data".to_string()].into(),
            containers: vec![
                container("api", 1, "api-v1", true),
                container("api", 2, "api-v2", true),
            ],
            images: BTreeMap::new(),
            stale_files: BTreeSet::new(),
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
            networks: ["p_default".to_string()].into(),
            volumes: ["p_data".to_string()].into(),
            containers: vec![container("api", 1, "api-v2", true)],
            images: [("api:1".to_string(), "sha256:new".to_string())].into(),
            stale_files: BTreeSet::new(),
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
            networks: ["p_default".to_string()].into(),
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

    fn with_release(mut service: DesiredService) -> DesiredService {
        service.release = Some(crate::model::Release {
            command: vec!["migrate".into(), "--all".into()],
            timeout: std::time::Duration::from_secs(600),
        });
        service
    }

    #[test]
    fn release_runs_before_the_first_container_of_a_new_version() {
        let d = desired(vec![
            with_release(service("api", 2, Strategy::Rolling, &["db"])),
            service("db", 1, Strategy::Recreate, &[]),
        ]);
        let text: Vec<String> = plan(&d, &Observed::default(), &[])
            .iter()
            .map(|a| a.to_string())
            .collect();
        assert_eq!(
            text[2..],
            [
                "db: create container 1",
                "api: run release command `migrate --all` (one-off container)",
                "api: create container 1",
                "api: create container 2"
            ]
        );
    }

    #[test]
    fn release_runs_once_per_version() {
        let d = desired(vec![with_release(service(
            "api",
            2,
            Strategy::Rolling,
            &[],
        ))]);
        let mut observed = Observed {
            networks: ["p_default".to_string()].into(),
            volumes: ["p_data".to_string()].into(),
            containers: vec![
                container("api", 1, "api-v2", true),
                container("api", 2, "api-v2", false),
            ],
            images: BTreeMap::new(),
            stale_files: BTreeSet::new(),
        };
        // Unchanged, or only a stopped container to start: no release.
        let actions = plan(&d, &observed, &[]);
        assert_eq!(actions.len(), 1, "{actions:?}");
        assert!(matches!(actions[0], Action::Start { .. }));
        // An interrupted update (one container of the new version exists): no second run.
        observed.containers[1].digest = "api-v1".into();
        let actions = plan(&d, &observed, &[]);
        assert!(!actions.iter().any(|a| matches!(a, Action::Release { .. })));
        assert!(actions.iter().any(|a| matches!(a, Action::Replace { .. })));
        // A new version: the release first.
        observed.containers[0].digest = "api-v1".into();
        let actions = plan(&d, &observed, &[]);
        assert!(matches!(actions[0], Action::Release { .. }), "{actions:?}");
        // Scaled to zero: nothing starts, nothing runs.
        let d = desired(vec![with_release(service(
            "api",
            0,
            Strategy::Rolling,
            &[],
        ))]);
        let actions = plan(&d, &observed, &[]);
        assert!(!actions.iter().any(|a| matches!(a, Action::Release { .. })));
    }

    #[test]
    fn the_drain_is_kept_only_where_something_reaches_the_service_by_name() {
        let mut d = desired(vec![
            service("db", 1, Strategy::Rolling, &[]),
            service("cache", 1, Strategy::Rolling, &[]),
            service("web", 1, Strategy::Rolling, &[]),
            service("worker", 1, Strategy::Rolling, &[]),
            service("api", 1, Strategy::Rolling, &["db"]),
            service("lone", 1, Strategy::Rolling, &[]),
        ]);
        d.services[2].routes = vec![crate::model::Route {
            host: "web.localhost".into(),
            path: "/".into(),
        }];
        d.services[4].env.insert(
            "CACHE_URL".into(),
            crate::model::EnvValue::Secret("CACHE_URL".into()),
        );
        d.services[4].command = Some(vec!["serve".into(), "--queue=worker:9000".into()]);
        let secrets = Secrets(BTreeMap::from([(
            "CACHE_URL".to_string(),
            "redis://:pw@cache:6379/0".to_string(),
        )]));
        let drains = |name: &str| needs_drain(&d, d.service(name).unwrap(), &secrets);
        assert!(drains("db"), "a dependency");
        assert!(drains("cache"), "named in a secret URL");
        assert!(drains("web"), "routed by the proxy");
        assert!(drains("worker"), "named in a command");
        assert!(!drains("api"), "nothing reaches it");
        assert!(!drains("lone"), "nothing reaches it");
        // A longer name that contains it is not it.
        d.services[5].name = "db2".into();
        assert!(!needs_drain(&d, &d.services[5], &Secrets(BTreeMap::new())));
    }

    #[test]
    fn stop_restart_and_down_plan_containers_then_networks_then_volumes() {
        let present = Present {
            containers: vec![
                container("api", 1, "x", true),
                container("db", 1, "y", false),
            ],
            networks: vec!["p_default".into()],
            volumes: vec!["p_data".into()],
        };
        let text = |plan: Vec<Teardown>| plan.iter().map(|a| a.to_string()).collect::<Vec<_>>();
        assert_eq!(
            text(stop(&present.containers, &["db".to_string()])),
            ["db: stop `p-db-1`"]
        );
        assert_eq!(text(stop(&present.containers, &[])).len(), 2);
        assert_eq!(
            text(restart(&present.containers, &["api".to_string()])),
            ["api: restart `p-api-1`"]
        );
        assert_eq!(
            serde_json::to_value(&restart(&present.containers, &[])[1]).unwrap(),
            serde_json::json!({"action": "restart", "service": "db", "container": "p-db-1"})
        );
        assert_eq!(
            text(down(&present, false)),
            [
                "api: remove `p-api-1`",
                "db: remove `p-db-1`",
                "remove network `p_default`"
            ]
        );
        let all = down(&present, true);
        assert_eq!(all.last().unwrap().to_string(), "remove volume `p_data`");
        assert_eq!(
            all[0].to_string(),
            "api: remove `p-api-1` and its anonymous volumes"
        );
        let json = serde_json::to_value(&all[3]).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"action": "remove-volume", "name": "p_data"})
        );
    }
}
