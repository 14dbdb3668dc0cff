//! An nself project (seed 003) to a stack project.
//!
//! The layout read: `.env.dev` (the team's defaults; `.env` is read when there is no
//! `.env.dev`), `.env.local` (personal, becomes `stack.local.env`), `.env.secrets`
//! (dev secrets), `.env.<env>` and `.environments/<env>/{.env,.env.secrets,server.json}`
//! per environment, and `services/<name>/` for custom services.
//!
//! The mapping: `PROJECT_NAME` → `STACK_PROJECT`, `BASE_DOMAIN` → `STACK_DOMAIN`; the core
//! services (Postgres, Hasura, Auth behind nginx) → the `POSTGRES` preset and two services
//! routed at `api.` and `auth.`; `<NAME>_ENABLED` → the preset of that name where stack has
//! one; `CS_N=name:template[:port][:route]` → a `BUILD` service under `services/<name>`
//! routed at `<route>.<domain>`; `FRONTEND_APP_N_{NAME,PORT,ROUTE}` → a `FRONTEND` service
//! with `UPSTREAM=localhost:<port>`; secrets files → `secrets.env` (0600); `server.json` →
//! `server.env`. Everything else that stack does not read is listed as not carried.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

mod services;

use super::{
    dotenv, is_reserved_key, project_name, Finding, Imported, OutFile, Reader, PROJECT_FILE,
};
use crate::config::presets::{preset_keys, PRESETS};
use crate::error::{Diagnostic, Result};
use crate::project::writer;
use services::{auth, hasura, Fields};

/// Presets nself switches on with `<NAME>_ENABLED` that stack has too.
const PRESET_FLAGS: &[&str] = &[
    "REDIS_ENABLED",
    "MINIO_ENABLED",
    "MAILPIT_ENABLED",
    "MEILISEARCH_ENABLED",
    "MONITORING_ENABLED",
];

/// nself services stack has no preset for.
const NO_PRESET: &[(&str, &str)] = &[
    ("NSELF_ADMIN_ENABLED", "nself's admin UI"),
    ("FUNCTIONS_ENABLED", "nself's serverless functions runtime"),
    ("MLFLOW_ENABLED", "MLflow"),
];

/// One assignment read from an nself file.
struct Entry {
    key: String,
    template: String,
    line: usize,
}

struct Import<'a> {
    reader: &'a dyn Reader,
    source: &'a Path,
    project_dir: &'a Path,
    findings: Vec<Finding>,
}

/// Import the nself project at `source` into a project at `project_dir`.
pub fn import(reader: &dyn Reader, source: &Path, project_dir: &Path) -> Result<Imported> {
    let mut import = Import {
        reader,
        source,
        project_dir,
        findings: Vec::new(),
    };
    let (base_name, base) = import.base_file()?;
    let values: BTreeMap<String, String> = base
        .iter()
        .map(|e| (e.key.clone(), e.template.clone()))
        .collect();
    let mut files = Vec::new();
    let mut envs = import.environments()?;
    envs.sort();
    let (secret_names, secret_files) = import.secrets(&envs)?;
    let (text, services) = import.base(base_name, &base, &values, &secret_names);
    let project = values
        .get("PROJECT_NAME")
        .map(|n| project_name(n))
        .unwrap_or_else(|| project_name(&source.file_name().unwrap_or_default().to_string_lossy()));
    files.push(OutFile {
        path: PROJECT_FILE.into(),
        contents: text,
        mode: 0o644,
    });
    if let Some(entries) = import.read(".env.local")? {
        let text = import.overlay(".env.local", &entries);
        files.push(OutFile {
            path: "stack.local.env".into(),
            contents: text,
            mode: 0o644,
        });
    }
    for env in &envs {
        let mut entries = import.read(&format!(".env.{env}"))?.unwrap_or_default();
        entries.extend(
            import
                .read(&format!(".environments/{env}/.env"))?
                .unwrap_or_default(),
        );
        let text = import.overlay(&format!(".environments/{env}/.env"), &entries);
        files.push(OutFile {
            path: format!("environments/{env}/stack.env"),
            contents: text,
            mode: 0o644,
        });
        if let Some(server) = import.server(env)? {
            files.push(OutFile {
                path: format!("environments/{env}/server.env"),
                contents: server,
                mode: 0o644,
            });
        }
    }
    files.extend(secret_files);
    Ok(Imported {
        files,
        findings: import.findings,
        project,
        services,
        renamed: BTreeMap::new(),
        secrets: secret_names.into_iter().collect(),
    })
}

impl Import<'_> {
    /// The assignments of a file of the project, `None` when it does not exist.
    fn read(&mut self, path: &str) -> Result<Option<Vec<Entry>>> {
        let Some(text) = self.reader.read(&self.source.join(path))? else {
            return Ok(None);
        };
        let (assignments, skipped) = dotenv::parse(&text);
        for skip in skipped {
            self.finding(path, skip.line, skip.reason);
        }
        Ok(Some(
            assignments
                .into_iter()
                .map(|a| Entry {
                    key: a.key,
                    template: a.template,
                    line: a.line,
                })
                .collect(),
        ))
    }

    fn finding(&mut self, file: &str, line: usize, reason: impl Into<String>) {
        self.findings.push(Finding {
            service: None,
            key: format!("{file}:{line}"),
            line: Some(line),
            reason: reason.into(),
            not_carried: true,
        });
    }

    fn note(&mut self, file: &str, line: usize, reason: impl Into<String>) {
        self.findings.push(Finding {
            service: None,
            key: format!("{file}:{line}"),
            line: Some(line),
            reason: reason.into(),
            not_carried: false,
        });
    }

    /// Environments: the folders of `.environments/` (and `.env.<env>` files).
    fn environments(&self) -> Result<Vec<String>> {
        let mut out: BTreeSet<String> = self
            .reader
            .folders(&self.source.join(".environments"))
            .into_iter()
            .collect();
        for env in ["staging", "prod"] {
            if self
                .reader
                .read(&self.source.join(format!(".env.{env}")))?
                .is_some()
            {
                out.insert(env.to_string());
            }
        }
        Ok(out
            .into_iter()
            .filter(|env| {
                env.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
                    && !env.is_empty()
            })
            .collect())
    }

    /// The base file, `.env.dev` or else `.env`; an error when there is neither.
    fn base_file(&mut self) -> Result<(&'static str, Vec<Entry>)> {
        for name in [".env.dev", ".env"] {
            if let Some(entries) = self.read(name)? {
                return Ok((name, entries));
            }
        }
        Err(Diagnostic::new(format!(
            "`{}` is not an nself project: it has no `.env.dev` or `.env`",
            self.source.display()
        ))
        .hint("name the folder that holds the nself project's `.env.dev`")
        .into())
    }

    /// `secrets.env` of dev (from `.env.secrets`) and of each of `envs` (from its own),
    /// and every secret name they set.
    fn secrets(&mut self, envs: &[String]) -> Result<(BTreeSet<String>, Vec<OutFile>)> {
        let mut secret_names: BTreeSet<String> = BTreeSet::new();
        let mut secret_files = Vec::new();
        for (env, path) in std::iter::once(("dev".to_string(), ".env.secrets".to_string())).chain(
            envs.iter()
                .map(|env| (env.clone(), format!(".environments/{env}/.env.secrets"))),
        ) {
            if let Some(entries) = self.read(&path)? {
                let mut text = format!(
                    "# Secrets imported by `stack import nself` from `{path}`.\n# Keep this file mode 0600; never commit it.\n"
                );
                for entry in &entries {
                    secret_names.insert(entry.key.clone());
                    text.push_str(&format!(
                        "{}={}\n",
                        entry.key,
                        secret_value(&entry.template)
                    ));
                }
                secret_files.push(OutFile {
                    path: format!("environments/{env}/secrets.env"),
                    contents: text,
                    mode: 0o600,
                });
            }
        }
        Ok((secret_names, secret_files))
    }

    /// `stack.env` from the base file.
    fn base(
        &mut self,
        file: &str,
        entries: &[Entry],
        values: &BTreeMap<String, String>,
        secrets: &BTreeSet<String>,
    ) -> (String, Vec<String>) {
        let mut globals = vec!["POSTGRES_ENABLED=true".to_string()];
        let mut services: Vec<(String, Vec<String>)> =
            vec![("hasura".into(), hasura()), ("auth".into(), auth())];
        let (lines, custom, frontends) = self.sort_base(file, entries);
        for (n, fields) in custom {
            if let Some(service) = self.custom(file, n, &fields) {
                services.push(service);
            }
        }
        for (n, fields) in frontends {
            if let Some(service) = self.frontend(file, n, &fields) {
                services.push(service);
            }
        }
        let project = values
            .get("PROJECT_NAME")
            .map(|n| project_name(n))
            .unwrap_or_else(|| {
                project_name(
                    &self
                        .source
                        .file_name()
                        .unwrap_or_default()
                        .to_string_lossy(),
                )
            });
        let mut text = format!(
            "# Imported by `stack import nself` from `{file}`.\n# Secret values are in `environments/<env>/secrets.env` (mode 0600), never here.\n"
        );
        text.push_str(&format!("STACK_PROJECT={project}\n"));
        let names: Vec<&str> = services.iter().map(|(n, _)| n.as_str()).collect();
        text.push_str(&format!("STACK_SERVICES={}\n", names.join(",")));
        text.push_str("STACK_PROXY=nginx\n");
        let own: Vec<&str> = ["HASURA_GRAPHQL_ADMIN_SECRET", "HASURA_JWT_KEY"]
            .into_iter()
            .chain(secrets.iter().map(String::as_str))
            .filter(|k| !is_reserved_key(k))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        text.push_str(&format!("STACK_SECRETS={}\n", own.join(",")));
        globals.extend(lines);
        for line in globals {
            text.push_str(&line);
            text.push('\n');
        }
        if !values.contains_key("DATABASE_URL") {
            text.push_str("DATABASE_URL=postgres://${POSTGRES_USER}:${POSTGRES_PASSWORD}@postgres:5432/${POSTGRES_DB}\n");
        }
        for (name, attrs) in &services {
            text.push_str(&format!("\n# {name}\n"));
            let prefix = format!("SERVICE_{}", name.to_ascii_uppercase().replace('-', "_"));
            for attr in attrs {
                text.push_str(&format!("{prefix}_{attr}\n"));
            }
        }
        (text, services.into_iter().map(|(n, _)| n).collect())
    }

    /// The base's own `stack.env` lines, and the fields of its numbered custom services
    /// and frontend apps, by number.
    fn sort_base(
        &mut self,
        file: &str,
        entries: &[Entry],
    ) -> (Vec<String>, BTreeMap<u32, Fields>, BTreeMap<u32, Fields>) {
        let mut lines: Vec<String> = Vec::new();
        let mut custom: BTreeMap<u32, Fields> = BTreeMap::new();
        let mut frontends: BTreeMap<u32, Fields> = BTreeMap::new();
        for entry in entries {
            let key = entry.key.as_str();
            if let Some((n, field)) = numbered(key, "CS_") {
                custom
                    .entry(n)
                    .or_default()
                    .insert(field, (entry.template.clone(), entry.line));
                continue;
            }
            if let Some((n, field)) = numbered(key, "FRONTEND_APP_") {
                frontends
                    .entry(n)
                    .or_default()
                    .insert(field, (entry.template.clone(), entry.line));
                continue;
            }
            if let Some(line) = self.global(file, entry) {
                lines.push(line);
            }
        }
        (lines, custom, frontends)
    }

    /// The `stack.env` line of one nself key of the base or an overlay, `None` when it is
    /// not carried (a finding says why) or has no line of its own.
    fn global(&mut self, file: &str, entry: &Entry) -> Option<String> {
        let key = entry.key.as_str();
        let value = writer::template(&entry.template);
        match key {
            "PROJECT_NAME" => None,
            "BASE_DOMAIN" => Some(format!("STACK_DOMAIN={value}")),
            "ENV" => {
                self.note(
                    file,
                    entry.line,
                    "`ENV`: stack chooses the environment with `--env`",
                );
                None
            }
            "POSTGRES_ENABLED" | "HASURA_ENABLED" | "AUTH_ENABLED" | "NGINX_ENABLED" => None,
            _ if PRESET_FLAGS.contains(&key) => Some(format!("{key}={value}")),
            _ if NO_PRESET.iter().any(|(k, _)| *k == key) => {
                let what = NO_PRESET
                    .iter()
                    .find(|(k, _)| *k == key)
                    .map(|(_, w)| *w)
                    .unwrap_or("");
                self.finding(
                    file,
                    entry.line,
                    format!("`{key}`: stack has no preset for {what}; add it as a service"),
                );
                None
            }
            _ if key.starts_with("REMOTE_SCHEMA_") => {
                self.finding(
                    file,
                    entry.line,
                    format!("`{key}`: remote schemas are Hasura configuration, not a service"),
                );
                None
            }
            _ if key.ends_with("_ENABLED") => {
                self.finding(
                    file,
                    entry.line,
                    format!("`{key}`: stack has no preset for it"),
                );
                None
            }
            _ if is_reserved_key(key) && !is_preset_key(key) => {
                self.finding(file, entry.line, format!("`{key}`: stack reads keys with this prefix itself and does not know this one"));
                None
            }
            _ => Some(format!("{key}={value}")),
        }
    }

    /// An overlay (`environments/<env>/stack.env`, `stack.local.env`).
    fn overlay(&mut self, file: &str, entries: &[Entry]) -> String {
        let mut text = format!("# Imported by `stack import nself` from `{file}`.\n");
        for entry in entries {
            if numbered(&entry.key, "CS_").is_some()
                || numbered(&entry.key, "FRONTEND_APP_").is_some()
            {
                self.finding(
                    file,
                    entry.line,
                    format!(
                        "`{}`: services are declared in the base file only",
                        entry.key
                    ),
                );
                continue;
            }
            if let Some(line) = self.global(file, entry) {
                text.push_str(&line);
                text.push('\n');
            }
        }
        text
    }

    /// `server.env` from `.environments/<env>/server.json`.
    fn server(&mut self, env: &str) -> Result<Option<String>> {
        let file = format!(".environments/{env}/server.json");
        let Some(text) = self.reader.read(&self.source.join(&file))? else {
            return Ok(None);
        };
        let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
            super::input_error(
                &file,
                &text,
                e.line(),
                e.column(),
                format!("`{file}` is not valid JSON: {e}"),
            )
        })?;
        let Some(map) = json.as_object() else {
            return Err(Diagnostic::new(format!("`{file}` is not a JSON object")).into());
        };
        let mut out = format!("# Imported by `stack import nself` from `{file}`.\n");
        for (key, value) in map {
            let text = match value {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Number(n) => n.to_string(),
                _ => {
                    self.finding(&file, 1, format!("`{key}`: not a string or a number"));
                    continue;
                }
            };
            let target = match key.as_str() {
                "host" | "hostname" | "ip" => "SERVER_HOST",
                "user" | "username" => "SERVER_USER",
                "port" | "ssh_port" => "SERVER_PORT",
                "key" | "ssh_key" | "key_file" | "identity_file" => "SERVER_SSH_KEY",
                "path" | "deploy_path" | "directory" => "SERVER_PATH",
                _ => {
                    self.finding(
                        &file,
                        1,
                        format!(
                            "`{key}`: stack's server keys are host, user, port, SSH key and path"
                        ),
                    );
                    continue;
                }
            };
            out.push_str(&format!("{target}={}\n", writer::literal(&text)));
        }
        Ok(Some(out))
    }
}

fn is_preset_key(key: &str) -> bool {
    PRESETS
        .iter()
        .any(|p| preset_keys(p).iter().any(|k| k == key) || p.secrets.contains(&key))
}

/// `CS_3` → (3, ""), `CS_3_PORT` → (3, "PORT").
fn numbered(key: &str, prefix: &str) -> Option<(u32, String)> {
    let rest = key.strip_prefix(prefix)?;
    let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    let n = digits.parse().ok()?;
    let field = rest[digits.len()..]
        .strip_prefix('_')
        .unwrap_or(&rest[digits.len()..]);
    if !field.is_empty() && !rest[digits.len()..].starts_with('_') {
        return None;
    }
    Some((n, field.to_string()))
}

fn secret_value(template: &str) -> String {
    match super::text::as_literal(template) {
        Some(literal) => writer::literal(&literal),
        None => writer::template(template),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbered_keys() {
        assert_eq!(numbered("CS_3", "CS_"), Some((3, String::new())));
        assert_eq!(numbered("CS_12_PORT", "CS_"), Some((12, "PORT".into())));
        assert_eq!(numbered("CS_X", "CS_"), None);
        assert_eq!(
            numbered("FRONTEND_APP_1_NAME", "FRONTEND_APP_"),
            Some((1, "NAME".into()))
        );
    }
}
