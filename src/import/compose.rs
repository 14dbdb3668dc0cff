//! A Compose file (the Compose Specification, any `version:`) to a stack project.
//!
//! Each service key maps to one attribute, or becomes a [`Finding`]. Values keep their
//! Compose interpolation (`${VAR:-default}` is the same text in `stack.env`); the `.env`
//! beside the file supplies values: plain keys for ordinary ones, `secrets.env` for the
//! ones whose names say they are secrets.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use super::text::{as_literal, pieces, references, Piece};
use super::yaml::{Locator, Node};
use super::{
    caddyfile, dotenv, input_error, is_key, is_reserved_key, is_secret_name, key_name, normalise,
    project_name, project_path, service_name, Finding, Imported, OutFile, Reader, DEV_SECRETS,
    PROJECT_FILE,
};
use crate::error::{Diagnostic, Result};
use crate::project::writer;

/// How to import.
#[derive(Debug, Clone)]
pub struct Options {
    /// The Compose file, absolute.
    pub file: PathBuf,
    /// The project directory to write to, absolute.
    pub project_dir: PathBuf,
    /// Turn a published HTTP port into `PORT` + `ROUTE` behind the proxy.
    pub routes: bool,
    /// A Caddyfile whose routes become `ROUTE`s (default: `Caddyfile` beside the file).
    pub caddyfile: Option<PathBuf>,
    /// The home folder `~/` in a bind mount names (`HOME`, as Compose expands it).
    pub home: Option<PathBuf>,
    /// Files merged over `file`, in order (`compose.override.yaml`, `-f b.yml`).
    pub extra_files: Vec<PathBuf>,
    /// Activated profiles (`--profile NAME`); `*` activates all.
    pub profiles: Vec<String>,
}

/// Container ports taken for HTTP by `--routes`.
const HTTP_PORTS: &[u16] = &[
    80, 3000, 4000, 5000, 8000, 8080, 8081, 8888, 9000, 2368, 1337, 5173, 4200, 8069,
];

/// Images that speak something else than HTTP on their ports.
const NOT_HTTP: &[&str] = &[
    "postgres",
    "mysql",
    "mariadb",
    "redis",
    "mongo",
    "rabbitmq",
    "memcached",
    "valkey",
];

/// Service keys of the Compose Specification that stack carries.
const CARRIED: &[&str] = &[
    "image",
    "build",
    "command",
    "entrypoint",
    "environment",
    "env_file",
    "ports",
    "volumes",
    "depends_on",
    "healthcheck",
    "restart",
    "deploy",
    "user",
    "working_dir",
    "hostname",
    "stop_signal",
    "stop_grace_period",
    "cap_add",
    "cap_drop",
    "read_only",
    "tmpfs",
    "sysctls",
    "ulimits",
    "labels",
    "extra_hosts",
    "init",
    "platform",
    "shm_size",
    "networks",
    "secrets",
    "mem_limit",
    "cpus",
    "scale",
    "expose",
    "profiles",
];

/// Why a Compose key is not carried.
fn reason(key: &str) -> Option<&'static str> {
    Some(match key {
        "container_name" => {
            "a fixed container name conflicts with replicas and rolling updates; stack names \
             containers `<project>-<service>-<n>`"
        }
        "network_mode" => {
            "stack has no attribute for it: every container runs on the project's networks. \
             `host` and `service:NAME`/`container:NAME` (a shared network namespace) cannot \
             be carried: publish the ports the service listens on with `PUBLISH`, and reach \
             the other service by its name instead of `localhost`; `none` cannot be carried \
             either (the container gets the project's network)"
        }
        "stdin_open" | "tty" => {
            "stack has no attribute for it: the container runs without a terminal or open \
             standard input (`stack exec` gives one when you attach)"
        }
        "links" | "external_links" => {
            "services reach each other by service name on the project's networks; link \
             aliases are not carried"
        }
        "domainname" => {
            "stack has no attribute for the container's domain name (`HOSTNAME` takes a dotted \
             name); other services reach it by its service name"
        }
        "logging" => {
            "stack logs every container with json-file rotation (`STACK_LOG_MAX_SIZE`, \
             `STACK_LOG_MAX_FILES`)"
        }
        "configs" => "stack has no configs; mount the file with `VOLUMES` (`./file:/path:ro`)",
        "privileged"
        | "devices"
        | "security_opt"
        | "pid"
        | "ipc"
        | "userns_mode"
        | "cgroup_parent"
        | "device_cgroup_rules" => "stack does not give containers host privileges or devices",
        "volumes_from" => "mount the same named volume with `VOLUMES` instead",
        _ => return None,
    })
}

struct Service {
    /// Name in the input.
    input: String,
    /// Name in the project.
    name: String,
    /// `KEY=VALUE` lines (value already quoted), and comments.
    lines: Vec<String>,
}

impl Service {
    fn prefix(&self) -> String {
        format!(
            "SERVICE_{}",
            self.name.to_ascii_uppercase().replace('-', "_")
        )
    }

    fn set(&mut self, attr: &str, value: &str) {
        let line = format!("{}_{attr}={}", self.prefix(), writer::template(value));
        self.lines.push(line);
    }
}

/// One import in progress.
struct Import<'a> {
    reader: &'a dyn Reader,
    options: &'a Options,
    dir: PathBuf,
    source: String,
    locator: Locator<'a>,
    findings: Vec<Finding>,
    /// `.env` beside the file: name → (template, line).
    dotenv: BTreeMap<String, (String, usize)>,
    /// Secret keys → literal value (`None`: no value; generated in dev).
    secrets: BTreeMap<String, Option<String>>,
    /// Names referenced by written values.
    referenced: BTreeSet<String>,
    /// Input variable → project key, for reserved names.
    renamed_vars: BTreeMap<String, String>,
    /// Input service name → project service name.
    names: BTreeMap<String, String>,
    /// Services with a health check in the project.
    healthy: BTreeSet<String>,
    /// Jobs: services another waits for with `service_completed_successfully` (project
    /// names), carried as `name:completed` with one replica and `RESTART=no`.
    jobs: BTreeSet<String>,
    /// Top-level secrets: name → (secret key, written?).
    file_secrets: BTreeMap<String, String>,
    uses_proxy: bool,
    tls_email: Option<String>,
    /// The top-level `secrets` mapping.
    top_doc_secrets: Option<Node>,
    /// A service reads `.env` as its `env_file` (its values are carried there).
    dotenv_is_env_file: bool,
    /// Secret references with no value anywhere (empty in dev, as in Compose).
    unset_secrets: BTreeSet<String>,
    /// Services left out by their profiles → the profiles.
    left_out: BTreeMap<String, Vec<String>>,
}

/// Import the Compose file named by `options`.
pub fn import(reader: &dyn Reader, options: &Options) -> Result<Imported> {
    let source = options
        .file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "compose file".into());
    let (text, doc) = read_doc(reader, &options.file)?;
    let dir = options
        .file
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let mut loaded = Loaded {
        reader,
        dir: dir.clone(),
        main: source.clone(),
        findings: Vec::new(),
        cache: BTreeMap::new(),
        steps: 0,
        left_out: BTreeMap::new(),
    };
    let doc = loaded.load(doc, options)?;
    let services = check_shape(&doc, &options.file.display().to_string(), &text)?;
    let mut import = Import {
        reader,
        options,
        dir,
        source,
        locator: Locator::new(&text),
        findings: loaded.findings,
        left_out: loaded.left_out,
        dotenv: BTreeMap::new(),
        secrets: BTreeMap::new(),
        referenced: BTreeSet::new(),
        renamed_vars: BTreeMap::new(),
        names: BTreeMap::new(),
        healthy: BTreeSet::new(),
        jobs: BTreeSet::new(),
        file_secrets: BTreeMap::new(),
        uses_proxy: options.routes,
        tls_email: None,
        top_doc_secrets: doc.get("secrets").cloned(),
        dotenv_is_env_file: false,
        unset_secrets: BTreeSet::new(),
    };
    import.read_dotenv()?;
    import.run(&doc, services)
}

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
struct Loaded<'a> {
    reader: &'a dyn Reader,
    /// The folder of the first file: what relative paths are relative to.
    dir: PathBuf,
    main: String,
    findings: Vec<Finding>,
    /// The files read, by path.
    cache: BTreeMap<PathBuf, Node>,
    /// How many times a file was named.
    steps: usize,
    /// Services left out by their profiles → the profiles.
    left_out: BTreeMap<String, Vec<String>>,
}

impl Loaded<'_> {
    /// Another Compose file, parsed once (`extends` may name it again and again); at
    /// most [`MAX_FILES`] different files, so includes that fan out stay bounded.
    fn read(&mut self, path: &Path) -> Result<Node> {
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

    fn note(&mut self, service: Option<&str>, key: &str, reason: String, not_carried: bool) {
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
                super::merge::rebase_top(&mut other, &dir);
            }
            super::merge::merge(&mut doc, other, "");
            let main = self.main.clone();
            self.note(
                None,
                &super::shown(&self.dir, extra),
                format!("merged over `{main}` as Compose merges several files"),
                false,
            );
        }
        self.profiles(&mut doc, &options.profiles);
        Ok(doc)
    }

    /// Top-level `include`: the services, volumes, networks and secrets of each file
    /// added; a name defined twice is an error, as in Compose.
    fn include(&mut self, doc: &mut Node, dir: &Path, depth: usize) -> Result<()> {
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
            let paths: Vec<String> = match &item {
                Node::Map(_) => {
                    if let Node::Map(keys) = &item {
                        for (key, _) in keys {
                            if key != "path" {
                                self.note(
                                    None,
                                    &format!("include.{key}"),
                                    "the included file is read with this file's `.env` and folder"
                                        .into(),
                                    true,
                                );
                            }
                        }
                    }
                    match item.get("path") {
                        Some(Node::Seq(paths)) => paths.iter().filter_map(Node::scalar).collect(),
                        Some(other) => other.scalar().into_iter().collect(),
                        None => Vec::new(),
                    }
                }
                other => other.scalar().into_iter().collect(),
            };
            // Several paths of one entry merge into one file first.
            let mut merged: Option<Node> = None;
            for path in &paths {
                let path = normalise(&dir.join(path));
                let mut other = self.read(&path)?;
                let other_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
                self.include(&mut other, &other_dir, depth + 1)?;
                self.extends(&mut other, &other_dir)?;
                if other_dir != self.dir {
                    super::merge::rebase_top(&mut other, &other_dir);
                }
                match &mut merged {
                    Some(base) => super::merge::merge(base, other, ""),
                    None => merged = Some(other),
                }
                self.note(
                    None,
                    "include",
                    format!("`{}` is included", super::shown(&self.dir, &path)),
                    false,
                );
            }
            let Some(Node::Map(included)) = merged else {
                continue;
            };
            let Node::Map(top) = doc else { continue };
            for (section, value) in included {
                let Node::Map(entries) = value else { continue };
                if !["services", "volumes", "networks", "secrets", "configs"]
                    .contains(&section.as_str())
                {
                    continue;
                }
                if !top.iter().any(|(k, _)| *k == section) {
                    top.push((section.clone(), Node::Map(Vec::new())));
                }
                let Some((_, Node::Map(target))) = top.iter_mut().find(|(k, _)| *k == section)
                else {
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
        }
        Ok(())
    }

    /// Every service's `extends` applied: the base service's keys, then its own merged
    /// over them.
    fn extends(&mut self, doc: &mut Node, dir: &Path) -> Result<()> {
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
                    super::merge::rebase_top(&mut other, &other_dir);
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
        super::merge::merge(&mut merged, own, "");
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

    fn missing_base(&self, name: &str, base: &str, file: Option<&str>) -> crate::error::Error {
        Diagnostic::new(format!(
            "service `{name}` extends `{base}`, which {} does not define",
            file.map(|f| format!("`{f}`"))
                .unwrap_or_else(|| "the file".into())
        ))
        .hint("name a service of that file in `extends.service`")
        .into()
    }

    /// Services in profiles that are not activated are left out (as `docker compose up`
    /// leaves them), each listed; `--profile NAME` activates one.
    fn profiles(&mut self, doc: &mut Node, active: &[String]) {
        let Node::Map(top) = doc else { return };
        let Some((_, Node::Map(services))) = top.iter_mut().find(|(k, _)| k == "services") else {
            return;
        };
        let mut left_out = Vec::new();
        services.retain(|(name, service)| {
            let profiles = super::merge::profiles(service);
            let on = profiles.is_empty() || active.iter().any(|a| a == "*" || profiles.contains(a));
            if !on {
                left_out.push((name.clone(), profiles));
            }
            on
        });
        for (name, profiles) in left_out {
            self.left_out.insert(name.clone(), profiles.clone());
            let list = profiles
                .iter()
                .map(|p| format!("`{p}`"))
                .collect::<Vec<_>>()
                .join(", ");
            self.note(
                Some(&name),
                "profiles",
                format!(
                    "not imported: in profile(s) {list}, which are not activated (as `docker compose up` leaves it out); import it with `--profile {}`",
                    profiles.first().cloned().unwrap_or_default()
                ),
                true,
            );
        }
    }
}

/// The `services` mapping, or why the document is not a Compose file.
fn check_shape<'d>(doc: &'d Node, shown: &str, text: &str) -> Result<&'d [(String, Node)]> {
    let not_compose = |line: usize, what: String| -> crate::error::Error {
        input_error(
            shown,
            text,
            line,
            1,
            format!("`{shown}` is not a Compose file: {what}"),
        )
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
        None => {
            let keys: Vec<&str> = top.iter().map(|(k, _)| k.as_str()).take(5).collect();
            Err(not_compose(
                1,
                format!("it has no `services` (its keys: {})", keys.join(", ")),
            ))
        }
    }
}

impl Import<'_> {
    fn finding(&mut self, service: Option<&str>, key: &str, reason: impl Into<String>) {
        self.push(service, key, reason.into(), true);
    }

    fn note(&mut self, service: Option<&str>, key: &str, reason: impl Into<String>) {
        self.push(service, key, reason.into(), false);
    }

    fn push(&mut self, service: Option<&str>, key: &str, reason: String, not_carried: bool) {
        let head = key.split('.').next().unwrap_or(key);
        let line = match service {
            Some(service) => self.locator.service_key(service, head),
            None => self.locator.top(head),
        };
        self.findings.push(Finding {
            service: service.map(str::to_string),
            key: key.to_string(),
            line,
            reason,
            not_carried,
        });
    }

    fn read_dotenv(&mut self) -> Result<()> {
        let path = self.dir.join(".env");
        let Some(text) = self.reader.read(&path)? else {
            return Ok(());
        };
        let (assignments, skipped) = dotenv::parse(&text);
        for skip in skipped {
            self.findings.push(Finding {
                service: None,
                key: format!(".env:{}", skip.line),
                line: Some(skip.line),
                reason: skip.reason,
                not_carried: true,
            });
        }
        for assignment in assignments {
            self.dotenv
                .insert(assignment.key, (assignment.template, assignment.line));
        }
        Ok(())
    }

    fn run(mut self, doc: &Node, services: &[(String, Node)]) -> Result<Imported> {
        self.top_level(doc);
        self.name_services(services);
        let caddy = self.read_caddyfile(services)?;
        self.healthy = services
            .iter()
            .filter(|(_, s)| has_health(s))
            .map(|(name, _)| self.names[name].clone())
            .collect();
        self.jobs = services
            .iter()
            .filter_map(|(_, s)| match s.get("depends_on") {
                Some(Node::Map(entries)) => Some(entries),
                _ => None,
            })
            .flatten()
            .filter(|(_, options)| {
                options.get("condition").and_then(Node::scalar).as_deref()
                    == Some("service_completed_successfully")
            })
            .filter_map(|(name, _)| self.names.get(name).cloned())
            .collect();
        port_clash(services)?;
        let mut out = Vec::new();
        for (input, node) in services {
            out.push(self.service(input, node, &caddy)?);
        }
        let networks = self.networks(doc);
        let project = self.project(doc);
        let stack_env = self.stack_env(&project, &out, networks);
        let mut files = vec![OutFile {
            path: PROJECT_FILE.into(),
            contents: stack_env,
            mode: 0o644,
        }];
        let with_values: Vec<(&String, &String)> = self
            .secrets
            .iter()
            .filter_map(|(k, v)| v.as_ref().map(|v| (k, v)))
            .collect();
        if !with_values.is_empty() {
            let mut text = format!(
                "# Secrets imported by `stack import compose` from `{}`.\n# Keep this file mode 0600; never commit it.\n",
                self.source
            );
            for (key, value) in with_values {
                text.push_str(&format!("{key}={}\n", secret_value(value)));
            }
            files.push(OutFile {
                path: DEV_SECRETS.into(),
                contents: text,
                mode: 0o600,
            });
        }
        let renamed = self
            .names
            .iter()
            .filter(|(a, b)| a != b)
            .map(|(a, b)| (a.clone(), b.clone()))
            .collect();
        Ok(Imported {
            files,
            findings: self.findings,
            project,
            services: out.iter().map(|s| s.name.clone()).collect(),
            renamed,
            secrets: self.secrets.keys().cloned().collect(),
        })
    }

    /// Top-level keys other than `services`.
    fn top_level(&mut self, doc: &Node) {
        let Node::Map(top) = doc else { return };
        for (key, value) in top {
            match key.as_str() {
                "services" | "name" | "networks" | "volumes" | "secrets" => {}
                "version" => self.note(None, key, "obsolete in the Compose Specification; ignored"),
                key if key.starts_with("x-") => self.note(
                    None,
                    key,
                    "an extension field: its anchors were applied where they are used",
                ),
                "configs" | "include" | "models" => {
                    self.finding(None, key, "stack has no attribute for it")
                }
                other => self.finding(None, other, "unknown key: not in the Compose Specification"),
            }
            if key == "volumes" {
                self.top_volumes(value);
            }
        }
    }

    fn top_volumes(&mut self, volumes: &Node) {
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

    fn project(&mut self, doc: &Node) -> String {
        if let Some(name) = doc.get("name").and_then(Node::scalar) {
            if let Some(name) = self.resolved(None, "name", &name) {
                return project_name(&name);
            }
            self.finding(
                None,
                "name",
                "a project name with a variable that has no value in `.env` or a default; the folder's name is used",
            );
        }
        let folder = self
            .dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        project_name(&folder)
    }

    /// Project names for the input's services: lower-case, `-`, never a preset's or the
    /// proxy's name, never twice.
    fn name_services(&mut self, services: &[(String, Node)]) {
        let mut taken = BTreeSet::new();
        for (input, _) in services {
            let base = service_name(input).unwrap_or_else(|| "service".into());
            let mut name = base.clone();
            let reserved = super::is_reserved_service(&name, self.uses_proxy);
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
                        "the name `{base}` is reserved by stack (a preset or the proxy); other \
                         services must reach it as `{name}`"
                    )
                } else {
                    "service names are lower-case letters, digits and `-`; other services must \
                     reach it by the new name"
                        .to_string()
                };
                self.note(Some(input), "name", format!("renamed to `{name}`: {why}"));
            }
            taken.insert(name.clone());
            self.names.insert(input.clone(), name);
        }
        self.old_names_in_use(services);
    }

    /// A renamed service's old name written as a host in a value (`redis://redis:6379`)
    /// no longer resolves: stack has no network alias to keep it. Each such value is
    /// listed as not carried, with the name to write instead.
    fn old_names_in_use(&mut self, services: &[(String, Node)]) {
        let renamed: Vec<(String, String)> = self
            .names
            .iter()
            .filter(|(a, b)| a != b)
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
                                 (stack has no network alias to keep the old name): write `{new}` there"
                            ),
                        );
                    }
                }
            }
        }
    }

    /// Routes from a Caddyfile beside the file (or named): service → (port, routes, strip).
    fn read_caddyfile(
        &mut self,
        services: &[(String, Node)],
    ) -> Result<BTreeMap<String, caddyfile::Upstream>> {
        let (path, named) = match &self.options.caddyfile {
            Some(path) => (path.clone(), true),
            None => (self.dir.join("Caddyfile"), false),
        };
        let Some(text) = self.reader.read(&path)? else {
            if named {
                return Err(Diagnostic::new(format!("`{}` does not exist", path.display())).into());
            }
            return Ok(BTreeMap::new());
        };
        // A Caddyfile that a service of the file mounts belongs to that service.
        if !named && mounts_caddyfile(services) {
            return Ok(BTreeMap::new());
        }
        let parsed = caddyfile::parse(&text);
        let shown = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        for skipped in &parsed.skipped {
            self.findings.push(Finding {
                service: None,
                key: format!("{shown}:{}", skipped.line),
                line: Some(skipped.line),
                reason: skipped.reason.clone(),
                not_carried: true,
            });
        }
        self.tls_email = parsed.email.clone();
        let mut out: BTreeMap<String, caddyfile::Upstream> = BTreeMap::new();
        for route in parsed.routes {
            let Some(service) = services
                .iter()
                .map(|(name, _)| name)
                .find(|name| **name == route.service)
            else {
                self.findings.push(Finding {
                    service: None,
                    key: format!("{shown}:{}", route.line),
                    line: Some(route.line),
                    reason: format!(
                        "`reverse_proxy {}:{}` names no service of the Compose file",
                        route.service, route.port
                    ),
                    not_carried: true,
                });
                continue;
            };
            let entry = out.entry(service.clone()).or_insert(caddyfile::Upstream {
                port: route.port,
                routes: Vec::new(),
                strip: route.strip,
            });
            if entry.port != route.port || entry.strip != route.strip {
                self.findings.push(Finding {
                    service: Some(service.clone()),
                    key: format!("{shown}:{}", route.line),
                    line: Some(route.line),
                    reason: "a second port or strip setting for the same service; stack routes \
                             one port per service"
                        .into(),
                    not_carried: true,
                });
                continue;
            }
            entry.routes.push(route.route);
        }
        if !out.is_empty() {
            self.uses_proxy = true;
        }
        Ok(out)
    }

    /// A value written into `stack.env`: reserved names renamed, secret references
    /// listed in `STACK_SECRETS`, and a literal default of a secret moved to `secrets.env`.
    fn template(&mut self, text: &str) -> String {
        let mut out = Vec::new();
        for piece in pieces(text) {
            let Piece::Var { name, rest, braced } = piece else {
                out.push(piece);
                continue;
            };
            let name = self.var(&name);
            let op_len = rest.len() - rest.trim_start_matches([':', '-', '?', '+']).len();
            let (op, arg) = rest.split_at(op_len);
            let arg = self.template(arg);
            if is_secret_name(&name) {
                let from_dotenv = self.dotenv.contains_key(&name)
                    || self
                        .renamed_vars
                        .iter()
                        .any(|(a, b)| *b == name && self.dotenv.contains_key(a));
                let empty_default = (op == ":-" || op == "-") && arg.is_empty();
                if (op.is_empty() || empty_default) && !from_dotenv {
                    // No value anywhere: Compose gives it empty (with a warning). It stays
                    // a plain reference, empty with stack's warning too, never a generated
                    // secret (see `unset_secrets`).
                    if !self.secrets.contains_key(&name) {
                        self.unset_secrets.insert(name.clone());
                    }
                    out.push(Piece::Var {
                        name,
                        rest: format!("{op}{arg}"),
                        braced,
                    });
                    continue;
                }
                let entry = self.secrets.entry(name.clone()).or_insert(None);
                if (op == ":-" || op == "-") && !from_dotenv {
                    // The default becomes the dev secret; stack.env keeps the reference.
                    if let Some(literal) = as_literal(&arg) {
                        if entry.is_none() {
                            *entry = Some(literal);
                        }
                        out.push(Piece::Var {
                            name,
                            rest: String::new(),
                            braced: true,
                        });
                        continue;
                    }
                }
            }
            out.push(Piece::Var {
                name,
                rest: format!("{op}{arg}"),
                braced,
            });
        }
        super::text::join(&out)
    }

    /// `text` with its interpolation applied from `.env` and defaults, as Compose would,
    /// for a key where stack needs a literal value (a size, a build context, the project
    /// name); a note says so. `None` when a variable has no value.
    fn resolved(&mut self, service: Option<&str>, key: &str, text: &str) -> Option<String> {
        if let Some(literal) = as_literal(text) {
            return Some(literal);
        }
        let value = self.interpolate(text, 0)?;
        self.note(
            service,
            key,
            format!(
                "`{text}` is read with `.env` now, as `{value}`: stack needs a literal value here, \
                 so a later change of `.env` is not followed"
            ),
        );
        Some(value)
    }

    fn interpolate(&self, text: &str, depth: usize) -> Option<String> {
        if depth > 8 {
            return None;
        }
        let mut out = String::new();
        for piece in pieces(text) {
            match piece {
                Piece::Text(text) => out.push_str(&text.replace("$$", "$")),
                Piece::Var { name, rest, .. } => {
                    let value = match self.dotenv.get(&name) {
                        Some((template, _)) => Some(self.interpolate(template, depth + 1)?),
                        None => None,
                    };
                    let op_len = rest.len() - rest.trim_start_matches([':', '-', '?', '+']).len();
                    let (op, arg) = rest.split_at(op_len);
                    let set = value.is_some();
                    let full = value.as_deref().is_some_and(|v| !v.is_empty());
                    let chosen = match op {
                        "" | "?" | ":?" if set && (op != ":?" || full) => value,
                        ":-" if full => value,
                        "-" if set => value,
                        ":-" | "-" => Some(self.interpolate(arg, depth + 1)?),
                        ":+" if full => Some(self.interpolate(arg, depth + 1)?),
                        "+" if set => Some(self.interpolate(arg, depth + 1)?),
                        ":+" | "+" => Some(String::new()),
                        _ => None,
                    };
                    out.push_str(&chosen?);
                }
            }
        }
        Some(out)
    }

    /// The project key for an input variable name (recorded as referenced).
    fn var(&mut self, name: &str) -> String {
        let key = if is_reserved_key(name) {
            let key = format!("IMPORTED_{name}");
            if !self.renamed_vars.contains_key(name) {
                self.renamed_vars.insert(name.to_string(), key.clone());
                self.note(
                    None,
                    name,
                    format!(
                        "variable `{name}` is renamed `{key}`: stack reads keys starting with \
                         `STACK_`, `SERVICE_`, `SERVER_` and the preset prefixes itself"
                    ),
                );
            }
            key
        } else {
            name.to_string()
        };
        self.referenced.insert(name.to_string());
        key
    }

    /// A key in `secrets.env` for `value` of variable `name`: the name itself unless it
    /// holds another value.
    fn secret_key(&mut self, name: &str, service: &str, value: String) -> String {
        let mut key = key_name(name);
        if is_reserved_key(&key) && !is_preset_secret(&key) {
            key = format!("IMPORTED_{key}");
        }
        if let Some(Some(existing)) = self.secrets.get(&key) {
            if *existing != value {
                key = format!("{}_{key}", key_name(service));
            }
        }
        self.secrets.insert(key.clone(), Some(value));
        key
    }

    fn service(
        &mut self,
        input: &str,
        node: &Node,
        caddy: &BTreeMap<String, caddyfile::Upstream>,
    ) -> Result<Service> {
        let mut service = Service {
            input: input.to_string(),
            name: self.names[input].clone(),
            lines: Vec::new(),
        };
        let Node::Map(entries) = node else {
            return Ok(service);
        };
        let known = crate::import::compose::spec_keys();
        for (key, value) in entries {
            if CARRIED.contains(&key.as_str()) {
                continue;
            }
            let default = match key.as_str() {
                "stdin_open" | "tty" => matches!(value, Node::Bool(false)),
                _ => false,
            };
            if default {
                self.note(Some(input), key, "the engine's default, as stack runs it");
                continue;
            }
            if key.starts_with("x-") {
                self.note(Some(input), key, "an extension field; ignored");
            } else if let Some(why) = reason(key) {
                self.finding(Some(input), key, why);
            } else if known.contains(&key.as_str()) {
                self.finding(Some(input), key, "stack has no attribute for it");
            } else {
                self.finding(
                    Some(input),
                    key,
                    "unknown key: not in the Compose Specification",
                );
            }
        }
        let profiles = super::merge::profiles(node);
        if !profiles.is_empty() {
            self.note(
                Some(input),
                "profiles",
                format!(
                    "in profile(s) `{}`, activated: imported as a service that always runs",
                    profiles.join("`, `")
                ),
            );
        }
        self.image_and_build(&mut service, node);
        for (key, attr) in [("entrypoint", "ENTRYPOINT"), ("command", "COMMAND")] {
            if let Some(value) = node.get(key) {
                if let Some(words) = self.words(input, key, value) {
                    service.set(attr, &words);
                }
            }
        }
        self.ports(&mut service, node, caddy.get(input));
        self.volumes(&mut service, node);
        self.environment(&mut service, node)?;
        self.health(&mut service, node);
        self.depends_on(&mut service, node);
        self.restart(&mut service, node);
        self.resources(&mut service, node);
        self.options(&mut service, node);
        self.service_networks(&mut service, node);
        self.service_secrets(&mut service, node)?;
        let findings: Vec<String> = self
            .findings
            .iter()
            .filter(|f| f.not_carried && f.service.as_deref() == Some(input))
            .map(|f| format!("# not carried: `{}`: {}", f.key, f.reason))
            .collect();
        service.lines.extend(findings);
        Ok(service)
    }

    fn image_and_build(&mut self, service: &mut Service, node: &Node) {
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

    fn build_args(&mut self, service: &mut Service, args: &Node) {
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

    /// A command or entrypoint as shell words.
    fn words(&mut self, input: &str, key: &str, value: &Node) -> Option<String> {
        let texts = match value {
            Node::Seq(items) => items.iter().filter_map(Node::scalar).collect(),
            other => other.scalar().into_iter().collect::<Vec<_>>(),
        };
        let secrets: Vec<String> = texts
            .iter()
            .flat_map(|t| references(t))
            .filter(|name| is_secret_name(name))
            .collect();
        if let Some(name) = secrets.first() {
            self.finding(
                Some(input),
                key,
                format!(
                    "it interpolates the secret `{name}`, which stack never writes into docker-compose.yml; \
                     pass it in the environment and let the program (or `sh -c`) read it"
                ),
            );
            return None;
        }
        match value {
            Node::Seq(items) => {
                let words: Vec<String> = items.iter().filter_map(Node::scalar).collect();
                if words.len() != items.len() {
                    self.finding(Some(input), key, "a list item that is not a string");
                    return None;
                }
                let words: Vec<String> = words.iter().map(|w| self.template(w)).collect();
                Some(argv_value(&words))
            }
            Node::Null => None,
            other => other.scalar().map(|text| {
                let text = self.template(&text);
                // A block scalar (`|`, `>`): Compose splits it into words like a shell,
                // line breaks being spaces outside quotes; keep the words exactly.
                match shell_words::split(&text) {
                    Ok(words) if text.contains(['\n', '\r']) && !words.is_empty() => {
                        argv_value(&words)
                    }
                    _ => text,
                }
            }),
        }
    }

    fn ports(
        &mut self,
        service: &mut Service,
        node: &Node,
        upstream: Option<&caddyfile::Upstream>,
    ) {
        let input = service.input.clone();
        let image = node.get("image").and_then(Node::scalar).unwrap_or_default();
        let web = !NOT_HTTP.iter().any(|n| image_name(&image) == *n);
        let mut publish = Vec::new();
        let mut route_port: Option<u16> = None;
        if let Some(Node::Seq(ports)) = node.get("ports") {
            for port in ports {
                let Some((text, container)) = self.port(&input, port) else {
                    continue;
                };
                let http = container.is_some_and(|c| HTTP_PORTS.contains(&c));
                if self.options.routes && upstream.is_none() && web && http && route_port.is_none()
                {
                    route_port = container;
                    continue;
                }
                publish.push(text);
            }
        } else if let Some(other) = node.get("ports") {
            self.finding(
                Some(&input),
                "ports",
                format!("`ports` is {}, not a list", other.kind()),
            );
        }
        if let Some(upstream) = upstream {
            service.set("PORT", &upstream.port.to_string());
            service.set("ROUTE", &upstream.routes.join(","));
            if upstream.strip {
                service.set("ROUTE_STRIP", "true");
            }
        } else if let Some(port) = route_port {
            service.set("PORT", &port.to_string());
            service.set("ROUTE", &format!("{}.${{STACK_DOMAIN}}", service.name));
            self.note(
                Some(&input),
                "ports",
                format!("port {port} is routed by the proxy at `{}.<STACK_DOMAIN>` instead of published", service.name),
            );
        }
        if !publish.is_empty() {
            service.set("PUBLISH", &publish.join(","));
        }
    }

    /// A port in short syntax, and its container port when it is one number.
    fn port(&mut self, input: &str, port: &Node) -> Option<(String, Option<u16>)> {
        match port {
            Node::Map(_) => {
                let mut text = String::new();
                for (key, value) in match port {
                    Node::Map(entries) => entries.as_slice(),
                    _ => &[],
                } {
                    if !["target", "published", "host_ip", "protocol", "mode"]
                        .contains(&key.as_str())
                    {
                        self.finding(Some(input), &format!("ports.{key}"), "stack publishes ports by host IP, host port, container port and protocol");
                    }
                    if key == "mode" && value.scalar().as_deref() != Some("ingress") {
                        self.finding(
                            Some(input),
                            "ports.mode",
                            "only swarm knows port modes; stack publishes on the host",
                        );
                    }
                }
                let target = port.get("target").and_then(Node::scalar)?;
                if let Some(ip) = port.get("host_ip").and_then(Node::scalar) {
                    text.push_str(&ip);
                    text.push(':');
                }
                if let Some(published) = port.get("published").and_then(Node::scalar) {
                    text.push_str(&published);
                    text.push(':');
                } else if !text.is_empty() {
                    text.push(':');
                }
                text.push_str(&target);
                if let Some(protocol) = port.get("protocol").and_then(Node::scalar) {
                    if protocol != "tcp" {
                        text.push('/');
                        text.push_str(&protocol);
                    }
                }
                let container = target.parse().ok();
                let text = self.empty_host(input, &text);
                Some((self.template(&text), container))
            }
            other => {
                let text = other.scalar()?;
                let text = self.empty_host(input, &text);
                let body = text.split('/').next().unwrap_or(&text);
                let container = body.rsplit(':').next().and_then(|c| c.parse().ok());
                let udp = text.ends_with("/udp") || text.ends_with("/sctp");
                Some((self.template(&text), if udp { None } else { container }))
            }
        }
    }

    /// A port whose host address is empty (`:443:443`, `${BIND:-}:443:443`) publishes on
    /// every address in Compose; `PUBLISH` writes no address for that, so an empty one is
    /// dropped and a variable that may be empty adds its `:` only when set.
    fn empty_host(&mut self, input: &str, text: &str) -> String {
        // The whole entry one variable with a default (`${EXPOSE_PORT-:2283:2283}`, as
        // Immich ships it): the default is a port like any other.
        if let [Piece::Var {
            name,
            rest: op,
            braced: true,
        }] = pieces(text).as_slice()
        {
            for sign in [":-", "-"] {
                if let Some(default) = op.strip_prefix(sign) {
                    let fixed = self.empty_host(input, default);
                    if fixed != default {
                        return format!("${{{name}{sign}{fixed}}}");
                    }
                    break;
                }
            }
        }
        let parts = super::text::split_outside_vars(text, ':');
        let [ip, rest @ ..] = parts.as_slice() else {
            return text.to_string();
        };
        if rest.len() != 2 {
            return text.to_string();
        }
        let rest = rest.join(":");
        if ip.is_empty() {
            self.note(
                Some(input),
                "ports",
                format!("`{text}`: an empty host address is every address, written `{rest}`"),
            );
            return rest;
        }
        match pieces(ip).as_slice() {
            [Piece::Var { name, rest: op, .. }] if ["", "-", ":-"].contains(&op.as_str()) => {
                format!("${{{name}:+${{{name}}}:}}{rest}")
            }
            _ => text.to_string(),
        }
    }

    fn volumes(&mut self, service: &mut Service, node: &Node) {
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
        for flag in mode
            .unwrap_or_default()
            .split(',')
            .filter(|f| !f.is_empty())
        {
            match flag {
                "ro" => read_only = true,
                "rw" => {}
                other => self.finding(
                    Some(input),
                    "volumes",
                    format!("mount option `{other}` of `{target}`: stack mounts read-write or `ro` only"),
                ),
            }
        }
        self.mount(input, source, target, read_only)
    }

    fn mount(
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
        // A source whose value (from `.env` or a default) is a relative path is relative
        // to the Compose file's folder; `stack.env` is read from the project's.
        let relative_value = source
            .filter(|s| as_literal(s).is_none() && self.dir != self.options.project_dir)
            .and_then(|s| self.interpolate(s, 0).map(|v| (s.to_string(), v)))
            .filter(|(_, v)| v.starts_with('.'));
        if let Some((written, value)) = relative_value {
            let path = normalise(&self.dir.join(&value));
            let shown = project_path(&self.options.project_dir, &path);
            self.note(
                Some(input),
                "volumes",
                format!(
                    "`{written}` is `{value}`, relative to the Compose file's folder: written as \
                     `{shown}`, so a later change of `.env` is not followed"
                ),
            );
            let mut text = format!("{}:{target}", super::text::escape_dollars(&shown));
            if read_only {
                text.push_str(":ro");
            }
            return Some(text);
        }
        let mut text = match source {
            None => target,
            Some(source) if source == "~" || source.starts_with("~/") => {
                // Compose expands `~` to the home folder of the user who runs it.
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
                self.note(
                    Some(input),
                    "volumes",
                    format!(
                        "`{source}` is the home folder of the user importing: written as `{shown}`"
                    ),
                );
                format!("{}:{target}", super::text::escape_dollars(&shown))
            }
            Some(source) if source.starts_with('~') => {
                self.finding(
                    Some(input),
                    "volumes",
                    format!("`{source}`: another user's home folder; write it absolute"),
                );
                return None;
            }
            Some(source) if source.starts_with('.') || source.starts_with('/') => {
                let source = match as_literal(source) {
                    Some(literal) => {
                        let path = normalise(&self.dir.join(literal));
                        super::text::escape_dollars(&project_path(&self.options.project_dir, &path))
                    }
                    None => self.template(source),
                };
                format!("{source}:{target}")
            }
            Some(source) => {
                let source = self.template(source);
                format!("{source}:{target}")
            }
        };
        if read_only {
            text.push_str(":ro");
        }
        Some(text)
    }

    fn long_volume(&mut self, input: &str, item: &Node, tmpfs: &mut Vec<String>) -> Option<String> {
        let kind = item
            .get("type")
            .and_then(Node::scalar)
            .unwrap_or_else(|| "volume".into());
        let target = item.get("target").and_then(Node::scalar)?;
        let source = item.get("source").and_then(Node::scalar);
        let read_only = matches!(item.get("read_only"), Some(Node::Bool(true)));
        if let Node::Map(entries) = item {
            for (key, value) in entries {
                match (key.as_str(), value) {
                    ("type" | "source" | "target" | "read_only", _) => {}
                    ("bind", Node::Map(options)) if options.iter().all(|(k, v)| {
                        k == "create_host_path" && matches!(v, Node::Bool(true))
                    }) => {}
                    ("tmpfs", _) if kind == "tmpfs" => {}
                    ("volume", Node::Map(options)) if options.is_empty() => {}
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
            "bind" | "volume" => self.mount(input, source.as_deref(), &target, read_only),
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

    /// `environment` over `env_file`, secrets moved to `secrets.env`.
    fn environment(&mut self, service: &mut Service, node: &Node) -> Result<()> {
        let input = service.input.clone();
        // name → template text (stack.env form)
        let mut env: Vec<(String, String)> = Vec::new();
        let put = |env: &mut Vec<(String, String)>, name: String, value: String| {
            env.retain(|(n, _)| *n != name);
            env.push((name, value));
        };
        for file in env_files(node.get("env_file")) {
            let path = normalise(&self.dir.join(&file.path));
            if path == self.dir.join(".env") {
                self.dotenv_is_env_file = true;
            }
            let Some(text) = self.reader.read(&path)? else {
                if file.required {
                    self.finding(
                        Some(&input),
                        "env_file",
                        format!("`{}` does not exist", file.path),
                    );
                }
                continue;
            };
            let (assignments, skipped) = dotenv::parse(&text);
            for skip in skipped {
                self.finding(
                    Some(&input),
                    "env_file",
                    format!("`{}` line {}: {}", file.path, skip.line, skip.reason),
                );
            }
            for assignment in assignments {
                put(&mut env, assignment.key, assignment.template);
            }
        }
        for (name, value) in pairs_opt(node.get("environment")) {
            match value {
                Some(value) => put(&mut env, name, value),
                // Compose gives it the value of `.env` (or of the shell).
                None if self.dotenv.contains_key(&name) => {
                    let value = format!("${{{name}}}");
                    put(&mut env, name, value)
                }
                None => self.finding(
                    Some(&input),
                    &format!("environment.{name}"),
                    "a variable without a value takes it from the shell when Compose runs (it is not in `.env`); give it a value",
                ),
            }
        }
        let mut odd = Vec::new();
        for (name, value) in env {
            let value = if is_secret_name(&name) {
                match as_literal(&value) {
                    // Empty is empty: nothing to keep secret, nothing to generate.
                    Some(literal) if literal.is_empty() => String::new(),
                    Some(literal) => {
                        let key = self.secret_key(&name, &service.name, literal);
                        format!("${{{key}}}")
                    }
                    None => self.template(&value),
                }
            } else {
                self.template(&value)
            };
            if is_key(&name) {
                service.set(&format!("ENV_{name}"), &value);
            } else if value.contains(',')
                || name.contains([',', '='])
                || name.chars().any(char::is_whitespace)
            {
                self.finding(
                    Some(&input),
                    &format!("environment.{name}"),
                    "a variable whose name is not upper-case goes into the `ENV` list, which cannot hold a comma",
                );
            } else {
                odd.push(format!("{name}={value}"));
            }
        }
        if !odd.is_empty() {
            service.set("ENV", &odd.join(","));
        }
        Ok(())
    }

    fn health(&mut self, service: &mut Service, node: &Node) {
        let input = service.input.clone();
        let Some(health) = node.get("healthcheck") else {
            return;
        };
        if matches!(health.get("disable"), Some(Node::Bool(true))) {
            self.finding(
                Some(&input),
                "healthcheck.disable",
                "stack cannot switch off the image's health check",
            );
            return;
        }
        if let Node::Map(keys) = health {
            if keys
                .iter()
                .all(|(k, v)| k == "disable" && matches!(v, Node::Bool(false)))
            {
                self.note(
                    Some(&input),
                    "healthcheck",
                    "`disable: false` changes nothing: the image's own health check applies",
                );
                return;
            }
        }
        let command = match health.get("test") {
            Some(Node::Seq(items)) => {
                let words: Vec<String> = items.iter().filter_map(Node::scalar).collect();
                match words.first().map(String::as_str) {
                    Some("CMD") if words.len() > 1 && !words.iter().any(|w| mentions_secret(w)) => {
                        // Exec form stays exec form: no shell in the container needed.
                        let argv: Vec<String> =
                            words[1..].iter().map(|w| self.template(w)).collect();
                        service.set("HEALTH_CMD", &exec_form(&argv));
                        self.health_timing(service, health);
                        return;
                    }
                    Some("CMD") => Some(join_words(&words[1..])),
                    Some("CMD-SHELL") => words.get(1).cloned(),
                    Some("NONE") => {
                        self.finding(
                            Some(&input),
                            "healthcheck.test",
                            "stack cannot switch off the image's health check",
                        );
                        None
                    }
                    _ => {
                        self.finding(
                            Some(&input),
                            "healthcheck.test",
                            "a test list starts with `CMD`, `CMD-SHELL` or `NONE`",
                        );
                        None
                    }
                }
            }
            Some(other) => other.scalar(),
            None => {
                self.finding(
                    Some(&input),
                    "healthcheck",
                    "a health check without `test` tunes the image's own; stack needs the command",
                );
                None
            }
        };
        let Some(command) = command else { return };
        let command = self.shell_secrets(service, &command);
        let command = self.template(&command);
        if command.contains(['\n', '\r']) {
            // A multi-line shell command: Docker runs `CMD-SHELL` as `/bin/sh -c`, which
            // the exec form says exactly, line breaks included.
            let argv = ["/bin/sh".to_string(), "-c".to_string(), command];
            service.set("HEALTH_CMD", &exec_form(&argv));
        } else {
            service.set("HEALTH_CMD", &command);
        }
        self.health_timing(service, health);
    }

    /// A health check's timing (Docker's defaults where the file has none: stack's own
    /// are shorter) and the keys stack has no attribute for.
    fn health_timing(&mut self, service: &mut Service, health: &Node) {
        let input = service.input.clone();
        for (key, attr, default) in [
            ("interval", "HEALTH_INTERVAL", "30s"),
            ("timeout", "HEALTH_TIMEOUT", "30s"),
            ("retries", "HEALTH_RETRIES", "3"),
            ("start_period", "HEALTH_START_PERIOD", "0s"),
        ] {
            let value = health
                .get(key)
                .and_then(Node::scalar)
                .unwrap_or_else(|| default.into());
            let value = self.template(&value);
            service.set(attr, &value);
        }
        if let Node::Map(entries) = health {
            for (key, _) in entries {
                if ![
                    "test",
                    "interval",
                    "timeout",
                    "retries",
                    "start_period",
                    "disable",
                ]
                .contains(&key.as_str())
                {
                    self.finding(
                        Some(&input),
                        &format!("healthcheck.{key}"),
                        "stack has no attribute for it",
                    );
                }
            }
        }
    }

    /// A health check runs in a shell with the container's environment: a secret it
    /// interpolates becomes `$NAME`, expanded there, and the service gets `ENV_NAME`.
    fn shell_secrets(&mut self, service: &mut Service, command: &str) -> String {
        let mut out = Vec::new();
        for piece in pieces(command) {
            match piece {
                Piece::Var { name, rest, .. } if rest.is_empty() && is_secret_name(&name) => {
                    let key = self.var(&name);
                    if self.secrets.contains_key(&key) || self.dotenv.contains_key(&name) {
                        self.secrets.entry(key.clone()).or_insert(None);
                    } else {
                        self.unset_secrets.insert(key.clone());
                    }
                    let attr = format!("ENV_{name}");
                    let prefix = format!("{}_{attr}=", service.prefix());
                    if is_key(&name) && !service.lines.iter().any(|l| l.starts_with(&prefix)) {
                        service.set(&attr, &format!("${{{key}}}"));
                    }
                    self.note(
                        Some(&service.input),
                        "healthcheck.test",
                        format!("the secret `{name}` is read from the container's environment (`${name}`), not written into the check"),
                    );
                    out.push(Piece::Text(format!("$${name}")));
                }
                other => out.push(other),
            }
        }
        super::text::join(&out)
    }

    fn depends_on(&mut self, service: &mut Service, node: &Node) {
        let input = service.input.clone();
        let mut names = Vec::new();
        match node.get("depends_on") {
            Some(Node::Seq(items)) => {
                for item in items.iter().filter_map(Node::scalar) {
                    if let Some(name) = self.dependency(&input, &item, "service_started") {
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
                    if let Node::Map(keys) = options {
                        for (key, value) in keys {
                            let fine = key == "condition"
                                || (key == "required" && matches!(value, Node::Bool(true)));
                            if !fine {
                                self.finding(
                                    Some(&input),
                                    &format!("depends_on.{name}.{key}"),
                                    "stack has no attribute for it",
                                );
                            }
                        }
                    }
                    if let Some(name) = self.dependency(&input, name, &condition) {
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

    fn dependency(&mut self, input: &str, name: &str, condition: &str) -> Option<String> {
        let Some(target) = self.names.get(name).cloned() else {
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

    /// `restart`, else `deploy.restart_policy.condition` (as Compose reads it), else `no`.
    fn restart(&mut self, service: &mut Service, node: &Node) {
        let input = service.input.clone();
        let policy = node.get("deploy").and_then(|d| d.get("restart_policy"));
        if let Some(Node::Map(keys)) = policy {
            for (key, _) in keys {
                if key != "condition" {
                    self.finding(
                        Some(&input),
                        &format!("deploy.restart_policy.{key}"),
                        "stack restarts with the engine's own back-off; only `condition` is carried",
                    );
                }
            }
        }
        let value = match node.get("restart") {
            Some(Node::Bool(false)) => "no".to_string(),
            Some(other) => match other.scalar() {
                Some(text) => self.template(&text),
                None => "no".into(),
            },
            None => match policy
                .and_then(|p| p.get("condition"))
                .and_then(Node::scalar)
            {
                None if policy.is_some() => "always".into(),
                None => "no".into(),
                Some(condition) => match condition.as_str() {
                    "any" | "always" => "always".into(),
                    "on-failure" => "on-failure".into(),
                    "none" | "no" => "no".into(),
                    other => {
                        self.finding(
                            Some(&input),
                            "deploy.restart_policy.condition",
                            format!("`{other}` is not `none`, `on-failure` or `any`"),
                        );
                        "no".into()
                    }
                },
            },
        };
        if self.jobs.contains(&service.name) && value != "no" {
            self.finding(
                Some(&input),
                "restart",
                format!("`{value}` on a job that another service waits for with `service_completed_successfully`: stack runs a job once (`RESTART=no`)"),
            );
            service.set("RESTART", "no");
            return;
        }
        service.set("RESTART", &value);
    }

    fn resources(&mut self, service: &mut Service, node: &Node) {
        let input = service.input.clone();
        let mut memory = node.get("mem_limit").and_then(Node::scalar);
        let mut cpus = node.get("cpus").and_then(Node::scalar);
        let mut replicas = node.get("scale").and_then(Node::scalar);
        if let Some(Node::Map(deploy)) = node.get("deploy") {
            for (key, value) in deploy {
                match key.as_str() {
                    "replicas" => replicas = value.scalar(),
                    "resources" => {
                        let Node::Map(parts) = value else { continue };
                        for (part, limits) in parts {
                            let Node::Map(limits) = limits else { continue };
                            for (limit, value) in limits {
                                match (part.as_str(), limit.as_str()) {
                                    ("limits", "memory") => memory = value.scalar(),
                                    ("limits", "cpus") => cpus = value.scalar(),
                                    ("reservations", "devices") if gpus(value).is_some() => {
                                        service.set("GPUS", &gpus(value).unwrap_or_default());
                                    }
                                    _ => self.finding(
                                        Some(&input),
                                        &format!("deploy.resources.{part}.{limit}"),
                                        "stack limits memory and CPUs and reserves GPUs only",
                                    ),
                                }
                            }
                        }
                    }
                    "restart_policy" => {}
                    "placement" => {
                        let constraints = match value.get("constraints") {
                            Some(Node::Seq(items)) => {
                                items.iter().filter_map(Node::scalar).collect::<Vec<_>>()
                            }
                            _ => Vec::new(),
                        };
                        if !constraints.is_empty() {
                            let joined: Vec<String> =
                                constraints.iter().map(|c| c.replace(' ', "")).collect();
                            service.set("PLACEMENT", &joined.join(","));
                        }
                        if let Node::Map(parts) = value {
                            for (part, _) in
                                parts.iter().filter(|(p, _)| p.as_str() != "constraints")
                            {
                                self.finding(
                                    Some(&input),
                                    &format!("deploy.placement.{part}"),
                                    "stack carries placement `constraints` only",
                                );
                            }
                        }
                    }
                    other => self.finding(
                        Some(&input),
                        &format!("deploy.{other}"),
                        "only `replicas`, `resources`, `restart_policy` and `placement` of `deploy` are carried",
                    ),
                }
            }
        }
        if let Some(replicas) = replicas.filter(|r| r != "1") {
            if self.jobs.contains(&service.name) {
                self.finding(
                    Some(&input),
                    "deploy.replicas",
                    format!("{replicas} replicas of a job that another service waits for with `service_completed_successfully`: stack runs a job once, one is imported"),
                );
            } else if publishes_fixed(node) && !self.options.routes {
                self.finding(
                    Some(&input),
                    "deploy.replicas",
                    format!("{replicas} replicas cannot share a fixed host port; one is imported (route the port with `--routes`, then set `REPLICAS`)"),
                );
            } else {
                service.set("REPLICAS", &replicas);
            }
        }
        if let Some(memory) = memory {
            let memory = self
                .resolved(Some(&input), "mem_limit", &memory)
                .unwrap_or(memory);
            match megabytes(&memory) {
                Some(mb) => service.set("MEMORY_MB", &mb.to_string()),
                None => self.finding(
                    Some(&input),
                    "mem_limit",
                    format!("`{memory}` is not a size stack can write in whole MB"),
                ),
            }
        }
        if let Some(cpus) = cpus {
            service.set("CPUS", &cpus);
        }
    }

    /// The single-valued and list options.
    fn options(&mut self, service: &mut Service, node: &Node) {
        let input = service.input.clone();
        for (key, attr) in [
            ("user", "USER"),
            ("working_dir", "WORKDIR"),
            ("hostname", "HOSTNAME"),
            ("stop_signal", "STOP_SIGNAL"),
            ("stop_grace_period", "STOP_GRACE"),
            ("platform", "PLATFORM"),
        ] {
            if let Some(value) = node.get(key).and_then(Node::scalar) {
                let value = self.template(&value);
                service.set(attr, &value);
            }
        }
        for (key, attr) in [("read_only", "READ_ONLY"), ("init", "INIT")] {
            if let Some(Node::Bool(value)) = node.get(key) {
                if *value {
                    service.set(attr, "true");
                }
            }
        }
        for (key, attr) in [("cap_add", "CAP_ADD"), ("cap_drop", "CAP_DROP")] {
            if let Some(Node::Seq(items)) = node.get(key) {
                let caps: Vec<String> = items.iter().filter_map(Node::scalar).collect();
                service.set(attr, &caps.join(","));
            }
        }
        if let Some(shm) = node.get("shm_size").and_then(Node::scalar) {
            let shm = self.resolved(Some(&input), "shm_size", &shm).unwrap_or(shm);
            match megabytes(&shm) {
                Some(mb) => service.set("SHM_MB", &mb.to_string()),
                None => self.finding(
                    Some(&input),
                    "shm_size",
                    format!("`{shm}` is not a size stack can write in whole MB"),
                ),
            }
        }
        for (key, attr) in [("sysctls", "SYSCTLS"), ("labels", "LABELS")] {
            let Some(value) = node.get(key) else { continue };
            let mut items = Vec::new();
            for (name, value) in pairs(value) {
                let value = value.unwrap_or_default();
                if value.contains(',') || name.contains(',') {
                    self.finding(
                        Some(&input),
                        &format!("{key}.{name}"),
                        "a value with a comma cannot be listed",
                    );
                    continue;
                }
                if key == "labels"
                    && (name.starts_with("com.docker.compose.") || name.starts_with("dev.stack."))
                {
                    self.finding(
                        Some(&input),
                        &format!("labels.{name}"),
                        "stack sets the labels under `com.docker.compose.` and `dev.stack.` itself",
                    );
                    continue;
                }
                let value = self.template(&value);
                items.push(format!("{name}={value}"));
            }
            if !items.is_empty() {
                service.set(attr, &items.join(","));
            }
        }
        if let Some(Node::Map(limits)) = node.get("ulimits") {
            let mut items = Vec::new();
            for (name, limit) in limits {
                match limit {
                    Node::Map(_) => {
                        let soft = limit.get("soft").and_then(Node::scalar);
                        let hard = limit.get("hard").and_then(Node::scalar);
                        if let (Some(soft), Some(hard)) = (soft, hard) {
                            items.push(format!("{name}={soft}:{hard}"));
                        }
                    }
                    other => {
                        if let Some(value) = other.scalar() {
                            items.push(format!("{name}={value}"));
                        }
                    }
                }
            }
            if !items.is_empty() {
                service.set("ULIMITS", &items.join(","));
            }
        }
        if let Some(hosts) = node.get("extra_hosts") {
            let items: Vec<String> = match hosts {
                Node::Map(entries) => entries
                    .iter()
                    .filter_map(|(host, ip)| ip.scalar().map(|ip| format!("{host}:{ip}")))
                    .collect(),
                Node::Seq(items) => items
                    .iter()
                    .filter_map(Node::scalar)
                    .map(|h| match h.split_once('=') {
                        Some((host, ip)) => format!("{host}:{ip}"),
                        None => h,
                    })
                    .collect(),
                _ => Vec::new(),
            };
            let mut trimmed = Vec::new();
            for item in items {
                let (entry, changed) = trim_host_entry(&item);
                if changed {
                    self.note(
                        Some(&input),
                        "extra_hosts",
                        format!("`{item}`: the spaces around the host and address are dropped (`{entry}`); the engine ignores them"),
                    );
                }
                trimmed.push(entry);
            }
            if !trimmed.is_empty() {
                service.set("EXTRA_HOSTS", &trimmed.join(","));
            }
        }
        if node.get("expose").is_some() {
            self.note(
                Some(&input),
                "expose",
                "not needed: services on one network reach every port of each other",
            );
        }
    }

    fn service_networks(&mut self, service: &mut Service, node: &Node) {
        let input = service.input.clone();
        let names: Vec<String> = match node.get("networks") {
            Some(Node::Seq(items)) => items.iter().filter_map(Node::scalar).collect(),
            Some(Node::Map(entries)) => {
                for (name, options) in entries {
                    if let Node::Map(options) = options {
                        for (key, _) in options {
                            self.finding(
                                Some(&input),
                                &format!("networks.{name}.{key}"),
                                "stack attaches services to networks by name only (no aliases, fixed addresses or priorities)",
                            );
                        }
                    }
                }
                entries.iter().map(|(name, _)| name.clone()).collect()
            }
            _ => return,
        };
        if names != ["default"] {
            service.set("NETWORKS", &names.join(","));
        }
    }

    /// The network a service's `networks` entry names: a `${VAR:-default}` entry is the
    /// `.env` value of VAR, or its default.
    fn chosen_network(&self, name: &str) -> String {
        let Some(inner) = name.strip_prefix("${").and_then(|n| n.strip_suffix('}')) else {
            return name.to_string();
        };
        let (var, default) = match inner.split_once(":-").or_else(|| inner.split_once('-')) {
            Some((var, default)) => (var, default),
            None => (inner, ""),
        };
        match self.dotenv.get(var) {
            Some((value, _)) => value.clone(),
            None => default.to_string(),
        }
    }

    /// `STACK_NETWORKS` from the top-level `networks`.
    fn networks(&mut self, doc: &Node) -> Option<String> {
        let Some(Node::Map(networks)) = doc.get("networks") else {
            return None;
        };
        let joined: std::collections::BTreeSet<String> = joined_networks(doc)
            .into_iter()
            .map(|name| self.chosen_network(&name))
            .collect();
        let mut out = Vec::new();
        for (name, options) in networks {
            let mut internal = false;
            if let Node::Map(options) = options {
                for (key, value) in options {
                    match (key.as_str(), value) {
                        ("internal", Node::Bool(b)) => internal = *b,
                        ("driver", driver) if driver.scalar().as_deref() == Some("bridge") => {}
                        (key, _) => self.finding(
                            None,
                            &format!("networks.{name}.{key}"),
                            "stack creates bridge networks named `<project>_<network>`; only `internal` is carried",
                        ),
                    }
                }
            }
            if name != "default" && !joined.contains(name) {
                self.finding(
                    None,
                    &format!("networks.{name}"),
                    "no service joins it as written (a variable choosing it is resolved when stack builds); stack declares only the networks its services join",
                );
            }
            if name == "default" {
                if internal {
                    self.finding(
                        None,
                        "networks.default.internal",
                        "the default network always has outside access",
                    );
                }
                continue;
            }
            out.push(if internal {
                format!("{name}:internal")
            } else {
                name.clone()
            });
        }
        (!out.is_empty()).then(|| out.join(","))
    }

    /// `SECRET_FILES` from the service's `secrets`, with the files' contents read.
    fn service_secrets(&mut self, service: &mut Service, node: &Node) -> Result<()> {
        let input = service.input.clone();
        let Some(Node::Seq(items)) = node.get("secrets") else {
            return Ok(());
        };
        let mut entries = Vec::new();
        for item in items {
            let (source, target) = match item {
                Node::Map(keys) => {
                    for (key, value) in keys {
                        let fine = key == "source"
                            || key == "target"
                            || (key == "mode"
                                && matches!(value, Node::Int(0o400) | Node::Int(400)));
                        if !fine {
                            self.finding(
                                Some(&input),
                                &format!("secrets.{key}"),
                                "stack mounts secret files with mode 0400, owned by root",
                            );
                        }
                    }
                    let Some(source) = item.get("source").and_then(Node::scalar) else {
                        continue;
                    };
                    let target = item
                        .get("target")
                        .and_then(Node::scalar)
                        .unwrap_or_else(|| source.clone());
                    (source, target)
                }
                other => {
                    let Some(source) = other.scalar() else {
                        continue;
                    };
                    (source.clone(), source)
                }
            };
            let Some(key) = self.file_secret(&input, &source)? else {
                continue;
            };
            entries.push(format!("{target}={key}"));
        }
        if !entries.is_empty() {
            service.set("SECRET_FILES", &entries.join(","));
        }
        Ok(())
    }

    /// The secret key holding the top-level secret `name`'s file, read once.
    fn file_secret(&mut self, input: &str, name: &str) -> Result<Option<String>> {
        if let Some(key) = self.file_secrets.get(name) {
            return Ok(Some(key.clone()));
        }
        let Some(path) = self.top_secret_file(input, name) else {
            return Ok(None);
        };
        let path = normalise(&self.dir.join(path));
        let Some(mut content) = self.reader.read(&path)? else {
            self.finding(
                Some(input),
                &format!("secrets.{name}"),
                format!("the secret's file `{}` does not exist", path.display()),
            );
            return Ok(None);
        };
        if content.ends_with('\n') {
            content.pop();
            if content.ends_with('\r') {
                content.pop();
            }
        }
        let key = self.secret_key(name, input, content);
        self.file_secrets.insert(name.to_string(), key.clone());
        Ok(Some(key))
    }

    fn top_secret_file(&mut self, input: &str, name: &str) -> Option<String> {
        let spec = self.top_secrets().and_then(|s| s.get(name).cloned());
        let Some(spec) = spec else {
            self.finding(
                Some(input),
                &format!("secrets.{name}"),
                "names no top-level secret",
            );
            return None;
        };
        match spec.get("file").and_then(Node::scalar) {
            Some(file) => Some(file),
            None => {
                self.finding(
                    None,
                    &format!("secrets.{name}"),
                    "only file secrets are carried (`environment` and `external` secrets are not)",
                );
                None
            }
        }
    }

    fn top_secrets(&self) -> Option<Node> {
        self.top_doc_secrets.clone()
    }

    /// `stack.env` as text.
    fn stack_env(
        &mut self,
        project: &str,
        services: &[Service],
        networks: Option<String>,
    ) -> String {
        let mut text = format!(
            "# Imported by `stack import compose` from `{}`.\n# Secret values are in `{DEV_SECRETS}` (mode 0600), never here.\n",
            self.source
        );
        text.push_str(&format!("STACK_PROJECT={project}\n"));
        let names: Vec<&str> = services.iter().map(|s| s.name.as_str()).collect();
        text.push_str(&format!("STACK_SERVICES={}\n", names.join(",")));
        text.push_str(&format!(
            "STACK_PROXY={}\n",
            if self.uses_proxy { "caddy" } else { "none" }
        ));
        if let Some(email) = self.tls_email.clone() {
            text.push_str(&format!("STACK_TLS_EMAIL={}\n", writer::template(&email)));
        }
        if let Some(networks) = networks {
            text.push_str(&format!("STACK_NETWORKS={networks}\n"));
        }
        // Values from `.env` that the file uses (and those they use in turn).
        let mut lines = Vec::new();
        let mut done = BTreeSet::new();
        let mut pending: Vec<String> = self.referenced.iter().cloned().collect();
        while let Some(name) = pending.pop() {
            if !done.insert(name.clone()) {
                continue;
            }
            let Some((template, _)) = self.dotenv.get(&name).cloned() else {
                continue;
            };
            pending.extend(references(&template));
            let key = self.var(&name);
            let value = self.template(&template);
            if is_secret_name(&key) && !value.is_empty() {
                let literal = as_literal(&value).unwrap_or(value);
                self.secrets.insert(key, Some(literal));
            } else if is_secret_name(&key) {
                // Left empty on purpose in `.env`: an empty value, not a secret.
                self.secrets.remove(&key);
                lines.push(format!("{key}={}", writer::template(&value)));
            } else {
                lines.push(format!("{key}={}", writer::template(&value)));
            }
        }
        let unused: Vec<(String, usize)> = self
            .dotenv
            .iter()
            .filter(|(name, _)| !done.contains(*name))
            .map(|(name, (_, line))| (name.clone(), *line))
            .collect();
        for (name, line) in unused {
            if self.dotenv_is_env_file {
                continue;
            }
            self.findings.push(Finding {
                service: None,
                key: format!(".env:{name}"),
                line: Some(line),
                reason: "not used by the Compose file's interpolation".into(),
                not_carried: false,
            });
        }
        let unset: Vec<String> = self
            .unset_secrets
            .iter()
            .filter(|name| !self.secrets.contains_key(*name))
            .cloned()
            .collect();
        for name in unset {
            self.findings.push(Finding {
                service: None,
                key: name.clone(),
                line: None,
                reason: format!(
                    "`{name}` has no value in the file or `.env`: as in Compose it is empty \
                     (with a warning), not a generated secret; give it a value in each \
                     environment's `secrets.env` (e.g. `{DEV_SECRETS}`)"
                ),
                not_carried: false,
            });
        }
        let secrets: Vec<&String> = self.secrets.keys().collect();
        if !secrets.is_empty() {
            text.push_str(&format!(
                "STACK_SECRETS={}\n",
                secrets
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(",")
            ));
        }
        let top_findings: Vec<String> = self
            .findings
            .iter()
            .filter(|f| f.not_carried && f.service.is_none())
            .map(|f| format!("# not carried: `{}`: {}", f.key, f.reason))
            .collect();
        for line in top_findings {
            text.push_str(&line);
            text.push('\n');
        }
        if !lines.is_empty() {
            lines.sort();
            text.push_str("\n# From `.env`\n");
            for line in lines {
                text.push_str(&line);
                text.push('\n');
            }
        }
        for service in services {
            text.push_str(&format!("\n# {}\n", service.input));
            for line in &service.lines {
                text.push_str(line);
                text.push('\n');
            }
        }
        text
    }
}

/// The secret value for `secrets.env`.
fn secret_value(value: &str) -> String {
    // A value with `${` keeps its interpolation; anything else is literal.
    if value.contains("${") {
        writer::template(value)
    } else {
        writer::literal(value)
    }
}

/// Preset secrets keep their names in `secrets.env` (`POSTGRES_PASSWORD`).
fn is_preset_secret(key: &str) -> bool {
    crate::config::presets::PRESETS
        .iter()
        .any(|p| p.secrets.contains(&key) || key.starts_with(&format!("{}_", p.name)))
}

/// The keys of a service in the Compose Specification.
pub fn spec_keys() -> &'static [&'static str] {
    &[
        "annotations",
        "attach",
        "blkio_config",
        "build",
        "cap_add",
        "cap_drop",
        "cgroup",
        "cgroup_parent",
        "command",
        "configs",
        "container_name",
        "cpu_count",
        "cpu_percent",
        "cpu_period",
        "cpu_quota",
        "cpu_rt_period",
        "cpu_rt_runtime",
        "cpu_shares",
        "cpus",
        "cpuset",
        "credential_spec",
        "depends_on",
        "deploy",
        "develop",
        "device_cgroup_rules",
        "devices",
        "dns",
        "dns_opt",
        "dns_search",
        "domainname",
        "entrypoint",
        "env_file",
        "environment",
        "expose",
        "extends",
        "external_links",
        "extra_hosts",
        "gpus",
        "group_add",
        "healthcheck",
        "hostname",
        "image",
        "init",
        "ipc",
        "isolation",
        "label_file",
        "labels",
        "links",
        "logging",
        "mac_address",
        "mem_limit",
        "mem_reservation",
        "mem_swappiness",
        "memswap_limit",
        "models",
        "network_mode",
        "networks",
        "oom_kill_disable",
        "oom_score_adj",
        "pid",
        "pids_limit",
        "platform",
        "ports",
        "post_start",
        "pre_start",
        "pre_stop",
        "privileged",
        "profiles",
        "provider",
        "pull_policy",
        "pull_refresh_after",
        "read_only",
        "restart",
        "runtime",
        "scale",
        "secrets",
        "security_opt",
        "shm_size",
        "stdin_open",
        "stop_grace_period",
        "stop_signal",
        "storage_opt",
        "sysctls",
        "tmpfs",
        "tty",
        "ulimits",
        "use_api_socket",
        "user",
        "userns_mode",
        "uts",
        "volumes",
        "volumes_from",
        "working_dir",
    ]
}

/// Words joined for a shell: a word that refers to a secret is double-quoted so that the
/// shell expands it (see `shell_secrets`); any other is quoted as needed.
/// A JSON array of strings: the project file's exec form of a command (each word
/// exactly, line breaks included).
fn exec_form(words: &[String]) -> String {
    serde_json::to_string(words).unwrap_or_default()
}

/// A command's words for the project file: joined with shell quoting where that reads
/// back the same, else the exec form (a word with a line break or control character).
fn argv_value(words: &[String]) -> String {
    if words.iter().any(|w| w.chars().any(char::is_control)) {
        exec_form(words)
    } else {
        shell_words::join(words)
    }
}

/// Does a word interpolate a secret.
fn mentions_secret(word: &str) -> bool {
    references(word).iter().any(|name| is_secret_name(name))
}

fn join_words(words: &[String]) -> String {
    words
        .iter()
        .map(|word| {
            if !references(word).iter().any(|name| is_secret_name(name)) {
                shell_words::quote(word).into_owned()
            } else {
                let escaped = word
                    .replace('\\', "\\\\")
                    .replace('"', "\\\"")
                    .replace('`', "\\`");
                format!("\"{escaped}\"")
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Does `text` name `host` as a host: a word of it (`[A-Za-z0-9_.-]`) equal to it, not
/// a URL scheme (`redis://`).
fn names_host(text: &str, host: &str) -> bool {
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

/// Two services that publish the same literal host port (same address and protocol):
/// Compose starts both and the second cannot bind it (`port is already allocated`), and
/// stack refuses such a project. The import refuses it first, naming both, rather than
/// silently dropping one.
fn port_clash(services: &[(String, Node)]) -> Result<()> {
    let mut seen: BTreeMap<(String, String, String), &str> = BTreeMap::new();
    for (name, node) in services {
        let Some(Node::Seq(ports)) = node.get("ports") else {
            continue;
        };
        for port in ports {
            let Some(text) = port.scalar() else { continue };
            if text.contains('$') {
                continue;
            }
            let (body, protocol) = text.split_once('/').unwrap_or((&text, "tcp"));
            let parts: Vec<&str> = body.rsplitn(3, ':').collect();
            let (host, ip) = match parts.as_slice() {
                [_, host] => (*host, ""),
                [_, host, ip] => (*host, *ip),
                _ => continue,
            };
            if host.is_empty() || host.contains('-') {
                continue;
            }
            let key = (ip.to_string(), host.to_string(), protocol.to_string());
            if let Some(first) = seen.get(&key) {
                return Err(Diagnostic::new(format!(
                    "host port {host} is published by both `{first}` and `{name}`: Compose starts both and the second cannot bind it"
                ))
                .hint("give one of them another host port, or put one in a `profiles:` entry")
                .into());
            }
            seen.insert(key, name);
        }
    }
    Ok(())
}

/// Does the service publish a port on a fixed host port.
fn publishes_fixed(service: &Node) -> bool {
    let Some(Node::Seq(ports)) = service.get("ports") else {
        return false;
    };
    ports.iter().any(|port| match port {
        Node::Map(_) => port.get("published").is_some(),
        other => other
            .scalar()
            .is_some_and(|p| p.split('/').next().unwrap_or_default().contains(':')),
    })
}

fn has_health(service: &Node) -> bool {
    let Some(health) = service.get("healthcheck") else {
        return false;
    };
    if matches!(health.get("disable"), Some(Node::Bool(true))) {
        return false;
    }
    match health.get("test") {
        Some(Node::Seq(items)) => items
            .first()
            .and_then(Node::scalar)
            .is_some_and(|first| first == "CMD" || first == "CMD-SHELL"),
        Some(other) => other.scalar().is_some(),
        None => false,
    }
}

fn mounts_caddyfile(services: &[(String, Node)]) -> bool {
    services
        .iter()
        .any(|(_, service)| match service.get("volumes") {
            Some(Node::Seq(items)) => items.iter().any(|item| {
                let source = match item {
                    Node::Map(_) => item.get("source").and_then(Node::scalar),
                    other => other.scalar(),
                };
                source.is_some_and(|s| s.contains("Caddyfile"))
            }),
            _ => false,
        })
}

/// The repository's last path part without tag: `library/postgres:16` → `postgres`.
fn image_name(image: &str) -> &str {
    let without_digest = image.split('@').next().unwrap_or(image);
    let last = without_digest.rsplit('/').next().unwrap_or(without_digest);
    last.split(':').next().unwrap_or(last)
}

/// A mapping or a `KEY=VALUE` list as pairs; a value is `None` when absent.
fn pairs_opt(node: Option<&Node>) -> Vec<(String, Option<String>)> {
    match node {
        Some(node) => pairs(node),
        None => Vec::new(),
    }
}

fn pairs(node: &Node) -> Vec<(String, Option<String>)> {
    match node {
        Node::Map(entries) => entries
            .iter()
            .map(|(k, v)| (k.clone(), v.scalar()))
            .collect(),
        Node::Seq(items) => items
            .iter()
            .filter_map(Node::scalar)
            .map(|item| match item.split_once('=') {
                Some((k, v)) => (k.to_string(), Some(v.to_string())),
                None => (item, None),
            })
            .collect(),
        _ => Vec::new(),
    }
}

struct EnvFile {
    path: String,
    required: bool,
}

fn env_files(node: Option<&Node>) -> Vec<EnvFile> {
    let one = |node: &Node| -> Option<EnvFile> {
        match node {
            Node::Map(_) => Some(EnvFile {
                path: node.get("path").and_then(Node::scalar)?,
                required: !matches!(node.get("required"), Some(Node::Bool(false))),
            }),
            other => Some(EnvFile {
                path: other.scalar()?,
                required: true,
            }),
        }
    };
    match node {
        Some(Node::Seq(items)) => items.iter().filter_map(one).collect(),
        Some(other) => one(other).into_iter().collect(),
        None => Vec::new(),
    }
}

/// `all` or a count from `deploy.resources.reservations.devices`, when it asks for GPUs.
fn gpus(devices: &Node) -> Option<String> {
    let Node::Seq(items) = devices else {
        return None;
    };
    let device = items.first()?;
    let capabilities = device.get("capabilities")?;
    let Node::Seq(caps) = capabilities else {
        return None;
    };
    if !caps.iter().any(|c| c.scalar().as_deref() == Some("gpu")) {
        return None;
    }
    Some(
        device
            .get("count")
            .and_then(Node::scalar)
            .unwrap_or_else(|| "all".into()),
    )
}

/// A Compose size (`512m`, `1g`, `1073741824`, `256M`) in whole MiB.
/// The network names services join literally (`networks:` as a list or a map's keys);
/// a service without `networks` joins `default`.
fn joined_networks(doc: &Node) -> std::collections::BTreeSet<String> {
    let mut joined = std::collections::BTreeSet::new();
    if let Some(Node::Map(services)) = doc.get("services") {
        for (_, service) in services {
            match service.get("networks") {
                Some(Node::Seq(items)) => joined.extend(items.iter().filter_map(Node::scalar)),
                Some(Node::Map(entries)) => joined.extend(entries.iter().map(|(n, _)| n.clone())),
                _ => {
                    joined.insert("default".to_string());
                }
            }
        }
    }
    joined
}

/// An `extra_hosts` entry without the spaces around its host and address (the engine
/// ignores them), and whether there were any.
fn trim_host_entry(entry: &str) -> (String, bool) {
    let trimmed = match entry.split_once(':') {
        Some((host, ip)) => format!("{}:{}", host.trim(), ip.trim()),
        None => entry.trim().to_string(),
    };
    let changed = trimmed != entry;
    (trimmed, changed)
}

fn megabytes(text: &str) -> Option<u64> {
    let text = text.trim().to_ascii_lowercase();
    let text = text.strip_suffix('b').unwrap_or(&text);
    let (number, unit) = match text.find(|c: char| c.is_ascii_alphabetic()) {
        Some(at) => (&text[..at], &text[at..]),
        None => (text, ""),
    };
    let number: f64 = number.parse().ok()?;
    let bytes = number
        * match unit {
            "" => 1.0,
            "k" => 1024.0,
            "m" => 1024.0 * 1024.0,
            "g" => 1024.0 * 1024.0 * 1024.0,
            _ => return None,
        };
    let mb = bytes / (1024.0 * 1024.0);
    (mb >= 1.0 && mb.fract() == 0.0).then_some(mb as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(megabytes("512m"), Some(512));
        assert_eq!(megabytes("1g"), Some(1024));
        assert_eq!(megabytes("1GB"), Some(1024));
        assert_eq!(megabytes("1048576"), Some(1));
        assert_eq!(megabytes("100k"), None);
    }

    #[test]
    fn image_names() {
        assert_eq!(image_name("postgres:16"), "postgres");
        assert_eq!(image_name("docker.io/library/redis:7@sha256:ab"), "redis");
    }
}

#[cfg(test)]
mod import_tests {
    use std::collections::BTreeMap;
    use std::path::{Path, PathBuf};

    use super::*;

    /// Files in memory.
    struct Files(BTreeMap<PathBuf, String>);

    impl Reader for Files {
        fn read(&self, path: &Path) -> Result<Option<String>> {
            Ok(self.0.get(path).cloned())
        }

        fn folders(&self, _dir: &Path) -> Vec<String> {
            Vec::new()
        }
    }

    fn run(files: &[(&str, &str)], routes: bool) -> Imported {
        try_run(files, routes, None).unwrap()
    }

    fn run_with(files: &[(&str, &str)], home: Option<&str>) -> Imported {
        try_run(files, false, home).unwrap()
    }

    fn try_run(files: &[(&str, &str)], routes: bool, home: Option<&str>) -> Result<Imported> {
        let files = Files(
            files
                .iter()
                .map(|(p, t)| (Path::new("/src").join(p), t.to_string()))
                .collect(),
        );
        let options = Options {
            file: "/src/docker-compose.yml".into(),
            project_dir: "/project".into(),
            routes,
            caddyfile: None,
            home: home.map(PathBuf::from),
            extra_files: Vec::new(),
            profiles: Vec::new(),
        };
        import(&files, &options)
    }

    fn file<'a>(imported: &'a Imported, path: &str) -> &'a str {
        &imported
            .files
            .iter()
            .find(|f| f.path == path)
            .unwrap()
            .contents
    }

    #[test]
    fn a_secret_default_becomes_the_dev_secret_and_reserved_names_are_renamed() {
        let imported = run(
            &[(
                "docker-compose.yml",
                "services:\n  web:\n    image: app:${STACK_TAG:-1}\n    environment:\n      DB_PASSWORD: ${DB_PASSWORD:-devpass}\n      URL: http://x/${POSTGRES_DB}\n",
            )],
            false,
        );
        let env = file(&imported, PROJECT_FILE);
        assert!(
            env.contains("SERVICE_WEB_IMAGE=app:${IMPORTED_STACK_TAG:-1}"),
            "{env}"
        );
        assert!(
            env.contains("SERVICE_WEB_ENV_DB_PASSWORD=${DB_PASSWORD}\n"),
            "{env}"
        );
        assert!(
            env.contains("SERVICE_WEB_ENV_URL=http://x/${IMPORTED_POSTGRES_DB}"),
            "{env}"
        );
        assert!(env.contains("STACK_SECRETS=DB_PASSWORD\n"), "{env}");
        assert!(!env.contains("devpass"), "{env}");
        assert!(file(&imported, DEV_SECRETS).contains("DB_PASSWORD='devpass'"));
    }

    #[test]
    fn long_syntax_env_files_ports_and_bind_paths() {
        let imported = run(
            &[
                (
                    "docker-compose.yml",
                    "services:\n  web:\n    image: nginx\n    env_file:\n      - path: ./a.env\n      - path: ./missing.env\n        required: false\n    ports:\n      - target: 80\n        published: 8080\n        host_ip: 127.0.0.1\n    volumes:\n      - ./html:/usr/share/nginx/html:ro,z\n",
                ),
                ("a.env", "A=1\nAPI_TOKEN=t0ken\n"),
            ],
            false,
        );
        let env = file(&imported, PROJECT_FILE);
        assert!(env.contains("SERVICE_WEB_ENV_A=1\n"), "{env}");
        assert!(
            env.contains("SERVICE_WEB_ENV_API_TOKEN=${API_TOKEN}\n"),
            "{env}"
        );
        assert!(
            env.contains("SERVICE_WEB_PUBLISH=127.0.0.1:8080:80\n"),
            "{env}"
        );
        assert!(
            env.contains("SERVICE_WEB_VOLUMES=/src/html:/usr/share/nginx/html:ro\n"),
            "{env}"
        );
        let keys: Vec<&str> = imported.not_carried().map(|f| f.key.as_str()).collect();
        assert_eq!(keys, ["volumes"], "{:?}", imported.findings);
    }

    proptest::proptest! {
        /// Any text, YAML or not, is an answer (a project or an error), never a panic.
        #[test]
        fn any_text_is_imported_or_refused(text in "(services:\n|  [a-z]{1,3}:|    (image|ports|volumes|environment|healthcheck|depends_on|secrets|networks|command|build|env_file): |[-:{}\\[\\],&*!<>$\"' a-z0-9/.=]{0,12}|\n){0,40}") {
            let files = Files([(PathBuf::from("/src/docker-compose.yml"), text)].into_iter().collect());
            let options = Options {
                file: "/src/docker-compose.yml".into(),
                project_dir: "/project".into(),
                routes: true,
                caddyfile: None,
                home: None,
            extra_files: Vec::new(),
            profiles: Vec::new(),
            };
            let _ = import(&files, &options);
        }
    }

    #[test]
    fn a_published_http_port_becomes_a_route_with_routes() {
        let compose = "services:\n  web:\n    image: app\n    ports: [\"8000:8080\", \"9229:9229\"]\n  db:\n    image: postgres:16\n    ports: [\"5432:5432\"]\n";
        let imported = run(&[("docker-compose.yml", compose)], true);
        let env = file(&imported, PROJECT_FILE);
        assert!(env.contains("STACK_PROXY=caddy\n"), "{env}");
        assert!(env.contains("SERVICE_WEB_PORT=8080\n"), "{env}");
        assert!(
            env.contains("SERVICE_WEB_ROUTE=web.${STACK_DOMAIN}\n"),
            "{env}"
        );
        assert!(env.contains("SERVICE_WEB_PUBLISH=9229:9229\n"), "{env}");
        assert!(env.contains("SERVICE_DB_PUBLISH=5432:5432\n"), "{env}");
        assert!(!env.contains("SERVICE_DB_ROUTE"), "{env}");
    }

    #[test]
    fn interpolation_inside_a_list_entry_is_carried_whole() {
        let imported = run_with(
            &[(
                "docker-compose.yml",
                "services:\n  kong:\n    image: kong:3.6\n    volumes:\n      - kong_prefix_vol:${KONG_PREFIX:-/var/run/kong}\n      - ~/data:/data:ro\n    ports:\n      - \"${KONG_BIND:-}:8443:8443/tcp\"\n      - \":80:80\"\n",
            )],
            Some("/home/u"),
        );
        let env = file(&imported, "stack.env");
        assert!(
            env.contains("SERVICE_KONG_VOLUMES=kong_prefix_vol:${KONG_PREFIX:-/var/run/kong},/home/u/data:/data:ro\n"),
            "{env}"
        );
        assert!(
            env.contains("SERVICE_KONG_PUBLISH=${KONG_BIND:+${KONG_BIND}:}8443:8443/tcp,80:80\n"),
            "{env}"
        );
    }

    #[test]
    fn two_services_on_one_host_port_are_refused_naming_both() {
        let Err(err) = try_run(
            &[(
                "docker-compose.yml",
                "services:\n  app:\n    image: x\n    ports: [\"9000:9000\"]\n  demo-app:\n    image: x\n    ports: [\"9000:9000\"]\n  other:\n    image: x\n    ports: [\"127.0.0.1:9000:9000\", \"9000:9000/udp\"]\n",
            )],
            false,
            None,
        )
        else {
            panic!("two services on host port 9000 were accepted");
        };
        let err = err.to_string();
        assert!(
            err.contains("host port 9000 is published by both `app` and `demo-app`"),
            "{err}"
        );
    }

    #[test]
    fn a_port_entry_that_is_one_variable_keeps_its_default_a_port() {
        // Immich's `${EXPOSE_PORT-:2283:2283}`: unset, Compose publishes 2283 on every
        // address; set, the variable's value is the whole entry.
        let imported = run(
            &[(
                "docker-compose.yml",
                "services:\n  immich-server:\n    image: x\n    ports:\n      - ${EXPOSE_PORT-:2283:2283}\n      - ${OTHER:-:80:80}\n      - ${PLAIN:-8080:8080}\n",
            )],
            false,
        );
        let env = file(&imported, "stack.env");
        assert!(
            env.contains("SERVICE_IMMICH_SERVER_PUBLISH=${EXPOSE_PORT-2283:2283},${OTHER:-80:80},${PLAIN:-8080:8080}\n"),
            "{env}"
        );
    }

    #[test]
    fn restart_policies_and_empty_values() {
        let imported = run(
            &[
                (
                    "docker-compose.yml",
                    "services:\n  a:\n    image: x\n    deploy:\n      restart_policy:\n        condition: any\n  b:\n    image: x\n    deploy:\n      restart_policy:\n        condition: on-failure\n        max_attempts: 3\n  c:\n    image: x\n    restart: ${RESTART_POLICY}\n    deploy:\n      restart_policy:\n        condition: none\n    environment:\n      MYSQL_SSL_KEY: \"\"\n      ADMIN_PASSWORD: ''\n      DB_PASSWORD: ${DB_PASSWORD}\n      API_TOKEN: ${API_TOKEN:-}\n      REAL_SECRET: s3cr3t\n",
                ),
                (".env", "RESTART_POLICY=always\nEMPTY_TOKEN=\n"),
            ],
            false,
        );
        let env = file(&imported, "stack.env");
        for line in [
            "SERVICE_A_RESTART=always\n",
            "SERVICE_B_RESTART=on-failure\n",
            "SERVICE_C_RESTART=${RESTART_POLICY}\n",
            "RESTART_POLICY=always\n",
            "SERVICE_C_ENV_MYSQL_SSL_KEY=\"\"\n",
            "SERVICE_C_ENV_ADMIN_PASSWORD=\"\"\n",
            "SERVICE_C_ENV_DB_PASSWORD=${DB_PASSWORD}\n",
            "SERVICE_C_ENV_API_TOKEN=${API_TOKEN:-}\n",
            "SERVICE_C_ENV_REAL_SECRET=${REAL_SECRET}\n",
            "STACK_SECRETS=REAL_SECRET\n",
        ] {
            assert!(env.contains(line), "{line} in\n{env}");
        }
        assert_eq!(
            file(&imported, DEV_SECRETS).lines().last(),
            Some("REAL_SECRET='s3cr3t'")
        );
        assert!(imported
            .findings
            .iter()
            .any(|f| f.key == "deploy.restart_policy.max_attempts" && f.not_carried));
        assert!(imported
            .findings
            .iter()
            .any(|f| f.key == "DB_PASSWORD" && f.reason.contains("as in Compose it is empty")));
    }

    #[test]
    fn completed_successfully_is_a_job() {
        let imported = run(
            &[(
                "docker-compose.yml",
                "services:\n  init:\n    image: x\n    command: migrate\n  seed:\n    image: x\n    restart: unless-stopped\n    scale: 2\n  app:\n    image: x\n    restart: always\n    depends_on:\n      init:\n        condition: service_completed_successfully\n      seed:\n        condition: service_completed_successfully\n  web:\n    image: x\n    depends_on: [init]\n",
            )],
            false,
        );
        let env = file(&imported, "stack.env");
        for line in [
            "SERVICE_APP_DEPENDS_ON=init:completed,seed:completed\n",
            "SERVICE_WEB_DEPENDS_ON=init:completed\n",
            "SERVICE_INIT_RESTART=no\n",
            "SERVICE_SEED_RESTART=no\n",
            "SERVICE_APP_RESTART=always\n",
        ] {
            assert!(env.contains(line), "{line} in\n{env}");
        }
        assert!(!env.contains("SERVICE_SEED_REPLICAS"), "{env}");
        let finding = |service: &str, key: &str| {
            imported
                .findings
                .iter()
                .find(|f| f.service.as_deref() == Some(service) && f.key == key)
                .unwrap_or_else(|| panic!("{service} {key}: {:?}", imported.findings))
        };
        assert!(finding("seed", "restart").not_carried);
        assert!(finding("seed", "deploy.replicas").not_carried);
        assert!(!finding("web", "depends_on.init").not_carried);
        assert!(!imported
            .findings
            .iter()
            .any(|f| f.reason.contains("one-off job is not carried")));
    }

    #[test]
    fn network_modes_and_terminals_are_refused_with_what_to_write() {
        let imported = run(
            &[(
                "docker-compose.yml",
                "services:\n  vpn:\n    image: wg\n    network_mode: host\n    tty: true\n    stdin_open: false\n  app:\n    image: a\n    network_mode: service:vpn\n",
            )],
            false,
        );
        let find = |service: &str, key: &str| {
            imported
                .findings
                .iter()
                .find(|f| f.service.as_deref() == Some(service) && f.key == key)
                .cloned()
                .unwrap()
        };
        let mode = find("app", "network_mode");
        assert!(
            mode.not_carried && mode.reason.contains("`service:NAME`"),
            "{mode:?}"
        );
        assert!(mode.reason.contains("PUBLISH"), "{mode:?}");
        assert!(find("vpn", "tty").not_carried);
        assert!(!find("vpn", "stdin_open").not_carried);
    }

    #[test]
    fn a_renamed_service_s_old_host_name_in_a_value_is_listed() {
        assert!(names_host("redis://redis:6379/0", "redis"));
        assert!(names_host("postgres://u:p@postgres/db", "postgres"));
        assert!(!names_host("redis://cache:6379", "redis"));
        assert!(!names_host("myredis:6379", "redis"));
        // A preset's name is the project's while the preset is off: nothing renamed.
        let imported = run(
            &[(
                "docker-compose.yml",
                "services:\n  app:\n    image: a\n    environment:\n      REDIS_URL: redis://redis:6379\n      CACHE: redis\n  redis:\n    image: redis:7\n",
            )],
            false,
        );
        assert!(
            imported
                .findings
                .iter()
                .all(|f| !f.reason.contains("names the host")),
            "{:?}",
            imported
                .findings
                .iter()
                .map(|f| &f.reason)
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn literal_keys_are_read_with_dotenv_as_compose_reads_them() {
        let imported = run(
            &[
                (
                    "docker-compose.yml",
                    "name: ${PROJECT:-shop}\nservices:\n  app:\n    build: ${SRC:-./app}\n    mem_limit: ${APP_MEMORY}\n    shm_size: ${SHM:-64m}\n",
                ),
                (".env", "APP_MEMORY=1g\n"),
            ],
            false,
        );
        let env = file(&imported, "stack.env");
        for line in [
            "STACK_PROJECT=shop\n",
            "SERVICE_APP_BUILD=/src/app\n",
            "SERVICE_APP_MEMORY_MB=1024\n",
            "SERVICE_APP_SHM_MB=64\n",
        ] {
            assert!(env.contains(line), "{line} in\n{env}");
        }
        assert!(imported
            .findings
            .iter()
            .any(|f| f.key == "mem_limit" && f.reason.contains("read with `.env` now")));
    }

    #[test]
    fn includes_and_extends_that_loop_are_refused() {
        let err = try_run(
            &[
                (
                    "docker-compose.yml",
                    "include: [a.yml, a.yml]\nservices:\n  web:\n    image: x\n",
                ),
                ("a.yml", "include: [a.yml, a.yml, a.yml]\nservices: {}\n"),
            ],
            false,
            None,
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("chains deeper") || text.contains("more than"),
            "{text}"
        );
        let err = try_run(
            &[(
                "docker-compose.yml",
                "services:\n  a:\n    extends: b\n  b:\n    extends: a\n",
            )],
            false,
            None,
        )
        .unwrap_err();
        assert!(err.to_string().contains("chains deeper"), "{err}");
    }

    #[test]
    fn a_variable_without_a_value_takes_the_dotenv_value() {
        let imported = run(
            &[
                (
                    "docker-compose.yml",
                    "services:\n  a:\n    image: x\n    environment:\n      - TZ\n      - API_TOKEN\n      - MISSING\n",
                ),
                (".env", "TZ=Europe/Paris\nAPI_TOKEN=tok123\n"),
            ],
            false,
        );
        let env = file(&imported, "stack.env");
        assert!(env.contains("SERVICE_A_ENV_TZ=${TZ}\n"), "{env}");
        assert!(env.contains("TZ=Europe/Paris\n"), "{env}");
        assert!(
            env.contains("SERVICE_A_ENV_API_TOKEN=${API_TOKEN}\n"),
            "{env}"
        );
        assert!(!env.contains("tok123"), "{env}");
        assert!(file(&imported, DEV_SECRETS).contains("API_TOKEN='tok123'"));
        assert!(imported
            .findings
            .iter()
            .any(|f| f.key == "environment.MISSING" && f.not_carried));
    }

    #[test]
    fn extra_hosts_spaces_are_dropped_with_a_note() {
        // Invoice Ninja ships `"in5.localhost:192.168.0.124 "` (a trailing space).
        let imported = run(
            &[(
                "docker-compose.yml",
                "services:\n  web:\n    image: nginx\n    extra_hosts:\n      - \"in5.localhost:192.168.0.124 \"\n      - \"db.local:10.0.0.2\"\n",
            )],
            false,
        );
        let env = file(&imported, PROJECT_FILE);
        assert!(
            env.contains("SERVICE_WEB_EXTRA_HOSTS=in5.localhost:192.168.0.124,db.local:10.0.0.2\n"),
            "{env}"
        );
        let notes: Vec<_> = imported
            .findings
            .iter()
            .filter(|f| f.key == "extra_hosts")
            .collect();
        assert_eq!(notes.len(), 1, "{:?}", imported.findings);
        assert!(!notes[0].not_carried);
        assert!(notes[0].reason.contains("`in5.localhost:192.168.0.124 `"));
    }

    #[test]
    fn a_network_no_service_joins_is_listed_as_not_carried() {
        // SonarQube's example declares `ipv4` and `dual`; services join
        // `${NETWORK_TYPE:-ipv4}`, so `dual` is declared but not joined.
        let compose = "services:\n  web:\n    image: nginx\n    networks:\n      - ${NETWORK_TYPE:-ipv4}\n  db:\n    image: postgres\n    networks: [back]\nnetworks:\n  ipv4:\n  dual:\n  back:\n";
        let imported = run(&[("docker-compose.yml", compose)], false);
        let unused: Vec<&str> = imported
            .not_carried()
            .filter(|f| f.key.starts_with("networks."))
            .map(|f| f.key.as_str())
            .collect();
        assert_eq!(unused, ["networks.dual"], "{:?}", imported.findings);
        // With `.env` choosing `dual`, it is `ipv4` that no service joins.
        let imported = run(
            &[
                ("docker-compose.yml", compose),
                (".env", "NETWORK_TYPE=dual\n"),
            ],
            false,
        );
        let unused: Vec<&str> = imported
            .not_carried()
            .filter(|f| f.key.starts_with("networks."))
            .map(|f| f.key.as_str())
            .collect();
        assert_eq!(unused, ["networks.ipv4"], "{:?}", imported.findings);
    }
}
