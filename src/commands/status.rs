//! `stack status` and `stack health`.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::json;

use super::target::Target;
use super::{default_out, runtime, Context, MaintenanceDir};
use crate::engine::certificates;
use crate::engine::readiness::is_ready;
use crate::engine::{ContainerState, Engine};
use crate::error::{Error, Result};
use crate::model::{Desired, DesiredService, PROXY_SERVICE};

struct Snapshot {
    desired: Desired,
    states: BTreeMap<String, Vec<ContainerState>>,
    /// Container id → ready now.
    ready: BTreeMap<String, bool>,
    /// `stack maintenance on`'s state; `None` while it is off.
    maintenance: Option<crate::render::maintenance::State>,
    /// Host → expiry of the certificate the proxy holds (none without HTTPS).
    certificates: BTreeMap<String, DateTime<Utc>>,
}

impl Snapshot {
    /// The containers of a service (none when it has none).
    fn containers(&self, service: &str) -> Vec<ContainerState> {
        self.states.get(service).cloned().unwrap_or_default()
    }

    /// Every routed host with the expiry of its certificate (`None`: none yet), when
    /// the proxy serves HTTPS; empty otherwise.
    fn hosts(&self) -> BTreeMap<String, Option<DateTime<Utc>>> {
        if !serves_https(&self.desired) {
            return BTreeMap::new();
        }
        self.desired
            .services
            .iter()
            .flat_map(|s| s.routes.iter())
            .map(|r| (r.host.clone(), self.certificates.get(&r.host).copied()))
            .collect()
    }

    /// The one readiness rule of `status` and `health` (and `start`'s wait): the wanted
    /// replicas exist and each is ready.
    fn ready(&self, service: &DesiredService) -> bool {
        service.is_ready(&self.containers(&service.name), |c| {
            self.ready.get(&c.id) == Some(&true)
        })
    }
}

/// What runs, as the engine shows it: locally for the project's environment (`--env`),
/// or with `--on ENV` on that server for the release `current` there.
fn snapshot(context: &Context, on: &Option<String>) -> Result<Snapshot> {
    runtime()?.block_on(async {
        // Status needs no secrets locally; on a server the release's own state is read.
        let (engine, desired, maintenance, _target) = match on {
            Some(env) => {
                let target = Target::server(context, env).await?;
                let maintenance = MaintenanceDir::of(&target).state()?;
                (target.engine, target.desired, maintenance, target.remote)
            }
            None => {
                let env = context.env();
                let loaded = context.load(&env)?;
                let out = default_out(&loaded.config.project_dir, &env);
                let desired = super::sealed_desired(&loaded.config, &out)?;
                let placement = crate::model::Placement {
                    root: loaded.config.project_dir.clone(),
                    bundle: out,
                };
                let source = crate::model::HostPath::State(crate::model::MAINTENANCE_DIR.into());
                let maintenance = MaintenanceDir::Local(placement.resolve(&source)).state()?;
                (Engine::connect().await?, desired, maintenance, None)
            }
        };
        let mut states: BTreeMap<String, Vec<ContainerState>> = BTreeMap::new();
        let mut ready = BTreeMap::new();
        for container in engine.containers(&desired.project).await? {
            if let Some(state) = engine.state(&container.id).await? {
                if let Some(service) = desired.service(&container.service) {
                    ready.insert(state.id.clone(), is_ready(&engine, &state, service).await);
                }
                states
                    .entry(container.service.clone())
                    .or_default()
                    .push(state);
            }
        }
        let certificates = match proxy_container(&desired, &states) {
            // What the proxy holds is a detail of the status: unreadable is not a failure.
            Some(id) => engine.certificate_expiry(&id).await.unwrap_or_default(),
            None => BTreeMap::new(),
        };
        Ok(Snapshot {
            desired,
            states,
            ready,
            maintenance,
            certificates,
        })
    })
}

/// The proxy publishes 443 (`STACK_TLS` is not `off`).
fn serves_https(desired: &Desired) -> bool {
    desired
        .service(PROXY_SERVICE)
        .is_some_and(|proxy| proxy.ports.iter().any(|p| p.container_ports.contains(&443)))
}

/// A running container of the proxy, when it serves HTTPS.
fn proxy_container(
    desired: &Desired,
    states: &BTreeMap<String, Vec<ContainerState>>,
) -> Option<String> {
    if !serves_https(desired) {
        return None;
    }
    states
        .get(PROXY_SERVICE)?
        .iter()
        .find(|c| c.state == "running")
        .map(|c| c.id.clone())
}

/// A service's routes as people write them.
fn routes(service: &DesiredService) -> Vec<String> {
    service.routes.iter().map(|r| r.to_string()).collect()
}

fn uptime(started_at: &str) -> String {
    // RFC 3339 from the engine; shown as given, trimmed to seconds.
    started_at
        .split('.')
        .next()
        .unwrap_or(started_at)
        .replace('T', " ")
}

pub fn status(context: &Context, on: &Option<String>) -> Result<()> {
    let snapshot = snapshot(context, on)?;
    let mut rows = Vec::new();
    for service in &snapshot.desired.services {
        rows.push(json!({
            "service": service.name,
            "ready": snapshot.ready(service),
            "replicas": service.replicas,
            "routes": routes(service),
            "image": service.image,
            "containers": snapshot.containers(&service.name),
        }));
    }
    for (service, containers) in &snapshot.states {
        if snapshot.desired.service(service).is_none() {
            rows.push(json!({"service": service, "orphan": true, "containers": containers}));
        }
    }
    if context.global.json {
        context.printer.json(&json_report(&snapshot, rows));
        return Ok(());
    }
    let mut text = format!(
        "{:<16} {:<24} {:<10} {:<10} {:<22} {:<20} {}\n",
        "SERVICE", "CONTAINER", "STATE", "HEALTH", "PORTS", "STARTED", "ROUTES"
    );
    for service in &snapshot.desired.services {
        let routes = routes(service).join(",");
        let containers = snapshot.containers(&service.name);
        if containers.is_empty() {
            text.push_str(&format!(
                "{:<16} {:<24} {:<10}\n",
                service.name, "-", "missing"
            ));
        }
        for c in containers {
            text.push_str(&format!(
                "{:<16} {:<24} {:<10} {:<10} {:<22} {:<20} {}\n",
                service.name,
                c.name,
                c.state,
                c.health,
                c.ports.join(","),
                uptime(&c.started_at),
                routes
            ));
        }
    }
    let now = Utc::now();
    for (host, expiry) in snapshot.hosts() {
        let expiry = match expiry {
            Some(expiry) => format!("expires {}", certificates::describe(expiry, now)),
            None => "no certificate yet".to_string(),
        };
        text.push_str(&format!("certificate {host}: {expiry}\n"));
    }
    context.printer.out(text);
    if let Some(state) = &snapshot.maintenance {
        let allowed = if state.allow.is_empty() {
            String::new()
        } else {
            format!(", allowed: {}", state.allow.join(", "))
        };
        context.printer.status(format!(
            "maintenance mode is on since {}{allowed} (`stack maintenance off` ends it)",
            state.since
        ));
    }
    Ok(())
}

/// `status --json`: the project, maintenance mode, the services' rows and, with HTTPS,
/// each routed host's certificate expiry.
fn json_report(snapshot: &Snapshot, rows: Vec<serde_json::Value>) -> serde_json::Value {
    let maintenance = match &snapshot.maintenance {
        Some(state) => {
            json!({"on": true, "since": state.since, "allow": state.allow, "retry_after": state.retry_after})
        }
        None => json!({"on": false}),
    };
    let hosts: serde_json::Map<String, serde_json::Value> = snapshot
        .hosts()
        .into_iter()
        .map(|(host, expiry)| (host, json!(expiry.map(|e| e.to_rfc3339()))))
        .collect();
    let mut report =
        json!({"project": snapshot.desired.project, "maintenance": maintenance, "services": rows});
    if !hosts.is_empty() {
        report["certificates"] = json!(hosts);
    }
    report
}

pub fn health(context: &Context, on: &Option<String>) -> Result<()> {
    let snapshot = snapshot(context, on)?;
    let mut bad = Vec::new();
    let mut report = serde_json::Map::new();
    for service in &snapshot.desired.services {
        let containers = snapshot.containers(&service.name);
        let ready = snapshot.ready(service);
        let word = if containers.is_empty() {
            "missing".to_string()
        } else if ready {
            "healthy".to_string()
        } else if containers.len() < service.replicas as usize {
            format!("{} of {} replicas", containers.len(), service.replicas)
        } else {
            containers
                .iter()
                .map(|c| {
                    if c.state == "running" {
                        c.health.clone()
                    } else {
                        c.state.clone()
                    }
                })
                .find(|s| s != "healthy")
                .unwrap_or_else(|| "not ready".into())
        };
        if !ready && service.replicas > 0 {
            bad.push(format!("{} ({word})", service.name));
        }
        report.insert(service.name.clone(), json!(word));
        if !context.global.json {
            context
                .printer
                .status(format!("{:<16} {word}", service.name));
        }
    }
    if context.global.json {
        context
            .printer
            .json(&json!({"healthy": bad.is_empty(), "services": report}));
    }
    if bad.is_empty() {
        Ok(())
    } else {
        Err(Error::No(format!("not healthy: {}", bad.join(", "))))
    }
}
