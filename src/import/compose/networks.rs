//! `networks`: a service's to `NETWORKS` (its aliases, `container_name` and `links` to
//! `ALIASES`), the top-level ones to `STACK_NETWORKS`.

use std::collections::{BTreeMap, BTreeSet};

use super::yaml::Node;
use super::{Import, ServiceDraft};

impl Import<'_> {
    pub(super) fn service_networks(&mut self, service: &mut ServiceDraft, node: &Node) {
        let input = service.input.clone();
        let names: Vec<String> = match node.get("networks") {
            Some(Node::Seq(items)) => items.iter().filter_map(Node::scalar).collect(),
            Some(Node::Map(entries)) => {
                for (name, options) in entries {
                    if let Node::Map(options) = options {
                        // Aliases are carried as `ALIASES` (see `names.rs`).
                        for (key, _) in options.iter().filter(|(k, _)| k != "aliases") {
                            self.finding(
                                Some(&input),
                                &format!("networks.{name}.{key}"),
                                "stack attaches services to networks by name, with the same `ALIASES` on each (no fixed addresses or priorities)",
                            );
                        }
                    }
                }
                entries.iter().map(|(name, _)| name.clone()).collect()
            }
            _ => return,
        };
        let names: Vec<String> = names
            .into_iter()
            .map(|n| self.external_networks.get(&n).cloned().unwrap_or(n))
            .collect();
        if names != ["default"] {
            service.set("NETWORKS", &names.join(","));
        }
    }

    /// `ALIASES`: the other names the service answers to (gathered in `names.rs`).
    pub(super) fn service_aliases(&mut self, service: &mut ServiceDraft) {
        if let Some(aliases) = self.aliases.get(&service.name) {
            let list: Vec<&str> = aliases.iter().map(String::as_str).collect();
            service.set("ALIASES", &list.join(","));
        }
    }

    /// The network a service's `networks` entry names: a `${VAR:-default}` entry is the
    /// `.env` value of VAR, or its default.
    fn chosen_network(&self, name: &str) -> String {
        let Some(inner) = name.strip_prefix("${").and_then(|n| n.strip_suffix('}')) else {
            return name.to_string();
        };
        let (var, default) = match inner.split_once(":-").or_else(|| inner.split_once('-')) {
            Some((var, default)) => (var, default),
            None => (inner, ""),
        };
        match self.dotenv.get(var) {
            Some((value, _)) => value.clone(),
            None => default.to_string(),
        }
    }

    /// `STACK_NETWORKS` from the top-level `networks`.
    pub(super) fn networks(&mut self, doc: &Node) -> Option<String> {
        let Some(Node::Map(networks)) = doc.get("networks") else {
            return None;
        };
        let joined: BTreeSet<String> = joined_networks(doc)
            .into_iter()
            .map(|name| self.chosen_network(&name))
            .collect();
        let mut out = Vec::new();
        for (name, options) in networks {
            let mut internal = false;
            if let Some(engine_name) = self.external_networks.get(name).cloned() {
                if joined.contains(name) {
                    out.push(format!("{engine_name}:external"));
                }
                continue;
            }
            if let Node::Map(options) = options {
                for (key, value) in options {
                    match (key.as_str(), value) {
                        ("internal", Node::Bool(b)) => internal = *b,
                        ("driver", driver) if driver.scalar().as_deref() == Some("bridge") => {}
                        (key, _) => self.finding(
                            None,
                            &format!("networks.{name}.{key}"),
                            "stack creates bridge networks named `<project>_<network>`; only `internal` is carried",
                        ),
                    }
                }
            }
            if name == "default" {
                if internal {
                    self.finding(
                        None,
                        "networks.default.internal",
                        "the default network always has outside access",
                    );
                }
                continue;
            }
            out.push(if internal {
                format!("{name}:internal")
            } else {
                name.clone()
            });
        }
        (!out.is_empty()).then(|| out.join(","))
    }
}

/// External networks (`external: true`, with `name:` or the old `external: {name:}`):
/// the file's name → the engine's name.
pub(super) fn external_networks(doc: &Node) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let Some(Node::Map(networks)) = doc.get("networks") else {
        return out;
    };
    for (name, options) in networks {
        let engine_name = match options.get("external") {
            Some(Node::Bool(true)) => options.get("name").and_then(Node::scalar),
            Some(external @ Node::Map(_)) => external.get("name").and_then(Node::scalar),
            _ => continue,
        };
        out.insert(name.clone(), engine_name.unwrap_or_else(|| name.clone()));
    }
    out
}

/// The network names services join literally (`networks:` as a list or a map's keys);
/// a service without `networks` joins `default`.
fn joined_networks(doc: &Node) -> BTreeSet<String> {
    let mut joined = std::collections::BTreeSet::new();
    if let Some(Node::Map(services)) = doc.get("services") {
        for (_, service) in services {
            match service.get("networks") {
                Some(Node::Seq(items)) => joined.extend(items.iter().filter_map(Node::scalar)),
                Some(Node::Map(entries)) => joined.extend(entries.iter().map(|(n, _)| n.clone())),
                _ => {
                    joined.insert("default".to_string());
                }
            }
        }
    }
    joined
}
