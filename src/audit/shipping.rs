//! Audit findings about what an operator must not ship: host access from an app (the
//! Docker socket, the host's root), build contexts outside the repository, wildcard
//! routes under automatic TLS, and a production domain that is still `localhost`.

use std::path::Path;

use super::Finding;
use crate::config::presets::PRESETS;
use crate::config::{Config, HostPath, Mount, Service, Tls};

/// Host paths that hand a container the Docker engine (root on the host) or the whole
/// host file system.
const HOST_ACCESS: &[&str] = &[
    "/",
    "/var/run/docker.sock",
    "/run/docker.sock",
    "/var/run",
    "/run",
];

/// Binds of the Docker socket (or its folder) or of `/` into a service, except those its
/// preset declares itself (MONITORING's docker-proxy, node-exporter, cadvisor).
pub fn host_access(config: &Config) -> Vec<Finding> {
    let mut out = Vec::new();
    let socket = Path::new(
        config
            .server
            .as_ref()
            .map_or("", |s| s.docker_socket.as_str()),
    );
    for service in config.services.iter().filter(|s| s.is_container()) {
        for mount in &service.mounts {
            let source = match mount {
                Mount::Bind {
                    source: HostPath::Host(path),
                    ..
                } => path.clone(),
                Mount::Bind {
                    source: HostPath::Project(rel),
                    ..
                } => config.project_dir.join(rel),
                _ => continue,
            };
            let source = source.as_path();
            let risky = HOST_ACCESS.iter().any(|p| source == Path::new(p))
                || (!socket.as_os_str().is_empty() && source == socket);
            if !risky || preset_declares(service, source) {
                continue;
            }
            let what = if source == Path::new("/") {
                "the host's root file system"
            } else {
                "the Docker socket, which is root on the host"
            };
            out.push(Finding::fail(
                "host",
                format!(
                    "service `{}` mounts `{}` ({what}) at `{}` in `VOLUMES`; remove it from `SERVICE_{}_VOLUMES`, or mount only the folder the app needs",
                    service.name,
                    source.display(),
                    mount.target(),
                    crate::config::keys::service_key_name(&service.name),
                ),
            ));
        }
    }
    if out.is_empty() {
        out.push(Finding::pass(
            "host",
            "no app mounts the Docker socket or the host's root",
        ));
    }
    out
}

/// The service's preset mounts `source` by default (its `VOLUMES` attribute names it).
fn preset_declares(service: &Service, source: &Path) -> bool {
    let Some(preset) = service.preset else {
        return false;
    };
    PRESETS
        .iter()
        .filter(|p| p.name == preset)
        .flat_map(|p| p.services.iter())
        .filter(|s| s.name == service.name)
        .flat_map(|s| s.attrs.iter())
        .filter(|(attr, _)| *attr == "VOLUMES")
        .flat_map(|(_, volumes)| volumes.split(','))
        .filter_map(|item| item.split_once(':').map(|(from, _)| from))
        .any(|from| Path::new(from) == source)
}

pub use crate::config::repository_root;

/// A build context outside the repository sends files from elsewhere on the machine to
/// the builder (and into the image).
pub fn build_contexts(loaded: &crate::config::Loaded) -> Vec<Finding> {
    let config = &loaded.config;
    let root = repository_root(&config.project_dir);
    let root = root.canonicalize().unwrap_or(root);
    let mut out = Vec::new();
    for service in &config.services {
        let Some(build) = &service.build else {
            continue;
        };
        // Resolve symlinks when the folder exists, so a link cannot lead out.
        let context = build
            .context
            .canonicalize()
            .unwrap_or_else(|_| build.context.clone());
        if !context.starts_with(&root) {
            let key = format!(
                "SERVICE_{}_BUILD",
                crate::config::keys::service_key_name(&service.name)
            );
            // As written (the model keeps the resolved path only).
            let written = loaded.resolved.settings.get(&key).map_or_else(
                || build.context.display().to_string(),
                |setting| setting.value.trim().to_string(),
            );
            out.push(Finding::fail(
                "build",
                format!(
                    "service `{}` builds from `{}` (`{key}={written}`), outside the repository `{}`; move the sources into the repository",
                    service.name,
                    context.display(),
                    root.display(),
                ),
            ));
        }
    }
    if out.is_empty() {
        out.push(Finding::pass(
            "build",
            "every build context is inside the repository",
        ));
    }
    out
}

/// `STACK_TLS=auto` gets certificates through HTTP challenges, which cannot issue a
/// wildcard certificate.
pub fn wildcard_routes(config: &Config) -> Vec<Finding> {
    if config.tls != Tls::Auto {
        return Vec::new();
    }
    config
        .services
        .iter()
        .flat_map(|s| s.routes.iter().map(move |r| (s, r)))
        .filter(|(_, route)| route.host.starts_with("*."))
        .map(|(service, route)| {
            Finding::fail(
                "tls",
                format!(
                    "service `{}` routes the wildcard `{route}`, but `STACK_TLS=auto` cannot get a wildcard certificate with an HTTP challenge; list the host names in `SERVICE_{}_ROUTE`, or set `STACK_TLS=internal`",
                    service.name,
                    crate::config::keys::service_key_name(&service.name),
                ),
            )
        })
        .collect()
}

/// `localhost` only resolves on the machine itself: a prod domain must be a real one.
pub fn localhost_domain(config: &Config) -> Vec<Finding> {
    if !config.protected {
        return Vec::new();
    }
    let local = |host: &str| {
        let host = host.strip_prefix("*.").unwrap_or(host);
        host == "localhost" || host.ends_with(".localhost")
    };
    let mut out = Vec::new();
    if local(&config.domain) {
        out.push(Finding::fail(
            "domain",
            format!(
                "`STACK_DOMAIN` is `{}` in prod; set the real domain in `environments/prod/stack.env`",
                config.domain
            ),
        ));
    }
    for service in &config.services {
        for route in service.routes.iter().filter(|r| local(&r.host)) {
            out.push(Finding::fail(
                "domain",
                format!(
                    "service `{}` routes `{route}` in prod; set `SERVICE_{}_ROUTE` to a real host in `environments/prod/stack.env`",
                    service.name,
                    crate::config::keys::service_key_name(&service.name),
                ),
            ));
        }
    }
    out
}

/// The host access a service is given on purpose (host devices, `PRIVILEGED`, the host's
/// network, process or IPC namespace): the user's choice, so a warning with the key and
/// the line that sets it, never a failure.
pub fn host_privileges(config: &Config) -> Vec<Finding> {
    let mut out = Vec::new();
    for service in config.services.iter().filter(|s| s.is_container()) {
        let options = &service.options;
        let host = |n: &Option<crate::config::Namespace>| {
            n.as_ref()
                .is_some_and(|n| *n == crate::config::Namespace::Host)
        };
        let devices: Vec<String> = options.devices.iter().map(|d| d.to_string()).collect();
        let granted = [
            (
                "DEVICES",
                !devices.is_empty(),
                devices.join(","),
                "the host's devices",
            ),
            (
                "PRIVILEGED",
                options.privileged,
                "true".into(),
                "every device and capability of the host",
            ),
            (
                "NETWORK_MODE",
                host(&options.network_mode),
                "host".into(),
                "the host's network: it can bind any host port and reach every local service",
            ),
            (
                "PID",
                host(&options.pid),
                "host".into(),
                "the host's processes: it sees and can signal them",
            ),
            (
                "IPC",
                host(&options.ipc),
                "host".into(),
                "the host's shared memory",
            ),
            (
                "CGROUP",
                options.cgroup.as_deref() == Some("host"),
                "host".into(),
                "the host's cgroup tree: it sees every container's resource groups",
            ),
        ];
        for (attr, set, value, what) in granted {
            if !set {
                continue;
            }
            let key = format!(
                "SERVICE_{}_{attr}",
                crate::config::keys::service_key_name(&service.name)
            );
            let at = service
                .attr_spans
                .get(attr)
                .map(|span| format!(" ({}:{})", span.source, span.line))
                .unwrap_or_default();
            out.push(Finding::warn(
                "host",
                format!(
                    "service `{}` has `{key}={value}`{at}: {what}; keep it only if the service needs it",
                    service.name
                ),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_repository_root_is_the_nearest_folder_with_git() {
        let temp = tempfile::tempdir().unwrap();
        let repo = temp.path().join("repo");
        let project = repo.join("deploy/app");
        std::fs::create_dir_all(&project).unwrap();
        assert_eq!(repository_root(&project), project);
        std::fs::write(repo.join(".git"), "gitdir: elsewhere\n").unwrap();
        assert_eq!(repository_root(&project), repo);
    }
}
