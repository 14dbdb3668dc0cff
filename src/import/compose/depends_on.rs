//! `depends_on` to `DEPENDS_ON`: conditions, jobs (`:completed`) and services left out.

use super::yaml::Node;
use super::{Import, ServiceDraft};

impl Import<'_> {
    pub(super) fn depends_on(&mut self, service: &mut ServiceDraft, node: &Node) {
        let input = service.input.clone();
        let mut names = Vec::new();
        match node.get("depends_on") {
            Some(Node::Seq(items)) => {
                for item in items.iter().filter_map(Node::scalar) {
                    if let Some(name) = self.dependency(&input, &item, "service_started", true) {
                        names.push(name);
                    }
                }
            }
            Some(Node::Map(entries)) => {
                for (name, options) in entries {
                    let condition = options
                        .get("condition")
                        .and_then(Node::scalar)
                        .unwrap_or_else(|| "service_started".into());
                    let required = !matches!(options.get("required"), Some(Node::Bool(false)));
                    if let Node::Map(keys) = options {
                        for (key, _) in keys {
                            if key != "condition" && key != "required" {
                                self.finding(
                                    Some(&input),
                                    &format!("depends_on.{name}.{key}"),
                                    "stack has no attribute for it",
                                );
                            }
                        }
                    }
                    if let Some(name) = self.dependency(&input, name, &condition, required) {
                        names.push(name);
                    }
                }
            }
            _ => {}
        }
        if !names.is_empty() {
            service.set("DEPENDS_ON", &names.join(","));
        }
    }

    /// The project name `input` waits for on `name`; `required: false` on a service that
    /// is not imported is skipped, as Compose skips it.
    fn dependency(
        &mut self,
        input: &str,
        name: &str,
        condition: &str,
        required: bool,
    ) -> Option<String> {
        let Some(target) = self.names.get(name).cloned() else {
            if !required {
                self.note(
                    Some(input),
                    &format!("depends_on.{name}"),
                    format!("`{name}` is not imported and the dependency is `required: false`: skipped, as Compose skips it"),
                );
                return None;
            }
            let why = match self.left_out.get(name) {
                Some(profiles) => format!(
                    "`{name}` is in profile(s) `{}`, not activated; import with `--profile {}`",
                    profiles.join("`, `"),
                    profiles.first().cloned().unwrap_or_default()
                ),
                None => "names no service of the file".into(),
            };
            self.finding(Some(input), &format!("depends_on.{name}"), why);
            return None;
        };
        let healthy = self.healthy.contains(&target);
        match condition {
            "service_healthy" if !healthy => self.finding(
                Some(input),
                &format!("depends_on.{name}"),
                "`service_healthy` on a service without a health check",
            ),
            "service_started" if healthy => self.note(
                Some(input),
                &format!("depends_on.{name}"),
                format!("stack waits until `{target}` is healthy, not only started (its `DEPENDS_ON` means ready)"),
            ),
            _ => {}
        }
        if self.jobs.contains(&target) {
            if condition != "service_completed_successfully" {
                self.note(
                    Some(input),
                    &format!("depends_on.{name}"),
                    format!("another service waits for `{target}` to complete: stack waits one way for a job, so this one waits until it exited with code 0 too (`{target}:completed`)"),
                );
            }
            return Some(format!("{target}:completed"));
        }
        Some(target)
    }
}
