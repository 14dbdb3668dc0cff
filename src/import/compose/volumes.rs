//! `volumes` (short and long syntax) to `VOLUMES`, `tmpfs` to `TMPFS`; the top-level
//! volumes' options are listed.

use std::path::{Component, PathBuf};

use super::text::as_literal;
use super::yaml::Node;
use super::{normalise, project_path, Import, ServiceDraft};

impl Import<'_> {
    pub(super) fn top_volumes(&mut self, volumes: &Node) {
        let Node::Map(volumes) = volumes else { return };
        for (name, options) in volumes {
            let Node::Map(options) = options else {
                continue;
            };
            for (key, _) in options {
                self.finding(
                    None,
                    &format!("volumes.{name}.{key}"),
                    "stack declares named volumes with the engine's defaults (local driver, \
                     named `<project>_<volume>`)",
                );
            }
        }
    }

    pub(super) fn volumes(&mut self, service: &mut ServiceDraft, node: &Node) {
        let input = service.input.clone();
        let mut volumes = Vec::new();
        let mut tmpfs = Vec::new();
        if let Some(Node::Seq(items)) = node.get("volumes") {
            for item in items {
                match item {
                    Node::Map(_) => {
                        if let Some(text) = self.long_volume(&input, item, &mut tmpfs) {
                            volumes.push(text);
                        }
                    }
                    other => {
                        let Some(text) = other.scalar() else { continue };
                        if let Some(text) = self.short_volume(&input, &text) {
                            volumes.push(text);
                        }
                    }
                }
            }
        }
        match node.get("tmpfs") {
            Some(Node::Seq(items)) => tmpfs.extend(items.iter().filter_map(Node::scalar)),
            Some(other) => tmpfs.extend(other.scalar()),
            None => {}
        }
        if !volumes.is_empty() {
            service.set("VOLUMES", &volumes.join(","));
        }
        if !tmpfs.is_empty() {
            let tmpfs: Vec<String> = tmpfs.iter().map(|t| self.template(t)).collect();
            service.set("TMPFS", &tmpfs.join(","));
        }
    }

    /// `source:target[:mode]` with the source made a project path.
    fn short_volume(&mut self, input: &str, text: &str) -> Option<String> {
        let parts = super::text::split_outside_vars(text, ':');
        let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
        let (source, target, mode) = match parts.as_slice() {
            [target] => (None, *target, None),
            [source, target] => (Some(*source), *target, None),
            [source, target, mode] => (Some(*source), *target, Some(*mode)),
            _ => {
                self.finding(
                    Some(input),
                    "volumes",
                    format!("`{text}` is not `source:target[:mode]`"),
                );
                return None;
            }
        };
        let mut read_only = false;
        let mut options = Vec::new();
        let bind = source.is_some_and(|s| s.starts_with(['/', '.', '~']));
        for flag in mode
            .unwrap_or_default()
            .split(',')
            .filter(|f| !f.is_empty())
        {
            match flag {
                "ro" => read_only = true,
                "rw" => {}
                "cached" | "delegated" | "consistent" => self.note(
                    Some(input),
                    "volumes",
                    format!("mount option `{flag}` of `{target}`: a no-op on Linux (Docker Desktop's file sharing), left out"),
                ),
                _ if carried_option(flag, source.is_none(), bind) => options.push(flag.to_string()),
                other => self.finding(Some(input), "volumes", mount_option(other, target)),
            }
        }
        let text = self.mount(input, source, target, read_only)?;
        Some(with_options(text, &options, read_only))
    }

    pub(super) fn mount(
        &mut self,
        input: &str,
        source: Option<&str>,
        target: &str,
        read_only: bool,
    ) -> Option<String> {
        if target.contains(',') || source.is_some_and(|s| s.contains(',')) {
            self.finding(
                Some(input),
                "volumes",
                format!("`{target}`: a path with a comma cannot be listed in `VOLUMES`"),
            );
            return None;
        }
        let target = self.template(target);
        let mut text = match source {
            None => target,
            Some(source) => format!("{}:{target}", self.mount_source(input, source)?),
        };
        if read_only {
            text.push_str(":ro");
        }
        Some(text)
    }

    /// A mount's source as written: a path made a project path, a named volume or a
    /// template kept; `None` (listed) for a home folder that cannot be written.
    fn mount_source(&mut self, input: &str, source: &str) -> Option<String> {
        if let Some(shown) = self.relative_value(input, source) {
            return Some(shown);
        }
        if source == "~" || source.starts_with("~/") {
            return self.home_source(input, source, None);
        }
        if let Some(value) = self.home_value(source) {
            return self.home_source(input, &value, Some(source));
        }
        if source.starts_with('~') {
            self.finding(
                Some(input),
                "volumes",
                format!("`{source}`: another user's home folder; write it absolute"),
            );
            return None;
        }
        if source.starts_with('.') || source.starts_with('/') {
            if let Some(literal) = as_literal(source) {
                let path = normalise(&self.dir.join(literal));
                let shown = project_path(&self.options.project_dir, &path);
                return Some(super::text::escape_dollars(&shown));
            }
        }
        Some(self.template(source))
    }

    /// A source whose value (from `.env` or a default) is a relative path is relative to
    /// the Compose file's folder, and `stack.env` is read from the project's: the value,
    /// written as a project path (with a note).
    fn relative_value(&mut self, input: &str, source: &str) -> Option<String> {
        if as_literal(source).is_some() || self.dir == self.options.project_dir {
            return None;
        }
        let value = self.interpolate(source, 0).filter(|v| v.starts_with('.'))?;
        let path = normalise(&self.dir.join(&value));
        let shown = project_path(&self.options.project_dir, &path);
        self.note(
            Some(input),
            "volumes",
            format!(
                "`{source}` is `{value}`, relative to the Compose file's folder: written as \
                 `{shown}`, so a later change of `.env` is not followed"
            ),
        );
        Some(super::text::escape_dollars(&shown))
    }

    /// A source whose value (from `.env` or a default) is `~` or `~/…`: Compose expands
    /// the home folder after interpolation (`${UPLOAD_LOCATION}` with
    /// `UPLOAD_LOCATION=~/.affine/storage`), so the value is what is written.
    fn home_value(&mut self, source: &str) -> Option<String> {
        if as_literal(source).is_some() {
            return None;
        }
        self.interpolate(source, 0)
            .filter(|value| value == "~" || value.starts_with("~/"))
    }

    /// `~` or `~/…`: the home folder of the user importing, as Compose expands it.
    /// `template` is the interpolation the value came from, when it did (then a later
    /// change of `.env` is not followed, and the note says so).
    fn home_source(&mut self, input: &str, source: &str, template: Option<&str>) -> Option<String> {
        let Some(home) = self.options.home.clone() else {
            self.finding(
                Some(input),
                "volumes",
                format!("`{source}`: a path in the home folder, and `HOME` is not set; write it absolute"),
            );
            return None;
        };
        let rest = source.trim_start_matches('~').trim_start_matches('/');
        let path = normalise(&home.join(rest));
        let shown = project_path(&self.options.project_dir, &path);
        let message = match template {
            None => {
                format!("`{source}` is the home folder of the user importing: written as `{shown}`")
            }
            Some(template) => format!(
                "`{template}` is `{source}`, in the home folder of the user importing: written as \
                 `{shown}`, so a later change of `.env` is not followed"
            ),
        };
        self.note(Some(input), "volumes", message);
        Some(super::text::escape_dollars(&shown))
    }

    fn long_volume(&mut self, input: &str, item: &Node, tmpfs: &mut Vec<String>) -> Option<String> {
        let kind = item
            .get("type")
            .and_then(Node::scalar)
            .unwrap_or_else(|| "volume".into());
        let target = item.get("target").and_then(Node::scalar)?;
        let source = item.get("source").and_then(Node::scalar);
        let read_only = matches!(item.get("read_only"), Some(Node::Bool(true)));
        let mut options = Vec::new();
        if let Node::Map(entries) = item {
            for (key, value) in entries {
                match (key.as_str(), value) {
                    ("type" | "source" | "target" | "read_only", _) => {}
                    ("bind" | "volume", Node::Map(entries)) if kind == key.as_str() => {
                        options.extend(self.long_options(input, key, entries, &target));
                    }
                    ("tmpfs", _) if kind == "tmpfs" => {}
                    ("consistency", _) => self.note(
                        Some(input),
                        "volumes.consistency",
                        format!("`consistency` of `{target}`: a no-op on Linux (Docker Desktop's file sharing), left out"),
                    ),
                    ("content", Node::Str(_)) if kind == "bind" => {}
                    (other, _) => self.finding(
                        Some(input),
                        &format!("volumes.{other}"),
                        format!("mount option `{other}` of `{target}`: stack mounts read-write or read-only only"),
                    ),
                }
            }
        }
        match kind.as_str() {
            "tmpfs" => {
                let size = item
                    .get("tmpfs")
                    .and_then(|t| t.get("size"))
                    .and_then(Node::scalar);
                let mode = item
                    .get("tmpfs")
                    .and_then(|t| t.get("mode"))
                    .and_then(Node::scalar);
                let mut options = Vec::new();
                if let Some(size) = size {
                    options.push(format!("size={size}"));
                }
                if let Some(mode) = mode {
                    options.push(format!("mode={mode}"));
                }
                if options.is_empty() {
                    tmpfs.push(target);
                } else {
                    tmpfs.push(format!("{target}:{}", options.join(",")));
                }
                None
            }
            "bind" => {
                let content = item.get("content").and_then(Node::scalar);
                let source = match content {
                    Some(content) => Some(self.bind_content(input, source.as_deref(), &content)?),
                    None => source,
                };
                let text = self.mount(input, source.as_deref(), &target, read_only)?;
                Some(with_options(text, &options, read_only))
            }
            "volume" => {
                let text = self.mount(input, source.as_deref(), &target, read_only)?;
                Some(with_options(text, &options, read_only))
            }
            other => {
                self.finding(
                    Some(input),
                    "volumes",
                    format!("a `{other}` mount of `{target}`"),
                );
                None
            }
        }
    }
}

impl Import<'_> {
    /// Coolify's `content:` in a bind mount: the file's text, which Coolify writes to the
    /// source before it starts the service. Written now at the same path in the project
    /// (`./config/x.yml` beside the Compose file is `./config/x.yml` in the project), which
    /// becomes the mount's source; `None` (listed) for a source that is not such a path.
    fn bind_content(&mut self, input: &str, source: Option<&str>, content: &str) -> Option<String> {
        let relative = source
            .and_then(as_literal)
            .map(PathBuf::from)
            .filter(|p| p.is_relative() && !p.components().any(|c| c == Component::ParentDir))
            .map(|p| normalise(&p))
            .filter(|p| !p.as_os_str().is_empty());
        let Some(relative) = relative else {
            self.finding(
                Some(input),
                "volumes.content",
                "the file's text (Coolify's `content:`) is written only for a relative source below the Compose file's folder; write the file yourself",
            );
            return None;
        };
        let rest = relative.to_string_lossy().into_owned();
        if matches!(self.reader.read(&self.dir.join(&relative)), Ok(Some(_))) {
            // The file is there already (Coolify wrote it): mounted as it is.
            return source.map(str::to_string);
        }
        if !self.config_files.iter().any(|f| f.path == rest) {
            self.note(
                Some(input),
                "volumes.content",
                format!("the bind mount's text (Coolify's `content:`) is written to `./{rest}` in the project"),
            );
            self.config_files.push(super::OutFile {
                path: rest,
                contents: content.to_string(),
                mode: 0o644,
            });
        }
        let absolute = self.options.project_dir.join(&relative);
        Some(absolute.to_string_lossy().into_owned())
    }
}

impl Import<'_> {
    /// The long syntax's `bind:` (`propagation`, `selinux`, `create_host_path`) or
    /// `volume:` (`nocopy`, `subpath`) options as `VOLUMES` words; the others listed.
    fn long_options(
        &mut self,
        input: &str,
        kind: &str,
        entries: &[(String, Node)],
        target: &str,
    ) -> Vec<String> {
        let mut words = Vec::new();
        for (key, value) in entries {
            let word = value.scalar().unwrap_or_default();
            let why = match (kind, key.as_str(), value) {
                ("bind", "create_host_path", Node::Bool(true)) => continue,
                ("volume", "nocopy", Node::Bool(false)) => continue,
                ("volume", "nocopy", Node::Bool(true)) => {
                    words.push("nocopy".to_string());
                    continue;
                }
                ("bind", "propagation" | "selinux", _)
                    if carried_option(&word, false, true) =>
                {
                    words.push(word);
                    continue;
                }
                ("bind", "create_host_path", _) => "stack binds as `docker run -v` does, which creates a missing host folder: create it yourself if its absence must stop the service".to_string(),
                ("volume", "subpath", _) => "stack mounts a whole volume: a volume's subpath needs the engine's API 1.45 (Docker 26), and stack supports engines from 1.41; mount the volume at a parent path, or use a bind".to_string(),
                _ => "stack has no such mount option".to_string(),
            };
            self.finding(
                Some(input),
                &format!("volumes.{kind}.{key}"),
                format!("`{key}` of `{target}`: {why}"),
            );
        }
        words
    }
}

/// A short-syntax option `VOLUMES` carries: `z`/`Z` (not on an anonymous volume), a
/// bind's propagation, a named volume's `nocopy`.
fn carried_option(option: &str, anonymous: bool, bind: bool) -> bool {
    match option {
        "z" | "Z" => !anonymous,
        "nocopy" => !bind,
        _ => bind && crate::config::PROPAGATIONS.contains(&option),
    }
}

/// `text` (a `VOLUMES` item, `:ro` already appended when `read_only`) with `options`
/// after it, comma-separated.
fn with_options(mut text: String, options: &[String], read_only: bool) -> String {
    if !options.is_empty() {
        text.push(if read_only { ',' } else { ':' });
        text.push_str(&options.join(","));
    }
    text
}

/// Why a short-syntax mount option is not carried, and what to do instead.
fn mount_option(option: &str, target: &str) -> String {
    let why = match option {
        "z" | "Z" => "an anonymous volume is not relabelled: name it to relabel it",
        "nocopy" => "`nocopy` is a named volume's option; a bind has nothing to copy",
        _ if crate::config::PROPAGATIONS.contains(&option) => {
            "propagation is a bind's option, not a volume's"
        }
        _ => "stack has no such mount option",
    };
    format!("mount option `{option}` of `{target}`: {why}")
}
