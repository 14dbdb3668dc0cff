//! `volumes_from`: the same mounts as the named service, written into the service's own
//! `VOLUMES` once every service is translated (so the source may come later in the
//! file). Docker shares a container's mount points: its named volumes and binds, at the
//! same targets, read-only with `:ro` or where the source's is; tmpfs is not shared. An
//! anonymous volume of a shared service becomes a named volume of both (stack gives each
//! new container its own anonymous volumes, so sharing needs a name), with a note;
//! `container:NAME` is a container outside the project.

use super::yaml::Node;
use super::{Import, ServiceDraft};

/// How deep `volumes_from` chains are followed (a loop stops there).
const MAX_DEPTH: usize = 8;

impl Import<'_> {
    pub(super) fn volumes_from(
        &mut self,
        drafts: &mut [ServiceDraft],
        services: &[(String, Node)],
    ) {
        self.name_shared_anonymous(drafts, services);
        let own: Vec<Vec<String>> = drafts.iter().map(mounts_of).collect();
        for (i, (input, node)) in services.iter().enumerate() {
            let Some(Node::Seq(entries)) = node.get("volumes_from") else {
                continue;
            };
            let mut mounts = own[i].clone();
            for entry in entries.iter().filter_map(Node::scalar) {
                let added = self.shared(input, &entry, &own, services, 0);
                for (item, target) in added {
                    if !mounts
                        .iter()
                        .any(|m| target_of(m).as_deref() == Some(&target))
                    {
                        mounts.push(item);
                    }
                }
            }
            if mounts.len() > own[i].len() {
                drafts[i].replace("VOLUMES", &mounts.join(","));
            }
        }
    }

    /// The mounts (`VOLUMES` item, target) that `entry` (`service[:ro|:rw]`) shares.
    fn shared(
        &mut self,
        input: &str,
        entry: &str,
        own: &[Vec<String>],
        services: &[(String, Node)],
        depth: usize,
    ) -> Vec<(String, String)> {
        let (name, mode) = match entry.rsplit_once(':') {
            Some((name, mode)) if mode == "ro" || mode == "rw" => (name, mode),
            _ => (entry, "rw"),
        };
        if let Some(container) = name.strip_prefix("container:") {
            self.finding(
                Some(input),
                "volumes_from",
                format!("`{entry}`: `{container}` is a container outside the project; mount the same named volumes with `VOLUMES` instead"),
            );
            return Vec::new();
        }
        let Some(j) = services.iter().position(|(n, _)| n == name) else {
            self.finding(
                Some(input),
                "volumes_from",
                format!("`{entry}`: no service `{name}` is imported"),
            );
            return Vec::new();
        };
        let mut out = Vec::new();
        for item in &own[j] {
            let Some(target) = target_of(item) else {
                continue;
            };
            let item = if mode == "ro" && !item.ends_with(":ro") {
                format!("{item}:ro")
            } else {
                item.clone()
            };
            out.push((item, target));
        }
        if let Some(Node::Seq(chained)) = services[j].1.get("volumes_from") {
            if depth < MAX_DEPTH {
                for next in chained.iter().filter_map(Node::scalar) {
                    out.extend(self.shared(input, &next, own, services, depth + 1));
                }
            }
        }
        out
    }
}

impl Import<'_> {
    /// Give every anonymous volume of a service that another shares with `volumes_from`
    /// (directly or along a chain) a name, `<service>-<path>`, so both mount one volume.
    fn name_shared_anonymous(&mut self, drafts: &mut [ServiceDraft], services: &[(String, Node)]) {
        let mut shared = std::collections::BTreeSet::new();
        let mut queue: Vec<(String, usize)> = services
            .iter()
            .filter_map(|(_, node)| match node.get("volumes_from") {
                Some(Node::Seq(entries)) => Some(entries.iter().filter_map(Node::scalar)),
                _ => None,
            })
            .flatten()
            .map(|entry| (entry, 0))
            .collect();
        while let Some((entry, depth)) = queue.pop() {
            let name = entry.rsplit_once(':').map_or(entry.as_str(), |(n, mode)| {
                if mode == "ro" || mode == "rw" {
                    n
                } else {
                    entry.as_str()
                }
            });
            let Some(j) = services.iter().position(|(n, _)| n == name) else {
                continue;
            };
            if !shared.insert(j) || depth >= MAX_DEPTH {
                continue;
            }
            if let Some(Node::Seq(chained)) = services[j].1.get("volumes_from") {
                queue.extend(
                    chained
                        .iter()
                        .filter_map(Node::scalar)
                        .map(|e| (e, depth + 1)),
                );
            }
        }
        for j in shared {
            let (input, _) = &services[j];
            let service = self.names.get(input).cloned().unwrap_or(input.clone());
            let mut mounts = mounts_of(&drafts[j]);
            let mut named = Vec::new();
            for item in mounts.iter_mut().filter(|m| target_of(m).is_none()) {
                let volume = volume_name(&service, item);
                named.push(format!("`{item}` as `{volume}`"));
                *item = format!("{volume}:{item}");
            }
            if named.is_empty() {
                continue;
            }
            drafts[j].replace("VOLUMES", &mounts.join(","));
            self.note(
                Some(input),
                "volumes",
                format!(
                    "an anonymous volume another service shares with `volumes_from` is named, so both mount the same one (stack gives each new container its own anonymous volumes): {}",
                    named.join(", ")
                ),
            );
        }
    }
}

/// `<service>-<path>` for an anonymous volume at `target`: `app` and `/var/lib/data` →
/// `app-var-lib-data` (letters, digits and `-`, as a volume name takes them).
fn volume_name(service: &str, target: &str) -> String {
    let path: Vec<&str> = target
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|part| !part.is_empty())
        .collect();
    let mut name = format!("{service}-{}", path.join("-"));
    name.truncate(128);
    name.trim_end_matches('-').to_string()
}

/// The items of a draft's `VOLUMES` (an option word after `:ro` continues its item).
fn mounts_of(draft: &ServiceDraft) -> Vec<String> {
    let items = draft
        .get("VOLUMES")
        .map(|v| super::text::split_outside_vars(v, ','));
    let mut out: Vec<String> = Vec::new();
    for item in items.unwrap_or_default() {
        match out.last_mut() {
            Some(last) if crate::config::continues_volume_entry(last, &item) => {
                last.push(',');
                last.push_str(&item);
            }
            _ => out.push(item),
        }
    }
    out
}

/// A `VOLUMES` item's target; `None` for an anonymous volume (a target alone).
fn target_of(item: &str) -> Option<String> {
    let parts = super::text::split_outside_vars(item, ':');
    (parts.len() >= 2).then(|| parts[1].clone())
}
