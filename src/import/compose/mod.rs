//! A Compose file (the Compose Specification, any `version:`) to a stack project: the
//! driver. It reads the documents (`documents.rs`, `profiles.rs`), names the services
//! (`names.rs`), classifies each service key (`keys.rs`), hands each carried section to
//! its translator (one file per section) and serialises the typed draft they fill
//! (`draft.rs`).
//!
//! Each service key maps to one attribute, or becomes a [`Finding`]. Values keep their
//! Compose interpolation (`${VAR:-default}` is the same text in `stack.env`); the `.env`
//! beside the file supplies values: plain keys for ordinary ones, `secrets.env` for the
//! ones whose names say they are secrets.

mod command;
mod configs;
mod depends_on;
mod deploy;
mod documents;
mod draft;
mod environment;
mod health;
mod host;
mod image;
mod interpolation;
mod keys;
mod names;
mod networks;
mod options;
mod ports;
mod profiles;
mod routes;
mod secrets;
mod volumes;
mod volumes_from;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use super::yaml::{self, Locator, Node};
use super::{
    caddyfile, dotenv, embeds_credentials, input_error, is_key, is_reserved_key, is_secret_name,
    key_name, normalise, project_name, project_path, service_name, text, Finding, Imported,
    OutFile, Reader, DEV_SECRETS, PROJECT_FILE,
};
use crate::config::attrs::size_unit;
use crate::error::{Diagnostic, Error, Result};
use draft::{ProjectDraft, ServiceDraft};
use networks::external_networks;

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
    /// The top-level `configs` mapping, and the files written for its `content:` and
    /// `environment:` configs.
    top_doc_configs: Option<Node>,
    config_files: Vec<OutFile>,
    /// A service reads `.env` as its `env_file` (its values are carried there).
    dotenv_is_env_file: bool,
    /// Secret references with no value anywhere (empty in dev, as in Compose).
    unset_secrets: BTreeSet<String>,
    /// Secret variables whose references disagree on their default (each keeps its own).
    mixed_defaults: BTreeSet<String>,
    /// Services left out by their profiles → the profiles.
    left_out: BTreeMap<String, Vec<String>>,
    /// The json-file rotation the services' `logging` gives: (`max-size`, `max-file`)
    /// and the first service that gave it.
    log_rotation: Option<(String, String, String)>,
    /// External networks: the file's name → the engine's name.
    external_networks: BTreeMap<String, String>,
    /// Project service name → the other names it answers to (`ALIASES`).
    aliases: BTreeMap<String, BTreeSet<String>>,
}

/// Import the Compose file named by `options`.
pub fn import(reader: &dyn Reader, options: &Options) -> Result<Imported> {
    let source = options
        .file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "compose file".into());
    let dir = options
        .file
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let read = documents::read(reader, options, &dir, &source)?;
    let services =
        documents::check_shape(&read.doc, &options.file.display().to_string(), &read.text)?;
    let mut import = Import {
        reader,
        options,
        dir,
        source,
        locator: Locator::new(&read.text),
        findings: read.findings,
        left_out: read.left_out,
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
        top_doc_secrets: read.doc.get("secrets").cloned(),
        top_doc_configs: read.doc.get("configs").cloned(),
        config_files: Vec::new(),
        dotenv_is_env_file: false,
        unset_secrets: BTreeSet::new(),
        mixed_defaults: interpolation::mixed_defaults(&read.doc),
        aliases: BTreeMap::new(),
        external_networks: BTreeMap::new(),
        log_rotation: None,
    };
    import.read_dotenv()?;
    import.run(&read.doc, services)
}

impl Import<'_> {
    pub(super) fn finding(&mut self, service: Option<&str>, key: &str, reason: impl Into<String>) {
        self.push(service, key, reason.into(), true);
    }

    pub(super) fn note(&mut self, service: Option<&str>, key: &str, reason: impl Into<String>) {
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

    fn run(mut self, doc: &Node, services: &[(String, Node)]) -> Result<Imported> {
        self.top_level(doc);
        self.external_networks = external_networks(doc);
        self.name_services(services);
        let caddy = self.read_caddyfile(services)?;
        self.healthy = services
            .iter()
            .filter(|(_, s)| health::has_health(s))
            .map(|(name, _)| self.names[name].clone())
            .collect();
        self.jobs = self.jobs(services);
        ports::port_clash(services)?;
        let mut drafts = Vec::new();
        for (input, node) in services {
            drafts.push(self.service(input, node, &caddy)?);
        }
        self.volumes_from(&mut drafts, services);
        let networks = self.networks(doc);
        let project = self.project(doc);
        let draft = self.draft(project, drafts, networks);
        let renamed = self
            .names
            .iter()
            .filter(|(a, b)| a != b)
            .map(|(a, b)| (a.clone(), b.clone()))
            .collect();
        let mut files = draft.files();
        files.append(&mut self.config_files);
        Ok(Imported {
            files,
            findings: self.findings,
            project: draft.project,
            services: draft.services.iter().map(|s| s.name.clone()).collect(),
            renamed,
            secrets: self.secrets.keys().cloned().collect(),
        })
    }

    /// Jobs: the project names of services another waits for with
    /// `service_completed_successfully`.
    fn jobs(&self, services: &[(String, Node)]) -> BTreeSet<String> {
        services
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
            .collect()
    }

    /// The whole project as a draft: the services, then what `.env` supplies and the
    /// top-level settings (carrying `.env` may still add secrets and findings).
    fn draft(
        &mut self,
        project: String,
        services: Vec<ServiceDraft>,
        networks: Option<String>,
    ) -> ProjectDraft {
        let from_dotenv = self.carry_dotenv();
        ProjectDraft {
            source: self.source.clone(),
            project,
            services,
            proxy: self.uses_proxy,
            tls_email: self.tls_email.clone(),
            networks,
            secrets: self.secrets.keys().cloned().collect(),
            not_carried: self
                .findings
                .iter()
                .filter(|f| f.not_carried && f.service.is_none())
                .map(|f| (f.key.clone(), f.reason.clone()))
                .collect(),
            from_dotenv,
            log_rotation: self
                .log_rotation
                .as_ref()
                .map(|(size, files, _)| (size.clone(), files.clone())),
            dev_secrets: self
                .secrets
                .iter()
                .filter_map(|(k, v)| v.as_ref().map(|v| (k.clone(), v.clone())))
                .collect(),
        }
    }

    /// Top-level keys other than `services`.
    fn top_level(&mut self, doc: &Node) {
        let Node::Map(top) = doc else { return };
        for (key, value) in top {
            match key.as_str() {
                "services" | "name" | "networks" | "volumes" | "secrets" | "configs" => {}
                "version" => self.note(None, key, "obsolete in the Compose Specification; ignored"),
                key if key.starts_with("x-") => self.note(
                    None,
                    key,
                    "an extension field: its anchors were applied where they are used",
                ),
                "include" | "models" => self.finding(None, key, "stack has no attribute for it"),
                other => self.finding(None, other, "unknown key: not in the Compose Specification"),
            }
            if key == "volumes" {
                self.top_volumes(value);
            }
        }
    }

    fn project(&mut self, doc: &Node) -> String {
        // Compose's order: `COMPOSE_PROJECT_NAME` (`.env` too, as OpenCTI's), `name:`, the folder.
        let from_dotenv = self
            .dotenv
            .get("COMPOSE_PROJECT_NAME")
            .and_then(|(template, _)| self.interpolate(template, 0))
            .filter(|name| !name.is_empty());
        if let Some(name) = from_dotenv {
            self.note(
                None,
                "COMPOSE_PROJECT_NAME",
                format!("the project is named `{name}` by `.env`, as Compose names it (its volumes are `{name}_<volume>`)"),
            );
            return project_name(&name);
        }
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

    /// One service as a draft: each key classified, each carried section translated.
    fn service(
        &mut self,
        input: &str,
        node: &Node,
        caddy: &BTreeMap<String, caddyfile::Upstream>,
    ) -> Result<ServiceDraft> {
        let mut service = ServiceDraft::new(input, &self.names[input]);
        let Node::Map(entries) = node else {
            return Ok(service);
        };
        self.classify_keys(input, entries);
        self.profiles_note(input, node);
        self.image_and_build(&mut service, node);
        self.command(&mut service, node)?;
        self.ports(&mut service, node, caddy.get(input));
        self.volumes(&mut service, node);
        self.configs(&mut service, node);
        self.environment(&mut service, node)?;
        self.health(&mut service, node);
        self.depends_on(&mut service, node);
        self.restart(&mut service, node);
        self.resources(&mut service, node);
        self.options(&mut service, node);
        self.service_networks(&mut service, node);
        self.service_aliases(&mut service);
        self.host_options(&mut service, node);
        self.service_secrets(&mut service, node)?;
        for finding in &self.findings {
            if finding.not_carried && finding.service.as_deref() == Some(input) {
                service.not_carried(&finding.key, &finding.reason);
            }
        }
        Ok(service)
    }
}

/// A mapping or a `KEY=VALUE` list as pairs; a value is `None` when absent.
pub(super) fn pairs_opt(node: Option<&Node>) -> Vec<(String, Option<String>)> {
    match node {
        Some(node) => pairs(node),
        None => Vec::new(),
    }
}

pub(super) fn pairs(node: &Node) -> Vec<(String, Option<String>)> {
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

/// A Compose size (`512m`, `1.5g`, `1073741824`, `256MB`) in whole MiB: Compose allows a
/// fraction, stack's own sizes do not; the units are stack's ([`size_unit`]).
fn megabytes(text: &str) -> Option<u64> {
    let text = text.trim().to_ascii_lowercase();
    let (number, unit) = match text.find(|c: char| c.is_ascii_alphabetic()) {
        Some(at) => (&text[..at], &text[at..]),
        None => (text.as_str(), ""),
    };
    let number: f64 = number.parse().ok()?;
    let bytes = number * size_unit(unit)? as f64;
    let mb = bytes / (1024.0 * 1024.0);
    (mb >= 1.0 && mb.fract() == 0.0).then_some(mb as u64)
}

#[cfg(test)]
mod unit_tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(megabytes("512m"), Some(512));
        assert_eq!(megabytes("1g"), Some(1024));
        assert_eq!(megabytes("1GB"), Some(1024));
        assert_eq!(megabytes("0.5g"), Some(512));
        assert_eq!(megabytes("1048576"), Some(1));
        assert_eq!(megabytes("1048576b"), Some(1));
        assert_eq!(megabytes("100k"), None);
        assert_eq!(megabytes("1bb"), None);
        assert_eq!(megabytes("1t"), None);
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod fidelity_tests;
