//! `restart` and `deploy` (replicas, resources, restart policy, placement), `mem_limit`,
//! `cpus`, `scale`.

use super::ports::publishes_fixed;
use super::yaml::Node;
use super::{megabytes, Import, ServiceDraft};

impl Import<'_> {
    /// `restart`, else `deploy.restart_policy.condition` (as Compose reads it), else `no`.
    pub(super) fn restart(&mut self, service: &mut ServiceDraft, node: &Node) {
        let input = service.input.clone();
        let policy = node.get("deploy").and_then(|d| d.get("restart_policy"));
        if let Some(Node::Map(keys)) = policy {
            for (key, _) in keys {
                if key != "condition" {
                    self.finding(
                        Some(&input),
                        &format!("deploy.restart_policy.{key}"),
                        "stack restarts with the engine's own back-off; only `condition` is carried",
                    );
                }
            }
        }
        let value = match node.get("restart") {
            Some(Node::Bool(false)) => "no".to_string(),
            Some(other) => match other.scalar() {
                Some(text) => self.template(&text),
                None => "no".into(),
            },
            None => match policy
                .and_then(|p| p.get("condition"))
                .and_then(Node::scalar)
            {
                None if policy.is_some() => "always".into(),
                None => "no".into(),
                Some(condition) => match condition.as_str() {
                    "any" | "always" => "always".into(),
                    "on-failure" => "on-failure".into(),
                    "none" | "no" => "no".into(),
                    other => {
                        self.finding(
                            Some(&input),
                            "deploy.restart_policy.condition",
                            format!("`{other}` is not `none`, `on-failure` or `any`"),
                        );
                        "no".into()
                    }
                },
            },
        };
        if self.jobs.contains(&service.name) && value != "no" {
            self.finding(
                Some(&input),
                "restart",
                format!("`{value}` on a job that another service waits for with `service_completed_successfully`: stack runs a job once (`RESTART=no`)"),
            );
            service.set("RESTART", "no");
            return;
        }
        service.set("RESTART", &value);
    }

    /// Replicas, memory and CPUs (`deploy` over `scale`, `mem_limit`, `cpus`), GPUs and
    /// placement.
    pub(super) fn resources(&mut self, service: &mut ServiceDraft, node: &Node) {
        let mut limits = Limits {
            memory: node.get("mem_limit").and_then(Node::scalar),
            cpus: node.get("cpus").and_then(Node::scalar),
            replicas: node.get("scale").and_then(Node::scalar),
        };
        if let Some(Node::Map(deploy)) = node.get("deploy") {
            for (key, value) in deploy {
                match key.as_str() {
                    "replicas" => limits.replicas = value.scalar(),
                    "resources" => self.deploy_resources(service, value, &mut limits),
                    "restart_policy" => {}
                    "placement" => self.placement(service, value),
                    other => self.finding(
                        Some(&service.input),
                        &format!("deploy.{other}"),
                        "only `replicas`, `resources`, `restart_policy` and `placement` of `deploy` are carried",
                    ),
                }
            }
        }
        if let Some(replicas) = limits.replicas.filter(|r| r != "1") {
            self.replicas(service, node, replicas);
        }
        if let Some(memory) = limits.memory {
            self.memory(service, memory);
        }
        if let Some(cpus) = limits.cpus {
            service.set("CPUS", &cpus);
        }
    }

    /// `deploy.resources`: limits of memory and CPUs, GPUs reserved.
    fn deploy_resources(&mut self, service: &mut ServiceDraft, value: &Node, limits: &mut Limits) {
        let Node::Map(parts) = value else { return };
        for (part, entries) in parts {
            let Node::Map(entries) = entries else {
                continue;
            };
            for (limit, value) in entries {
                match (part.as_str(), limit.as_str()) {
                    ("limits", "memory") => limits.memory = value.scalar(),
                    ("limits", "cpus") => limits.cpus = value.scalar(),
                    ("limits", "pids") => {
                        if let Some(pids) = value.scalar() {
                            service.set("PIDS_LIMIT", &self.template(&pids));
                        }
                    }
                    ("reservations", "memory") => self.reservation(service, value),
                    ("reservations", "devices") if gpus(value).is_some() => {
                        service.set("GPUS", &gpus(value).unwrap_or_default());
                    }
                    _ => self.finding(
                        Some(&service.input),
                        &format!("deploy.resources.{part}.{limit}"),
                        "stack limits memory, CPUs and processes and reserves memory and GPUs only",
                    ),
                }
            }
        }
    }

    /// `deploy.resources.reservations.memory` to `MEMORY_RESERVATION_MB`.
    fn reservation(&mut self, service: &mut ServiceDraft, value: &Node) {
        let Some(size) = value.scalar() else { return };
        let input = service.input.clone();
        let key = "deploy.resources.reservations.memory";
        let size = self.resolved(Some(&input), key, &size).unwrap_or(size);
        match megabytes(&size) {
            Some(mb) => service.set("MEMORY_RESERVATION_MB", &mb.to_string()),
            None => self.finding(
                Some(&input),
                key,
                format!("`{size}` is not a size stack can write in whole MB"),
            ),
        }
    }

    /// `deploy.placement.constraints` to `PLACEMENT`.
    fn placement(&mut self, service: &mut ServiceDraft, value: &Node) {
        let constraints = match value.get("constraints") {
            Some(Node::Seq(items)) => items.iter().filter_map(Node::scalar).collect::<Vec<_>>(),
            _ => Vec::new(),
        };
        if !constraints.is_empty() {
            let joined: Vec<String> = constraints.iter().map(|c| c.replace(' ', "")).collect();
            service.set("PLACEMENT", &joined.join(","));
        }
        if let Node::Map(parts) = value {
            for (part, _) in parts.iter().filter(|(p, _)| p.as_str() != "constraints") {
                self.finding(
                    Some(&service.input),
                    &format!("deploy.placement.{part}"),
                    "stack carries placement `constraints` only",
                );
            }
        }
    }

    /// `REPLICAS`, unless the service is a job or publishes a fixed host port.
    fn replicas(&mut self, service: &mut ServiceDraft, node: &Node, replicas: String) {
        let input = service.input.clone();
        if self.jobs.contains(&service.name) {
            self.finding(
                Some(&input),
                "deploy.replicas",
                format!("{replicas} replicas of a job that another service waits for with `service_completed_successfully`: stack runs a job once, one is imported"),
            );
        } else if publishes_fixed(node) && !self.options.routes {
            self.finding(
                Some(&input),
                "deploy.replicas",
                format!("{replicas} replicas cannot share a fixed host port; one is imported (route the port with `--routes`, then set `REPLICAS`)"),
            );
        } else {
            service.set("REPLICAS", &replicas);
        }
    }

    /// The memory limit to `MEMORY_MB`.
    fn memory(&mut self, service: &mut ServiceDraft, memory: String) {
        let input = service.input.clone();
        let memory = self
            .resolved(Some(&input), "mem_limit", &memory)
            .unwrap_or(memory);
        match megabytes(&memory) {
            Some(mb) => service.set("MEMORY_MB", &mb.to_string()),
            None => self.finding(
                Some(&input),
                "mem_limit",
                format!("`{memory}` is not a size stack can write in whole MB"),
            ),
        }
    }
}

/// The limits a service's keys and its `deploy` set, `deploy` last.
struct Limits {
    memory: Option<String>,
    cpus: Option<String>,
    replicas: Option<String>,
}

/// `all` or a count from `deploy.resources.reservations.devices`, when it asks for GPUs.
fn gpus(devices: &Node) -> Option<String> {
    let Node::Seq(items) = devices else {
        return None;
    };
    let device = items.first()?;
    let capabilities = device.get("capabilities")?;
    let Node::Seq(caps) = capabilities else {
        return None;
    };
    if !caps.iter().any(|c| c.scalar().as_deref() == Some("gpu")) {
        return None;
    }
    Some(
        device
            .get("count")
            .and_then(Node::scalar)
            .unwrap_or_else(|| "all".into()),
    )
}
