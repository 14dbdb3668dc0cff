//! `configs`: each config a service names becomes a read-only file mount in `VOLUMES`,
//! as Compose mounts it outside swarm. A `file:` config mounts that file; a `content:` or
//! `environment:` config is written now to `configs/<name>` in the project (its mode the
//! long syntax's `mode`, else 0444 as Compose gives it) and that file is mounted.
//! `uid`/`gid` cannot be given to a bind mount (the file keeps its owner), and an
//! `external` config lives in a swarm: both are listed.

use super::yaml::Node;
use super::{is_secret_name, normalise, Import, OutFile, ServiceDraft};

/// Where a written config goes, relative to the project.
const CONFIGS_DIR: &str = "configs";

impl Import<'_> {
    pub(super) fn configs(&mut self, service: &mut ServiceDraft, node: &Node) {
        let Some(Node::Seq(entries)) = node.get("configs") else {
            return;
        };
        let input = service.input.clone();
        let mut mounts: Vec<String> = Vec::new();
        for entry in entries {
            let (source, target, mode) = match entry {
                Node::Map(_) => {
                    for key in ["uid", "gid"] {
                        if entry.get(key).is_some() {
                            self.finding(
                                Some(&input),
                                &format!("configs.{key}"),
                                "a bind-mounted file keeps its owner on the host: `chown` it there",
                            );
                        }
                    }
                    let Some(source) = entry.get("source").and_then(Node::scalar) else {
                        continue;
                    };
                    let target = entry.get("target").and_then(Node::scalar);
                    (source, target, entry.get("mode").and_then(octal))
                }
                other => match other.scalar() {
                    Some(source) => (source, None, None),
                    None => continue,
                },
            };
            let target = target.unwrap_or_else(|| format!("/{source}"));
            let target = if target.starts_with('/') {
                target
            } else {
                format!("/{target}")
            };
            if let Some(host) = self.config_source(&input, &source, mode) {
                mounts.extend(self.mount(&input, Some(&host), &target, true));
            }
        }
        if mounts.is_empty() {
            return;
        }
        let mut all: Vec<String> = service
            .get("VOLUMES")
            .map(str::to_string)
            .into_iter()
            .collect();
        all.extend(mounts);
        service.replace("VOLUMES", &all.join(","));
    }

    /// The host file a config named `name` is mounted from (`./…`), written into the project
    /// for `content:` and `environment:`; `None` (listed) when it cannot be.
    fn config_source(&mut self, input: &str, name: &str, mode: Option<u32>) -> Option<String> {
        let top = self
            .top_doc_configs
            .as_ref()
            .and_then(|c| c.get(name))
            .cloned();
        let Some(top) = top else {
            self.finding(
                Some(input),
                "configs",
                format!("`{name}` is not a top-level config"),
            );
            return None;
        };
        if let Some(file) = top.get("file").and_then(Node::scalar) {
            return Some(file);
        }
        let contents = if let Some(content) = top.get("content").and_then(Node::scalar) {
            // Compose interpolates `content:` when it reads the file.
            self.interpolate(&content, 0).unwrap_or(content)
        } else if let Some(var) = top.get("environment").and_then(Node::scalar) {
            if is_secret_name(&var) {
                self.finding(Some(input), "configs", format!("`{name}` is the value of `{var}`, a secret: stack never writes a secret into the project's files; make it a `secrets:` entry"));
                return None;
            }
            self.interpolate(&format!("${{{var}}}"), 0)
                .unwrap_or_default()
        } else {
            self.finding(Some(input), "configs", format!("`{name}`: only `file`, `content` and `environment` configs can be carried (an `external` one lives in a swarm)"));
            return None;
        };
        let path = format!("{CONFIGS_DIR}/{name}");
        if !self.config_files.iter().any(|f| f.path == path) {
            self.note(Some(input), "configs", format!("`{name}` is written to `{path}` (from the Compose file's text, now: a later change of `.env` is not followed)"));
            self.config_files.push(OutFile {
                path: path.clone(),
                contents,
                mode: mode.unwrap_or(0o444),
            });
        }
        // Absolute, since a mount source is read from the Compose file's folder; `mount`
        // writes it as a project path (`./configs/<name>`).
        let absolute = normalise(&self.options.project_dir.join(&path));
        Some(absolute.to_string_lossy().into_owned())
    }
}

/// A file mode as Compose writes it: octal digits (`0440`) or its decimal value (`288`).
fn octal(node: &Node) -> Option<u32> {
    match node {
        Node::Int(n) => u32::try_from(*n).ok(),
        other => u32::from_str_radix(other.scalar()?.trim_start_matches("0o"), 8).ok(),
    }
}
