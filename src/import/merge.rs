//! Compose's own inputs, read the way Compose reads them before a service is looked at:
//! several files merged in order (`compose.yaml` + `compose.override.yaml`, `-f a -f b`),
//! top-level `include`, `extends` (in the same file or another one), and `profiles`.
//! Paths of a file in another folder are made absolute, as Compose resolves them against
//! the folder of the file that names them.

use std::path::Path;

use super::normalise;
use super::yaml::Node;

/// Service keys whose lists are replaced, not merged, by a later file.
const REPLACED: &[&str] = &["command", "entrypoint", "test", "dns", "dns_search"];
/// Service keys written as `KEY=VALUE` lists or mappings: merged by key.
const KEYED: &[&str] = &["environment", "labels", "sysctls", "extra_hosts", "args"];
/// Service keys whose entries are merged by their target path.
const BY_TARGET: &[&str] = &["volumes", "secrets", "configs"];

/// `over` merged into `base` as Compose merges files: mappings by key (recursively),
/// `environment`-like lists by variable, mounts by target, `ports`-like lists appended
/// (without repeats), `command`/`entrypoint` and scalars replaced.
pub fn merge(base: &mut Node, over: Node, key: &str) {
    match (base, over) {
        (Node::Map(base), Node::Map(over)) => {
            for (k, value) in over {
                match base.iter_mut().find(|(bk, _)| *bk == k) {
                    Some((_, existing)) => merge(existing, value, &k),
                    None => base.push((k, value)),
                }
            }
        }
        (base, over) if KEYED.contains(&key) || key == "depends_on" => {
            let mut merged = keyed(base, key == "depends_on");
            merge(&mut merged, keyed(&over, key == "depends_on"), "");
            *base = merged;
        }
        (Node::Seq(base), Node::Seq(over)) if BY_TARGET.contains(&key) => {
            for item in over {
                let target = mount_target(&item);
                match base
                    .iter_mut()
                    .find(|b| target.is_some() && mount_target(b) == target)
                {
                    Some(existing) => *existing = item,
                    None => base.push(item),
                }
            }
        }
        (Node::Seq(base), Node::Seq(over)) if !REPLACED.contains(&key) => {
            for item in over {
                if !base.contains(&item) {
                    base.push(item);
                }
            }
        }
        (base, over) => *base = over,
    }
}

/// A `KEY=VALUE` list (or a dependency list) as a mapping.
fn keyed(node: &Node, dependencies: bool) -> Node {
    match node {
        Node::Seq(items) => Node::Map(
            items
                .iter()
                .filter_map(Node::scalar)
                .map(|item| {
                    if dependencies {
                        let condition = Node::Str("service_started".into());
                        return (item, Node::Map(vec![("condition".into(), condition)]));
                    }
                    match item.split_once('=') {
                        Some((k, v)) => (k.to_string(), Node::Str(v.to_string())),
                        None => (item, Node::Null),
                    }
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

/// The container path of a mount (short or long syntax), or a secret's source.
fn mount_target(item: &Node) -> Option<String> {
    match item {
        Node::Map(_) => item
            .get("target")
            .or_else(|| item.get("source"))
            .and_then(Node::scalar),
        other => {
            let text = other.scalar()?;
            let parts = super::text::split_outside_vars(&text, ':');
            Some(match parts.as_slice() {
                [one] => one.clone(),
                [_, target, ..] => target.clone(),
                [] => return None,
            })
        }
    }
}

/// Relative paths of a service read from `dir` (another folder than the main file's)
/// made absolute: `build`, `env_file`, bind mounts and an `extends` file.
pub fn rebase_service(service: &mut Node, dir: &Path) {
    let Node::Map(entries) = service else { return };
    let local = |text: &str| text.starts_with('.') && !text.contains("://");
    let absolute =
        |text: &str| -> String { normalise(&dir.join(text)).to_string_lossy().into_owned() };
    for (key, value) in entries.iter_mut() {
        match key.as_str() {
            "build" => match value {
                Node::Str(context) if !context.contains("://") => {
                    *context = absolute(context);
                }
                Node::Map(build) => match build.iter_mut().find(|(k, _)| k == "context") {
                    Some((_, Node::Str(context))) if !context.contains("://") => {
                        *context = absolute(context);
                    }
                    Some(_) => {}
                    None => build.push(("context".into(), Node::Str(absolute(".")))),
                },
                _ => {}
            },
            "env_file" => match value {
                Node::Str(path) => *path = absolute(path),
                Node::Seq(items) => {
                    for item in items {
                        match item {
                            Node::Str(path) => *path = absolute(path),
                            Node::Map(file) => {
                                if let Some((_, Node::Str(path))) =
                                    file.iter_mut().find(|(k, _)| k == "path")
                                {
                                    *path = absolute(path);
                                }
                            }
                            _ => {}
                        }
                    }
                }
                _ => {}
            },
            "volumes" => {
                let Node::Seq(items) = value else { continue };
                for item in items {
                    match item {
                        Node::Str(text) => {
                            let parts = super::text::split_outside_vars(text, ':');
                            if parts.len() >= 2 && local(&parts[0]) {
                                let mut parts = parts.clone();
                                parts[0] = absolute(&parts[0]);
                                *text = parts.join(":");
                            }
                        }
                        Node::Map(mount) => {
                            if let Some((_, Node::Str(source))) =
                                mount.iter_mut().find(|(k, _)| k == "source")
                            {
                                if local(source) {
                                    *source = absolute(source);
                                }
                            }
                        }
                        _ => {}
                    }
                }
            }
            "extends" => {
                if let Node::Map(extends) = value {
                    if let Some((_, Node::Str(file))) =
                        extends.iter_mut().find(|(k, _)| k == "file")
                    {
                        *file = absolute(file);
                    }
                }
            }
            _ => {}
        }
    }
}

/// Top-level `secrets` (and `configs`) `file:` paths made absolute against `dir`.
pub fn rebase_top(doc: &mut Node, dir: &Path) {
    let Node::Map(top) = doc else { return };
    for (key, value) in top.iter_mut() {
        if key == "services" {
            if let Node::Map(services) = value {
                for (_, service) in services.iter_mut() {
                    rebase_service(service, dir);
                }
            }
            continue;
        }
        if key != "secrets" && key != "configs" {
            continue;
        }
        let Node::Map(entries) = value else { continue };
        for (_, spec) in entries.iter_mut() {
            let Node::Map(spec) = spec else { continue };
            if let Some((_, Node::Str(file))) = spec.iter_mut().find(|(k, _)| k == "file") {
                *file = normalise(&dir.join(&*file)).to_string_lossy().into_owned();
            }
        }
    }
}

/// The profiles a service is in (none: it is in the default set).
pub fn profiles(service: &Node) -> Vec<String> {
    match service.get("profiles") {
        Some(Node::Seq(items)) => items.iter().filter_map(Node::scalar).collect(),
        Some(other) => other.scalar().into_iter().collect(),
        None => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::import::yaml::parse;

    #[test]
    fn files_merge_as_compose_merges_them() {
        let mut base = parse(
            "services:\n  web:\n    image: a\n    command: [a, b]\n    ports: ['80:80']\n    environment: [A=1, B=2]\n    volumes: ['./x:/data', 'v:/v']\n    depends_on: [db]\n",
        )
        .unwrap();
        let over = parse(
            "services:\n  web:\n    image: b\n    command: [c]\n    ports: ['443:443', '80:80']\n    environment:\n      B: 3\n    volumes: ['./y:/data']\n    depends_on:\n      cache:\n        condition: service_healthy\n  worker:\n    image: w\n",
        )
        .unwrap();
        merge(&mut base, over, "");
        let web = base.get("services").unwrap().get("web").unwrap();
        assert_eq!(web.get("image"), Some(&Node::Str("b".into())));
        assert_eq!(
            web.get("command"),
            Some(&Node::Seq(vec![Node::Str("c".into())]))
        );
        assert_eq!(
            web.get("ports"),
            Some(&Node::Seq(vec![
                Node::Str("80:80".into()),
                Node::Str("443:443".into())
            ]))
        );
        assert_eq!(
            web.get("environment").unwrap().get("A"),
            Some(&Node::Str("1".into()))
        );
        assert_eq!(
            web.get("environment").unwrap().get("B"),
            Some(&Node::Int(3))
        );
        assert_eq!(
            web.get("volumes"),
            Some(&Node::Seq(vec![
                Node::Str("./y:/data".into()),
                Node::Str("v:/v".into())
            ]))
        );
        let deps = web.get("depends_on").unwrap();
        assert!(deps.get("db").is_some() && deps.get("cache").is_some());
        assert!(base.get("services").unwrap().get("worker").is_some());
    }
}
