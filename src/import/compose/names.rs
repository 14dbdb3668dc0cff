//! Service names: the project's names for the input's services, and the other names
//! (old name, `container_name`, aliases, `links`) that must keep resolving to them.

use std::collections::BTreeSet;

use super::yaml::Node;
use super::{pairs_opt, service_name, Import};

impl Import<'_> {
    /// Project names for the input's services: lower-case, `-`, never a preset's or the
    /// proxy's name, never twice.
    pub(super) fn name_services(&mut self, services: &[(String, Node)]) {
        let mut taken = BTreeSet::new();
        for (input, _) in services {
            let base = service_name(input).unwrap_or_else(|| "service".into());
            let mut name = base.clone();
            let reserved = crate::import::is_reserved_service(&name, self.uses_proxy);
            if reserved {
                name = format!("{base}-svc");
            }
            let mut n = 2;
            while taken.contains(&name) {
                name = format!("{base}-{n}");
                n += 1;
            }
            if name != *input {
                let why = if reserved {
                    format!(
                        "the name `{base}` is reserved by stack's proxy; other services must \
                         reach it as `{name}`"
                    )
                } else {
                    "service names are lower-case letters, digits and `-`; the old name stays a \
                     network alias (`ALIASES`), so other services still reach it by it"
                        .to_string()
                };
                self.note(Some(input), "name", format!("renamed to `{name}`: {why}"));
            }
            taken.insert(name.clone());
            self.names.insert(input.clone(), name);
        }
        self.alias_services(services);
        self.old_names_in_use(services);
    }

    /// The extra host names each service answers to (project name → names), so every
    /// name the Compose file lets a container use still resolves: a renamed service's
    /// old name, its `container_name`, the aliases of its `networks` entries, and the
    /// alias another service gives it in `links` (`db:database`).
    fn alias_services(&mut self, services: &[(String, Node)]) {
        let mut wanted: Vec<(String, String, String)> = Vec::new();
        for (input, node) in services {
            let name = self.names[input].clone();
            if !name.eq_ignore_ascii_case(input)
                && !crate::import::is_reserved_service(input, self.uses_proxy)
            {
                wanted.push((name.clone(), input.clone(), "name".into()));
            }
            if let Some(container) = node.get("container_name").and_then(Node::scalar) {
                if let Some(container) = self.resolved(Some(input), "container_name", &container) {
                    self.note(
                        Some(input),
                        "container_name",
                        format!(
                            "`{container}` stays a network alias (`ALIASES`), so values naming it \
                             still resolve; stack names the containers `<project>-<service>-<n>` \
                             itself (a fixed name would clash between replicas, a rolling update's \
                             old and new container, and two projects or previews on one engine)"
                        ),
                    );
                    wanted.push((name.clone(), container, "container_name".into()));
                }
            }
            if let Some(Node::Map(networks)) = node.get("networks") {
                for (network, options) in networks {
                    if let Some(Node::Seq(aliases)) = options.get("aliases") {
                        for alias in aliases.iter().filter_map(Node::scalar) {
                            let key = format!("networks.{network}.aliases");
                            wanted.push((name.clone(), alias, key));
                        }
                    }
                }
            }
            for link in node.get("links").map(list_of).unwrap_or_default() {
                let (target, alias) = link.split_once(':').unwrap_or((&link, &link));
                match self.names.get(target) {
                    Some(project) => {
                        wanted.push((project.clone(), alias.to_string(), "links".into()))
                    }
                    None => self.finding(
                        Some(input),
                        "links",
                        format!("`{link}`: `{target}` is not a service of this file"),
                    ),
                }
            }
        }
        let own: BTreeSet<String> = self.names.values().cloned().collect();
        for (service, alias, key) in wanted {
            let taken = self
                .aliases
                .iter()
                .any(|(other, names)| *other != service && names.contains(&alias));
            let input = self
                .names
                .iter()
                .find(|(_, project)| **project == service)
                .map(|(input, _)| input.clone());
            if alias == service || own.contains(&alias) || taken {
                if alias != service {
                    self.finding(
                        input.as_deref(),
                        &key,
                        format!("`{alias}` is already the name of another service"),
                    );
                }
                continue;
            }
            if !is_alias(&alias) {
                self.finding(
                    input.as_deref(),
                    &key,
                    format!("`{alias}` is not a host name Docker's DNS can answer"),
                );
                continue;
            }
            self.aliases.entry(service).or_default().insert(alias);
        }
    }

    /// A renamed service's old name that cannot be an alias (stack's own `proxy`) written
    /// as a host in a value (`http://proxy:3128`) no longer reaches it. Each such value is
    /// listed as not carried, with the name to write instead.
    fn old_names_in_use(&mut self, services: &[(String, Node)]) {
        let renamed: Vec<(String, String)> = self
            .names
            .iter()
            .filter(|(a, b)| a != b && !self.aliases.get(*b).is_some_and(|set| set.contains(*a)))
            .filter(|(a, b)| !a.eq_ignore_ascii_case(b))
            .map(|(a, b)| (a.clone(), b.clone()))
            .collect();
        if renamed.is_empty() {
            return;
        }
        for (input, node) in services {
            let mut values: Vec<(String, String)> = pairs_opt(node.get("environment"))
                .into_iter()
                .filter_map(|(k, v)| v.map(|v| (format!("environment.{k}"), v)))
                .collect();
            for key in ["command", "entrypoint"] {
                match node.get(key) {
                    Some(Node::Seq(items)) => values.extend(
                        items
                            .iter()
                            .filter_map(Node::scalar)
                            .map(|v| (key.to_string(), v)),
                    ),
                    Some(other) => values.extend(other.scalar().map(|v| (key.to_string(), v))),
                    None => {}
                }
            }
            for (key, value) in values {
                for (old, new) in &renamed {
                    if names_host(&value, old) {
                        self.finding(
                            Some(input),
                            &key,
                            format!(
                                "it names the host `{old}`, which is `{new}` in the project \
                                 (stack's own service has the old name): write `{new}` there"
                            ),
                        );
                    }
                }
            }
        }
    }
}

/// A `links`-style list: scalars of a sequence.
fn list_of(node: &Node) -> Vec<String> {
    match node {
        Node::Seq(items) => items.iter().filter_map(Node::scalar).collect(),
        other => other.scalar().into_iter().collect(),
    }
}

/// A name `ALIASES` takes: letters, digits, `_`, `-`, `.`, from a letter or digit.
fn is_alias(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && name.len() <= 253
        && chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
}

/// Does `text` name `host` as a host: a word of it (`[A-Za-z0-9_.-]`) equal to it, not
/// a URL scheme (`redis://`).
pub(super) fn names_host(text: &str, host: &str) -> bool {
    let word = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-');
    let mut at = 0;
    for part in text.split(|c: char| !word(c)) {
        let end = at + part.len();
        if part == host && !text[end..].starts_with("://") {
            return true;
        }
        at = end + text[end..].chars().next().map_or(0, char::len_utf8);
    }
    false
}
