//! `volumes_from`: the same mounts as the named service, written into the service's own
//! `VOLUMES` once every service is translated (so the source may come later in the
//! file). Docker shares a container's mount points: its named volumes and binds, at the
//! same targets, read-only with `:ro` or where the source's is; tmpfs is not shared. An
//! anonymous volume cannot be shared in stack (each container gets its own), so it is
//! listed with the name to give it; `container:NAME` is a container outside the project.

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
                self.finding(
                    Some(input),
                    "volumes_from",
                    format!("`{name}`'s anonymous volume `{item}` cannot be shared: stack gives each container its own; name it in both services (`{}-data:{item}`)", name),
                );
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

/// The items of a draft's `VOLUMES`.
fn mounts_of(draft: &ServiceDraft) -> Vec<String> {
    let items = draft
        .get("VOLUMES")
        .map(|v| super::text::split_outside_vars(v, ','));
    items.unwrap_or_default()
}

/// A `VOLUMES` item's target; `None` for an anonymous volume (a target alone).
fn target_of(item: &str) -> Option<String> {
    let parts = super::text::split_outside_vars(item, ':');
    (parts.len() >= 2).then(|| parts[1].clone())
}
