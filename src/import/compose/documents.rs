//! Reading the documents as Compose reads them: the file, its `include`s and
//! `extends`, the files merged over it (`-f`, `compose.override.yaml`), bounded in depth
//! and count; and the check that the result is a Compose file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::yaml::{Locator, Node};
use super::{input_error, normalise, Diagnostic, Error, Finding, Options, Reader, Result};

/// Read and parse one Compose file, and check that it is one.
fn read_doc(reader: &dyn Reader, path: &Path) -> Result<(String, Node)> {
    let shown = path.display().to_string();
    let source = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "compose file".into());
    let Some(text) = reader.read(path)? else {
        return Err(Diagnostic::new(format!("`{shown}` does not exist"))
            .hint("name the Compose file to import, e.g. `stack import compose docker-compose.yml`")
            .into());
    };
    let doc = super::yaml::parse(&text).map_err(|err| {
        input_error(
            &shown,
            &text,
            err.line,
            err.col,
            format!("`{source}` is not valid YAML: {}", err.message),
        )
        .hint("fix the YAML; `docker compose config` shows the same error")
    })?;
    check_shape(&doc, &shown, &text)?;
    Ok((text, doc))
}

/// How deep `include` and `extends` may chain.
const MAX_CHAIN: usize = 16;

/// How many Compose files besides the first one import reads.
const MAX_FILES: usize = 32;

/// How many times `include`, `extends` and `-f` may name a file in all.
const MAX_STEPS: usize = 1000;

/// The inputs of the import read into one document, as Compose reads them.
pub(super) struct Loaded<'a> {
    pub(super) reader: &'a dyn Reader,
    /// The folder of the first file: what relative paths are relative to.
    pub(super) dir: PathBuf,
    main: String,
    findings: Vec<Finding>,
    /// The files read, by path.
    cache: BTreeMap<PathBuf, Node>,
    /// How many times a file was named.
    steps: usize,
    /// Services left out by their profiles → the profiles.
    pub(super) left_out: BTreeMap<String, Vec<String>>,
}

/// The documents read into one, and what reading them found.
pub(super) struct Documents {
    /// The text of the first file (what finding lines point into).
    pub(super) text: String,
    pub(super) doc: Node,
    pub(super) findings: Vec<Finding>,
    /// Services left out by their profiles → the profiles.
    pub(super) left_out: BTreeMap<String, Vec<String>>,
}

/// The file `options` names with everything Compose reads with it, as one document.
pub(super) fn read(
    reader: &dyn Reader,
    options: &Options,
    dir: &Path,
    source: &str,
) -> Result<Documents> {
    let (text, doc) = read_doc(reader, &options.file)?;
    let mut loaded = Loaded {
        reader,
        dir: dir.to_path_buf(),
        main: source.to_string(),
        findings: Vec::new(),
        cache: BTreeMap::new(),
        steps: 0,
        left_out: BTreeMap::new(),
    };
    let doc = loaded.load(doc, options)?;
    Ok(Documents {
        text,
        doc,
        findings: loaded.findings,
        left_out: loaded.left_out,
    })
}

/// The `services` mapping, or why the document is not a Compose file.
pub(super) fn check_shape<'d>(
    doc: &'d Node,
    shown: &str,
    text: &str,
) -> Result<&'d [(String, Node)]> {
    let not_compose = |line: usize, what: String| -> Error {
        let message = format!("`{shown}` is not a Compose file: {what}");
        // The whole file is wrong: its first line is not shown (it may be any file,
        // `extends: {file: /etc/shadow}`); a line inside `services` is.
        let quoted = if line > 1 { text } else { "" };
        input_error(shown, quoted, line, 1, message)
            .hint("a Compose file is a mapping with a `services:` mapping of service names")
            .into()
    };
    let Node::Map(top) = doc else {
        return Err(not_compose(1, format!("the document is {}", doc.kind())));
    };
    let locator = Locator::new(text);
    match doc.get("services") {
        Some(Node::Map(services)) => {
            for (name, service) in services {
                if !matches!(service, Node::Map(_)) {
                    let line = locator.entry("services", name).unwrap_or(1);
                    return Err(not_compose(
                        line,
                        format!("service `{name}` is {}, not a mapping", service.kind()),
                    ));
                }
            }
            Ok(services)
        }
        Some(other) => Err(not_compose(
            locator.top("services").unwrap_or(1),
            format!("`services` is {}, not a mapping", other.kind()),
        )),
        None if is_legacy_format(top) => Err(input_error(
            shown,
            text,
            1,
            1,
            format!(
                "`{shown}` is in Compose's legacy format (version 1: services at the top \
                 level, no `services:` key), which the Compose Specification and Compose v2 \
                 no longer read"
            ),
        )
        .hint("indent the services under a `services:` key, then import again")
        .into()),
        None => {
            // Only keys that look like Compose's are named: the file may be anything
            // (`extends: {file: /etc/shadow}`), and its text is not shown.
            let keys: Vec<&str> = top
                .iter()
                .map(|(k, _)| k.as_str())
                .filter(|k| {
                    k.len() <= 40
                        && k.chars()
                            .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
                })
                .take(5)
                .collect();
            let shown = if keys.is_empty() {
                String::new()
            } else {
                format!(" (its keys: {})", keys.join(", "))
            };
            Err(not_compose(1, format!("it has no `services`{shown}")))
        }
    }
}

/// A file in the legacy format (version 1): every top-level entry is a mapping that
/// names an `image` or a `build`, and none is a key of the Compose Specification.
fn is_legacy_format(top: &[(String, Node)]) -> bool {
    const TOP_KEYS: [&str; 8] = [
        "version", "name", "services", "networks", "volumes", "secrets", "configs", "include",
    ];
    !top.is_empty()
        && top.iter().all(|(key, value)| {
            !TOP_KEYS.contains(&key.as_str())
                && !key.starts_with("x-")
                && (value.get("image").is_some() || value.get("build").is_some())
        })
}

impl Loaded<'_> {
    /// Another Compose file, parsed once (`extends` may name it again and again); at
    /// most [`MAX_FILES`] different files, so includes that fan out stay bounded.
    pub(super) fn read(&mut self, path: &Path) -> Result<Node> {
        self.steps += 1;
        if self.steps > MAX_STEPS {
            return Err(Diagnostic::new(format!(
                "`{}`: `include` and `extends` name files more than {MAX_STEPS} times",
                path.display()
            ))
            .hint("a file that includes or extends itself, directly or not, loops in Compose too")
            .into());
        }
        if let Some(doc) = self.cache.get(path) {
            return Ok(doc.clone());
        }
        if self.cache.len() >= MAX_FILES {
            return Err(Diagnostic::new(format!(
                "`{}`: the import reads at most {MAX_FILES} Compose files (`include`, `extends`, `-f`)",
                path.display()
            ))
            .hint("import the part of the project you need")
            .into());
        }
        let (_, doc) = read_doc(self.reader, path)?;
        self.cache.insert(path.to_path_buf(), doc.clone());
        Ok(doc)
    }

    pub(super) fn note(
        &mut self,
        service: Option<&str>,
        key: &str,
        reason: String,
        not_carried: bool,
    ) {
        self.findings.push(Finding {
            service: service.map(str::to_string),
            key: key.to_string(),
            line: None,
            reason,
            not_carried,
        });
    }

    /// As compose-go: each file with its `include`s and `extends` applied, then the files
    /// merged in order.
    fn load(&mut self, mut doc: Node, options: &Options) -> Result<Node> {
        let main_dir = self.dir.clone();
        self.include(&mut doc, &main_dir, 0)?;
        self.extends(&mut doc, &main_dir)?;
        for extra in &options.extra_files {
            let mut other = self.read(extra)?;
            let dir = extra.parent().map(Path::to_path_buf).unwrap_or_default();
            self.include(&mut other, &dir, 0)?;
            self.extends(&mut other, &dir)?;
            if dir != self.dir {
                crate::import::merge::rebase_top(&mut other, &dir);
            }
            crate::import::merge::merge(&mut doc, other, "");
            let main = self.main.clone();
            self.note(
                None,
                &crate::import::shown(&self.dir, extra),
                format!("merged over `{main}` as Compose merges several files"),
                false,
            );
        }
        let active = self.active_profiles(&options.profiles)?;
        self.profiles(&mut doc, &active);
        Ok(doc)
    }

    /// Top-level `include`: the services, volumes, networks and secrets of each file
    /// added; a name defined twice is an error, as in Compose.
    pub(super) fn include(&mut self, doc: &mut Node, dir: &Path, depth: usize) -> Result<()> {
        let Node::Map(top) = doc else { return Ok(()) };
        let Some(at) = top.iter().position(|(k, _)| k == "include") else {
            return Ok(());
        };
        let (_, include) = top.remove(at);
        if depth >= MAX_CHAIN {
            return Err(
                Diagnostic::new(format!("`include` chains deeper than {MAX_CHAIN} files"))
                    .hint("an included file that includes itself loops forever in Compose too")
                    .into(),
            );
        }
        let items = match include {
            Node::Seq(items) => items,
            other => vec![other],
        };
        for item in items {
            let paths = self.include_paths(&item);
            // Several paths of one entry merge into one file first.
            let mut merged: Option<Node> = None;
            for path in &paths {
                let path = normalise(&dir.join(path));
                let mut other = self.read(&path)?;
                let other_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
                self.include(&mut other, &other_dir, depth + 1)?;
                self.extends(&mut other, &other_dir)?;
                if other_dir != self.dir {
                    crate::import::merge::rebase_top(&mut other, &other_dir);
                }
                match &mut merged {
                    Some(base) => crate::import::merge::merge(base, other, ""),
                    None => merged = Some(other),
                }
                self.note(
                    None,
                    "include",
                    format!("`{}` is included", crate::import::shown(&self.dir, &path)),
                    false,
                );
            }
            if let Some(included) = merged {
                add_included(doc, included)?;
            }
        }
        Ok(())
    }

    /// The paths of one `include` entry (a path, or a mapping with `path`); its other
    /// keys are listed.
    fn include_paths(&mut self, item: &Node) -> Vec<String> {
        let Node::Map(keys) = item else {
            return item.scalar().into_iter().collect();
        };
        for (key, _) in keys {
            if key != "path" {
                self.note(
                    None,
                    &format!("include.{key}"),
                    "the included file is read with this file's `.env` and folder".into(),
                    true,
                );
            }
        }
        match item.get("path") {
            Some(Node::Seq(paths)) => paths.iter().filter_map(Node::scalar).collect(),
            Some(other) => other.scalar().into_iter().collect(),
            None => Vec::new(),
        }
    }

    /// Every service's `extends` applied: the base service's keys, then its own merged
    /// over them.
    pub(super) fn extends(&mut self, doc: &mut Node, dir: &Path) -> Result<()> {
        let Some(Node::Map(services)) = doc.get("services") else {
            return Ok(());
        };
        let services = services.clone();
        let mut resolved = Vec::new();
        for (name, service) in &services {
            let node = self.resolve(&services, name, service, dir, 0)?;
            resolved.push((name.clone(), node));
        }
        if let Node::Map(top) = doc {
            if let Some((_, slot)) = top.iter_mut().find(|(k, _)| k == "services") {
                *slot = Node::Map(resolved);
            }
        }
        Ok(())
    }

    fn resolve(
        &mut self,
        services: &[(String, Node)],
        name: &str,
        service: &Node,
        dir: &Path,
        depth: usize,
    ) -> Result<Node> {
        let Some(extends) = service.get("extends") else {
            return Ok(service.clone());
        };
        if depth >= MAX_CHAIN {
            return Err(Diagnostic::new(format!(
                "service `{name}`: `extends` chains deeper than {MAX_CHAIN} services"
            ))
            .hint("a service that extends itself (directly or not) is an error in Compose too")
            .into());
        }
        let (base_name, file) = match extends {
            Node::Map(_) => (
                extends.get("service").and_then(Node::scalar),
                extends.get("file").and_then(Node::scalar),
            ),
            other => (other.scalar(), None),
        };
        let Some(base_name) = base_name else {
            return Err(Diagnostic::new(format!(
                "service `{name}`: `extends` names no `service`"
            ))
            .hint("write `extends: { service: NAME }` or `extends: { file: FILE, service: NAME }`")
            .into());
        };
        let base = match &file {
            Some(file) => {
                let path = normalise(&dir.join(file));
                let mut other = self.read(&path)?;
                let other_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
                if other_dir != self.dir {
                    crate::import::merge::rebase_top(&mut other, &other_dir);
                }
                let Some(Node::Map(others)) = other.get("services") else {
                    return Ok(service.clone());
                };
                let others = others.clone();
                let Some((_, base)) = others.iter().find(|(n, _)| *n == base_name) else {
                    return Err(self.missing_base(name, &base_name, Some(file)));
                };
                self.resolve(&others, &base_name, base, &other_dir, depth + 1)?
            }
            None => {
                let Some((_, base)) = services.iter().find(|(n, _)| *n == base_name) else {
                    return Err(self.missing_base(name, &base_name, None));
                };
                self.resolve(services, &base_name, base, dir, depth + 1)?
            }
        };
        let mut merged = base;
        if let Node::Map(entries) = &mut merged {
            // "`volumes_from` and `depends_on` are never shared between services that
            // use `extends`" (Compose's documentation, and docker-compose v1).
            entries.retain(|(k, _)| {
                !["extends", "depends_on", "volumes_from", "links"].contains(&k.as_str())
            });
        }
        let mut own = service.clone();
        if let Node::Map(entries) = &mut own {
            entries.retain(|(k, _)| k != "extends");
        }
        crate::import::merge::merge(&mut merged, own, "");
        self.note(
            Some(name),
            "extends",
            format!(
                "the keys of `{base_name}`{} are carried, with this service's own over them",
                file.map(|f| format!(" in `{f}`")).unwrap_or_default()
            ),
            false,
        );
        Ok(merged)
    }

    fn missing_base(&self, name: &str, base: &str, file: Option<&str>) -> Error {
        Diagnostic::new(format!(
            "service `{name}` extends `{base}`, which {} does not define",
            file.map(|f| format!("`{f}`"))
                .unwrap_or_else(|| "the file".into())
        ))
        .hint("name a service of that file in `extends.service`")
        .into()
    }
}

/// The services, volumes, networks, secrets and configs of an included file added to
/// `doc`; a name defined twice is an error, as in Compose.
fn add_included(doc: &mut Node, included: Node) -> Result<()> {
    let (Node::Map(included), Node::Map(top)) = (included, doc) else {
        return Ok(());
    };
    for (section, value) in included {
        let Node::Map(entries) = value else { continue };
        if !["services", "volumes", "networks", "secrets", "configs"].contains(&section.as_str()) {
            continue;
        }
        if !top.iter().any(|(k, _)| *k == section) {
            top.push((section.clone(), Node::Map(Vec::new())));
        }
        let Some((_, Node::Map(target))) = top.iter_mut().find(|(k, _)| *k == section) else {
            continue;
        };
        for (name, entry) in entries {
            if target.iter().any(|(k, _)| *k == name) {
                return Err(Diagnostic::new(format!(
                    "`{section}.{name}` is defined by an included file and again here; Compose refuses it too"
                ))
                .hint("rename one of them, or use `extends` to build on the included one")
                .into());
            }
            target.push((name, entry));
        }
    }
    Ok(())
}
