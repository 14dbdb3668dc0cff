//! `image` and `build` (context, Dockerfile, target, arguments).

use super::yaml::Node;
use super::{is_key, is_secret_name, normalise, pairs, project_path, Import, ServiceDraft};

impl Import<'_> {
    pub(super) fn image_and_build(&mut self, service: &mut ServiceDraft, node: &Node) {
        let input = service.input.clone();
        if let Some(image) = node.get("image").and_then(Node::scalar) {
            let image = self.template(&image);
            service.set("IMAGE", &image);
        }
        let Some(build) = node.get("build") else {
            if node.get("image").is_none() {
                self.finding(
                    Some(&input),
                    "image",
                    "the service has neither `image` nor `build`",
                );
            }
            return;
        };
        let (context, spec) = match build {
            Node::Map(_) => (
                build
                    .get("context")
                    .and_then(Node::scalar)
                    .unwrap_or_else(|| ".".into()),
                Some(build),
            ),
            other => (other.scalar().unwrap_or_else(|| ".".into()), None),
        };
        if context.contains("://") || context.starts_with("git@") {
            self.finding(
                Some(&input),
                "build.context",
                "a remote build context; stack builds from a local folder",
            );
            return;
        }
        match self.resolved(Some(&input), "build.context", &context) {
            Some(context) => {
                let path = normalise(&self.dir.join(&context));
                service.set("BUILD", &project_path(&self.options.project_dir, &path));
            }
            None => {
                self.finding(
                    Some(&input),
                    "build.context",
                    "a build context with a variable that has no value in `.env` or a default",
                );
                return;
            }
        }
        let Some(spec) = spec else { return };
        let Node::Map(keys) = spec else { return };
        for (key, value) in keys {
            match key.as_str() {
                "context" => {}
                "dockerfile" => {
                    if let Some(file) = value.scalar() {
                        let file = self.template(&file);
                        service.set("DOCKERFILE", &file);
                    }
                }
                "target" => {
                    if let Some(target) = value.scalar() {
                        let target = self.template(&target);
                        service.set("BUILD_TARGET", &target);
                    }
                }
                "args" => self.build_args(service, value),
                other => self.finding(
                    Some(&input),
                    &format!("build.{other}"),
                    "stack builds with a context, a Dockerfile, a target and arguments only",
                ),
            }
        }
    }

    fn build_args(&mut self, service: &mut ServiceDraft, args: &Node) {
        let input = service.input.clone();
        for (name, value) in pairs(args) {
            let key = format!("build.args.{name}");
            let Some(value) = value else {
                self.finding(
                    Some(&input),
                    &key,
                    "an argument without a value takes it from the shell",
                );
                continue;
            };
            if !is_key(&name) {
                self.finding(
                    Some(&input),
                    &key,
                    "`BUILD_ARG_<NAME>` needs an upper-case name",
                );
                continue;
            }
            if is_secret_name(&name) {
                self.finding(
                    Some(&input),
                    &key,
                    "a secret in a build argument stays in the image's history; stack refuses it (use a build secret)",
                );
                continue;
            }
            let value = self.template(&value);
            service.set(&format!("BUILD_ARG_{name}"), &value);
        }
    }
}
