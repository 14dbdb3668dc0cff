//! The single-valued and list options: user, working folder, host name, signals,
//! platform, capabilities, `read_only`, `init`, `shm_size`, sysctls, labels, ulimits,
//! extra hosts, `expose`.

use super::yaml::Node;
use super::{megabytes, pairs, Import, ServiceDraft};
use crate::config::attrs::{is_container_hostname, HOSTNAME_MAX};

impl Import<'_> {
    /// The single-valued and list options, each key by its own helper.
    pub(super) fn options(&mut self, service: &mut ServiceDraft, node: &Node) {
        self.single_values(service, node);
        flags(service, node);
        capabilities(service, node);
        self.shm_size(service, node);
        for (key, attr) in [("sysctls", "SYSCTLS"), ("labels", "LABELS")] {
            if let Some(value) = node.get(key) {
                self.named_values(service, key, attr, value);
            }
        }
        ulimits(service, node);
        if let Some(logging) = node.get("logging") {
            self.logging(service, logging);
        }
        if let Some(hosts) = node.get("extra_hosts") {
            self.extra_hosts(service, hosts);
        }
        if node.get("expose").is_some() {
            self.note(
                Some(&service.input),
                "expose",
                "not needed: services on one network reach every port of each other",
            );
        }
    }

    /// `logging`: json-file rotation (`max-size`, `max-file`) becomes the project's
    /// `STACK_LOG_MAX_SIZE`/`STACK_LOG_MAX_FILES` (stack rotates every container alike);
    /// another driver, other options or another rotation become the service's `LOGGING`.
    fn logging(&mut self, service: &mut ServiceDraft, logging: &Node) {
        let input = service.input.clone();
        let driver = logging
            .get("driver")
            .and_then(Node::scalar)
            .unwrap_or_else(|| "json-file".into());
        let options = pairs(logging.get("options").unwrap_or(&Node::Null));
        let option = |key: &str| {
            options
                .iter()
                .find(|(k, _)| k == key)
                .and_then(|(_, v)| v.clone())
        };
        let rotation_only = options
            .iter()
            .all(|(k, _)| k == "max-size" || k == "max-file");
        let rotation = (
            option("max-size").unwrap_or_else(|| "10m".into()),
            option("max-file").unwrap_or_else(|| "3".into()),
        );
        if driver == "json-file" && rotation_only {
            match &self.log_rotation {
                None => {
                    self.note(
                        Some(&input),
                        "logging",
                        format!(
                            "json-file rotation `{}` × {} is the project's (`STACK_LOG_MAX_SIZE`, `STACK_LOG_MAX_FILES`): stack rotates every container alike",
                            rotation.0, rotation.1
                        ),
                    );
                    self.log_rotation = Some((rotation.0, rotation.1, input));
                    return;
                }
                Some((size, files, _)) if (size, files) == (&rotation.0, &rotation.1) => return,
                Some(_) => {}
            }
        }
        let mut items = vec![self.template(&driver)];
        if driver == "json-file" {
            items.push(format!("max-size={}", self.template(&rotation.0)));
            items.push(format!("max-file={}", self.template(&rotation.1)));
        }
        for (key, value) in &options {
            let value = value.clone().unwrap_or_default();
            if driver == "json-file" && (key == "max-size" || key == "max-file") {
                continue;
            }
            if value.contains(',') || key.contains(',') {
                self.finding(
                    Some(&input),
                    &format!("logging.options.{key}"),
                    "a log option whose value holds a comma cannot be listed in `LOGGING`",
                );
                continue;
            }
            items.push(format!("{key}={}", self.template(&value)));
        }
        service.set("LOGGING", &items.join(","));
    }

    /// The options that are one value, written with their interpolation.
    fn single_values(&mut self, service: &mut ServiceDraft, node: &Node) {
        for (key, attr) in [
            ("user", "USER"),
            ("working_dir", "WORKDIR"),
            ("hostname", "HOSTNAME"),
            ("stop_signal", "STOP_SIGNAL"),
            ("stop_grace_period", "STOP_GRACE"),
            ("platform", "PLATFORM"),
        ] {
            if let Some(value) = node.get(key).and_then(Node::scalar) {
                let literal = !value.contains('$');
                if key == "hostname" && literal && !is_container_hostname(value.trim()) {
                    let input = service.input.clone();
                    self.finding(
                        Some(&input),
                        key,
                        format!("`{value}` is not a host name a container can have: RFC 1123 labels (letters, digits, `-`), at most {HOSTNAME_MAX} characters"),
                    );
                    continue;
                }
                let value = self.template(&value);
                service.set(attr, &value);
            }
        }
    }

    /// `shm_size` to `SHM_MB`.
    fn shm_size(&mut self, service: &mut ServiceDraft, node: &Node) {
        let Some(shm) = node.get("shm_size").and_then(Node::scalar) else {
            return;
        };
        let input = service.input.clone();
        let shm = self.resolved(Some(&input), "shm_size", &shm).unwrap_or(shm);
        match megabytes(&shm) {
            Some(mb) => service.set("SHM_MB", &mb.to_string()),
            None => self.finding(
                Some(&input),
                "shm_size",
                format!("`{shm}` is not a size stack can write in whole MB"),
            ),
        }
    }

    /// `sysctls` or `labels` (`key`) to the list attribute `attr` of `name=value` items.
    fn named_values(&mut self, service: &mut ServiceDraft, key: &str, attr: &str, value: &Node) {
        let input = service.input.clone();
        let mut items = Vec::new();
        for (name, value) in pairs(value) {
            let value = value.unwrap_or_default();
            // A label's value may hold commas (`\,` in `LABELS`); a sysctl's cannot.
            let label = key == "labels";
            if (!label && value.contains(',')) || name.contains(',') {
                self.finding(
                    Some(&input),
                    &format!("{key}.{name}"),
                    "a value with a comma cannot be listed",
                );
                continue;
            }
            if label && value.trim() != value {
                self.finding(
                    Some(&input),
                    &format!("labels.{name}"),
                    "a label value that starts or ends with a blank cannot be listed in `LABELS`",
                );
                continue;
            }
            if key == "labels"
                && (name.starts_with("com.docker.compose.") || name.starts_with("dev.stack."))
            {
                self.finding(
                    Some(&input),
                    &format!("labels.{name}"),
                    "stack sets the labels under `com.docker.compose.` and `dev.stack.` itself",
                );
                continue;
            }
            let value = self.template(&value);
            items.push(match label {
                true => self.list_item(&input, key, &format!("{name}={value}")),
                false => format!("{name}={value}"),
            });
        }
        if !items.is_empty() {
            service.set(attr, &items.join(","));
        }
    }

    /// `extra_hosts` (a mapping or a list) to `EXTRA_HOSTS`.
    fn extra_hosts(&mut self, service: &mut ServiceDraft, hosts: &Node) {
        let items: Vec<String> = match hosts {
            // `host: ip`, or `host: [ip, ip]` (an address of each family).
            Node::Map(entries) => entries
                .iter()
                .flat_map(|(host, ip)| {
                    match ip {
                        Node::Seq(ips) => ips.iter().filter_map(Node::scalar).collect(),
                        other => other.scalar().into_iter().collect::<Vec<_>>(),
                    }
                    .into_iter()
                    .map(move |ip| format!("{host}:{ip}"))
                })
                .collect(),
            Node::Seq(items) => items
                .iter()
                .filter_map(Node::scalar)
                .map(|h| match h.split_once('=') {
                    Some((host, ip)) => format!("{host}:{ip}"),
                    None => h,
                })
                .collect(),
            _ => Vec::new(),
        };
        let mut trimmed = Vec::new();
        for item in items {
            let (entry, changed) = trim_host_entry(&item);
            if changed {
                self.note(
                    Some(&service.input),
                    "extra_hosts",
                    format!("`{item}`: the spaces around the host and address are dropped (`{entry}`); the engine ignores them"),
                );
            }
            trimmed.push(entry);
        }
        if !trimmed.is_empty() {
            service.set("EXTRA_HOSTS", &trimmed.join(","));
        }
    }
}

/// `read_only` and `init`, written when `true`.
fn flags(service: &mut ServiceDraft, node: &Node) {
    for (key, attr) in [
        ("read_only", "READ_ONLY"),
        ("init", "INIT"),
        ("privileged", "PRIVILEGED"),
        ("tty", "TTY"),
        ("stdin_open", "STDIN_OPEN"),
    ] {
        if let Some(Node::Bool(true)) = node.get(key) {
            service.set(attr, "true");
        }
    }
}

/// `cap_add` and `cap_drop`.
fn capabilities(service: &mut ServiceDraft, node: &Node) {
    for (key, attr) in [
        ("cap_add", "CAP_ADD"),
        ("cap_drop", "CAP_DROP"),
        ("security_opt", "SECURITY_OPT"),
        ("group_add", "GROUP_ADD"),
    ] {
        if let Some(Node::Seq(items)) = node.get(key) {
            let caps: Vec<String> = items.iter().filter_map(Node::scalar).collect();
            service.set(attr, &caps.join(","));
        }
    }
}

/// `ulimits` to `ULIMITS` (`name=soft:hard` or `name=value`).
fn ulimits(service: &mut ServiceDraft, node: &Node) {
    let Some(Node::Map(limits)) = node.get("ulimits") else {
        return;
    };
    let mut items = Vec::new();
    for (name, limit) in limits {
        match limit {
            Node::Map(_) => {
                let soft = limit.get("soft").and_then(Node::scalar);
                let hard = limit.get("hard").and_then(Node::scalar);
                if let (Some(soft), Some(hard)) = (soft, hard) {
                    items.push(format!("{name}={soft}:{hard}"));
                }
            }
            other => {
                if let Some(value) = other.scalar() {
                    items.push(format!("{name}={value}"));
                }
            }
        }
    }
    if !items.is_empty() {
        service.set("ULIMITS", &items.join(","));
    }
}

/// An `extra_hosts` entry without the spaces around its host and address (the engine
/// ignores them), and whether there were any.
fn trim_host_entry(entry: &str) -> (String, bool) {
    let trimmed = match entry.split_once(':') {
        Some((host, ip)) => format!("{}:{}", host.trim(), ip.trim()),
        None => entry.trim().to_string(),
    };
    let changed = trimmed != entry;
    (trimmed, changed)
}
