//! The host and namespace keys: `devices`, `network_mode`, `dns`, `dns_search`,
//! `dns_opt`, the cgroup knobs (`pids_limit`, `mem_reservation`, `cpu_shares`, `cpuset`,
//! `oom_score_adj`, `memswap_limit`, `mem_swappiness`), `pid`, `ipc`, `domainname`,
//! `mac_address`, `gpus`, `runtime`, `userns_mode`, `cgroup`. A service in another network
//! namespace keeps no `ports`, routes or aliases (Compose ignores or refuses them too).

use super::yaml::Node;
use super::{megabytes, Import, ServiceDraft};

/// Compose keys whose value is one scalar written as it is, and their attributes.
const SCALARS: &[(&str, &str)] = &[
    ("pids_limit", "PIDS_LIMIT"),
    ("cpu_shares", "CPU_SHARES"),
    ("cpuset", "CPUSET"),
    ("oom_score_adj", "OOM_SCORE_ADJ"),
    ("mem_swappiness", "MEMORY_SWAPPINESS"),
    ("domainname", "DOMAINNAME"),
    ("mac_address", "MAC_ADDRESS"),
    ("runtime", "RUNTIME"),
    ("userns_mode", "USERNS_MODE"),
    ("cgroup", "CGROUP"),
];

/// Compose keys that are a string or a list of strings, and their list attributes.
const LISTS: &[(&str, &str)] = &[
    ("dns", "DNS"),
    ("dns_search", "DNS_SEARCH"),
    ("dns_opt", "DNS_OPT"),
];

/// What a service in another network namespace cannot keep, and why.
const OFF_NETWORK: &[(&str, &str)] = &[
    ("PUBLISH", "ports"),
    ("ROUTE", "ports"),
    ("ROUTE_STRIP", "ports"),
    ("ALIASES", "container_name"),
];

impl Import<'_> {
    /// Every key of this file that the service sets.
    pub(super) fn host_options(&mut self, service: &mut ServiceDraft, node: &Node) {
        for (key, attr) in SCALARS {
            // `deploy.resources` (read before) wins, as in Compose.
            if service.has(attr) {
                continue;
            }
            if let Some(value) = node.get(key).and_then(Node::scalar) {
                let value = self.template(&value);
                service.set(attr, &value);
            }
        }
        for (key, attr) in LISTS {
            let items: Vec<String> = match node.get(key) {
                Some(Node::Seq(items)) => items.iter().filter_map(Node::scalar).collect(),
                Some(other) => other.scalar().into_iter().collect(),
                None => continue,
            };
            if !items.is_empty() {
                let items: Vec<String> = items.iter().map(|i| self.template(i)).collect();
                service.set(attr, &items.join(","));
            }
        }
        self.devices(service, node);
        self.sizes(service, node);
        self.gpus(service, node);
        for (key, attr) in [("pid", "PID"), ("ipc", "IPC")] {
            if let Some(value) = node.get(key).and_then(Node::scalar) {
                let value = self.namespace(&value);
                service.set(attr, &value);
            }
        }
        if let Some(mode) = node.get("network_mode").and_then(Node::scalar) {
            self.network_mode(service, &mode);
        }
    }

    /// `service:NAME` with the service's name in the project (an import may rename it).
    fn namespace(&mut self, value: &str) -> String {
        match value.split_once(':') {
            Some(("service", name)) => {
                let name = self.names.get(name).cloned().unwrap_or(name.to_string());
                format!("service:{name}")
            }
            _ => self.template(value),
        }
    }

    /// `network_mode`; the service then keeps no published port, route or alias.
    fn network_mode(&mut self, service: &mut ServiceDraft, mode: &str) {
        let input = service.input.clone();
        let literal = self
            .resolved(Some(&input), "network_mode", mode)
            .unwrap_or(mode.to_string());
        let value = self.namespace(&literal);
        service.set("NETWORK_MODE", &value);
        for (attr, key) in OFF_NETWORK {
            if *attr == "PUBLISH" && literal == "bridge" {
                continue;
            }
            if service.unset(attr).is_some() {
                self.finding(
                    Some(&input),
                    key,
                    format!("`network_mode: {literal}` puts the service on no network of the project, so `{attr}` cannot be kept (Compose does not publish or name it either)"),
                );
            }
        }
    }

    /// `devices`: short (`/dev/x[:/dev/y[:rwm]]`) or long syntax (`source`, `target`,
    /// `permissions`).
    fn devices(&mut self, service: &mut ServiceDraft, node: &Node) {
        let Some(Node::Seq(items)) = node.get("devices") else {
            return;
        };
        let mut devices = Vec::new();
        for item in items {
            let text = match item {
                Node::Map(_) => {
                    let part = |key: &str| item.get(key).and_then(Node::scalar);
                    let Some(source) = part("source") else {
                        continue;
                    };
                    let mut text = source.clone();
                    text.push(':');
                    text.push_str(&part("target").unwrap_or(source));
                    if let Some(permissions) = part("permissions") {
                        text.push(':');
                        text.push_str(&permissions);
                    }
                    text
                }
                other => match other.scalar() {
                    Some(text) => text,
                    None => continue,
                },
            };
            devices.push(self.template(&text));
        }
        if !devices.is_empty() {
            service.set("DEVICES", &devices.join(","));
        }
    }

    /// `mem_reservation`, `memswap_limit` (and `deploy.resources.reservations.memory`,
    /// read with `deploy`) in whole MB.
    fn sizes(&mut self, service: &mut ServiceDraft, node: &Node) {
        let input = service.input.clone();
        for (key, attr) in [
            ("mem_reservation", "MEMORY_RESERVATION_MB"),
            ("memswap_limit", "MEMORY_SWAP_MB"),
        ] {
            let Some(size) = node.get(key).and_then(Node::scalar) else {
                continue;
            };
            if service.has(attr) {
                continue;
            }
            let size = self.resolved(Some(&input), key, &size).unwrap_or(size);
            match megabytes(&size) {
                _ if key == "memswap_limit" && size.trim() == "-1" => service.set(attr, "-1"),
                Some(mb) => service.set(attr, &mb.to_string()),
                None => self.finding(
                    Some(&input),
                    key,
                    format!("`{size}` is not a size stack can write in whole MB"),
                ),
            }
        }
    }

    /// `gpus: all`, or a list whose first entry has a `count`.
    fn gpus(&mut self, service: &mut ServiceDraft, node: &Node) {
        let gpus = match node.get("gpus") {
            Some(Node::Seq(items)) => items
                .first()
                .and_then(|d| d.get("count"))
                .and_then(Node::scalar)
                .unwrap_or_else(|| "all".into()),
            Some(other) => match other.scalar() {
                Some(value) => value,
                None => return,
            },
            None => return,
        };
        if !service.has("GPUS") {
            service.set("GPUS", &gpus);
        }
    }
}
