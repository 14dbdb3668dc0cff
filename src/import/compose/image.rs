//! `image` and `build` (context, Dockerfile, target, arguments).

use super::text::{as_literal, references};
use super::yaml::Node;
use super::{
    embeds_credentials, is_key, is_secret_name, normalise, pairs, project_path, Import,
    ServiceDraft,
};
use std::path::Path;

use crate::config::values::escape_item;

impl Import<'_> {
    pub(super) fn image_and_build(&mut self, service: &mut ServiceDraft, node: &Node) {
        let input = service.input.clone();
        if let Some(policy) = node.get("pull_policy").and_then(Node::scalar) {
            self.pull_policy(service, &policy, node.get("build").is_some());
        }
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
        let context = match self.resolved(Some(&input), "build.context", &context) {
            Some(context) => {
                let path = normalise(&self.dir.join(&context));
                service.set("BUILD", &project_path(&self.options.project_dir, &path));
                path
            }
            None => {
                self.finding(
                    Some(&input),
                    "build.context",
                    "a build context with a variable that has no value in `.env` or a default",
                );
                return;
            }
        };
        let Some(spec) = spec else { return };
        let Node::Map(keys) = spec else { return };
        for (key, value) in keys {
            match key.as_str() {
                "context" => {}
                "dockerfile" => {
                    if let Some(file) = value.scalar() {
                        self.dockerfile(service, &context, &file);
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

    /// `build.dockerfile` as `DOCKERFILE`, relative to the context; one outside the context
    /// (Compose accepts it, stack's `DOCKERFILE` does not) is listed instead.
    fn dockerfile(&mut self, service: &mut ServiceDraft, context: &Path, file: &str) {
        let file = self.template(file);
        if file.contains('$') {
            // A variable stack keeps: the project-file reader checks it once it has a value.
            return service.set("DOCKERFILE", &file);
        }
        let full = normalise(&context.join(&file));
        match full.strip_prefix(context) {
            // A relative path stays as written (`./docker/Dockerfile`: what Compose shows);
            // an absolute one inside the context becomes relative to it.
            Ok(inside) if !inside.as_os_str().is_empty() && Path::new(&file).is_relative() => {
                service.set("DOCKERFILE", &file)
            }
            Ok(inside) if !inside.as_os_str().is_empty() => {
                service.set("DOCKERFILE", &inside.to_string_lossy());
            }
            _ => {
                let input = service.input.clone();
                self.finding(
                    Some(&input),
                    "build.dockerfile",
                    format!("`{file}` is outside the build context; stack builds with a Dockerfile inside it (move the file into the context)"),
                );
            }
        }
    }

    /// `pull_policy`: `always`, `never` and `build` (on a built service) as
    /// `PULL_POLICY`; `missing`/`if_not_present` is stack's default; schedules are listed.
    fn pull_policy(&mut self, service: &mut ServiceDraft, policy: &str, builds: bool) {
        let input = service.input.clone();
        let why = match (policy, builds) {
            ("missing" | "if_not_present", _) => {
                let note = format!("`{policy}` is what stack does anyway: it pulls an image only when it is missing and builds a `BUILD` service when its image is missing");
                return self.note(Some(&input), "pull_policy", note);
            }
            ("always" | "never", false) | ("build", true) => {
                return service.set("PULL_POLICY", policy);
            }
            ("always" | "never", true) => "the service is built (`build`): stack builds its image when it is missing, or at every start with `build`",
            ("build", false) => "the service has no `build` section to build from",
            _ => "a pull schedule: Compose v1, which checks stack's bundle, has none and stack records no pull times; write `always` to pull at every start, or pin the tag",
        };
        self.finding(Some(&input), "pull_policy", format!("`{policy}`: {why}"));
    }

    fn build_args(&mut self, service: &mut ServiceDraft, args: &Node) {
        let input = service.input.clone();
        // Names `BUILD_ARG_<NAME>` cannot spell (`uid`, `recorder_version`) go to the list.
        let mut listed = Vec::new();
        for (name, value) in pairs(args) {
            let key = format!("build.args.{name}");
            let plain = is_key(&name);
            if !plain && (name.contains('=') || name.chars().any(char::is_whitespace)) {
                self.finding(
                    Some(&input),
                    &key,
                    "`BUILD_ARGS` cannot hold a name with `=` or a blank",
                );
                continue;
            }
            // Without a value Compose takes it from the shell (or `.env`), as `${NAME}` does.
            let value = value.unwrap_or_else(|| {
                if !self.dotenv.contains_key(&name) {
                    self.note(
                        Some(&input),
                        &key,
                        format!("without a value: `${{{name}}}`, read from `.env` or the environment stack runs in, as Compose reads it from the shell"),
                    );
                }
                format!("${{{name}}}")
            });
            if as_literal(&value).is_some_and(|v| v.is_empty()) {
                // Empty is empty, whatever the name: nothing secret to keep out of the image.
                match plain {
                    true => service.set(&format!("BUILD_ARG_{name}"), ""),
                    false => listed.push(escape_item(&format!("{name}="))),
                }
                continue;
            }
            // A secret by its name, a password in a URL, or a reference to either.
            let secret_literal = as_literal(&value)
                .is_some_and(|literal| is_secret_name(&name) || embeds_credentials(&literal));
            if secret_literal || self.passes_secret(&value) {
                self.finding(
                    Some(&input),
                    &key,
                    "a secret in a build argument stays in the image's history, so stack refuses it; \
                     pass it at run time (`ENV_<NAME>`) or as a build secret",
                );
                continue;
            }
            let value = self.template(&value);
            if plain {
                service.set(&format!("BUILD_ARG_{name}"), &value);
            } else if value.trim() != value {
                self.finding(
                    Some(&input),
                    &key,
                    "`BUILD_ARGS` (for a name `BUILD_ARG_<NAME>` cannot spell) cannot hold a value that starts or ends with a blank",
                );
            } else {
                // `\,` keeps a comma inside the item.
                listed.push(self.list_item(&input, &key, &format!("{name}={value}")));
            }
        }
        if !listed.is_empty() {
            service.set("BUILD_ARGS", &listed.join(","));
        }
    }

    /// Whether `value` interpolates a variable the project will hold as a secret: one
    /// whose name says so and that has a value (in `.env` or a default), or whose `.env`
    /// value embeds a password in a URL.
    fn passes_secret(&self, value: &str) -> bool {
        references(value).iter().any(|name| {
            let dotenv = self
                .dotenv
                .get(name)
                .and_then(|(template, _)| self.interpolate(template, 0));
            let has_default =
                value.contains(&format!("${{{name}:-")) || value.contains(&format!("${{{name}-"));
            let valued = dotenv.as_deref().is_some_and(|v| !v.is_empty()) || has_default;
            (is_secret_name(name) && valued)
                || dotenv.as_deref().is_some_and(embeds_credentials)
                || self.secrets.get(name).is_some_and(Option::is_some)
        })
    }
}
